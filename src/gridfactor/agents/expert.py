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
    simulated, max rho inf, outcome COOLDOWN. The earliest of candidates within
    :data:`gridfactor.sim.candidates.RHO_TIE` of the lowest wins: put do nothing first.
    """
    evaluation = evaluate_candidates(obs, candidates, skip)
    return evaluation.best(), evaluation.max_rho, evaluation.outcome


def zone_label(
    frame: Any, zone: str, obs: Any, skip: np.ndarray | None = None
) -> tuple[int, np.ndarray, np.ndarray]:
    """The zone expert's label for ``zone`` of a decision frame in ``obs``: its actions
    (do nothing first) simulated, those whose substation cools skipped; returns
    :func:`best_by_simulation`'s (best, max rho, outcomes) over the zone's actions.

    ``skip``: (n_actions,) bool, more actions not to simulate (what a guard does not ask).
    """
    cooling = frame.in_cooldown(zone, obs)
    skip = cooling if skip is None else cooling | skip
    return best_by_simulation(obs, frame.candidates(zone, obs, skip), skip)


class Recovery:
    """Put a split substation back to its reference topology (every element on busbar 1)
    when a simulation says it is safe: the rule that lets l2rpn-baselines' ExpertAgent
    finish every case14 week, for gridfactor's experts (``expert-recovery``,
    ``expert-zone-recovery``).

    Args:
        action_space: the env's action space.
        subs: (k,) substations the rule may put back (an expert's, or its zones').
        safe_rho: a substation is put back only if the simulated max rho one step later
            stays below this (keep it under the experts' danger threshold, or the next
            step undoes it).
    """

    def __init__(self, action_space: Any, subs: Sequence[int], safe_rho: float) -> None:
        from gridfactor.envs.topology import PlayableActions

        cls = type(action_space)
        self.safe_rho = float(safe_rho)
        self.subs = np.asarray(sorted(int(s) for s in subs), dtype=int)
        pos_sub = np.asarray(cls.grid_objects_types[:, 0], dtype=int)
        self.positions = [np.flatnonzero(pos_sub == s) for s in self.subs]
        self.actions = [
            action_space({"set_bus": {"substations_id": [(int(s), np.ones(len(p), dtype=int))]}})
            for s, p in zip(self.subs, self.positions, strict=True)
        ]
        self.playable = PlayableActions(action_space)

    def action(self, obs: Any) -> Any | None:
        """The safest put-back of a split substation (not cooling) whose simulated max rho
        is below ``safe_rho``; None if there is none."""
        topo = np.asarray(obs.topo_vect)
        cooling = in_cooldown(obs, self.subs)
        split = [k for k, p in enumerate(self.positions) if (topo[p] == 2).any() and not cooling[k]]
        if not split:
            return None
        candidates = [self.playable(self.actions[k], obs) for k in split]
        evaluation = evaluate_candidates(obs, candidates)
        best = evaluation.best()
        return candidates[best] if evaluation.max_rho[best] < self.safe_rho else None
