"""Numba kernel of the Hebbian statistics' k-winners-take-all; the reference's winners exactly.

The statistics themselves are GEMMs, which BLAS runs in the reference's
order (:mod:`prunetrain.backends.hebbian`). The winners of a sample are the
units at or above its ``k``-th largest pre-activation, found by selection
(:func:`~prunetrain.backends.numba.topk_kernels._select`) instead of a
partition of the argument indices. That set is the reference's whenever it
holds exactly ``k`` units; a sample whose boundary is tied is flagged, and
:func:`winners_take_all` takes its winners from the reference, whose
``argpartition`` chooses among the tied units.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from prunetrain.backends import hebbian
from prunetrain.backends.numba.topk_kernels import _select
from prunetrain.backends.numba.workers import run_rows


@njit(nogil=True, cache=True)
def _winners(r0, r1, z, k, out, tied):  # pragma: no cover - compiled
    """Rows ``r0 .. r1``: ``out[r, j] = 1`` where ``z[r, j]`` is at or above the row's ``k``-th largest."""
    n = z.shape[1]
    for r in range(r0, r1):
        row = z[r]
        t = _select(row.copy(), n - k)
        count = 0
        for j in range(n):
            win = row[j] >= t
            out[r, j] = 1.0 if win else 0.0
            count += win
        tied[r] = count != k


def winners_take_all(z: np.ndarray, k: int) -> np.ndarray:
    """:func:`prunetrain.backends.hebbian.winners_take_all` (``1 <= k``), rows split among the workers."""
    z = np.ascontiguousarray(z, dtype=np.float64)
    k = min(int(k), z.shape[1])
    out = np.empty(z.shape, dtype=np.float64)
    tied = np.empty(z.shape[0], dtype=np.bool_)
    run_rows(_winners, z.shape[0], z, k, out, tied)
    if tied.any():
        out[tied] = hebbian.winners_take_all(z[tied], k)
    return out
