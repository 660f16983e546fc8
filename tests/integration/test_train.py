"""Real RLlib PPO training on rte_case14_realistic: tiny batches, one iteration each."""

from __future__ import annotations

import copy
import json
import warnings

import numpy as np
import pandas as pd
import pytest
from grid2op.Action import BaseAction

import gridfactor.train.run as train_run
from gridfactor.envs.split import make_split
from gridfactor.errors import UserError
from gridfactor.train.run import TrainConfig, metrics_row, train
from tests.helpers import case14_factorization, fail_after

ENV = "rte_case14_realistic"
TINY = dict(
    env_name=ENV,
    train_batch_size=100,
    minibatch_size=50,
    num_epochs=1,
    episode_steps=100,
    hidden=(32,),
    checkpoint_every=1,
)


# A hang (RLlib waiting on a dead env runner, Ray on a lost worker) fails the test instead of
# blocking CI: the slowest test here takes ~2 min on a loaded 2-core machine.
TRAIN_TIMEOUT_S = 900


@pytest.fixture(autouse=True)
def _timeout():
    with fail_after(TRAIN_TIMEOUT_S):
        yield


@pytest.fixture
def rllib_results(monkeypatch):
    """Every real ``algo.train()`` result the training loop turns into a metrics row."""
    results: list[dict] = []

    def recording(result, *args, **kwargs):
        results.append(copy.deepcopy(result))
        return metrics_row(result, *args, **kwargs)

    monkeypatch.setattr(train_run, "metrics_row", recording)
    return results


def check_metrics(run_dir, results, agents, batch):
    """metrics.csv agrees with RLlib's own counters and with the checkpoint's state."""
    metrics = pd.read_csv(run_dir / "metrics.csv")
    new = metrics.tail(len(results)).reset_index(drop=True)
    for (_, row), result in zip(new.iterrows(), results, strict=True):
        runners = result["env_runners"]
        # one decision = one RLlib env step; PPO samples exactly one batch per iteration
        assert row["decisions"] == runners["num_env_steps_sampled"] == batch
        # per agent: RLlib's agent steps (an agent waiting for its turn gets its last
        # observation when the episode ends, one agent step more than its decisions)
        steps = runners["num_agent_steps_sampled"]
        assert [row[f"decisions/{a}"] for a in agents] == [steps.get(a, 0) for a in agents]
        assert sum(steps.values()) >= row["decisions"]
        # RLlib's lifetime counter (restored from the checkpoint on resume) is our running total
        assert row["decisions_total"] == runners["num_env_steps_sampled_lifetime"]
    assert (metrics["decisions_total"] == metrics["decisions"].cumsum()).all()
    assert (metrics["grid2op_steps_total"] == metrics["grid2op_steps"].cumsum()).all()
    # the high-level rule plays the safe steps itself: many more grid2op steps than decisions
    assert (metrics["grid2op_steps"] > metrics["decisions"]).all()
    assert (metrics["episodes"] > 0).all()
    assert metrics["survival_steps_mean"].between(1, TINY["episode_steps"]).all()
    # a policy that got samples was trained: finite loss and entropy
    sampled = 0
    for aid in agents:
        got = metrics[f"decisions/{aid}"] > 0
        sampled += got.sum()
        assert np.isfinite(metrics.loc[got, [f"policy_loss/{aid}", f"entropy/{aid}"]]).all().all()
    assert sampled > 0
    last = metrics.iloc[-1]
    for state in (
        json.loads((run_dir / "checkpoints" / "latest.json").read_text()),
        json.loads((run_dir / "checkpoints" / "final" / train_run.STATE_FILE).read_text()),
    ):
        assert state["iteration"] == last["iteration"] and state["agents"] == agents
        assert state["decisions"] == last["decisions_total"]
        assert state["grid2op_steps"] == last["grid2op_steps_total"]
    return metrics


@pytest.fixture(scope="module")
def ray_session():

    from gridfactor.parallel import ParallelConfig, init_ray

    init_ray(ParallelConfig(workers=2))  # reuses the instance an earlier test started
    yield


@pytest.fixture(scope="module")
def fact_path(tmp_path_factory):
    from gridfactor.envs.grid2op_env import make_grid2op_env

    env = make_grid2op_env(ENV, cache=False)
    path = tmp_path_factory.mktemp("fact") / "factorization.json"
    case14_factorization(env).save(path)
    env.close()
    return path


