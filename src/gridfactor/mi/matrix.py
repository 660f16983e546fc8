"""MI matrices between target columns and input columns, with shuffle bias correction.

Pairs are grouped into chunks (one task each) to amortize task overhead; each chunk carries
only the columns it needs, so the data goes to Ray workers once per chunk (a chunk's columns
are a few MB at N=100k) without object-store bookkeeping in the driver.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridfactor.errors import UserError
from gridfactor.mi.ksg import check_k, mixed_ksg_mi
from gridfactor.parallel import ParallelConfig, parallel_map

__all__ = ["MIResult", "mi_matrix", "shuffled_mi_matrix", "unbiased_mi_matrix"]


@dataclass
class MIResult:
    """mi, shuffled, unbiased: (n_targets, n_inputs); unbiased = mi - shuffled."""

    mi: np.ndarray
    shuffled: np.ndarray
    unbiased: np.ndarray


def _validate(
    targets: np.ndarray, inputs: np.ndarray, k: int | None, pairs: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    targets = np.asarray(targets, dtype=np.float64)
    inputs = np.asarray(inputs, dtype=np.float64)
    if targets.ndim != 2 or inputs.ndim != 2:
        raise UserError(
            f"targets and inputs must be 2-D (rows, columns), got shapes {targets.shape} and "
            f"{inputs.shape}: reshape single columns to (N, 1)"
        )
    if targets.shape[0] != inputs.shape[0]:
        raise UserError(
            f"targets have {targets.shape[0]} rows but inputs have {inputs.shape[0]}: "
            "pass arrays with one row per sample in both"
        )
    for name, a in (("targets", targets), ("inputs", inputs)):
        bad = ~np.isfinite(a).all(axis=0)
        if bad.any():
            raise UserError(
                f"{name} column {int(np.flatnonzero(bad)[0])} contains NaN or inf: "
                "drop or impute those rows before computing MI"
            )
    n_t, n_i = targets.shape[1], inputs.shape[1]
    if pairs is None:
        pairs = np.ones((n_t, n_i), dtype=bool)
    else:
        pairs = np.asarray(pairs, dtype=bool)
        if pairs.shape != (n_t, n_i):
            raise UserError(
                f"pairs mask has shape {pairs.shape} but there are {n_t} targets and {n_i} "
                f"inputs: pass a boolean mask of shape ({n_t}, {n_i})"
            )
    k = check_k(targets.shape[0], k)
    return targets, inputs, k, pairs


def _chunk_task(item: tuple) -> list[float]:
    """Ray/in-process task: MI of each (target column, input column) pair of a chunk."""
    t_cols, i_cols, t_idx, i_idx, k, single_thread = item
    if single_thread:
        # One task per CPU already: numba threads would only oversubscribe the cores.
        import numba

        numba.set_num_threads(1)
    return [mixed_ksg_mi(t_cols[:, a], i_cols[:, b], k) for a, b in zip(t_idx, i_idx, strict=True)]


def mi_matrix(
    targets: np.ndarray,
    inputs: np.ndarray,
    k: int | None = None,
    pairs: np.ndarray | None = None,
    parallel: ParallelConfig = ParallelConfig(),
    progress: bool = True,
) -> np.ndarray:
    """MI (nats) of every (target, input) column pair.

    targets: (N, n_t), inputs: (N, n_i); pairs: optional bool (n_t, n_i) mask of the pairs to
    compute (others are 0.0). Returns (n_t, n_i) float64. Same values whatever ``parallel``.
    """
    targets, inputs, k, pairs = _validate(targets, inputs, k, pairs)
    out = np.zeros(pairs.shape, dtype=np.float64)
    todo = np.argwhere(pairs)  # (P, 2), row-major: pairs sharing a target are adjacent
    if len(todo) == 0:
        return out
    in_process = parallel.in_process
    if in_process:
        # No task overhead in-process: one item per pair keeps the progress bar informative.
        chunks = [todo[i : i + 1] for i in range(len(todo))]
    else:
        # A few chunks per worker balance load; one task per pair would pay Ray's overhead
        # (and the data transfer) per pair.
        workers = parallel.workers or 2
        chunks = np.array_split(todo, min(len(todo), 4 * workers))
    items = []
    for chunk in chunks:
        t_used, t_idx = np.unique(chunk[:, 0], return_inverse=True)
        i_used, i_idx = np.unique(chunk[:, 1], return_inverse=True)
        items.append(
            (
                np.ascontiguousarray(targets[:, t_used]),
                np.ascontiguousarray(inputs[:, i_used]),
                t_idx.ravel(),
                i_idx.ravel(),
                k,
                not in_process,
            )
        )

    def store(index: int, values: list[float]) -> None:
        rows = chunks[index]
        out[rows[:, 0], rows[:, 1]] = values

    parallel_map(_chunk_task, items, parallel, desc="MI pairs", progress=progress, on_result=store)
    return out


def shuffled_mi_matrix(
    targets: np.ndarray,
    inputs: np.ndarray,
    seed: int,
    k: int | None = None,
    pairs: np.ndarray | None = None,
    parallel: ParallelConfig = ParallelConfig(),
    progress: bool = True,
) -> np.ndarray:
    """:func:`mi_matrix` with the rows of ``targets`` permuted (one permutation from
    ``np.random.default_rng(seed)``): the estimator's bias under independence, (n_t, n_i)."""
    targets, inputs, k, pairs = _validate(targets, inputs, k, pairs)
    perm = np.random.default_rng(seed).permutation(targets.shape[0])
    return mi_matrix(targets[perm], inputs, k, pairs, parallel, progress)


def unbiased_mi_matrix(
    targets: np.ndarray,
    inputs: np.ndarray,
    seed: int,
    k: int | None = None,
    pairs: np.ndarray | None = None,
    parallel: ParallelConfig = ParallelConfig(),
    progress: bool = True,
) -> MIResult:
    """MI, shuffled MI and their difference (bias-corrected MI), each (n_t, n_i)."""
    mi = mi_matrix(targets, inputs, k, pairs, parallel, progress)
    shuffled = shuffled_mi_matrix(targets, inputs, seed, k, pairs, parallel, progress)
    return MIResult(mi=mi, shuffled=shuffled, unbiased=mi - shuffled)
