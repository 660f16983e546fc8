"""How well a factorization recovers a known ground truth (synthetic experiments)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import adjusted_rand_score

from gridfactor.factorization import Factorization


@dataclass(frozen=True)
class Recovery:
    """exact: same clusters as the truth; ari: adjusted Rand index over all variables
    (targets then inputs; variables in no cluster count as singletons); precision/recall of
    the kept edges against the true relation."""

    exact: bool
    ari: float
    edge_precision: float
    edge_recall: float


def _variable_labels(factorization: Factorization) -> np.ndarray:
    labels = np.concatenate([factorization.target_labels(), factorization.input_labels()])
    # Unclustered variables (-1) each become their own singleton cluster.
    lonely = labels < 0
    labels[lonely] = labels.max(initial=-1) + 1 + np.arange(lonely.sum())
    return labels


def _cluster_set(factorization: Factorization) -> set[tuple[frozenset[int], frozenset[int]]]:
    return {(frozenset(c.targets), frozenset(c.inputs)) for c in factorization.clusters}


def score_recovery(
    found: Factorization,
    truth: Factorization,
    adjacency: np.ndarray,
    relation: np.ndarray,
) -> Recovery:
    """Compare ``found`` (from the bool ``adjacency``) with ``truth`` (from ``relation``).

    Args:
        adjacency, relation: (n_targets, n_inputs) bool, kept edges and true edges.
    """
    kept = np.asarray(adjacency, bool)
    true = np.asarray(relation, bool)
    true_positive = float((kept & true).sum())
    return Recovery(
        exact=_cluster_set(found) == _cluster_set(truth),
        ari=float(adjusted_rand_score(_variable_labels(truth), _variable_labels(found))),
        edge_precision=true_positive / kept.sum() if kept.any() else 0.0,
        edge_recall=true_positive / true.sum() if true.any() else 1.0,
    )
