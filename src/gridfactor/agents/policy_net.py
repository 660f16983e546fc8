"""A trained policy's greedy path (observation -> logits) as numpy matrices.

An evaluation, the DAgger rounds and an exported agent only ever ask a policy for the logits
of one observation. Through RLlib's RLModule (a dict batch, torch dispatch) that costs
~140 us on case14; the same MLP as numpy matrix products costs a few us, which makes the
pure policy's decision mostly the reading of the observation. The RLModule stays the
reference: ``tests`` check that both give the same logits.
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

    def save(self, path: str | Path) -> None:
        """Write the layers to an ``.npz`` file (see :meth:`load`)."""
        arrays = {f"w{i}": w for i, w in enumerate(self.weights)}
        arrays.update({f"b{i}": b for i, b in enumerate(self.biases)})
        arrays["activations"] = np.array(self.activations, dtype=str)
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> GreedyMLP:
        with np.load(path) as data:
            activations = tuple(str(a) for a in data["activations"])
            n = len(activations)
            return cls(
                tuple(data[f"w{i}"] for i in range(n)),
                tuple(data[f"b{i}"] for i in range(n)),
                activations,
            )


def as_greedy(policy: Any) -> GreedyMLP:
    """``policy`` as a :class:`GreedyMLP` (an RLModule is converted)."""
    return policy if isinstance(policy, GreedyMLP) else GreedyMLP.from_module(policy)
