"""Factorization: from an MI matrix to clusters of (targets, inputs)."""

from gridfactor.factorization import (
    SCHEMA_VERSION,
    Cluster,
    Factorization,
    clusters_from_adjacency,
)
from gridfactor.factorize.threshold import binarize_quantile

__all__ = [
    "SCHEMA_VERSION",
    "Cluster",
    "Factorization",
    "binarize_quantile",
    "clusters_from_adjacency",
]
