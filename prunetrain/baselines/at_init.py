"""Data-free pruning at init: random, magnitude and SynFlow masks of the frozen network.

None of these looks at the data; each returns a ticket of the frozen network,
the floor that any method using the data should clear.

SynFlow (Tanaka et al. 2020) scores a weight by its share of the *synaptic
flow* ``R = 1ᵀ (∏_l |W_l ⊙ M_l|) 1``: ``s_ij = |w_ij| m_ij · a_i · b_j``,
where ``a`` is the all-ones input pushed forward through ``|W ⊙ M|`` to the
layer and ``b`` the all-ones output pushed backward to it. For an MLP without
biases this is the exact gradient ``∂R/∂w · w``, computed in closed form by two
matrix-vector sweeps, no autograd. Pruning is iterative: over ``iterations``
steps the keep fraction decays exponentially to the target, re-scoring each time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from prunetrain.backends import NumpyBackend
from prunetrain.baselines.base import Baseline, BaselineResult, EpochLog, register
from prunetrain.baselines.select import jitter, keep_largest
from prunetrain.hyperparams import MAX_REPEATS, Integer
from prunetrain.masks import KeepRule, Mask, random_mask


def synflow_scores(weights: Sequence[np.ndarray], mask: Mask) -> list[np.ndarray]:
    """SynFlow scores ``|w_ij| m_ij a_i b_j`` of every weight, in float64.

    Examples
    --------
    >>> w = [np.array([[1.0, -2.0]]), np.array([[3.0], [1.0]])]
    >>> m = [np.ones((1, 2), bool), np.ones((2, 1), bool)]
    >>> [s.tolist() for s in synflow_scores(w, m)]  # R = 1·3 + 2·1 = 5, split over paths
    [[[3.0, 2.0]], [[3.0], [2.0]]]
    """
    masked = [np.abs(np.asarray(w, dtype=np.float64)) * m for w, m in zip(weights, mask)]
    forward = [np.ones(masked[0].shape[0])]
    for w in masked[:-1]:
        forward.append(forward[-1] @ w)
    backward = [np.ones(masked[-1].shape[1])]
    for w in masked[:0:-1]:
        backward.append(w @ backward[-1])
    backward.reverse()
    return [w * np.outer(a, b) for w, a, b in zip(masked, forward, backward)]


def synflow_mask(
    weights: Sequence[np.ndarray], rule: KeepRule, iterations: int, rng: np.random.Generator
) -> Mask:
    """Iterative SynFlow: ``iterations`` rounds, keeping ``keep ** (k / iterations)`` at round k."""
    shapes = [w.shape for w in weights]
    mask = [np.ones(s, dtype=bool) for s in shapes]
    for k in range(1, iterations + 1):
        scores = jitter(synflow_scores(weights, mask), rng)
        # A pruned weight scores -1, below any survivor (a survivor cut off from the
        # input or output scores 0), so it never comes back.
        scores = [np.where(m, s, -1.0) for s, m in zip(scores, mask)]
        target = rule.keep if k == iterations else rule.keep ** (k / iterations)
        mask = keep_largest(scores, rule.with_keep(target), shapes)
    return mask


class PruneAtInit(Baseline):
    """Shared ``fit`` of the data-free baselines: time :meth:`make_mask`, record one history row."""

    trains = False
    produces = "ticket"

    def make_mask(self, network, rule: KeepRule, rng: np.random.Generator) -> Mask:
        raise NotImplementedError

    def fit(self, network, data, rule: KeepRule, *, seed=0, budget=None, progress=False):
        self.check_params()
        start = time.perf_counter()
        mask = self.make_mask(network, rule, np.random.default_rng([seed, 0x1417]))
        seconds = time.perf_counter() - start
        backend = NumpyBackend(network)
        log = EpochLog(data, self.name if progress else None)
        log.add(
            lambda X: backend.logits(mask, X),
            0,
            float("nan"),
            steps=0,
            sample_forwards=0,
            seconds=seconds,
        )
        log.close()
        return BaselineResult(
            mask=mask,
            history=log.rows,
            snapshots=log.snapshots,
            seconds=seconds,
            steps=0,
            sample_forwards=0,
            epochs=0,
            stopped_by="finished",
            note=f"{self.name} pruning at init, without data: a ticket of the frozen network",
        )


@register
class RandomPruning(PruneAtInit):
    """One uniformly random mask at the target keep (no selection at all)."""

    name = "random"
    summary = "one random mask at the target keep, no data"

    def make_mask(self, network, rule, rng):
        return random_mask(network.shapes, rule, rng)


@register
class MagnitudePruning(PruneAtInit):
    """Keep the largest-magnitude frozen weights (ties, as in ``signed_constant``, at random)."""

    name = "magnitude"
    summary = "largest |w| of the frozen weights, no data (random under signed_constant)"

    def make_mask(self, network, rule, rng):
        magnitudes = jitter([np.abs(w) for w in network.weights], rng)
        return keep_largest(magnitudes, rule, network.shapes)


@register
class SynFlow(PruneAtInit):
    """Iterative synaptic-flow pruning (Tanaka et al. 2020), in closed form for an MLP.

    Parameters
    ----------
    iterations : int
        Pruning rounds; the keep fraction decays exponentially to the target.
    """

    name = "synflow"
    summary = "iterative SynFlow, closed form for the MLP, no data"
    _parameter_constraints = {"iterations": Integer(1, MAX_REPEATS)}

    def __init__(self, iterations: int = 100) -> None:
        self.iterations = iterations

    def make_mask(self, network, rule, rng):
        return synflow_mask(network.weights, rule, int(self.iterations), rng)
