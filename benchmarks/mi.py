"""Benchmark: exact mixed KSG vs the seed's per-sample KD-tree loop, and the batched null.

Run: ``.venv/bin/python benchmarks/mi.py [--sizes 5000 20000 50000 100000]
[--seed-max-n 50000] [--null-n 50000] [--null-replicates 10]``

The seed loop is Gao et al.'s ``Mixed_KSG`` as the seed runs it, timed at full N (nothing
extrapolated): one cKDTree k-NN query per sample, then per sample two ball counts in
``rho - 1e-15``. Those counts leave out points at exactly ``rho``, whereas gridfactor's
estimator (and its O(N^2) oracle) counts ``|x_j - x_i| <= rho``, so the two values differ
by the counts of the boundary points; the table therefore gives two differences: against
the seed loop's value as written, and against the same loop's k-NN radii with ``<= rho``
counts (vectorized cKDTree counts, untimed), which is the estimator gridfactor computes.

Data kinds, k = N // 20:

* grid-like: x rho-like values in [0, 1.5] with ~3% exact zeros (disconnected lines), y a
  58-valued action code index / 58;
* continuous: x standard normal, y = x + standard normal noise.

Then the significance null: R replicates (circular shifts) of a 20-target x 1-input column
at ``--null-n``, as R separate MI-matrix passes vs one batched pass
(:func:`gridfactor.factorize.significance.permutation_null`), in-process and on Ray with
two workers (as ``--workers 2`` runs it). Timings on a
shared machine are noisy: the load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import digamma

from gridfactor.factorize.significance import permutation_null, resample_inputs
from gridfactor.mi import mi_matrix, mixed_ksg_mi
from gridfactor.parallel import ParallelConfig


def seed_loop_mi(x: np.ndarray, y: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    """Gao et al.'s Mixed_KSG loop as the seed runs it, for 1-D x, y: (N,). Returns the
    estimate and the k-NN radii (N,)."""
    n = len(x)
    data = np.column_stack([x, y])
    tree_xy = cKDTree(data)
    tree_x = cKDTree(x[:, None])
    tree_y = cKDTree(y[:, None])
    knn_dis = [tree_xy.query(point, k + 1, p=float("inf"))[0][k] for point in data]
    ans = 0.0
    for i in range(n):
        kp, nx, ny = k, k, k
        if knn_dis[i] == 0:
            kp = len(tree_xy.query_ball_point(data[i], 1e-15, p=float("inf")))
            nx = len(tree_x.query_ball_point(x[i : i + 1], 1e-15, p=float("inf")))
            ny = len(tree_y.query_ball_point(y[i : i + 1], 1e-15, p=float("inf")))
        else:
            nx = len(tree_x.query_ball_point(x[i : i + 1], knn_dis[i] - 1e-15, p=float("inf")))
            ny = len(tree_y.query_ball_point(y[i : i + 1], knn_dis[i] - 1e-15, p=float("inf")))
        ans += (digamma(kp) + np.log(n) - digamma(nx) - digamma(ny)) / n
    return ans, np.asarray(knn_dis)


def inclusive_mi(x: np.ndarray, y: np.ndarray, k: int, knn_dis: np.ndarray) -> float:
    """The seed loop's estimate from its radii knn_dis (N,) with ``<= rho`` counts."""
    n = len(x)
    data = np.column_stack([x, y])
    zero = knn_dis == 0
    r = np.where(zero, 1e-15, knn_dis)
    inf = float("inf")
    kp = np.where(zero, cKDTree(data).query_ball_point(data, r, p=inf, return_length=True), k)
    nx = cKDTree(x[:, None]).query_ball_point(x[:, None], r, p=inf, return_length=True)
    ny = cKDTree(y[:, None]).query_ball_point(y[:, None], r, p=inf, return_length=True)
    return float(np.sum((digamma(kp) + np.log(n) - digamma(nx) - digamma(ny)) / n))


