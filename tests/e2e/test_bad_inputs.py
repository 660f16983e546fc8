"""Bad input across the CLI: one line on stderr, exit code 2, no traceback, nothing written.

Most cases run ``gridfactor.cli.main.main()`` in-process (the exact code path of the
``gridfactor`` script, minus ~3 s of interpreter start per case); one case per command also
runs the real ``gridfactor`` executable in a subprocess. No case may start Ray: bad input
must be refused before any work starts (checked after every case).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import DATA, assert_user_error, run_cli, run_main

N_LINE, N_SUB = 20, 14  # rte_case14_realistic (train's default env)


def _ray_running() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


@pytest.fixture(autouse=True)
def _no_ray():
    """A bad input is refused before Ray starts (a Ray left running by an earlier test in
    the same process is not this test's)."""
    before = _ray_running()
    yield
    assert before or not _ray_running(), "bad input started Ray"


def _transitions(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(n, 2))
    a = rng.integers(0, 3, n).astype(float)
    return pd.DataFrame(
        {"s_x": s[:, 0], "s_y": s[:, 1], "a_u": a, "s_next_x": a + s[:, 0], "s_next_y": s[:, 1]}
    )


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False) if path.suffix == ".csv" else frame.to_parquet(path)
    return path


def _truncated(tmp: Path) -> Path:
    path = _write(_transitions(), tmp / "t.parquet")
    path.write_bytes(path.read_bytes()[:200])
    return path


def _corrupt_csv(tmp: Path) -> Path:
    path = tmp / "t.csv"
    path.write_bytes(b"\x00\xff\xfe garbage \x00" * 50)
    return path


def _with_nan(tmp: Path) -> Path:
    frame = _transitions()
    frame.loc[7, "s_y"] = np.nan
    return _write(frame, tmp / "t.csv")


