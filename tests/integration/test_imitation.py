"""Cloning with the expert's recorded outcomes: the unlikelihood of game-over actions and
the simulated ranking as the target."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gridfactor.agents.cluster import DO_NOTHING_KEY, build_agents
from gridfactor.agents.policy_net import GreedyMLP
from gridfactor.envs.grid2op_env import make_env
from gridfactor.sim.candidates import COOLDOWN, FEASIBLE, GAME_OVER
from gridfactor.train.imitation import (
    clone_expert,
    game_over_mask,
    one_torch_thread,
    ranking_targets,
    simulated_outcomes,
)
from tests.helpers import case14_factorization
from tests.unit.test_policy_net import rl_module

SEED = 0


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
        torch.manual_seed(SEED)  # the module's initial weights
        module = rl_module("tanh", n_in=8, n_out=3)
        reports[avoid] = clone_expert(
            module,
            rows,
            learner,
            obs_column="obs_local",
            held_out=held_out,
            epochs=30,
            avoid=avoid,
            game_over=mask,
        )
    plain, avoiding = reports[0.0], reports[2.0]
    held_fatal = fatal_rows[np.isin(rows["episode"], held_out)].mean()
    # cross-entropy alone plays the majority label, fatal whenever it was in the data
    assert plain.top1_game_over == pytest.approx(held_fatal) and held_fatal > 0.3
    # the unlikelihood term moves the greedy choice to the action that never ends the day
    assert avoiding.top1_game_over == 0.0


def test_ranking_targets_weigh_feasible_actions_by_their_simulation():
    rho = np.array([[0.9, 0.8, 0.8, np.inf], [np.inf, np.inf, 0.5, 0.5]], np.float32)
    codes = np.array([[FEASIBLE, FEASIBLE, FEASIBLE, GAME_OVER], [COOLDOWN, -1, GAME_OVER, -1]])
    targets = ranking_targets(rho, codes, np.array([1, 3]), temperature=0.1)
    e = np.exp(-1.0)  # 0.1 of rho worse at T = 0.1
    assert targets[0] == pytest.approx(np.array([e, 1, 1, 0]) / (e + 2), rel=1e-5)
    # nothing feasible: the expert's label
    assert targets[1].tolist() == [0, 0, 0, 1]


def spread_demonstrations(candidate_keys, zone, acting, n=600, seed=0):
    """Noise observations; in 40% of the rows doing nothing wins by 0.001 of rho over every
    action of ``acting``, in the other 60% one of them (uniformly) wins by 0.02 and doing
    nothing is 0.15 worse: the labels say "do nothing" more often than any single action,
    the simulations say acting is better."""
    rng = np.random.default_rng(seed)
    keys = candidate_keys[zone]
    where = [keys.index(key) for key in acting]
    rows = []
    for r in range(n):
        rho = np.full(len(keys), 1.2, dtype=np.float32)
        if rng.random() < 0.4:
            rho[0], rho[where] = 0.900, 0.901
            label = DO_NOTHING_KEY
        else:
            pick = int(rng.integers(len(acting)))
            rho[0], rho[where] = 0.95, 0.82
            rho[where[pick]] = 0.80
            label = acting[pick]
        rows.append(
            {
                "episode": r // 10,
                "agent": zone,
                "obs_local": rng.normal(0.0, 0.01, 8).astype(np.float32),
                "sim_max_rho": rho,
                "sim_outcome": np.full(len(keys), FEASIBLE, dtype=np.int8),
                "label_sub": label[0],
                "label_index": label[1],
            }
        )
    return pd.DataFrame(rows)


def test_cloning_the_ranking_acts_where_the_labels_wait():
    env = make_env("rte_case14_realistic")
    fact = case14_factorization(env)
    full = build_agents(fact, env)
    candidate_keys = {a.agent_id: list(a.action_keys) for a in full}
    zone = full[0]
    acting = list(zone.action_keys[1:7])
    # the learner's reduced set, in another order than the zone's candidates
    (learner,) = [
        a
        for a in build_agents(fact, env, {zone.agent_id: [DO_NOTHING_KEY, *acting[::-1]]})
        if a.agent_id == zone.agent_id
    ]
    env.close()
    rows = spread_demonstrations(candidate_keys, zone.agent_id, acting)
    rho, codes = simulated_outcomes(rows, learner, candidate_keys)
    assert (codes == FEASIBLE).all()
    assert rho[0, 1] == rows["sim_max_rho"][0][candidate_keys[zone.agent_id].index(acting[-1])]

    x = np.stack(rows["obs_local"].to_numpy())
    greedy = {}
    for temperature in (0.0, 0.01):
        torch.manual_seed(SEED)  # the module's initial weights
        module = rl_module("tanh", n_in=8, n_out=learner.n_actions)
        clone_expert(
            module,
            rows,
            learner,
            obs_column="obs_local",
            held_out=np.arange(50, 60),
            epochs=20,
            ranking=(rho, codes, temperature) if temperature else None,
        )
        net = GreedyMLP.from_module(module)
        greedy[temperature] = np.array([int(np.argmax(net(v))) for v in x])
    # the labels' majority class is doing nothing; the ranking's best action is to act
    assert (greedy[0.0] == 0).mean() > 0.9
    assert (greedy[0.01] != 0).mean() > 0.9


def test_cloning_runs_torch_on_one_thread_and_restores_the_count():
    """Cloning holds torch to one thread (two clones side by side on 2 cores took 15x
    longer with torch's default threads), and gives the process its count back, also when
    the block fails."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with one_torch_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(ValueError), one_torch_thread():
            raise ValueError("a failing epoch")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
