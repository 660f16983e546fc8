"""Mixed KSG mutual-information estimator (Gao, Kannan, Oh, Viswanath, NeurIPS 2017).

For 1-D ``x`` and 1-D ``y`` with the max-norm. For each sample ``i`` let ``rho_i`` be the
distance to its k-th nearest neighbour in the joint space (self excluded). Then

* ``rho_i > 0``: ``k_i = k``, ``n_x,i = #{j: |x_j - x_i| <= rho_i}`` (self included), same for y;
* ``rho_i == 0``: ``k_i`` = number of exact joint duplicates of ``i`` (self included), and the
  same ``n_x,i``/``n_y,i`` formula (``|x_j - x_i| <= 0``);

``MI = mean_i(psi(k_i) + log N - psi(n_x,i) - psi(n_y,i))``.

Fast exact algorithm (:func:`mixed_ksg_mi`):

1. Deduplicate the joint points (weights = multiplicities), so discrete data is trivial.
2. ``rho_u`` is the (k+1)-th smallest distance from ``u`` to the weighted multiset of all
   points *including itself* (its own copies sit at distance 0). That function of the query
   position is 1-Lipschitz in the max-norm, so the previous point ``v`` of a spatially
   coherent processing order brackets it: ``rho_u`` lies in ``[rho_v - d_uv, rho_v + d_uv]``.
3. Points live in a ``B x B`` grid over (x-rank, y-rank) space with 2-D prefix sums of cell
   weights. A max-norm box ``|dx| <= r, |dy| <= r`` is exactly a rank rectangle (found by
   binary search with the exact float predicate), so the weight strictly inside the lower
   bound comes from the prefix sums in O(1), and only points in the thin ring of cells
   between the two bounds are examined one by one. The bracket is checked with exact counts
   (the middle quarter of the Lipschitz bracket is tried first, then the half it points
   to, then a always-valid bracket), and a bucketed weighted quickselect over the ring
   candidates gives ``rho_u`` exactly.
4. Marginal counts: ``np.sort`` + ``np.searchsorted``, then exact fix-ups of the boundaries
   with the very comparison ``|x_j - x_i| <= rho_i``.

All distances are computed as ``max(abs(x_j - x_i), abs(y_j - y_i))``, exactly like the
O(N^2) oracle :func:`mixed_ksg_mi_bruteforce`, so both agree to rounding of the final mean.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange
from scipy.special import digamma

from gridfactor.errors import UserError

__all__ = ["default_k", "mixed_ksg_mi", "mixed_ksg_mi_bruteforce", "check_k"]


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


def _mi_terms(kk: np.ndarray, nx: np.ndarray, ny: np.ndarray, n: int) -> np.ndarray:
    """Per-sample terms ``psi(k_i) + log N - psi(n_x,i) - psi(n_y,i)`` (shared by both
    estimators so they round identically)."""
    return (
        digamma(kk.astype(np.float64))
        + np.log(n)
        - digamma(nx.astype(np.float64))
        - digamma(ny.astype(np.float64))
    )


# --------------------------------------------------------------------------- oracle


def mixed_ksg_mi_bruteforce(x: np.ndarray, y: np.ndarray, k: int | None = None) -> float:
    """O(N^2) reference implementation (tests only). x, y: (N,)."""
    x, y = _as_columns(x, y)
    n = x.shape[0]
    k = check_k(n, k)
    kk = np.empty(n, dtype=np.int64)
    nx = np.empty(n, dtype=np.int64)
    ny = np.empty(n, dtype=np.int64)
    step = max(1, 2_000_000 // n)
    for start in range(0, n, step):
        rows = slice(start, min(n, start + step))
        dx = np.abs(x[None, :] - x[rows, None])  # (b, N)
        dy = np.abs(y[None, :] - y[rows, None])
        d = np.maximum(dx, dy)
        # Self is at distance 0, the minimum, so index k of the sorted row (self included)
        # is the k-th neighbour with self excluded.
        rho = np.partition(d, k, axis=1)[:, k]
        zero = rho == 0
        kk[rows] = np.where(zero, (d <= 0).sum(axis=1), k)
        nx[rows] = (dx <= rho[:, None]).sum(axis=1)
        ny[rows] = (dy <= rho[:, None]).sum(axis=1)
    return float(np.mean(_mi_terms(kk, nx, ny, n)))


# --------------------------------------------------------------------------- fast path


def _unique_rows(
    x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (x, y) rows sorted by (x, y); weights (M,) int64; inverse (N,) -> unique."""
    order = np.lexsort((y, x))
    xs, ys = x[order], y[order]
    new = np.empty(x.shape[0], dtype=bool)
    new[0] = True
    new[1:] = (xs[1:] != xs[:-1]) | (ys[1:] != ys[:-1])
    group = np.cumsum(new) - 1
    inverse = np.empty(x.shape[0], dtype=np.int64)
    inverse[order] = group
    starts = np.flatnonzero(new)
    weights = np.diff(np.append(starts, x.shape[0])).astype(np.int64)
    return xs[starts].copy(), ys[starts].copy(), weights, inverse


