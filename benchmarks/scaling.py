"""How run time and peak memory grow with the grid size and the number of samples.

For each env (14, 36, 118 substations by default) and each --n-episodes value, runs
``gridfactor factorize`` (collection + MI + clustering), then a short ``gridfactor train``,
centralized and distributed (one PPO policy per cluster of the factorization just made), as
real CLI subprocesses. One table row per stage: wall time, peak RSS of the command's process
(``os.wait4`` rusage: the process and the children it waited for; with ``--workers 1`` all
factorize work is in that process), the dataset size and the number of agents (clusters
with substations / PPO policies), with time and memory as ratios to the same stage on the
first env (the reference, measured in the same run).

    .venv/bin/python benchmarks/scaling.py                      # all three grids
    .venv/bin/python benchmarks/scaling.py --envs l2rpn_case14_sandbox --n-episodes 5,20

Timings are wall-clock on whatever else the machine is running: compare rows of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRIDFACTOR = str(Path(sys.executable).parent / "gridfactor")
ENVS = ("l2rpn_case14_sandbox", "l2rpn_neurips_2020_track1", "l2rpn_wcci_2022")


def run_stage(args: list[str], timeout: float) -> dict[str, float | str]:
    """Run ``gridfactor ARGS``; wall seconds, peak RSS (MB) and exit status."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [GRIDFACTOR, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    deadline = start + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            os.killpg(proc.pid, 9)
            pid, status, usage = os.wait4(proc.pid, 0)
            return {"seconds": timeout, "rss_mb": usage.ru_maxrss / 1024, "status": "timeout"}
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    err = proc.stderr.read().decode(errors="replace").strip().splitlines() if proc.stderr else []
    return {
        "seconds": seconds,
        "rss_mb": usage.ru_maxrss / 1024,  # ru_maxrss is in KiB on Linux
        "status": "ok" if code == 0 else f"exit {code}: {err[-1][:60] if err else ''}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default=",".join(ENVS))
    parser.add_argument("--n-episodes", default="5", help="Episodes per substation, e.g. 5,20")
    parser.add_argument("--max-steps", type=int, default=10)
    parser.add_argument("--n-samples", type=int, default=2000)
    parser.add_argument("--workers", default="1", help="1 = in-process (RSS covers all work)")
    parser.add_argument("--train-timesteps", type=int, default=100)
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--out", type=Path, default=None, help="Keep the runs here.")
    opts = parser.parse_args()

    root = opts.out or Path(tempfile.mkdtemp(prefix="gridfactor-scaling-"))
    rows = []
    header = (
        f"{'env':27s} {'subs':>4s} {'lines':>5s} {'stage':19s} {'eps/sub':>7s} {'rows':>7s} "
        f"{'agents':>6s} {'time s':>7s} {'peak MB':>8s} {'x time':>6s} {'x MB':>5s}  status"
    )
    print(header, flush=True)
    for env in opts.envs.split(","):
        for n_episodes in [int(v) for v in opts.n_episodes.split(",")]:
            out = root / f"{env}-{n_episodes}"
            stage = run_stage(
                [
                    "factorize",
                    "--env",
                    env,
                    "--n-episodes",
                    str(n_episodes),
                    "--max-steps",
                    str(opts.max_steps),
                    "--n-samples",
                    str(opts.n_samples),
                    "--workers",
                    opts.workers,
                    "--out",
                    str(out),
                    "--overwrite",
                ],
                opts.timeout,
            )
            info = {}
            if (out / "dataset.json").is_file():
                info = json.loads((out / "dataset.json").read_text())
            row = {
                "env": env,
                "subs": len(info.get("sub_names", [])),
                "lines": len(info.get("line_names", [])),
                "stage": "factorize",
                "episodes": n_episodes,
                "rows": info.get("n_rows", 0),
                "policies": _clusters_with_actions(out / "factorization.json"),
                **stage,
            }
            _add(rows, row)
        if opts.skip_train:
            continue
        # a short PPO run: one policy for the whole grid, then one per cluster of the
        # factorization just made (the last --n-episodes value)
        factorization = out / "factorization.json"
        for kind, extra in (
            ("centralized", ["--centralized"]),
            ("distributed", ["--factorization", str(factorization)]),
        ):
            stage = run_stage(
                [
                    "train",
                    *extra,
                    "--env",
                    env,
                    "--timesteps",
                    str(opts.train_timesteps),
                    "--train-batch-size",
                    str(opts.train_timesteps),
                    "--minibatch-size",
                    str(min(50, opts.train_timesteps)),
                    "--num-epochs",
                    "1",
                    "--episode-steps",
                    "50",
                    "--out",
                    str(root / f"{env}-train-{kind}"),
                    "--overwrite",
                ],
                opts.timeout,
            )
            row = {**rows[-1], "stage": f"train {kind}", "episodes": 0}
            row.update(rows=opts.train_timesteps, policies=_policies(root, env, kind), **stage)
            _add(rows, row)
    (root / "scaling.json").write_text(json.dumps(rows, indent=2))
    print(f"runs and scaling.json in {root}")


def _add(rows: list[dict], row: dict) -> None:
    """Append and print ``row`` with its ratios to the same stage of the first env."""
    reference = next(
        (r for r in rows if r["stage"] == row["stage"] and r["episodes"] == row["episodes"]),
        row,
    )
    row["time_ratio"] = row["seconds"] / reference["seconds"]
    row["rss_ratio"] = row["rss_mb"] / reference["rss_mb"]
    rows.append(row)
    _print(row)


def _clusters_with_actions(path: Path) -> int:
    """Clusters holding at least one substation: the agents a distributed run would train."""
    if not path.is_file():
        return 0
    return sum(bool(c["inputs"]) for c in json.loads(path.read_text())["clusters"])


def _policies(root: Path, env: str, kind: str) -> int:
    """Number of PPO policies (clusters with actions) the train run used."""
    metrics = root / f"{env}-train-{kind}" / "metrics.csv"
    if not metrics.is_file():
        return 0
    header = metrics.read_text().splitlines()[0].split(",")
    return sum(name.startswith("policy_loss/") for name in header)


def _print(row: dict) -> None:
    print(
        f"{row['env']:27s} {row['subs']:4d} {row['lines']:5d} {row['stage']:19s} "
        f"{row['episodes']:7d} {row['rows']:7d} {row['policies']:6d} {row['seconds']:7.1f} "
        f"{row['rss_mb']:8.0f} {row['time_ratio']:6.2f} {row['rss_ratio']:5.2f}  "
        f"{row['status']}",
        flush=True,
    )


if __name__ == "__main__":
    main()