DATA_CASES = {
    "missing file": (lambda tmp: tmp / "nope.parquet", [], ["not found"]),
    "truncated parquet": (_truncated, [], ["cannot read t.parquet"]),
    "corrupt csv": (_corrupt_csv, [], ["t.csv"]),
    "nan": (_with_nan, [], ["s_y", "NaN", "row 7"]),
    "constant column": (
        lambda tmp: _write(_transitions().assign(a_u=1.0), tmp / "t.csv"),
        [],
        ["a_u", "constant"],
    ),
    "s_next without s": (
        lambda tmp: _write(_transitions().drop(columns=["s_x"]), tmp / "t.csv"),
        [],
        ["s_next_x has no matching s_x"],
    ),
    "s without s_next": (
        lambda tmp: _write(_transitions().drop(columns=["s_next_y"]), tmp / "t.csv"),
        [],
        ["s_y has no matching s_next_y"],
    ),
    "no action": (
        lambda tmp: _write(_transitions().drop(columns=["a_u"]), tmp / "t.csv"),
        [],
        ["no action columns"],
    ),
    "k >= rows": (
        lambda tmp: _write(_transitions(), tmp / "t.csv"),
        ["--k", "60"],
        ["60 rows", "--k"],
    ),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_factorize_data_bad_files(tmp_path, case):
    make, extra, fragments = DATA_CASES[case]
    path = make(tmp_path)
    out = tmp_path / "out"
    proc = run_main("factorize-data", str(path), "--out", str(out), "--workers", "1", *extra)
    assert_user_error(proc, *fragments)
    assert not out.exists()


def _fact(**change) -> dict:
    """A valid grid factorization of rte_case14_realistic, with ``change`` applied."""
    data = {
        "schema_version": 1,
        "target_names": [f"line_{i}" for i in range(N_LINE)],
        "input_names": [f"sub_{i}" for i in range(N_SUB)],
        "clusters": [
            {"targets": list(range(10)), "inputs": list(range(7))},
            {"targets": list(range(10, N_LINE)), "inputs": list(range(7, N_SUB))},
        ],
        "meta": {"env_name": "rte_case14_realistic"},
    }
    data.update(change)
    return data


FACT_CASES = {
    "schema version": (_fact(schema_version=2), ["schema_version 2", "reads 1"]),
    "out of range": (
        _fact(clusters=[{"targets": [0, 25], "inputs": [1]}]),
        ["target id 25 out of range 0..19"],
    ),
    "overlapping": (
        _fact(clusters=[{"targets": [0], "inputs": [1, 2]}, {"targets": [1], "inputs": [2]}]),
        ["input id 2 appears in more than one cluster"],
    ),
    "empty cluster": (
        _fact(clusters=[{"targets": [0], "inputs": [1]}, {"targets": [], "inputs": []}]),
        ["cluster 1 is empty"],
    ),
    "wrong keys": ({"schema_version": 1, "clusters": []}, ["not a valid factorization"]),
    "not json": ("{not json", ["not valid JSON"]),
    "other grid size": (
        _fact(target_names=["a", "b"], clusters=[{"targets": [0, 1], "inputs": [0]}]),
        ["2 targets x 14 inputs", "20 lines x 14 substations"],
    ),
}


@pytest.mark.parametrize("case", list(FACT_CASES))
def test_train_bad_factorization(tmp_path, case):
    content, fragments = FACT_CASES[case]
    path = tmp_path / "factorization.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    out = tmp_path / "out"
    proc = run_main("train", "--factorization", str(path), "--timesteps", "10", "--out", str(out))
    assert_user_error(proc, *fragments)
    assert not out.exists()


BUDGET_CASES = {
    "train timesteps 0": (["train", "--centralized", "--timesteps", "0"], ["--timesteps"]),
    "train timesteps -5": (["train", "--centralized", "--timesteps", "-5"], ["--timesteps"]),
    "synthetic steps 0": (["synthetic", "--steps", "0", "--workers", "1"], ["--steps"]),
    "factorize episodes 0": (["factorize", "--n-episodes", "0"], ["--n-episodes"]),
    "factorize samples 0": (["factorize", "--n-samples", "0"], ["--n-samples"]),
    "collect episodes -1": (["collect", "--n-episodes", "-1"], ["--n-episodes"]),
    "collect max steps 0": (["collect", "--max-steps", "0"], ["--max-steps"]),
    # the demonstrations hold whole-grid observations for the centralized agent
    "centralized local imitation": (
        ["train", "--centralized", "--obs", "local", "--demonstrations", "runs/none"],
        ["--obs global"],
    ),
}


@pytest.mark.parametrize("case", list(BUDGET_CASES))
def test_non_positive_budgets(tmp_path, case):
    args, fragments = BUDGET_CASES[case]
    out = tmp_path / "out"
    assert_user_error(run_main(*args, "--out", str(out)), *fragments)
    assert not out.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["collect", "--env", "no_such_env"],
        ["train", "--centralized", "--env", "no_such_env"],
    ],
)
def test_unknown_env_lists_available(tmp_path, args):
    out = tmp_path / "out"
    proc = run_main(*args, "--out", str(out))
    assert_user_error(proc, "no_such_env", "available offline test envs", "l2rpn_case14_sandbox")
    assert not out.exists()


def test_existing_output_with_other_config_is_refused(tmp_path):
    """A run dir is reused only with the same config, unless --resume / --overwrite."""
    data = _write(_transitions(), tmp_path / "t.csv")
    out = tmp_path / "out"
    base = ["factorize-data", str(data), "--out", str(out), "--workers", "1"]
    base += ["--threshold", "quantile"]
    run_main(*base)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert "config.json" in before and "factorization.json" in before
    proc = run_main(*base, "--seed", "1")
    assert_user_error(proc, "different config", "seed", "--overwrite")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    # a directory that is not a run at all
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    proc = run_main("factorize-data", str(data), "--out", str(other), "--workers", "1")
    assert_user_error(proc, "not a gridfactor run")
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    # --overwrite replaces the run
    proc = run_main(*base, "--seed", "1", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "config.json").read_text())["seed"] == 1


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["factorize-data", "{tmp}/nope.csv"], ["nope.csv not found"]),
        (["train", "--timesteps", "0", "--centralized"], ["--timesteps"]),
        (["factorize", "--env", "no_such_env"], ["available offline test envs"]),
    ],
)
def test_real_executable(tmp_path, args, fragments):
    """The installed `gridfactor` script: same one-line errors and exit code 2."""
    out = tmp_path / "out"
    args = [a.format(tmp=tmp_path) for a in args]
    assert_user_error(run_cli(*args, "--out", str(out), check=False, timeout=120), *fragments)
    assert not out.exists()


