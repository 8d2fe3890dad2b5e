"""Mutation and crossover of masks held as rows of one flat boolean array.

A population is one boolean array ``(P, n_weights)``: the layers of a mask
laid end to end, each flattened in C order (:class:`~prunetrain.masks.Layout`).
The operators are plain functions over such arrays, or over a column range
of them (one keep-rule *segment*), vectorised over the population:

- :func:`swap_mutation` switches ``k[i]`` kept weights of row ``i`` off and as
  many pruned ones on, so the row's count is unchanged; :func:`flip_mutation`
  flips ``k[i]`` weights (a segment without a count, the ``"free"`` rule);
- :func:`uniform_crossover` takes each weight from one of two parents,
  :func:`block_crossover` a whole unit (a column: a hidden unit's fan-in)
  from one parent; :func:`repair_counts` then switches random weights among
  those where the parents differ until the count is right;
- :func:`poisson_at_least_one` draws mutation sizes.
"""

from __future__ import annotations

import math

import numpy as np


def _distinct_positions(rng: np.random.Generator, rows: int, n: int, m: int):
    """``(rows, m)`` random positions in ``[0, n)`` and a mask of each one's first occurrence.

    For ``m >= n`` every row is a random permutation of all ``n`` positions.
    """
    if m >= n:
        pos = np.argsort(rng.random((rows, n)), axis=1)
        return pos, np.ones(pos.shape, dtype=bool)
    pos = rng.integers(0, n, size=(rows, m))
    order = np.argsort(pos, axis=1, kind="stable")
    ranked = np.take_along_axis(pos, order, axis=1)
    first = np.ones(pos.shape, dtype=bool)
    np.put_along_axis(first, order[:, 1:], ranked[:, 1:] != ranked[:, :-1], axis=1)
    return pos, first


