"""The decision frame every zone-based agent shares: who decides, when, on what.

While every line has ``rho < danger`` nothing is decided (the high-level rules reconnect
lines). When unsafe, CAPA ranks the substations owned by some zone agent and the agent of
the first one decides, seeing its observation (its zone's part of the grid, or the whole
grid). The decision env (training), the trained agents, the zone expert and the
demonstrations all use this one class, so they agree on every decision.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from gridfactor.agents.cluster import ClusterAgent, ObservationEncoder, build_agents
from gridfactor.agents.compiled import frame_tables
from gridfactor.agents.expert import in_cooldown, simulate_candidate
from gridfactor.agents.high_level import DANGER, HighLevelRules, check_reconnect
from gridfactor.envs.topology import PlayableActions
from gridfactor.factorization import Factorization


class DecisionFrame:
    """Zone agents of a factorization on one grid2op env.

    Args:
        factorization: the zones (clusters of lines and substations).
        env: a grid2op env of the factorization's grid (its action space builds actions).
        obs_mode: "local" or "global" (see :class:`ObservationEncoder`).
        danger: rho threshold of the high-level rules.
        action_sets: optional per-agent action subsets (see :func:`build_agents`).
        reconnect: what the high-level agent does with a disconnected line when safe
            (:data:`RECONNECT_MODES`): reconnect it when grid2op allows ("always"), only
            when the simulated step after it stays below ``danger`` ("checked"), never.
    """

    def __init__(
        self,
        factorization: Factorization,
        env: Any,
        obs_mode: str = "local",
        danger: float = DANGER,
        action_sets: dict[str, list[tuple[int, int]]] | None = None,
        reconnect: str = "always",
    ) -> None:
        self.factorization = factorization
        self.agents: list[ClusterAgent] = build_agents(factorization, env, action_sets)
        self.by_id = {a.agent_id: a for a in self.agents}
        self.encoders = {a.agent_id: ObservationEncoder(a, env, obs_mode) for a in self.agents}
        self.sub_owner = {int(s): a.agent_id for a in self.agents for s in a.subs}
        self.candidate_subs = sorted(self.sub_owner)
        self.rules = HighLevelRules(danger)
        self.reconnect = check_reconnect(reconnect)
        self.obs_mode = obs_mode
        self.action_space_id = id(env.action_space)
        self.playable = PlayableActions(env.action_space)
        or_sub, ex_sub = np.asarray(env.line_or_to_subid), np.asarray(env.line_ex_to_subid)
        index_of = {aid: i for i, aid in enumerate(self.agent_ids)}
        self.tables = frame_tables(
            self.candidate_subs,
            [np.flatnonzero((or_sub == s) | (ex_sub == s)) for s in self.candidate_subs],
            [index_of[self.sub_owner[s]] for s in self.candidate_subs],
            [self.encoders[aid] for aid in self.agent_ids],
        )

    @property
    def agent_ids(self) -> list[str]:
        return [a.agent_id for a in self.agents]

    def is_unsafe(self, obs: Any) -> bool:
        return self.rules.is_unsafe(obs)

    def choose_agent(self, obs: Any) -> tuple[str, int]:
        """(agent id, substation) that CAPA hands the decision to: the first of
        :meth:`HighLevelRules.rank_substations`, compiled (tests check they agree)."""
        sub = self.candidate_subs[self.tables.capa_first(obs)]
        return self.sub_owner[sub], sub

    def encode(self, agent: str, obs: Any) -> np.ndarray:
        """(d,) float32 observation of ``agent``."""
        return self.encoders[agent](obs)

    def action(self, agent: str, index: int, obs: Any) -> Any:
        """Action ``index`` of ``agent`` as it is played in ``obs``."""
        return self.playable(self.by_id[agent].actions[index], obs)

    def candidates(self, agent: str, obs: Any, skip: np.ndarray | None = None) -> list[Any]:
        """Every action of ``agent`` as it is played in ``obs`` (same order and indices);
        None where ``skip`` ((n_actions,) bool) is True: not built, for a caller that
        neither simulates nor plays them (a guard asks for 4 of thousands)."""
        actions = self.by_id[agent].actions
        if skip is None:
            return [self.playable(action, obs) for action in actions]
        return [None if s else self.playable(a, obs) for a, s in zip(actions, skip, strict=True)]

    def in_cooldown(self, agent: str, obs: Any) -> np.ndarray:
        """(n_actions,) bool: the actions of ``agent`` whose substation is in cooldown in
        ``obs`` (grid2op refuses them and plays do nothing; never do nothing itself)."""
        return in_cooldown(obs, self.by_id[agent].action_subs)

    def safe_action(self, obs: Any, action_space: Any) -> Any:
        """The rules' action when nothing is decided: reconnect a line (as
        :attr:`reconnect` says), else do nothing."""
        action = None
        if self.reconnect != "never":
            action = self.rules.reconnect_action(obs, action_space)
        if action is not None and self.reconnect == "checked":
            max_rho, _ = simulate_candidate(obs, action)  # inf unless feasible
            if not max_rho < self.rules.danger:
                action = None
        return action_space({}) if action is None else action


# (key) -> (the action space, kept alive so that its id is not reused; the frame)
_FRAMES: dict[tuple, tuple[Any, DecisionFrame]] = {}
_MAX_FRAMES = 8


def frame_for(
    factorization: Factorization,
    env: Any,
    obs_mode: str = "local",
    danger: float = DANGER,
    action_sets: dict[str, list[tuple[int, int]]] | None = None,
    reconnect: str = "always",
) -> DecisionFrame:
    """:class:`DecisionFrame` built once per process and action space.

    Building one enumerates every unitary action of the zones' substations (~10 s on the
    36-bus grid); an evaluation plays many episodes, and grid2op's Runner (``--score``)
    plays them again on its own env, so agents switch between a few action spaces.
    """
    key = (
        id(env.action_space),
        json.dumps(factorization.to_dict(), sort_keys=True),
        obs_mode,
        float(danger),
        json.dumps(action_sets, sort_keys=True),
        reconnect,
    )
    hit = _FRAMES.get(key)
    if hit is None:  # (an entry keeps its action space alive: its id cannot be reused)
        if len(_FRAMES) >= _MAX_FRAMES:
            _FRAMES.pop(next(iter(_FRAMES)))  # the oldest
        frame = DecisionFrame(factorization, env, obs_mode, danger, action_sets, reconnect)
        hit = (env.action_space, frame)
        _FRAMES[key] = hit
    return hit[1]
