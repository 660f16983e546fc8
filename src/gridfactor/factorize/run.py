"""Factorizing transitions into a run directory (shared by `factorize-data` and `synthetic`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from gridfactor.factorization import Factorization
from gridfactor.factorize.data import Transitions
from gridfactor.factorize.pipeline import (
    Factorizer,
    ThresholdRule,
    ZoneRule,
    adjacency_factorization,
    threshold_adjacency,
    zone_factorization,
)
from gridfactor.factorize.plots import plot_factorization
from gridfactor.factorize.stability import Stability, bootstrap_stability
from gridfactor.mi import MIResult, unbiased_mi_matrix
from gridfactor.parallel import ParallelConfig
from gridfactor.runs import save_npy

MI_FILES = ("mi.npy", "shuffled_mi.npy", "unbiased_mi.npy")
# Stability selection (Meinshausen & Bühlmann 2010): half-size subsamples without
# replacement; bootstrap duplicates would look like discrete atoms to the KSG estimator.
STABILITY_FRACTION = 0.5


def cached_unbiased_mi(
    targets: np.ndarray,
    inputs: np.ndarray,
    out_dir: str | os.PathLike,
    *,
    seed: int,
    k: int | None = None,
    pairs: np.ndarray | None = None,
    parallel: ParallelConfig = ParallelConfig(),
    progress: bool = True,
) -> MIResult:
    """Shuffle-corrected MI matrix, read from ``out_dir`` if a previous run saved it.

    The run directory's config.json guarantees the saved matrices came from the same
    settings, so an interrupted command re-run as it was does not recompute them.
    """
    out_dir = Path(out_dir)
    paths = [out_dir / name for name in MI_FILES]
    if all(p.is_file() for p in paths):
        mi, shuffled, unbiased = (np.load(p) for p in paths)
        return MIResult(mi=mi, shuffled=shuffled, unbiased=unbiased)
    result = unbiased_mi_matrix(
        targets, inputs, seed=seed, k=k, pairs=pairs, parallel=parallel, progress=progress
    )
    for path, matrix in zip(paths, (result.mi, result.shuffled, result.unbiased), strict=True):
        save_npy(path, matrix)
    return result


@dataclass(frozen=True)
class FactorizationResult:
    """One rule's outcome: the factorization and its (n_t, n_i) bool adjacency."""

    rule: ThresholdRule
    factorization: Factorization
    adjacency: np.ndarray
    stability: Stability | None = None


def factorize_arrays(
    targets: np.ndarray,
    inputs: np.ndarray,
    target_names: Sequence[str],
    input_names: Sequence[str],
    out_dir: str | os.PathLike,
    *,
    rule: ThresholdRule = ThresholdRule(),
    zones: ZoneRule = ZoneRule(),
    compare_quantiles: Sequence[float] = (),
    seed: int = 0,
    k: int | None = None,
    pairs: np.ndarray | None = None,
    n_bootstrap: int = 0,
    parallel: ParallelConfig = ParallelConfig(),
    progress: bool = True,
    meta: dict[str, Any] | None = None,
    plot_labels: tuple[str, str] = ("next state", "state / action"),
) -> tuple[MIResult, list[FactorizationResult]]:
    """MI (targets x inputs) → edges by ``rule`` → clusters by ``zones``, saved as
    ``factorization.json``
    with its plots (and, with ``n_bootstrap`` > 0, its stability in the JSON's meta);
    plus, side by side, the seed's quantile rule at each of ``compare_quantiles`` saved as
    ``factorization_q<quantile>.json``.

    Returns the MI result and the results, ``rule``'s first.
    """
    out_dir = Path(out_dir)
    mi = cached_unbiased_mi(
        targets,
        inputs,
        out_dir,
        seed=seed,
        k=k,
        pairs=pairs,
        parallel=parallel,
        progress=progress,
    )
    meta = {"seed": seed, "k": k, "n_samples": int(targets.shape[0]), **(meta or {})}
    rules = [rule] + [
        replace(rule, method="quantile", quantile=q)
        for q in compare_quantiles
        if not (rule.method == "quantile" and rule.quantile == q)
    ]
    results = []
    for number, current in enumerate(rules):
        adjacency, extras = threshold_adjacency(
            current,
            targets,
            inputs,
            mi,
            seed=seed,
            k=k,
            pairs=pairs,
            parallel=parallel,
            progress=progress,
            cache_dir=out_dir,
        )
        if number == 0:  # the main rule's edges become zones
            factorization = zone_factorization(
                mi.unbiased,
                adjacency,
                target_names,
                input_names,
                zones,
                seed=seed,
                meta={**current.describe(), **meta},
            )
        else:  # the seed's rule, exactly: quantile edges and connected components
            factorization = adjacency_factorization(
                adjacency, target_names, input_names, {**current.describe(), **meta}
            )
        stability = None
        if number == 0:
            for name, matrix in extras.items():
                save_npy(out_dir / name, matrix)
            if n_bootstrap > 0:
                stability = bootstrap_stability(
                    targets,
                    inputs,
                    Factorizer(
                        tuple(target_names),
                        tuple(input_names),
                        current,
                        seed,
                        k,
                        pairs,
                        parallel,
                        zones,
                    ),
                    factorization,
                    n_bootstrap=n_bootstrap,
                    seed=seed,
                    resample="subsample",
                    fraction=STABILITY_FRACTION,
                    progress=progress,
                )
                factorization.meta["stability"] = stability.to_dict()
            factorization.save(out_dir / "factorization.json")
            plot_factorization(
                mi.unbiased,
                adjacency,
                factorization,
                out_dir,
                row_label=plot_labels[0],
                col_label=plot_labels[1],
            )
        else:
            factorization.save(out_dir / f"factorization_q{current.quantile:.2f}.json")
        results.append(FactorizationResult(current, factorization, adjacency, stability))
    return mi, results


def factorize_transitions(
    transitions: Transitions, out_dir: str | os.PathLike, **kwargs: Any
) -> tuple[MIResult, list[FactorizationResult]]:
    """:func:`factorize_arrays` on s' x [s, a] of ``transitions``."""
    return factorize_arrays(
        transitions.targets,
        transitions.inputs,
        transitions.target_names,
        transitions.input_names,
        out_dir,
        **kwargs,
    )


def describe_result(result: FactorizationResult) -> list[str]:
    """Console lines: the rule, each cluster, and its stability when measured."""
    lines = [f"{result.rule.label}: {len(result.factorization.clusters)} clusters"]
    frequencies = result.stability.cluster_frequency if result.stability else None
    for number, line in enumerate(result.factorization.describe()):
        suffix = f"  (stability {frequencies[number]:.2f})" if frequencies else ""
        lines.append(f"  {line}{suffix}")
    if result.stability:
        lines.append(
            f"  stability over {result.stability.n_bootstrap} half-subsamples: mean cluster "
            f"{result.stability.mean_cluster_frequency:.2f}, kept edges "
            f"{result.stability.edge_stability(result.adjacency):.2f}"
        )
    return lines