def _first(valid: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The first ``k[i]`` true entries of each row of ``valid``."""
    return valid & (np.cumsum(valid, axis=1) <= np.asarray(k)[:, None])


def swap_mutation(
    seg: np.ndarray, k: np.ndarray, rng: np.random.Generator, keep: float = 0.5
) -> None:
    """Switch ``k[i]`` random kept weights of row ``i`` off and as many pruned ones on, in place.

    The number of kept weights of every row is unchanged. ``keep`` (the
    rows' kept fraction) only sizes the random draw of candidate positions;
    a row gets fewer swaps than asked when it has fewer kept or pruned
    weights, or (odds about e^-16) when the draw falls short.

    Parameters
    ----------
    seg : ndarray of bool, shape (P, n)
        The rows to mutate (may be a column slice of a larger array).
    k : ndarray of int, shape (P,)
        Swaps per row.
    rng : numpy.random.Generator
    keep : float
        Fraction of kept weights in the rows.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> seg = np.zeros((3, 10), dtype=bool); seg[:, :4] = True
    >>> swap_mutation(seg, np.array([0, 1, 3]), rng, keep=0.4)
    >>> seg.sum(axis=1), (seg[:, 4:].sum(axis=1))
    (array([4, 4, 4]), array([0, 1, 3]))
    """
    rows = np.flatnonzero(np.asarray(k) > 0)
    if len(rows) == 0:
        return
    n = seg.shape[1]
    kk = np.asarray(k)[rows]
    side = min(max(keep, 1.0 / n), 1.0 - 1.0 / n) if n > 1 else 0.5
    side = min(side, 1.0 - side)
    kmax = int(kk.max())
    # Enough draws that a row finds k weights of the rarer kind but with odds ~ e^-16.
    m = math.ceil((1.2 * kmax + 3 * math.sqrt(kmax) + 16) / side)
    pos, first = _distinct_positions(rng, len(rows), n, m)
    bits = seg[rows[:, None], pos]
    on, off = bits & first, ~bits & first
    s = np.minimum(kk, np.minimum(on.sum(axis=1), off.sum(axis=1)))
    switch_off, switch_on = _first(on, s), _first(off, s)
    r = np.broadcast_to(rows[:, None], pos.shape)
    seg[r[switch_off], pos[switch_off]] = False
    seg[r[switch_on], pos[switch_on]] = True


def flip_mutation(seg: np.ndarray, k: np.ndarray, rng: np.random.Generator) -> None:
    """Flip ``k[i]`` distinct random weights of row ``i`` of ``seg``, in place (bit-flip mutation)."""
    rows = np.flatnonzero(np.asarray(k) > 0)
    if len(rows) == 0:
        return
    kk = np.minimum(np.asarray(k)[rows], seg.shape[1])
    pos, first = _distinct_positions(rng, len(rows), seg.shape[1], int(kk.max()) * 5 // 4 + 16)
    take = _first(first, kk)
    r = np.broadcast_to(rows[:, None], pos.shape)[take]
    seg[r, pos[take]] = ~seg[r, pos[take]]


def _random_bits(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Fair random booleans, drawn 8 per random byte."""
    rows, n = shape[0], int(np.prod(shape[1:]))
    raw = rng.integers(0, 256, size=(rows, (n + 7) // 8), dtype=np.uint8)
    return np.unpackbits(raw, axis=1, count=n, bitorder="little").view(bool).reshape(shape)


def uniform_crossover(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Children taking each weight from parent ``a`` or ``b`` with probability 1/2.

    ``a`` and ``b`` are bool arrays of the same shape ``(P, ...)``; row ``i``
    of the result is a child of ``a[i]`` and ``b[i]``. Counts are not kept:
    follow with :func:`repair_counts`.
    """
    # b ^ ((a ^ b) & m): a where m, else b; bitwise ops on bools are ~20x faster than np.where.
    child = a ^ b
    child &= _random_bits(rng, a.shape)
    child ^= b
    return child


def block_crossover(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Children taking every unit's whole fan-in (a column) from parent ``a`` or ``b``.

    ``a`` and ``b`` are one layer of two populations, bool ``(P, fan_in, fan_out)``:
    column ``j`` holds the incoming weights of unit ``j``, which travel
    together. Counts are not kept: follow with :func:`repair_counts`.
    """
    child = a ^ b
    child &= _random_bits(rng, (a.shape[0], a.shape[2]))[:, None, :]
    child ^= b
    return child


def choose_in_rows(
    candidates: np.ndarray, need: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Uniformly random ``min(need[i], #candidates in row i)`` candidates of each row.

    Returns ``(rows, columns)`` of the chosen entries of the bool array
    ``candidates`` ``(R, n)``. Each candidate gets a uniform key and each row
    keeps its smallest keys; keys far above what a row needs are dropped
    before sorting, so the cost is one pass over the candidates.
    """
    need = np.asarray(need, dtype=np.int64)
    r, c = np.nonzero(candidates)
    if len(r) == 0:
        return r, c
    counts = np.bincount(r, minlength=len(need))
    u = rng.random(len(r))
    # Only keys below ~ (need + margin) / count can be among a row's smallest.
    cutoff = np.minimum(1.0, (2.0 * need + 32.0) / np.maximum(counts, 1))
    survive = u < cutoff[r]
    short = np.bincount(r[survive], minlength=len(need)) < np.minimum(need, counts)
    survive |= short[r]
    r, c, u = r[survive], c[survive], u[survive]
    order = np.lexsort((u, r))
    r, c = r[order], c[order]
    starts = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=len(need)))[:-1]])
    rank = np.arange(len(r)) - starts[r]
    take = rank < need[r]
    return r[take], c[take]


def repair_counts(
    child: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    count: int | np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Make every row of ``child`` keep exactly ``count`` weights, in place.

    Random weights among those where the parents ``a`` and ``b`` differ are
    switched off (too many kept) or on (too few), so the child still takes
    every weight from one of its parents. If the parents themselves hold
    other counts, any weight may be switched.

    Parameters
    ----------
    child, a, b : ndarray of bool, shape (R, n)
    count : int or ndarray of int, shape (R,)
    rng : numpy.random.Generator
    """
    excess = child.sum(axis=1) - np.asarray(count)
    if not excess.any():
        return
    diff = a != b
    for too_many in (True, False):
        rows = np.flatnonzero(excess > 0 if too_many else excess < 0)
        if len(rows) == 0:
            continue
        need = np.abs(excess[rows])
        state = child[rows] if too_many else ~child[rows]
        candidates = state & diff[rows]
        short = candidates.sum(axis=1) < need
        candidates[short] = state[short]
        rr, cc = choose_in_rows(candidates, need, rng)
        child[rows[rr], cc] = not too_many


def poisson_at_least_one(rng: np.random.Generator, mean, size=None) -> np.ndarray:
    """Mutation sizes: ``1 + Poisson(mean - 1)``, so a child always differs from its parent."""
    return 1 + rng.poisson(np.maximum(np.asarray(mean, dtype=np.float64) - 1.0, 0.0), size)
