"""Another fold: `--held-out` through demonstrate, train and evaluate, and
scripts/pool_folds.py pooling the folds' evaluations (real Grid2Op test envs, real RLlib)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from gridfactor.envs.grid2op_env import make_env
from gridfactor.runs import read_parquet
from tests.helpers import assert_user_error, case14_factorization, run_cli

ENV5 = "rte_case5_example"
ENV14 = "rte_case14_realistic"


def test_the_other_fold_trains_on_chronic_1_and_holds_out_chronic_0(tmp_path):
    """`--held-out 0`: the demonstrations play chronic 1 only, the clone records chronic 0 as
    its validation split and is evaluated there; a train without it refuses them."""
    env = make_env(ENV14)
    case14_factorization(env).save(tmp_path / "factorization.json")
    env.close()
    fact = ("--factorization", str(tmp_path / "factorization.json"), "--env", ENV14)
    demos = tmp_path / "demos"
    run_cli(
        "demonstrate",
        *fact,
        *("--episodes", "2", "--episode-steps", "60", "--workers", "1"),
        *("--held-out", "0", "--out", str(demos)),
        timeout=900,
    )
    frame = read_parquet(demos / "demonstrations.parquet")
    assert len(frame) > 0 and set(frame["chronic"]) == {1}
    train = ("train", *fact, "--demonstrations", str(demos), "--timesteps", "0")
    train += ("--imitation-epochs", "2")
    run = tmp_path / "run"
    run_cli(*train, "--held-out", "0", "--out", str(run), timeout=900)
    split = json.loads((run / "split.json").read_text())
    assert split["train"]["chronics"] == [1] and split["validation"]["chronics"] == [0]
    assert json.loads((run / "config.json").read_text())["held_out"] == [0]
    proc = run_cli(*train, "--out", str(tmp_path / "default-fold"), check=False)
    assert_user_error(proc, "another train/validation split", "--held-out")
    assert not (tmp_path / "default-fold").exists()
    out = tmp_path / "eval"
    run_cli(
        "evaluate",
        "--run",
        str(run),
        "--agents",
        "",
        "--n-episodes",
        "2",
        *("--episode-steps", "30", "--workers", "1", "--out", str(out)),
        timeout=900,
    )
    assert set(pd.read_csv(out / "scenarios.csv")["chronic"]) == {0}


def test_pool_folds_pools_two_held_out_folds_episode_by_episode(tmp_path: Path) -> None:
    """scripts/pool_folds.py: the agents of two folds' evaluations in one table, each mean
    and paired difference over the pooled episodes, a --mean row per episode; evaluations of
    one fold that played other scenarios are refused in one line."""
    folds = []
    for chronic in ("0", "1"):
        out = tmp_path / f"fold{chronic}"
        run_cli(
            *("evaluate", "--env", ENV5, "--chronics", chronic, "--agents", "do-nothing,expert"),
            *("--n-episodes", "2", "--episode-steps", "200", "--workers", "1", "--out", str(out)),
        )
        folds.append(out)
    script = Path(__file__).resolve().parents[2] / "scripts" / "pool_folds.py"

    def pool(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(script), *args], capture_output=True, text=True, timeout=300
        )

    proc = pool(
        *("--fold", str(folds[0]), "--fold", str(folds[1]), "--reference", "do-nothing"),
        *("--mean", "both=do-nothing|expert", "--length", "200"),
    )
    assert proc.returncode == 0, proc.stderr
    rows = {
        line.split(" | ")[0].lstrip("| "): line.split(" | ")
        for line in proc.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| agent")
    }
    episodes = pd.concat([pd.read_csv(f / "episodes.csv") for f in folds])
    survived = {a: g["survived"].to_numpy(float) for a, g in episodes.groupby("agent")}
    assert survived["do-nothing"].min() < 200  # the comparison is not all ties
    for agent, values in survived.items():
        assert rows[agent][1] == f"{int((values >= 200).sum())}/4"
        assert rows[agent][2].startswith(f"{values.mean():.1f} [")
        diff = values - survived["do-nothing"]
        assert rows[agent][5].startswith(f"{diff.mean():+.1f} [")
    both = (survived["do-nothing"] + survived["expert"]) / 2
    assert rows["both (mean of 2)"][2].startswith(f"{both.mean():.1f} [")
    proc = pool("--fold", f"{folds[0]},{folds[1]}")
    assert proc.returncode != 0 and "played other scenarios" in proc.stderr