@njit(cache=True, inline="always")
def _lower(vals, c, r, pos, strict):
    """First index j in [0, pos] with |vals[j] - c| (< or <=) r; vals sorted, vals[pos] == c.

    The predicate is monotone on [0, pos] (rounded subtraction is monotone), so a binary
    search on the exact float comparison is exact.
    """
    lo = 0
    hi = pos
    while lo < hi:
        mid = (lo + hi) >> 1
        dd = abs(vals[mid] - c)
        ok = dd < r if strict else dd <= r
        if ok:
            hi = mid
        else:
            lo = mid + 1
    return lo


@njit(cache=True, inline="always")
def _upper(vals, c, r, pos, strict):
    """One past the last index j >= pos with |vals[j] - c| (< or <=) r."""
    lo = pos + 1
    hi = vals.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        dd = abs(vals[mid] - c)
        ok = dd < r if strict else dd <= r
        if ok:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _weighted_select(cd, cw, n, target):
    """Smallest r among cd[:n] with sum(cw[j] for cd[j] <= r) >= target (reorders in place)."""
    lo = 0
    hi = n
    while True:
        if hi - lo <= 24:
            # Insertion sort the small rest, then scan the cumulative weight.
            for i in range(lo + 1, hi):
                dv = cd[i]
                wv = cw[i]
                j = i - 1
                while j >= lo and cd[j] > dv:
                    cd[j + 1] = cd[j]
                    cw[j + 1] = cw[j]
                    j -= 1
                cd[j + 1] = dv
                cw[j + 1] = wv
            acc = 0
            for i in range(lo, hi):
                acc += cw[i]
                if acc >= target:
                    return cd[i]
            return cd[hi - 1]  # unreachable when the weights suffice
        mid = (lo + hi) >> 1
        a = cd[lo]
        b = cd[mid]
        c = cd[hi - 1]
        if a > b:
            a, b = b, a
        if b > c:
            b = c
        pivot = b if b > a else a  # median of three
        # Three-way partition [lo, lt) < pivot, [lt, gt) == pivot, [gt, hi) > pivot.
        lt = lo
        i = lo
        gt = hi
        wl = 0
        we = 0
        while i < gt:
            dv = cd[i]
            if dv < pivot:
                wl += cw[i]
                cd[i] = cd[lt]
                cd[lt] = dv
                tw = cw[i]
                cw[i] = cw[lt]
                cw[lt] = tw
                lt += 1
                i += 1
            elif dv > pivot:
                gt -= 1
                cd[i] = cd[gt]
                cd[gt] = dv
                tw = cw[i]
                cw[i] = cw[gt]
                cw[gt] = tw
            else:
                we += cw[i]
                i += 1
        if target <= wl:
            hi = lt
        elif target <= wl + we:
            return pivot
        else:
            target -= wl + we
            lo = gt


_NBUCKETS = 64