# Envs whose action class has no set_bus (grid2op would build every topology action empty).
NO_SET_BUS = ("educ_case14_redisp", "educ_case14_storage")
# Small budgets: without the check, each would run (and the Ray ones start Ray) quickly.
NEEDS_TOPOLOGY = {
    "collect": ["collect", "--n-episodes", "1", "--max-steps", "2"],
    "factorize": ["factorize", "--n-episodes", "1", "--max-steps", "2", "--n-samples", "20"],
    "factorize-stability": ["factorize-stability", "--n-episodes", "1", "--max-steps", "2"],
    "train --centralized": ["train", "--centralized", "--timesteps", "10"],
    "evaluate": ["evaluate", "--n-episodes", "1", "--episode-steps", "5"],
    "compare": ["compare", "--timesteps", "10", "--eval-episodes", "1"],
}


@pytest.mark.parametrize("env", NO_SET_BUS)
@pytest.mark.parametrize("command", list(NEEDS_TOPOLOGY))
def test_env_without_topology_actions_is_refused_up_front(tmp_path, command, env):
    out = tmp_path / "out"
    proc = run_main(*NEEDS_TOPOLOGY[command], "--env", env, "--out", str(out))
    assert_user_error(
        proc,
        f"gridfactor {command.split()[0]}",
        f"env {env} does not support",
        "set_bus (topology)",
        "its action class PowerlineChange",
        "supports only change_line_status, redispatch",
        "l2rpn_case14_sandbox, ",
    )
    assert not out.exists()  # and the autouse fixture checks that Ray was not started


def test_evaluate_names_the_agents_that_cannot_act(tmp_path):
    out = tmp_path / "out"
    proc = run_main(
        *("evaluate", "--env", "educ_case14_redisp", "--agents", "do-nothing,reconnect"),
        *("--n-episodes", "1", "--episode-steps", "5", "--workers", "1", "--out", str(out)),
    )
    assert_user_error(proc, "(agents reconnect)", "set_line_status (line reconnection)")
    assert "set_bus" not in proc.stderr.split("supports only")[0]  # do-nothing needs nothing
    assert not out.exists()


def test_env_without_topology_actions_real_executable_starts_no_ray(tmp_path, monkeypatch):
    """The installed script, with the default parallel settings (Ray): refused before Ray
    starts, which would create <RAY_TMPDIR>/ray/session_*."""
    import shutil
    import tempfile

    ray_tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths
    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmp))
    out = tmp_path / "out"
    try:
        proc = run_cli(
            *("collect", "--env", "educ_case14_storage", "--n-episodes", "1", "--max-steps", "2"),
            *("--workers", "2", "--out", str(out)),
            check=False,
            timeout=120,
        )
        assert list(ray_tmp.iterdir()) == [], proc.stderr[-500:]  # no ray/session_*
        assert_user_error(proc, "educ_case14_storage", "set_bus")
        assert not out.exists()
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.mark.parametrize(
    "extra, fragments",
    [
        (["--factorization", "{data}/wcci_2022_factorization.json"], ["l2rpn_wcci_2022", "--env"]),
        (["--factorization", "{tmp}/nope.json"], ["nope.json not found"]),
        (["--score", "nope"], ["unknown scorer 'nope'", "l2rpn2020"]),
        (["--label-zones", "every"], ["--label-zones", "all, capa"]),
        (["--augment", "1.5"], ["--augment must be in [0, 1)"]),
        (["--guard", "3,x"], ["bad --guard '3,x'", "0,3,10"]),
        (["--danger", "0"], ["--danger must be > 0"]),
        (["--held-out", "0,1"], ["--held-out 0,1", "0..1", "at least one to train on"]),
        (["--held-out", "x"], ["bad --held-out 'x'"]),
    ],
)
def test_compare_checks_given_zones_and_scorer_before_any_stage(tmp_path, extra, fragments):
    """`compare --factorization/--score` fail in one line before the first stage, not an
    hour later at the evaluation."""
    data = DATA
    extra = [a.format(data=data, tmp=tmp_path) for a in extra]
    out = tmp_path / "out"
    assert_user_error(run_main("compare", *extra, "--out", str(out)), *fragments)
    assert not out.exists()
