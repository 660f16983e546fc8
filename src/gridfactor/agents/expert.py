"""Simulation experts: try candidate actions with ``obs.simulate`` and keep the best.

``best_by_simulation`` is the one greedy step all experts share (the full ``expert``, the
``expert-zone`` baseline, the demonstrations' labeller, the evaluation guard): the candidate
with the lowest simulated max rho one step ahead; do nothing (first) wins ties, so an
expert only acts when acting helps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def simulated_max_rho(obs: Any, action: Any) -> float:
    """Max rho after ``action`` one step ahead; inf for a game over or illegal action."""
    sim_obs, _, done, info = obs.simulate(action)
    if done or info.get("is_illegal") or info.get("is_ambiguous") or info.get("exception"):
        return float("inf")
    return float(np.max(sim_obs.rho))


def best_by_simulation(obs: Any, candidates: Sequence[Any]) -> tuple[int, np.ndarray]:
    """(index of the best candidate, (n,) simulated max rho of every candidate).

    Strict "<" keeps the earliest of equal candidates: put do nothing first.
    """
    rhos = np.array([simulated_max_rho(obs, action) for action in candidates])
    best = 0
    for i in range(1, len(rhos)):
        if rhos[i] < rhos[best]:
            best = i
    return best, rhos
