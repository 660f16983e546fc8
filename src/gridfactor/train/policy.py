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

from gridfactor.agents.cluster import ClusterAgent, ObservationEncoder, build_agents
from gridfactor.agents.high_level import HighLevelRules
from gridfactor.errors import UserError
from gridfactor.factorize.structure import Factorization

RL_MODULE_DIR = Path("learner_group") / "learner" / "rl_module"


@dataclass
class TrainedAgent:
    """Greedy trained agents + high-level rules.

    Attributes:
        name: "distributed" or "centralized".
        env_name: grid2op env the agents were trained on.
        factorization: the clusters (for the centralized agent, one cluster).
        danger: rho threshold of the high-level rules.
        obs_mode: "local" or "global".
        split: the run's train/validation split (see ``gridfactor.train.run.make_split``).
        checkpoint: the checkpoint directory the policies come from.
    """

    name: str
    env_name: str
    factorization: Factorization
    danger: float
    obs_mode: str
    split: dict[str, Any]
    checkpoint: Path
    modules: dict[str, Any] = field(repr=False)
    rules: HighLevelRules = field(init=False, repr=False)
    _agents: list[ClusterAgent] | None = field(default=None, init=False, repr=False)
    _encoders: dict[str, ObservationEncoder] = field(default_factory=dict, init=False, repr=False)
    _sub_owner: dict[int, str] = field(default_factory=dict, init=False, repr=False)
    _space_id: int | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.rules = HighLevelRules(self.danger)
        self.decisions: dict[str, int] = {}

    def _bind(self, env: Any) -> None:
        """Build actions/encoders for ``env`` (once per action space)."""
        if self._agents is not None and self._space_id == id(env.action_space):
            return
        agents = build_agents(self.factorization, env)
        missing = sorted({a.agent_id for a in agents} - set(self.modules))
        if missing:
            raise UserError(
                f"checkpoint {self.checkpoint} has no policy for {', '.join(missing)}; "
                "use the factorization of the run"
            )
        self._agents = agents
        self._by_id = {a.agent_id: a for a in agents}
        self._encoders = {a.agent_id: ObservationEncoder(a, env, self.obs_mode) for a in agents}
        self._sub_owner = {int(s): a.agent_id for a in agents for s in a.subs}
        self._candidates = sorted(self._sub_owner)
        self._space_id = id(env.action_space)
        for a in agents:
            n_out = self._n_outputs(a.agent_id)
            if n_out is not None and n_out != a.n_actions:
                raise UserError(
                    f"policy {a.agent_id} has {n_out} actions but the env gives "
                    f"{a.n_actions}; evaluate on the env the run was trained on "
                    f"({self.env_name})"
                )

    def _n_outputs(self, aid: str) -> int | None:
        space = getattr(self.modules[aid], "action_space", None)
        return getattr(space, "n", None)

    def choose(self, obs: Any, env: Any) -> tuple[str | None, int]:
        """(agent id, action index) the decision logic picks; (None, -1) when the rules act."""
        self._bind(env)
        if not self.rules.is_unsafe(obs):
            return None, -1
        sub = self.rules.rank_substations(obs, self._candidates)[0]
        aid = self._sub_owner[sub]
        return aid, self.greedy_index(aid, self._encoders[aid](obs))

    def greedy_index(self, aid: str, features: np.ndarray) -> int:
        """argmax of the policy logits for a (d,) feature vector."""
        import torch

        with torch.no_grad():
            out = self.modules[aid].forward_inference(
                {"obs": torch.as_tensor(features, dtype=torch.float32)[None]}
            )
        return int(torch.argmax(out["action_dist_inputs"][0]).item())

    def act(self, obs: Any, env: Any) -> Any:
        """grid2op action for the raw observation ``obs`` of ``env``: do nothing (or
        reconnect a line) when safe, else the greedy action of the CAPA-chosen cluster."""
        aid, index = self.choose(obs, env)
        if aid is None:
            action = self.rules.reconnect_action(obs, env.action_space)
            return env.action_space({}) if action is None else action
        self.decisions[aid] = self.decisions.get(aid, 0) + 1
        return self._by_id[aid].actions[index]


def _resolve_checkpoint(run_dir: Path, checkpoint: str | Path | None) -> Path:
    from gridfactor.train.run import latest_checkpoint

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


def load_trained_agent(run_dir: str | Path, checkpoint: str | Path | None = None) -> TrainedAgent:
    """The trained agents of a ``gridfactor train`` run (final checkpoint by default)."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise UserError(
            f"{run_dir} is not a training run (no config.json); pass a --out of `gridfactor train`"
        )
    config = json.loads(config_path.read_text())
    ckpt = _resolve_checkpoint(run_dir, checkpoint)
    fact = Factorization.load(run_dir / "factorization.json")
    split_path = run_dir / "split.json"
    split = json.loads(split_path.read_text()) if split_path.is_file() else {}
    modules = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for sub in sorted((ckpt / RL_MODULE_DIR).iterdir()):
            if sub.is_dir():
                module = RLModule.from_checkpoint(str(sub.resolve()))
                module.eval()
                modules[sub.name] = module
    if not modules:
        raise UserError(f"checkpoint {ckpt} holds no policy")
    return TrainedAgent(
        name="centralized" if config.get("centralized") else "distributed",
        env_name=config["env_name"],
        factorization=fact,
        danger=float(config["danger"]),
        obs_mode=config.get("obs_mode", "local"),
        split=split,
        checkpoint=ckpt,
        modules=modules,
    )
