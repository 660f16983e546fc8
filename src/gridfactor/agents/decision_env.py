"""Turn-based RLlib MultiAgentEnv over a Grid2Op env: one agent per cluster.

One RLlib step = one decision. Inside ``reset``/``step`` the high-level rule agent plays the
grid2op steps where nothing has to be decided: while every line has ``rho < danger`` it does
nothing (or reconnects a disconnected line whose cooldown is over, see
:class:`gridfactor.agents.high_level.HighLevelRules`). When the grid becomes unsafe it ranks
the candidate substations (CAPA) and hands the decision to the agent of the cluster owning the
first one: only that agent gets an observation and acts.

Reward credit: the grid2op rewards of the step where an agent acts and of all the internal
steps that follow, up to the next decision (of any agent) or the end of the episode, are
credited to that agent. RLlib sums the rewards an agent gets while it waits ("hanging"
rewards) into its next transition, so an agent's transition reward is the sum of the grid2op
rewards that followed its own actions until its next decision; the rewards of all agents add
up to the grid2op return of the episode (minus the steps before the first decision, which
nobody caused).

Episodes: a random chronic of the allowed set and a random start step, at most
``episode_steps`` grid2op steps. A grid2op game over terminates the episode; reaching
``episode_steps`` or the end of the chronic truncates it. A reset whose episode ends before any
decision (the grid stayed safe all along) silently starts another one (its statistics are
still reported).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from gridfactor.agents.cluster import centralized_factorization, check_factorization_for_env
from gridfactor.agents.frame import DecisionFrame
from gridfactor.agents.high_level import DANGER
from gridfactor.envs.chronics import check_augment, perturb_next_episodes, perturbed_chronics
from gridfactor.envs.grid2op_env import make_grid2op_env, reset_env
from gridfactor.envs.split import count_chronics
from gridfactor.errors import UserError
from gridfactor.factorization import Factorization

# a reset tries this many episodes before giving up finding an unsafe state
MAX_SILENT_EPISODES = 50


@dataclass
class DecisionEnvConfig:
    """Everything needed to build a DecisionEnv (also what RLlib passes as env_config).

    Attributes:
        env_name: grid2op env name (offline test env) or path.
        factorization: the Factorization as a dict (``Factorization.to_dict()``), or None for
            the centralized agent (one cluster with every substation that has actions).
        obs_mode: "local" (cluster's part of the grid) or "global" (whole grid).
        danger: rho threshold of the high-level agent.
        reconnect: the high-level agent's reconnection of lines when safe ("always",
            "checked" by a simulation, "never"; see ``DecisionFrame``).
        episode_steps: max grid2op steps of an episode.
        chronics: allowed chronic ids (None = all).
        start_range: (first, last) allowed start steps (as fractions of the chronic length,
            e.g. (0.0, 0.8)); episodes start uniformly in it.
        reward: grid2op reward class name (in ``grid2op.Reward``).
        seed: base seed; the env runner index is added so parallel runners differ.
        action_sets: optional per-agent action subsets, agent id -> [[sub, index], ...]
            (see :func:`gridfactor.agents.cluster.build_agents`).
        augment: 0: play the chronics as they are; > 0: every episode plays a perturbed
            copy, loads scaled by a level in [1 - augment, 1 + augment] and each load and
            generator by its own factor (see :func:`gridfactor.envs.chronics.draw_perturbation`).
    """

    env_name: str = "rte_case14_realistic"
    factorization: dict[str, Any] | None = None
    obs_mode: str = "local"
    danger: float = DANGER
    reconnect: str = "always"
    episode_steps: int = 500
    chronics: list[int] | None = None
    start_range: tuple[float, float] = (0.0, 1.0)
    reward: str = "CloseToOverflowReward"
    seed: int = 0
    action_sets: dict[str, list[list[int]]] | None = None
    augment: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def factorization_of(config: DecisionEnvConfig, env: Any) -> Factorization:
    if config.factorization is None:
        return centralized_factorization(env, config.env_name)
    fact = Factorization.from_dict(config.factorization)
    check_factorization_for_env(fact, env, config.env_name)
    return fact


class DecisionEnv(MultiAgentEnv):
    """Turn-based multi-agent decision env (see the module docstring).

    Observations are float32 Box vectors (see ObservationEncoder), actions Discrete(1 +
    number of unitary topology actions of the agent's substations), index 0 = do nothing.
    ``infos`` of the acting agent hold ``grid2op_steps`` (elapsed in the episode) and
    ``sub`` (the CAPA substation that triggered the decision).
    """

    def __init__(self, config: dict[str, Any] | DecisionEnvConfig | None = None) -> None:
        super().__init__()
        if config is None:
            config = DecisionEnvConfig()
        elif not isinstance(config, DecisionEnvConfig):
            worker = getattr(config, "worker_index", 0)
            config = DecisionEnvConfig(**dict(config))
            config.seed = int(config.seed) + 1000 * int(worker)
        self.config = config
        self.g2env = make_grid2op_env(config.env_name, config.reward)
        self.factorization = factorization_of(config, self.g2env)
        self.frame = DecisionFrame(
            self.factorization,
            self.g2env,
            config.obs_mode,
            config.danger,
            {k: [tuple(x) for x in v] for k, v in (config.action_sets or {}).items()},
            config.reconnect,
        )
        self.cluster_agents = self.frame.agents
        self.by_id = self.frame.by_id
        self.encoders = self.frame.encoders
        self.rules = self.frame.rules
        self.do_nothing = self.g2env.action_space({})

        self.possible_agents = [a.agent_id for a in self.cluster_agents]
        self.agents = list(self.possible_agents)
        self.observation_spaces = {
            aid: gym.spaces.Box(0.0, enc.high, shape=(enc.size,), dtype=np.float32)
            for aid, enc in self.encoders.items()
        }
        self.action_spaces = {
            a.agent_id: gym.spaces.Discrete(a.n_actions) for a in self.cluster_agents
        }

        n_chronics = count_chronics(self.g2env)
        self.chronics = list(range(n_chronics)) if config.chronics is None else config.chronics
        if not self.chronics or max(self.chronics) >= n_chronics or min(self.chronics) < 0:
            raise UserError(
                f"chronics {self.chronics} not in 0..{n_chronics - 1} for {config.env_name}; "
                "fix the train/validation split"
            )
        check_augment(config.augment)
        if config.augment > 0:
            perturbed_chronics(self.g2env, config.env_name)  # fails here, not at a reset
        self.rng = np.random.default_rng(config.seed)
        self.g2env.seed(int(config.seed))
        # Statistics drained by the training callback.
        self.pending_steps = 0
        self.pending_episodes: list[dict[str, float]] = []
        self._reset_episode_state()

    # ---- episode bookkeeping ------------------------------------------------------------
    def _reset_episode_state(self) -> None:
        self.obs = None
        self.steps = 0
        self.safe_steps = 0
        self.g2_return = 0.0
        self.decisions: dict[str, int] = {aid: 0 for aid in self.possible_agents}
        self.returns: dict[str, float] = {aid: 0.0 for aid in self.possible_agents}
        self.acted: list[str] = []
        self.last_obs: dict[str, np.ndarray] = {}
        self.current_agent: str | None = None
        self.current_sub = -1

    def _finish_episode(self, game_over: bool) -> None:
        stats = {
            "survival_steps": float(self.steps),
            "safe_steps": float(self.safe_steps),
            "game_over": float(game_over),
            "grid2op_return": float(self.g2_return),
            "decisions": float(sum(self.decisions.values())),
        }
        for aid in self.possible_agents:
            stats[f"decisions/{aid}"] = float(self.decisions[aid])
            stats[f"return/{aid}"] = float(self.returns[aid])
        self.pending_episodes.append(stats)

    def _start_grid2op_episode(self) -> None:
        chronic = int(self.rng.choice(self.chronics))
        length = int(self.g2env.chronics_handler.max_timestep())
        lo, hi = self.config.start_range
        first = int(lo * length)
        # leave room for a full episode when the allowed range permits it
        last = max(first, min(int(hi * length), length - self.config.episode_steps) - 1)
        start = int(self.rng.integers(first, last + 1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            options: dict[str, int] = {"time serie id": chronic}
            if start > 0:  # grid2op refuses "init ts" == 0
                options["init ts"] = start
            seed = int(self.rng.integers(2**31 - 1))
            if self.config.augment > 0:
                perturb_next_episodes(self.g2env, self.rng, self.config.augment)
            self.obs = reset_env(self.g2env, seed=seed, options=options)
        self.chronic, self.start = chronic, start

    def _step_grid2op(self, action: Any, credit: str | None) -> bool:
        """One grid2op step; returns done (game over or end of chronic)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obs, reward, done, info = self.g2env.step(action)
        self.steps += 1
        self.pending_steps += 1
        self.g2_return += float(reward)
        if credit is not None:
            self._credit[credit] = self._credit.get(credit, 0.0) + float(reward)
            self.returns[credit] += float(reward)
        self._game_over = bool(done and info.get("exception"))
        if not done:
            self.obs = obs
        return bool(done)

    def _run_until_decision(self, credit: str | None) -> str:
        """Play the rule agent until a decision is needed; 'decide', 'over' or 'truncated'."""
        while True:
            if self.steps >= self.config.episode_steps:
                return "truncated"
            if self.rules.is_unsafe(self.obs):
                return "decide"
            self.safe_steps += 1
            if self._step_grid2op(
                self.frame.safe_action(self.obs, self.g2env.action_space), credit
            ):
                return "over" if self._game_over else "truncated"

    def _choose_agent(self) -> str:
        aid, self.current_sub = self.frame.choose_agent(self.obs)
        return aid

    def _agent_obs(self, aid: str) -> np.ndarray:
        vec = self.encoders[aid](self.obs)
        self.last_obs[aid] = vec
        return vec

    # ---- MultiAgentEnv API --------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
            self.g2env.seed(int(seed))
        for _ in range(MAX_SILENT_EPISODES):
            self._reset_episode_state()
            self._credit = {}
            self._game_over = False
            self._start_grid2op_episode()
            status = self._run_until_decision(credit=None)
            if status == "decide":
                aid = self._choose_agent()
                self.current_agent = aid
                return {aid: self._agent_obs(aid)}, {aid: self._info()}
            self._finish_episode(game_over=status == "over")
        raise RuntimeError(
            f"no unsafe state in {MAX_SILENT_EPISODES} episodes of {self.config.env_name}: "
            f"lower the danger threshold ({self.config.danger})"
        )

    def _info(self) -> dict[str, Any]:
        return {"grid2op_steps": self.steps, "sub": self.current_sub}

    def step(self, action_dict: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        aid = self.current_agent
        if aid is None or aid not in action_dict:
            raise ValueError(f"expected an action of {aid}, got {sorted(action_dict)}")
        index = int(action_dict[aid])
        self.decisions[aid] += 1
        if aid not in self.acted:
            self.acted.append(aid)
        self._credit = {}
        if self._step_grid2op(self.frame.action(aid, index, self.obs), credit=aid):
            status = "over" if self._game_over else "truncated"
        else:
            status = self._run_until_decision(credit=aid)
        rewards = {k: v for k, v in self._credit.items()}
        if status == "decide":
            nxt = self._choose_agent()
            self.current_agent = nxt
            return (
                {nxt: self._agent_obs(nxt)},
                rewards,
                {"__all__": False},
                {"__all__": False},
                {nxt: self._info()},
            )
        # Episode over: every agent that acted gets a last observation (RLlib needs one to
        # bootstrap truncated episodes); after a game over its last valid one is reused.
        self._finish_episode(game_over=status == "over")
        obs = {
            a: (self.last_obs[a] if status == "over" else self._agent_obs(a)) for a in self.acted
        }
        self.current_agent = None
        over = status == "over"
        return (
            obs,
            rewards,
            {"__all__": over},
            {"__all__": not over},
            {a: self._info() for a in obs},
        )

    def close(self) -> None:
        # grid2op closes its env when it is garbage collected; closing it here as well makes
        # grid2op print an "already closed" error at interpreter exit
        pass
