"""Loss and accuracy of logits: the reference formulas every backend matches."""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable ``log(softmax(logits))`` over the last axis, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def cross_entropy(logits: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Mean cross-entropy of ``logits (..., B, C)`` against labels ``y (B,)``.

    With sample weights ``w (B,)``, the mean of ``w · loss`` (weights scaled
    to mean 1 give the weighted mean). Returns one value per leading index (a
    scalar for 2-D logits), float64.
    """
    losses = sample_losses(logits, y)
    return (losses if w is None else losses * w).mean(axis=-1)


def sample_losses(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cross-entropy of each row of ``logits (..., B, C)`` against labels ``y (B,)``, float64.

    Their mean is :func:`cross_entropy`; kept per row, a split evaluated in
    chunks of rows gets exactly the mean of the whole.
    """
    logp = log_softmax(logits)
    y = np.asarray(y)
    picked = np.take_along_axis(logp, np.broadcast_to(y[:, None], logp.shape[:-1] + (1,)), axis=-1)
    return -picked[..., 0]


def accuracy(logits: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Fraction of rows whose arg-max (first on ties) equals the label (the mean of ``w · hit``)."""
    hits = np.argmax(logits, axis=-1) == np.asarray(y)
    return (hits if w is None else hits * np.asarray(w, dtype=np.float64)).mean(axis=-1)
