"""Numba kernels of :mod:`prunetrain.backends.topk` (mask sampling); the same results, bit for bit.

Both kernels fill the rows ``r0 .. r1`` of their output and release the GIL,
so that :func:`uniforms` and :func:`select_top_k` split the rows among the
helper threads of :mod:`prunetrain.backends.numba.workers` (the threads the evaluations run on, rather than a
second pool, Numba's OpenMP one, that would wait on the same cores). Each
row's boundary is found by partitioning only a narrow band of values
bracketed by a strided subsample. The
random numbers are counter-based: SplitMix64 of ``seed + (j+1)·γ``, the
``j``-th output of a generator seeded with ``seed``, so a row's draws depend
only on its seed and its column.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from prunetrain.backends.numba.workers import run_rows
from prunetrain.backends.splitmix import GAMMA, M1, M2

# Rows shorter than this many subsample strides are partitioned whole.
SUBSAMPLE = 2048

_S30, _S27, _S31, _S40 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(40)
_ULP24 = np.float32(2.0**-24)


@njit(cache=True, inline="always")
def _splitmix(z):  # pragma: no cover
    z = (z ^ (z >> _S30)) * M1
    z = (z ^ (z >> _S27)) * M2
    return z ^ (z >> _S31)


@njit(nogil=True, cache=True)
def counter_uniforms(r0, r1, seeds, out):  # pragma: no cover
    """``out[r, j]``: a float32 in ``(0, 1]`` from the top 24 bits of SplitMix64(seeds[r] + (j+1)·γ)."""
    n = out.shape[1]
    for r in range(r0, r1):
        s = seeds[r]
        for j in range(n):
            z = _splitmix(s + np.uint64(j + 1) * GAMMA)
            out[r, j] = np.float32((z >> _S40) + np.uint64(1)) * _ULP24


@njit(cache=True)
def _select(a, kth):  # pragma: no cover
    """The ``kth`` smallest of ``a`` (0-based), partially reordering ``a`` in place (Hoare's select).

    Numba's ``np.partition`` costs about 14 ns an element; this is several times faster.
    """
    lo, hi = 0, a.shape[0] - 1
    while hi > lo:
        x, y, z = a[lo], a[(lo + hi) >> 1], a[hi]
        pivot = max(min(x, y), min(max(x, y), z))  # median of three
        i, j = lo, hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if kth <= j:
            hi = j
        elif kth >= i:
            lo = i
        else:
            break
    return a[kth]


@njit(cache=True)
def _kth_largest(row, k, step):  # pragma: no cover
    """The ``k``-th largest value of ``row`` (``0 < k < len(row)``), bracketed by a strided subsample."""
    n = row.shape[0]
    if step >= 4:
        sub = row[::step].copy()
        m = sub.shape[0]
        q = k / n
        margin = int(4.0 * np.sqrt(m * q * (1.0 - q))) + 2
        j = int(m - q * m)
        # lo, hi: the (j ∓ margin)-th smallest of the subsample (two selections; a sort costs more
        # than the rest of a 30 000-wide row).
        a, b, start = j - margin, j + margin, 0
        lo, hi = -np.inf, np.inf
        if a >= 0:
            lo, start = _select(sub, a), a + 1
        if b <= m - 1:
            hi = _select(sub[start:], b - start)
        band = np.empty(n, dtype=row.dtype)
        nb = 0
        above = 0
        for i in range(n):  # branch-free: the comparisons are coin flips to a predictor
            v = row[i]
            band[nb] = v
            nb += (v > lo) & (v <= hi)
            above += v > hi
        need = k - above
        if need == 0:
            return hi
        if 0 < need <= nb:
            return _select(band[:nb], nb - need)
    return _select(row.copy(), n - k)


@njit(nogil=True, cache=True)
def top_k_rows(r0, r1, key, k, step, out):  # pragma: no cover
    """``out[r]`` marks the ``k`` largest of ``key[r]``; ties at the boundary go to the lowest columns."""
    n = key.shape[1]
    for r in range(r0, r1):
        row = key[r]
        if k <= 0 or k >= n:
            for i in range(n):
                out[r, i] = k >= n
            continue
        t = _kth_largest(row, k, step)
        count = 0
        for i in range(n):
            kept = row[i] > t
            out[r, i] = kept
            count += kept
        for i in range(n):
            if count >= k:
                break
            if row[i] == t:
                out[r, i] = True
                count += 1


def stride(n: int) -> int:
    """The subsample stride of a row of ``n`` keys."""
    return n // SUBSAMPLE


def uniforms(seeds: np.ndarray, n: int) -> np.ndarray:
    """:func:`prunetrain.backends.topk.counter_uniforms` by :func:`counter_uniforms`, rows split among the workers."""
    seeds = np.ascontiguousarray(seeds, dtype=np.uint64)
    out = np.empty((len(seeds), n), dtype=np.float32)
    run_rows(counter_uniforms, len(seeds), seeds, out)
    return out


def select_top_k(key: np.ndarray, k: int) -> np.ndarray:
    """:func:`prunetrain.backends.topk.top_k_rows` by :func:`top_k_rows`, rows split among the workers."""
    key = np.ascontiguousarray(key)
    size, n = key.shape
    out = np.empty((size, n), dtype=bool)
    run_rows(top_k_rows, size, key, int(k), stride(n), out)
    return out
