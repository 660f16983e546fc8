"""Mixed KSG mutual-information estimator (Gao, Kannan, Oh, Viswanath, NeurIPS 2017).

For 1-D ``x`` and 1-D ``y`` with the max-norm. For each sample ``i`` let ``rho_i`` be the
distance to its k-th nearest neighbour in the joint space (self excluded). Then

* ``rho_i > 0``: ``k_i = k``, ``n_x,i = #{j: |x_j - x_i| <= rho_i}`` (self included), same for y;
* ``rho_i == 0``: ``k_i`` = number of exact joint duplicates of ``i`` (self included), and the
  same ``n_x,i``/``n_y,i`` formula (``|x_j - x_i| <= 0``);

``MI = mean_i(psi(k_i) + log N - psi(n_x,i) - psi(n_y,i))``.

Fast exact algorithm (:func:`mixed_ksg_mi_columns`):

1. Each column is reduced once to its sorted distinct values and the dense rank of every row
   (:func:`prepare_column`); a circular shift or permutation of the rows only permutes the
   ranks, so the null replicates of :mod:`gridfactor.factorize.significance` share it.
2. The joint points are sorted by (x, y) rank with two counting sorts and deduplicated
   (weights = multiplicities), so discrete data is trivial.
3. ``rho_u`` is the (k+1)-th smallest distance from ``u`` to the weighted multiset of all
   points including its own copies. Points are visited in a snake order (columns of
   ~1.3 sqrt(M) x-ranks, alternately up and down in y), and each starts from the previous
   point's radius ``r0``; when the count of that box is off by more than 16, one secant
   step on the count gives a second box and the closer one is kept. The exact count of the
   box ``d <= r0`` is a rank rectangle: 2-D prefix sums over ``s x s`` rank cells plus at
   most four strips of fewer than ``s`` points. The answer is then reached by walking
   outwards (or inwards) from the box along four sorted streams: x-order left and right of
   the box (points with ``|dy| <= |dx|``, key ``|dx|``) and y-order below and above
   (``|dx| < |dy|``, key ``|dy|``), merged by key with the weights summed until the count is
   reached. Every point is in exactly one stream and a stream's keys are monotone, so the
   merge visits the distances in order: no bracket, no fallback, and the walk is as long as
   the guess is off.
   Runs of equal x (or y) are one stream step whose qualifying points are a contiguous
   range found by binary search, so tied or discrete coordinates cost one step per value.
4. Marginal counts: the rows with ``|x_j - x_u| <= rho_u`` are a run of the x order of the
   distinct points, found by galloping from the last box's edges, and counted by prefix
   sums of the weights; likewise in y. Digamma values come from a table of psi(0..N).

All distances are ``max(abs(x_j - x_i), abs(y_j - y_i))`` or one of its two arguments, and
every box or level boundary is found with that exact comparison (rounded subtraction is
monotone, so each predicate is contiguous in sorted order); hence the radii equal those of
the O(N^2) oracle :func:`mixed_ksg_mi_bruteforce` exactly and the MI agrees to the rounding
of the final mean, for any number of threads.
"""

from __future__ import annotations

import functools
import types

import numba
import numpy as np
from numba import njit, prange
from scipy.special import digamma

from gridfactor.errors import UserError

__all__ = [
    "MarginalColumn",
    "check_k",
    "default_k",
    "mixed_ksg_mi",
    "mixed_ksg_mi_bruteforce",
    "mixed_ksg_mi_columns",
    "prepare_column",
]


