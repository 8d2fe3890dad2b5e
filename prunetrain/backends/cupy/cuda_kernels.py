"""numba.cuda kernels of the CuPy backend; the same maths as the NumPy reference.

The kernels take any array that numba.cuda accepts: CuPy arrays (through
``__cuda_array_interface__``, no copy) on a GPU, and NumPy arrays under Numba's
CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, set before Numba is imported),
which is how they are tested on machines without a GPU.

Every kernel loops over its work items with a stride (grid-stride loops), so
its result does not depend on the launch configuration, and writes each
output cell from one thread only: no atomics, so the results are
deterministic. Reductions over samples are summed in a fixed order per
thread, then across threads by :func:`sum_rows`.

The launch functions below allocate nothing: callers pass every output and
scratch array, made with their own array module (CuPy or NumPy).

| kernel | reference |
| --- | --- |
| :func:`expand_wide`, :func:`expand_stack` | ``MaskPopulation.layer(l) * w`` |
| :func:`bias_relu` | ``np.maximum(z + b, 0)`` (float32) |
| :func:`cross_entropy_rows` | :func:`prunetrain.metrics.cross_entropy`, ``accuracy`` |
| :func:`output_gains`, :func:`hidden_gains` | :func:`prunetrain.backends.flips.flip_gains` |
| :func:`output_responses`, :func:`hidden_responses` | :func:`prunetrain.backends.screen.probe_responses` |
| :func:`add_columns` | :func:`prunetrain.backends.flips.add_columns` |
| :func:`counter_uniforms` | :func:`prunetrain.backends.topk.counter_uniforms` |
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda
from numba.core import config

from prunetrain.backends.splitmix import GAMMA, M1, M2

#: Running under Numba's CUDA simulator (kernels are plain Python on NumPy arrays).
SIMULATOR = bool(config.ENABLE_CUDASIM)
# The simulator runs every thread as a Python thread: keep launches small there,
# and few blocks, so the grid-stride loops are exercised by the tests.
THREADS = 8 if SIMULATOR else 256
MAX_BLOCKS = 2 if SIMULATOR else 8192
#: Flip gains aim at this many (move, lane) work items in flight at once.
GAIN_ITEMS = 64 if SIMULATOR else 1 << 16
#: Scratch memory of the hidden-layer flip gains stays under this many bytes.
SCRATCH_BYTES = 256 << 20
# expm1 overflows float64 beyond ~709.78; larger changes take the logsumexp path
# (Python's math.expm1 would raise there, under the simulator).
EXPM1_LIMIT = 709.0


def _blocks(n_items: int) -> int:
    return max(1, min(MAX_BLOCKS, -(-n_items // THREADS)))


# --- packed-mask expansion -----------------------------------------------------------


@cuda.jit
def _expand_wide(packed, start, count, fan_out, weights, out):  # pragma: no cover - kernel
    n = weights.shape[0]
    width = count * fan_out
    for t in range(cuda.grid(1), n * count, cuda.gridsize(1)):
        i = t // width
        r = t - i * width
        q = r // fan_out
        k = i * fan_out + (r - q * fan_out)
        if (packed[start + q, k >> 3] >> (k & 7)) & 1:
            out[t] = weights[k]
        else:
            out[t] = 0


@cuda.jit
def _expand_stack(packed, start, count, weights, out):  # pragma: no cover - kernel
    n = weights.shape[0]
    for t in range(cuda.grid(1), n * count, cuda.gridsize(1)):
        q = t // n
        k = t - q * n
        if (packed[start + q, k >> 3] >> (k & 7)) & 1:
            out[t] = weights[k]
        else:
            out[t] = 0


def expand_wide(packed, start: int, count: int, fan_out: int, weights, out) -> None:
    """Masks ``start .. start+count`` of one layer as ``[W⊙M₁ | … | W⊙M_count]``.

    Parameters
    ----------
    packed : uint8 array (P, ceil(fan_in·fan_out / 8))
        The layer's packed bits (C order, little bit order).
    weights : float32 array (fan_in·fan_out,)
        The layer's weights, flattened in C order.
    out : float32 array (fan_in·count·fan_out,)
        Written as the C-order ``(fan_in, count·fan_out)`` matrix that the
        shared-input first-layer GEMM multiplies; a pruned weight is +0.
    """
    _expand_wide[_blocks(weights.shape[0] * count), THREADS](
        packed, start, count, fan_out, weights, out
    )


def expand_stack(packed, start: int, count: int, weights, out) -> None:
    """Masks ``start .. start+count`` of one layer as ``W⊙M``, flat C-order ``(count, fan_in, fan_out)``."""
    _expand_stack[_blocks(weights.shape[0] * count), THREADS](packed, start, count, weights, out)


# --- activation and loss -------------------------------------------------------------


@cuda.jit
def _bias_relu(z, bias):  # pragma: no cover - kernel
    h = bias.shape[0]
    for t in range(cuda.grid(1), z.shape[0], cuda.gridsize(1)):
        v = z[t] + bias[t % h]
        if v > 0:
            z[t] = v
        else:
            z[t] = 0


def bias_relu(z, bias) -> None:
    """In place ``z = max(z + bias, 0)`` in float32; ``z`` is flat, its last axis ``bias``'s."""
    _bias_relu[_blocks(z.shape[0]), THREADS](z, bias)


