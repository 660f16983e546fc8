"""Grid maps: grid2op's substation layout, lines and substations coloured by zone."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from gridfactor.factorization import Factorization
from gridfactor.runs import save_figure

GREY = (0.75, 0.75, 0.75, 1.0)


def substation_layout(env: Any) -> np.ndarray:
    """(n_sub, 2) substation coordinates of grid2op's ``PlotMatplot`` layout."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from grid2op.PlotGrid import PlotMatplot

        helper = PlotMatplot(env.observation_space, width=1100, height=750, sub_radius=18)
    layout = helper._grid_layout  # grid2op's substation coordinates (as it draws them)
    return np.array([layout[name] for name in env.name_sub], dtype=float)


def _draw(
    ax: Any,
    env: Any,
    xy: np.ndarray,
    line_labels: np.ndarray,
    sub_labels: np.ndarray,
    colour: dict[int, Any],
    title: str,
    faded_subs: frozenset[int] = frozenset(),
) -> None:
    from matplotlib.patches import Circle

    span = float(np.ptp(xy, axis=0).max()) or 1.0
    radius = span / 45
    for line_id in range(env.n_line):
        a, b = xy[env.line_or_to_subid[line_id]], xy[env.line_ex_to_subid[line_id]]
        ax.plot(
            [a[0], b[0]],
            [a[1], b[1]],
            color=colour.get(int(line_labels[line_id]), GREY),
            lw=4,
            alpha=0.85,
            zorder=1,
            solid_capstyle="round",
        )
    for sub_id, (x, y) in enumerate(xy):
        face = colour.get(int(sub_labels[sub_id]), GREY)
        ax.add_patch(
            Circle(
                (x, y),
                radius,
                facecolor=face,
                edgecolor="black",
                alpha=0.35 if sub_id in faded_subs else 0.95,
                zorder=5,
                lw=1.5 if sub_id not in faded_subs else 0.5,
            )
        )
        ax.text(x, y, str(sub_id), ha="center", va="center", fontsize=7, zorder=6)
    ax.set_aspect("equal")
    ax.autoscale_view()
    ax.axis("off")
    ax.set_title(title, fontsize=10)


def _matched_colours(
    reference: np.ndarray, labels: np.ndarray, colour: dict[int, Any], cmap: Any
) -> dict[int, Any]:
    """Colours of the reference zones: each takes the colour of the zone it overlaps most
    (one-to-one, Hungarian matching), so that agreeing maps look alike."""
    from scipy.optimize import linear_sum_assignment

    ref_zones = list(range(int(reference.max()) + 1))
    zones = sorted(colour)
    out: dict[int, Any] = {}
    if zones:
        overlap = np.array(
            [[np.sum((reference == r) & (labels == z)) for z in zones] for r in ref_zones]
        )
        for r, c in zip(*linear_sum_assignment(-overlap), strict=True):
            out[ref_zones[r]] = colour[zones[c]]
    spare = [cmap(i % cmap.N) for i in range(len(zones), len(zones) + len(ref_zones))]
    for r in ref_zones:
        if r not in out:
            out[r] = spare.pop(0)
    return out


def plot_grid_clusters(
    env_name: str,
    factorization: Factorization,
    path: str | os.PathLike,
    *,
    physics_sub_labels: np.ndarray | None = None,
    physics_line_labels: np.ndarray | None = None,
    title: str | None = None,
) -> Path:
    """Grid map coloured by the factorization's zones (clusters), and beside it the physics
    reference zones when given.

    Left panel: clusters that hold both lines and substations get a colour; a line or
    substation alone in its cluster stays grey; substations without actions that
    ``meta.zones.unacted_substation_zones`` assigns to a zone are drawn faded in its colour.
    """
    import matplotlib

    matplotlib.use("Agg")  # headless
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from gridfactor.envs.grid2op_env import cached_env

    env = cached_env(env_name, "lightsim")
    xy = substation_layout(env)
    line_labels = factorization.target_labels()
    sub_labels = factorization.input_labels()
    unacted = {
        int(s): int(z)
        for s, z in factorization.meta.get("zones", {}).get("unacted_substation_zones", {}).items()
    }
    for sub, zone in unacted.items():
        sub_labels[sub] = zone
    coloured = [n for n, c in enumerate(factorization.clusters) if c.targets and c.inputs]
    cmap = plt.get_cmap("tab10" if len(coloured) <= 10 else "tab20")
    colour = {n: cmap(i % cmap.N) for i, n in enumerate(coloured)}
    panels = 1 if physics_sub_labels is None else 2
    fig, axes = plt.subplots(1, panels, figsize=(7.5 * panels, 5.5), squeeze=False)
    _draw(
        axes[0, 0],
        env,
        xy,
        line_labels,
        sub_labels,
        colour,
        title or f"{env_name}: zones from MI ({len(coloured)} coloured)",
        faded_subs=frozenset(unacted),
    )
    handles = [
        Line2D(
            [0],
            [0],
            color=colour[n],
            lw=5,
            label=f"zone {n}: subs {list(factorization.clusters[n].inputs)}",
        )
        for n in coloured
    ]
    if handles:
        axes[0, 0].legend(handles=handles, loc="best", fontsize=7)
    if physics_sub_labels is not None:
        phys_colour = _matched_colours(physics_sub_labels, sub_labels, colour, cmap)
        _draw(
            axes[0, 1],
            env,
            xy,
            physics_line_labels if physics_line_labels is not None else np.full(env.n_line, -1),
            physics_sub_labels,
            phys_colour,
            f"physics reference (susceptance graph, K = {len(phys_colour)})",
        )
    path = Path(path)
    save_figure(fig, path)
    return path
