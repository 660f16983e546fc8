"""gridfactor evaluate / compare on real Grid2Op test envs (rte_case5_example: do-nothing
fails within ~100 steps on held-out chronic 19, a 100-step episode takes < 1 s)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gridfactor.errors import UserError
from gridfactor.evaluate import EvalConfig, evaluate, parse_agent_names
from gridfactor.parallel import ParallelConfig
from gridfactor.runs import read_parquet

ENV = "rte_case5_example"
GRIDFACTOR = str(Path(sys.executable).with_name("gridfactor"))
# columns that depend on the machine's speed, not on the seed
TIMING = ["decision_ms", "step_ms", "wall_s"]


def _config(
    out: Path, agents: tuple[str, ...], workers: int = 1, seed: int = 0, **kw
) -> EvalConfig:
    return EvalConfig(
        env_name=ENV,
        agents=agents,
        n_episodes=3,
        episode_steps=100,
        seed=seed,
        out=str(out),
        parallel=ParallelConfig(workers=workers),
        progress=False,
        **kw,
    )


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "run"
    return evaluate(_config(out, ("do-nothing", "reconnect", "expert", "random")))


def test_baselines_table_sane(baseline_run: Path) -> None:
    episodes = pd.read_csv(baseline_run / "episodes.csv")
    table = pd.read_csv(baseline_run / "results.csv")
    assert list(table["agent"]) == ["do-nothing", "reconnect", "expert", "random"]
    assert (table["episodes"] == 3).all()
    assert len(episodes) == 12
    # metrics in range
    assert np.allclose(episodes["survival_frac"], episodes["survived"] / episodes["length"])
    assert (episodes["survived"] <= episodes["length"]).all()
    assert (episodes["safe_steps"] + episodes["overload_steps"] <= episodes["survived"]).all()
    assert (episodes["actions"] <= episodes["length"]).all()
    assert (episodes["step_ms"] > 0).all()
    # decision time counts only the steps where some line is at rho >= 0.9
    assert ((episodes["decisions"] > 0) == episodes["decision_ms"].notna()).all()
    assert (episodes["decisions"] <= episodes["survived"] + 1).all()
    assert episodes["survival_frac"].between(0, 1).all()
    assert (episodes["completed"] == (episodes["survived"] == episodes["length"])).all()
    # the table's safe_frac: safe steps over the episode lengths of the agent's episodes
    sums = episodes.groupby("agent")[["safe_steps", "length"]].sum()
    safe = (sums["safe_steps"] / sums["length"]).reindex(table["agent"]).to_numpy()
    assert np.allclose(table["safe_frac"], safe)
    # do-nothing never acts; paired scenarios: same chronic and start for every agent
    dn = episodes[episodes["agent"] == "do-nothing"].set_index("episode")
    ex = episodes[episodes["agent"] == "expert"].set_index("episode")
    assert (dn["actions"] == 0).all()
    assert (dn[["chronic", "start"]] == ex[["chronic", "start"]]).all().all()
    # the held-out split is gridfactor train's validation chronics of this env
    assert set(episodes["chronic"]) <= {16, 17, 18, 19}
    # do-nothing fails somewhere and the expert is never worse and strictly better there
    assert not dn["completed"].all()
    assert (dn["survived"] <= ex["survived"]).all()
    assert ex["survived"].sum() > dn["survived"].sum()
    assert ex["actions"].sum() > 0
    md = (baseline_run / "results.md").read_text()
    assert md.startswith("| agent |") and "expert" in md
    for plot in ("survival_per_scenario.png", "survival_cdf.png"):
        assert (baseline_run / "plots" / plot).stat().st_size > 1000


def test_same_seed_same_results_in_parallel(baseline_run: Path, tmp_path: Path) -> None:
    """The seed fixes everything, whether episodes run in-process or on 2 Ray workers."""
    again = evaluate(_config(tmp_path / "again", ("do-nothing", "random"), workers=2))
    first = pd.read_csv(baseline_run / "episodes.csv")
    second = pd.read_csv(again / "episodes.csv")
    first = first[first["agent"].isin(["do-nothing", "random"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(first.drop(columns=TIMING), second.drop(columns=TIMING))
    other = evaluate(_config(tmp_path / "seed1", ("do-nothing",), seed=1))
    scen0 = pd.read_csv(baseline_run / "scenarios.csv")
    scen1 = pd.read_csv(other / "scenarios.csv")
    assert not scen0[["chronic", "start"]].equals(scen1[["chronic", "start"]])


def test_resume_skips_finished(tmp_path: Path) -> None:
    config = _config(tmp_path / "run", ("do-nothing",))
    out = evaluate(config)
    files = sorted((out / "episodes" / "do-nothing").glob("*.json"))
    assert len(files) == 3
    stamps = {f: f.stat().st_mtime_ns for f in files}
    files[1].unlink()  # as if the run was interrupted before this episode finished
    evaluate(config)
    assert files[1].is_file()
    assert files[0].stat().st_mtime_ns == stamps[files[0]]
    assert files[2].stat().st_mtime_ns == stamps[files[2]]
    assert len(pd.read_csv(out / "episodes.csv")) == 3
    # a different config in the same directory is refused
    with pytest.raises(UserError, match="different config"):
        evaluate(_config(tmp_path / "run", ("do-nothing",), danger=0.8))


def test_augmented_scenarios_are_seeded_and_differ_from_the_plain_ones(
    baseline_run: Path, tmp_path: Path
) -> None:
    """--augment plays perturbed copies of the scenarios: other episodes than the plain run,
    the same ones again from the same seed (in another order, on two workers)."""
    agents = ("do-nothing", "expert")
    first = evaluate(_config(tmp_path / "a", agents, augment=0.3))
    again = evaluate(_config(tmp_path / "b", agents, workers=2, augment=0.3))
    cols = ["agent", "episode", "survived", "mean_max_rho"]
    aug = pd.read_csv(first / "episodes.csv")
    pd.testing.assert_frame_equal(aug[cols], pd.read_csv(again / "episodes.csv")[cols])
    plain = pd.read_csv(baseline_run / "episodes.csv")
    plain = plain[plain.agent.isin(agents)].reset_index(drop=True)
    assert not np.allclose(aug["mean_max_rho"], plain["mean_max_rho"])
    assert json.loads((first / "config.json").read_text())["augment"] == 0.3
    assert pd.read_csv(first / "scenarios.csv").equals(pd.read_csv(baseline_run / "scenarios.csv"))


def test_bad_agent_names() -> None:
    assert parse_agent_names("expert, do-nothing,expert") == ["expert", "do-nothing"]
    with pytest.raises(UserError, match="unknown agent 'greedy'"):
        parse_agent_names("do-nothing,greedy")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--agents", "do-nothing,bogus"], "unknown agent 'bogus'"),
        (["--run", "/nonexistent/run"], "does not exist"),
        (["--env", "no_such_env"], "unknown or not-on-disk environment"),
        (["--coordinator", "capa,vote"], "bad --coordinator 'capa,vote'"),
        (["--reconnect", "always,sometimes"], "--reconnect must be one of"),
        (["--wait-confidence", "0,2"], "wait confidence must be in"),
        (["--augment", "1.5"], "--augment must be in [0, 1)"),
        (["--danger", "0"], "--danger must be > 0"),
        (["--augment", "0.2", "--score", "l2rpn2020"], "drop them or --augment"),
    ],
)
def test_cli_bad_input_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    proc = subprocess.run(
        [GRIDFACTOR, "evaluate", "--workers", "1", "--out", str(tmp_path / "o"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]


def test_cli_evaluate_prints_table(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            GRIDFACTOR,
            "evaluate",
            "--env",
            ENV,
            "--agents",
            "do-nothing",
            "--n-episodes",
            "1",
            "--episode-steps",
            "20",
            "--workers",
            "1",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "do-nothing" in proc.stdout and "ms per decision" in proc.stdout
    config = json.loads((tmp_path / "o" / "config.json").read_text())
    assert config["env_name"] == ENV and config["episode_steps"] == 20


VARIANTS = ("distributed-local", "distributed-global", "centralized")


# Not marked slow: CI runs the smoke preset (about 5 min on 2 cores).
def test_compare_smoke_end_to_end(tmp_path: Path) -> None:
    """factorize -> demonstrate -> imitation + PPO x3 -> evaluate -> report.md; the imitated
    distributed agent outlives do-nothing on the held-out days; a re-run skips every stage."""
    out = tmp_path / "cmp"
    cmd = [GRIDFACTOR, "compare", "--preset", "smoke", "--workers", "2", "--out", str(out)]
    cmd += ["--guard", "2"]  # each variant also with a guard of 2 (the pure policy stays)
    cmd += ["--danger", "0.95"]  # the trigger: labels, agents and experts act later
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (out / "report.md").read_text()
    for section in ("## Factorization", "## Imitation", "## Learning curves", "## Results on"):
        assert section in report
    assert "factorize/grid_clusters.png" in report
    assert (out / "factorize" / "grid_clusters.png").is_file()
    table = pd.read_csv(out / "evaluate" / "results.csv").set_index("agent")
    assert set(table.index) == {
        "do-nothing",
        "reconnect",
        "expert",
        "expert-zone",
        *(f"{v}{g}{c}" for v in VARIANTS for g in ("", "+guard2") for c in ("", " [imitation]")),
    }
    # the result that matters, as an assertion: imitation beats doing nothing
    episodes = pd.read_csv(out / "evaluate" / "episodes.csv")
    survived = episodes.pivot(index="episode", columns="agent", values="survived")
    assert survived["distributed-local"].sum() > survived["do-nothing"].sum()
    # learned agents decide far faster than the expert on the steps that need a decision
    assert table.loc["distributed-local", "decision_ms"] * 20 < table.loc["expert", "decision_ms"]
    # demonstrations never touch the held-out chronics (chronic 1 of rte_case14_realistic)
    demos = read_parquet(out / "demonstrate" / "demonstrations.parquet")
    assert set(demos["chronic"]) == {0} and len(demos) > 50
    # every stage took the trigger: decisions only at rho >= 0.95, agents and experts alike
    dagger_demos = read_parquet(out / "dagger1" / "demonstrations.parquet")
    assert demos["max_rho"].min() >= 0.95 and dagger_demos["max_rho"].min() >= 0.95
    assert json.loads((out / "config.json").read_text())["budget"]["danger"] == 0.95
    assert json.loads((out / "evaluate" / "config.json").read_text())["danger"] == 0.95
    assert set(pd.read_csv(out / "evaluate" / "scenarios.csv")["chronic"]) == {1}
    for variant in ("distributed-local", "distributed-global", "centralized"):
        sets = json.loads((out / variant / "action_sets.json").read_text())["agents"]
        assert all(keys[0] == [-1, -1] for keys in sets.values())  # do nothing kept first
        imitation = json.loads((out / variant / "imitation.json").read_text())
        assert all(r["n_train"] > 0 and np.isfinite(r["final_loss"]) for r in imitation["agents"])
        # each clone agrees with the expert on its training decisions more than a uniform guess
        assert all(
            r["train_top1"] > 1 / r["n_actions"] or r["n_actions"] == 1 for r in imitation["agents"]
        )
        metrics = pd.read_csv(out / variant / "metrics.csv")
        losses = metrics.filter(like="policy_loss/").to_numpy()
        assert np.isfinite(losses[~np.isnan(losses)]).all() and (~np.isnan(losses)).any()
    stages = json.loads((out / "stages.json").read_text())
    assert all(s["done"] for s in stages.values()) and len(stages) == 8
    # a DAgger round: the clone played, the expert labelled, every variant learned from both
    dagger = json.loads((out / "dagger1" / "config.json").read_text())
    assert dagger["policy"].endswith("dagger1-policy")
    assert (out / "evaluate" / "plots" / "learning_curves.png").is_file()
    # every variant had the same demonstrations, budget and seed
    configs = [json.loads((out / v / "config.json").read_text()) for v in VARIANTS]
    assert len({(c["timesteps"], c["seed"], tuple(c["demonstrations"])) for c in configs}) == 1
    assert len(configs[0]["demonstrations"]) == 2 and configs[0]["anchor"] == 1.0
    assert {c["danger"] for c in configs} == {0.95}
    kl = pd.read_csv(out / "distributed-local" / "metrics.csv").filter(like="anchor_kl/")
    assert kl.notna().to_numpy().any()  # PPO ran anchored to the imitation
    # each variant also at its imitation checkpoint: PPO against its clone, paired
    paired = pd.read_csv(out / "evaluate" / "paired.csv")
    vs_clone = paired[paired["reference"] == paired["agent"] + " [imitation]"]
    assert set(vs_clone["agent"]) == {f"{v}{g}" for v in VARIANTS for g in ("", "+guard2")}
    assert (vs_clone["episodes"] == 4).all()
    # distributed vs centralized at the same checkpoint, episode by episode
    to_central = paired["reference"].str.startswith("centralized")
    vs_central = paired[to_central & ~paired["agent"].str.startswith("centralized")]
    assert dict(zip(vs_central["agent"], vs_central["reference"], strict=True)) == {
        f"distributed-{obs}{guard}{c}": f"centralized{guard}{c}"
        for obs in ("local", "global")
        for guard in ("", "+guard2")
        for c in ("", " [imitation]")
    }
    both = episodes.pivot(index="episode", columns="agent", values="survived")
    expected = (both["distributed-global"] - both["centralized"]).mean()
    row = vs_central.set_index("agent").loc["distributed-global"]
    assert row["mean_difference"] == pytest.approx(expected)
    # the headline measures each learned agent against the best expert
    best = table.loc[[a for a in table.index if a.startswith("expert")], "survived_mean"].idxmax()
    assert "of the best expert's mean steps survived" in report
    assert f" vs {best} " in report
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("skipped") == 8
    assert (out / "report.md").read_text() == report
    # the zones proposing, each its own action, on the same held-out days: a row per
    # distributed run (the centralized run has one zone: nothing to coordinate)
    proposed = out / "propose"
    cmd = [GRIDFACTOR, "evaluate", "--run", str(out / "distributed-local")]
    cmd += ["--run", str(out / "centralized"), "--coordinator", "capa,propose"]
    cmd += ["--agents", "do-nothing", "--n-episodes", "3", "--workers", "2", "--out", str(proposed)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = pd.read_csv(proposed / "results.csv").set_index("agent")
    assert list(rows.index) == [
        "do-nothing",
        "distributed-local",
        "distributed-local+propose",
        "centralized",
    ]
    assert (rows["illegal_mean"] == 0).all()  # nothing grid2op refused
    same = pd.read_csv(proposed / "episodes.csv").pivot(
        index="episode", columns="agent", values="survived"
    )
    assert same["distributed-local"].equals(survived["distributed-local"].iloc[:3])
    # the runs' reconnection rule overridden and a wait confidence: a row per (rule,
    # confidence); "always" is the run's own, confidence 0 the greedy policy
    rules = out / "reconnect"
    cmd = [GRIDFACTOR, "evaluate", "--run", str(out / "distributed-local"), "--agents", ""]
    cmd += ["--reconnect", "always,never", "--wait-confidence", "0,0.9"]
    cmd += ["--n-episodes", "3", "--workers", "1"]
    proc = subprocess.run([*cmd, "--out", str(rules)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    by_rule = pd.read_csv(rules / "episodes.csv").pivot(
        index="episode", columns="agent", values="survived"
    )
    assert list(by_rule.columns) == [
        "distributed-local+reconnect-always",
        "distributed-local+reconnect-always+wait0.9",
        "distributed-local+reconnect-never",
        "distributed-local+reconnect-never+wait0.9",
    ]
    assert json.loads((rules / "config.json").read_text())["waits"] == [0.0, 0.9]
    assert by_rule["distributed-local+reconnect-always"].equals(same["distributed-local"])
