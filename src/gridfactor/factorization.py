"""The result of a factorization: clusters of (targets, inputs) and its JSON file format.

Targets are the next-state components s'_i (rows of an MI matrix), inputs the state/action
components x_j (columns). For a power grid, targets are lines (index = grid2op line id) and
inputs are substations (index = grid2op substation id), so ``Cluster.targets`` are line ids
and ``Cluster.inputs`` substation ids: this is the format ``gridfactor train`` reads.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gridfactor.errors import UserError
from gridfactor.runs import write_json

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Cluster:
    """One sub-problem: indices into ``Factorization.target_names`` / ``input_names``."""

    targets: tuple[int, ...]
    inputs: tuple[int, ...]


@dataclass
class Factorization:
    """Clusters of targets and inputs that form near-independent sub-problems.

    Attributes:
        target_names: names of the n targets (rows), e.g. ``s_next_x`` or grid line names.
        input_names: names of the m inputs (columns), e.g. state/action variables or
            substation names.
        clusters: connected components of the target–input graph, ordered by their smallest
            target (then input) index; singletons are kept so every variable is covered.
        meta: provenance (threshold rule, env name, seed, ...), saved with the JSON.
    """

    target_names: list[str]
    input_names: list[str]
    clusters: list[Cluster]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def n_targets(self) -> int:
        return len(self.target_names)

    @property
    def n_inputs(self) -> int:
        return len(self.input_names)

    def validate(self) -> None:
        """Check that cluster ids are in range, non-overlapping and clusters non-empty."""
        seen_t: set[int] = set()
        seen_i: set[int] = set()
        for number, cluster in enumerate(self.clusters):
            if not cluster.targets and not cluster.inputs:
                raise UserError(f"factorization cluster {number} is empty; remove it")
            for kind, ids, limit, seen in (
                ("target", cluster.targets, self.n_targets, seen_t),
                ("input", cluster.inputs, self.n_inputs, seen_i),
            ):
                for idx in ids:
                    if not 0 <= idx < limit:
                        raise UserError(
                            f"factorization cluster {number} has {kind} id {idx} out of range "
                            f"0..{limit - 1}; fix the cluster ids"
                        )
                    if idx in seen:
                        raise UserError(
                            f"factorization {kind} id {idx} appears in more than one cluster; "
                            "clusters must not overlap"
                        )
                    seen.add(idx)

    def target_labels(self) -> np.ndarray:
        """(n_targets,) cluster number of each target (-1 if in no cluster)."""
        labels = np.full(self.n_targets, -1)
        for number, cluster in enumerate(self.clusters):
            labels[list(cluster.targets)] = number
        return labels

    def input_labels(self) -> np.ndarray:
        """(n_inputs,) cluster number of each input (-1 if in no cluster)."""
        labels = np.full(self.n_inputs, -1)
        for number, cluster in enumerate(self.clusters):
            labels[list(cluster.inputs)] = number
        return labels

    def block_order(self) -> tuple[list[int], list[int]]:
        """Row and column orders that make the matrix block-diagonal (cluster by cluster)."""
        rows = [t for c in self.clusters for t in c.targets]
        cols = [i for c in self.clusters for i in c.inputs]
        rows += [t for t in range(self.n_targets) if t not in set(rows)]
        cols += [i for i in range(self.n_inputs) if i not in set(cols)]
        return rows, cols

    def describe(self) -> list[str]:
        """One line per cluster with variable names."""
        return [
            f"cluster {n}: targets [{', '.join(self.target_names[t] for t in c.targets)}] "
            f"<- inputs [{', '.join(self.input_names[i] for i in c.inputs)}]"
            for n, c in enumerate(self.clusters)
        ]

    # ---- file format -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "target_names": list(self.target_names),
            "input_names": list(self.input_names),
            "clusters": [
                {
                    "targets": list(c.targets),
                    "inputs": list(c.inputs),
                    "target_names": [self.target_names[t] for t in c.targets],
                    "input_names": [self.input_names[i] for i in c.inputs],
                }
                for c in self.clusters
            ],
            "meta": self.meta,
        }

    def save(self, path: str | os.PathLike) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "factorization") -> Factorization:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise UserError(
                f"{source} has schema_version {version!r}, this gridfactor reads "
                f"{SCHEMA_VERSION}; re-create it with `gridfactor factorize`"
            )
        try:
            clusters = [
                Cluster(tuple(int(t) for t in c["targets"]), tuple(int(i) for i in c["inputs"]))
                for c in data["clusters"]
            ]
            return cls(
                target_names=[str(n) for n in data["target_names"]],
                input_names=[str(n) for n in data["input_names"]],
                clusters=clusters,
                meta=dict(data.get("meta", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(
                f"{source} is not a valid factorization ({type(exc).__name__}: {exc}); "
                "expected keys schema_version, target_names, input_names, clusters"
            ) from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> Factorization:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"factorization file {path} not found; run `gridfactor factorize`")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"factorization file {path} is not valid JSON ({exc})") from None
        return cls.from_dict(data, source=str(path))


def clusters_from_adjacency(adjacency: np.ndarray) -> list[Cluster]:
    """Connected components of the bipartite graph given by a boolean (n_targets, n_inputs)
    adjacency matrix, ordered by their smallest target (then input) index."""
    from scipy.sparse import bmat, csr_matrix
    from scipy.sparse.csgraph import connected_components

    adjacency = np.asarray(adjacency, dtype=bool)
    n_t, n_i = adjacency.shape
    a = csr_matrix(adjacency.astype(np.int8))
    graph = (
        bmat([[None, a], [a.T, None]], format="csr")
        if n_t and n_i
        else csr_matrix((n_t + n_i, n_t + n_i), dtype=np.int8)
    )
    _, labels = connected_components(graph, directed=False)
    groups: dict[int, tuple[list[int], list[int]]] = {}
    for node, label in enumerate(labels):
        targets, inputs = groups.setdefault(int(label), ([], []))
        (targets if node < n_t else inputs).append(node if node < n_t else node - n_t)

    def sort_key(group: tuple[list[int], list[int]]) -> tuple[int, int]:
        targets, inputs = group
        return (min(targets) if targets else n_t, min(inputs) if inputs else n_i)

    return [Cluster(tuple(t), tuple(i)) for t, i in sorted(groups.values(), key=sort_key)]
