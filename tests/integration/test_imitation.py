"""Cloning with the expert's recorded outcomes: the unlikelihood of game-over actions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridfactor.agents.cluster import DO_NOTHING_KEY, build_agents
from gridfactor.envs.grid2op_env import make_env
from gridfactor.sim.candidates import FEASIBLE, GAME_OVER
from gridfactor.train.imitation import clone_expert, game_over_mask
from tests.helpers import case14_factorization
from tests.unit.test_policy_net import rl_module


def ambiguous_demonstrations(candidate_keys, zone, first, second, n=400, seed=0):
    """Rows a policy cannot tell apart (noise observations): in 55% the expert picks
    ``first``, in the other 45% ``first`` ends the episode and the expert picks ``second``."""
    rng = np.random.default_rng(seed)
    keys = candidate_keys[zone]
    i_first, i_second = keys.index(first), keys.index(second)
    rows = []
    for r in range(n):
        fatal = rng.random() < 0.45
        outcome = np.full(len(keys), FEASIBLE, dtype=np.int8)
        if fatal:
            outcome[i_first] = GAME_OVER
        label = second if fatal else first
        rows.append(
            {
                "episode": r // 10,
                "agent": zone,
                "obs_local": rng.normal(0.0, 0.01, 8).astype(np.float32),
                "sim_outcome": outcome,
                "label_sub": label[0],
                "label_index": label[1],
            }
        )
    assert i_first != i_second
    return pd.DataFrame(rows)


def test_avoiding_game_overs_changes_the_greedy_choice():
    env = make_env("rte_case14_realistic")
    full = build_agents(case14_factorization(env), env)
    candidate_keys = {a.agent_id: list(a.action_keys) for a in full}
    zone = full[0]
    first, second = zone.action_keys[1], zone.action_keys[2]
    # the learner's reduced set, in another order than the zone's candidates
    (learner,) = [
        a
        for a in build_agents(
            case14_factorization(env), env, {zone.agent_id: [DO_NOTHING_KEY, second, first]}
        )
        if a.agent_id == zone.agent_id
    ]
    env.close()
    rows = ambiguous_demonstrations(candidate_keys, zone.agent_id, first, second)
    mask = game_over_mask(rows, learner, candidate_keys)
    fatal_rows = np.array([o.max() == GAME_OVER for o in rows["sim_outcome"]])
    assert mask.shape == (len(rows), 3)
    assert np.array_equal(mask[:, 2], fatal_rows)  # ``first`` is the learner's action 2
    assert not mask[:, :2].any()

    held_out = np.arange(30, 40)
    reports = {}
    for avoid in (0.0, 2.0):
        module = rl_module("tanh", n_in=8, n_out=3)
        reports[avoid] = clone_expert(
            module, rows, learner, obs_column="obs_local", held_out=held_out, epochs=30,
            avoid=avoid, game_over=mask,
        )
    plain, avoiding = reports[0.0], reports[2.0]
    held_fatal = fatal_rows[np.isin(rows["episode"], held_out)].mean()
    # cross-entropy alone plays the majority label, fatal whenever it was in the data
    assert plain.top1_game_over == pytest.approx(held_fatal) and held_fatal > 0.3
    # the unlikelihood term moves the greedy choice to the action that never ends the day
    assert avoiding.top1_game_over == 0.0
