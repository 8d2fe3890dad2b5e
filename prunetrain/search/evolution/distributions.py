"""Estimation of distribution over independent keep logits, one per weight: PBIL, CEM, NES.

Samples honour the keep rule segment by segment: the backend's
:meth:`~prunetrain.backends.base.Backend.gumbel_top_k` draws masks with
exactly ``k`` kept weights from logits ``θ`` as the top ``k`` of
``θ + Gumbel noise`` (sampling without replacement with probabilities
proportional to ``exp θ``); a segment without a count keeps each weight with
probability ``sigmoid(θ)``.
"""

from __future__ import annotations

import math

import numpy as np

from prunetrain.backends import topk
from prunetrain.hyperparams import MAX_POPULATION, MAX_SCALE, Integer, Real
from prunetrain.masks import Mask
from prunetrain.search.base import register
from prunetrain.search.evolution.population import PopulationSearcher

#: Largest ``max_logit``: sigmoid(50) is 1 - 2e-22, already a sure keep; the logits' exponentials
#: overflow past about 709.
MAX_LOGIT = 50.0


def topk_mode(theta: np.ndarray, k: int, backend=None) -> np.ndarray:
    """The single most likely mask of Gumbel-top-k sampling: the top ``k`` of ``θ``.

    Selected by ``backend`` (a :class:`~prunetrain.backends.base.Backend`) if
    given, else by the NumPy reference; every backend gives the same bits.
    """
    top_k_rows = topk.top_k_rows if backend is None else backend.top_k_rows
    return top_k_rows(np.asarray(theta)[None], k)[0]


class DistributionSearcher(PopulationSearcher):
    """Shared machinery of searchers that evolve independent keep logits ``θ``, one per weight.

    Samples honour the keep rule: under ``"layer"`` (each layer) and
    ``"global"`` (the whole mask) a sample keeps the top ``k`` of
    ``θ + Gumbel noise`` (the backend's ``gumbel_top_k``), so counts are exact; under
    ``"free"`` each weight is kept with probability ``sigmoid(θ)``. The *mode*
    is the top ``k`` of ``θ`` (``θ > 0`` under ``"free"``).

    Each generation evaluates the incumbent (the best mask of the previous
    generation), the mode and ``population`` samples on one fresh batch;
    only the samples update the distribution. :meth:`recommend` validates
    the incumbent and that mode (the validation split is not charged to the
    budget) and returns the better.

    Parameters
    ----------
    population : int
        Samples per generation.
    max_logit : float
        Logits are clipped to ``[-max_logit, max_logit]``, so no weight is
        ever certain and sampling keeps exploring; at most :data:`MAX_LOGIT`.
    """

    _parameter_constraints = {
        "population": Integer(1, MAX_POPULATION),
        "max_logit": Real(0, MAX_LOGIT),
    }

    def __init__(self, population: int = 32, max_logit: float = 5.0) -> None:
        self.population = population
        self.max_logit = max_logit

    def setup(self, problem, rng, init_mask=None) -> None:
        super().setup(problem, rng, init_mask)
        n = self.layout.n
        # A tiny fixed jitter breaks the ties of a flat θ, so the first mode is a random mask.
        self.theta = 1e-3 * rng.standard_normal(n)
        if self.init_flat is not None:
            self.theta += np.where(self.init_flat, 1.0, -1.0) * min(2.0, float(self.max_logit))
        self.mode_row: np.ndarray | None = None
        self.mode_loss = np.inf

    def sample(self, size: int) -> np.ndarray:
        rows = np.empty((size, self.layout.n), dtype=bool)
        for s, e, count in self.layout.segments:
            if count is None:
                p = 1.0 / (1.0 + np.exp(-self.theta[s:e]))
                rows[:, s:e] = self.rng.random((size, e - s), dtype=np.float32) < p
            else:
                rows[:, s:e] = self.problem.backend.gumbel_top_k(
                    self.theta[s:e], count, size, self.rng
                )
        return rows

    def mode(self) -> np.ndarray:
        row = np.empty(self.layout.n, dtype=bool)
        for s, e, count in self.layout.segments:
            if count is None:
                row[s:e] = self.theta[s:e] > 0
            else:
                row[s:e] = topk_mode(self.theta[s:e], count, self.problem.backend)
        return row

    def step(self) -> None:
        samples = self.sample(int(self.population))
        self.mode_row = self.mode()
        head = [self.mode_row[None]]
        if self.best_row is not None:
            head.append(self.best_row[None])
        rows = np.concatenate(head + [samples])
        loss = self.evaluate(rows)
        self.mode_loss = float(loss[0])
        self.remember(rows, loss)
        self.update(samples, loss[len(head) :])
        np.clip(self.theta, -float(self.max_logit), float(self.max_logit), out=self.theta)

    def update(self, samples: np.ndarray, loss: np.ndarray) -> None:
        """Move ``θ`` given the samples of this generation and their losses."""
        raise NotImplementedError

    def recommend(self) -> tuple[Mask, float]:
        best, best_loss = super().recommend()
        if self.mode_row is None or np.array_equal(self.mode_row, self.best_row):
            return best, best_loss
        mode_mask = self.layout.mask(self.mode_row)
        # Validation is not charged to the budget and happens only at validation points.
        vb, vm = self.problem.validate(best), self.problem.validate(mode_mask)
        if (vm[1], -vm[0]) > (vb[1], -vb[0]):
            return mode_mask, self.mode_loss
        return best, best_loss

    @property
    def probabilities(self) -> np.ndarray:
        """``sigmoid(θ)``, the keep probabilities (flat, layers end to end)."""
        return 1.0 / (1.0 + np.exp(-self.theta))

    def set_probabilities(self, p: np.ndarray) -> None:
        eps = 1.0 / (1.0 + math.exp(float(self.max_logit)))
        p = np.clip(p, eps, 1.0 - eps)
        self.theta = np.log(p) - np.log1p(-p)


