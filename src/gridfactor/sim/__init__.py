"""Candidate evaluation at the power-flow limit: every expert, the guard, the propose
coordinator and the demonstrations rank their candidate actions through
:func:`evaluate_candidates` (see :mod:`gridfactor.sim.candidates`)."""

from gridfactor.sim.candidates import (
    AMBIGUOUS,
    BATCH,
    COOLDOWN,
    FALLBACK_REASONS,
    FEASIBLE,
    GAME_OVER,
    ILLEGAL,
    OUTCOMES,
    SIMULATE,
    SKIPPED,
    CandidateEvaluator,
    Evaluation,
    evaluate_candidates,
    in_cooldown,
    lowest,
    simulate_candidate,
)
from gridfactor.sim.states import unsafe_states

__all__ = [
    "AMBIGUOUS",
    "BATCH",
    "COOLDOWN",
    "FALLBACK_REASONS",
    "FEASIBLE",
    "GAME_OVER",
    "ILLEGAL",
    "OUTCOMES",
    "SIMULATE",
    "SKIPPED",
    "CandidateEvaluator",
    "Evaluation",
    "evaluate_candidates",
    "in_cooldown",
    "lowest",
    "simulate_candidate",
    "unsafe_states",
]