@cuda.jit
def _cross_entropy_rows(logits, bias, y, losses, hits):  # pragma: no cover - kernel
    count, n_rows, n_classes = logits.shape
    for t in range(cuda.grid(1), count * n_rows, cuda.gridsize(1)):
        q = t // n_rows
        r = t - q * n_rows
        label = y[r]
        if label < 0 or label >= n_classes:  # never read outside the row
            losses[q, r] = math.nan
            hits[q, r] = 0
            continue
        # The bias is added in float32, as the reference adds it to float32 logits.
        best = float(logits[q, r, 0] + bias[0])
        arg = 0
        for c in range(1, n_classes):
            v = float(logits[q, r, c] + bias[c])
            if v > best:  # first index on ties, like np.argmax
                best = v
                arg = c
        s = 0.0
        for c in range(n_classes):
            s += math.exp(float(logits[q, r, c] + bias[c]) - best)
        losses[q, r] = math.log(s) - (float(logits[q, r, label] + bias[label]) - best)
        hits[q, r] = 1 if arg == label else 0


def cross_entropy_rows(logits, bias, y, losses, hits) -> None:
    """Per mask and sample: cross-entropy (float64) and whether the arg-max is the label.

    Parameters
    ----------
    logits : float32 array (P, B, C)
        Logits before the output bias.
    bias : float32 array (C,)
        Output bias (zeros for a network without biases).
    y : int array (B,)
        Labels; an out-of-range label gives a NaN loss.
    losses : float64 array (P, B)
    hits : integer array (P, B)
        1 where the first arg-max equals the label, else 0.
    """
    count, n_rows, _ = logits.shape
    _cross_entropy_rows[_blocks(count * n_rows), THREADS](logits, bias, y, losses, hits)


@cuda.jit
def _sum_rows(values, divisor, out):  # pragma: no cover - kernel
    n_rows, n_cols = values.shape
    for i in range(cuda.grid(1), n_rows, cuda.gridsize(1)):
        total = 0.0
        for c in range(n_cols):
            total += values[i, c]
        out[i] = total / divisor


def sum_rows(values, divisor: float, out) -> None:
    """``out[i] = Σ_c values[i, c] / divisor`` in float64, summed in column order."""
    _sum_rows[_blocks(values.shape[0]), THREADS](values, float(divisor), out)


# --- exact flip gains ----------------------------------------------------------------


@cuda.jit(device=True)
def _lse_change_one(probs, log_probs, b, d, j):  # pragma: no cover - device function
    """``logsumexp(z_b + d·e_j) - logsumexp(z_b)``, as :func:`flips._lse_change`."""
    if d < EXPM1_LIMIT:
        s = probs[b, j] * math.expm1(d)
        if math.isfinite(s) and s > -0.5:
            return math.log1p(s)
    # Saturated softmax or overflow: a shifted logsumexp of log p + δ.
    m = -math.inf
    for c in range(probs.shape[1]):
        m = max(m, log_probs[b, c] + (d if c == j else 0.0))
    total = 0.0
    for c in range(probs.shape[1]):
        total += math.exp(log_probs[b, c] + (d if c == j else 0.0) - m)
    return m + math.log(total)


