"""Heatmaps of an MI matrix, its binarized graph and the block-reordered matrix (PNG)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gridfactor.factorization import Factorization
from gridfactor.runs import save_figure


def _heatmap(ax, matrix, row_names, col_names, title, cmap="viridis"):
    image = ax.imshow(matrix, aspect="auto", cmap=cmap, interpolation="nearest")
    ax.set_title(title)
    ax.set_yticks(range(len(row_names)), row_names, fontsize=7)
    ax.set_xticks(range(len(col_names)), col_names, fontsize=7, rotation=90)
    return image


def plot_factorization(
    matrix: np.ndarray,
    adjacency: np.ndarray,
    factorization: Factorization,
    out_dir: str | os.PathLike,
    *,
    prefix: str = "",
    row_label: str = "target",
    col_label: str = "input",
) -> list[Path]:
    """Write ``mi_heatmap.png``, ``binarized.png`` and ``blocks.png`` into ``out_dir``.

    Args:
        matrix: (n_targets, n_inputs) MI values (bias-corrected).
        adjacency: (n_targets, n_inputs) bool edges kept by the threshold.
        factorization: clusters found from ``adjacency`` (gives the block order).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    rows = list(factorization.target_names)
    cols = list(factorization.input_names)
    size = (max(4.0, 0.35 * len(cols) + 2), max(3.0, 0.3 * len(rows) + 1.5))
    paths = []

    fig, ax = plt.subplots(figsize=size)
    fig.colorbar(_heatmap(ax, matrix, rows, cols, "mutual information (bias-corrected)"), ax=ax)
    ax.set_ylabel(row_label)
    ax.set_xlabel(col_label)
    paths.append(out_dir / f"{prefix}mi_heatmap.png")
    save_figure(fig, paths[-1])

    fig, ax = plt.subplots(figsize=size)
    _heatmap(ax, adjacency.astype(float), rows, cols, "binarized (edges kept)", cmap="Greys")
    ax.set_ylabel(row_label)
    ax.set_xlabel(col_label)
    paths.append(out_dir / f"{prefix}binarized.png")
    save_figure(fig, paths[-1])

    order_rows, order_cols = factorization.block_order()
    fig, ax = plt.subplots(figsize=size)
    _heatmap(
        ax,
        matrix[np.ix_(order_rows, order_cols)],
        [rows[r] for r in order_rows],
        [cols[c] for c in order_cols],
        f"block-diagonal reordering ({len(factorization.clusters)} clusters)",
    )
    _draw_blocks(ax, factorization)
    ax.set_ylabel(row_label)
    ax.set_xlabel(col_label)
    paths.append(out_dir / f"{prefix}blocks.png")
    save_figure(fig, paths[-1])
    return paths


def _draw_blocks(ax, factorization: Factorization) -> None:
    from matplotlib.patches import Rectangle

    row0 = col0 = 0
    for cluster in factorization.clusters:
        height, width = len(cluster.targets), len(cluster.inputs)
        if height and width:
            ax.add_patch(
                Rectangle(
                    (col0 - 0.5, row0 - 0.5), width, height, fill=False, edgecolor="red", lw=1.5
                )
            )
        row0 += height
        col0 += width


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain fixed-width text table for the console."""
    cells = [[str(h) for h in header]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float | np.floating):
        return f"{value:.3f}"
    return str(value)
