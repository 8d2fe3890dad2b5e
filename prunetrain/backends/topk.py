"""Gumbel-top-k sampling of masks with exact keep counts: the NumPy reference.

:func:`gumbel_top_k` draws ``size`` masks that keep exactly ``k`` of ``n``
weights, sampling ``k`` weights without replacement with probabilities
proportional to ``exp θ`` (the Gumbel-top-k trick): the kept weights are the
``k`` largest keys ``log(u) · exp(-θ)``, ``u`` uniform in ``(0, 1]`` (the
same order as ``θ + Gumbel``, since ``-log(-log u)`` is Gumbel).

On the 784-300-100-10 network a generation of 32 samples needs 8.5 million
keys and a selection per row; with ``numpy.random`` and ``argpartition``
that cost five times the evaluation of the samples
(``experiments/results/topk_sampling.md``). So the uniforms are
counter-based (SplitMix64 of ``seed + (j+1)·γ``, one seed per mask from the
searcher's generator): a kernel makes them on every core or GPU thread and
reproduces this reference bit for bit. Searchers sample through
:meth:`Backend.gumbel_top_k <prunetrain.backends.base.Backend.gumbel_top_k>`;
the Numba kernels are in :mod:`prunetrain.backends.numba.topk_kernels`, the
CUDA one in :mod:`prunetrain.backends.cupy.cuda_kernels`. This module is
plain NumPy (:func:`top_k_rows` also runs on CuPy arrays, given ``xp``).
"""

from __future__ import annotations

import numpy as np

from prunetrain.backends.splitmix import GAMMA, M1, M2


def draw_seeds(rng: np.random.Generator, size: int) -> np.ndarray:
    """One uint64 seed per mask from ``rng``: all the randomness the searcher's generator gives."""
    return rng.integers(0, np.iinfo(np.uint64).max, size=size, dtype=np.uint64, endpoint=True)


def counter_uniforms(seeds: np.ndarray, n: int) -> np.ndarray:
    """Float32 uniforms in ``(0, 1]``, one row of ``n`` per seed: 24 bits of SplitMix64(seed + (j+1)·γ).

    Examples
    --------
    >>> u = counter_uniforms(np.array([1, 2], dtype=np.uint64), 5)
    >>> u.shape, bool(((u > 0) & (u <= 1)).all())
    ((2, 5), True)
    """
    seeds = np.ascontiguousarray(seeds, dtype=np.uint64)
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps, as in the kernels
        z = seeds[:, None] + np.arange(1, n + 1, dtype=np.uint64) * GAMMA
        z = (z ^ (z >> np.uint64(30))) * M1
        z = (z ^ (z >> np.uint64(27))) * M2
        z ^= z >> np.uint64(31)
    return ((z >> np.uint64(40)) + np.uint64(1)).astype(np.float32) * np.float32(2.0**-24)


def key_scale(theta: np.ndarray) -> np.ndarray:
    """``exp(-θ)`` in float32 (computed in float64): the keys are ``log(u) · exp(-θ)``."""
    return np.exp(-np.asarray(theta, dtype=np.float64)).astype(np.float32)


def top_k_rows(key, k: int, xp=np):
    """A boolean array marking the ``k`` largest entries of each row of ``key``.

    Ties at a row's boundary value go to the lowest columns, so the result is
    a function of ``key`` alone. ``xp`` is the array module of ``key``
    (NumPy, or CuPy on the GPU backend).

    Examples
    --------
    >>> top_k_rows(np.array([[0.3, 0.9, 0.1, 0.5], [1.0, 2.0, 2.0, 2.0]]), 2).astype(int)
    array([[0, 1, 0, 1],
           [0, 1, 1, 0]])
    """
    key = xp.ascontiguousarray(key)
    size, n = key.shape
    if k <= 0 or k >= n:
        return xp.full((size, n), k >= n, dtype=bool)
    t = xp.partition(key, n - k, axis=1)[:, n - k : n - k + 1]  # each row's k-th largest
    out = key > t
    ties = key == t
    # Fill each row up to k with its boundary ties, lowest columns first.
    room = k - out.sum(axis=1, keepdims=True)
    out |= ties & (xp.cumsum(ties, axis=1) <= room)
    return out


def gumbel_top_k(
    theta: np.ndarray,
    k: int,
    size: int,
    rng: np.random.Generator,
    *,
    uniforms=counter_uniforms,
    top_k=top_k_rows,
    to_device=np.asarray,
) -> np.ndarray:
    """``size`` masks keeping exactly ``k`` of ``len(theta)`` weights: the top ``k`` of ``θ + Gumbel``.

    ``rng`` gives one 64-bit seed per mask (:func:`draw_seeds`); the rest of
    the randomness is counter-based, so every backend's kernels agree with
    this reference exactly. A backend passes its own ``uniforms(seeds, n)``
    (keys on its device), ``top_k(key, k)`` (a host boolean array) and
    ``to_device``; the defaults are the NumPy reference.

    Examples
    --------
    >>> x = gumbel_top_k(np.array([5.0, -5.0, 0.0, 4.0]), 2, 3, np.random.default_rng(0))
    >>> x.sum(axis=1)
    array([2, 2, 2])
    """
    n = len(theta)
    seeds = draw_seeds(rng, size)
    if k >= n:
        return np.ones((size, n), dtype=bool)
    key = uniforms(seeds, n)
    np.log(key, out=key)  # -E, E standard exponential: the k largest of -E · exp(-θ)
    key *= to_device(key_scale(theta))
    return top_k(key, k)
