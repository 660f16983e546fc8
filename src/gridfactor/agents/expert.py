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

# The outcome codes and the per-candidate obs.simulate reference live with the candidate
# evaluator (one definition); re-exported here for the experts' callers.
from gridfactor.sim.candidates import (  # noqa: F401
    AMBIGUOUS,
    COOLDOWN,
    FEASIBLE,
    GAME_OVER,
    ILLEGAL,
    OUTCOMES,
    in_cooldown,
    simulate_candidate,
)


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
