"""gridfactor agents inside grid2op's own tools: BaseAgent adapter, grid2op.Runner, the L2RPN
scorers of grid2op.utils, EpisodeData folders (grid2viz) and the submission export.

Real Grid2Op test envs, real grid2op Runner and scorers, a real (tiny) RLlib training run.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gridfactor
from gridfactor.agents.grid2op_agent import GridfactorAgent, load_agent
from gridfactor.demonstrate.demonstrations import DEMONSTRATION_VERSION
from gridfactor.envs.grid2op_env import env_data_dir, make_env
from gridfactor.errors import UserError
from gridfactor.evaluate import EvalConfig, evaluate
from gridfactor.parallel import ParallelConfig
from gridfactor.runs import read_parquet
from tests.helpers import assert_user_error, case14_factorization, run_cli

ENV5 = "rte_case5_example"
ENV14 = "rte_case14_realistic"


def test_load_agent_baselines_and_bad_names() -> None:
    from grid2op.Agent import BaseAgent

    assert gridfactor.load_agent is load_agent
    env = make_env(ENV5)
    for name in ("do-nothing", "reconnect", "expert", "random"):
        agent = load_agent(name, env)
        assert isinstance(agent, BaseAgent) and isinstance(agent, GridfactorAgent)
        obs = env.reset(seed=0, options={"time serie id": 0})
        assert isinstance(agent.act(obs, 0.0, False), env.action_space.actionClass)
    with pytest.raises(UserError, match="not a baseline"):
        load_agent("nobody", env)
    with pytest.raises(UserError, match="expert-zone needs zones"):
        load_agent("expert-zone", env)
    env.close()


@pytest.mark.slow  # CI budget: the long variant of a path CI runs elsewhere
def test_evaluate_score_and_episodes(tmp_path: Path) -> None:
    """--score l2rpn2020 --save-episodes on two scenarios of one chronic: grid2op's Runner
    (the agents as BaseAgents, inside the scorer) plays exactly what gridfactor's loop played,
    the scorer rates do-nothing 0 on each scenario, every episode has its own EpisodeData
    folder, and nothing is written into the env's folder (site-packages)."""
    from grid2op.Episode import EpisodeData

    env_dir = env_data_dir(ENV5)
    before = sorted(os.listdir(env_dir))
    out = tmp_path / "ev"
    agents = ["do-nothing", "reconnect", "random", "expert"]
    args = ["--env", ENV5, "--agents", ",".join(agents), "--chronics", "19"]
    args += ["--n-episodes", "2", "--episode-steps", "20", "--workers", "1"]
    proc = run_cli("evaluate", *args, "--score", "l2rpn2020", "--save-episodes", "--out", str(out))
    assert "L2RPN score" in proc.stdout and "grid2viz --agents_path" in proc.stdout
    assert sorted(os.listdir(env_dir)) == before

    episodes = pd.read_csv(out / "episodes.csv")
    assert len(episodes) == 8 and (episodes["scorer"] == "l2rpn2020").all()
    # same scenario, same seed: grid2op's Runner counts a game over's step, gridfactor does not
    expected = episodes["survived"] + (~episodes["completed"]).astype(int)
    assert (episodes["grid2op_steps"] == expected).all(), episodes
    do_nothing = episodes[episodes["agent"] == "do-nothing"]
    assert np.allclose(do_nothing["score"], 0.0)  # the scorer's 0 is do-nothing's own run
    assert episodes["score"].between(-100, 100).all()
    table = pd.read_csv(out / "results.csv").set_index("agent")
    assert np.isclose(table.loc["do-nothing", "score"], 0.0)
    assert "ScoreL2RPN2020" in (out / "results.md").read_text()

    starts = pd.read_csv(out / "scenarios.csv")["start"]
    assert starts.nunique() == 2  # two scenarios of chronic 19, kept apart below
    for agent in agents:
        folder = out / "grid2op" / agent
        assert (folder / "dict_action_space.json").is_file()
        for _, row in episodes[episodes["agent"] == agent].iterrows():
            name = f"{int(row['episode']):04d}_19"
            data = EpisodeData.from_disk(str(folder), name)
            assert int(data.meta["nb_timestep_played"]) == row["grid2op_steps"]
            start = int(starts[int(row["episode"])])
            assert int(data.meta["chronics_max_timestep"]) == start + 20
    assert not list((out / "grid2op" / "_scratch").glob("*"))
    for episode in (0, 1):
        stats = out / "scores" / "l2rpn2020" / f"{episode:04d}" / env_dir.name
        assert (stats / "_statistics_l2rpn_dn" / "metadata.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--score", "icaps2021"], "choose among l2rpn2020, wcci2022"),
        (["--score", "l2rpn2099"], "unknown scorer 'l2rpn2099'"),
    ],
)
def test_evaluate_bad_scorer(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "o"
    proc = run_cli(
        "evaluate", "--env", ENV5, "--agents", "do-nothing", *args, "--out", str(out), check=False
    )
    assert_user_error(proc, message)
    assert not out.exists()


def test_export_bad_run(tmp_path: Path) -> None:
    proc = run_cli("export", str(tmp_path / "none"), "--out", str(tmp_path / "s"), check=False)
    assert_user_error(proc, "not a training run")
    assert not (tmp_path / "s").exists()


# --------------------------------------------------------------------------------------------
# a trained run, exported and run by grid2op's Runner


def test_demonstrate_command_records_the_zone_expert_on_training_chronics(tmp_path):
    """`gridfactor demonstrate` end to end: decisions recorded on the training chronic only
    (chronic 0 of rte_case14_realistic; 1 is held out), each with its zone and a choice
    among the simulated candidates; the same command again loads them (nothing replayed)."""
    env = make_env(ENV14)
    case14_factorization(env).save(tmp_path / "factorization.json")
    env.close()
    out = tmp_path / "demos"
    args = ["demonstrate", "--factorization", str(tmp_path / "factorization.json")]
    args += ["--env", ENV14, "--episodes", "2", "--episode-steps", "60", "--workers", "1"]
    run_cli(*args, "--out", str(out), timeout=900)
    frame = read_parquet(out / "demonstrations.parquet")
    assert len(frame) > 0 and set(frame["chronic"]) == {0}
    # every zone labelled at every decision, exactly one of them deciding
    per_decision = frame.groupby(["episode", "decision"])
    zones = frame["agent"].nunique()
    assert (
        zones > 1
        and (per_decision["agent"].nunique() == zones).all()
        and (per_decision["decider"].sum() == 1).all()
    )
    others = frame[~frame["decider"]]
    assert (others["played_sub"] == -1).all() and (others["label_sub"] >= 0).any()
    for rhos, outcomes in zip(frame["sim_max_rho"], frame["sim_outcome"], strict=True):
        assert np.array_equal(np.isinf(rhos), outcomes != 0)  # inf exactly when infeasible
    shares = json.loads((out / "demonstrations.json").read_text())["candidate_outcomes"]
    assert set(shares) == {"all", *frame["agent"]}
    assert sum(shares["all"].values()) == pytest.approx(1.0, abs=1e-3)
    stamp = (out / "demonstrations.parquet").stat().st_mtime_ns
    again = run_cli(*args, "--out", str(out), timeout=900)
    assert (out / "demonstrations.parquet").stat().st_mtime_ns == stamp
    assert "[demonstrate]" not in again.stderr  # (progress goes to stderr)
    # a run of the older expert (candidates with the ends of out lines) is recorded again
    sidecar = json.loads((out / "demonstrations.json").read_text())
    del sidecar["demonstration_version"]
    (out / "demonstrations.json").write_text(json.dumps(sidecar))
    (part,) = (out / "parts").iterdir()
    part.write_bytes(pickle.dumps(pickle.loads(part.read_bytes())["rows"]))  # old format
    again = run_cli(*args, "--out", str(out), timeout=900)
    assert "[demonstrate]" in again.stderr
    assert pickle.loads(part.read_bytes())["demonstration_version"] == DEMONSTRATION_VERSION


def test_dagger_round_the_policy_plays_and_the_expert_labels(zones_run, tmp_path):
    """`demonstrate --policy RUN`: the run's greedy policy plays every decision (the played
    action is its most likely one on the recorded observation, or do nothing when that one
    is cooling), the expert labels; `train` then learns from both demonstration runs."""
    from gridfactor.agents.trained import load_trained_agent

    fact = zones_run / "factorization.json"
    args = ["demonstrate", "--factorization", str(fact), "--env", ENV14, "--episodes", "2"]
    args += ["--episode-steps", "60", "--workers", "1"]
    run_cli(*args, "--out", str(tmp_path / "expert"), timeout=900)
    run_cli(*args, "--policy", str(zones_run), "--out", str(tmp_path / "dagger"), timeout=900)
    frame = read_parquet(tmp_path / "dagger" / "demonstrations.parquet")
    decisions = frame[frame["decider"]]
    policy = load_trained_agent(zones_run)
    env = make_env(ENV14)
    frame_of_policy = policy.bind(env)  # case14 has no substation cooldown: it never waits
    for row in decisions.itertuples():
        best = int(np.argmax(policy.logits(row.agent, row.obs_local)))
        expected = frame_of_policy.by_id[row.agent].action_keys[best]
        assert (row.played_sub, row.played_index) == tuple(expected)
    env.close()
    # the policy, not the expert: it disagrees with the labels somewhere
    disagree = (decisions["played_sub"] != decisions["label_sub"]) | (
        decisions["played_index"] != decisions["label_index"]
    )
    assert disagree.any() and len(decisions) > 5
    proc = run_cli(
        *args, "--policy", str(tmp_path / "expert"), "--out", str(tmp_path / "x"), check=False
    )
    assert_user_error(proc, "is not a training run")
    run = tmp_path / "run"
    train_both = ("train", "--factorization", str(fact), "--env", ENV14, "--timesteps", "0")
    for name in ("expert", "dagger"):
        train_both += ("--demonstrations", str(tmp_path / name))
    run_cli(
        *train_both,
        *("--imitation-epochs", "2", "--avoid-game-over", "1.0", "--reconnect", "never"),
        *("--out", str(run)),
        timeout=900,
    )
    imitation = json.loads((run / "imitation.json").read_text())
    trained = sum(r["n_train"] + r["n_held_out"] + r["dropped"] for r in imitation["agents"])
    rows = pd.concat(
        [read_parquet(tmp_path / d / "demonstrations.parquet") for d in ("expert", "dagger")]
    )
    both = len(rows)
    assert trained == both
    assert all("top1_game_over" in r for r in imitation["agents"])
    # --label-rows deciding: each zone clone learns from the rows where its zone decided only
    deciding = tmp_path / "deciding"
    run_cli(
        *train_both,
        *("--imitation-epochs", "2", "--label-rows", "deciding", "--out", str(deciding)),
        timeout=900,
    )
    per_zone = rows[rows["decider"]].groupby("agent").size()
    learned = json.loads((deciding / "imitation.json").read_text())["agents"]
    assert {r["agent"]: r["n_train"] + r["n_held_out"] + r["dropped"] for r in learned} == {
        r["agent"]: int(per_zone.get(r["agent"], 0)) for r in learned
    }
    assert per_zone.sum() < both  # fewer rows than with every zone's labels
    assert json.loads((deciding / "config.json").read_text())["label_rows"] == "deciding"
    proc = run_cli(
        *("train", "--centralized", "--env", ENV14, "--timesteps", "0"),
        *("--demonstrations", str(tmp_path / "expert"), "--label-rows", "deciding"),
        *("--out", str(tmp_path / "bad")),
        check=False,
    )
    assert_user_error(proc, "--label-rows is for zone agents")
    # the settings reach the run and the agent loaded from it
    config = json.loads((run / "config.json").read_text())
    assert (config["avoid_game_over"], config["reconnect"]) == (1.0, "never")
    assert (load_trained_agent(run).reconnect, policy.reconnect) == ("never", "always")
    assert load_trained_agent(run, reconnect="checked").reconnect == "checked"
    # every action learned: the pure choice stays among the expert's covered choices, a
    # guard's top k ranks them all
    full = tmp_path / "full"
    run_cli(
        *("train", "--factorization", str(fact), "--env", ENV14, "--timesteps", "0"),
        *("--demonstrations", str(tmp_path / "expert"), "--full-action-set"),
        *("--coverage", "0.5", "--imitation-epochs", "2", "--out", str(full)),
        timeout=900,
    )
    sets = json.loads((full / "action_sets.json").read_text())
    assert {a: len(k) for a, k in sets["agents"].items()} == sets["n_actions_full"]
    agent, env = load_trained_agent(full), make_env(ENV14)
    frame_of_full = agent.bind(env)
    obs, masked = env.reset(), 0
    for _ in range(20):
        for zone in frame_of_full.agents:
            greedy = {tuple(k) for k in sets["greedy"][zone.agent_id]}
            (pure,) = agent.proposals(frame_of_full, zone.agent_id, obs, 1) or [0]
            assert tuple(zone.action_keys[pure]) in greedy
            ranked = agent.proposals(frame_of_full, zone.agent_id, obs, zone.n_actions)
            assert {tuple(zone.action_keys[i]) for i in ranked} - greedy
            best = int(
                np.argmax(agent.logits(zone.agent_id, frame_of_full.encode(zone.agent_id, obs)))
            )
            masked += tuple(zone.action_keys[best]) not in greedy
        obs, *_ = env.step(env.action_space({}))
    env.close()
    assert masked > 0  # the unmasked choice left the greedy set somewhere


def test_self_distillation_round_the_guard_plays_and_labels(zones_run, tmp_path):
    """`demonstrate --policy RUN --guard 2`: no expert; at every decision each zone's label
    is the best simulated of do nothing and the policy's two most likely actions (the only
    candidates simulated), and the decider's label is what was played."""
    from gridfactor.agents.trained import load_trained_agent

    fact = zones_run / "factorization.json"
    args = ["demonstrate", "--factorization", str(fact), "--env", ENV14, "--episodes", "2"]
    args += ["--episode-steps", "60", "--workers", "1", "--policy", str(zones_run)]
    out = tmp_path / "guard2"
    proc = run_cli(*args, "--guard", "2", "--out", str(out), timeout=900)
    assert "the guard of 2 acts in" in proc.stdout
    frame = read_parquet(out / "demonstrations.parquet")
    policy = load_trained_agent(zones_run)
    env = make_env(ENV14)
    frame_of_policy = policy.bind(env)
    acted = 0
    for row in frame.itertuples():
        zone = frame_of_policy.by_id[row.agent]
        logits = policy.logits(row.agent, row.obs_local)
        top2 = [i for i in np.argsort(-logits, kind="stable") if i != 0][:2]
        allowed = {(-1, -1), *(tuple(zone.action_keys[i]) for i in top2)}
        label = (row.label_sub, row.label_index)
        assert label in allowed
        simulated = np.flatnonzero(row.sim_outcome >= 0)
        assert 1 <= len(simulated) <= 3 and np.isinf(np.delete(row.sim_max_rho, simulated)).all()
        if row.decider:
            assert (row.played_sub, row.played_index) == label
            acted += row.label_sub >= 0
    env.close()
    assert acted > 0 and frame["decider"].sum() > 5  # the guard acts, not only waits
    config = json.loads((out / "config.json").read_text())
    assert config["guard"] == 2 and config["policy"] == str(zones_run)
    proc = run_cli(*args[:-2], "--guard", "2", "--out", str(tmp_path / "x"), check=False)
    assert_user_error(proc, "--guard labels with a policy's guarded agent")


def kl_divergence(p_logits: np.ndarray, q_logits: np.ndarray) -> float:
    p = np.exp(p_logits - p_logits.max()) / np.exp(p_logits - p_logits.max()).sum()
    q = np.exp(q_logits - q_logits.max()) / np.exp(q_logits - q_logits.max()).sum()
    return float((p * (np.log(p) - np.log(q))).sum())


def test_ppo_anchored_to_the_imitation_stays_near_it(tmp_path):
    """`train --anchor`: with a strong KL anchor to the cloned policies, PPO at a high
    learning rate stays near the clone on the demonstrated states; without it the same PPO
    moves at least 10 times as far (the anchor is what holds it)."""
    from gridfactor.agents.trained import load_trained_agent

    env = make_env(ENV14)
    case14_factorization(env).save(tmp_path / "factorization.json")
    env.close()
    fact = ["--factorization", str(tmp_path / "factorization.json"), "--env", ENV14]
    demos = tmp_path / "demos"
    run_cli(
        "demonstrate",
        *fact,
        "--episodes",
        "4",
        "--episode-steps",
        "100",
        "--workers",
        "1",
        "--out",
        str(demos),
        timeout=900,
    )
    frame = read_parquet(demos / "demonstrations.parquet")
    drift = {}  # mean KL(clone || tuned policy) over the demonstrated states
    for anchor in ("0", "50"):
        run = tmp_path / f"anchor{anchor}"
        run_cli(
            "train",
            *fact,
            "--demonstrations",
            str(demos),
            "--timesteps",
            "600",
            *("--train-batch-size", "200", "--minibatch-size", "50", "--num-epochs", "4"),
            *("--lr", "3e-3", "--imitation-epochs", "20", "--anchor", anchor, "--out", str(run)),
            timeout=900,
        )
        clone, tuned = load_trained_agent(run, "imitation"), load_trained_agent(run)
        drift[anchor] = np.mean(
            [
                kl_divergence(
                    clone.logits(r.agent, r.obs_local), tuned.logits(r.agent, r.obs_local)
                )
                for r in frame.itertuples()
            ]
        )
        kl = pd.read_csv(run / "metrics.csv").filter(like="anchor_kl/")
        assert kl.notna().to_numpy().all() == (anchor != "0")  # logged when anchored
    print(drift)
    assert drift["50"] * 10 < drift["0"], drift


# Fresh interpreter: the submission folder alone (the run directory is moved away), played
# by grid2op's Runner on gridfactor's scenarios (chronic, start step, length, seed).
RUNNER_SCRIPT = """
import importlib.util, json, sys, warnings
warnings.filterwarnings("ignore")
import pandas as pd
from grid2op.Runner import Runner
from gridfactor.envs.grid2op_env import make_env

folder, scenarios = sys.argv[1], pd.read_csv(sys.argv[2])
spec = importlib.util.spec_from_file_location("submission", folder + "/__init__.py")
submission = importlib.util.module_from_spec(spec)
spec.loader.exec_module(submission)
env = make_env("rte_case14_realistic")
agent = submission.make_agent(env, folder)
runner = Runner(**env.get_params_for_runner(), agentClass=None, agentInstance=agent)
result = runner.run(
    nb_episode=len(scenarios),
    max_iter=int(scenarios["length"].iloc[0]),
    env_seeds=[int(s) for s in scenarios["seed"]],
    agent_seeds=[int(s) for s in scenarios["seed"]],
    reset_options=[{"time serie id": int(c), "init ts": int(s)}
                   for c, s in zip(scenarios["chronic"], scenarios["start"])],
)
print(json.dumps({"steps": [int(r[3]) for r in result], "ray": "ray" in sys.modules}))
"""


def test_export_runs_in_grid2op_runner_like_evaluation(zones_run: Path, tmp_path: Path) -> None:
    """The exported agent, run by grid2op's Runner in a fresh interpreter without Ray and
    without the run directory, survives exactly as long as gridfactor's evaluation of the
    run on every scenario; its numpy policies give the checkpoint's RLModules' logits."""
    from gridfactor.agents.exported import load_exported_agent
    from gridfactor.agents.trained import load_trained_agent

    sub = tmp_path / "submission"
    run_cli("export", str(zones_run), "--out", str(sub))
    assert (sub / "__init__.py").is_file() and (sub / "policies" / "cluster_0.npz").is_file()
    # the wait confidence travels with the export (P = 1: act at every unsafe decision)
    sub_wait = tmp_path / "submission-wait"
    run_cli("export", str(zones_run), "--out", str(sub_wait), "--wait-confidence", "1")
    ev = evaluate(
        EvalConfig(
            runs=(str(zones_run),),
            submissions=(str(sub), str(sub_wait)),  # exports, loaded as any L2RPN submission
            waits=(0.0, 1.0),
            agents=("do-nothing",),
            n_episodes=3,
            episode_steps=288,
            out=str(tmp_path / "ev"),
            parallel=ParallelConfig(workers=1),
            progress=False,
        )
    )
    episodes = pd.read_csv(ev / "episodes.csv")
    trained = episodes[episodes["agent"] == "distributed-local"].sort_values("episode")
    assert trained["actions"].sum() > 0  # the policy acted: its survival is its own
    exported = episodes[episodes["agent"] == "submission"].sort_values("episode")
    same = ["survived", "completed", "actions", "illegal", "distinct_actions"]
    assert exported[same].reset_index(drop=True).equals(trained[same].reset_index(drop=True))
    # (what P changes in a decision: tests/integration/test_agents.py)
    assert load_exported_agent(sub_wait).wait_confidence == 1.0
    waiting = episodes[episodes["agent"] == "distributed-local+wait1"].sort_values("episode")
    exported = episodes[episodes["agent"] == "submission-wait"].sort_values("episode")
    assert exported[same].reset_index(drop=True).equals(waiting[same].reset_index(drop=True))

    trained_agent = load_trained_agent(zones_run)
    exported_agent = load_exported_agent(sub)
    rng = np.random.default_rng(0)
    for aid, policy in trained_agent.policies.items():
        features = rng.uniform(0, 2, policy.n_inputs).astype(np.float32)
        assert np.array_equal(
            trained_agent.logits(aid, features), exported_agent.logits(aid, features)
        )

    away = zones_run.with_name("moved-away")
    zones_run.rename(away)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", RUNNER_SCRIPT, str(sub), str(ev / "scenarios.csv")],
            capture_output=True,
            text=True,
            timeout=1200,
        )
    finally:
        away.rename(zones_run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not result["ray"]
    expected = trained["survived"] + (~trained["completed"]).astype(int)
    assert result["steps"] == [int(x) for x in expected], (result, trained)


def softmax(logits: np.ndarray) -> np.ndarray:
    p = np.exp(logits - logits.max())
    return p / p.sum()


def test_ensemble_of_runs_with_other_action_sets(zones_run: Path, tmp_path: Path) -> None:
    """`gridfactor ensemble`: a PPO run knowing every action and a clone knowing the
    demonstrated ones decide with their mean probability, matched action by action; the
    ensemble directory is evaluated (legal actions), exported and loaded without its members;
    mixed settings, one run, an ensemble of ensembles and a checkpoint are one-line errors."""
    from gridfactor.agents.exported import load_exported_agent
    from gridfactor.agents.trained import load_trained_agent

    fact = zones_run / "factorization.json"
    demos, clone, ens = tmp_path / "demos", tmp_path / "clone", tmp_path / "ens"
    run_cli(
        *("demonstrate", "--factorization", str(fact), "--env", ENV14, "--episodes", "2"),
        *("--episode-steps", "60", "--workers", "1", "--out", str(demos)),
        timeout=900,
    )
    run_cli(
        *("train", "--factorization", str(fact), "--env", ENV14, "--timesteps", "0"),
        *("--demonstrations", str(demos), "--imitation-epochs", "2", "--seed", "1"),
        *("--out", str(clone)),
        timeout=900,
    )
    run_cli("ensemble", "--run", str(zones_run), "--run", str(clone), "--out", str(ens))
    members = [load_trained_agent(zones_run), load_trained_agent(clone)]
    ensemble = load_trained_agent(ens)
    env = make_env(ENV14)
    frames = [m.bind(env) for m in members]
    ens_frame = ensemble.bind(env)
    sizes = [len(f.agents[0].action_keys) for f in frames]
    assert sizes[1] < sizes[0]  # the clone knows fewer actions than the PPO run
    obs = env.reset()
    for _ in range(10):
        for zone in ens_frame.agents:
            aid = zone.agent_id
            features = ens_frame.encode(aid, obs)
            expected = np.zeros(zone.n_actions)
            for member, frame in zip(members, frames, strict=True):
                p = softmax(member.logits(aid, frame.encode(aid, obs)).astype(np.float64))
                keys = frame.by_id[aid].action_keys
                for key, prob in zip(keys, p, strict=True):
                    expected[zone.action_keys.index(tuple(key))] += prob / 2
            got = np.exp(ensemble.logits(aid, features).astype(np.float64))
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)
        obs, *_ = env.step(env.action_space({}))
    env.close()

    ev = tmp_path / "ev"
    run_cli(
        *("evaluate", "--run", str(ens), "--agents", "do-nothing", "--n-episodes", "2"),
        *("--episode-steps", "100", "--workers", "1", "--out", str(ev)),
        timeout=900,
    )
    episodes = pd.read_csv(ev / "episodes.csv")
    played = episodes[episodes["agent"] == "distributed-local"]
    assert played["actions"].sum() > 0 and played["illegal"].sum() == 0
    run_cli(  # a DAgger round with the ensemble playing
        *("demonstrate", "--factorization", str(fact), "--env", ENV14, "--episodes", "1"),
        *("--episode-steps", "60", "--workers", "1", "--policy", str(ens)),
        *("--out", str(tmp_path / "dagger")),
        timeout=900,
    )
    assert len(read_parquet(tmp_path / "dagger" / "demonstrations.parquet")) > 0
    sub = tmp_path / "submission"
    run_cli("export", str(ens), "--out", str(sub))
    exported = load_exported_agent(sub)
    rng = np.random.default_rng(0)
    for aid, policy in ensemble.policies.items():
        features = rng.uniform(0, 2, policy.n_inputs).astype(np.float32)
        assert np.array_equal(ensemble.logits(aid, features), exported.logits(aid, features))

    config = json.loads((clone / "config.json").read_text())
    other = tmp_path / "other"
    os.rename(clone, other)  # the same run trained with another reconnection rule
    (other / "config.json").write_text(json.dumps({**config, "reconnect": "never"}))
    bad = [
        (["--run", str(zones_run), "--run", str(other)], "reconnect='never'"),
        (["--run", str(zones_run)], "at least 2 runs"),
        (["--run", str(ens), "--run", str(zones_run)], "is an ensemble already"),
        (["--run", str(tmp_path / "none"), "--run", str(zones_run)], "not a training run"),
    ]
    for args, message in bad:
        proc = run_cli("ensemble", *args, "--out", str(tmp_path / "e2"), check=False)
        assert_user_error(proc, message)
        assert not (tmp_path / "e2").exists()
    with pytest.raises(UserError, match="has no checkpoints"):
        load_trained_agent(ens, "imitation")


