"""Batched candidate evaluation (gridfactor.sim) vs the obs.simulate loop, same states.

    python benchmarks/sim.py --env rte_case14_realistic --states 500
    python benchmarks/sim.py --env l2rpn_neurips_2020_track1 --states 500
    python benchmarks/sim.py --env l2rpn_idf_2023 --states 20

States: unsafe states (max rho >= --min-rho, the experts' trigger) of episodes played like
the demonstrations (mostly do nothing, --explore random unitary topologies, seeded).
Candidates: do nothing + every unitary topology (the full expert's), cooling substations
skipped as the experts do. Both evaluations run on every state, one after the other.
Prints the per-candidate times and their ratio, the fraction of the speed of a bare LightSim
AC power flow (a candidate's grid solved from the forecast state's voltages) that the batch
reaches, the decision agreement (same chosen candidate), the
outcome agreement, the max |rho difference| and why candidates went through obs.simulate.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
import warnings

import numpy as np


def bare_power_flow_ms(obs, evaluator, candidates, rows: int = 20) -> float:
    """Mean time of one AC power flow of a candidate's grid by LightSim, from the forecast
    state's voltages (what the batch solves per row), with nothing around it: up to
    ``rows`` set_bus candidates, each on a copy of the observation env's solved grid."""
    cls = evaluator.grid_class
    backend = obs._obs_env.backend
    total, n = 0.0, 0
    for action in candidates[1 : rows + 1]:
        positions = np.flatnonzero(action._set_topo_vect)
        grid = backend._grid.copy()
        changed = np.zeros(cls.dim_topo, dtype=bool)
        changed[positions] = True
        grid.update_topo(changed, np.asarray(action._set_topo_vect, dtype=np.int32))
        v = np.array(backend.V, dtype=complex)
        tic = time.perf_counter()
        grid.ac_pf(v, backend.max_it, backend.tol)
        total += time.perf_counter() - tic
        n += 1
    return 1000.0 * total / max(n, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--env", default="rte_case14_realistic")
    parser.add_argument("--states", type=int, default=20)
    parser.add_argument("--min-rho", type=float, default=0.9)
    parser.add_argument("--explore", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=None, help="batch threads (all cores)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from gridfactor.agents.baselines import (
        playable_actions,
        unitary_topology_actions,
        unitary_topology_subs,
    )
    from gridfactor.envs.grid2op_env import make_grid2op_env
    from gridfactor.sim import (
        COOLDOWN,
        FALLBACK_REASONS,
        OUTCOMES,
        CandidateEvaluator,
        in_cooldown,
        lowest,
        simulate_candidate,
        unsafe_states,
    )

    env = make_grid2op_env(args.env)
    actions, subs = unitary_topology_actions(env), unitary_topology_subs(env)
    playable = playable_actions(env)
    evaluator = CandidateEvaluator(type(env.get_obs()), nb_thread=args.threads)
    fast_s = ref_s = pf_ms = 0.0
    agree = same_outcome = n_cand = 0
    max_diff = 0.0
    reasons: dict[str, int] = {}
    outcomes = np.zeros(len(OUTCOMES), dtype=int)
    disagreements: list[str] = []
    states = unsafe_states(env, actions, min_rho=args.min_rho, seed=args.seed, explore=args.explore)
    for k, obs in enumerate(itertools.islice(states, args.states)):
        candidates = [env.action_space({}), *(playable(a, obs) for a in actions)]
        skip = np.concatenate([[False], in_cooldown(obs, subs)])
        tic = time.perf_counter()
        ev = evaluator.evaluate(obs, candidates, skip)
        fast_s += time.perf_counter() - tic
        pf_ms += bare_power_flow_ms(obs, evaluator, candidates)
        tic = time.perf_counter()
        ref = [
            simulate_candidate(obs, c) if not skip[i] else (np.inf, COOLDOWN)
            for i, c in enumerate(candidates)
        ]
        ref_s += time.perf_counter() - tic
        ref_rho = np.array([r[0] for r in ref])
        ref_outcome = np.array([r[1] for r in ref])
        finite = np.isfinite(ref_rho) & np.isfinite(ev.max_rho)
        if finite.any():
            max_diff = max(max_diff, float(np.abs(ref_rho[finite] - ev.max_rho[finite]).max()))
        same = ev.best() == lowest(ref_rho)
        agree += int(same)
        if not same:
            disagreements.append(
                f"state {k}: batch {ev.best()} ({ev.max_rho[ev.best()]:.6f}), obs.simulate "
                f"{lowest(ref_rho)} ({ref_rho[lowest(ref_rho)]:.6f})"
            )
        same_outcome += int((ev.outcome[~skip] == ref_outcome[~skip]).sum())
        n_cand += int((~skip).sum())
        outcomes += np.bincount(ref_outcome[~skip], minlength=len(OUTCOMES))
        for code in ev.reason[ev.reason > 0]:
            name = FALLBACK_REASONS[int(code)]
            reasons[name] = reasons.get(name, 0) + 1
        if (k + 1) % max(1, args.states // 10) == 0:
            print(f"  {k + 1}/{args.states} states", file=sys.stderr, flush=True)
    n_states = args.states
    fast_ms, ref_ms = 1000 * fast_s / n_cand, 1000 * ref_s / n_cand
    seen = {OUTCOMES[c]: int(n) for c, n in enumerate(outcomes) if n}
    print(
        f"{args.env}: {n_states} states (max rho >= {args.min_rho}), {len(candidates)} "
        f"candidates each ({n_cand} evaluated, cooling ones skipped), "
        f"{evaluator.nb_thread} batch thread(s)\n"
        f"  obs.simulate {ref_ms:.3f} ms/candidate, batched {fast_ms:.3f} ms/candidate: "
        f"{ref_s / fast_s:.1f}x; per decision {1000 * ref_s / n_states:.0f} ms -> "
        f"{1000 * fast_s / n_states:.0f} ms\n"
        f"  bare AC power flow {pf_ms / n_states:.3f} ms: the batch reaches "
        f"{pf_ms / n_states / fast_ms:.0%} of its speed per candidate\n"
        f"  same decision {agree}/{n_states}; same outcome {same_outcome}/{n_cand}; "
        f"max |rho diff| {max_diff:.1e}\n"
        f"  outcomes (obs.simulate): {seen}\n"
        f"  through obs.simulate: {reasons or 'none'}"
    )
    for line in disagreements[:10]:
        print("  " + line)


if __name__ == "__main__":
    main()
