"""Mutual information: mixed KSG estimator and MI matrices with shuffle bias correction."""

from gridfactor.mi.ksg import (
    MarginalColumn,
    default_k,
    mixed_ksg_mi,
    mixed_ksg_mi_bruteforce,
    mixed_ksg_mi_columns,
    prepare_column,
)
from gridfactor.mi.matrix import (
    MIResult,
    mi_matrix,
    mi_matrix_replicates,
    shuffled_mi_matrix,
    unbiased_mi_matrix,
)

__all__ = [
    "MIResult",
    "MarginalColumn",
    "default_k",
    "mi_matrix",
    "mi_matrix_replicates",
    "mixed_ksg_mi",
    "mixed_ksg_mi_bruteforce",
    "mixed_ksg_mi_columns",
    "prepare_column",
    "shuffled_mi_matrix",
    "unbiased_mi_matrix",
]
