"""Simulation experts: try candidate actions with ``obs.simulate`` and keep the best.

``best_by_simulation`` is the one greedy step all experts share (the full ``expert``, the
``expert-zone`` baseline, the demonstrations' labeller, the evaluation guard): the candidate
with the lowest simulated max rho one step ahead; do nothing (first) wins ties, so an
expert only acts when acting helps. Candidates that grid2op would refuse because their
substation is in cooldown are not simulated (``skip``): a refused action is played as do
nothing, so it can never beat do nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# What simulating a candidate gave (``best_by_simulation``'s outcomes, recorded per
# candidate by the demonstrations). Every outcome but FEASIBLE has max rho = inf.
FEASIBLE, COOLDOWN, ILLEGAL, AMBIGUOUS, GAME_OVER = 0, 1, 2, 3, 4
OUTCOMES = {
    FEASIBLE: "feasible",
    COOLDOWN: "cooldown",  # its substation is in cooldown: not simulated
    ILLEGAL: "illegal",  # refused by grid2op's rules for another reason
    AMBIGUOUS: "ambiguous",
    GAME_OVER: "game over",  # the simulated step ends the episode (e.g. a diverging flow)
}


def in_cooldown(obs: Any, subs: np.ndarray) -> np.ndarray:
    """(n,) bool: the actions on substations ``subs`` (n,) (-1: none, e.g. do nothing)
    whose substation is in cooldown in ``obs``: grid2op would refuse them (``skip``)."""
    subs = np.asarray(subs)
    return (subs >= 0) & (np.asarray(obs.time_before_cooldown_sub)[np.maximum(subs, 0)] > 0)


def simulate_candidate(obs: Any, action: Any) -> tuple[float, int]:
    """(max rho one step after ``action``, outcome); inf unless the outcome is FEASIBLE."""
    sim_obs, _, done, info = obs.simulate(action)
    if info.get("is_illegal"):
        return float("inf"), ILLEGAL
    if info.get("is_ambiguous"):
        return float("inf"), AMBIGUOUS
    if done or info.get("exception"):
        return float("inf"), GAME_OVER
    return float(np.max(sim_obs.rho)), FEASIBLE


def best_by_simulation(
    obs: Any, candidates: Sequence[Any], skip: np.ndarray | None = None
) -> tuple[int, np.ndarray, np.ndarray]:
    """(index of the best candidate, (n,) simulated max rho, (n,) int8 outcomes).

    ``skip``: (n,) bool, candidates known to be refused (substation in cooldown): not
    simulated, max rho inf, outcome COOLDOWN. Strict "<" keeps the earliest of equal
    candidates: put do nothing first.
    """
    n = len(candidates)
    rhos = np.full(n, np.inf)
    outcomes = np.full(n, COOLDOWN, dtype=np.int8)
    for i, action in enumerate(candidates):
        if skip is None or not skip[i]:
            rhos[i], outcomes[i] = simulate_candidate(obs, action)
    best = 0
    for i in range(1, n):
        if rhos[i] < rhos[best]:
            best = i
    return best, rhos, outcomes
