"""Baseline agents sharing one tiny interface with the trained agents.

Every agent has a ``name`` and ``act(obs, env) -> grid2op action``; the evaluation loop needs
nothing else, so trained agents (:func:`gridfactor.agents.trained.load_trained_agent`) and the
baselines below are interchangeable.

Baselines (``--agents`` names):

- ``do-nothing``: never acts.
- ``reconnect``: the high-level rules alone: reconnect a disconnected line when allowed,
  otherwise do nothing (the learned agents' decision frame with no learned policy).
- ``expert``: the usual L2RPN greedy expert: when unsafe (max rho >= danger) simulate every
  unitary topology action of every substation, the reconnection (if any) and do-nothing with
  ``obs.simulate`` and play the one with the lowest simulated max rho; when safe, reconnect.
- ``expert-zone``: the expert restricted to the zones of a factorization: when unsafe, CAPA
  picks the zone (as for the learned agents) and only that zone's unitary topology actions,
  the reconnection and do-nothing are simulated. Against ``expert`` it measures what the
  factorization costs before any learning.
- ``expert-recovery``, ``expert-zone-recovery``: the same experts, which also put a split
  substation (their own, or their zones') back to its reference topology when safe: when
  no line is to be reconnected and the simulated max rho of the put-back stays below
  ``safe_rho`` (:class:`gridfactor.agents.expert.Recovery`).
- ``random``: sanity floor in the same decision frame: when unsafe a uniformly random unitary
  topology action, when safe the reconnection rule.
- ``expertop``: the public peer, l2rpn-baselines' ``ExpertAgent`` (expertop4grid; needs
  ``pip install gridfactor[peers]``), see :mod:`gridfactor.agents.external`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from gridfactor.agents.expert import Recovery, best_by_simulation, in_cooldown
from gridfactor.agents.high_level import DANGER
from gridfactor.errors import UserError

BASELINES = (
    "do-nothing",
    "reconnect",
    "expert",
    "expert-zone",
    "expert-recovery",
    "expert-zone-recovery",
    "random",
    "expertop",
)
# baselines that need the zones of a factorization
ZONE_BASELINES = ("expert-zone", "expert-zone-recovery")
# the experts' default safe level for putting a substation back (below the danger 0.9)
RECOVERY_SAFE_RHO = 0.8


@runtime_checkable
class Agent(Protocol):
    """What the evaluation needs from an agent (baseline or trained). An agent may also have
    ``prepare(env)``: a one-time set-up for ``env`` (enumerating actions, building the
    decision frame) that the evaluation runs before it starts timing ``act``."""

    name: str

    def act(self, obs: Any, env: Any) -> Any:
        """Return the grid2op action to play on ``env`` given its observation ``obs``."""
        ...


def unitary_topology_actions(env: Any) -> list[Any]:
    """The unitary "set bus" topology actions of every substation (grid2op's enumeration,
    capped per substation as the agents' action spaces are, see
    :data:`gridfactor.agents.cluster.MAX_SUB_ACTIONS`).

    Cached on the env object: the list is the same for every episode (150 actions on
    rte_case14_realistic).
    """
    return _unitary_topology(env)[0]


def unitary_topology_subs(env: Any) -> np.ndarray:
    """(n,) the substation of each of :func:`unitary_topology_actions`."""
    return _unitary_topology(env)[1]


def _unitary_topology(env: Any) -> tuple[list[Any], np.ndarray]:
    cached = getattr(env, "_gridfactor_unitary_topo", None)
    if cached is None:
        from gridfactor.agents.cluster import substation_actions

        per_sub = substation_actions(env.action_space)
        actions = [a for acts in per_sub.values() for a in acts]
        subs = np.array([s for s, acts in per_sub.items() for _ in acts], dtype=int)
        cached = env._gridfactor_unitary_topo = (actions, subs)
    return cached


def playable_actions(env: Any) -> Any:
    """The env's :class:`~gridfactor.envs.topology.PlayableActions` (cached on the env):
    topology actions are played without the ends of lines that are out."""
    cached = getattr(env, "_gridfactor_playable", None)
    if cached is None or cached.action_space is not env.action_space:
        from gridfactor.envs.topology import PlayableActions

        cached = PlayableActions(env.action_space)
        env._gridfactor_playable = cached
    return cached


class DoNothingAgent:
    name = "do-nothing"

    def act(self, obs: Any, env: Any) -> Any:
        return env.action_space({})


class ReconnectAgent:
    """High-level rules only: reconnect a line when possible, otherwise do nothing."""

    name = "reconnect"

    def __init__(self, danger: float = DANGER) -> None:
        from gridfactor.agents.high_level import HighLevelRules

        self.rules = HighLevelRules(danger=danger)

    def act(self, obs: Any, env: Any) -> Any:
        reco = self.rules.reconnect_action(obs, env.action_space)
        return reco if reco is not None else env.action_space({})


class ExpertAgent(ReconnectAgent):
    """Greedy one-step expert: lowest simulated max rho among all unitary topologies;
    with ``safe_rho``, it also puts split substations back when safe (:class:`Recovery`)."""

    name = "expert"

    def __init__(self, danger: float = DANGER, safe_rho: float | None = None) -> None:
        super().__init__(danger)
        self.safe_rho = safe_rho
        self.recovery: Recovery | None = None
        if safe_rho is not None:
            self.name = "expert-recovery"

    def prepare(self, env: Any) -> None:
        unitary_topology_actions(env)
        if self.safe_rho is not None and self.recovery is None:
            subs = np.unique(unitary_topology_subs(env))
            self.recovery = Recovery(env.action_space, subs, self.safe_rho)

    def act(self, obs: Any, env: Any) -> Any:
        do_nothing = env.action_space({})
        reco = self.rules.reconnect_action(obs, env.action_space)
        if not self.rules.is_unsafe(obs):
            if reco is None and self.safe_rho is not None:
                self.prepare(env)
                reco = self.recovery.action(obs)
            return reco if reco is not None else do_nothing
        playable = playable_actions(env)
        candidates = [do_nothing, *(playable(a, obs) for a in unitary_topology_actions(env))]
        skip = np.concatenate([[False], in_cooldown(obs, unitary_topology_subs(env))])
        if reco is not None:
            candidates.append(reco)
            skip = np.append(skip, False)
        best, _, _ = best_by_simulation(obs, candidates, skip)
        return candidates[best]


class ZoneExpertAgent:
    """The greedy expert inside the zones' decision frame: when unsafe, simulate only the
    CAPA-chosen zone's actions (plus do-nothing and the reconnection)."""

    name = "expert-zone"

    def __init__(
        self, factorization: Any, danger: float = DANGER, safe_rho: float | None = None
    ) -> None:
        self.factorization = factorization
        self.danger = danger
        self.safe_rho = safe_rho
        self._frame: Any = None
        self.recovery: Recovery | None = None
        if safe_rho is not None:
            self.name = "expert-zone-recovery"

    def prepare(self, env: Any) -> Any:
        """The decision frame on ``env`` (built once per process and action space)."""
        from gridfactor.agents.frame import frame_for

        if self._frame is None or self._frame.action_space_id != id(env.action_space):
            self._frame = frame_for(self.factorization, env, "local", self.danger)
            if self.safe_rho is not None:
                subs = self._frame.candidate_subs
                self.recovery = Recovery(env.action_space, subs, self.safe_rho)
        return self._frame

    def act(self, obs: Any, env: Any) -> Any:
        frame = self.prepare(env)
        if not frame.is_unsafe(obs):
            action = frame.rules.reconnect_action(obs, env.action_space)
            if action is None and self.recovery is not None:
                action = self.recovery.action(obs)
            return env.action_space({}) if action is None else action
        aid, _ = frame.choose_agent(obs)
        candidates = frame.candidates(aid, obs)  # do nothing first
        skip = frame.in_cooldown(aid, obs)
        reco = frame.rules.reconnect_action(obs, env.action_space)
        if reco is not None:
            candidates.append(reco)
            skip = np.append(skip, False)
        best, _, _ = best_by_simulation(obs, candidates, skip)
        return candidates[best]


