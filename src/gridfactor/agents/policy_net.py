"""A trained policy's greedy path (observation -> logits) as numpy matrices.

An evaluation, the DAgger rounds and an exported agent only ever ask a policy for the logits
of one observation. Through RLlib's RLModule (a dict batch, torch dispatch) that costs
~140 us on case14; these layers hold the same MLP as plain arrays (saved in ``.npz`` files,
loaded without Ray). The trained agents decide with them through one compiled call
(:mod:`gridfactor.agents.compiled`); ``__call__`` here is the numpy forward pass the
compiled one is checked against, and the RLModule stays the reference of both (``tests``
check that they give the same logits).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gridfactor.errors import UserError

# torch activation modules of RLlib's MLPs -> numpy
ACTIVATIONS = {"Tanh": np.tanh, "ReLU": lambda x: np.maximum(x, 0.0, out=x)}


@dataclass(frozen=True)
class GreedyMLP:
    """Dense layers ``x <- act(x @ W + b)`` of a policy, the last one without activation.

    Attributes:
        weights: per layer a (d_in, d_out) float32 matrix.
        biases: per layer a (d_out,) float32 vector.
        activations: per layer "Tanh", "ReLU" or "" (none: the logits layer).
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    activations: tuple[str, ...]

    @property
    def n_inputs(self) -> int:
        return int(self.weights[0].shape[0])

    @property
    def n_actions(self) -> int:
        return int(self.weights[-1].shape[1])

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """(n_actions,) float32 logits of a (n_inputs,) observation."""
        x = np.asarray(obs, dtype=np.float32)
        for w, b, act in zip(self.weights, self.biases, self.activations, strict=True):
            x = x @ w
            x += b
            if act:
                x = ACTIVATIONS[act](x)
        return x

    @classmethod
    def from_module(cls, module: Any) -> GreedyMLP:
        """The actor MLP and policy head of an RLlib ``DefaultPPOTorchRLModule`` (what
        ``gridfactor train`` builds)."""
        import torch

        encoder = getattr(module, "encoder", None)
        actor = getattr(encoder, "actor_encoder", None) or getattr(encoder, "encoder", None)
        head = getattr(module, "pi", None)
        if actor is None or head is None:
            raise UserError(
                f"{type(module).__name__} is not a policy of gridfactor train (no actor MLP "
                "and pi head); train the run with this gridfactor"
            )
        weights: list[np.ndarray] = []
        biases: list[np.ndarray] = []
        activations: list[str] = []
        for layer in [*actor.net.mlp, *head.net.mlp]:
            name = type(layer).__name__
            if isinstance(layer, torch.nn.Linear):
                weights.append(layer.weight.detach().cpu().numpy().T.astype(np.float32).copy())
                biases.append(
                    np.zeros(layer.out_features, np.float32)
                    if layer.bias is None
                    else layer.bias.detach().cpu().numpy().astype(np.float32)
                )
                activations.append("")
            elif name in ACTIVATIONS and activations and not activations[-1]:
                activations[-1] = name
            elif name != "Identity":
                raise UserError(f"policy layer {name} is not supported; use tanh or relu MLPs")
        return cls(tuple(weights), tuple(biases), tuple(activations))

    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """The layers as named arrays (``<prefix>w<i>``, ``<prefix>b<i>``, activations)."""
        arrays = {f"{prefix}w{i}": w for i, w in enumerate(self.weights)}
        arrays.update({f"{prefix}b{i}": b for i, b in enumerate(self.biases)})
        arrays[f"{prefix}activations"] = np.array(self.activations, dtype=str)
        return arrays

    @classmethod
    def from_arrays(cls, data: Any, prefix: str = "") -> GreedyMLP:
        activations = tuple(str(a) for a in data[f"{prefix}activations"])
        n = len(activations)
        return cls(
            tuple(data[f"{prefix}w{i}"] for i in range(n)),
            tuple(data[f"{prefix}b{i}"] for i in range(n)),
            activations,
        )

    def save(self, path: str | Path) -> None:
        """Write the layers to an ``.npz`` file (see :func:`load_policy`)."""
        with open(path, "wb") as fh:
            np.savez(fh, **self.arrays())


@dataclass(frozen=True)
class GreedyEnsemble:
    """Policies of several training runs deciding together: the log of their mean action
    probabilities (one clone is a noisy estimate of its teacher; the mean of several is a
    steadier one).

    Members may know different actions (clones of different demonstrations keep different
    action sets): ``columns[m][j]`` is the ensemble's index of member ``m``'s action ``j``,
    and a member gives probability 0 to the actions it does not know.

    Attributes:
        members: the policies, all with the same inputs.
        columns: per member a (member n_actions,) int array of ensemble action indices.
        n_actions: the ensemble's number of actions.
    """

    members: tuple[GreedyMLP, ...]
    columns: tuple[np.ndarray, ...]
    n_actions: int

    def __post_init__(self) -> None:
        sizes = {m.n_inputs for m in self.members}
        if len(sizes) != 1:
            raise UserError(
                f"ensemble members read observations of different sizes {sorted(sizes)}; "
                "combine runs of the same env, zones and observation mode"
            )
        for m, cols in zip(self.members, self.columns, strict=True):
            if len(cols) != m.n_actions:
                raise ValueError(f"{len(cols)} columns for a policy of {m.n_actions} actions")

    @property
    def n_inputs(self) -> int:
        return self.members[0].n_inputs

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """(n_actions,) float32 log mean probabilities of a (n_inputs,) observation."""
        probs = np.zeros(self.n_actions, np.float64)
        for member, cols in zip(self.members, self.columns, strict=True):
            logits = member(obs).astype(np.float64)
            p = np.exp(logits - logits.max())
            probs[cols] += p / p.sum()
        with np.errstate(divide="ignore"):  # an action no member knows: log 0
            return np.log(probs / len(self.members)).astype(np.float32)

    def save(self, path: str | Path) -> None:
        """Write the members and their columns to an ``.npz`` file (see :func:`load_policy`)."""
        arrays: dict[str, np.ndarray] = {"n_actions": np.array(self.n_actions)}
        for k, (member, cols) in enumerate(zip(self.members, self.columns, strict=True)):
            arrays.update(member.arrays(f"m{k}_"))
            arrays[f"m{k}_columns"] = np.asarray(cols, dtype=np.int64)
        arrays["n_members"] = np.array(len(self.members))
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)


Policy = GreedyMLP | GreedyEnsemble


def load_policy(path: str | Path) -> Policy:
    """The policy an ``.npz`` file of :meth:`GreedyMLP.save` or :meth:`GreedyEnsemble.save`
    holds."""
    with np.load(path) as data:
        if "n_members" not in data:
            return GreedyMLP.from_arrays(data)
        n = int(data["n_members"])
        return GreedyEnsemble(
            tuple(GreedyMLP.from_arrays(data, f"m{k}_") for k in range(n)),
            tuple(np.asarray(data[f"m{k}_columns"]) for k in range(n)),
            int(data["n_actions"]),
        )


def as_greedy(policy: Any) -> Policy:
    """``policy`` as a :class:`GreedyMLP` (an RLModule is converted) or ensemble."""
    if isinstance(policy, GreedyMLP | GreedyEnsemble):
        return policy
    return GreedyMLP.from_module(policy)
