"""Numba kernels for exact flip gains; the same maths as :mod:`prunetrain.backends.flips`.

Each kernel runs one candidate move per ``prange`` iteration over plain
float64 arrays. Samples whose activation does not change are skipped, which
is where most of the saving in hidden layers comes from (ReLU units that stay
off, zero pixels).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from prunetrain.backends.flips import FlipState, flat_downstream, pack_moves


@njit(cache=True, fastmath=False)
def lse_change(probs, log_probs, b, delta, j):  # pragma: no cover
    """``logsumexp(z_b + δ) - logsumexp(z_b)``; ``j >= 0``: δ is ``delta[0]`` on class j only."""
    n_classes = probs.shape[1]
    s = 0.0
    if j >= 0:
        s = probs[b, j] * np.expm1(delta[0])
    else:
        for c in range(n_classes):
            s += probs[b, c] * np.expm1(delta[c])
    if np.isfinite(s) and s > -0.5:
        return np.log1p(s)
    # Near -1 or overflowing: fall back to a shifted logsumexp of log p + δ.
    m = -np.inf
    for c in range(n_classes):
        t = log_probs[b, c] + (delta[c] if j < 0 else (delta[0] if c == j else 0.0))
        m = max(m, t)
    total = 0.0
    for c in range(n_classes):
        t = log_probs[b, c] + (delta[c] if j < 0 else (delta[0] if c == j else 0.0))
        total += np.exp(t - m)
    return m + np.log(total)


@njit(cache=True, fastmath=False, inline="always")
def _expm1_near_zero(x):  # pragma: no cover - compiled
    """``expm1(x)`` for ``|x| < 0.1`` by its series to ``x^10/10!`` (the rest is below rounding)."""
    e = 1.0 + x / 10.0
    e = 1.0 + x / 9.0 * e
    e = 1.0 + x / 8.0 * e
    e = 1.0 + x / 7.0 * e
    e = 1.0 + x / 6.0 * e
    e = 1.0 + x / 5.0 * e
    e = 1.0 + x / 4.0 * e
    e = 1.0 + x / 3.0 * e
    e = 1.0 + x / 2.0 * e
    return x * e


@njit(cache=True, fastmath=False)
def block_loss_changes(probs, log_probs, b, y_b, acc, n, changes):  # pragma: no cover
    """``changes[m]``: exact change of sample ``b``'s loss when its logits move by ``acc[:, m]``.

    ``acc`` is ``(n_classes, ≥ n)``. While every change is below 0.1 (the usual
    case for one flip or a probe) ``Σ_c p_c · expm1(δ_c)`` runs over the whole
    block as vector instructions; otherwise each column takes the general path.
    """
    n_classes = acc.shape[0]
    biggest = 0.0
    for c in range(n_classes):
        row = acc[c]
        for m in range(n):
            biggest = max(biggest, abs(row[m]))
    if biggest < 0.1:
        # Then Σ p·expm1(δ) > expm1(-0.1) > -0.5: log1p is precise.
        for m in range(n):
            changes[m] = 0.0
        for c in range(n_classes):
            p = probs[b, c]
            row = acc[c]
            for m in range(n):
                changes[m] += p * _expm1_near_zero(row[m])
        target = acc[y_b]
        for m in range(n):
            changes[m] = np.log1p(changes[m]) - target[m]
        return
    delta = np.empty(n_classes)
    for m in range(n):
        for c in range(n_classes):
            delta[c] = acc[c, m]
        changes[m] = lse_change(probs, log_probs, b, delta, -1) - delta[y_b]


@njit(cache=True, fastmath=False, inline="always")
def _unit_change(acts_t, pre_col, c1, c2, i1, i2, j, b):  # pragma: no cover
    """``relu(z + Δz) - relu(z)`` of unit ``j`` on sample ``b`` for one move (0 if none)."""
    dz = c1 * acts_t[i1, b]
    if i2 >= 0:
        dz += c2 * acts_t[i2, b]
    if dz == 0.0:
        return 0.0
    z = pre_col[j, b]
    return max(z + dz, 0.0) - max(z, 0.0)


@njit(parallel=True, cache=True, fastmath=False)
def _output_gains(
    acts_t, probs, log_probs, y, sw, rows, rows2, coef, coef2, cols, out
):  # pragma: no cover
    n_moves = cols.shape[0]
    n_samples = acts_t.shape[1]
    for k in prange(n_moves):
        one = np.empty(1)
        i1 = rows[k]
        i2 = rows2[k]
        j = cols[k]
        c1 = coef[k]
        c2 = coef2[k]
        total = 0.0
        for b in range(n_samples):
            d = c1 * acts_t[i1, b]
            if i2 >= 0:
                d += c2 * acts_t[i2, b]
            if d != 0.0:
                one[0] = d
                change = lse_change(probs, log_probs, b, one, j)
                if y[b] == j:
                    change -= d
                total += sw[b] * change
        out[k] = total / n_samples


@njit(parallel=True, cache=True, fastmath=False)
def _hidden_gains(
    acts_t,
    pre_col,
    probs,
    log_probs,
    y,
    sw,
    rows,
    rows2,
    coef,
    coef2,
    cols,
    w_flat,
    w_off,
    dims,
    z_flat,
    z_off,
    out,
):  # pragma: no cover
    """Moves in a hidden layer; the later layers are passed flattened.

    ``dims`` are the unit counts from the moved layer's output to the logits;
    downstream weight ``t`` (shape ``dims[t] × dims[t+1]``) starts at
    ``w_flat[w_off[t]]``; the pre-activations of downstream hidden layer ``t``
    (``t >= 1``) for sample ``b`` start at ``z_flat[b, z_off[t]]``.
    """
    n_moves = cols.shape[0]
    n_samples = acts_t.shape[1]
    n_down = dims.shape[0] - 1
    n_classes = dims[n_down]
    widest = 0
    for t in range(dims.shape[0]):
        widest = max(widest, dims[t])
    for k in prange(n_moves):
        cur = np.empty(widest)
        nxt = np.empty(widest)
        i1 = rows[k]
        i2 = rows2[k]
        j = cols[k]
        total = 0.0
        for b in range(n_samples):
            da = _unit_change(acts_t, pre_col, coef[k], coef2[k], i1, i2, j, b)
            if da == 0.0:
                continue
            # The next layer's pre-activation change is da times row j of its weights.
            width = dims[1]
            base = w_off[0] + j * width
            for q in range(width):
                cur[q] = da * w_flat[base + q]
            for t in range(1, n_down):
                # cur holds Δz of downstream hidden layer t: apply its ReLU, then its weights.
                zo = z_off[t]
                width_in = dims[t]
                width_out = dims[t + 1]
                for q in range(width_out):
                    nxt[q] = 0.0
                for p in range(width_in):
                    zp = z_flat[b, zo + p]
                    dp = max(zp + cur[p], 0.0) - max(zp, 0.0)
                    if dp != 0.0:
                        base = w_off[t] + p * width_out
                        for q in range(width_out):
                            nxt[q] += dp * w_flat[base + q]
                for q in range(width_out):
                    cur[q] = nxt[q]
            total += sw[b] * (lse_change(probs, log_probs, b, cur[:n_classes], -1) - cur[y[b]])
        out[k] = total / n_samples


@njit(cache=True, fastmath=False)
def push_through(
    pushes, units, n, reach, z_next_b, w_next_t, w_out, column, acc
):  # pragma: no cover
    """The logits' change ``acc[:, m]`` of one sample under each push ``m < n``, exactly.

    Push ``m`` moves unit ``units[m]``'s activation by ``pushes[m]``; the next
    layer's pre-activations move by that times the unit's weights
    (``w_next_t`` is ``(n_next, n_units)``), each next-layer unit's ReLU is
    applied exactly, and its change reaches the logits through ``w_out``.
    Next-layer units that stay off under every push (``z + reach <= 0``)
    are skipped. Loops over pushes are innermost, so they run as vector
    instructions.
    """
    n_classes = w_out.shape[1]
    for c in range(n_classes):
        row = acc[c]
        for m in range(n):
            row[m] = 0.0
    for k in range(w_next_t.shape[0]):
        zk = z_next_b[k]
        if zk + reach <= 0.0:
            continue
        rk = max(zk, 0.0)
        wk = w_next_t[k]
        for m in range(n):
            column[m] = max(zk + pushes[m] * wk[units[m]], 0.0) - rk
        for c in range(n_classes):
            w = w_out[k, c]
            row = acc[c]
            for m in range(n):
                row[m] += column[m] * w


def max_abs(a: np.ndarray) -> float:
    return float(np.abs(a).max()) if a.size else 0.0


#: Samples per block of the sample-major gain kernel; blocks are summed in order,
#: so the result does not depend on the number of threads.
SAMPLE_BLOCK = 32


@njit(parallel=True, cache=True, fastmath=False)
def _two_below_gains(
    acts_t,
    z,
    probs,
    log_probs,
    y,
    sw,
    rows,
    rows2,
    coef,
    coef2,
    cols,
    w_next_t,
    w_max,
    z_next,
    w_out,
    out,
):  # pragma: no cover
    """Moves two layers below the logits, all moves of one sample at once (:func:`push_through`).

    ``w_max`` is the largest next-layer weight magnitude. Each sample's change
    counts ``sw[b]`` times (the sample weights, ones without). Samples go in
    fixed blocks whose partial sums are added in order.
    """
    n_moves = cols.shape[0]
    n_samples = acts_t.shape[1]
    n_classes = w_out.shape[1]
    n_blocks = (n_samples + SAMPLE_BLOCK - 1) // SAMPLE_BLOCK
    partial = np.zeros((n_blocks, n_moves))
    for blk in prange(n_blocks):
        ids = np.empty(n_moves, dtype=np.int64)
        pushes = np.empty(n_moves)
        units = np.empty(n_moves, dtype=np.int64)
        column = np.empty(n_moves)
        acc = np.empty((n_classes, n_moves))
        changes = np.empty(n_moves)
        for b in range(blk * SAMPLE_BLOCK, min(n_samples, (blk + 1) * SAMPLE_BLOCK)):
            n_m = 0
            reach = 0.0
            for m in range(n_moves):
                da = _unit_change(acts_t, z, coef[m], coef2[m], rows[m], rows2[m], cols[m], b)
                if da != 0.0:
                    ids[n_m] = m
                    pushes[n_m] = da
                    units[n_m] = cols[m]
                    reach = max(reach, abs(da))
                    n_m += 1
            if n_m == 0:
                continue
            # No move moves a next-layer unit by more than reach.
            push_through(pushes, units, n_m, reach * w_max, z_next[b], w_next_t, w_out, column, acc)
            block_loss_changes(probs, log_probs, b, y[b], acc, n_m, changes)
            for mm in range(n_m):
                partial[blk, ids[mm]] += sw[b] * changes[mm]
    for m in prange(n_moves):
        total = 0.0
        for blk in range(n_blocks):
            total += partial[blk, m]
        out[m] = total / n_samples


@njit(parallel=True, cache=True, fastmath=False)
def _last_hidden_gains_signed(
    acts_t, pre_col, probs, log_probs, y, sw, rows, rows2, coef, coef2, cols, w_out, sigma, out
):  # pragma: no cover
    """Moves in the last hidden layer when every kept output weight is ``±sigma``.

    Then ``δ_c = Δa · w_jc`` takes only the values ``±Δa·sigma`` (or 0), so two
    ``expm1`` per sample replace one per class.
    """
    n_moves = cols.shape[0]
    n_samples = acts_t.shape[1]
    n_classes = w_out.shape[1]
    for k in prange(n_moves):
        delta = np.empty(n_classes)
        i1 = rows[k]
        i2 = rows2[k]
        j = cols[k]
        total = 0.0
        for b in range(n_samples):
            da = _unit_change(acts_t, pre_col, coef[k], coef2[k], i1, i2, j, b)
            if da == 0.0:
                continue
            up = np.expm1(da * sigma)
            down = np.expm1(-da * sigma)
            s = 0.0
            for c in range(n_classes):
                w = w_out[j, c]
                if w > 0.0:
                    s += probs[b, c] * up
                elif w < 0.0:
                    s += probs[b, c] * down
            if np.isfinite(s) and s > -0.5:
                change = np.log1p(s)
            else:
                for c in range(n_classes):
                    delta[c] = da * w_out[j, c]
                change = lse_change(probs, log_probs, b, delta, -1)
            total += sw[b] * (change - da * w_out[j, y[b]])
        out[k] = total / n_samples


def _constant_magnitude(w: np.ndarray) -> float:
    """The common magnitude of the non-zero entries of ``w``, or 0 if they differ."""
    nonzero = np.abs(w[w != 0])
    if nonzero.size == 0 or nonzero.min() != nonzero.max():
        return 0.0
    return float(nonzero[0])


def flip_gains(
    state: FlipState,
    layer: int,
    rows: np.ndarray,
    cols: np.ndarray,
    rows2: np.ndarray | None = None,
) -> np.ndarray:
    """Numba version of :func:`prunetrain.backends.flips.flip_gains` (same arguments)."""
    moves = pack_moves(state, layer, rows, cols, rows2)
    out = np.empty(len(moves.rows))
    if len(out) == 0:
        return out
    if layer == state.n_layers - 1:
        _output_gains(
            state.acts_t[layer], state.probs, state.log_probs, state.y, state.sample_weights(),
            *moves, out,
        )  # fmt: skip
        return out
    down = state.masked[layer + 1 :]
    pre_col = np.ascontiguousarray(state.pre[layer].T)
    if len(down) == 1:
        sigma = _constant_magnitude(down[0])
        if sigma > 0.0:  # signed-constant or binary output weights
            _last_hidden_gains_signed(
                state.acts_t[layer], pre_col, state.probs, state.log_probs, state.y,
                state.sample_weights(), *moves, down[0], sigma, out,
            )  # fmt: skip
            return out
    if len(down) == 2:
        _two_below_gains(
            state.acts_t[layer], pre_col, state.probs, state.log_probs, state.y,
            state.sample_weights(), *moves,
            np.ascontiguousarray(down[0].T), max_abs(down[0]), state.pre[layer + 1], down[1], out,
        )  # fmt: skip
        return out
    downstream, _ = flat_downstream(state, layer)
    _hidden_gains(
        state.acts_t[layer], pre_col, state.probs, state.log_probs, state.y, state.sample_weights(),
        *moves, *downstream, out,
    )  # fmt: skip
    return out
