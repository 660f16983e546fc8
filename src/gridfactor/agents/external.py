"""Agents that are not gridfactor's, evaluated beside its own on the same scenarios.

- Any grid2op ``BaseAgent`` (``act(observation, reward, done)``) behind gridfactor's agent
  interface (``act(obs, env)``): :class:`Grid2opAgent`.
- L2RPN submission folders: a package whose ``__init__.py`` defines
  ``make_agent(env, this_directory_path)`` returning a ``BaseAgent``
  (:func:`load_submission`); ``gridfactor export`` writes such folders.
- The public peer ``expertop``: l2rpn-baselines' ``ExpertAgent`` (expertop4grid), with the
  grid name it knows for the env (:data:`EXPERTOP_GRIDS`); ``pip install gridfactor[peers]``.

A failure inside such an agent (an exception, or something returned that is not an action)
raises :class:`AgentError`: the evaluation counts that episode as failed, with the error,
and goes on with the others.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

from gridfactor.errors import UserError

SUBMISSION_ENTRY = "make_agent"
# the grid names ExpertAgent knows, per env (its IEEE14 rules use case14's line ids)
EXPERTOP_GRIDS = {
    "rte_case14_realistic": "IEEE14",
    "rte_case14_redisp": "IEEE14",
    "rte_case14_opponent": "IEEE14",
    "rte_case14_test": "IEEE14",
    "l2rpn_case14_sandbox": "IEEE14",
    "educ_case14_redisp": "IEEE14",
    "educ_case14_storage": "IEEE14",
    "l2rpn_neurips_2020_track1": "IEEE118_R2",
    "l2rpn_wcci_2020": "IEEE118",
    "l2rpn_neurips_2020_track2": "IEEE118",
}


class AgentError(Exception):
    """An external agent failed while playing (the episode counts as failed)."""


class Grid2opAgent:
    """A grid2op ``BaseAgent`` as a gridfactor agent.

    Args:
        name: the label of its rows.
        build: ``build(env) -> BaseAgent``, called once per process by :meth:`prepare`.
    """

    def __init__(self, name: str, build: Any) -> None:
        self.name = name
        self._build = build
        self.agent: Any = None
        self.reward = 0.0  # the last reward, handed to ``act`` as grid2op's Runner does

    def prepare(self, env: Any) -> None:
        if self.agent is None:
            try:
                self.agent = self._build(env)
            except UserError:
                raise
            except Exception as exc:  # noqa: BLE001 - the agent's own failure, reported
                raise AgentError(f"{self.name}: building it failed: {_describe(exc)}") from exc

    def reset(self, obs: Any = None) -> None:
        """A new episode: grid2op's ``BaseAgent.reset(obs)``."""
        self.reward = 0.0
        if self.agent is not None and obs is not None:
            try:
                self.agent.reset(obs)
            except Exception as exc:  # noqa: BLE001
                raise AgentError(f"{self.name}: reset failed: {_describe(exc)}") from exc

    def act(self, obs: Any, env: Any) -> Any:
        from grid2op.Action import BaseAction

        self.prepare(env)
        try:
            action = self.agent.act(obs, self.reward, False)
        except Exception as exc:  # noqa: BLE001
            raise AgentError(f"{self.name}: act failed: {_describe(exc)}") from exc
        if not isinstance(action, BaseAction):
            raise AgentError(
                f"{self.name}: act returned {type(action).__name__}, not a grid2op action"
            )
        return action


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


# -- L2RPN submissions ----------------------------------------------------------------------


def submission_entry(folder: str | Path) -> Any:
    """The ``make_agent`` function of a submission folder; UserError if there is none."""
    folder = Path(folder).resolve()
    init = folder / "__init__.py"
    if not init.is_file():
        raise UserError(
            f"--submission {folder} has no __init__.py; pass an L2RPN submission folder (a "
            f"package whose __init__.py defines {SUBMISSION_ENTRY}(env, this_directory_path))"
        )
    name = f"gridfactor_submission_{abs(hash(str(folder))):x}"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(
            name, init, submodule_search_locations=[str(folder)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - the folder's own code
            del sys.modules[name]
            raise UserError(
                f"--submission {folder}: importing its __init__.py failed ({_describe(exc)}); "
                "fix the submission or install what it imports"
            ) from exc
    entry = getattr(module, SUBMISSION_ENTRY, None)
    if not callable(entry):
        raise UserError(
            f"--submission {folder}: its __init__.py defines no {SUBMISSION_ENTRY}(env, "
            "this_directory_path); an L2RPN submission must"
        )
    return entry


def submission_agent(folder: str | Path, label: str) -> Grid2opAgent:
    """The submission's agent (built on first use, by ``make_agent(env, folder)``)."""
    folder = Path(folder).resolve()
    entry = submission_entry(folder)
    return Grid2opAgent(label, lambda env: entry(env, str(folder)))


def check_submission(folder: str | Path, env: Any) -> None:
    """Build the submission's agent once on ``env``: a folder whose ``make_agent`` raises,
    or returns no grid2op agent, is refused before any episode is played (UserError)."""
    entry = submission_entry(folder)
    try:
        agent = entry(env, str(Path(folder).resolve()))
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise UserError(
            f"--submission {folder}: make_agent failed ({_describe(exc)}); fix the submission"
        ) from exc
    if not callable(getattr(agent, "act", None)):
        raise UserError(
            f"--submission {folder}: make_agent returned {type(agent).__name__}, not a grid2op "
            "agent (an object with act(observation, reward, done))"
        )


# -- the public peer: l2rpn-baselines' ExpertAgent ------------------------------------------


def check_expertop(env_name: str) -> str:
    """ExpertAgent's grid name for ``env_name``; UserError if it does not know the grid or
    the ``peers`` extra is not installed."""
    # a path's folder name, or an env's env_name (grid2op appends the backend's class)
    name = re.sub(r"(LightSim|PandaPower)Backend$", "", Path(env_name).name)
    grid = EXPERTOP_GRIDS.get(name)
    if grid is None:
        raise UserError(
            f"expertop does not support {env_name}: l2rpn-baselines' ExpertAgent knows the "
            f"grids of {', '.join(sorted(EXPERTOP_GRIDS))}"
        )
    try:
        from l2rpn_baselines.ExpertAgent import expertAgent
    except ImportError as exc:
        raise UserError(
            "expertop needs l2rpn-baselines and expertop4grid: pip install 'gridfactor[peers]'"
        ) from exc
    if not expertAgent._CAN_USE_EXPERT_AGENT:
        raise UserError("expertop needs expertop4grid: pip install 'gridfactor[peers]'")
    return grid


def expertop_agent(env_name: str) -> Grid2opAgent:
    """l2rpn-baselines' ``ExpertAgent`` for the grid of ``env_name``, with its default
    settings (acts at rho >= 1, simulates at most 25 topologies ranked by its overflow
    graph, puts split substations back when that is safe)."""
    grid = check_expertop(env_name)

    def build(env: Any) -> Any:
        import logging

        from l2rpn_baselines.ExpertAgent import ExpertAgent

        logging.getLogger().setLevel(logging.WARNING)  # it logs every decision at INFO
        return ExpertAgent(env.action_space, env.observation_space, "expertop", gridName=grid)

    return Grid2opAgent("expertop", build)
