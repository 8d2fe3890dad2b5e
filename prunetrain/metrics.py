"""Loss and accuracy of logits: the reference formulas every backend matches."""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable ``log(softmax(logits))`` over the last axis, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean cross-entropy of ``logits (..., B, C)`` against labels ``y (B,)``.

    Returns one value per leading index (a scalar for 2-D logits), float64.
    """
    logp = log_softmax(logits)
    y = np.asarray(y)
    picked = np.take_along_axis(logp, np.broadcast_to(y[:, None], logp.shape[:-1] + (1,)), axis=-1)
    return -picked[..., 0].mean(axis=-1)


def accuracy(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fraction of rows whose arg-max (first on ties) equals the label."""
    return (np.argmax(logits, axis=-1) == np.asarray(y)).mean(axis=-1)
