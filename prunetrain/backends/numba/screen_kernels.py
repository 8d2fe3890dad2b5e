"""Numba kernels for the forward-probe screen; the same maths as :mod:`prunetrain.backends.screen`.

A probe of unit ``j`` on sample ``b`` is a *row*: the push ``Δa`` that the
unit's ReLU lets through, carried forward layer by layer. Rows of all units
and samples of one layer are batched: the first downstream layer sees a
rank-1 change ``Δa · W[j, :]`` (a kernel), every later layer one GEMM of all
rows, ``ΔA @ W`` (BLAS, float32), each followed by the exact ReLU change of the
cached pre-activations (a kernel, computed in float64 and stored in float32),
and the logits' change ends in an exact log-softmax difference per row (a
kernel). Units whose ReLU stays off under the push make no rows.

Every kernel writes each output from one thread, and the GEMMs have fixed
shapes; run them with single-threaded BLAS (as the Numba backend does) and
the screen does not depend on the number of threads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit, prange

from prunetrain.backends.flips import FlipState
from prunetrain.backends.numba.flip_kernels import (
    block_loss_changes,
    lse_change,
    max_abs,
    push_through,
)
from prunetrain.backends.screen import PROBE, probe_sizes, weighted_responses

#: Rows of one probe chunk times the widest downstream layer stay under this many floats.
CHUNK_FLOATS = 1 << 22


@njit(parallel=True, cache=True, fastmath=False)
def _output_responses(probs, log_probs, y, eps, out):  # pragma: no cover - compiled
    """``out[b, c]``: loss change per unit of a push ``eps`` on logit ``c`` of sample ``b``."""
    n_samples, n_classes = probs.shape
    for b in prange(n_samples):
        one = np.empty(1)
        one[0] = eps
        for c in range(n_classes):
            change = lse_change(probs, log_probs, b, one, c)
            if y[b] == c:
                change -= eps
            out[b, c] = change / eps


@njit(parallel=True, cache=True, fastmath=False)
def _last_hidden_responses(z, eps, w_out, probs, log_probs, y, out):  # pragma: no cover
    """Units whose next layer is the logits: ``δ = Δa · w_out[j, :]``, a sample's units at once."""
    n_samples, n_units = z.shape
    n_classes = w_out.shape[1]
    for b in prange(n_samples):
        units = np.empty(n_units, dtype=np.int64)
        acc = np.empty((n_classes, n_units))
        changes = np.empty(n_units)
        n_j = 0
        for j in range(n_units):
            da = max(z[b, j] + eps, 0.0) - max(z[b, j], 0.0)
            out[b, j] = 0.0
            if da != 0.0:
                for c in range(n_classes):
                    acc[c, n_j] = da * w_out[j, c]
                units[n_j] = j
                n_j += 1
        block_loss_changes(probs, log_probs, b, y[b], acc, n_j, changes)
        for jj in range(n_j):
            out[b, units[jj]] = changes[jj] / eps


@njit(parallel=True, cache=True, fastmath=False)
def _two_below_responses(
    z, eps, w_next_t, w_max, z_next, w_out, probs, log_probs, y, out
):  # pragma: no cover
    """Units two layers below the logits, all pushes of one sample at once (``push_through``)."""
    n_samples, n_units = z.shape
    n_classes = w_out.shape[1]
    for b in prange(n_samples):
        units = np.empty(n_units, dtype=np.int64)
        pushes = np.empty(n_units)
        n_j = 0
        for j in range(n_units):
            da = max(z[b, j] + eps, 0.0) - max(z[b, j], 0.0)
            out[b, j] = 0.0
            if da != 0.0:
                units[n_j] = j
                pushes[n_j] = da
                n_j += 1
        if n_j == 0:
            continue
        column = np.empty(n_j)
        acc = np.empty((n_classes, n_j))
        changes = np.empty(n_j)
        push_through(pushes, units, n_j, eps * w_max, z_next[b], w_next_t, w_out, column, acc)
        block_loss_changes(probs, log_probs, b, y[b], acc, n_j, changes)
        for jj in range(n_j):
            out[b, units[jj]] = changes[jj] / eps


@njit(parallel=True, cache=True, fastmath=False)
def _first_relu_delta(rows_b, rows_j, rows_da, w_next, z_next, out):  # pragma: no cover
    """``out[r] = relu(z_next[b] + Δa · w_next[j]) - relu(z_next[b])`` (float64 maths, float32 out)."""
    n_rows = rows_b.shape[0]
    width = w_next.shape[1]
    for r in prange(n_rows):
        b = rows_b[r]
        j = rows_j[r]
        da = rows_da[r]
        for q in range(width):
            z = z_next[b, q]
            out[r, q] = max(z + da * w_next[j, q], 0.0) - max(z, 0.0)


