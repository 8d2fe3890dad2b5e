"""Exact incremental evaluation of weight flips: the cache and the NumPy reference.

Flipping weight ``(i, j)`` of layer ``l`` changes one column of one
pre-activation: ``Δz_l[:, j] = c · a_{l-1}[:, i]`` with ``c = +w_ij`` when the
weight is switched on and ``-w_ij`` when it is switched off. With every
activation of the current mask cached on the batch, the new loss follows from
that column alone:

* output layer: ``Δℓ_b = log1p(p_bj · expm1(Δz_bj)) - [y_b = j] Δz_bj``,
  since ``logsumexp(z + δ e_j) = logsumexp(z) + log(1 + p_j (e^δ - 1))``;
* hidden layer: ``Δa_bj = relu(z_bj + Δz_bj) - relu(z_bj)`` is pushed through
  the later layers (only where it is non-zero), giving ``δ`` on the logits and
  ``Δℓ_b = log1p(Σ_c p_bc · expm1(δ_bc)) - δ_b,y_b``.

Both are exact (not a gradient, not a linearisation) and computed in float64
directly as differences, so tiny loss changes keep their relative precision.
A move may flip two weights of the same unit at once (a *swap*: one on, one
off, which keeps the layer's count), by passing a second row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from prunetrain.network import FrozenNetwork


@dataclasses.dataclass
class FlipState:
    """Everything cached about one mask on one batch, float64 on the host.

    ``acts_t[l]`` is ``a_l`` transposed, ``(n_l, B)``, for ``l = 0 .. L-1``
    (``a_0`` is the input); ``pre[l]`` is ``z_{l+1}``, ``(B, n_{l+1})``, for
    the ``L`` layers (``pre[-1]`` are the logits); ``probs`` is the softmax
    of the logits. ``masked[l]`` is ``W_l ⊙ M_l``.
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray] | None
    mask: list[np.ndarray]
    masked: list[np.ndarray]
    acts_t: list[np.ndarray]
    pre: list[np.ndarray]
    probs: np.ndarray
    log_probs: np.ndarray
    y: np.ndarray
    sample_losses: np.ndarray
    #: Sample weights (mean 1) or None: every mean over the batch is then the mean of ``w · x``.
    w: np.ndarray | None = None

    @property
    def loss(self) -> float:
        """Mean (weighted) cross-entropy of the current mask on the batch."""
        return float(self.mean(self.sample_losses))

    def mean(self, per_sample: np.ndarray) -> np.ndarray:
        """Mean over the batch (the last axis) of ``w · per_sample``, the weighted loss's normalisation."""
        return np.mean(per_sample if self.w is None else self.w * per_sample, axis=-1)

    def sample_weights(self) -> np.ndarray:
        """The sample weights, ones when there are none (what the kernels take)."""
        return np.ones(self.batch_size) if self.w is None else self.w

    @property
    def n_layers(self) -> int:
        return len(self.weights)

    @property
    def batch_size(self) -> int:
        return len(self.y)

    def coefficients(self, layer: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Signed weight of each flip: ``+w`` if it switches the weight on, ``-w`` if off."""
        w = self.weights[layer][rows, cols]
        return np.where(self.mask[layer][rows, cols], -w, w)


def build_state(
    network: FrozenNetwork, mask: Sequence[np.ndarray], X, y, w: np.ndarray | None = None
) -> FlipState:
    """Forward ``mask`` on the batch ``(X, y)`` (sample weights ``w``) and cache what flip gains need."""
    weights = [w.astype(np.float64) for w in network.weights]
    biases = None if network.biases is None else [b.astype(np.float64) for b in network.biases]
    mask = [np.array(m, dtype=bool) for m in mask]
    masked = [w * m for w, m in zip(weights, mask)]
    state = FlipState(
        weights=weights,
        biases=biases,
        mask=mask,
        masked=masked,
        acts_t=[np.ascontiguousarray(np.asarray(X, dtype=np.float64).T)],
        pre=[],
        probs=np.empty(0),
        log_probs=np.empty(0),
        y=np.ascontiguousarray(y, dtype=np.int64),
        sample_losses=np.empty(0),
        w=None if w is None else np.ascontiguousarray(w, dtype=np.float64),
    )
    forward_from(state, 0)
    return state


def forward_from(state: FlipState, layer: int, xp=np) -> None:
    """Recompute every cache from layer ``layer``'s input on.

    ``xp`` is the array module of the caches: NumPy here, CuPy for a state
    the CuPy backend keeps on the GPU (the same code, run on the device).
    """
    del state.acts_t[layer + 1 :]
    del state.pre[layer:]
    for q in range(layer, state.n_layers):
        z = state.acts_t[q].T @ state.masked[q]
        if state.biases is not None:
            z += state.biases[q]
        state.pre.append(xp.ascontiguousarray(z))
        if q < state.n_layers - 1:
            state.acts_t.append(xp.ascontiguousarray(xp.maximum(z, 0.0).T))
    finish_logits(state, xp)


def finish_logits(state: FlipState, xp=np) -> None:
    """Softmax, log-softmax and per-sample losses of the cached logits ``state.pre[-1]``."""
    z = state.pre[-1]
    shifted = z - z.max(axis=1, keepdims=True)
    expz = xp.exp(shifted)
    total = expz.sum(axis=1, keepdims=True)
    state.probs = xp.ascontiguousarray(expz / total)
    state.log_probs = xp.ascontiguousarray(shifted - xp.log(total))
    state.sample_losses = -state.log_probs[xp.arange(state.batch_size), state.y]


def flip_gains(
    state: FlipState,
    layer: int,
    rows: np.ndarray,
    cols: np.ndarray,
    rows2: np.ndarray | None = None,
) -> np.ndarray:
    """Exact change of the mean (weighted) loss for each move, the NumPy reference.

    Parameters
    ----------
    state : FlipState
        Caches of the current mask on the current batch.
    layer : int
        Layer of every move.
    rows, cols : int arrays of shape (K,)
        Move ``k`` flips weight ``(rows[k], cols[k])``.
    rows2 : int array of shape (K,), optional
        If given and ``rows2[k] >= 0``, move ``k`` also flips
        ``(rows2[k], cols[k])`` (a swap within one unit).

    Returns
    -------
    ndarray of shape (K,), float64
        ``loss(after the move) - loss(now)``; negative is better.
    """
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    dz = _column_deltas(state, layer, rows, cols, rows2)  # (K, B)
    return np.array(
        [state.mean(sample_changes(state, layer, j, dz[k])) for k, j in enumerate(cols)]
    )


def sample_changes(state: FlipState, layer: int, unit: int, dz: np.ndarray) -> np.ndarray:
    """Exact change of each sample's loss when unit ``unit``'s pre-activation in ``layer`` moves by ``dz``.

    ``dz`` has one entry per sample of the batch. The change goes forward
    through the unit's ReLU and every later layer; nothing is linearised.
    """
    last = state.n_layers - 1
    y = state.y
    if layer == last:
        delta = np.zeros_like(state.probs)
        delta[:, unit] = dz
    else:
        z = state.pre[layer][:, unit]
        da = np.maximum(z + dz, 0.0) - np.maximum(z, 0.0)  # (B,)
        delta = da[:, None] * state.masked[layer + 1][unit][None, :]
        for q in range(layer + 1, state.n_layers):
            if q > layer + 1:
                delta = delta @ state.masked[q]
            if q < last:
                zq = state.pre[q]
                delta = np.maximum(zq + delta, 0.0) - np.maximum(zq, 0.0)
    return _lse_change(state, delta) - delta[np.arange(len(y)), y]


def _lse_change(state: FlipState, delta: np.ndarray) -> np.ndarray:
    """``logsumexp(z + δ) - logsumexp(z)`` per sample, precise for tiny and huge ``δ``.

    ``log1p(Σ p·expm1(δ))`` keeps the relative precision of small changes; where
    that sum nears -1 or overflows, ``logsumexp(log p + δ)`` is used instead.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        s = (state.probs * np.expm1(delta)).sum(axis=1)
        small = np.isfinite(s) & (s > -0.5)
        out = np.log1p(np.where(small, s, 0.0))
    t = state.log_probs[~small] + delta[~small]
    m = t.max(axis=1, keepdims=True)
    out[~small] = m[:, 0] + np.log(np.exp(t - m).sum(axis=1))
    return out


def _column_deltas(state, layer, rows, cols, rows2) -> np.ndarray:
    """``Δz`` of each move's column, ``(K, B)``."""
    a = state.acts_t[layer]
    dz = state.coefficients(layer, rows, cols)[:, None] * a[rows]
    if rows2 is not None:
        rows2 = np.asarray(rows2, np.int64)
        pair = rows2 >= 0
        if pair.any():
            c2 = state.coefficients(layer, rows2[pair], cols[pair])
            dz[pair] += c2[:, None] * a[rows2[pair]]
    return dz


def add_columns(acts_t, rows, cols, coef, pre) -> None:
    """``pre[:, cols[k]] += coef[k] · acts_t[rows[k]]`` for every ``k``, in order (NumPy reference).

    Unbuffered: two flips may share a column. The CuPy backend's kernel
    :func:`prunetrain.backends.cupy.cuda_kernels.add_columns` does the same on the GPU.
    """
    np.add.at(pre.T, cols, coef[:, None] * acts_t[rows])


def apply_flips(
    state: FlipState,
    layer: int,
    rows: np.ndarray,
    cols: np.ndarray,
    xp=np,
    add_columns: Callable = add_columns,
) -> None:
    """Flip weights ``(rows[k], cols[k])`` of ``layer`` and bring every cache up to date.

    The layer's pre-activations change by one column per flip (exactly
    ``c · a``, by ``add_columns``); everything after it is recomputed by dense
    GEMMs. The mask and the weights stay on the host; the caches are arrays
    of ``xp`` (see :func:`forward_from`).
    """
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    if len(rows) == 0:
        return
    if len(set(zip(rows.tolist(), cols.tolist()))) != len(rows):
        raise ValueError("apply_flips got the same weight twice")
    coef = state.coefficients(layer, rows, cols)
    m = state.mask[layer]
    m[rows, cols] = ~m[rows, cols]
    kept = np.where(m[rows, cols], state.weights[layer][rows, cols], 0.0)
    rows_d, cols_d = xp.asarray(rows), xp.asarray(cols)
    state.masked[layer][rows_d, cols_d] = xp.asarray(kept)
    add_columns(state.acts_t[layer], rows_d, cols_d, xp.asarray(coef), state.pre[layer])
    del state.acts_t[layer + 1 :]
    del state.pre[layer + 1 :]
    if layer < state.n_layers - 1:
        state.acts_t.append(xp.ascontiguousarray(xp.maximum(state.pre[layer], 0.0).T))
        forward_from(state, layer + 1, xp)
    else:
        finish_logits(state, xp)


# --- what the flip-gain kernels take (Numba and CUDA alike) ---------------------------


class Moves(NamedTuple):
    """Moves of one layer as the kernels take them: int64 and float64 host arrays of shape (K,).

    Move ``k`` flips ``(rows[k], cols[k])``, with signed weight ``coef[k]``,
    and, where ``rows2[k] >= 0``, also ``(rows2[k], cols[k])`` with ``coef2[k]``
    (``rows2[k] = -1`` and ``coef2[k] = 0`` for a single flip).
    """

    rows: np.ndarray
    rows2: np.ndarray
    coef: np.ndarray
    coef2: np.ndarray
    cols: np.ndarray


def pack_moves(
    state: FlipState,
    layer: int,
    rows: np.ndarray,
    cols: np.ndarray,
    rows2: np.ndarray | None = None,
) -> Moves:
    """The arguments of :func:`flip_gains` as :class:`Moves`, with each flip's signed weight."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    cols = np.ascontiguousarray(cols, dtype=np.int64)
    coef = state.coefficients(layer, rows, cols)
    if rows2 is None:
        rows2 = np.full(len(rows), -1, dtype=np.int64)
        coef2 = np.zeros(len(rows))
    else:
        rows2 = np.ascontiguousarray(rows2, dtype=np.int64)
        coef2 = np.where(rows2 >= 0, state.coefficients(layer, np.maximum(rows2, 0), cols), 0.0)
    return Moves(rows, rows2, coef, coef2, cols)


def flat_downstream(state: FlipState, layer: int, xp=np) -> tuple[tuple, int]:
    """The layers after hidden ``layer``, flattened for the push kernels, and the widest of them.

    Returns ``((w_flat, w_off, dims, z_flat, z_off), widest)``: the masked
    weights of layers ``layer+1 ..`` end to end and where each starts, the
    unit counts ``n_{layer+1} .. n_L``, and the cached pre-activations of the
    downstream hidden layers side by side (one column of zeros if there are
    none) with where each starts; arrays of ``xp``.
    """
    down = state.masked[layer + 1 :]
    dims = np.array([down[0].shape[0]] + [w.shape[1] for w in down], dtype=np.int64)
    w_off = np.concatenate([[0], np.cumsum([w.size for w in down])[:-1]]).astype(np.int64)
    w_flat = xp.concatenate([w.ravel() for w in down])
    hidden = state.pre[layer + 1 : -1]  # pre-activations of downstream hidden layers
    z_off = np.zeros(len(dims), dtype=np.int64)
    if hidden:
        z_off[1 : 1 + len(hidden)] = np.concatenate(
            [[0], np.cumsum([h.shape[1] for h in hidden])[:-1]]
        )
        z_flat = xp.ascontiguousarray(xp.concatenate(hidden, axis=1))
    else:
        z_flat = xp.zeros((state.batch_size, 1), dtype=xp.float64)
    arrays = (w_flat, xp.asarray(w_off), xp.asarray(dims), z_flat, xp.asarray(z_off))
    return arrays, int(dims[1:].max())


#: A transcendental (exp, log) costs about this many multiply-adds.
TRANSCENDENTAL_COST = 10


def flip_cost(shapes: Sequence[tuple[int, int]], layer: int) -> float:
    """Cost of evaluating one flip of ``layer``, as a fraction of one full forward pass.

    Counted per sample in multiply-adds, a transcendental as
    ``TRANSCENDENTAL_COST``: the moved column, then (for a hidden layer) the
    downstream units it can reach — ``n_{l+1}`` for the next layer and every
    later layer's full matrix, the dense worst case — and the softmax update.
    """
    total = sum(a * b for a, b in shapes)
    n_classes = shapes[-1][1]
    if layer == len(shapes) - 1:
        return (1.0 + 2 * TRANSCENDENTAL_COST) / total
    downstream = shapes[layer + 1][1] + sum(a * b for a, b in shapes[layer + 2 :])
    return (1.0 + downstream + TRANSCENDENTAL_COST * (n_classes + 1)) / total