def test_replay_failure_replays_the_evaluated_episodes(zones_run: Path, tmp_path: Path) -> None:
    """scripts/replay_failure.py plays an evaluated episode again as the evaluation did:
    the same end (completed, or a game over at the step the evaluation's survival gives)
    and one line per decision the evaluation counted, each with its played action and
    simulated outcome; an episode the evaluation did not play is a one-line error."""
    out = tmp_path / "eval"
    run_cli(
        *("evaluate", "--run", str(zones_run), "--agents", "", "--n-episodes", "2"),
        *("--episode-steps", "600", "--workers", "1", "--out", str(out)),
    )
    episodes = pd.read_csv(out / "episodes.csv")
    assert episodes["decisions"].sum() > 0  # something to replay
    script = Path(__file__).resolve().parents[2] / "scripts" / "replay_failure.py"

    def replay(episode: int, *flags: str) -> subprocess.CompletedProcess:
        args = [str(out), str(zones_run), "--episode", str(episode), "--last", "10000", *flags]
        return subprocess.run(
            [sys.executable, str(script), *args], capture_output=True, text=True, timeout=600
        )

    heads = {}
    for row in episodes.itertuples():
        proc = replay(row.episode)
        assert proc.returncode == 0, proc.stderr
        head, *lines = proc.stdout.strip().splitlines()
        heads[row.episode] = head
        if row.completed:
            assert head.endswith("completed"), head
        else:
            assert f"game over at step {row.start + row.survived}" in head, head
        assert len(lines) == row.decisions
        assert all("played #" in line and "simulated: " in line for line in lines)
    # simulating without overflow disconnection, or the teacher's label, changes what is
    # printed, not the replay
    row = episodes.iloc[0]
    plain_head = heads[row.episode]
    proc = replay(int(row.episode), "--no-overflow-disconnection")
    assert proc.returncode == 0, proc.stderr
    head, *lines = proc.stdout.strip().splitlines()
    assert head == plain_head
    assert len(lines) == row.decisions
    assert all("overflow disconnection off" in line for line in lines if "game over" not in line)
    proc = replay(int(row.episode), "--teacher")
    assert proc.returncode == 0, proc.stderr
    head, *lines = proc.stdout.strip().splitlines()
    assert head == plain_head
    assert len(lines) == row.decisions
    # the teacher's label is the lowest simulated max rho of its zone: never above the top 3's
    for line in lines:
        top3 = re.search(r"\(simulated max rho ([^)]*)\); teacher: #\d+ .* at ([\d.inf]+);", line)
        assert top3, line
        teacher = float(top3.group(2))
        assert all(teacher <= float(r) + 1e-3 for r in top3.group(1).split(", ")), line
    proc = replay(7)
    assert proc.returncode != 0 and "no episode 7" in proc.stderr
    proc = replay(int(row.episode), "--teacher", "--no-overflow-disconnection")
    assert proc.returncode != 0 and "without --no-overflow-disconnection" in proc.stderr