@njit(parallel=True, cache=True, fastmath=False)
def _relu_delta(rows_b, delta, z, out):  # pragma: no cover - compiled
    """``out[r] = relu(z[b] + delta[r]) - relu(z[b])`` (float64 maths, float32 out)."""
    n_rows = rows_b.shape[0]
    width = delta.shape[1]
    for r in prange(n_rows):
        b = rows_b[r]
        for q in range(width):
            zq = z[b, q]
            out[r, q] = max(zq + delta[r, q], 0.0) - max(zq, 0.0)


@njit(parallel=True, cache=True, fastmath=False)
def _row_losses(rows_b, delta, probs, log_probs, y, out):  # pragma: no cover - compiled
    """Loss change of each row from its logits' change ``delta[r]`` (rows in blocks per thread)."""
    n_rows = rows_b.shape[0]
    n_classes = delta.shape[1]
    n_blocks = (n_rows + 255) // 256
    for blk in prange(n_blocks):
        d = np.empty(n_classes)
        for r in range(blk * 256, min(n_rows, blk * 256 + 256)):
            b = rows_b[r]
            for c in range(n_classes):
                d[c] = delta[r, c]
            out[r] = lse_change(probs, log_probs, b, d, -1) - d[y[b]]


def probe_responses(state: FlipState, probe: float = PROBE) -> list[np.ndarray]:
    """Numba version of :func:`prunetrain.backends.screen.probe_responses` (float64 out)."""
    last = state.n_layers - 1
    out = []
    for layer, eps in enumerate(probe_sizes(state, probe)):
        z = state.pre[layer]
        R = np.empty(z.shape)
        if layer == last:
            _output_responses(state.probs, state.log_probs, state.y, eps, R)
        elif layer + 1 == last:
            _last_hidden_responses(
                z, eps, state.masked[last], state.probs, state.log_probs, state.y, R
            )
        elif layer + 2 == last:
            w_next_t = np.ascontiguousarray(state.masked[layer + 1].T)
            _two_below_responses(
                z, eps, w_next_t, max_abs(w_next_t), state.pre[layer + 1], state.masked[last],
                state.probs, state.log_probs, state.y, R,
            )  # fmt: skip
        else:
            _deep_responses(state, layer, eps, R)
        out.append(R)
    return out


def _deep_responses(state: FlipState, layer: int, eps: float, R: np.ndarray) -> None:
    """Units three or more layers below the logits: rows of pushes, one GEMM per later layer."""
    z = state.pre[layer]
    da = np.maximum(z + eps, 0.0) - np.maximum(z, 0.0)
    R[:] = 0.0
    rows_b, rows_j = np.nonzero(da)
    widest = max(w.shape[1] for w in state.masked[layer + 1 :])
    step = max(1, CHUNK_FLOATS // widest)
    # At least one chunk, if empty: the kernels then compile in the warm-up whatever its batch.
    for start in range(0, max(1, len(rows_b)), step):
        b = rows_b[start : start + step]
        j = rows_j[start : start + step]
        R[b, j] = _forward_rows(state, layer, b, j, da[b, j]) / eps


def _forward_rows(state, layer, rows_b, rows_j, rows_da) -> np.ndarray:
    """Exact loss change of each row (a push ``Δa`` of unit ``j`` on sample ``b`` after ``layer``)."""
    last = state.n_layers - 1
    losses = np.empty(len(rows_b))
    rows_b = np.ascontiguousarray(rows_b, dtype=np.int64)
    rows_j = np.ascontiguousarray(rows_j, dtype=np.int64)
    rows_da = np.ascontiguousarray(rows_da, dtype=np.float64)
    d = np.empty((len(rows_b), state.masked[layer + 1].shape[1]), dtype=np.float32)
    _first_relu_delta(rows_b, rows_j, rows_da, state.masked[layer + 1], state.pre[layer + 1], d)
    for q in range(layer + 2, state.n_layers):
        delta = d @ state.masked[q].astype(np.float32)
        if q < last:
            d = np.empty_like(delta)
            _relu_delta(rows_b, delta, state.pre[q], d)
    _row_losses(rows_b, delta, state.probs, state.log_probs, state.y, losses)
    return losses


def screen_gains(state: FlipState, responses: Sequence[np.ndarray]) -> list[np.ndarray]:
    """:func:`prunetrain.backends.screen.screen_gains` with float32 GEMMs (float32 out)."""
    out = []
    for layer, R in enumerate(weighted_responses(state, responses)):
        a = np.asarray(state.acts_t[layer], dtype=np.float32)
        slope = a @ np.asarray(R, dtype=np.float32)
        slope *= np.float32(1.0 / state.batch_size)
        w = state.weights[layer].astype(np.float32)
        out.append(np.where(state.mask[layer], -w, w) * slope)
    return out
