"""Stability of a factorization under resampling of the transitions.

Repeat the whole factorization (MI, threshold, components) on B resamples of the rows and
count how often each edge, and each cluster of a reference factorization, reappears. A
cluster reappears only when a cluster with exactly the same targets AND inputs is found in
the resample. All values are frequencies in [0, 1]; 1 = found in every resample.

Resampling: ``bootstrap`` (N rows drawn with replacement, the classic choice) or
``subsample`` (``fraction``·N rows without replacement). Bootstrap duplicates rows; for
continuous data, duplicated (x, y) points look like discrete atoms to the mixed KSG
estimator and inflate the MI of every pair, so prefer ``subsample`` (e.g. fraction 0.5)
for continuous measurements. For discrete data both are fine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gridfactor.errors import UserError
from gridfactor.factorization import Factorization
from gridfactor.progress import phase

FactorizeFn = Callable[[np.ndarray, np.ndarray], tuple[Factorization, np.ndarray]]
RESAMPLES = ("bootstrap", "subsample")


@dataclass
class Stability:
    """Resampling frequencies.

    edge_frequency: (n_t, n_i) fraction of resamples keeping edge (i, j).
    cluster_frequency: per cluster of the reference factorization (same order), fraction
        of resamples that contain an identical (targets, inputs) cluster.
    """

    edge_frequency: np.ndarray
    cluster_frequency: list[float]
    n_bootstrap: int
    seed: int
    resample: str = "bootstrap"
    fraction: float = 1.0

    @property
    def mean_cluster_frequency(self) -> float:
        return float(np.mean(self.cluster_frequency)) if self.cluster_frequency else 1.0

    @property
    def min_cluster_frequency(self) -> float:
        return float(np.min(self.cluster_frequency)) if self.cluster_frequency else 1.0

    def edge_stability(self, adjacency: np.ndarray) -> float:
        """Mean frequency of the reference's kept edges (1.0 if it keeps none)."""
        kept = np.asarray(adjacency, bool)
        return float(self.edge_frequency[kept].mean()) if kept.any() else 1.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary, e.g. for ``Factorization.meta["stability"]``."""
        return {
            "n_bootstrap": self.n_bootstrap,
            "seed": self.seed,
            "resample": self.resample,
            "fraction": self.fraction,
            "cluster_frequency": [round(float(f), 6) for f in self.cluster_frequency],
            "mean_cluster_frequency": round(self.mean_cluster_frequency, 6),
            "min_cluster_frequency": round(self.min_cluster_frequency, 6),
            "edge_frequency": np.round(self.edge_frequency, 6).tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Stability:
        return cls(
            edge_frequency=np.asarray(data["edge_frequency"], dtype=float),
            cluster_frequency=[float(f) for f in data["cluster_frequency"]],
            n_bootstrap=int(data["n_bootstrap"]),
            seed=int(data["seed"]),
            resample=str(data.get("resample", "bootstrap")),
            fraction=float(data.get("fraction", 1.0)),
        )


def _cluster_key(targets, inputs) -> tuple[frozenset[int], frozenset[int]]:
    return frozenset(int(t) for t in targets), frozenset(int(i) for i in inputs)


def resample_rows(
    n: int, seed_sequence: np.random.SeedSequence, resample: str, fraction: float
) -> np.ndarray:
    """Row indices of one resample of n rows."""
    rng = np.random.default_rng(seed_sequence)
    size = max(2, int(round(fraction * n)))
    if resample == "bootstrap":
        return rng.integers(0, n, size)
    return np.sort(rng.choice(n, size=min(size, n), replace=False))


def bootstrap_stability(
    targets: np.ndarray,
    inputs: np.ndarray,
    factorize_fn: FactorizeFn,
    reference: Factorization,
    *,
    n_bootstrap: int = 10,
    seed: int = 0,
    resample: str = "bootstrap",
    fraction: float = 1.0,
    progress: bool = True,
) -> Stability:
    """How often the edges and the reference's clusters reappear on resampled transitions.

    Args:
        targets: (N, n_t); inputs: (N, n_i): the transitions the reference came from.
        factorize_fn: ``(targets, inputs) -> (Factorization, adjacency (n_t, n_i) bool)``,
            the same rule that produced ``reference`` (e.g. a
            :class:`~gridfactor.factorize.pipeline.Factorizer`); it may
            parallelize internally.
        reference: the factorization to score.
        n_bootstrap: B resamples; resample b uses ``SeedSequence(seed).spawn(B)[b]``.
        resample: ``bootstrap`` (with replacement) or ``subsample`` (without).
        fraction: resample size as a fraction of N (bootstrap default 1.0; in (0, 1) for
            subsample).

    Returns:
        :class:`Stability` with values in [0, 1].
    """
    if n_bootstrap < 1:
        raise UserError(f"--n-bootstrap {n_bootstrap} must be at least 1")
    if resample not in RESAMPLES:
        raise UserError(f"unknown resample {resample!r}; use one of {', '.join(RESAMPLES)}")
    upper = 1.0 if resample == "subsample" else np.inf
    if not 0.0 < fraction <= upper or (resample == "subsample" and fraction == 1.0):
        raise UserError(
            f"fraction {fraction} is invalid for {resample}; use (0, 1) for subsample "
            "(e.g. 0.5) or > 0 for bootstrap (e.g. 1.0)"
        )
    targets = np.asarray(targets)
    inputs = np.asarray(inputs)
    if targets.ndim != 2 or inputs.ndim != 2 or targets.shape[0] != inputs.shape[0]:
        raise UserError(
            f"targets {targets.shape} and inputs {inputs.shape} must be 2-D with the same "
            "number of rows"
        )
    n_t, n_i = targets.shape[1], inputs.shape[1]
    if (reference.n_targets, reference.n_inputs) != (n_t, n_i):
        raise UserError(
            f"reference factorization has {reference.n_targets} targets and "
            f"{reference.n_inputs} inputs but the data have {n_t} and {n_i}; pass the "
            "transitions it was computed from"
        )
    wanted = [_cluster_key(c.targets, c.inputs) for c in reference.clusters]
    edge_counts = np.zeros((n_t, n_i))
    cluster_counts = np.zeros(len(wanted))
    children = np.random.SeedSequence(seed).spawn(n_bootstrap)
    with phase("stability", total=len(children), unit="subsample", enabled=progress) as bar:
        for child in children:
            rows = resample_rows(targets.shape[0], child, resample, fraction)
            found, adjacency = factorize_fn(targets[rows], inputs[rows])
            adjacency = np.asarray(adjacency, bool)
            if adjacency.shape != (n_t, n_i):
                raise ValueError(
                    f"factorize_fn returned adjacency {adjacency.shape}, not {(n_t, n_i)}"
                )
            edge_counts += adjacency
            present = {_cluster_key(c.targets, c.inputs) for c in found.clusters}
            cluster_counts += [key in present for key in wanted]
            bar.update()
    return Stability(
        edge_frequency=edge_counts / n_bootstrap,
        cluster_frequency=(cluster_counts / n_bootstrap).tolist(),
        n_bootstrap=n_bootstrap,
        seed=seed,
        resample=resample,
        fraction=fraction,
    )