def test_split():
    two = make_split(2, 0.2)
    assert two["train"]["chronics"] == [0] and two["validation"]["chronics"] == [1]
    one = make_split(1, 0.25)
    assert one["kind"] == "time" and one["train"]["start_range"] == [0.0, 0.75]
    other_fold = make_split(2, 0.2, held_out=(0,))
    assert other_fold["train"]["chronics"] == [1] and other_fold["validation"]["chronics"] == [0]
    assert make_split(5, 0.2, held_out=(3, 1))["train"]["chronics"] == [0, 2, 4]
    for bad in ((2,), (0, 1), (-1,)):
        with pytest.raises(UserError, match="leave at least one to train on"):
            make_split(2, 0.2, held_out=bad)


def test_bad_inputs(tmp_path, fact_path):
    with pytest.raises(UserError, match="timesteps"):
        train(TrainConfig(factorization_path=str(fact_path), timesteps=0, out=str(tmp_path)))
    with pytest.raises(UserError, match="not found"):
        train(TrainConfig(factorization_path=str(tmp_path / "no.json"), out=str(tmp_path)))
    with pytest.raises(UserError, match="--keep-checkpoints must be >= 0"):
        train(
            TrainConfig(factorization_path=str(fact_path), keep_checkpoints=-1, out=str(tmp_path))
        )
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema_version": 1, "clusters": []}))
    with pytest.raises(UserError, match="not a valid factorization"):
        train(TrainConfig(factorization_path=str(bad), out=str(tmp_path / "o")))
    other = json.loads(fact_path.read_text())
    other["meta"]["env_name"] = "l2rpn_case14_sandbox"
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(UserError, match="made for env"):
        train(TrainConfig(factorization_path=str(tmp_path / "other.json"), out=str(tmp_path)))
    assert not (tmp_path / "config.json").exists()  # nothing written on bad input


