"""Simulation experts: try candidate actions one step ahead and keep the best.

``best_by_simulation`` is the one greedy step all experts share (the full ``expert``, the
``expert-zone`` baseline, the demonstrations' labeller, the evaluation guard and the
``propose`` coordinator): the candidate with the lowest simulated max rho one step ahead;
do nothing (first) wins ties, so an expert only acts when acting helps. Candidates that
grid2op would refuse because their substation is in cooldown are not simulated (``skip``):
a refused action is played as do nothing, so it can never beat do nothing.

The candidates are evaluated by :func:`gridfactor.sim.evaluate_candidates`: one batched
lightsim2grid power flow per candidate, with the same max rho and outcome as
``obs.simulate`` (:func:`simulate_candidate`, the reference it is tested against).
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
    evaluate_candidates,
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
    evaluation = evaluate_candidates(obs, candidates, skip)
    return evaluation.best(), evaluation.max_rho, evaluation.outcome
