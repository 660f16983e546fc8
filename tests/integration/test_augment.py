"""Perturbed chronics (``--augment``): what is scaled, what is restored, what is seeded."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gridfactor.errors import UserError
from tests.helpers import case14_factorization

ENV = "rte_case14_realistic"


@pytest.fixture(scope="module")
def g2env():
    from gridfactor.envs.grid2op_env import make_grid2op_env

    env = make_grid2op_env(ENV)
    yield env
    env.close()


def _reset(env, start: int = 40):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return env.reset(seed=0, options={"time serie id": 0, "init ts": start})


def test_a_perturbed_reset_scales_loads_forecasts_and_generation_then_restores(g2env):
    chronics = g2env.chronics_handler.real_data
    original = _reset(g2env)
    load_p, gen_p = original.load_p.copy(), original.gen_p.copy()
    forecast = chronics.data.load_p_forecast.copy()
    rng = np.random.default_rng(1)
    loads = rng.uniform(0.8, 1.2, g2env.n_load)
    gens = rng.uniform(0.8, 1.2, g2env.n_gen)
    try:
        chronics.perturb(loads, gens, g2env.gen_pmax)
        perturbed = _reset(g2env)
        # loads are PQ: what the grid carries is the scaled chronic, and so is the forecast
        np.testing.assert_allclose(perturbed.load_p, load_p * loads, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(chronics.data.load_p_forecast, forecast * loads, rtol=1e-6)
        # generation follows the scaled load (the slack adds the losses): the total moves
        # with the load, the split between generators moves with their factors
        assert abs(perturbed.gen_p.sum() - perturbed.load_p.sum()) < 0.1 * load_p.sum()
        assert not np.allclose(perturbed.gen_p, gen_p, rtol=1e-3)
        assert np.all(chronics.data.prod_p <= g2env.gen_pmax + 1e-9)
        # the same factors on another start of the same chronic: still the original x factors
        again = _reset(g2env, start=41)
        chronics.perturb(None, None)
        plain = _reset(g2env, start=41)
        np.testing.assert_allclose(again.load_p, plain.load_p * loads, rtol=1e-4, atol=1e-3)
    finally:
        chronics.perturb(None, None)
    restored = _reset(g2env)
    np.testing.assert_array_equal(restored.load_p, load_p)
    np.testing.assert_array_equal(restored.gen_p, gen_p)


def _first_decisions(config: dict, n: int = 3) -> list[np.ndarray]:
    from gridfactor.agents.decision_env import DecisionEnv

    env = DecisionEnv(config)
    out = []
    for episode in range(n):
        env.reset(seed=episode)
        out.append(np.asarray(env.obs.load_p, dtype=float).copy())
    env.close()
    return out


def test_decision_env_augments_each_episode_from_its_seed_and_only_when_asked(g2env):
    base = {
        "env_name": ENV,
        "factorization": case14_factorization(g2env).to_dict(),
        "episode_steps": 60,
        "chronics": [0],
    }
    plain = _first_decisions(base)
    assert all(np.array_equal(a, b) for a, b in zip(plain, _first_decisions(base), strict=True))
    augmented = _first_decisions({**base, "augment": 0.2})
    again = _first_decisions({**base, "augment": 0.2})
    assert all(np.array_equal(a, b) for a, b in zip(augmented, again, strict=True))
    # other loads at the first decision of every episode (they may start elsewhere too: the
    # first unsafe state of a perturbed day is another one)
    assert not any(
        a.shape == b.shape and np.allclose(a, b) for a, b in zip(plain, augmented, strict=True)
    )


def test_augment_out_of_range_is_a_user_error(g2env):
    from gridfactor.demonstrate.demonstrations import DemonstrateConfig

    fact = case14_factorization(g2env).to_dict()
    with pytest.raises(UserError, match="--augment must be in"):
        DemonstrateConfig(env_name=ENV, factorization=fact, augment=1.5).validate()


def test_runs_record_augment_only_when_it_is_used():
    """config.json of train and compare runs holds augment only when > 0: runs made before
    the option existed keep their identity (they resume)."""
    from gridfactor.experiments.compare import CompareConfig, _recorded
    from gridfactor.train.run import TrainConfig

    assert "augment" not in TrainConfig(factorization_path="f.json").identity()
    assert TrainConfig(factorization_path="f.json", augment=0.2).identity()["augment"] == 0.2
    assert "augment" not in _recorded(CompareConfig(preset="day").budget())
    budget = CompareConfig(preset="day", overrides={"augment": 0.2}).budget()
    assert _recorded(budget)["augment"] == 0.2
    with pytest.raises(UserError, match="--augment must be in"):
        CompareConfig(preset="day", overrides={"augment": -0.1}).budget()