def test_train_distributed_resume_and_act(tmp_path, fact_path, ray_session, rllib_results):
    from gridfactor.agents.trained import load_trained_agent
    from gridfactor.envs.grid2op_env import make_grid2op_env

    out = tmp_path / "dist"
    cfg = TrainConfig(factorization_path=str(fact_path), timesteps=100, out=str(out), **TINY)
    run_dir = train(cfg)
    for name in (
        "config.json",
        "factorization.json",
        "split.json",
        "metrics.csv",
        "learning_curve.png",
    ):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "checkpoints" / "final" / "learner_group").is_dir()
    agents = ["cluster_0", "cluster_1", "cluster_2"]
    metrics = check_metrics(run_dir, rllib_results, agents, TINY["train_batch_size"])
    assert list(metrics["iteration"]) == [1]
    assert list(run_dir.glob("tb/events.*"))

    # a missing RLlib counter is an error, not a budget that never advances
    result = copy.deepcopy(rllib_results[0])
    totals = {"decisions": 0.0, "grid2op_steps": 0.0, "time_s": 0.0}
    assert metrics_row(result, 1, agents, 1.0, dict(totals))["decisions"] == 100
    del result["env_runners"]["num_env_steps_sampled"]
    with pytest.raises(RuntimeError, match="no env_runners/num_env_steps_sampled"):
        metrics_row(result, 1, agents, 1.0, dict(totals))
    rllib_results.clear()

    # resume restores the weights: re-run at the same budget (no training left), the final
    # checkpoint then holds the restored weights, whose logits equal the original ones
    features = np.random.default_rng(0).uniform(0, 1, (5, 200)).astype(np.float32)

    def logits(agent):
        return {
            aid: np.stack([agent.logits(aid, f[: policy.n_inputs]) for f in features])
            for aid, policy in agent.policies.items()
        }

    before = logits(load_trained_agent(run_dir))
    train(TrainConfig(**{**cfg.__dict__, "resume": True}))
    after = logits(load_trained_agent(run_dir))
    assert before.keys() == after.keys()
    for aid in before:
        np.testing.assert_array_equal(before[aid], after[aid])
    assert rllib_results == []  # nothing was trained again
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / "metrics.csv"), metrics)

    # resume continues from the checkpoint: one more iteration to the larger budget
    assert (run_dir / "checkpoints" / "iter_000001").is_dir()
    cfg2 = TrainConfig(
        factorization_path=str(fact_path),
        timesteps=200,
        out=str(out),
        resume=True,
        keep_checkpoints=1,  # an execution setting: the same run
        **TINY,
    )
    train(cfg2)
    assert len(rllib_results) == 1  # one iteration, from the restored counters
    periodic = sorted(p.name for p in (run_dir / "checkpoints").glob("iter_*"))
    assert periodic == ["iter_000002"]  # the newest one kept
    resumed = check_metrics(run_dir, rllib_results, agents, TINY["train_batch_size"])
    assert list(resumed["iteration"]) == [1, 2]
    pd.testing.assert_frame_equal(resumed.iloc[:1], metrics)  # the first row kept as it was
    # 0 keeps every periodic checkpoint, the final save included
    train(TrainConfig(**{**cfg2.__dict__, "timesteps": 500, "keep_checkpoints": 0}))
    periodic = sorted(p.name for p in (run_dir / "checkpoints").glob("iter_*"))
    assert periodic == [f"iter_00000{i}" for i in (2, 3, 4, 5)]
    rllib_results.clear()

    # another factorization cannot resume this run
    other = json.loads(fact_path.read_text())
    other["clusters"] = other["clusters"][::-1]
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(UserError, match="another factorization"):
        train(
            TrainConfig(
                factorization_path=str(tmp_path / "other.json"),
                timesteps=200,
                out=str(out),
                resume=True,
                **TINY,
            )
        )

    agent = load_trained_agent(run_dir)
    assert agent.name == "distributed-local" and agent.env_name == ENV and agent.danger == 0.9
    assert len(agent.factorization.clusters) == 3
    env = make_grid2op_env(ENV, cache=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs = env.reset(seed=0, options={"time serie id": 1})
        for _ in range(30):
            action = agent.act(obs, env)
            assert isinstance(action, BaseAction)
            obs, _, done, _ = env.step(action)
            if done:
                break
        # an unsafe grid: the CAPA-chosen cluster's greedy action is returned
        obs.rho[:] = 0.1
        obs.rho[7] = 1.1
        aid, index = agent.choose(obs, env)
        by_id = agent.bind(env).by_id
        assert aid is not None and 0 <= index < by_id[aid].n_actions
        action = agent.act(obs, env)
        assert action == by_id[aid].actions[index]
        obs.rho[:] = 0.1
        assert agent.act(obs, env) == env.action_space({})
    env.close()


def test_train_centralized(tmp_path, ray_session, rllib_results):
    from gridfactor.agents.trained import load_trained_agent

    run_dir = train(TrainConfig(centralized=True, timesteps=100, out=str(tmp_path), **TINY))
    metrics = check_metrics(run_dir, rllib_results, ["cluster_0"], TINY["train_batch_size"])
    assert len(metrics) == 1
    agent = load_trained_agent(run_dir)
    assert agent.name == "centralized"
    assert list(agent.policies) == ["cluster_0"]


def test_training_does_not_depend_on_string_hashing(tmp_path, fact_path):
    """Same seed, two processes with different string hashing (PYTHONHASHSEED): the same
    weights. The zones' modules are built, and their initial weights drawn, in the order of
    the policy ids RLlib is given; as a set, that order followed the hashing, and one process
    in four trained other clones from the same data and seed."""
    from gridfactor.agents.trained import load_trained_agent
    from tests.helpers import run_cli

    weights = []
    for hash_seed in ("0", "3"):
        out = tmp_path / f"hash{hash_seed}"
        run_cli(
            *("train", "--factorization", str(fact_path), "--env", ENV, "--timesteps", "100"),
            *("--train-batch-size", "100", "--minibatch-size", "50", "--num-epochs", "1"),
            *("--episode-steps", "100", "--out", str(out)),
            extra_env={"PYTHONHASHSEED": hash_seed},
        )
        agent = load_trained_agent(out)
        weights.append({aid: p.weights for aid, p in agent.policies.items()})
    assert len(weights[0]) > 1 and weights[0].keys() == weights[1].keys()
    for aid in weights[0]:
        for a, b in zip(weights[0][aid], weights[1][aid], strict=True):
            np.testing.assert_array_equal(a, b)
