"""gridfactor agents as grid2op agents (``grid2op.Agent.BaseAgent``).

grid2op's tools (``grid2op.Runner``, the L2RPN scorers of ``grid2op.utils``, submissions)
call ``agent.act(observation, reward, done)``; gridfactor's agents take ``act(obs, env)``
and only use the env for its action space and the grid's description (both are on the
action space). :class:`GridfactorAgent` wraps any of them, so the decision frame (danger
threshold, reconnection, CAPA hand-off to a zone agent) runs unchanged inside grid2op.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grid2op.Agent import BaseAgent

from gridfactor.agents.baselines import BASELINES, Agent, make_baseline
from gridfactor.agents.exported import EXPORT_MANIFEST, load_exported_agent
from gridfactor.agents.high_level import DANGER
from gridfactor.errors import UserError


class ActionSpaceEnv:
    """What gridfactor agents need from an env, built from its action space alone.

    The action space carries the grid's class attributes (n_line, n_sub, dim_topo,
    line_or_to_subid, grid_objects_types, ...), which is all the decision frame reads.
    """

    def __init__(self, action_space: Any) -> None:
        self.action_space = action_space

    def __getattr__(self, name: str) -> Any:
        return getattr(self.action_space, name)


class GridfactorAgent(BaseAgent):
    """A gridfactor agent (baseline or trained) as a ``grid2op.Agent.BaseAgent``.

    Args:
        agent: any object with ``act(obs, env)`` (see :class:`gridfactor.evaluate.Agent`).
        action_space: the action space of the env the agent plays on.
    """

    def __init__(self, agent: Agent, action_space: Any) -> None:
        super().__init__(action_space)
        self.agent = agent
        self.name = agent.name
        self.env_view = ActionSpaceEnv(action_space)

    def act(self, observation: Any, reward: float, done: bool = False) -> Any:
        return self.agent.act(observation, self.env_view)

    def reset(self, obs: Any) -> None:
        if hasattr(self.agent, "reset"):
            self.agent.reset()

    def seed(self, seed: int) -> tuple:
        # grid2op's Runner seeds the agent of each episode (agent_seeds): the random baseline
        # then draws what gridfactor's evaluation draws with that scenario's seed
        if hasattr(self.agent, "seed"):
            self.agent.seed(int(seed))
        return super().seed(seed)


def _factorization(factorization: Any) -> Any:
    """A Factorization from a Factorization, a dict or a factorization.json path (or None)."""
    from gridfactor.factorization import Factorization

    if factorization is None or isinstance(factorization, Factorization):
        return factorization
    if isinstance(factorization, dict):
        return Factorization.from_dict(factorization)
    path = Path(factorization)
    if not path.is_file():
        raise UserError(
            f"factorization {path} does not exist; pass a factorization.json written by "
            "gridfactor factorize"
        )
    return Factorization.load(path)


def _check_grid(fact: Any, action_space: Any, what: str) -> None:
    if fact.n_targets != action_space.n_line or fact.n_inputs != action_space.n_sub:
        raise UserError(
            f"{what} has {fact.n_targets} lines x {fact.n_inputs} substations but the env has "
            f"{action_space.n_line} x {action_space.n_sub}; use an env of the grid it was made for"
        )


def env_name_of(env: Any) -> str:
    """The name of a grid2op env (grid2op appends its backend's class to ``env_name``)."""
    return str(getattr(env, "env_name", ""))


def load_agent(
    agent: str | Path,
    env: Any,
    *,
    factorization: Any = None,
    danger: float = DANGER,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    guard: int | None = None,
) -> GridfactorAgent:
    """Any gridfactor agent as a grid2op agent on ``env`` (its action space is kept).

    Args:
        agent: a baseline name (do-nothing, reconnect, expert, expert-zone, random), a
            ``gridfactor train`` run directory, or a folder written by ``gridfactor export``.
        env: the grid2op env (or anything with the same ``action_space``) it will play on.
        factorization: zones of ``expert-zone``: a Factorization, its dict or a
            factorization.json path (trained agents use their own zones).
        danger: the baselines' rho threshold (trained agents use the one they were trained
            with).
        seed: seed of the ``random`` baseline (grid2op's ``Runner`` re-seeds it per episode).
        checkpoint: for a training run, the checkpoint to load (default: its final one).
        guard: for trained agents, as ``gridfactor evaluate --guard`` (None: 0 for a run,
            the exported guard for an export folder).
    """
    space = env.action_space
    name = str(agent)
    if name in BASELINES:
        fact = _factorization(factorization)
        if fact is not None:
            _check_grid(fact, space, "the factorization")
        inner: Any = make_baseline(
            name, danger=danger, seed=seed, factorization=fact, env_name=env_name_of(env)
        )
        if hasattr(inner, "prepare") and name == "expertop":
            inner.prepare(env)  # a grid2op agent of its own, built on the real env
        return GridfactorAgent(inner, space)
    path = Path(agent)
    if (path / EXPORT_MANIFEST).is_file():
        inner = load_exported_agent(path, guard=guard)
    elif (path / "config.json").is_file():
        from gridfactor.agents.trained import load_trained_agent

        inner = load_trained_agent(path, checkpoint, guard=guard or 0)
    else:
        raise UserError(
            f"unknown agent {name!r}: not a baseline ({', '.join(BASELINES)}), a training run "
            "directory or a gridfactor export folder"
        )
    _check_grid(inner.factorization, space, f"the agent of {path}")
    wrapped = GridfactorAgent(inner, space)
    inner.bind(wrapped.env_view)  # policies vs this env's actions: fails here, not mid-episode
    return wrapped