@register
class PBILSearcher(DistributionSearcher):
    """Population-based incremental learning over Bernoulli keep probabilities.

    With ``p = sigmoid(θ)``, each generation moves ``p`` toward the mean of
    the ``elite`` best samples and, where the best and the worst sample
    differ, away from the worst:

    ``p ← (1 - lr) p + lr · mean(best samples)``;
    ``p ← p + negative_lr · (x_best - x_worst)`` on the bits where they differ.

    Parameters
    ----------
    population : int
        Samples per generation.
    lr : float
        Learning rate toward the best samples, in (0, 1].
    elite : int
        Best samples averaged.
    negative_lr : float
        Learning rate away from the worst sample (0 turns it off).
    max_logit : float
        See :class:`DistributionSearcher`.
    """

    name = "pbil"
    summary = "population-based incremental learning over Bernoulli keep probabilities"
    _parameter_constraints = {
        **DistributionSearcher._parameter_constraints,
        "lr": Real(0, 1),
        "elite": Integer(1, "population"),
        "negative_lr": Real(0, 1, closed="both"),
    }

    def __init__(
        self,
        population: int = 32,
        lr: float = 0.02,
        elite: int = 2,
        negative_lr: float = 0.02,
        max_logit: float = 5.0,
    ) -> None:
        super().__init__(population, max_logit)
        self.lr = lr
        self.elite = elite
        self.negative_lr = negative_lr

    def update(self, samples: np.ndarray, loss: np.ndarray) -> None:
        order = np.argsort(loss, kind="stable")
        lr = float(self.lr)
        p = (1.0 - lr) * self.probabilities + lr * samples[order[: int(self.elite)]].mean(axis=0)
        if float(self.negative_lr) > 0 and len(order) > 1:
            best, worst = samples[order[0]], samples[order[-1]]
            p += float(self.negative_lr) * (best.astype(np.float64) - worst)
        self.set_probabilities(p)


