"""Shared fixtures (helpers that are not fixtures are in ``tests/helpers.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridfactor.envs.grid2op_env import make_env
from tests.helpers import case14_factorization, run_cli


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="module")
def central_run(tmp_path_factory) -> Path:
    """A tiny centralized PPO run on rte_case5_example: 2 iterations, a checkpoint each."""
    run = tmp_path_factory.mktemp("train") / "central"
    run_cli(
        *("train", "--centralized", "--env", "rte_case5_example", "--timesteps", "100"),
        *("--train-batch-size", "50", "--minibatch-size", "50", "--num-epochs", "1"),
        *("--episode-steps", "50", "--checkpoint-every", "1", "--out", str(run)),
        timeout=900,  # the subprocess is killed (and the test fails) if training hangs
    )
    return run


@pytest.fixture(scope="module")
def zones_run(tmp_path_factory) -> Path:
    """A tiny distributed run trained by the `gridfactor train` command (its CI path)."""
    env_name = "rte_case14_realistic"
    root = tmp_path_factory.mktemp("eco")
    env = make_env(env_name)
    case14_factorization(env).save(root / "factorization.json")
    env.close()
    run = root / "run"
    run_cli(
        *("train", "--factorization", str(root / "factorization.json"), "--env", env_name),
        *("--timesteps", "100", "--train-batch-size", "100", "--minibatch-size", "50"),
        *("--num-epochs", "1", "--episode-steps", "100", "--checkpoint-every", "1"),
        *("--out", str(run)),
        timeout=900,  # the subprocess is killed (and the test fails) if training hangs
    )
    return run
