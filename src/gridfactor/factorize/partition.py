"""Zones: partition a weighted (targets x inputs) MI graph into a few groups.

Connected components of a thresholded graph are the wrong tool on a meshed grid: one
bridging edge merges two zones, one missing edge splits one. A partition instead weighs
every edge by its MI and cuts where little MI crosses.

Each method decides the zones of the *inputs* (the substations: an agent needs actions, so a
zone is defined by the inputs it holds); every target then joins the zone it shares the most
MI with (targets without any MI to a partitioned input use ``fallback`` weights, e.g. grid
distance, or stay unassigned). Methods:

* ``spectral`` (default): spectral clustering (scikit-learn, ``affinity="precomputed"``) of
  the inputs, with the cosine similarity of their MI profiles over the targets as affinity:
  two substations are close when they move the same lines.
* ``cocluster``: scikit-learn ``SpectralCoclustering`` of the (targets x inputs) matrix.
* ``louvain``: networkx ``louvain_communities`` of the weighted bipartite graph; a given
  number of zones is reached by scanning the resolution.

Number of zones: ``n_zones=K`` or ``"auto"``. For every K = 1 .. ``max_zones`` the method's
K-partition is scored by the share of the total MI inside zones and by Barber's bipartite
modularity (Phys. Rev. E 76, 066102, 2007): the share inside minus the share a random
bipartite graph with the same per-target and per-input MI totals would keep inside. A method
finds some modularity in pure noise, more so at larger K, so the same method also runs on
``n_null`` (19) shuffled copies of the MI (each input's values permuted over the targets:
same MI per input, no structure). ``auto`` keeps the K whose modularity beats all of its
shuffled replicates (a permutation test at p < 1/20; a K the method reaches on fewer than
half of the copies, e.g. cocluster leaving clusters empty, is not tested) and, among those,
picks the largest excess over the replicates' mean (ties: the smaller K); one zone when no
K is significant, and disconnected blocks are never merged. The whole curve is kept
(``ZonePartition.curve``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from gridfactor.errors import UserError

METHODS = ("spectral", "cocluster", "louvain")
# Resolutions scanned by the louvain method (log-spaced; 1.0 is networkx's default).
LOUVAIN_RESOLUTIONS = np.geomspace(0.05, 20.0, 41)
# Modularity differences below this are rounding: the smaller K wins.
MODULARITY_TOL = 1e-9


def check_n_zones(n_zones: int | str, n_inputs: int | None = None) -> int | str:
    """``"auto"`` or an int in 1..n_inputs (a zone needs at least one input); a numeric
    string is read as an int (what the command line passes)."""
    if n_zones == "auto":
        return n_zones
    try:
        value = int(n_zones)
    except (TypeError, ValueError):
        raise UserError(f"--n-zones must be 'auto' or an integer, got {n_zones!r}") from None
    if value < 1 or (n_inputs is not None and value > n_inputs):
        bound = "" if n_inputs is None else f" and at most {n_inputs}"
        raise UserError(
            f"--n-zones {value} is not possible: each zone needs at least one partitioned input "
            f"(acted-on substation), so pass auto or a number >= 1{bound}"
        )
    return value


def check_method(method: str) -> str:
    if method not in METHODS:
        raise UserError(f"unknown partition method {method!r}; choose one of {', '.join(METHODS)}")
    return method


@dataclass(frozen=True)
class ZoneScore:
    """How well one partition keeps the MI inside its zones."""

    n_zones: int
    inside_share: float  # MI inside zones / total MI
    cut_mi: float  # MI between a target and an input of different zones (nats, summed)
    modularity: float  # Barber's bipartite modularity
    null_modularity: float = 0.0  # mean of what the method reaches at this K on shuffled MI
    null_max: float = 0.0  # the highest of those replicates
    null_std: float = 0.0  # their standard deviation
    null_replicates: int = 0  # shuffled copies on which the method reached this K
    null_required: int = 0  # copies made (a K is tested when at least half reached it)

    @property
    def excess_modularity(self) -> float:
        return self.modularity - self.null_modularity

    @property
    def significant(self) -> bool:
        """The data beat every shuffled replicate that reached this K, and at least half of
        the replicates did (a method may leave clusters empty on shuffled MI, louvain may
        skip a K: with few or no replicates there is no null to beat, which is no test, not
        a pass). One zone always qualifies."""
        if self.n_zones == 1:
            return True
        tested = self.null_required > 0 and 2 * self.null_replicates >= self.null_required
        return tested and self.modularity > self.null_max

    def to_dict(self) -> dict[str, float]:
        return {
            "n_zones": self.n_zones,
            "inside_share": self.inside_share,
            "cut_mi": self.cut_mi,
            "modularity": self.modularity,
            "null_modularity": self.null_modularity,
            "null_max": self.null_max,
            "null_std": self.null_std,
            "null_replicates": self.null_replicates,
            "excess_modularity": self.excess_modularity,
            "significant": self.significant,
        }


def score_zones(
    weights: np.ndarray, target_labels: np.ndarray, input_labels: np.ndarray
) -> ZoneScore:
    """Inside share, cut MI and bipartite modularity of a labelling.

    Args:
        weights: (n_t, n_i) non-negative MI.
        target_labels: (n_t,) zone per target, -1 = none (its MI counts as cut).
        input_labels: (n_i,) zone per input, -1 = not partitioned (its MI is left out).
    """
    weights = np.asarray(weights, dtype=float)
    used = input_labels >= 0
    w = weights[:, used]
    t_lab, i_lab = np.asarray(target_labels), np.asarray(input_labels)[used]
    total = float(w.sum())
    zones = sorted(set(i_lab.tolist()))
    if total <= 0.0:
        return ZoneScore(len(zones), 1.0, 0.0, 0.0)
    inside = modularity = 0.0
    row_tot, col_tot = w.sum(axis=1), w.sum(axis=0)
    for zone in zones:
        rows, cols = t_lab == zone, i_lab == zone
        block = float(w[np.ix_(rows, cols)].sum())
        inside += block
        modularity += block / total - row_tot[rows].sum() * col_tot[cols].sum() / total**2
    return ZoneScore(len(zones), inside / total, total - inside, float(modularity))


def assign_targets(
    weights: np.ndarray, input_labels: np.ndarray, fallback: np.ndarray | None = None
) -> np.ndarray:
    """(n_t,) zone of each target: the zone whose inputs share the most MI with it.

    Targets with no MI to any partitioned input use ``fallback`` (n_t, n_i) the same way;
    if that is zero too they get -1.
    """
    zones = np.unique(input_labels[input_labels >= 0])
    labels = np.full(weights.shape[0], -1)
    for matrix in (weights, fallback):
        if matrix is None or zones.size == 0:
            continue
        per_zone = np.stack(
            [np.asarray(matrix)[:, input_labels == z].sum(axis=1) for z in zones], axis=1
        )
        todo = (labels < 0) & (per_zone.max(axis=1) > 0)
        labels[todo] = zones[np.argmax(per_zone[todo], axis=1)]
    return labels


def relabel(labels: np.ndarray) -> np.ndarray:
    """Zones numbered 0.. in order of first appearance (so equal partitions compare equal)."""
    out = np.full_like(labels, -1)
    mapping: dict[int, int] = {}
    for i, lab in enumerate(labels):
        if lab >= 0:
            out[i] = mapping.setdefault(int(lab), len(mapping))
    return out


def _spectral_inputs(w: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import SpectralClustering

    norms = np.linalg.norm(w, axis=0)
    profiles = w / np.where(norms > 0, norms, 1.0)
    affinity = profiles.T @ profiles
    # An input without MI is similar to nothing; a tiny uniform floor keeps the graph
    # connected so that it still lands in some zone.
    affinity = affinity + 1e-9
    np.fill_diagonal(affinity, 1.0)
    model = SpectralClustering(
        n_clusters=k, affinity="precomputed", random_state=seed, assign_labels="cluster_qr"
    )
    return model.fit_predict(affinity)


def _cocluster_inputs(w: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import SpectralCoclustering

    rows = w.sum(axis=1) > 0
    cols = w.sum(axis=0) > 0
    labels = np.zeros(w.shape[1], dtype=int)
    if rows.sum() < k or cols.sum() < k:
        return labels
    model = SpectralCoclustering(n_clusters=k, random_state=seed).fit(w[np.ix_(rows, cols)])
    labels[cols] = model.column_labels_
    # inputs without any MI join the zone of input 0 (they carry no information)
    return labels


def _bipartite_graph(w: np.ndarray) -> Any:
    import networkx as nx

    graph = nx.Graph()
    n_t, n_i = w.shape
    graph.add_nodes_from(range(n_t + n_i))
    rows, cols = np.nonzero(w > 0)
    graph.add_weighted_edges_from(
        (int(r), n_t + int(c), float(w[r, c])) for r, c in zip(rows, cols, strict=True)
    )
    return graph


def _louvain_by_k(w: np.ndarray, seed: int) -> dict[int, np.ndarray]:
    """Input labels per number of zones found by scanning the resolution (best modularity
    per K)."""
    import networkx as nx

    graph = _bipartite_graph(w)
    n_t = w.shape[0]
    best: dict[int, tuple[float, np.ndarray]] = {}
    for resolution in LOUVAIN_RESOLUTIONS:
        communities = nx.community.louvain_communities(
            graph, weight="weight", resolution=float(resolution), seed=seed
        )
        node_label = np.empty(graph.number_of_nodes(), dtype=int)
        for number, members in enumerate(communities):
            node_label[list(members)] = number
        inputs = relabel(node_label[n_t:])
        k = int(inputs.max()) + 1
        targets = assign_targets(w, inputs)
        q = score_zones(w, targets, inputs).modularity
        if k not in best or q > best[k][0]:
            best[k] = (q, inputs)
    return {k: labels for k, (_, labels) in best.items()}


@dataclass
class ZonePartition:
    """Zones of targets and inputs, and the K curve they were chosen from.

    Attributes:
        target_labels: (n_t,) zone of each target (-1: no MI to any zone and no fallback).
        input_labels: (n_i,) zone of each partitioned input, -1 for inputs left out.
        score: the chosen partition's :class:`ZoneScore`.
        curve: one ZoneScore per candidate K (1 .. max_zones), in K order.
        method, rule: how the zones were found (``rule`` = "auto: max modularity" or "fixed").
    """

    target_labels: np.ndarray
    input_labels: np.ndarray
    score: ZoneScore
    curve: list[ZoneScore]
    method: str
    rule: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_zones(self) -> int:
        return self.score.n_zones

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "n_zones": self.n_zones,
            "rule": self.rule,
            "inside_share": self.score.inside_share,
            "cut_mi": self.score.cut_mi,
            "modularity": self.score.modularity,
            "curve": [s.to_dict() for s in self.curve],
            **self.meta,
        }


class ZonePartitioner:
    """Partition a (targets x inputs) MI matrix into zones (scikit-learn style).

    Args:
        n_zones: number of zones, or "auto" (see the module docstring).
        method: one of :data:`METHODS` (see the module docstring).
        max_zones: largest K tried by "auto" and reported in the curve (None: half the
            partitioned inputs, at least 1, so that zones hold two inputs on average).
        random_state: seed of the clustering and of the null.
        n_null: shuffled-MI replicates of the null (19: a K is significant at p < 0.05).

    ``fit(weights, inputs=None, fallback=None)``: weights (n_t, n_i) MI (negative values are
    clipped to 0); ``inputs`` the indices of the inputs to partition (None: all); fallback
    (n_t, n_i) weights for targets without MI (see :func:`assign_targets`). Sets
    ``partition_`` (a :class:`ZonePartition`), ``target_labels_`` and ``input_labels_``.
    """

    def __init__(
        self,
        n_zones: int | str = "auto",
        method: str = "spectral",
        max_zones: int | None = None,
        random_state: int = 0,
        n_null: int = 19,
    ) -> None:
        self.n_zones = n_zones
        self.method = method
        self.max_zones = max_zones
        self.random_state = random_state
        self.n_null = n_null

    def _input_labels(self, w: np.ndarray, k: int, louvain: dict[int, np.ndarray] | None):
        if k == 1:
            return np.zeros(w.shape[1], dtype=int)
        if self.method == "spectral":
            return _spectral_inputs(w, k, self.random_state)
        if self.method == "cocluster":
            return _cocluster_inputs(w, k, self.random_state)
        assert louvain is not None
        return louvain.get(k)

    def _partitions(
        self, w: np.ndarray, fallback: np.ndarray | None, ks: range
    ) -> dict[int, tuple[np.ndarray, np.ndarray, ZoneScore]]:
        """(target labels, input labels, score) of the method's partition for each K in
        ``ks`` that it reaches (a method may leave a cluster empty: that K is skipped)."""
        louvain = _louvain_by_k(w, self.random_state) if self.method == "louvain" else None
        out = {}
        for k in ks:
            sub_labels = self._input_labels(w, k, louvain)
            if sub_labels is None:
                continue
            sub_labels = relabel(np.asarray(sub_labels))
            targets = assign_targets(w, sub_labels, fallback)
            score = score_zones(w, targets, sub_labels)
            if score.n_zones == k:
                out[k] = (targets, sub_labels, score)
        return out

    def fit(
        self,
        weights: np.ndarray,
        inputs: np.ndarray | list[int] | None = None,
        fallback: np.ndarray | None = None,
    ) -> ZonePartitioner:
        check_method(self.method)
        weights = np.asarray(weights, dtype=float)
        if weights.ndim != 2:
            raise UserError(f"MI matrix must be 2-D (targets x inputs), got {weights.shape}")
        if not np.all(np.isfinite(weights)):
            raise UserError("MI matrix has NaN or inf values; re-run the MI estimation")
        n_i = weights.shape[1]
        cols = np.arange(n_i) if inputs is None else np.asarray(inputs, dtype=int)
        if cols.size == 0:
            raise UserError("no input to partition (no acted-on substation was measured)")
        n_zones = check_n_zones(self.n_zones, cols.size)
        max_zones = self.max_zones or max(1, cols.size // 2)
        max_zones = min(max(max_zones, n_zones if isinstance(n_zones, int) else 1), cols.size)
        w = np.clip(weights[:, cols], 0.0, None)
        fb = None if fallback is None else np.asarray(fallback, dtype=float)[:, cols]
        results = self._partitions(w, fb, range(1, max_zones + 1))
        # The same method on structureless MI (each input's values shuffled over the
        # targets): the modularity it finds there at a given K is what noise alone buys.
        rng = np.random.default_rng(self.random_state)
        null: dict[int, list[float]] = {k: [] for k in results}
        for _ in range(self.n_null):
            found = self._partitions(rng.permuted(w, axis=0), None, range(2, max_zones + 1))
            for k, (_, _, score) in found.items():
                if k in null:
                    null[k].append(score.modularity)
        for k, (targets, labels, score) in results.items():
            q0 = null[k] or [0.0]
            score = replace(
                score,
                null_modularity=float(np.mean(q0)),
                null_max=float(np.max(q0)),
                null_std=float(np.std(q0)),
                null_replicates=len(null[k]),
                null_required=self.n_null,
            )
            results[k] = (targets, labels, score)
        if n_zones == "auto":
            rule = "auto: max modularity above the shuffled-MI null"
            chosen = min(results)
            for k in sorted(results):  # a larger K must beat the best so far beyond rounding
                score = results[k][2]
                if (
                    score.significant
                    and score.excess_modularity
                    > results[chosen][2].excess_modularity + MODULARITY_TOL
                ):
                    chosen = k
        else:
            rule = "fixed"
            chosen = n_zones
            if chosen not in results:
                raise UserError(
                    f"the {self.method} method finds no partition into {chosen} zones; "
                    "pass another --n-zones or --partition spectral"
                )
        targets, sub_labels, score = results[chosen]
        input_labels = np.full(n_i, -1)
        input_labels[cols] = sub_labels
        curve = [results[k][2] for k in sorted(results)]
        self.partition_ = ZonePartition(targets, input_labels, score, curve, self.method, rule)
        self.target_labels_ = targets
        self.input_labels_ = input_labels
        return self

    def fit_predict(self, weights: np.ndarray, inputs=None, fallback=None) -> ZonePartition:
        return self.fit(weights, inputs, fallback).partition_