def default_k(n: int) -> int:
    """Default number of neighbours for ``n`` samples: ``max(1, n // 20)``."""
    return max(1, int(n) // 20)


def check_k(n: int, k: int | None) -> int:
    """Resolve ``k`` (None -> :func:`default_k`) and check ``1 <= k < n``."""
    if k is None:
        k = default_k(n)
    k = int(k)
    if k < 1:
        raise UserError(f"k={k} must be at least 1: pass --k 1 or more")
    if k >= n:
        raise UserError(
            f"too few rows for k: k={k} needs more than {k} rows but there are only {n}; "
            f"collect more rows or pass a smaller --k (at most {max(n - 1, 1)})"
        )
    return k


def _as_columns(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate two 1-D samples of the same length, finite; return float64 contiguous."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    if x.ndim != 1 or y.ndim != 1:
        raise UserError(
            f"x and y must be 1-D arrays, got shapes {x.shape} and {y.shape}: pass single columns"
        )
    if x.shape[0] != y.shape[0]:
        raise UserError(
            f"x has {x.shape[0]} rows but y has {y.shape[0]}: pass samples of the same length"
        )
    for name, a in (("x", x), ("y", y)):
        if not np.all(np.isfinite(a)):
            raise UserError(f"{name} contains NaN or inf values: drop or impute those rows")
    return x, y


@functools.lru_cache(maxsize=8)
def _digamma_table(n: int) -> np.ndarray:
    """psi(0..n) (n + 1,): k_i, n_x,i, n_y,i are integers in [1, n], so a lookup replaces
    three digamma evaluations per point (same values)."""
    table = digamma(np.arange(n + 1, dtype=np.float64))
    table.flags.writeable = False
    return table


def _mi_terms(kk: np.ndarray, nx: np.ndarray, ny: np.ndarray, n: int) -> np.ndarray:
    """Per-sample terms ``psi(k_i) + log N - psi(n_x,i) - psi(n_y,i)`` (shared by both
    estimators so they round identically)."""
    psi = _digamma_table(n)
    return psi[kk] + np.log(n) - psi[nx] - psi[ny]


# --------------------------------------------------------------------------- oracle


@njit(cache=True, parallel=True)
def _bruteforce_counts(
    x: np.ndarray, y: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k_i, n_x,i, n_y,i (N,) each, straight from the definition: all N distances per row."""
    n = x.shape[0]
    kk = np.empty(n, dtype=np.int64)
    nx = np.empty(n, dtype=np.int64)
    ny = np.empty(n, dtype=np.int64)
    for i in prange(n):
        dx = np.abs(x - x[i])
        dy = np.abs(y - y[i])
        d = np.maximum(dx, dy)
        # Self is at distance 0, the minimum, so index k of the sorted row (self included)
        # is the k-th neighbour with self excluded.
        rho = np.partition(d, k)[k]
        kk[i] = np.sum(d <= 0.0) if rho == 0.0 else k
        nx[i] = np.sum(dx <= rho)
        ny[i] = np.sum(dy <= rho)
    return kk, nx, ny


def mixed_ksg_mi_bruteforce(x: np.ndarray, y: np.ndarray, k: int | None = None) -> float:
    """O(N^2) reference implementation (tests only). x, y: (N,)."""
    x, y = _as_columns(x, y)
    n = x.shape[0]
    k = check_k(n, k)
    kk, nx, ny = _bruteforce_counts(x, y, k)
    return float(np.mean(_mi_terms(kk, nx, ny, n)))


# --------------------------------------------------------------------------- marginals


class MarginalColumn:
    """One sample column prepared for many MI estimates: values (L,) its sorted distinct
    values, rank (N,) int64 the index into ``values`` of each row. Reordering the rows (a
    permutation or circular shift) reorders ``rank`` only: see :meth:`reordered`."""

    __slots__ = ("values", "rank")

    def __init__(self, values: np.ndarray, rank: np.ndarray) -> None:
        self.values = values
        self.rank = rank

    def __len__(self) -> int:
        return self.rank.shape[0]

    def reordered(self, rows: np.ndarray) -> MarginalColumn:
        """The column of ``v[rows]``, rows: (N,) a permutation of ``range(N)``."""
        return MarginalColumn(self.values, self.rank[rows])


def prepare_column(v: np.ndarray) -> MarginalColumn:
    """Validate a 1-D finite sample v: (N,) and reduce it to a :class:`MarginalColumn`."""
    v, _ = _as_columns(v, v)
    values, rank = np.unique(v, return_inverse=True)
    return MarginalColumn(values, rank.astype(np.int64).ravel())


# --------------------------------------------------------------------------- joint points


@njit(cache=True)
def _counting_order(keys: np.ndarray, n_keys: int, items: np.ndarray) -> np.ndarray:
    """``items`` stably sorted by ``keys[items]`` (keys in [0, n_keys)): O(len + n_keys)."""
    start = np.zeros(n_keys + 1, dtype=np.int64)
    for i in items:
        start[keys[i] + 1] += 1
    for v in range(n_keys):
        start[v + 1] += start[v]
    out = np.empty(items.shape[0], dtype=np.int64)
    for i in items:
        out[start[keys[i]]] = i
        start[keys[i]] += 1
    return out


@njit(cache=True)
def _joint_points(
    rx: np.ndarray, ry: np.ndarray, lx: int, ly: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (x rank, y rank) pairs of rx, ry: (N,), sorted by (x, y) rank: urx, ury, uw
    (M,) with weights uw = multiplicities, and oy (M,) the indices of the distinct points in
    (y, x) order. Counting sorts (radix by y then x), so O(N + lx + ly)."""
    n = rx.shape[0]
    order = _counting_order(rx, lx, _counting_order(ry, ly, np.arange(n)))
    urx = np.empty(n, dtype=np.int64)
    ury = np.empty(n, dtype=np.int64)
    uw = np.zeros(n, dtype=np.int64)
    m = 0
    for i in order:
        if m == 0 or rx[i] != urx[m - 1] or ry[i] != ury[m - 1]:
            urx[m] = rx[i]
            ury[m] = ry[i]
            m += 1
        uw[m - 1] += 1
    # Stable in the (x, y) order, so ties in y stay sorted by x.
    oy = _counting_order(ury, ly, np.arange(m))
    return urx[:m], ury[:m], uw[:m], oy


# --------------------------------------------------------------------------- kernel


@njit(cache=True, inline="always")
def _first_true(vals, c, r, lo, hi):
    """First j in [lo, hi] with |vals[j] - c| <= r, given F..F T..T on [lo, hi], T at hi."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if abs(vals[mid] - c) <= r:
            hi = mid
        else:
            lo = mid + 1
    return lo


@njit(cache=True, inline="always")
def _end_true(vals, c, r, lo, hi):
    """One past the last j in [lo, hi) with |vals[j] - c| <= r, given T at lo - 1 and
    T..T F..F on [lo, hi)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if abs(vals[mid] - c) <= r:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, inline="always")
def _lower(vals, c, r, pos, hint):
    """First index j <= pos with |vals[j] - c| <= r; vals sorted, vals[pos] == c, r >= 0.

    The predicate is monotone on [0, pos] (rounded subtraction is monotone), so searching on
    the exact float comparison is exact. Galloping from ``hint`` (the same boundary for the
    previous, nearby query) makes it O(log distance).
    """
    h = min(max(hint, 0), pos)
    step = 1
    if abs(vals[h] - c) <= r:
        hi = h
        while True:
            lo = hi - step
            if lo < 0:
                return _first_true(vals, c, r, 0, hi)
            if not abs(vals[lo] - c) <= r:
                return _first_true(vals, c, r, lo + 1, hi)
            hi = lo
            step *= 2
    lo = h
    while True:
        hi = lo + step
        if hi >= pos:
            return _first_true(vals, c, r, lo + 1, pos)
        if abs(vals[hi] - c) <= r:
            return _first_true(vals, c, r, lo + 1, hi)
        lo = hi
        step *= 2


@njit(cache=True, inline="always")
def _upper(vals, c, r, pos, hint):
    """One past the last index j >= pos with |vals[j] - c| <= r (see :func:`_lower`)."""
    n = vals.shape[0]
    h = min(max(hint, pos + 1), n)
    step = 1
    if h == n or not abs(vals[h] - c) <= r:
        hi = h
        while True:
            lo = hi - step
            if lo <= pos:
                return _end_true(vals, c, r, pos + 1, hi)
            if abs(vals[lo] - c) <= r:
                return _end_true(vals, c, r, lo + 1, hi)
            hi = lo
            step *= 2
    lo = h + 1
    while True:
        hi = lo + step
        if hi >= n:
            return _end_true(vals, c, r, lo, n)
        if not abs(vals[hi - 1] - c) <= r:
            return _end_true(vals, c, r, lo, hi - 1)
        lo = hi
        step *= 2


@njit(cache=True, inline="always")
def _strip(rank, w, a, b, lo, hi):
    """Weight of positions [a, b) whose other-axis rank is in [lo, hi) (branch-free)."""
    acc = 0
    for j in range(a, b):
        r = rank[j]
        acc += w[j] * ((r >= lo) & (r < hi))
    return acc


@njit(cache=True)
def _box_weight(ax, bx, ay, by, s, nb, m, ry, yrx, uw, yw, prefix):
    """Weight of the rank rectangle [ax, bx) x [ay, by): whole s x s cells from the prefix
    sums, the (< s wide) strips around them point by point."""
    if bx - ax < 2 * s:
        return _strip(ry, uw, ax, bx, ay, by)
    if by - ay < 2 * s:
        return _strip(yrx, yw, ay, by, ax, bx)
    cx0 = (ax + s - 1) // s
    cx1 = nb if bx == m else bx // s
    cy0 = (ay + s - 1) // s
    cy1 = nb if by == m else by // s
    x0 = cx0 * s
    x1 = min(cx1 * s, m)
    y0 = cy0 * s
    y1 = min(cy1 * s, m)
    c = prefix[cx1, cy1] - prefix[cx0, cy1] - prefix[cx1, cy0] + prefix[cx0, cy0]
    c += _strip(ry, uw, ax, x0, ay, by) + _strip(ry, uw, x1, bx, ay, by)
    c += _strip(yrx, yw, ay, y0, x0, x1) + _strip(yrx, yw, y1, by, x0, x1)
    return c


@njit(cache=True, inline="always")
def _level_weight(sec, cw, a, b, c, delta, strict):
    """Weight of positions [a, b) (one run of equal primary coordinate, sorted by the
    secondary one ``sec``) with |sec - c| < delta (strict) or <= delta: a contiguous range."""
    if b - a == 1:
        d = abs(sec[a] - c)
        return (cw[b] - cw[a]) * (d < delta if strict else d <= delta)
    lo = a
    hi = b
    while lo < hi:  # first position at or past c, or inside
        mid = (lo + hi) >> 1
        d = abs(sec[mid] - c)
        if sec[mid] >= c or (d < delta if strict else d <= delta):
            hi = mid
        else:
            lo = mid + 1
    first = lo
    hi = b
    while lo < hi:  # first position past c and outside
        mid = (lo + hi) >> 1
        d = abs(sec[mid] - c)
        if sec[mid] <= c or (d < delta if strict else d <= delta):
            lo = mid + 1
        else:
            hi = mid
    return cw[lo] - cw[first]


@njit(cache=True, inline="always")
def _advance(prim, sec, cw, lev_lo, lev_hi, cp, cs, pos, step, end, strict, sgn):
    """Next run of a stream holding qualifying weight: (sgn * key, weight, next position);
    (inf, 0, end) when exhausted. ``pos`` is at the run boundary facing the stream."""
    while pos != end:
        if step < 0:
            a = lev_lo[pos]
            b = pos + 1
            nxt = a - 1
        else:
            a = pos
            b = lev_hi[pos]
            nxt = b
        delta = abs(prim[pos] - cp)
        wt = _level_weight(sec, cw, a, b, cs, delta, strict)
        if wt > 0:
            return sgn * delta, wt, nxt
        pos = nxt
    return np.inf, 0, end


@njit(cache=True)
def _walk(u, pyu, ax, bx, ay, by, count, need, ux, uy, cwx, xlo, xhi, yx, yy, cwy, ylo, yhi):
    """Exact rho of point u given the weight ``count`` of its box d <= r0, whose x-order
    positions are [ax, bx) and y-order positions [ay, by).

    Streams (each point other than u is in exactly one): x-order left/right with
    |dy| <= |dx| (key |dx| = d), y-order below/above with |dx| < |dy| (key |dy| = d).
    Outwards (count < need) they start just outside the box with keys increasing; inwards
    they start at its edges with keys decreasing (sgn = -1 turns that into a min-merge) and
    stop at u's own runs of equal x / equal y, whose other points are in the other pair.
    """
    m = ux.shape[0]
    xu = ux[u]
    yu = uy[u]
    if count < need:
        sgn = 1.0
        target = need - count  # weight to add beyond the box
        pl, el, sl = ax - 1, -1, -1
        pr, er, sr = bx, m, 1
        pd, ed, sd = ay - 1, -1, -1
        pu, eu, su = by, m, 1
    else:
        sgn = -1.0
        # Remove the farthest points; the answer is the distance at which the removed weight
        # first exceeds count - need.
        target = count - need + 1
        pl, el, sl = ax, xlo[u], 1
        pr, er, sr = bx - 1, xhi[u] - 1, -1
        pd, ed, sd = ay, ylo[pyu], 1
        pu, eu, su = by - 1, yhi[pyu] - 1, -1
    kl, wl, pl = _advance(ux, uy, cwx, xlo, xhi, xu, yu, pl, sl, el, False, sgn)
    kr, wr, pr = _advance(ux, uy, cwx, xlo, xhi, xu, yu, pr, sr, er, False, sgn)
    kd, wd, pd = _advance(yy, yx, cwy, ylo, yhi, yu, xu, pd, sd, ed, True, sgn)
    ku, wu, pu = _advance(yy, yx, cwy, ylo, yhi, yu, xu, pu, su, eu, True, sgn)
    acc = 0
    while True:
        if kl <= kr and kl <= kd and kl <= ku:
            if wl == 0:
                return np.nan  # unreachable: all streams exhausted, but 1 <= k < N suffices
            acc += wl
            if acc >= target:
                return sgn * kl
            kl, wl, pl = _advance(ux, uy, cwx, xlo, xhi, xu, yu, pl, sl, el, False, sgn)
        elif kr <= kd and kr <= ku:
            acc += wr
            if acc >= target:
                return sgn * kr
            kr, wr, pr = _advance(ux, uy, cwx, xlo, xhi, xu, yu, pr, sr, er, False, sgn)
        elif kd <= ku:
            acc += wd
            if acc >= target:
                return sgn * kd
            kd, wd, pd = _advance(yy, yx, cwy, ylo, yhi, yu, xu, pd, sd, ed, True, sgn)
        else:
            acc += wu
            if acc >= target:
                return sgn * ku
            ku, wu, pu = _advance(yy, yx, cwy, ylo, yhi, yu, xu, pu, su, eu, True, sgn)


@njit(cache=True)
def _runs(v):
    """For sorted v: (M,), start and end (M,) each of the run of equal values at each index."""
    m = v.shape[0]
    lo = np.empty(m, dtype=np.int64)
    hi = np.empty(m, dtype=np.int64)
    start = 0
    for i in range(1, m + 1):
        if i == m or v[i] != v[start]:
            lo[start:i] = start
            hi[start:i] = i
            start = i
    return lo, hi


# Secant step only when the first guess is this far off in count: below, the walk is cheaper
# than a second box count.
_SECANT_MIN = 16


@njit(cache=True)
def _layout(ux, uy, uw, oy, s, q):
    """Search structures for :func:`_radius_chunk` (see :func:`_radius_counts`)."""
    m = ux.shape[0]
    ry = np.empty(m, dtype=np.int64)  # y-order position of each point
    ry[oy] = np.arange(m)
    yx = ux[oy]
    yy = uy[oy]
    yw = uw[oy]
    cwx = np.zeros(m + 1, dtype=np.int64)
    cwy = np.zeros(m + 1, dtype=np.int64)
    for i in range(m):
        cwx[i + 1] = cwx[i] + uw[i]
        cwy[i + 1] = cwy[i] + yw[i]
    xlo, xhi = _runs(ux)
    ylo, yhi = _runs(yy)
    nb = (m + s - 1) // s
    prefix = np.zeros((nb + 1, nb + 1), dtype=np.int64)
    for i in range(m):
        prefix[i // s + 1, ry[i] // s + 1] += uw[i]
    for a in range(1, nb + 1):
        for b in range(1, nb + 1):
            prefix[a, b] += prefix[a - 1, b] + prefix[a, b - 1] - prefix[a - 1, b - 1]
    # Snake order: columns of q x-ranks, alternately up and down in y, so that consecutive
    # points are close and the previous radius is a good guess.
    col = np.empty(m, dtype=np.int64)
    for i in range(m):
        col[i] = i // q
    order = _counting_order(col, (m + q - 1) // q, oy)
    for c in range(1, (m + q - 1) // q, 2):
        order[c * q : min(m, c * q + q)] = order[c * q : min(m, c * q + q)][::-1].copy()
    streams = (ux, uy, cwx, xlo, xhi, yx, yy, cwy, ylo, yhi)
    return order, ry, yw, prefix, streams


@njit(cache=True)
def _radius_chunk(order, start, stop, need, s, ry, oy, uw, yw, prefix, streams, rho, nx, ny):
    """rho, n_x, n_y of the points order[start:stop], one after the other (in place)."""
    ux, uy, cwx, xlo, xhi, yx, yy, cwy, ylo, yhi = streams
    m = ux.shape[0]
    nb = prefix.shape[0] - 1
    r0 = 0.0
    slope = 0.0  # running d(count)/d(radius) for the secant step
    hax, hbx, hay, hby = 0, m, 0, m
    for t in range(start, stop):
        u = order[t]
        xu = ux[u]
        yu = uy[u]
        pyu = ry[u]
        if uw[u] < need:  # else rho = 0: enough copies of u itself
            ax = _lower(ux, xu, r0, u, hax)
            bx = _upper(ux, xu, r0, u, hbx)
            ay = _lower(yy, yu, r0, pyu, hay)
            by = _upper(yy, yu, r0, pyu, hby)
            count = _box_weight(ax, bx, ay, by, s, nb, m, ry, oy, uw, yw, prefix)
            deficit = need - count
            if slope > 0.0 and abs(deficit) > _SECANT_MIN:
                r1 = max(0.0, r0 + deficit / slope)
                if r1 < np.inf:
                    ax1 = _lower(ux, xu, r1, u, ax)
                    bx1 = _upper(ux, xu, r1, u, bx)
                    ay1 = _lower(yy, yu, r1, pyu, ay)
                    by1 = _upper(yy, yu, r1, pyu, by)
                    c1 = _box_weight(ax1, bx1, ay1, by1, s, nb, m, ry, oy, uw, yw, prefix)
                    if abs(need - c1) < abs(deficit):  # walk from the closer box
                        ax, bx, ay, by, count = ax1, bx1, ay1, by1, c1
            hax, hbx, hay, hby = ax, bx, ay, by
            r = _walk(u, pyu, ax, bx, ay, by, count, need, *streams)
            if r != r0 and deficit != 0:
                step = abs(deficit) / abs(r - r0)
                slope = step if slope == 0.0 else 0.9 * slope + 0.1 * step
            rho[u] = r
            r0 = r
        # Marginal counts: the rows with |x - x_u| <= rho are a run of the x order (the last
        # box's edges are close: gallop from them), likewise for y.
        r = rho[u]
        nx[u] = cwx[_upper(ux, xu, r, u, hbx)] - cwx[_lower(ux, xu, r, u, hax)]
        ny[u] = cwy[_upper(yy, yu, r, pyu, hby)] - cwy[_lower(yy, yu, r, pyu, hay)]


@njit(cache=True, parallel=True)
def _radius_counts(ux, uy, uw, oy, k, s, q, nchunks):
    """rho, n_x, n_y (M,) of the distinct points ux, uy (M,) sorted by (x, y) with weights
    uw (M,); oy (M,) their (y, x) order. The snake order is cut into ``nchunks`` chunks
    processed in parallel; the results do not depend on the chunking."""
    m = ux.shape[0]
    order, ry, yw, prefix, streams = _layout(ux, uy, uw, oy, s, q)
    rho = np.zeros(m)
    nx = np.empty(m, dtype=np.int64)
    ny = np.empty(m, dtype=np.int64)
    for c in prange(nchunks):
        start = c * m // nchunks
        stop = (c + 1) * m // nchunks
        _radius_chunk(order, start, stop, k + 1, s, ry, oy, uw, yw, prefix, streams, rho, nx, ny)
    return rho, nx, ny


def _renamed(func, name: str):
    """A copy of a Python function under another name."""
    copy = types.FunctionType(func.__code__, func.__globals__, name, func.__defaults__)
    copy.__qualname__ = name
    return copy


# The same kernel without threads: for few distinct points (discrete data) starting the
# thread pool costs more than the whole computation. Under its own name: numba's cache key
# ignores the parallel flag, so one function compiled both ways shares one cache entry and
# a later process loads whichever was saved last for both (the serial code as the threaded
# kernel, at half the speed on 2 cores).
_radius_counts_serial = njit(cache=True)(_renamed(_radius_counts.py_func, "_radius_counts_serial"))
_SERIAL_BELOW = 4096


def _kernel_sizes(m: int) -> tuple[int, int]:
    """(s, q): rank-cell side of the prefix sums (at least 64, at most 2048^2 cells = 32 MB)
    and snake column width (~1.3 sqrt(M) ranks), tuned on the benchmark."""
    s = max(64, -(-m // 2048))
    q = max(1, min(m, int(round(1.3 * np.sqrt(m)))))
    return s, q


def mixed_ksg_mi_columns(cx: MarginalColumn, cy: MarginalColumn, k: int | None = None) -> float:
    """:func:`mixed_ksg_mi` of two prepared columns of the same length N (see
    :func:`prepare_column`); ``cy.reordered(rows)`` pairs x with y permuted or shifted."""
    n = len(cx)
    if len(cy) != n:
        raise UserError(f"x has {n} rows but y has {len(cy)}: pass samples of the same length")
    k = check_k(n, k)
    urx, ury, uw, oy = _joint_points(cx.rank, cy.rank, cx.values.shape[0], cy.values.shape[0])
    ux = cx.values[urx]
    uy = cy.values[ury]
    m = ux.shape[0]
    s, q = _kernel_sizes(m)
    args = (ux, uy, uw, oy, k, s, q)
    if m < _SERIAL_BELOW:
        rho, nx, ny = _radius_counts_serial(*args, 1)
    else:
        rho, nx, ny = _radius_counts(*args, max(1, min(m, 16 * numba.get_num_threads())))
    kk = np.where(rho == 0, uw, k)
    # Every copy of a distinct point has the same terms: a weighted mean over distinct points.
    # np.sum, not np.dot: BLAS sums in an order that depends on its thread count (1 in a Ray
    # worker, all cores in-process), which changed the last bit between the two.
    return float(np.sum(_mi_terms(kk, nx, ny, n) * uw) / n)


def mixed_ksg_mi(x: np.ndarray, y: np.ndarray, k: int | None = None) -> float:
    """Mixed KSG mutual information (nats) of 1-D samples x, y: (N,). k: neighbours
    (default :func:`default_k`). Exact (same value as the O(N^2) oracle) and fast."""
    x, y = _as_columns(x, y)
    return mixed_ksg_mi_columns(prepare_column(x), prepare_column(y), k)