class RandomTopologyAgent(ReconnectAgent):
    """When unsafe, a uniformly random unitary topology action (seeded); else reconnect."""

    name = "random"

    def __init__(self, danger: float = DANGER, seed: int = 0) -> None:
        super().__init__(danger)
        self.seed(seed)

    def seed(self, seed: int) -> None:
        """Restart the random draws from ``seed`` (same as a fresh agent with that seed)."""
        self.rng = np.random.default_rng(seed)

    def act(self, obs: Any, env: Any) -> Any:
        if self.rules.is_unsafe(obs):
            actions = unitary_topology_actions(env)
            return playable_actions(env)(actions[int(self.rng.integers(len(actions)))], obs)
        return super().act(obs, env)


def parse_agent_names(text: str, *, allow_empty: bool = False) -> list[str]:
    """Parse ``--agents do-nothing,expert`` into validated baseline names (order kept);
    ``allow_empty``: '' is no baseline (other agents are evaluated)."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names and allow_empty:
        return []
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise UserError(
            f"unknown agent {unknown[0]!r}; choose among {', '.join(BASELINES)} "
            "(trained agents are given with --run DIR)"
        )
    if not names:
        raise UserError(f"--agents is empty; choose among {', '.join(BASELINES)}")
    return list(dict.fromkeys(names))


def make_baseline(
    name: str,
    *,
    danger: float = DANGER,
    seed: int = 0,
    factorization: Any = None,
    env_name: str | None = None,
    safe_rho: float = RECOVERY_SAFE_RHO,
) -> Agent:
    """A fresh baseline agent by name (``seed`` only matters for ``random``,
    ``factorization`` for the zone experts, ``env_name`` for ``expertop``: its grid,
    ``safe_rho`` for the ``-recovery`` experts)."""
    if name == "expertop":
        from gridfactor.agents.external import expertop_agent

        return expertop_agent(env_name or "")
    if name in ZONE_BASELINES:
        if factorization is None:
            raise UserError(f"{name} needs zones: pass --factorization FILE or a distributed --run")
        recovery = safe_rho if name == "expert-zone-recovery" else None
        return ZoneExpertAgent(factorization, danger, recovery)
    if name == "expert-recovery":
        return ExpertAgent(danger, safe_rho)
    if name == "do-nothing":
        return DoNothingAgent()
    if name == "reconnect":
        return ReconnectAgent(danger)
    if name == "expert":
        return ExpertAgent(danger)
    if name == "random":
        return RandomTopologyAgent(danger, seed=seed)
    raise UserError(f"unknown agent {name!r}; choose among {', '.join(BASELINES)}")
