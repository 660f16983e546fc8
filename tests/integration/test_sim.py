"""The batched candidate evaluator agrees with obs.simulate on real states of two grids."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest


def _grid(env_name: str):
    from gridfactor.agents.baselines import (
        playable_actions,
        unitary_topology_actions,
        unitary_topology_subs,
    )
    from gridfactor.envs.grid2op_env import make_grid2op_env

    warnings.filterwarnings("ignore")
    env = make_grid2op_env(env_name)
    return env, unitary_topology_actions(env), unitary_topology_subs(env), playable_actions(env)


def _failing_callback(grid) -> None:
    raise RuntimeError("refused by the test")


def _reference(obs, candidates, skip):
    """The obs.simulate loop the evaluator replaces: (n,) max rho, (n,) outcomes."""
    from gridfactor.sim import COOLDOWN, simulate_candidate

    ref = [
        simulate_candidate(obs, c) if not skip[i] else (np.inf, COOLDOWN)
        for i, c in enumerate(candidates)
    ]
    return np.array([r[0] for r in ref]), np.array([r[1] for r in ref])


def _assert_agrees(ev, obs, candidates, skip) -> None:
    from gridfactor.sim import lowest

    ref_rho, ref_outcome = _reference(obs, candidates, skip)
    assert (ev.outcome == ref_outcome).all(), np.flatnonzero(ev.outcome != ref_outcome)
    finite = np.isfinite(ref_rho)
    assert (np.isfinite(ev.max_rho) == finite).all()
    assert np.abs(ev.max_rho[finite] - ref_rho[finite]).max() < 1e-5
    assert ev.best() == lowest(ref_rho)


def test_batched_evaluation_agrees_with_obs_simulate_on_case14_with_every_outcome_kind():
    from gridfactor.sim import (
        AMBIGUOUS,
        BATCH,
        COOLDOWN,
        FEASIBLE,
        GAME_OVER,
        ILLEGAL,
        OUTCOMES,
        SIMULATE,
        evaluate_candidates,
        in_cooldown,
        unsafe_states,
    )

    env, actions, subs, playable = _grid("rte_case14_realistic")
    # a real cooldown (case14 has none by default): a substation just acted on is refused
    params = env.parameters
    params.NB_TIMESTEP_COOLDOWN_SUB = 3
    env.change_parameters(params)
    seen = np.zeros(len(OUTCOMES), dtype=int)
    batched = simulated = batched_game_overs = 0
    for obs in itertools.islice(unsafe_states(env, actions, seed=1, explore=0.3), 4):
        reco = env.action_space({"set_line_status": [(0, 1)]})  # not set_bus: obs.simulate
        # a set_bus action whose backend callback fails: grid2op calls it ambiguous (it
        # does not flag a set and a change of the same element in obs.simulate)
        ambiguous = env.action_space({"set_bus": {"lines_or_id": [(0, 1)]}})
        ambiguous.backend_dependant_callback = _failing_callback
        candidates = [env.action_space({}), *(playable(a, obs) for a in actions), reco, ambiguous]
        cooling = np.concatenate([[False], in_cooldown(obs, subs), [False, False]])
        # the cooling substations of half of them are not skipped: obs.simulate refuses them
        skip = cooling & (np.arange(len(candidates)) % 2 == 0)
        ev = evaluate_candidates(obs, candidates, skip)
        _assert_agrees(ev, obs, candidates, skip)
        assert (ev.route[-2:] == SIMULATE).all() and ev.outcome[-1] == AMBIGUOUS
        assert (ev.outcome[cooling & ~skip] == ILLEGAL).all()
        assert (ev.reason[cooling & ~skip] == 4).all()  # counted as "cooldown"
        seen += np.bincount(ev.outcome, minlength=len(OUTCOMES))
        batched += int((ev.route == BATCH).sum())
        simulated += int((ev.route == SIMULATE).sum())
        batched_game_overs += int(((ev.outcome == GAME_OVER) & (ev.route == BATCH)).sum())
    assert batched > 0.8 * 4 * len(actions)  # the batch did the work
    assert simulated >= 2 * 4  # the reconnection and the ambiguous action, counted
    assert batched_game_overs > 0  # a diverging / islanding candidate seen in the batch
    for kind in (FEASIBLE, COOLDOWN, ILLEGAL, AMBIGUOUS, GAME_OVER):
        assert seen[kind] > 0, OUTCOMES[kind]


def test_36_bus_agreement_does_not_depend_on_the_thread_count():
    """l2rpn_neurips_2020_track1: a single-slack grid with substation cooldowns; candidates
    that move the slack generator are batched with the busbars renamed."""
    from gridfactor.sim import BATCH, CandidateEvaluator, in_cooldown, unsafe_states

    env, actions, subs, playable = _grid("l2rpn_neurips_2020_track1")
    one, two = None, None
    cooled = renamed = 0
    gap = 0.0
    for obs in itertools.islice(unsafe_states(env, actions, seed=0, explore=0.3), 3):
        candidates = [env.action_space({}), *(playable(a, obs) for a in actions)]
        skip = np.concatenate([[False], in_cooldown(obs, subs)])
        one = one or CandidateEvaluator(type(obs), nb_thread=1)
        two = two or CandidateEvaluator(type(obs), nb_thread=2)
        ev1, ev2 = one.evaluate(obs, candidates, skip), two.evaluate(obs, candidates, skip)
        # the power flows converge to the solver's tolerance from other starting points:
        # the same outcomes, routes and choice; max rho far closer than a tie
        for name in ("outcome", "route", "reason"):
            assert np.array_equal(getattr(ev1, name), getattr(ev2, name)), name
        assert ev1.best() == ev2.best()
        finite = np.isfinite(ev1.max_rho)
        assert np.array_equal(finite, np.isfinite(ev2.max_rho))
        gap = max(gap, float(np.abs(ev1.max_rho[finite] - ev2.max_rho[finite]).max()))
        _assert_agrees(ev1, obs, candidates, skip)
        cooled += int(skip.sum())
        slack = one.slack_positions
        for i in np.flatnonzero(ev1.route == BATCH)[1:]:
            topo = one._describe(candidates[i])
            renamed += int(np.isin(topo.positions, slack).any())
    print(f"max |rho(1 thread) - rho(2 threads)| = {gap:.1e}")
    assert gap < 1e-7
    assert cooled > 0  # a cooling substation was met and skipped
    assert renamed > 0  # candidates that move the slack generator went through the batch


def test_rows_the_batch_refuses_go_through_obs_simulate_and_are_counted():
    from gridfactor.sim import FALLBACK_REASONS, SIMULATE, CandidateEvaluator, unsafe_states

    class RefusingEvaluator(CandidateEvaluator):
        calls = 0

        def _solve(self, backend, row_actions, cut):
            self.calls += 1
            # as when lightsim2grid raises on a row
            return None, np.zeros(0, dtype=bool), np.zeros(0, dtype=int)

    env, actions, _, playable = _grid("rte_case14_realistic")
    obs = next(unsafe_states(env, actions, seed=1))
    candidates = [env.action_space({}), *(playable(a, obs) for a in actions)]
    skip = np.zeros(len(candidates), dtype=bool)
    evaluator = RefusingEvaluator(type(obs))
    ev = evaluator.evaluate(obs, candidates, skip)
    assert evaluator.calls == 1
    assert (ev.route == SIMULATE).all()  # nothing dropped: every candidate simulated
    assert {FALLBACK_REASONS[int(r)] for r in ev.reason} == {"refused"}
    _assert_agrees(ev, obs, candidates, skip)


@pytest.mark.parametrize(
    ("env_name", "state", "action", "rho"),
    [
        ("rte_case14_realistic", 103, 70, 1.7036),  # batch: rho 8.4, beyond the hard limit
        ("l2rpn_neurips_2020_track1", 139, 836, 1.2777),  # batch: rho 26.5, under its 200
    ],
)
def test_a_row_that_converges_to_another_power_flow_solution_is_not_trusted(
    env_name, state, action, rho
):
    """From the forecast state's voltages, Newton-Raphson takes this candidate of this
    unsafe state to a spurious solution (a line at rho 8.4 on case14, 26.5 on the 36-bus
    grid); grid2op's backend, which starts from a DC solution of the candidate's own
    topology, finds the grid well (obs.simulate: ``rho``)."""
    from gridfactor.sim import (
        FALLBACK_REASONS,
        FEASIBLE,
        SIMULATE,
        CandidateEvaluator,
        simulate_candidate,
        unsafe_states,
    )

    env, actions, _, playable = _grid(env_name)
    states = unsafe_states(env, actions, min_rho=0.9, seed=0, explore=0.2)
    obs = next(itertools.islice(states, state, None))
    candidate = playable(actions[action], obs)
    ev = CandidateEvaluator(type(obs)).evaluate(obs, [env.action_space({}), candidate])
    sim_rho, outcome = simulate_candidate(obs, candidate)
    assert outcome == FEASIBLE and sim_rho == pytest.approx(rho, abs=1e-3)
    assert ev.outcome[1] == FEASIBLE and ev.max_rho[1] == pytest.approx(sim_rho, abs=1e-6)
    assert ev.route[1] == SIMULATE and FALLBACK_REASONS[int(ev.reason[1])] == "other solution"