@njit(cache=True)
def _bucket_select(cd, cw, n, target, lo_r, up_r, hist):
    """Same result as :func:`_weighted_select` for values in [lo_r, up_r]: one pass of
    bucketing (a monotone map of the value, so bucket order = value order) narrows the
    selection to one bucket, then quickselect there."""
    if n <= 48 or not up_r > lo_r:
        return _weighted_select(cd, cw, n, target)
    nbk = hist.shape[0]
    scale = nbk / (up_r - lo_r)
    hist[:] = 0
    for i in range(n):
        b = min(int((cd[i] - lo_r) * scale), nbk - 1)
        hist[b] += cw[i]
    chosen = 0
    for b in range(nbk):
        if target <= hist[b]:
            chosen = b
            break
        target -= hist[b]
    j = 0
    for i in range(n):
        dv = cd[i]
        wv = cw[i]
        cd[j] = dv
        cw[j] = wv
        j += min(int((dv - lo_r) * scale), nbk - 1) == chosen
    return _weighted_select(cd, cw, j, target)


@njit(cache=True)
def _query(
    u, lo_r, up_r, need, ux, uy, ys, rank_y, s, nb, cell_start, px, py, pw, prefix, cd, cw, hist
):
    """Exact rho_u given a bracket [lo_r, up_r]; returns (rho, status): status 0 = found,
    1 = the answer is < lo_r, 2 = the answer is > up_r (then retry with another bracket)."""
    m = ux.shape[0]
    xu = ux[u]
    yu = uy[u]
    pos_y = rank_y[u]
    ax = _lower(ux, xu, up_r, u, False)
    bx = _upper(ux, xu, up_r, u, False)
    ay = _lower(ys, yu, up_r, pos_y, False)
    by = _upper(ys, yu, up_r, pos_y, False)
    cx0 = ax // s
    cx1 = (bx - 1) // s
    cy0 = ay // s
    cy1 = (by - 1) // s
    # Cells fully inside the strict lower-bound box: every point there has d < lo_r.
    ix0 = 1
    ix1 = 0
    iy0 = 1
    iy1 = 0
    count = 0
    if lo_r > 0.0:
        lax = _lower(ux, xu, lo_r, u, True)
        lbx = _upper(ux, xu, lo_r, u, True)
        lay = _lower(ys, yu, lo_r, pos_y, True)
        lby = _upper(ys, yu, lo_r, pos_y, True)
        ix0 = (lax + s - 1) // s
        ix1 = (m - 1) // s if lbx == m else lbx // s - 1
        iy0 = (lay + s - 1) // s
        iy1 = (m - 1) // s if lby == m else lby // s - 1
        if ix0 <= ix1 and iy0 <= iy1:
            count = (
                prefix[ix1 + 1, iy1 + 1]
                - prefix[ix0, iy1 + 1]
                - prefix[ix1 + 1, iy0]
                + prefix[ix0, iy0]
            )
        else:
            ix0 = 1
            ix1 = 0
    total = count
    nc = 0
    for cx in range(cx0, cx1 + 1):
        inner_col = ix0 <= cx <= ix1
        cy = cy0
        while cy <= cy1:
            if inner_col and cy == iy0:
                cy = iy1 + 1  # skip the block already counted by prefix sums
                continue
            cell = cx * nb + cy
            # Branch-free: the in/out tests are unpredictable, stores are cheap.
            for p in range(cell_start[cell], cell_start[cell + 1]):
                d = max(abs(px[p] - xu), abs(py[p] - yu))
                w = pw[p]
                below = d < lo_r
                inside = d <= up_r
                count += w * below
                cd[nc] = d
                cw[nc] = w
                cand = inside and not below
                nc += cand
                total += w * inside
            cy += 1
    if count >= need:
        return 0.0, 1  # the answer is below lo_r
    if total < need:
        return 0.0, 2  # the answer is above up_r
    return _bucket_select(cd, cw, nc, need - count, lo_r, up_r, hist), 0


@njit(cache=True)
def _window_bound(u, need, ux, uy, uw):
    """Safe upper bound: max distance over an x-order window around u of weight >= need."""
    m = ux.shape[0]
    xu = ux[u]
    yu = uy[u]
    left = u
    right = u
    acc = uw[u]
    bound = 0.0
    while acc < need:
        go_left = left > 0 and (right == m - 1 or xu - ux[left - 1] <= ux[right + 1] - xu)
        if go_left:
            left -= 1
            j = left
        else:
            right += 1
            j = right
        acc += uw[j]
        d = max(abs(ux[j] - xu), abs(uy[j] - yu))
        if d > bound:
            bound = d
    return bound


