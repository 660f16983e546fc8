"""Trained agents for evaluation: the whole decision logic on raw grid2op observations.

:func:`load_trained_agent` reads a training run directory and loads each cluster's RLModule
straight from the checkpoint (``<ckpt>/learner_group/learner/rl_module/<policy id>``) with
torch: Ray need not be running, and one decision is a single small forward pass.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gridfactor.agents.compiled import CompiledAgents, compile_agents
from gridfactor.agents.expert import best_by_simulation
from gridfactor.agents.frame import DecisionFrame, frame_for
from gridfactor.agents.policy_net import GreedyMLP, Policy, as_greedy
from gridfactor.errors import UserError
from gridfactor.factorization import Factorization

RL_MODULE_DIR = Path("learner_group") / "learner" / "rl_module"
COORDINATORS = ("capa", "propose")
ACTION_SETS_FILE = "action_sets.json"
# a run's checkpoints: written by gridfactor.train.run, read here
CHECKPOINTS = "checkpoints"
LATEST = "latest.json"
# an ensemble's policies (written by gridfactor.agents.ensemble): <agent id>.npz
ENSEMBLE_POLICIES = "policies"


@dataclass
class TrainedAgent:
    """Greedy trained agents inside the decision frame (high-level rules + CAPA).

    Attributes:
        name: "distributed" or "centralized".
        env_name: grid2op env the agents were trained on.
        factorization: the clusters (for the centralized agent, one cluster).
        danger: rho threshold of the high-level rules.
        reconnect: the high-level rules' reconnection when safe, as in training
            ("always", "checked", "never"; see ``DecisionFrame``).
        obs_mode: "local" or "global".
        split: the run's train/validation split (see ``gridfactor.envs.split.make_split``).
        checkpoint: the checkpoint directory the policies come from (or the imitation
            weights when the run has no PPO checkpoint yet).
        policies: per agent id its policy, a :class:`GreedyMLP` (an RLlib RLModule given
            here is converted to one) or a :class:`GreedyEnsemble` of several runs'.
        action_sets: the run's per-agent action subsets (None: every unitary action).
        guard: 0 = play the policy's greedy action; k > 0 = simulate the policy's k most
            likely actions and do nothing, play the lowest simulated max rho (the L2RPN
            winners' safety net; costs k simulations per decision). Either way an
            action of a substation in cooldown is not played (see :meth:`proposals`).
        coordinator: who decides when unsafe. "capa": the agent of the substation CAPA
            ranks first (one forward pass, no simulation). "propose": every zone agent
            proposes its greedy action (its top ``max(guard, 1)`` with a guard) and the
            proposal with the lowest simulated max rho is played, do nothing included
            (one simulation per proposal: zones times fewer than the expert's thousands).
        wait_confidence: 0 = the greedy choice (do nothing when it is the most likely
            action); p > 0 = do nothing only when the policy also gives it probability
            >= p, else play the most likely action other than do nothing (the clones learn
            "do nothing" as one class against many acting ones, and wait too often).
        greedy_sets: per agent id the actions its pure (unguarded) choice is taken from
            (None: all of ``action_sets``). A run trained with every action
            (``train --full-action-set``) plays greedily only among the expert's choices
            covering ``--coverage`` of them: its rare classes are noisy alone, but worth
            simulating under a guard (docs/results.md).
    """

    name: str
    env_name: str
    factorization: Factorization
    danger: float
    obs_mode: str
    split: dict[str, Any]
    checkpoint: Path
    policies: dict[str, Policy] = field(repr=False)
    action_sets: dict[str, list[tuple[int, int]]] | None = None
    guard: int = 0
    coordinator: str = "capa"
    reconnect: str = "always"
    wait_confidence: float = 0.0
    greedy_sets: dict[str, list[tuple[int, int]]] | None = None
    _frame: DecisionFrame | None = field(default=None, init=False, repr=False)
    _greedy_masks: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)
    _compiled: CompiledAgents | None = field(default=None, init=False, repr=False)
    _agent_index: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.policies = {aid: as_greedy(p) for aid, p in self.policies.items()}
        if self.coordinator not in COORDINATORS:
            raise UserError(
                f"unknown coordinator {self.coordinator!r}; choose among {', '.join(COORDINATORS)}"
            )
        check_wait_confidence(self.wait_confidence)

    def bind(self, env: Any) -> DecisionFrame:
        """The decision frame on ``env`` (built once per process and action space)."""
        if self._frame is not None and self._frame.action_space_id == id(env.action_space):
            return self._frame
        frame = frame_for(
            self.factorization,
            env,
            self.obs_mode,
            self.danger,
            self.action_sets,
            self.reconnect,
        )
        missing = sorted(set(frame.agent_ids) - set(self.policies))
        if missing:
            raise UserError(
                f"checkpoint {self.checkpoint} has no policy for {', '.join(missing)}; "
                "use the factorization of the run"
            )
        for a in frame.agents:
            n_out = self.policies[a.agent_id].n_actions
            if n_out != a.n_actions:
                raise UserError(
                    f"policy {a.agent_id} has {n_out} actions but the env gives "
                    f"{a.n_actions}; evaluate on the env the run was trained on "
                    f"({self.env_name})"
                )
        self._greedy_masks = {}
        if self.greedy_sets is not None:
            for a in frame.agents:
                keep = {tuple(k) for k in self.greedy_sets.get(a.agent_id, a.action_keys)}
                mask = np.array([tuple(k) in keep for k in a.action_keys])
                if not mask.all():
                    self._greedy_masks[a.agent_id] = mask
        self._agent_index = {aid: i for i, aid in enumerate(frame.agent_ids)}
        self._compiled = compile_agents(
            frame.tables,
            frame.rules.danger,
            frame.agents,
            [self.policies[a.agent_id] for a in frame.agents],
            [self._greedy_masks.get(a.agent_id) for a in frame.agents],
            self.wait_confidence,
        )
        self._frame = frame
        return frame

    def choose(self, obs: Any, env: Any) -> tuple[str | None, int]:
        """(agent id, action index) the decision logic picks with no guard and CAPA;
        (None, -1) when the rules act; index 0 (do nothing) when the agent waits."""
        frame = self.bind(env)
        agent, index = self._compiled.decide(obs)
        return (None, -1) if agent < 0 else (frame.agent_ids[agent], index)

    def logits(self, aid: str, features: np.ndarray) -> np.ndarray:
        """(n_actions,) logits of agent ``aid`` for a (d,) feature vector, by the numpy
        layers (an ensemble's: the log of its mean probabilities): the reference the
        compiled decision is checked against, and what scripts inspect."""
        return self.policies[aid](features)

    def scores(self, aid: str, obs: Any) -> np.ndarray:
        """(n_actions,) float64 probabilities of agent ``aid``'s actions in ``obs`` (an
        ensemble's: the mean of its members'); the order of its logits."""
        return self._compiled.scores(self._agent_index[aid], obs)

    def feature_scores(self, aid: str, features: np.ndarray) -> np.ndarray:
        """:meth:`scores` of agent ``aid`` for its (d,) observation features."""
        return self._compiled.feature_scores(self._agent_index[aid], features)

    def proposals(self, frame: DecisionFrame, aid: str, obs: Any, k: int) -> list[int]:
        """Indices of agent ``aid``'s ``k`` most likely actions in ``obs``, without do
        nothing and without the actions of substations in cooldown; with ``k == 1`` its
        pure choice (the greedy set and the wait confidence apply).

        grid2op would refuse the latter (and play do nothing): the agent waits for its
        choice to become available rather than play a less likely action instead. The
        observations hold the cooldowns, but the clones have not learned to avoid cooling
        substations; on the 36-bus grid, taking the most likely *available* action cut
        the centralized clone's survival from 185 to 88 steps.
        """
        if k == 1:
            choice = self._compiled.choice(self._agent_index[aid], obs)
            return [choice] if choice > 0 else []
        # the first of equal scores first, as the stable sort gives (a guard's top k
        # already holds the acting actions after do nothing)
        top = np.argsort(-self.scores(aid, obs), kind="stable")[:k]
        cooling = frame.in_cooldown(aid, obs)
        return [int(i) for i in top if i != 0 and not cooling[i]]

    def prepare(self, env: Any) -> None:
        """Build the decision frame for ``env`` now and load the compiled decision (the
        evaluation calls this before it times ``act``, so that a one-time set-up, ~10 ms
        from numba's cache, is not counted as decision time)."""
        self.bind(env)
        self._compiled.warm_up(env.get_obs())

    def act(self, obs: Any, env: Any) -> Any:
        """grid2op action for the raw observation ``obs`` of ``env``: do nothing (or
        reconnect a line) when safe, else the coordinator's choice among the agents'
        :meth:`proposals`: the CAPA-chosen agent's greedy action (or the best simulated of
        its top ``guard`` and do nothing), or the best simulated of every agent's; do
        nothing when nothing is proposed."""
        frame = self.bind(env)
        if self.coordinator == "capa" and self.guard == 0:  # the pure decision: one call
            agent, index = self._compiled.decide(obs)
            if agent < 0:
                return frame.safe_action(obs, env.action_space)
            if index == 0:
                return env.action_space({})
            return frame.action(frame.agent_ids[agent], index, obs)
        if not frame.is_unsafe(obs):
            return frame.safe_action(obs, env.action_space)
        if self.coordinator == "propose":
            agents, k = frame.agent_ids, max(self.guard, 1)
        else:
            agents, k = [frame.choose_agent(obs)[0]], self.guard
        proposed = [
            frame.action(aid, i, obs) for aid in agents for i in self.proposals(frame, aid, obs, k)
        ]
        candidates = [env.action_space({}), *proposed]  # do nothing first: it wins ties
        best, _, _ = best_by_simulation(obs, candidates)
        return candidates[best]


def check_wait_confidence(value: float) -> float:
    """``value`` if it is a valid ``wait_confidence`` (0 = greedy, (0, 1]), else a UserError."""
    if not 0.0 <= value <= 1.0:
        raise UserError(f"wait confidence must be in [0, 1] (got {value}); e.g. 0.7 (0: greedy)")
    return value


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / CHECKPOINTS / LATEST
    if not pointer.is_file():
        return None
    path = run_dir / CHECKPOINTS / json.loads(pointer.read_text())["name"]
    return path if path.is_dir() else None


def _resolve_checkpoint(run_dir: Path, checkpoint: str | Path | None) -> Path:
    if checkpoint is None:
        final = run_dir / "checkpoints" / "final"
        ckpt = final if final.is_dir() else latest_checkpoint(run_dir)
        if ckpt is None:
            raise UserError(f"{run_dir} has no checkpoint; train it first (`gridfactor train`)")
        return ckpt
    ckpt = Path(checkpoint)
    if not ckpt.is_absolute() and not ckpt.exists():
        ckpt = run_dir / "checkpoints" / ckpt
    if not (ckpt / RL_MODULE_DIR).is_dir():
        raise UserError(
            f"{ckpt} is not an RLlib checkpoint of this project; pass a directory "
            f"from {run_dir / 'checkpoints'}"
        )
    return ckpt


def agent_name(config: dict[str, Any]) -> str:
    """Label of a training run's agent: centralized, distributed-local, distributed-global."""
    if config.get("centralized"):
        return "centralized"
    return f"distributed-{config.get('obs_mode', 'local')}"


def load_action_sets(
    run_dir: Path, which: str = "agents"
) -> dict[str, list[tuple[int, int]]] | None:
    """The run's per-agent action subsets (``action_sets.json``): the policies' actions
    (``which="agents"``) or their greedy sets (``"greedy"``); None if the run has none."""
    path = run_dir / ACTION_SETS_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if which not in data:  # runs trained before greedy sets were recorded
        return None
    return {aid: [tuple(int(x) for x in key) for key in keys] for aid, keys in data[which].items()}


def _load_policies(ckpt: Path) -> dict[str, GreedyMLP]:
    """Per agent id the policy of an RLlib checkpoint (its RLModule as numpy layers)."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    from gridfactor.progress import quiet_libraries

    quiet_libraries()  # importing ray resets its loggers' levels
    policies = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for sub in sorted((ckpt / RL_MODULE_DIR).iterdir()):
            if sub.is_dir():
                policies[sub.name] = as_greedy(RLModule.from_checkpoint(str(sub.resolve())))
    if not policies:
        raise UserError(f"checkpoint {ckpt} holds no policy")
    return policies


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The ``config.json`` of a training run or an ensemble; a UserError if there is none."""
    path = run_dir / "config.json"
    if not path.is_file():
        raise UserError(
            f"{run_dir} is not a training run (no config.json); pass a --out of `gridfactor train`"
        )
    return json.loads(path.read_text())


def is_ensemble(config: dict[str, Any]) -> bool:
    """True when an agent directory's ``config.json`` is an ensemble's (not a training run)."""
    return config.get("ensemble") is True


def load_ensemble_policies(run_dir: Path) -> dict[str, Policy]:
    """Per agent id the :class:`GreedyEnsemble` of an ensemble directory."""
    from gridfactor.agents.policy_net import load_policy

    folder = run_dir / ENSEMBLE_POLICIES
    files = sorted(folder.glob("*.npz")) if folder.is_dir() else []
    if not files:
        raise UserError(
            f"ensemble {run_dir} holds no policies; write it again with gridfactor ensemble"
        )
    return {f.stem: load_policy(f) for f in files}


def load_trained_agent(
    run_dir: str | Path,
    checkpoint: str | Path | None = None,
    guard: int = 0,
    coordinator: str = "capa",
    reconnect: str | None = None,
    wait_confidence: float = 0.0,
) -> TrainedAgent:
    """The trained agents of a ``gridfactor train`` run (final checkpoint by default);
    ``guard``, ``coordinator``, ``reconnect`` (None: the run's own) and
    ``wait_confidence``: see :class:`TrainedAgent`. ``run_dir`` may be an ensemble of runs
    (``gridfactor ensemble``: numpy policies, no checkpoint)."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    if is_ensemble(config):
        if checkpoint is not None:
            raise UserError(
                f"{run_dir} is an ensemble: it has no checkpoints (got {checkpoint!r}); "
                "choose the members' checkpoint with gridfactor ensemble --checkpoint"
            )
        ckpt, policies = run_dir, load_ensemble_policies(run_dir)
    else:
        ckpt = _resolve_checkpoint(run_dir, checkpoint)
        policies = _load_policies(ckpt)
    fact = Factorization.load(run_dir / "factorization.json")
    split_path = run_dir / "split.json"
    split = json.loads(split_path.read_text()) if split_path.is_file() else {}
    return TrainedAgent(
        name=agent_name(config),
        env_name=config["env_name"],
        factorization=fact,
        danger=float(config["danger"]),
        obs_mode=config.get("obs_mode", "local"),
        split=split,
        checkpoint=ckpt,
        policies=policies,
        action_sets=load_action_sets(run_dir),
        greedy_sets=load_action_sets(run_dir, "greedy"),
        guard=int(guard),
        coordinator=coordinator,
        reconnect=reconnect or config.get("reconnect", "always"),
        wait_confidence=float(wait_confidence),
    )
