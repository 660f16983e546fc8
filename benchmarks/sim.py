"""Batched candidate evaluation (gridfactor.sim) vs the obs.simulate loop, same states.

    python benchmarks/sim.py --env rte_case14_realistic --states 20
    python benchmarks/sim.py --env l2rpn_neurips_2020_track1 --states 8

States: episodes played mostly with do nothing (20% random topologies, seeded), every
state with max rho >= 0.8; candidates: do nothing + every unitary topology (the full
expert's). Prints the per-candidate ratio, the decision agreement, the max rho difference
and why candidates went through obs.simulate.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--env", default="rte_case14_realistic")
    parser.add_argument("--states", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from gridfactor.envs.decision import make_grid2op_env
    from gridfactor.evaluate.agents import (
        playable_actions,
        unitary_topology_actions,
        unitary_topology_subs,
    )
    from gridfactor.sim import FALLBACK_REASONS, evaluate_candidates, in_cooldown
    from gridfactor.sim import simulate_candidate as simulate

    env = make_grid2op_env(args.env)
    env.seed(args.seed)
    env.reset()
    actions, subs = unitary_topology_actions(env), unitary_topology_subs(env)
    rng = np.random.default_rng(args.seed)
    fast_s = ref_s = 0.0
    states = agree = same_outcome = n_cand = 0
    max_diff = 0.0
    reasons: dict[str, int] = {}
    while states < args.states:
        play = env.action_space({}) if rng.random() < 0.8 else actions[rng.integers(len(actions))]
        obs, _, done, _ = env.step(play)
        if done:
            env.reset()
            continue
        if obs.rho.max() < 0.8:
            continue
        playable = playable_actions(env)
        candidates = [env.action_space({}), *(playable(a, obs) for a in actions)]
        skip = np.concatenate([[False], in_cooldown(obs, subs)])
        tic = time.perf_counter()
        ev = evaluate_candidates(obs, candidates, skip)
        fast_s += time.perf_counter() - tic
        tic = time.perf_counter()
        ref = [simulate(obs, c) if not skip[i] else (np.inf, 1) for i, c in enumerate(candidates)]
        ref_s += time.perf_counter() - tic
        ref_rho = np.array([r[0] for r in ref])
        finite = np.isfinite(ref_rho) & np.isfinite(ev.max_rho)
        if finite.any():
            max_diff = max(max_diff, float(np.abs(ref_rho[finite] - ev.max_rho[finite]).max()))
        agree += int(ev.best() == int(np.argmin(ref_rho)))
        same_outcome += int((ev.outcome == np.array([r[1] for r in ref])).sum())
        n_cand += int((~skip).sum())
        for code in ev.reason[ev.reason > 0]:
            reasons[FALLBACK_REASONS[int(code)]] = reasons.get(FALLBACK_REASONS[int(code)], 0) + 1
        states += 1
    print(
        f"{args.env}: {states} states, {len(candidates)} candidates each; "
        f"obs.simulate {1000 * ref_s / n_cand:.3f} ms/candidate, batched "
        f"{1000 * fast_s / n_cand:.3f} ms/candidate: {ref_s / fast_s:.1f}x; same decision "
        f"{agree}/{states}; same outcome {same_outcome}/{states * len(candidates)}; "
        f"max |rho diff| {max_diff:.1e}; through obs.simulate: {reasons or 'none'}"
    )


if __name__ == "__main__":
    main()
