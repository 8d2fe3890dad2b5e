"""Gumbel-top-k sampling of masks with exact keep counts: NumPy reference and fast path.

:func:`gumbel_top_k` draws ``size`` masks that keep exactly ``k`` of ``n``
weights, sampling ``k`` weights without replacement with probabilities
proportional to ``exp θ`` (the Gumbel-top-k trick): the kept weights are the
``k`` largest keys ``log(u) · exp(-θ)``, ``u`` uniform in ``(0, 1]`` (the
same order as ``θ + Gumbel``, since ``-log(-log u)`` is Gumbel).

On the 784-300-100-10 network a generation of 32 samples needs 8.5 million
keys and a selection per row; with ``numpy.random`` and ``argpartition``
that cost five times the evaluation of the samples
(``experiments/results/topk_sampling.md``). Here the uniforms are
counter-based (SplitMix64), so a Numba kernel can make them on every core and
reproduce them exactly, and each row's boundary is found by partitioning
only a narrow band of values bracketed by a strided subsample. The NumPy
functions below are the reference (``fast=False``); the kernels in
:mod:`prunetrain.backends.numba.topk_kernels` give the same bits and are the
default.
"""

from __future__ import annotations

import numpy as np

from prunetrain.backends.numba import topk_kernels
from prunetrain.backends.numba.workers import run_rows
from prunetrain.backends.splitmix import GAMMA, M1, M2

# Rows shorter than this many subsample strides are partitioned whole.
_SUBSAMPLE = 2048


def _stride(n: int) -> int:
    return n // _SUBSAMPLE


def counter_uniforms(seeds: np.ndarray, n: int, *, fast: bool = True) -> np.ndarray:
    """Float32 uniforms in ``(0, 1]``, one row of ``n`` per seed: 24 bits of SplitMix64(seed + (j+1)·γ).

    Examples
    --------
    >>> u = counter_uniforms(np.array([1, 2], dtype=np.uint64), 5)
    >>> u.shape, bool(((u > 0) & (u <= 1)).all())
    ((2, 5), True)
    >>> np.array_equal(u, counter_uniforms(np.array([1, 2], dtype=np.uint64), 5, fast=False))
    True
    """
    seeds = np.ascontiguousarray(seeds, dtype=np.uint64)
    if fast:
        out = np.empty((len(seeds), n), dtype=np.float32)
        run_rows(topk_kernels.counter_uniforms, len(seeds), seeds, out)
        return out
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps, as in the kernel
        z = seeds[:, None] + np.arange(1, n + 1, dtype=np.uint64) * GAMMA
        z = (z ^ (z >> np.uint64(30))) * M1
        z = (z ^ (z >> np.uint64(27))) * M2
        z ^= z >> np.uint64(31)
    return ((z >> np.uint64(40)) + np.uint64(1)).astype(np.float32) * np.float32(2.0**-24)


def top_k_rows(key: np.ndarray, k: int, *, fast: bool = True) -> np.ndarray:
    """A boolean array marking the ``k`` largest entries of each row of ``key``.

    Ties at a row's boundary value go to the lowest columns, so the result is
    a function of ``key`` alone.

    Examples
    --------
    >>> top_k_rows(np.array([[0.3, 0.9, 0.1, 0.5], [1.0, 2.0, 2.0, 2.0]]), 2).astype(int)
    array([[0, 1, 0, 1],
           [0, 1, 1, 0]])
    """
    key = np.ascontiguousarray(key)
    size, n = key.shape
    if fast:
        out = np.empty((size, n), dtype=bool)
        run_rows(topk_kernels.top_k_rows, size, key, int(k), _stride(n), out)
        return out
    if k <= 0 or k >= n:
        return np.full((size, n), k >= n, dtype=bool)
    t = np.partition(key, n - k, axis=1)[:, n - k : n - k + 1]  # each row's k-th largest
    out = key > t
    ties = key == t
    # Fill each row up to k with its boundary ties, lowest columns first.
    room = k - out.sum(axis=1, keepdims=True)
    out |= ties & (np.cumsum(ties, axis=1) <= room)
    return out


def gumbel_top_k(
    theta: np.ndarray, k: int, size: int, rng: np.random.Generator, *, fast: bool = True
) -> np.ndarray:
    """``size`` masks keeping exactly ``k`` of ``len(theta)`` weights: the top ``k`` of ``θ + Gumbel``.

    ``rng`` gives one 64-bit seed per mask; the rest of the randomness is
    counter-based, so the fast and the reference paths agree exactly.

    Examples
    --------
    >>> x = gumbel_top_k(np.array([5.0, -5.0, 0.0, 4.0]), 2, 3, np.random.default_rng(0))
    >>> x.sum(axis=1)
    array([2, 2, 2])
    """
    n = len(theta)
    seeds = rng.integers(0, np.iinfo(np.uint64).max, size=size, dtype=np.uint64, endpoint=True)
    if k >= n:
        return np.ones((size, n), dtype=bool)
    key = counter_uniforms(seeds, n, fast=fast)
    np.log(key, out=key)  # -E, E standard exponential: the k largest of -E · exp(-θ)
    key *= np.exp(-np.asarray(theta, dtype=np.float64)).astype(np.float32)
    return top_k_rows(key, k, fast=fast)


def warm_up() -> None:
    """Compile the sampling kernels (float32 and float64 keys) on a tiny problem."""
    rng = np.random.default_rng(0)
    gumbel_top_k(np.zeros(16), 4, 2, rng)
    for dtype in (np.float32, np.float64):
        top_k_rows(np.arange(16, dtype=dtype)[None], 4)
