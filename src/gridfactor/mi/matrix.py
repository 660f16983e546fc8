"""MI matrices between target columns and input columns, with shuffle bias correction.

Pairs are grouped into chunks (one task each) to amortize task overhead; each chunk carries
only the columns it needs, so the data goes to Ray workers once per chunk (a chunk's columns
are a few MB at N=100k) without object-store bookkeeping in the driver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gridfactor.errors import UserError
from gridfactor.mi.ksg import check_k, mixed_ksg_mi_columns, prepare_column
from gridfactor.parallel import ParallelConfig, parallel_map

__all__ = [
    "MIResult",
    "mi_matrix",
    "mi_matrix_replicates",
    "shuffled_mi_matrix",
    "unbiased_mi_matrix",
]


@dataclass
class MIResult:
    """mi, shuffled, unbiased: (n_targets, n_inputs); unbiased = mi - shuffled."""

    mi: np.ndarray
    shuffled: np.ndarray
    unbiased: np.ndarray


# Kernel cost of one pair and replicate per row (measured: ~0.15 s at 50 000 continuous rows,
# benchmarks/mi.py) and the work a Ray task should carry; only the task split depends on them.
SECONDS_PER_ROW = 3e-6
TASK_SECONDS = 0.25


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


def _chunk_task(item: tuple) -> np.ndarray:
    """Ray/in-process task: MI of each (target column, input column) pair of a chunk for each
    replicate, (P_chunk, R). Each column is prepared (sorted) once for all its pairs and
    replicates; a replicate only reorders the input columns' ranks."""
    t_cols, i_cols, t_idx, i_idx, k, rows, n_replicates, single_thread = item
    if single_thread:
        # One task per CPU already: numba threads would only oversubscribe the cores.
        import numba

        numba.set_num_threads(1)
    xs = [prepare_column(t_cols[:, a]) for a in range(t_cols.shape[1])]
    ys = [prepare_column(i_cols[:, b]) for b in range(i_cols.shape[1])]
    out = np.empty((len(t_idx), n_replicates))
    for r in range(n_replicates):
        order = None if rows is None else rows(r)
        ys_r = ys if order is None else [c.reordered(order) for c in ys]
        for p, (a, b) in enumerate(zip(t_idx, i_idx, strict=True)):
            out[p, r] = mixed_ksg_mi_columns(xs[a], ys_r[b], k)
    return out


def mi_matrix_replicates(
    targets: np.ndarray,
    inputs: np.ndarray,
    rows: Callable[[int], np.ndarray] | None,
    n_replicates: int,
    k: int | None = None,
    pairs: np.ndarray | None = None,
    parallel: ParallelConfig = ParallelConfig(),
    progress: bool = True,
    desc: str = "MI pairs",
) -> np.ndarray:
    """MI of every (target, input) pair with the input rows reordered, for R reorderings.

    ``rows(r)`` (picklable, e.g. a ``functools.partial`` of a module-level function) gives
    replicate r's row order (N,) and None means the rows as they are; then ``out[r]`` equals
    ``mi_matrix(targets, inputs[rows(r)], k, pairs)`` bit for bit. Each task computes all R
    replicates of its pairs, so the sorted marginals are shared across replicates (a
    reordering of rows leaves both marginals unchanged) and there is one pass over the pairs
    instead of R. targets: (N, n_t), inputs: (N, n_i). Returns (R, n_t, n_i) float64, 0.0
    for pairs left out by ``pairs``; the same values whatever ``parallel``.
    """
    targets, inputs, k, pairs = _validate(targets, inputs, k, pairs)
    out = np.zeros((n_replicates, *pairs.shape), dtype=np.float64)
    todo = np.argwhere(pairs)  # (P, 2), row-major: pairs sharing a target are adjacent
    if len(todo) == 0 or n_replicates == 0:
        return out
    in_process = parallel.in_process
    if in_process:
        # No task overhead in-process: one item per pair keeps the progress bar informative.
        chunks = [todo[i : i + 1] for i in range(len(todo))]
    else:
        # Tasks of about TASK_SECONDS of kernel time each, at least 4 per worker: large
        # enough to pay Ray's overhead (and the data transfer) once per many pairs when pairs
        # are cheap, small enough that the last task of a map does not leave the other
        # workers idle for long when pairs are costly (a 50 000-row null pass: ~1.5 s/pair).
        workers = parallel.workers or 2
        pair_seconds = SECONDS_PER_ROW * targets.shape[0] * n_replicates
        per_task = max(1, int(TASK_SECONDS / pair_seconds))
        n_tasks = max(min(len(todo), 4 * workers), -(-len(todo) // per_task))
        chunks = np.array_split(todo, n_tasks)
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
                rows,
                n_replicates,
                not in_process,
            )
        )

    def store(index: int, values: np.ndarray) -> None:
        chunk = chunks[index]
        out[:, chunk[:, 0], chunk[:, 1]] = values.T

    parallel_map(_chunk_task, items, parallel, desc=desc, progress=progress, on_result=store)
    return out


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
    return mi_matrix_replicates(targets, inputs, None, 1, k, pairs, parallel, progress)[0]


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