@cuda.jit(device=True)
def _lse_change_row(probs, log_probs, b, delta, row):  # pragma: no cover - device function
    """``logsumexp(z_b + δ) - logsumexp(z_b)`` with ``δ = delta[row, :C]``."""
    n_classes = probs.shape[1]
    s = 0.0
    fits = True
    for c in range(n_classes):
        d = delta[row, c]
        if d < EXPM1_LIMIT:
            s += probs[b, c] * math.expm1(d)
        else:
            fits = False
    if fits and math.isfinite(s) and s > -0.5:
        return math.log1p(s)
    m = -math.inf
    for c in range(n_classes):
        m = max(m, log_probs[b, c] + delta[row, c])
    total = 0.0
    for c in range(n_classes):
        total += math.exp(log_probs[b, c] + delta[row, c] - m)
    return m + math.log(total)


@cuda.jit
def _output_gains(
    acts_t, probs, log_probs, y, sw, rows, rows2, coef, coef2, cols, partial
):  # pragma: no cover - kernel
    n_moves, lanes = partial.shape
    n_samples = acts_t.shape[1]
    for t in range(cuda.grid(1), n_moves * lanes, cuda.gridsize(1)):
        k = t // lanes
        lane = t - k * lanes
        i1 = rows[k]
        i2 = rows2[k]
        j = cols[k]
        total = 0.0
        for b in range(lane, n_samples, lanes):
            d = coef[k] * acts_t[i1, b]
            if i2 >= 0:
                d += coef2[k] * acts_t[i2, b]
            if d != 0.0:
                change = _lse_change_one(probs, log_probs, b, d, j)
                if y[b] == j:
                    change -= d
                total += sw[b] * change
        partial[k, lane] = total


def output_gains(
    acts_t, probs, log_probs, y, rows, rows2, coef, coef2, cols, partial, out, sw=None
) -> None:
    """Exact mean-loss change of moves in the output layer (see :func:`flips.flip_gains`).

    Parameters
    ----------
    acts_t : float64 array (n_in, B)
        Input of the output layer, transposed.
    probs, log_probs : float64 arrays (B, C)
        Softmax of the current logits and its log.
    y : int array (B,)
    rows, rows2, cols : int arrays (K,)
        Move ``k`` flips ``(rows[k], cols[k])`` and, where ``rows2[k] >= 0``,
        ``(rows2[k], cols[k])``.
    coef, coef2 : float64 arrays (K,)
        Signed weights of those flips (+w switches on, -w off; 0 where unused).
    partial : float64 array (K, lanes)
        Scratch: lane ``s`` of move ``k`` sums samples ``s, s + lanes, …``.
    out : float64 array (K,)
        The gains, ``Σ partial[k] / B``.
    sw : float64 array (B,), optional
        Sample weights (mean 1): each sample's change counts ``sw[b]`` times.
    """
    n_moves, lanes = partial.shape
    _output_gains[_blocks(n_moves * lanes), THREADS](
        acts_t, probs, log_probs, y, _weights(sw, acts_t), rows, rows2, coef, coef2, cols, partial
    )
    sum_rows(partial, acts_t.shape[1], out)


@cuda.jit(device=True)
def _push_change(
    b, j, da, w_flat, w_off, dims, z_flat, z_off, probs, log_probs, y, scratch, worker
):  # pragma: no cover - device function
    """Exact loss change of sample ``b`` when unit ``j``'s activation moves by ``da``.

    The push is carried through every later layer (``dims``, ``w_flat``,
    ``z_flat`` as in :func:`hidden_gains`) in row ``worker`` of ``scratch``
    (two halves: the current layer's change, then the next one's).
    """
    widest = scratch.shape[1] // 2
    n_down = dims.shape[0] - 1
    # The next layer's pre-activation change is da times row j of its weights.
    width = dims[1]
    base = w_off[0] + j * width
    for q in range(width):
        scratch[worker, q] = da * w_flat[base + q]
    for u in range(1, n_down):
        zo = z_off[u]
        width_in = dims[u]
        width_out = dims[u + 1]
        for q in range(width_out):
            scratch[worker, widest + q] = 0.0
        for p in range(width_in):
            zp = z_flat[b, zo + p]
            dp = max(zp + scratch[worker, p], 0.0) - max(zp, 0.0)
            if dp != 0.0:
                base = w_off[u] + p * width_out
                for q in range(width_out):
                    scratch[worker, widest + q] += dp * w_flat[base + q]
        for q in range(width_out):
            scratch[worker, q] = scratch[worker, widest + q]
    return _lse_change_row(probs, log_probs, b, scratch, worker) - scratch[worker, y[b]]


