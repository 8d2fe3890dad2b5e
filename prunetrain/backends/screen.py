"""A screen of every weight's flip by forward probes: the NumPy reference.

Flipping weight ``(i, j)`` of layer ``l`` moves only unit ``j``'s
pre-activation, by ``c · a_i`` per sample (``c = +w_ij`` switching it on,
``-w_ij`` off; see :mod:`prunetrain.backends.flips`). The screen asks, per
sample, how much the loss moves when that pre-activation moves:

1. **Probe every unit.** Unit ``j`` of layer ``l`` gets a small push ``ε_l``
   on every sample and the push is carried *forward* through its ReLU and all
   later layers to the loss (the exact :func:`~prunetrain.backends.flips.sample_changes`).
   The response ``R_l[b, j] = Δℓ_b / ε_l`` is a one-sided finite difference
   of sample ``b``'s loss. A unit whose ReLU stays off under the push
   responds with zero and needs no further work. For the logits the push
   has a closed form (a logsumexp change).
2. **Score every weight.** A flip moves ``z_bj`` by ``c · a_bi``, so to
   first order it changes the mean loss by
   ``c · (1/B) Σ_b a_bi R_l[b, j]`` — for a whole layer one GEMM of the
   layer's input with the responses, ``c ⊙ (Aᵀ R / B)``. With sample
   weights ``w`` (the batch's :attr:`~prunetrain.backends.flips.FlipState.w`)
   it is the weighted mean the weighted cross-entropy takes,
   ``c · (1/B) Σ_b w_b a_bi R_l[b, j]``.

No backward pass and no derivative formula of the network is used: the
responses are loss differences of forward passes. The score is only a
screen. It is linear in the flip's size, so it misses what a flip does past a
ReLU's kink; searchers confirm what it proposes with the exact flip gains.

``ε_l = probe · rms(z_l)`` (``probe`` relative to the layer's pre-activation
scale, :data:`PROBE` by default; over samples weighted as the loss is) keeps
the probe small against every unit's margin, on any input scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from prunetrain.backends.flips import FlipState, sample_changes

#: Probe size relative to the root-mean-square pre-activation of the probed layer.
PROBE = 1e-3


def probe_sizes(state: FlipState, probe: float = PROBE) -> list[float]:
    """``ε_l`` of every layer: ``probe`` times the layer's rms pre-activation on the batch.

    With sample weights the mean over samples is weighted (:meth:`FlipState.mean`),
    so integer weights give the probe of repeated samples.
    """
    out = []
    for z in state.pre:
        if not z.size:
            rms = 0.0
        elif state.w is None:
            rms = float(np.sqrt(np.mean(np.square(z))))
        else:
            rms = float(np.sqrt(state.mean(np.mean(np.square(z), axis=1))))
        out.append(probe * rms if rms > 0 and np.isfinite(rms) else probe)
    return out


def probe_responses(state: FlipState, probe: float = PROBE) -> list[np.ndarray]:
    """Each sample's loss response to a push of each unit's pre-activation.

    Returns
    -------
    list of ndarray, one ``(B, n_units)`` float64 array per layer
        ``R_l[b, j] = (ℓ_b(z_l[b, j] + ε_l) - ℓ_b) / ε_l``, every later layer
        forwarded exactly.
    """
    responses = []
    for layer, eps in enumerate(probe_sizes(state, probe)):
        B, n = state.pre[layer].shape
        push = np.full(B, eps)
        R = np.empty((B, n))
        for j in range(n):
            R[:, j] = sample_changes(state, layer, j, push) / eps
        responses.append(R)
    return responses


def screen_gains(state: FlipState, responses: Sequence[np.ndarray]) -> list[np.ndarray]:
    """First-order flip gain of every weight from the probe responses, the reference.

    Returns
    -------
    list of ndarray, one ``(fan_in, fan_out)`` float64 array per layer
        ``c_ij · (1/B) Σ_b w_b a_bi R[b, j]`` with ``c = -w`` for a kept weight and
        ``+w`` for a pruned one, ``w_b`` the sample weights (ones without): the
        predicted ``loss(after) - loss(now)`` of the (weighted) mean loss.
    """
    out = []
    for layer, R in enumerate(weighted_responses(state, responses)):
        w = state.weights[layer]
        slope = (state.acts_t[layer] @ R) / state.batch_size
        out.append(np.where(state.mask[layer], -w, w) * slope)
    return out


def weighted_responses(state: FlipState, responses: Sequence[np.ndarray]) -> list:
    """The responses with each sample's row times its weight ``w_b`` (as they are without weights)."""
    if state.w is None:
        return list(responses)
    return [state.w[:, None] * R for R in responses]


def screen_cost(shapes: Sequence[tuple[int, int]]) -> float:
    """Cost of one screen as a fraction of one full forward pass (dense worst case, multiply-adds).

    Probing a hidden unit carries its push through every later layer (the next
    layer's row, then full matrices); the output layer's responses and the
    scoring GEMMs (one forward pass) come on top.
    """
    total = sum(a * b for a, b in shapes)
    probes = 0.0
    for layer in range(len(shapes) - 1):
        n_units = shapes[layer][1]
        downstream = shapes[layer + 1][1] + sum(a * b for a, b in shapes[layer + 2 :])
        probes += n_units * downstream
    return 1.0 + probes / total
