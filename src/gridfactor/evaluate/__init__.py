"""Evaluation of trained agents and baselines on held-out scenarios (the end-to-end
``compare`` experiment is in :mod:`gridfactor.experiments`)."""

from gridfactor.agents.baselines import BASELINES, Agent, make_baseline, parse_agent_names
from gridfactor.evaluate.runner import DEFAULT_ENV, EvalConfig, evaluate, run_episode
from gridfactor.evaluate.scenarios import HeldOut, Scenario, default_held_out, sample_scenarios

__all__ = [
    "BASELINES",
    "DEFAULT_ENV",
    "Agent",
    "EvalConfig",
    "HeldOut",
    "Scenario",
    "default_held_out",
    "evaluate",
    "make_baseline",
    "parse_agent_names",
    "run_episode",
    "sample_scenarios",
]