@cuda.jit
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
    scratch,
    partial,
):  # pragma: no cover - kernel
    n_moves, lanes = partial.shape
    n_samples = acts_t.shape[1]
    workers = scratch.shape[0]
    worker = cuda.grid(1)
    if worker >= workers:
        return
    for t in range(worker, n_moves * lanes, workers):
        k = t // lanes
        lane = t - k * lanes
        i1 = rows[k]
        i2 = rows2[k]
        j = cols[k]
        total = 0.0
        for b in range(lane, n_samples, lanes):
            dz = coef[k] * acts_t[i1, b]
            if i2 >= 0:
                dz += coef2[k] * acts_t[i2, b]
            if dz == 0.0:
                continue
            z = pre_col[j, b]
            da = max(z + dz, 0.0) - max(z, 0.0)
            if da == 0.0:  # the unit stays off: nothing downstream moves
                continue
            total += sw[b] * _push_change(
                b, j, da, w_flat, w_off, dims, z_flat, z_off, probs, log_probs, y, scratch, worker
            )
        partial[k, lane] = total


def hidden_gains(
    acts_t,
    pre_col,
    probs,
    log_probs,
    y,
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
    scratch,
    partial,
    out,
    sw=None,
) -> None:
    """Exact mean-loss change of moves in a hidden layer (see :func:`flips.flip_gains`).

    Arguments as :func:`output_gains`, and the layers after the moved one
    flattened by :func:`prunetrain.backends.flips.flat_downstream`: ``pre_col`` is the
    moved layer's pre-activation transposed ``(n_out, B)``; ``dims`` are the
    unit counts from the moved layer's output to the logits; downstream
    weight ``t`` (``dims[t] × dims[t+1]``, masked) starts at ``w_flat[w_off[t]]``;
    downstream hidden layer ``t >= 1`` has pre-activations
    ``z_flat[b, z_off[t] : z_off[t] + dims[t]]``. ``scratch`` is float64
    ``(workers, 2·max(dims[1:]))``: one row per thread that works, so its
    first dimension sets how many do.
    """
    n_moves, lanes = partial.shape
    _hidden_gains[-(-scratch.shape[0] // THREADS), THREADS](
        acts_t, pre_col, probs, log_probs, y, _weights(sw, acts_t), rows, rows2, coef, coef2,
        cols, w_flat, w_off, dims, z_flat, z_off, scratch, partial,
    )  # fmt: skip
    sum_rows(partial, acts_t.shape[1], out)


def _weights(sw, acts_t):
    """Sample weights for the gain kernels: ones (on the device) when there are none."""
    if sw is not None:
        return sw
    return cuda.to_device(np.ones(acts_t.shape[1]))


def plan_gains(n_moves: int, n_samples: int, widest: int) -> tuple[int, int]:
    """Lanes per move and worker threads (hidden layers) for ``n_moves`` flip gains.

    Each move's samples are split over ``lanes`` threads so that about
    :data:`GAIN_ITEMS` (move, lane) items run at once; the hidden-layer kernel
    runs at most as many workers as its scratch (two rows of ``widest``
    float64 each) fits in :data:`SCRATCH_BYTES`.
    """
    lanes = max(1, min(n_samples, -(-GAIN_ITEMS // max(1, n_moves))))
    return lanes, plan_workers(n_moves * lanes, widest)


def plan_workers(n_items: int, widest: int) -> int:
    """Threads that push changes through later layers, for ``n_items`` work items.

    Each worker has a scratch row (two halves of ``widest`` float64); there
    are at most as many workers as items, and all rows fit in :data:`SCRATCH_BYTES`.
    """
    per_worker = 16 * max(1, widest)
    return max(1, min(n_items, SCRATCH_BYTES // per_worker, MAX_BLOCKS * THREADS))


# --- forward-probe screen ------------------------------------------------------------


@cuda.jit
def _output_responses(probs, log_probs, y, eps, out):  # pragma: no cover - kernel
    n_samples, n_classes = out.shape
    for t in range(cuda.grid(1), n_samples * n_classes, cuda.gridsize(1)):
        b = t // n_classes
        c = t - b * n_classes
        change = _lse_change_one(probs, log_probs, b, eps, c)
        if y[b] == c:
            change -= eps
        out[b, c] = change / eps


def output_responses(probs, log_probs, y, eps: float, out) -> None:
    """Loss response of each sample to a push ``eps`` of each logit (see :func:`screen.probe_responses`).

    ``out`` is float64 ``(B, C)``: ``(ℓ_b(z_b + eps·e_c) - ℓ_b) / eps``, the
    exact log-softmax difference.
    """
    n_samples, n_classes = out.shape
    _output_responses[_blocks(n_samples * n_classes), THREADS](probs, log_probs, y, float(eps), out)


@cuda.jit
def _hidden_responses(
    pre, eps, probs, log_probs, y, w_flat, w_off, dims, z_flat, z_off, scratch, out
):  # pragma: no cover - kernel
    n_samples, n_units = pre.shape
    workers = scratch.shape[0]
    worker = cuda.grid(1)
    if worker >= workers:
        return
    for t in range(worker, n_samples * n_units, workers):
        b = t // n_units
        j = t - b * n_units
        z = pre[b, j]
        da = max(z + eps, 0.0) - max(z, 0.0)
        if da == 0.0:  # the unit stays off under the push: no response
            out[b, j] = 0.0
        else:
            change = _push_change(
                b, j, da, w_flat, w_off, dims, z_flat, z_off, probs, log_probs, y, scratch, worker
            )
            out[b, j] = change / eps


def hidden_responses(
    pre, eps: float, probs, log_probs, y, w_flat, w_off, dims, z_flat, z_off, scratch, out
) -> None:
    """Loss response of each sample to a push ``eps`` of each unit of a hidden layer.

    One probe per (sample, unit): the push goes through the unit's ReLU and
    exactly through every later layer (see :func:`screen.probe_responses`).
    ``pre`` is the probed layer's pre-activation, float64 ``(B, n_units)``;
    the later layers are flattened as for :func:`hidden_gains`, with
    ``scratch`` float64 ``(workers, 2·max(dims[1:]))`` (:func:`plan_workers`).
    ``out`` is float64 ``(B, n_units)``: ``Δℓ_b / eps``, zero where the ReLU
    stays off.
    """
    _hidden_responses[-(-scratch.shape[0] // THREADS), THREADS](
        pre, float(eps), probs, log_probs, y, w_flat, w_off, dims, z_flat, z_off, scratch, out
    )


# --- local-search cache update -------------------------------------------------------


@cuda.jit
def _add_columns(acts_t, rows, cols, coef, pre):  # pragma: no cover - kernel
    for b in range(cuda.grid(1), pre.shape[0], cuda.gridsize(1)):
        for f in range(rows.shape[0]):  # in flip order: two flips may share a column
            pre[b, cols[f]] += coef[f] * acts_t[rows[f], b]


def add_columns(acts_t, rows, cols, coef, pre) -> None:
    """``pre[:, cols[f]] += coef[f] · acts_t[rows[f]]`` for every flip ``f``, in order.

    The exact change of a layer's pre-activations (float64 ``(B, n_out)``)
    when weights ``(rows[f], cols[f])`` are flipped; one thread per sample,
    so flips that share a column need no atomics.
    """
    _add_columns[_blocks(pre.shape[0]), THREADS](acts_t, rows, cols, coef, pre)


# --- mask sampling -------------------------------------------------------------------

_S30, _S27, _S31, _S40 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(40)
_ULP24 = np.float32(2.0**-24)


@cuda.jit
def _counter_uniforms(seeds, out):  # pragma: no cover - kernel
    size, n = out.shape
    for t in range(cuda.grid(1), size * n, cuda.gridsize(1)):
        r = t // n
        j = t - r * n
        z = seeds[r] + np.uint64(j + 1) * GAMMA
        z = (z ^ (z >> _S30)) * M1
        z = (z ^ (z >> _S27)) * M2
        z = z ^ (z >> _S31)
        out[r, j] = np.float32((z >> _S40) + np.uint64(1)) * _ULP24


def counter_uniforms(seeds, out) -> None:
    """``out[r, j]``: float32 in ``(0, 1]`` from the top 24 bits of SplitMix64(seeds[r] + (j+1)·γ).

    Parameters
    ----------
    seeds : uint64 array (size,)
    out : float32 array (size, n)
        Written whole; the same bits as the NumPy reference (integer
        arithmetic, and a 24-bit integer is exact in float32).
    """
    _counter_uniforms[_blocks(out.size), THREADS](seeds, out)
