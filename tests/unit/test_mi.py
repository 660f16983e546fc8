"""Mixed KSG estimator: fast path vs O(N^2) oracle, statistics, MI matrices, bad inputs."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from gridfactor.errors import UserError
from gridfactor.mi import (
    MIResult,
    default_k,
    ksg,
    mi_matrix,
    mixed_ksg_mi,
    mixed_ksg_mi_bruteforce,
    shuffled_mi_matrix,
    unbiased_mi_matrix,
)
from gridfactor.parallel import ParallelConfig

SERIAL = ParallelConfig(workers=1)


def _datasets(n: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    xd = rng.integers(0, 30, n) / 29.0  # discrete action index scaled to [0, 1]
    return {
        "continuous": (x, x + rng.normal(size=n)),
        "discrete": (rng.integers(0, 4, n).astype(float), rng.integers(0, 3, n).astype(float)),
        "mixed": (xd, np.sin(3 * xd) + 0.3 * rng.normal(size=n)),
        "tied": (np.round(rng.normal(size=n), 1), np.round(rng.normal(size=n), 1)),
        # Values like 0.1 * i make x - r round differently from |x_j - x_i|.
        "tied_decimal": (
            rng.integers(0, 50, n) * 0.1,
            rng.integers(0, 50, n) * 0.1 * 0.3 + 0.1,
        ),
    }


def _large_datasets(n: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Like :func:`_datasets` with more distinct points, so that all but ``discrete`` take the
    threaded, multi-chunk kernel; plus grid-like data (line loadings with exact zeros
    against a 58-valued action code)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    xd = rng.integers(0, 30, n) / 29.0
    loading = np.clip(rng.gamma(2.0, 0.25, n), 0.0, 1.5)
    loading[rng.random(n) < 0.03] = 0.0
    return {
        "continuous": (x, x + rng.normal(size=n)),
        "discrete": (rng.integers(0, 4, n).astype(float), rng.integers(0, 3, n).astype(float)),
        "mixed": (xd, np.sin(3 * xd) + 0.3 * rng.normal(size=n)),
        "tied": (np.round(x, 2), np.round(x + rng.normal(size=n), 1)),
        "grid": (loading, rng.integers(0, 58, n) / 58.0),
    }


@pytest.mark.parametrize("n", [40, 400, 1500])
def test_fast_matches_oracle(n: int) -> None:
    for name, (x, y) in _datasets(n, seed=n).items():
        for k in sorted({1, 3, default_k(n), n // 3}):
            fast = mixed_ksg_mi(x, y, k)
            oracle = mixed_ksg_mi_bruteforce(x, y, k)
            assert abs(fast - oracle) < 1e-9, (name, n, k, fast, oracle)


@pytest.mark.parametrize("name", ["continuous", "discrete", "mixed", "tied", "grid"])
def test_fast_matches_oracle_threaded(name: str) -> None:
    """Above the serial/threaded switch: many chunks, each starting its walk from radius 0,
    the secant step and long walks all run; the radii must still be exact."""
    n = 10_000
    x, y = _large_datasets(n, seed=11)[name]
    distinct = np.unique(np.column_stack([x, y]), axis=0).shape[0]
    assert (distinct >= ksg._SERIAL_BELOW) == (name != "discrete")
    for k in [3, default_k(n)] if name == "continuous" else [default_k(n)]:
        fast = mixed_ksg_mi(x, y, k)
        oracle = mixed_ksg_mi_bruteforce(x, y, k)
        assert abs(fast - oracle) < 1e-9, (name, k, fast, oracle)


def test_same_value_for_any_thread_count() -> None:
    x, y = _large_datasets(20_000, seed=12)["grid"]
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = mixed_ksg_mi(x, y)
    finally:
        numba.set_num_threads(threads)
    assert mixed_ksg_mi(x, y) == one


def test_serial_and_threaded_kernels_cached_apart() -> None:
    """numba's cache key ignores the parallel flag: compiled from one function, the serial
    and threaded kernels would share a cache entry and a later process would load the
    serial code as the threaded kernel."""
    names = {
        ksg._radius_counts.py_func.__qualname__,
        ksg._radius_counts_serial.py_func.__qualname__,
    }
    assert len(names) == 2


def test_default_k() -> None:
    assert default_k(10) == 1
    assert default_k(1000) == 50
    x, y = _datasets(300, seed=1)["mixed"]
    assert abs(mixed_ksg_mi(x, y) - mixed_ksg_mi_bruteforce(x, y, 15)) < 1e-9


def test_independence_and_dependence() -> None:
    rng = np.random.default_rng(0)
    n = 10_000
    x, y = rng.normal(size=n), rng.normal(size=n)
    assert abs(mixed_ksg_mi(x, y)) < 0.03
    assert mixed_ksg_mi(x, x) > 1.0
    # y = x + unit noise: MI = log(2) / 2 = 0.347 nats; at N = 10 000 the default k's
    # estimate is within +-0.01 over seeds (bias and spread).
    assert abs(mixed_ksg_mi(x, x + rng.normal(size=n)) - 0.5 * np.log(2)) < 0.05
    # Shuffle correction: MI - MI(shuffled) of independent data is ~0 too.
    res = unbiased_mi_matrix(x[:, None], y[:, None], seed=3, parallel=SERIAL, progress=False)
    assert isinstance(res, MIResult)
    assert abs(res.unbiased[0, 0]) < 0.03
    np.testing.assert_array_equal(res.unbiased, res.mi - res.shuffled)


def _matrix_data(n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    inputs = np.column_stack(
        [rng.integers(0, 30, n) / 29.0, rng.normal(size=n), rng.integers(0, 2, n)]
    ).astype(float)
    targets = np.column_stack(
        [
            np.sin(3 * inputs[:, 0]) + 0.2 * rng.normal(size=n),
            inputs[:, 1] + 0.5 * rng.normal(size=n),
        ]
    )
    return targets, inputs


def test_mi_matrix_shape_pairs_and_values() -> None:
    targets, inputs = _matrix_data()
    full = mi_matrix(targets, inputs, k=10, parallel=SERIAL, progress=False)
    assert full.shape == (2, 3)
    for t in range(2):
        for i in range(3):
            oracle = mixed_ksg_mi_bruteforce(targets[:, t], inputs[:, i], 10)
            assert abs(full[t, i] - oracle) < 1e-9, (t, i)
    assert full[0, 0] > full[0, 1] and full[1, 1] > full[1, 0]
    mask = np.array([[True, False, True], [False, True, False]])
    part = mi_matrix(targets, inputs, k=10, pairs=mask, parallel=SERIAL, progress=False)
    np.testing.assert_array_equal(part[mask], full[mask])
    assert np.all(part[~mask] == 0.0)


def test_mi_matrix_ray_equals_serial() -> None:
    targets, inputs = _matrix_data()
    serial = mi_matrix(targets, inputs, k=10, parallel=SERIAL, progress=False)
    ray_result = mi_matrix(
        targets, inputs, k=10, parallel=ParallelConfig(workers=2), progress=False
    )
    np.testing.assert_array_equal(serial, ray_result)


def test_shuffled_reproducible() -> None:
    targets, inputs = _matrix_data(300)
    a = shuffled_mi_matrix(targets, inputs, seed=7, parallel=SERIAL, progress=False)
    b = shuffled_mi_matrix(targets, inputs, seed=7, parallel=SERIAL, progress=False)
    c = shuffled_mi_matrix(targets, inputs, seed=8, parallel=SERIAL, progress=False)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    perm = np.random.default_rng(7).permutation(300)
    assert abs(a[0, 1] - mixed_ksg_mi_bruteforce(targets[perm, 0], inputs[:, 1])) < 1e-9


def test_bad_inputs() -> None:
    targets, inputs = _matrix_data(100)
    bad = inputs.copy()
    bad[5, 2] = np.nan
    with pytest.raises(UserError, match="inputs column 2"):
        mi_matrix(targets, bad, parallel=SERIAL, progress=False)
    bad_t = targets.copy()
    bad_t[0, 1] = np.inf
    with pytest.raises(UserError, match="targets column 1"):
        mi_matrix(bad_t, inputs, parallel=SERIAL, progress=False)
    with pytest.raises(UserError, match="rows"):
        mi_matrix(targets[:50], inputs, parallel=SERIAL, progress=False)
    with pytest.raises(UserError, match="2-D"):
        mi_matrix(targets[:, 0], inputs, parallel=SERIAL, progress=False)
    with pytest.raises(UserError, match="pairs mask"):
        mi_matrix(targets, inputs, pairs=np.ones((3, 3), bool), parallel=SERIAL, progress=False)
    with pytest.raises(UserError, match=r"too few rows for k.*k=100.*100.*--k"):
        mi_matrix(targets, inputs, k=100, parallel=SERIAL, progress=False)
    with pytest.raises(UserError, match="too few rows"):
        mixed_ksg_mi(np.zeros(5), np.zeros(5), k=5)
    with pytest.raises(UserError, match="NaN"):
        mixed_ksg_mi(np.array([0.0, np.nan, 1.0]), np.zeros(3), k=1)
