"""Mutual information: mixed KSG estimator and MI matrices with shuffle bias correction."""

from gridfactor.mi.ksg import default_k, mixed_ksg_mi, mixed_ksg_mi_bruteforce
from gridfactor.mi.matrix import MIResult, mi_matrix, shuffled_mi_matrix, unbiased_mi_matrix

__all__ = [
    "MIResult",
    "default_k",
    "mi_matrix",
    "mixed_ksg_mi",
    "mixed_ksg_mi_bruteforce",
    "shuffled_mi_matrix",
    "unbiased_mi_matrix",
]
