"""The NumPy reference backend: simple, obviously right, what the others are tested against."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from prunetrain.backends.base import Backend
from prunetrain.masks import MaskPopulation
from prunetrain.metrics import accuracy, cross_entropy

# Masked float32 weights of a population chunk stay under this many bytes.
CHUNK_BYTES = 256 * 2**20


class NumpyBackend(Backend):
    """Population forward in float32 NumPy GEMMs, loss in float64.

    The first layer of a chunk of P masks is one GEMM over the shared input
    batch, ``X (B×d) @ [W⊙M₁ | … | W⊙M_P] (d × P·h)``; later layers are
    batched GEMMs ``(P, B, h) @ (P, h, h')``.
    """

    name = "numpy"

    def evaluate(self, population: MaskPopulation, X, y, w=None) -> tuple[np.ndarray, np.ndarray]:
        P = len(population)
        per_mask = 4 * self.network.spec.n_weights
        chunk = max(1, CHUNK_BYTES // per_mask)
        losses, accs = np.empty(P), np.empty(P)
        for start in range(0, P, chunk):
            rows = slice(start, min(P, start + chunk))
            logits = self._population_logits(population, rows, X)
            losses[rows] = cross_entropy(logits, y, w)
            accs[rows] = accuracy(logits, y, w)
        return losses, accs

    def _population_logits(
        self, population: MaskPopulation, rows: slice, X: np.ndarray
    ) -> np.ndarray:
        net = self.network
        last = net.spec.n_layers - 1
        a = None
        for layer, w in enumerate(net.weights):
            masked = population.layer(layer, rows) * w  # (p, fan_in, fan_out) float32
            if layer == 0:
                p, d, h = masked.shape
                z = X @ masked.transpose(1, 0, 2).reshape(d, p * h)  # one GEMM for all masks
                z = z.reshape(X.shape[0], p, h).transpose(1, 0, 2)
            else:
                z = np.matmul(a, masked)
            if net.biases is not None:
                z = z + net.biases[layer]
            a = np.maximum(z, 0.0) if layer < last else z
        return a

    def logits(self, mask: Sequence[np.ndarray], X) -> np.ndarray:
        net = self.network
        a = np.asarray(X, dtype=np.float32)
        for layer, (w, m) in enumerate(zip(net.weights, mask)):
            a = a @ (w * m)
            if net.biases is not None:
                a = a + net.biases[layer]
            if layer < net.spec.n_layers - 1:
                np.maximum(a, 0.0, out=a)  # a is this layer's own product: no second copy
        return a
