"""Turning an MI matrix into a bipartite graph: the seed's per-column quantile rule."""

from __future__ import annotations

import numpy as np

from gridfactor.errors import UserError


def check_quantile(quantile: float) -> float:
    if not 0.0 <= quantile < 1.0:
        raise UserError(f"quantile {quantile} is outside [0, 1); use e.g. --quantile 0.7")
    return float(quantile)


def binarize_quantile(matrix: np.ndarray, quantile: float = 0.7) -> np.ndarray:
    """Keep, in each input column j, the edges whose MI exceeds that column's quantile.

    Args:
        matrix: (n_targets, n_inputs) bias-corrected MI.
        quantile: in [0, 1); 0.7 keeps about the top 30% of the targets of every input.

    Returns:
        (n_targets, n_inputs) bool adjacency. A column whose values are all equal (e.g. an
        input that was not measured, all zeros) gets no edge: nothing stands out.
    """
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2:
        raise UserError(f"MI matrix must be 2-D (targets x inputs), got shape {matrix.shape}")
    thresholds = np.quantile(matrix, check_quantile(quantile), axis=0)
    return matrix > thresholds[None, :]
