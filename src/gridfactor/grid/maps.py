"""Grid maps: the grid2op layout coloured by zone."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from gridfactor.factorize.structure import Factorization
from gridfactor.runs import save_figure


def plot_grid_clusters(
    env_name: str, factorization: Factorization, path: str | os.PathLike
) -> Path:
    """Grid map (grid2op PlotMatplot layout) with substations and lines colored by cluster.

    Grey = a line or substation alone in its cluster (no kept MI edge).
    """
    import matplotlib

    matplotlib.use("Agg")  # headless
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Circle

    from gridfactor.collect.grid2op_collect import _cached_env

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from grid2op.PlotGrid import PlotMatplot

        env, _ = _cached_env(env_name, "lightsim")
        helper = PlotMatplot(env.observation_space, width=1100, height=750, sub_radius=18)
        fig = helper.plot_layout()
    ax = helper.ax
    layout = helper._grid_layout  # grid2op's substation coordinates (as drawn)
    line_labels = factorization.target_labels()
    sub_labels = factorization.input_labels()
    # Only clusters with both lines and substations get a colour; singletons stay grey.
    coloured = [n for n, c in enumerate(factorization.clusters) if c.targets and c.inputs]
    cmap = plt.get_cmap("tab10" if len(coloured) <= 10 else "tab20")
    colour = {n: cmap(i % cmap.N) for i, n in enumerate(coloured)}
    grey = (0.75, 0.75, 0.75, 1.0)
    for line_id in range(env.n_line):
        a = layout[env.name_sub[env.line_or_to_subid[line_id]]]
        b = layout[env.name_sub[env.line_ex_to_subid[line_id]]]
        ax.plot(
            [a[0], b[0]],
            [a[1], b[1]],
            color=colour.get(line_labels[line_id], grey),
            lw=5,
            alpha=0.8,
            zorder=0.5,
            solid_capstyle="round",
        )
    for sub_id, name in enumerate(env.name_sub):
        x, y = layout[name]
        ax.add_patch(
            Circle(
                (x, y),
                22,
                facecolor=colour.get(sub_labels[sub_id], grey),
                edgecolor="black",
                alpha=0.9,
                zorder=5,
            )
        )
        ax.text(x, y, str(sub_id), ha="center", va="center", fontsize=8, zorder=6)
    handles = [
        Line2D(
            [0],
            [0],
            color=colour[n],
            lw=5,
            label=f"cluster {n}: subs {list(factorization.clusters[n].inputs)}",
        )
        for n in coloured
    ]
    if handles:
        ax.legend(handles=handles, loc="best", fontsize=7)
    ax.set_title(f"{env_name}: clusters (colour = cluster, grey = alone)")
    path = Path(path)
    save_figure(fig, path)
    return path
