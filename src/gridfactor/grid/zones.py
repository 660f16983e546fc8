"""Zones of a grid from its (line x substation) MI matrix, and their physics cross-check.

Every line and every acted-on substation lands in exactly one zone; each zone holds at least
one acted-on substation (its agent needs actions). A line without MI to any measured
substation joins the zone of the nearest one on the grid (hop distance); an acted-on
substation without MI (too few usable rows) joins the zone of most of its lines.
Substations that are not acted on get no agent: they are reported with the zone most of
their lines belong to (for the grid map) in ``meta.zones.unacted_substation_zones``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gridfactor.errors import UserError
from gridfactor.factorization import Cluster, Factorization
from gridfactor.factorize.partition import ZonePartition, ZonePartitioner, score_zones
from gridfactor.grid.physics import PhysicsZones, physics_zones

PRIORS = ("proximity", "none")


def line_proximity(env: Any) -> np.ndarray:
    """(n_line, n_sub) ``2 ** -hops`` from the nearer end of each line to each substation
    (1 for the substations a line touches): where a line without MI goes."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import shortest_path

    or_sub, ex_sub = np.asarray(env.line_or_to_subid), np.asarray(env.line_ex_to_subid)
    graph = csr_matrix((np.ones(len(or_sub)), (or_sub, ex_sub)), shape=(env.n_sub, env.n_sub))
    hops = shortest_path(graph, directed=False, unweighted=True)
    nearest = np.minimum(hops[or_sub], hops[ex_sub])
    return np.where(np.isfinite(nearest), 2.0 ** (-nearest), 0.0)


@dataclass
class GridZones:
    """A grid partition: the Factorization ``train`` reads, and how it was found."""

    factorization: Factorization
    partition: ZonePartition
    physics: PhysicsZones
    ari_physics: float  # ARI of the zones vs the physics reference, on acted-on substations
    inside_share: float  # share of the (unweighted) MI inside zones


def zones_by_lines(env: Any, line_labels: np.ndarray, subs: list[int]) -> dict[str, int]:
    """Zone of each substation of ``subs``: the zone most of its lines belong to."""
    or_sub, ex_sub = np.asarray(env.line_or_to_subid), np.asarray(env.line_ex_to_subid)
    out = {}
    for sub in subs:
        labels = line_labels[((or_sub == sub) | (ex_sub == sub)) & (line_labels >= 0)]
        if labels.size:
            values, counts = np.unique(labels, return_counts=True)
            out[str(sub)] = int(values[np.argmax(counts)])
    return out


def grid_zones(
    env: Any,
    weights: np.ndarray,
    measured: list[int],
    selected: list[int],
    *,
    method: str,
    n_zones: int | str,
    max_zones: int | None,
    seed: int,
    env_name: str,
    meta: dict[str, Any],
    prior: str = "proximity",
) -> GridZones:
    """Partition the (n_line, n_sub) MI ``weights`` over the ``measured`` substations.

    prior: ``proximity`` weighs each MI value by ``2 ** -hops`` from the line to the
    substation (:func:`line_proximity`) before partitioning: a topology action moves nearby
    flows most, so MI far away is mostly estimation noise when the samples are few (on the
    36-substation grid at 150 episodes per substation it is what separates zones from
    noise); ``none`` partitions the MI as it is. Inside shares are reported on the MI as
    it is either way.
    """
    from sklearn.metrics import adjusted_rand_score

    if prior not in PRIORS:
        raise UserError(f"unknown --prior {prior!r}; choose one of {', '.join(PRIORS)}")
    proximity = line_proximity(env)
    mi = np.clip(np.asarray(weights, dtype=float), 0.0, None)
    partition = ZonePartitioner(
        n_zones=n_zones, method=method, max_zones=max_zones, random_state=seed
    ).fit_predict(
        mi * proximity if prior == "proximity" else mi, inputs=measured, fallback=proximity
    )
    raw = score_zones(mi[:, measured], partition.target_labels, partition.input_labels[measured])
    line_labels, sub_labels = partition.target_labels, partition.input_labels.copy()
    # acted-on substations without MI (too few rows) still need an agent: by their lines
    unmeasured = zones_by_lines(env, line_labels, [s for s in selected if s not in measured])
    for sub, zone in unmeasured.items():
        sub_labels[int(sub)] = zone
    physics = physics_zones(env, partition.n_zones, env_name=env_name, seed=seed)
    ari = float(adjusted_rand_score(physics.sub_labels[measured], sub_labels[measured]))
    clusters = [
        Cluster(
            tuple(int(i) for i in np.flatnonzero(line_labels == zone)),
            tuple(int(i) for i in np.flatnonzero(sub_labels == zone)),
        )
        for zone in range(partition.n_zones)
    ]
    # lines no zone could take (no MI, not connected to any measured substation): alone
    clusters += [Cluster((int(i),), ()) for i in np.flatnonzero(line_labels < 0)]
    zones_meta = {
        **partition.describe(),
        "prior": prior,
        "inside_share_weighted": partition.score.inside_share,
        "inside_share": raw.inside_share,
        "cut_mi": raw.cut_mi,
        "ari_physics": ari,
        "physics_sub_labels": physics.sub_labels.tolist(),
        "unmeasured_substation_zones": unmeasured,
        "unacted_substation_zones": zones_by_lines(
            env, line_labels, [s for s in range(env.n_sub) if s not in selected]
        ),
    }
    factorization = Factorization(
        target_names=[str(n) for n in env.name_line],
        input_names=[str(n) for n in env.name_sub],
        clusters=clusters,
        meta={**meta, "partition": method, "zones": zones_meta},
    )
    return GridZones(factorization, partition, physics, ari, raw.inside_share)


def plot_zones_curve(partition: ZonePartition, path: Any, env_name: str = "") -> Any:
    """``zones_curve.png``: share of the MI inside zones and modularity against K, with what
    the method reaches on the shuffled copies (mean +- one standard deviation, and the
    highest: a K is significant when the modularity is above it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gridfactor.runs import save_figure

    ks = [s.n_zones for s in partition.curve]
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.plot(ks, [s.inside_share for s in partition.curve], marker="o", label="MI inside zones")
    ax.plot(ks, [s.modularity for s in partition.curve], marker="s", label="modularity")
    mean = np.array([s.null_modularity for s in partition.curve])
    std = np.array([s.null_std for s in partition.curve])
    ax.fill_between(
        ks, mean - std, mean + std, color="C1", alpha=0.2, label="shuffled MI: mean +- sd"
    )
    ax.plot(ks, [s.null_max for s in partition.curve], color="C1", ls=":", label="shuffled: max")
    ax.axvline(
        partition.n_zones, color="grey", ls="--", lw=1, label=f"chosen K = {partition.n_zones}"
    )
    ax.set_xlabel("number of zones K")
    ax.set_ylabel("share / modularity")
    ax.set_ylim(0, 1.02)
    ax.set_xticks(ks)
    ax.legend(fontsize="small")
    ax.set_title(f"{env_name} zones ({partition.method}, {partition.rule})", fontsize=9)
    save_figure(fig, path)
    return path