@register
class CEMSearcher(DistributionSearcher):
    """Cross-entropy method over Bernoulli keep probabilities.

    Each generation the best ``elite_fraction`` of the samples (at least
    one) refit the distribution, with smoothing:

    ``p ← (1 - smoothing) p + smoothing · mean(elite samples)``, ``p = sigmoid(θ)``.

    Parameters
    ----------
    population : int
        Samples per generation.
    elite_fraction : float
        Fraction of the samples that refit the distribution, in (0, 1].
    smoothing : float
        Weight of the new fit, in (0, 1].
    max_logit : float
        See :class:`DistributionSearcher`.
    """

    name = "cem"
    summary = "cross-entropy method (elite fraction) over Bernoulli keep probabilities"
    _parameter_constraints = {
        **DistributionSearcher._parameter_constraints,
        "elite_fraction": Real(0, 1),
        "smoothing": Real(0, 1),
    }

    def __init__(
        self,
        population: int = 32,
        elite_fraction: float = 0.25,
        smoothing: float = 0.1,
        max_logit: float = 5.0,
    ) -> None:
        super().__init__(population, max_logit)
        self.elite_fraction = elite_fraction
        self.smoothing = smoothing

    def update(self, samples: np.ndarray, loss: np.ndarray) -> None:
        n_elite = max(1, int(round(float(self.elite_fraction) * len(loss))))
        elite = samples[np.argsort(loss, kind="stable")[:n_elite]].mean(axis=0)
        a = float(self.smoothing)
        self.set_probabilities((1.0 - a) * self.probabilities + a * elite)


def nes_utilities(n: int) -> np.ndarray:
    """Rank-based fitness shaping of Wierstra et al. (2014): utilities of ranks 1..n (best first).

    ``u_k = max(0, log(n/2 + 1) - log k) / Σ_j max(0, log(n/2 + 1) - log j) - 1/n``;
    they sum to zero, so only the ranks of the fitnesses matter.

    Examples
    --------
    >>> u = nes_utilities(4)
    >>> bool(abs(u.sum()) < 1e-12 and u[0] > u[1] > u[2] == u[3])
    True
    """
    raw = np.maximum(0.0, math.log(n / 2 + 1) - np.log(np.arange(1, n + 1)))
    return raw / raw.sum() - 1.0 / n


@register
class NESSearcher(DistributionSearcher):
    """Natural evolution strategy with a Bernoulli (logit) search distribution.

    Samples are ranked by loss and given the utilities of
    :func:`nes_utilities`; ``θ`` follows the search gradient

    ``θ ← θ + lr · Σ_i u_i (x_i - sigmoid(θ))``,

    the gradient of the expected utility for independent Bernoulli weights
    (``∂ log P(x) / ∂θ = x - sigmoid(θ)``). It is used unpreconditioned: the
    natural gradient would divide by the Fisher information ``p (1 - p)``
    of each logit, which has no closed form for the top-k sampler; the rank
    shaping and the logit clip keep the steps bounded instead.
    Under the ``"layer"`` and ``"global"`` rules, where samples are the
    Gumbel-top-k of ``θ``, the Bernoulli score is an approximation of that
    sampler's score; because the utilities sum to zero, the ``sigmoid(θ)``
    term cancels and the update is ``lr · Σ_i u_i x_i``.

    Parameters
    ----------
    population : int
        Samples per generation.
    lr : float
        Step size on the logits.
    momentum : float
        Heavy-ball momentum of the logit updates, in [0, 1).
    max_logit : float
        See :class:`DistributionSearcher`.
    """

    name = "nes"
    summary = "natural evolution strategy over Bernoulli keep logits, rank-shaped fitness"
    _parameter_constraints = {
        **DistributionSearcher._parameter_constraints,
        "lr": Real(0, MAX_SCALE),
        "momentum": Real(0, 1, closed="left"),
    }

    def __init__(
        self,
        population: int = 32,
        lr: float = 5.0,
        momentum: float = 0.0,
        max_logit: float = 5.0,
    ) -> None:
        super().__init__(population, max_logit)
        self.lr = lr
        self.momentum = momentum

    def setup(self, problem, rng, init_mask=None) -> None:
        super().setup(problem, rng, init_mask)
        self.velocity = np.zeros_like(self.theta)

    def update(self, samples: np.ndarray, loss: np.ndarray) -> None:
        u = np.empty(len(loss))
        u[np.argsort(loss, kind="stable")] = nes_utilities(len(loss))
        # einsum, not BLAS: a threaded GEMV leaves OpenBLAS threads spinning into the next
        # sampling and evaluation, which cost a third of the generations on 2 cores.
        weighted = np.einsum("p,pn->n", u.astype(np.float32), samples.view(np.uint8))
        grad = weighted - u.sum() * self.probabilities
        self.velocity = float(self.momentum) * self.velocity + float(self.lr) * grad
        self.theta += self.velocity
