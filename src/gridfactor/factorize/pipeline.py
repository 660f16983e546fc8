"""From transitions or an MI matrix to a Factorization: threshold rule, then zones.

Two threshold rules:

* ``significance`` (default): an edge is kept when the raw MI beats a permutation null of
  that pair, with a multiple-testing correction (:mod:`gridfactor.factorize.significance`);
  finds blocks of any size without tuning.
* ``quantile``: the seed's rule, each input column keeps the edges above its quantile of
  the shuffle-corrected MI (:func:`gridfactor.factorize.threshold.binarize_quantile`).

Then a :class:`ZoneRule` turns the kept edges into clusters: ``components`` (the connected
components of the kept edges, the seed's step) or a partition method of
:mod:`gridfactor.factorize.partition` (``spectral`` default), which weighs every kept edge by
its shuffle-corrected MI and cuts where little MI crosses: disconnected blocks stay apart,
and a block joined to another by a weak bridge is split off.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gridfactor.errors import UserError
from gridfactor.factorization import Cluster, Factorization, clusters_from_adjacency
from gridfactor.factorize.partition import ZonePartitioner, check_method, check_n_zones
from gridfactor.factorize.significance import (
    check_alpha,
    check_min_mi,
    check_n_permutations,
    permutation_null,
    significance_test,
)
from gridfactor.factorize.threshold import binarize_quantile, check_quantile
from gridfactor.mi import MIResult, unbiased_mi_matrix
from gridfactor.parallel import ParallelConfig

RULES = ("significance", "quantile")


@dataclass(frozen=True)
class ThresholdRule:
    """How MI values become edges (see the module docstring)."""

    method: str = "significance"
    quantile: float = 0.7
    alpha: float = 0.01
    n_permutations: int = 30
    min_mi: float = 0.0

    def __post_init__(self) -> None:
        if self.method not in RULES:
            raise UserError(f"unknown threshold {self.method!r}; use significance or quantile")
        check_quantile(self.quantile)
        check_alpha(self.alpha)
        check_n_permutations(self.n_permutations)
        check_min_mi(self.min_mi)

    @property
    def label(self) -> str:
        if self.method == "quantile":
            return f"quantile {self.quantile:.2f}"
        return f"significance alpha={self.alpha:g}"

    def describe(self) -> dict[str, Any]:
        if self.method == "quantile":
            return {"threshold": "quantile", "quantile": self.quantile}
        return {
            "threshold": "significance",
            "alpha": self.alpha,
            "n_permutations": self.n_permutations,
            "min_mi": self.min_mi,
            "correction": "holm",
            "null_scheme": "shift",
        }


@dataclass(frozen=True)
class ZoneRule:
    """How kept edges become clusters: ``components`` or a partition method (``spectral``,
    ``cocluster``, ``louvain``) with ``n_zones`` (int or "auto") and ``max_zones``."""

    # components by default: on disjoint blocks (synthetic MDPs) the kept edges already are
    # the blocks, and auto zones split 30% of the true blocks of benchmarks/recovery.py's
    # factored generator; meshed grids use "spectral" (gridfactor.grid)
    method: str = "components"
    n_zones: int | str = "auto"
    max_zones: int | None = None

    def __post_init__(self) -> None:
        if self.method != "components":
            check_method(self.method)
        check_n_zones(self.n_zones)

    def describe(self) -> dict[str, Any]:
        if self.method == "components":
            return {"partition": "components"}
        return {"partition": self.method, "n_zones": self.n_zones, "max_zones": self.max_zones}


def zone_factorization(
    unbiased: np.ndarray,
    adjacency: np.ndarray,
    target_names: Sequence[str],
    input_names: Sequence[str],
    rule: ZoneRule = ZoneRule(),
    *,
    seed: int = 0,
    meta: dict[str, Any] | None = None,
) -> Factorization:
    """Clusters from the kept edges ``adjacency`` (n_t, n_i) weighed by ``unbiased`` MI.

    With a partition method, inputs and targets without any kept edge are left alone
    (singleton clusters, as the components rule leaves them); the others are partitioned.
    """
    meta = {**(meta or {}), **rule.describe()}
    if rule.method == "components":
        return adjacency_factorization(adjacency, target_names, input_names, meta)
    weights = np.clip(np.asarray(unbiased, dtype=float), 0.0, None) * np.asarray(adjacency, bool)
    used = np.flatnonzero(weights.sum(axis=0) > 0)
    clusters: list[Cluster] = []
    if used.size:
        n_zones = rule.n_zones if rule.n_zones == "auto" else min(int(rule.n_zones), used.size)
        part = ZonePartitioner(n_zones, rule.method, rule.max_zones, seed).fit_predict(
            weights, inputs=used
        )
        clusters = [
            Cluster(
                tuple(int(t) for t in np.flatnonzero(part.target_labels == z)),
                tuple(int(i) for i in np.flatnonzero(part.input_labels == z)),
            )
            for z in range(part.n_zones)
        ]
        meta["zones"] = part.describe()
        target_left = np.flatnonzero(part.target_labels < 0)
        input_left = np.flatnonzero(part.input_labels < 0)
    else:
        target_left, input_left = np.arange(len(target_names)), np.arange(len(input_names))
    clusters += [Cluster((int(t),), ()) for t in target_left]
    clusters += [Cluster((), (int(i),)) for i in input_left]
    clusters.sort(
        key=lambda c: (
            min(c.targets, default=len(target_names)),
            min(c.inputs, default=len(input_names)),
        )
    )
    return Factorization(list(target_names), list(input_names), clusters, meta)


def adjacency_factorization(
    adjacency: np.ndarray,
    target_names: Sequence[str],
    input_names: Sequence[str],
    meta: dict[str, Any] | None = None,
) -> Factorization:
    """Connected components of a bool (n_targets, n_inputs) adjacency as a Factorization."""
    return Factorization(
        target_names=list(target_names),
        input_names=list(input_names),
        clusters=clusters_from_adjacency(adjacency),
        meta=dict(meta or {}),
    )


def threshold_adjacency(
    rule: ThresholdRule,
    targets: np.ndarray,
    inputs: np.ndarray,
    mi: MIResult,
    *,
    seed: int,
    k: int | None = None,
    pairs: np.ndarray | None = None,
    parallel: ParallelConfig = ParallelConfig(),
    progress: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Edges (n_t, n_i) bool kept by ``rule``, plus the matrices worth saving
    (adjusted p-values for the significance rule)."""
    if rule.method == "quantile":
        return binarize_quantile(mi.unbiased, rule.quantile), {}
    null = permutation_null(
        targets,
        inputs,
        n_permutations=rule.n_permutations,
        seed=seed,
        k=k,
        pairs=pairs,
        parallel=parallel,
        progress=progress,
        cache_dir=None if cache_dir is None else Path(cache_dir) / "null",
    )
    test = significance_test(mi.mi, null, alpha=rule.alpha, min_mi=rule.min_mi)
    adjacency = test.adjacency if pairs is None else test.adjacency & np.asarray(pairs, bool)
    return adjacency, {"pvalues_adjusted.npy": test.adjusted}


