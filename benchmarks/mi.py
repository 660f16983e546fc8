"""Benchmark: fast exact mixed KSG vs the reference per-sample KD-tree loop (Gao et al.'s code).

Run: ``.venv/bin/python benchmarks/mi.py [--sizes 2000 5000 20000 50000] [--ref-points 500]``

The reference is timed on ``--ref-points`` query points and extrapolated linearly to N (its
cost is a sum of independent per-point costs); the output says so. Also times a 20x14
``mi_matrix`` at N=50k with workers=2. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import digamma

from gridfactor.mi import mi_matrix, mixed_ksg_mi
from gridfactor.parallel import ParallelConfig


def reference_mi_timed(x: np.ndarray, y: np.ndarray, k: int, points: int) -> float:
    """Seconds for Gao et al.'s per-sample loop on ``points`` query points, scaled to N."""
    n = len(x)
    data = np.column_stack([x, y])
    tree_xy = cKDTree(data)
    tree_x = cKDTree(x[:, None])
    tree_y = cKDTree(y[:, None])
    idx = np.random.default_rng(0).choice(n, size=min(points, n), replace=False)
    start = time.perf_counter()
    ans = 0.0
    for i in idx:
        knn_dis = tree_xy.query(data[i], k + 1, p=float("inf"))[0][k]
        if knn_dis == 0:
            kp = len(tree_xy.query_ball_point(data[i], 1e-15, p=float("inf")))
            nx = len(tree_x.query_ball_point(x[i : i + 1], 1e-15, p=float("inf")))
            ny = len(tree_y.query_ball_point(y[i : i + 1], 1e-15, p=float("inf")))
        else:
            kp = k
            nx = len(tree_x.query_ball_point(x[i : i + 1], knn_dis - 1e-15, p=float("inf")))
            ny = len(tree_y.query_ball_point(y[i : i + 1], knn_dis - 1e-15, p=float("inf")))
        ans += (digamma(kp) + np.log(n) - digamma(nx) - digamma(ny)) / n
    return (time.perf_counter() - start) * n / len(idx)


def make_data(kind: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if kind == "mixed":
        # Discrete action index (~30 values) scaled to [0, 1]; continuous response.
        x = rng.integers(0, 30, n) / 29.0
        return x, np.sin(3 * x) + 0.3 * rng.normal(size=n)
    x = rng.normal(size=n)
    return x, x + rng.normal(size=n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000, 20000, 50000])
    parser.add_argument("--ref-points", type=int, default=500)
    parser.add_argument("--matrix-n", type=int, default=50000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    mixed_ksg_mi(rng.random(200), rng.random(200), 5)  # load/compile the numba kernels

    print(
        f"reference = per-sample cKDTree loop (Gao et al.), timed on {args.ref_points} query "
        "points and extrapolated linearly to N"
    )
    header = f"{'data':<11}{'N':>7}{'k':>6}{'fast s':>9}{'ref s (extrap.)':>17}{'speedup':>10}"
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        for kind in ("mixed", "continuous"):
            x, y = make_data(kind, n, rng)
            k = max(1, n // 20)
            times = []
            for _ in range(3):
                start = time.perf_counter()
                mixed_ksg_mi(x, y, k)
                times.append(time.perf_counter() - start)
            fast = min(times)
            ref = reference_mi_timed(x, y, k, args.ref_points)
            print(f"{kind:<11}{n:>7}{k:>6}{fast:>9.3f}{ref:>17.1f}{ref / fast:>9.0f}x")

    n = args.matrix_n
    inputs = np.column_stack(
        [rng.integers(0, 30, n) / 29.0 if j % 2 else rng.normal(size=n) for j in range(14)]
    )
    targets = np.column_stack(
        [np.sin(3 * inputs[:, t % 14]) + 0.5 * rng.normal(size=n) for t in range(20)]
    )
    config = ParallelConfig(workers=2)
    mi_matrix(targets[:200, :2], inputs[:200, :2], parallel=config, progress=False)  # start Ray
    start = time.perf_counter()
    mi_matrix(targets, inputs, parallel=config, progress=False)
    print(f"mi_matrix 20x14 at N={n}, k={n // 20}, workers=2: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