def grid_like(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Line-loading-like x in [0, 1.5] with ~3% exact zeros; 58-valued action code y."""
    x = np.clip(rng.gamma(2.0, 0.25, n), 0.0, 1.5)
    x[rng.random(n) < 0.03] = 0.0
    return x, rng.integers(0, 58, n) / 58.0


def continuous(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(size=n)
    return x, x + rng.normal(size=n)


def load() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def best_time(fn, repeats: int) -> tuple[float, object]:
    """Smallest wall time of ``repeats`` calls of fn() and its (last) result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def estimator_table(sizes: list[int], seed_max_n: int) -> None:
    rng = np.random.default_rng(0)
    print(
        "seed = Gao et al.'s per-sample cKDTree loop at full N (counts in rho - 1e-15); "
        "gridfactor = mixed_ksg_mi, best of 3"
    )
    header = (
        f"{'data':<11}{'N':>8}{'k':>6}{'seed s':>9}{'gridfactor s':>14}{'ratio':>8}"
        f"{'|d| vs seed <=rho':>19}{'|d| vs seed as run':>20}"
    )
    print(header)
    print("-" * len(header))
    for n in sizes:
        for kind, make in (("grid-like", grid_like), ("continuous", continuous)):
            x, y = make(n, rng)
            k = n // 20
            fast, value = best_time(lambda x=x, y=y, k=k: mixed_ksg_mi(x, y, k), 3)
            if n <= seed_max_n:
                seed, (seed_value, radii) = best_time(
                    lambda x=x, y=y, k=k: seed_loop_mi(x, y, k), 1
                )
                same = abs(value - inclusive_mi(x, y, k, radii))
                cells = f"{seed:>9.2f}{fast:>14.4f}{seed / fast:>7.0f}x"
                cells += f"{same:>19.1e}{abs(value - seed_value):>20.1e}"
            else:
                cells = f"{'not run':>9}{fast:>14.4f}{'':>8}{'':>19}{'':>20}"
            print(f"{kind:<11}{n:>8}{k:>6}{cells}", flush=True)


def null_timing(n: int, replicates: int, workers: list[int]) -> None:
    """R replicates of a 20-target x 1-input column: R MI-matrix passes vs one batched pass."""
    rng = np.random.default_rng(1)
    action = rng.integers(0, 58, n)
    inputs = (action / 58.0)[:, None]
    # 20 line loadings, a few of them moved by the action.
    targets = np.clip(rng.gamma(2.0, 0.25, (n, 20)), 0.0, 1.5)
    targets[:, :4] += 0.05 * np.sin(action)[:, None]
    targets[rng.random((n, 20)) < 0.03] = 0.0
    k = n // 20
    seed = 3
    for count in workers:
        config = ParallelConfig(workers=count)
        # Start Ray, load the kernels and modules in its workers, outside the timings.
        mi_matrix(targets[:5000, :4], inputs[:5000], parallel=config, progress=False)
        permutation_null(
            targets[:5000, :4], inputs[:5000], n_permutations=2, parallel=config, progress=False
        )

        def per_replicate(config: ParallelConfig = config) -> np.ndarray:
            children = np.random.SeedSequence(seed).spawn(replicates)
            return np.stack(
                [
                    mi_matrix(
                        targets,
                        resample_inputs(inputs, c, "shift"),
                        k,
                        parallel=config,
                        progress=False,
                    )
                    for c in children
                ]
            )

        def batched(config: ParallelConfig = config) -> np.ndarray:
            return permutation_null(
                targets,
                inputs,
                n_permutations=replicates,
                seed=seed,
                k=k,
                parallel=config,
                progress=False,
            )

        # Alternated, best of 2 each: the load of a shared machine drifts over a minute.
        slow, slow_null = best_time(per_replicate, 1)
        fast, fast_null = best_time(batched, 1)
        slow = min(slow, best_time(per_replicate, 1)[0])
        fast = min(fast, best_time(batched, 1)[0])
        same = "bit-identical" if np.array_equal(slow_null, fast_null) else "DIFFERENT"
        where = "in-process" if config.in_process else f"Ray, workers={count}"
        print(
            f"null, {replicates} shifts of a 20 x 1 column, N={n}, k={k}, {where}: "
            f"{replicates} MI-matrix passes {slow:.2f} s, batched {fast:.2f} s, "
            f"ratio {slow / fast:.2f}x ({same})",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 50000, 100000])
    parser.add_argument(
        "--seed-max-n",
        type=int,
        default=50000,
        help="largest N at which the seed loop runs (about 4 min per data kind at 100 000)",
    )
    parser.add_argument("--null-n", type=int, default=50000)
    parser.add_argument("--null-replicates", type=int, default=10)
    parser.add_argument(
        "--null-workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="ParallelConfig workers for the null timing (1 = in-process)",
    )
    args = parser.parse_args()
    print(f"start: {load()}, {os.cpu_count()} CPUs")
    rng = np.random.default_rng(0)
    mixed_ksg_mi(rng.random(200), rng.random(200), 5)  # load/compile the numba kernels
    mixed_ksg_mi(rng.random(5000), rng.random(5000), 5)
    estimator_table(args.sizes, args.seed_max_n)
    if args.null_replicates > 0:
        null_timing(args.null_n, args.null_replicates, args.null_workers)
    print(f"end: {load()}")


if __name__ == "__main__":
    main()
