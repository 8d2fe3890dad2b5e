"""Hebbian statistics of one batch: the NumPy reference of the backend operations.

The Hebbian searchers (:mod:`prunetrain.search.hebbian`) score each
connection ``(i -> j)`` of a layer from the pre-synaptic activity ``x_i``
(the layer's input), the frozen weight ``w_ij`` and a post-synaptic signal of
unit ``j``, averaged over a batch. What they need of a batch is computed
here, on the backend's device, from one float64 forward pass of the current
mask (:func:`hebbian_pass`); only the ``(fan_in, fan_out)`` statistics and a
few summaries come back to the host. The formulas, with ``E`` the mean over
the batch's samples ``b``:

- :func:`competitive_stat`: ``sign(w_ij) E[(x_bi - x̄_i) y_bj] / E[y_bj]`` with
  ``y_bj`` the k-winners-take-all indicator of unit ``j`` on sample ``b``
  (:func:`winners_take_all`), or ``sign(w_ij) E[x_bi a_bj]`` without competition;
- :func:`label_stat`: ``w_ij E[x_bi (t_bj - t̄_j)]`` for a per-sample target ``t``;
- :func:`reward_stat`: ``w_ij E[x_bi r_b ξ_bj] / σ²``, the reward ``r_b`` of an
  antithetic perturbation ``±ξ`` of the layer's pre-activations
  (:func:`reward_delta` makes the two perturbed forward passes).

Every function takes ``xp``, the array module of its arrays (NumPy here, CuPy
on the GPU backend), and computes in the same order in both, so the NumPy and
the Numba backend give the same bits (the Numba backend runs the GEMMs in BLAS,
as here, and the k-WTA selection in a kernel that defers to this reference
where a sample's winners are tied).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np


@dataclasses.dataclass
class HebbianPass:
    """One float64 forward pass of a mask on a batch, kept on the backend's device.

    Attributes
    ----------
    weights, masked : list of (fan_in, fan_out) float64 device arrays
        The frozen weights ``w`` and ``w ⊙ mask`` of every layer.
    biases : list of (fan_out,) float64 device arrays, or None
    inputs : list of (B, fan_in) float64 device arrays
        Each layer's input ``x_l`` (the features, then ``a_{l-1}``).
    pres : list of (B, fan_out) float64 device arrays
        Each layer's pre-activation ``z_l``; the last one is the logits.
    y : (B,) int64 device array
        The labels.
    loss : float
        Mean cross-entropy of the mask on the batch (host).
    input_means : list of (fan_in,) float64 host arrays
        ``x̄_l``, each layer's mean input over the batch.
    pre_stds : list of float
        The standard deviation of each layer's pre-activations over the batch.
    """

    weights: list
    masked: list
    biases: list | None
    inputs: list
    pres: list
    y: object
    loss: float
    input_means: list[np.ndarray]
    pre_stds: list[float]

    @property
    def batch_size(self) -> int:
        return int(self.y.shape[0])


def sample_losses(logits, y, xp=np):
    """Cross-entropy of each sample (float64), as :func:`prunetrain.metrics.sample_losses` computes it."""
    z = logits - logits.max(axis=-1, keepdims=True)
    log_probs = z - xp.log(xp.exp(z).sum(axis=-1, keepdims=True))
    return -log_probs[xp.arange(len(y)), y]


def hebbian_pass(
    weights: Sequence,
    biases: Sequence | None,
    mask: Sequence,
    X,
    y,
    xp=np,
    to_host: Callable = np.asarray,
) -> HebbianPass:
    """Forward ``mask`` on ``(X, y)`` in float64 and keep every layer's input and pre-activation.

    ``weights`` and ``biases`` are float64 device arrays, ``mask`` boolean
    device arrays, ``X`` and ``y`` the batch on the device.
    """
    a = xp.asarray(X, dtype=xp.float64)
    masked = [w * m for w, m in zip(weights, mask)]
    inputs, pres = [], []
    for layer, wm in enumerate(masked):
        inputs.append(a)
        z = a @ wm
        if biases is not None:
            z += biases[layer]
        pres.append(z)
        a = xp.maximum(z, 0.0)
    y = xp.asarray(y, dtype=xp.int64)
    return HebbianPass(
        weights=list(weights),
        masked=masked,
        biases=None if biases is None else list(biases),
        inputs=inputs,
        pres=pres,
        y=y,
        loss=float(sample_losses(pres[-1], y, xp).mean()),
        input_means=[to_host(x.mean(axis=0)) for x in inputs],
        pre_stds=[float(z.std()) for z in pres],
    )


def winners_take_all(z, k: int, xp=np):
    """``y_bj``: 1.0 where unit ``j`` is among the ``k`` largest pre-activations of sample ``b``.

    Where a sample's ``k``-th and ``k+1``-th largest are equal, ``argpartition``
    picks among the tied units; a kernel must defer to it for such samples
    (as the Numba backend's does) to give the same winners.
    """
    top = xp.argpartition(-z, k - 1, axis=1)[:, :k]
    y = xp.zeros_like(z)
    y[xp.arange(z.shape[0])[:, None], top] = 1.0
    return y


def competitive_stat(x, z, w, winners: int | None, xp=np, wta=winners_take_all):
    """``sign(w_ij) E[(x_bi - x̄_i) y_bj] / E[y_bj]`` with k-WTA ``y``; plain ``sign(w) E[x a]`` if ``winners`` is None.

    ``wta(z, k)`` marks the winners (a backend passes its kernel).
    """
    if winners is None:
        return xp.sign(w) * (x.T @ xp.maximum(z, 0.0)) / len(x)
    y = wta(z, min(int(winners), z.shape[1]))
    wins = y.sum(axis=0)
    centred = x - x.mean(axis=0)
    return xp.sign(w) * (centred.T @ y) / xp.maximum(wins, 1.0)


def label_stat(x, target, w, xp=np):
    """``w_ij E[x_bi (t_bj - t̄_j)]`` for a per-sample target ``t`` of the layer's units."""
    centred = target - target.mean(axis=0)
    return w * (x.T @ centred) / len(x)


def label_target(y, n_classes: int, projection=None, xp=np):
    """The one-hot labels ``t`` (B, n_classes), or ``t R`` through a ``(n_classes, units)`` projection."""
    onehot = xp.eye(n_classes)[y]
    return onehot if projection is None else onehot @ xp.asarray(projection)


def reward_stat(x, reward, noise, sigma: float, w):
    """``w_ij E[x_bi r_b ξ_bj] / σ²``: eligibility (pre × weight × post noise) times reward."""
    return w * (x.T @ (reward[:, None] * noise)) / (len(x) * sigma**2)


def forward_from(hpass: HebbianPass, layer: int, z, xp=np):
    """Logits when layer ``layer``'s pre-activation is ``z`` (the layers before unchanged)."""
    for q in range(layer + 1, len(hpass.masked)):
        z = xp.maximum(z, 0.0) @ hpass.masked[q]
        if hpass.biases is not None:
            z = z + hpass.biases[q]
    return z


def reward_delta(hpass: HebbianPass, layer: int, noise, sigma: float, xp=np):
    """:func:`reward_stat` of layer ``layer`` for the perturbation ``±noise`` of its pre-activations.

    ``r_b = -(ℓ_b(z + ξ) - ℓ_b(z - ξ)) / 2``, from two forward passes of the
    layers after ``layer``.
    """
    z, y = hpass.pres[layer], hpass.y
    plus = sample_losses(forward_from(hpass, layer, z + noise, xp), y, xp)
    minus = sample_losses(forward_from(hpass, layer, z - noise, xp), y, xp)
    reward = -(plus - minus) / 2
    return reward_stat(hpass.inputs[layer], reward, noise, sigma, hpass.weights[layer])
