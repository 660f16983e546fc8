"""Physics reference zones: the grid's own electrical structure, no data needed.

Substations are the nodes of a graph whose edge weights are the DC susceptances ``1 / x``
(per unit) of the lines and transformers joining them (parallel branches add up): the
matrix a DC power flow is built from. Spectral clustering of that graph (scikit-learn,
``affinity="precomputed"``) cuts where the electrical coupling is weakest. On the 14-bus
grids at K = 2 this gives substations {0..4} / {5..13}, the two voltage levels joined by
transformers, i.e. grid2op's own multi-agent split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gridfactor.errors import UserError


def susceptance_matrix(env: Any) -> np.ndarray:
    """(n_sub, n_sub) symmetric sum of ``1 / |x|`` of the branches between substations.

    Reads the branch reactances from the LightSimBackend's grid model (grid2op's line order
    is its lines then its transformers; checked against grid2op's line ends).
    """
    grid = getattr(env.backend, "_grid", None)
    if grid is None or not hasattr(grid, "get_2_windings_transformers"):
        raise UserError(
            "the physics reference reads line reactances from lightsim2grid; create the env "
            "with the LightSimBackend (gridfactor's default)"
        )
    branches = list(grid.get_lines()) + list(grid.get_2_windings_transformers())
    ends = list(zip(env.line_or_to_subid.tolist(), env.line_ex_to_subid.tolist(), strict=True))
    matrix = np.zeros((env.n_sub, env.n_sub))
    if len(branches) != len(ends):
        raise UserError(
            f"{len(branches)} branches in the backend but {len(ends)} grid2op lines; the "
            "physics reference needs a plain lines + transformers grid"
        )
    for branch, (a, b) in zip(branches, ends, strict=True):
        if {int(branch.sub1_id), int(branch.sub2_id)} != {a, b}:
            raise UserError("backend branch order differs from grid2op's line order")
        if a != b and branch.x_pu != 0:
            weight = 1.0 / abs(float(branch.x_pu))
            matrix[a, b] += weight
            matrix[b, a] += weight
    return matrix


@dataclass(frozen=True)
class PhysicsZones:
    """Zones of every substation (and line) from the susceptance graph."""

    env_name: str
    n_zones: int
    sub_labels: np.ndarray  # (n_sub,)
    line_labels: np.ndarray  # (n_line,): zone of the line's origin substation if both ends
    # agree, else of the end with the larger susceptance to its own zone

    def zones(self) -> list[list[int]]:
        return [np.flatnonzero(self.sub_labels == z).tolist() for z in range(self.n_zones)]


def physics_zones(env: Any, n_zones: int, *, env_name: str = "", seed: int = 0) -> PhysicsZones:
    """Spectral clustering of the susceptance graph into ``n_zones`` connected zones."""
    from sklearn.cluster import SpectralClustering

    from gridfactor.factorize.partition import relabel

    if not 1 <= int(n_zones) <= env.n_sub:
        raise UserError(
            f"--k {n_zones} is outside 1..{env.n_sub} (the substations of "
            f"{env_name or 'the env'}); pass a number of zones in that range"
        )
    affinity = susceptance_matrix(env)
    if n_zones == 1:
        subs = np.zeros(env.n_sub, dtype=int)
    else:
        model = SpectralClustering(
            n_clusters=int(n_zones),
            affinity="precomputed",
            random_state=seed,
            assign_labels="cluster_qr",
        )
        subs = relabel(model.fit_predict(affinity))
    or_sub, ex_sub = np.asarray(env.line_or_to_subid), np.asarray(env.line_ex_to_subid)
    strength = affinity.sum(axis=1)
    # a line between zones goes with its more strongly connected end
    line_labels = np.where(strength[or_sub] >= strength[ex_sub], subs[or_sub], subs[ex_sub]).astype(
        int
    )
    return PhysicsZones(env_name, int(subs.max()) + 1, subs, line_labels)