@dataclass(frozen=True)
class Factorizer:
    """Picklable ``(targets, inputs) -> (Factorization, adjacency)``: MI, bias correction,
    threshold rule, zones; what bootstrap stability re-runs on each resample."""

    target_names: tuple[str, ...]
    input_names: tuple[str, ...]
    rule: ThresholdRule = ThresholdRule()
    seed: int = 0
    k: int | None = None
    pairs: np.ndarray | None = None
    parallel: ParallelConfig = ParallelConfig()
    zones: ZoneRule = ZoneRule()

    def __call__(self, targets: np.ndarray, inputs: np.ndarray) -> tuple[Factorization, np.ndarray]:
        mi = unbiased_mi_matrix(
            targets,
            inputs,
            seed=self.seed,
            k=self.k,
            pairs=self.pairs,
            parallel=self.parallel,
            progress=False,
        )
        adjacency, _ = threshold_adjacency(
            self.rule,
            targets,
            inputs,
            mi,
            seed=self.seed,
            k=self.k,
            pairs=self.pairs,
            parallel=self.parallel,
            progress=False,
        )
        return zone_factorization(
            mi.unbiased,
            adjacency,
            self.target_names,
            self.input_names,
            self.zones,
            seed=self.seed,
            meta=asdict(self.rule),
        ), adjacency