@njit(cache=True, parallel=True)
def _joint_radius(ux, uy, uw, k, s, nchunks):
    """rho (M,) for unique points sorted by (x, y) with weights uw (M,)."""
    m = ux.shape[0]
    need = k + 1
    rho = np.zeros(m)
    # y ranks
    oy = np.argsort(uy, kind="mergesort")
    ys = uy[oy]
    rank_y = np.empty(m, dtype=np.int64)
    for i in range(m):
        rank_y[oy[i]] = i
    nb = (m + s - 1) // s
    # Cell storage (CSR) sorted by cell then y, and a snake processing order through cells
    # so that consecutive points are close (tight Lipschitz brackets).
    cell = np.empty(m, dtype=np.int64)
    snake = np.empty(m, dtype=np.int64)
    for i in range(m):
        cx = i // s
        cy = rank_y[i] // s
        cell[i] = cx * nb + cy
        cys = cy if cx % 2 == 0 else nb - 1 - cy
        snake[i] = (cx * nb + cys) * m + (rank_y[i] if cx % 2 == 0 else m - 1 - rank_y[i])
    key = cell * m + rank_y
    store = np.argsort(key)
    order = np.argsort(snake)
    cell_start = np.zeros(nb * nb + 1, dtype=np.int64)
    prefix = np.zeros((nb + 1, nb + 1), dtype=np.int64)
    for i in range(m):
        cell_start[cell[i] + 1] += 1
        prefix[i // s + 1, rank_y[i] // s + 1] += uw[i]
    for c in range(nb * nb):
        cell_start[c + 1] += cell_start[c]
    for a in range(1, nb + 1):
        for b in range(1, nb + 1):
            prefix[a, b] += prefix[a - 1, b] + prefix[a, b - 1] - prefix[a - 1, b - 1]
    px = ux[store]
    py = uy[store]
    pw = uw[store]
    for c in prange(nchunks):
        start = c * m // nchunks
        stop = (c + 1) * m // nchunks
        cd = np.empty(m + 1)  # +1: the branch-free scan writes one past the end
        cw = np.empty(m + 1, dtype=np.int64)
        hist = np.empty(_NBUCKETS, dtype=np.int64)
        have_prev = False
        prev_rho = 0.0
        prev_x = 0.0
        prev_y = 0.0
        for t in range(start, stop):
            u = order[t]
            if uw[u] >= need:
                r = 0.0  # enough exact copies of u: rho = 0
            else:
                status = -1
                r = 0.0
                args = (need, ux, uy, ys, rank_y, s, nb, cell_start, px, py, pw, prefix, cd, cw)
                if have_prev:
                    # Lipschitz bracket [prev - duv, prev + duv]; first try its middle quarter
                    # (usually right, and a thinner ring to scan), then the half it points to.
                    duv = max(abs(ux[u] - prev_x), abs(uy[u] - prev_y))
                    full_lo = max(0.0, (prev_rho - duv) * (1.0 - 1e-12))
                    full_up = (prev_rho + duv) * (1.0 + 1e-12)
                    lo_r = max(0.0, (prev_rho - 0.25 * duv) * (1.0 - 1e-12))
                    up_r = (prev_rho + 0.25 * duv) * (1.0 + 1e-12)
                    r, status = _query(u, lo_r, up_r, *args, hist)
                    if status == 1:
                        r, status = _query(u, full_lo, lo_r, *args, hist)
                    elif status == 2:
                        r, status = _query(u, up_r, full_up, *args, hist)
                if status != 0:
                    # Always valid: nothing is below 0, and the window bound covers need.
                    up_r = _window_bound(u, need, ux, uy, uw)
                    r, status = _query(u, 0.0, up_r, *args, hist)
            rho[u] = r
            have_prev = True
            prev_rho = r
            prev_x = ux[u]
            prev_y = uy[u]
    return rho


def _cell_size(m: int) -> int:
    """Ranks per grid-cell side: ~0.6 sqrt(M) cells per axis (a few points per cell for
    independent data), tuned on the benchmark."""
    nb = int(max(1, min(512, round(np.sqrt(m) * 0.6))))
    return max(1, -(-m // nb))


def _count_within(sorted_vals: np.ndarray, centers: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """#{j: |sorted_vals[j] - c| <= r} for each (c, r); every c must occur in sorted_vals.

    searchsorted on ``c -/+ r`` can be off because ``c - r`` rounds differently from
    ``v - c``; fix the boundaries with the exact comparison, jumping over whole tie groups
    (tied values compare the same), until nothing changes.
    """
    sv = sorted_vals
    n = sv.shape[0]
    lo = np.searchsorted(sv, centers - radii, side="left")
    hi = np.searchsorted(sv, centers + radii, side="right")
    while True:
        changed = False
        # lo must be the first index inside: step down while the previous value is inside...
        i = np.flatnonzero((lo > 0) & (np.abs(sv[np.maximum(lo - 1, 0)] - centers) <= radii))
        if i.size:
            lo[i] = np.searchsorted(sv, sv[lo[i] - 1], side="left")
            changed = True
        # ...and up while the current one is outside.
        i = np.flatnonzero((lo < n) & (np.abs(sv[np.minimum(lo, n - 1)] - centers) > radii))
        if i.size:
            lo[i] = np.searchsorted(sv, sv[lo[i]], side="right")
            changed = True
        i = np.flatnonzero((hi < n) & (np.abs(sv[np.minimum(hi, n - 1)] - centers) <= radii))
        if i.size:
            hi[i] = np.searchsorted(sv, sv[hi[i]], side="right")
            changed = True
        i = np.flatnonzero((hi > 0) & (np.abs(sv[np.maximum(hi - 1, 0)] - centers) > radii))
        if i.size:
            hi[i] = np.searchsorted(sv, sv[hi[i] - 1], side="left")
            changed = True
        if not changed:
            return (hi - lo).astype(np.int64)


def joint_knn_radius(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Max-norm distance (N,) from each point to its k-th nearest neighbour (self excluded)."""
    ux, uy, uw, inverse = _unique_rows(x, y)
    return _unique_radius(ux, uy, uw, k)[inverse]


# The same kernel without threads: for few distinct points (discrete data) starting the
# thread pool costs more than the whole computation.
_joint_radius_serial = njit(cache=True)(_joint_radius.py_func)
_SERIAL_BELOW = 4096


def _unique_radius(ux: np.ndarray, uy: np.ndarray, uw: np.ndarray, k: int) -> np.ndarray:
    m = ux.shape[0]
    if m < _SERIAL_BELOW:
        return _joint_radius_serial(ux, uy, uw, k, _cell_size(m), 1)
    nchunks = max(1, min(m, 16 * numba.get_num_threads()))
    return _joint_radius(ux, uy, uw, k, _cell_size(m), nchunks)


def mixed_ksg_mi(x: np.ndarray, y: np.ndarray, k: int | None = None) -> float:
    """Mixed KSG mutual information (nats) of 1-D samples x, y: (N,). k: neighbours
    (default :func:`default_k`). Exact (same value as the O(N^2) oracle) and fast."""
    x, y = _as_columns(x, y)
    n = x.shape[0]
    k = check_k(n, k)
    ux, uy, uw, inverse = _unique_rows(x, y)
    rho = _unique_radius(ux, uy, uw, k)
    nx = _count_within(np.sort(x), ux, rho)
    ny = _count_within(np.sort(y), uy, rho)
    kk = np.where(rho == 0, uw, k)
    # Every copy of a distinct point has the same terms: a weighted mean over distinct points.
    # np.sum, not np.dot: BLAS sums in an order that depends on its thread count (1 in a Ray
    # worker, all cores in-process), which changed the last bit between the two.
    return float(np.sum(_mi_terms(kk, nx, ny, n) * uw) / n)
