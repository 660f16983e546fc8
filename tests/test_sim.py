"""The batched candidate evaluator agrees with obs.simulate on real states."""

from __future__ import annotations

import warnings

import numpy as np


def test_batched_evaluation_agrees_with_obs_simulate_on_real_states():
    from gridfactor.envs.decision import make_grid2op_env
    from gridfactor.evaluate.agents import (
        playable_actions,
        unitary_topology_actions,
        unitary_topology_subs,
    )
    from gridfactor.sim import (
        BATCH,
        GAME_OVER,
        SIMULATE,
        evaluate_candidates,
        in_cooldown,
        simulate_candidate,
    )

    warnings.filterwarnings("ignore")
    env = make_grid2op_env("rte_case14_realistic")
    env.seed(1)
    env.reset()
    actions, subs = unitary_topology_actions(env), unitary_topology_subs(env)
    rng = np.random.default_rng(0)
    states, batched, game_overs, simulated = 0, 0, 0, 0
    while states < 4:
        play = env.action_space({}) if rng.random() < 0.8 else actions[rng.integers(len(actions))]
        obs, _, done, _ = env.step(play)
        if done:
            env.reset()
            continue
        if obs.rho.max() < 0.8:
            continue
        playable = playable_actions(env)
        reco = env.action_space({"set_line_status": [(0, 1)]})  # not set_bus: obs.simulate
        candidates = [env.action_space({}), *(playable(a, obs) for a in actions), reco]
        skip = np.concatenate([[False], in_cooldown(obs, subs), [False]])
        ev = evaluate_candidates(obs, candidates, skip)
        ref = [simulate_candidate(obs, c) for c in candidates]
        ref_rho = np.array([r[0] for r in ref])
        ref_outcome = np.array([r[1] for r in ref])
        assert (ev.outcome == ref_outcome).all()
        finite = np.isfinite(ref_rho)
        assert (np.isfinite(ev.max_rho) == finite).all()
        assert np.abs(ev.max_rho[finite] - ref_rho[finite]).max() < 1e-5
        assert ev.best() == int(np.argmin(ref_rho))
        assert ev.route[-1] == SIMULATE
        batched += int((ev.route == BATCH).sum())
        simulated += int((ev.route == SIMULATE).sum())
        game_overs += int(((ev.outcome == GAME_OVER) & (ev.route == BATCH)).sum())
        states += 1
    assert batched > 0.9 * states * len(actions)  # the batch did the work
    assert simulated >= states  # the reconnection went through obs.simulate, counted
    assert game_overs > 0  # a diverging / islanding candidate was seen in the batch
