"""Hebbian-style mask search: connections chosen by local rules, no backprop.

Every searcher here scores each connection ``(i -> j)`` of layer ``l`` from
quantities available at that connection: the pre-synaptic activity ``x_i``
(the layer's input, ``a_{l-1}``), the frozen weight ``w_ij``, and a
post-synaptic signal of unit ``j``. Scores are running averages over batches
(an exponential moving average with bias correction, ``momentum``), and the
mask is re-selected from them every ``reselect`` batches: each layer keeps the
top-scoring connections — per unit (every unit keeps its share of the
layer's count, the default for the correlation rules) or over the whole
layer. Nothing is propagated backwards through the network.

The rules, with ``E`` the mean over a batch's samples ``b``:

``hebbian`` (competitive activity correlation), hidden layers::

    s_ij = sign(w_ij) · E[(x_bi - x̄_i) · y_bj] / E[y_bj],   y_bj = [z_bj in the top k of sample b]

  a unit keeps the inputs whose signed weight agrees with the input pattern
  it wins on (k-winners-take-all competition keeps units from all picking the
  same inputs); with ``competition="none"`` the plain correlation
  ``sign(w_ij) · E[x_bi · a_bj]``. The readout cannot be chosen without
  labels and uses the label rule below.

``hebbian-label``, readout (``t`` the one-hot label, centred)::

    s_ij = w_ij · E[x_bi · (t_bj - t̄_j)]

  keep a connection whose signed contribution ``w_ij x_i`` rises with the
  target class ``j``; hidden layers use the same rule with a fixed random
  ±1 projection of the label as their target (direct random target
  projection), ``h_b = (t_b - t̄) R_l``.

``hebbian-reward`` (three-factor, node perturbation)::

    s_ij += lr · Δ_ij / rms(Δ),   Δ_ij = w_ij · E[x_bi · r_b · ξ_bj] / σ_l²

  each unit's pre-activation is perturbed by noise ``ξ_bj ~ N(0, σ_l²)``
  (antithetic pairs ``±ξ``), ``r_b = -(ℓ_b(+ξ) - ℓ_b(-ξ)) / 2`` is the reward
  relative to the unperturbed baseline, and the eligibility trace
  ``x_bi · w_ij · ξ_bj`` (pre × weight × post) is credited by it; this
  estimates the mask's straight-through gradient from forward passes only.

The statistics of a batch are the backend's (``Backend.hebbian_pass`` and
the ``hebbian_*`` methods, reference in :mod:`prunetrain.backends.hebbian`):
they are computed where the data lives and only they come back. Scores and
the selection of the mask stay here, on the host.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from prunetrain.backends.hebbian import HebbianPass
from prunetrain.errors import PrunetrainError
from prunetrain.hyperparams import MAX_REPEATS, MAX_SCALE, Choice, Flag, Integer, Real
from prunetrain.masks import Mask
from prunetrain.search.base import Searcher, register

SELECTIONS = ("unit", "layer")
COMPETITIONS = ("wta", "none")


# --- selection (on the host: the mask is a host array) -----------------------------------
def unit_counts(count: int, fan_in: int, fan_out: int) -> np.ndarray:
    """Split a layer's ``count`` over its ``fan_out`` units as evenly as possible."""
    base, extra = divmod(count, fan_out)
    if base > fan_in or (base == fan_in and extra):
        raise PrunetrainError(f"cannot keep {count} of {fan_in}x{fan_out} weights")
    counts = np.full(fan_out, base, dtype=np.int64)
    counts[:extra] += 1
    return counts


def select_top(scores: np.ndarray, count: int, per_unit: bool) -> np.ndarray:
    """Keep the ``count`` highest scores of a layer: per unit (column) or over the layer.

    Ties are broken by position (a stable order), so selection is deterministic.
    """
    a, b = scores.shape
    mask = np.zeros((a, b), dtype=bool)
    if not per_unit:
        order = np.argsort(-scores, axis=None, kind="stable")[:count]
        mask.flat[order] = True
        return mask
    counts = unit_counts(count, a, b)
    order = np.argsort(-scores, axis=0, kind="stable")  # (a, b): rows by descending score
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(a)[:, None], axis=0)
    return rank < counts[None, :]


def _spread(values: np.ndarray) -> np.ndarray:
    """Each column's standard deviation (1 where it is zero), as a column of the transpose."""
    std = values.std(axis=0)
    return np.where(std > 0, std, 1.0)[:, None]


def balanced_top(scores: np.ndarray, drive: np.ndarray, count: int, iters: int = 24) -> np.ndarray:
    """Per-unit top scores under a homeostatic set point: each unit's mean drive near zero.

    Unit ``j`` keeps the top ``k_j`` of ``s_ij - λ_j d_ij`` where ``d_ij =
    w_ij x̄_i`` is connection ``(i, j)``'s share of the unit's mean
    pre-activation and ``λ_j`` is found by bisection so that the kept drive
    ``Σ_i d_ij`` is as close to zero as the unit's weights allow (it falls as
    ``λ_j`` grows). Without it, units whose best-scoring inputs are also the
    most active ones get a large constant drive: readout units then win on
    every sample and hidden units are always on or dead.
    """
    a, b = scores.shape
    counts = unit_counts(count, a, b)
    # Units as contiguous rows: partitions along the last axis are the fast ones.
    s = np.ascontiguousarray(scores.T) / _spread(scores)
    d = np.ascontiguousarray(drive.T) / _spread(drive)
    lo, hi = np.full(b, -64.0), np.full(b, 64.0)
    # Ascending position of a unit's smallest kept value (a unit keeping none keeps none).
    smallest_kept = np.minimum(a - counts, a - 1)
    units, keeps_any = np.arange(b), (counts > 0)[:, None]
    for _ in range(iters):
        lam = (lo + hi) / 2
        v = s - lam[:, None] * d
        threshold = np.partition(v, np.unique(smallest_kept), axis=1)[units, smallest_kept]
        kept_drive = (d * ((v >= threshold[:, None]) & keeps_any)).sum(axis=1)
        lo, hi = np.where(kept_drive > 0, lam, lo), np.where(kept_drive > 0, hi, lam)
    return select_top((s - ((lo + hi) / 2)[:, None] * d).T, count, per_unit=True)


# --- the searchers ----------------------------------------------------------------------
class HebbianBase(Searcher):
    """Shared machinery: the current mask, averaged scores, re-selection.

    Parameters
    ----------
    epochs : float or None
        Passes over the training split before the searcher declares itself
        finished (its scores have converged); ``None`` runs until the budget.
    momentum : float
        Decay of the scores' running average, in [0, 1).
    reselect : int
        Batches between re-selections of the mask.
    select : {"unit", "layer"}
        Keep the top scores of each unit (column) or of each whole layer.
    homeostasis : bool
        With ``select="unit"``: hold each unit's mean drive near zero while
        choosing its top scores (:func:`balanced_top`).
    """

    #: Default of ``select`` for the subclass.
    default_select: ClassVar[str] = "unit"
    _parameter_constraints = {
        "epochs": Real(0, MAX_REPEATS, optional=True),
        "momentum": Real(0, 1, closed="left"),
        "reselect": Integer(1, MAX_REPEATS),
        "select": Choice(SELECTIONS, optional=True),
        "homeostasis": Flag(),
    }

    def __init__(
        self,
        epochs: float = 5.0,
        momentum: float = 0.9,
        reselect: int = 1,
        select: str | None = None,
        homeostasis: bool = True,
    ) -> None:
        self.epochs = epochs
        self.momentum = momentum
        self.reselect = reselect
        self.select = select
        self.homeostasis = homeostasis

    def setup(self, problem, rng, init_mask: Mask | None = None) -> None:
        if problem.w_train is not None:
            raise PrunetrainError(
                f"method {self.name!r} does not take sample weights (its scores are unweighted "
                "batch averages); use a local or evolutionary method"
            )
        super().setup(problem, rng, init_mask)
        self._select = self.select if self.select is not None else self.default_select
        net = problem.network
        self.weights = [w.astype(np.float64) for w in net.weights]  # the drives of homeostasis
        start = init_mask if init_mask is not None else problem.random_mask(rng)
        self.mask = [np.array(m, dtype=bool) for m in start]
        self.counts = problem.rule.layer_split(problem.shapes)
        self.scores = [np.zeros(w.shape) for w in self.weights]
        self.input_means = [np.zeros(w.shape[0]) for w in self.weights]
        self.updates = 0
        self.samples_seen = 0
        self.last_loss = np.inf

    def _fold(self, running: np.ndarray, value: np.ndarray) -> np.ndarray:
        """One step of the exponential moving average."""
        m = float(self.momentum)
        return m * running + (1 - m) * value

    def _corrected(self, running: np.ndarray) -> np.ndarray:
        """A running average bias-corrected (as in Adam), comparable from the first batch."""
        return running / (1 - float(self.momentum) ** max(self.updates, 1))

    def average(self, layer: int, stat: np.ndarray) -> None:
        """Fold one batch's statistic into layer ``layer``'s running average."""
        self.scores[layer] = self._fold(self.scores[layer], stat)

    def averaged(self, layer: int) -> np.ndarray:
        """Layer ``layer``'s bias-corrected running average of its statistic."""
        return self._corrected(self.scores[layer])

    def selection_scores(self, layer: int) -> np.ndarray:
        return self.averaged(layer)

    def reselect_mask(self) -> None:
        per_unit = self._select == "unit"
        mask = []
        for layer, count in enumerate(self.counts):
            scores = self.selection_scores(layer)
            if per_unit and self.homeostasis:
                x_mean = self._corrected(self.input_means[layer])
                drive = self.weights[layer] * x_mean[:, None]
                mask.append(balanced_top(scores, drive, count))
            else:
                mask.append(select_top(scores, count, per_unit))
        self.mask = mask

    def step(self) -> None:
        problem = self.problem
        batch = problem.next_batch()
        hpass = self.forward(batch.X, batch.y)
        self.update(hpass)
        self.updates += 1
        self.samples_seen += hpass.batch_size
        if self.updates % int(self.reselect) == 0:
            self.reselect_mask()
        if self.epochs is not None and self.samples_seen >= self.epochs * problem.n_train:
            self.finished = True

    def forward(self, X, y) -> HebbianPass:
        """Forward the current mask on the batch ``(X, y)`` on the backend (charged as one evaluation).

        Remembers its loss and, for homeostasis, folds in each layer's mean input.
        """
        hpass = self.problem.backend.hebbian_pass(self.mask, X, y)
        self.problem.charge_forward(hpass.batch_size)
        if self.homeostasis:  # the mean inputs only serve the set point
            for layer, x_mean in enumerate(hpass.input_means):
                self.input_means[layer] = self._fold(self.input_means[layer], x_mean)
        self.last_loss = hpass.loss
        return hpass

    def update(self, hpass: HebbianPass) -> None:  # pragma: no cover - abstract
        """Fold this batch's statistics (of the forward pass ``hpass``) into the scores."""
        raise NotImplementedError

    def recommend(self) -> tuple[Mask, float]:
        return self.mask, self.last_loss


class LabelReadout:
    """The label rule for the readout, shared by ``hebbian`` and ``hebbian-label``."""

    def readout_stat(self, hpass: HebbianPass) -> np.ndarray:
        return self.problem.backend.hebbian_label(hpass, len(self.weights) - 1)


@register
class HebbianSearcher(LabelReadout, HebbianBase):
    """Competitive activity correlation for hidden layers, the label rule for the readout.

    Parameters
    ----------
    competition : {"wta", "none"}
        ``"wta"``: k-winners-take-all post-synaptic activity with centred
        inputs; ``"none"``: plain ``sign(w) E[x a]`` correlation.
    winners : float
        Fraction of a layer's units that win on each sample (``"wta"``).
    epochs, momentum, reselect, select, homeostasis : see :class:`HebbianBase`.
    """

    name = "hebbian"
    summary = "competitive Hebbian correlation (k-WTA) for hidden layers, label rule readout"
    _parameter_constraints = {
        "competition": Choice(COMPETITIONS),
        "winners": Real(0, 1),
        **HebbianBase._parameter_constraints,
    }

    def __init__(
        self,
        competition: str = "wta",
        winners: float = 0.1,
        epochs: float = 5.0,
        momentum: float = 0.9,
        reselect: int = 1,
        select: str | None = None,
        homeostasis: bool = True,
    ) -> None:
        super().__init__(epochs, momentum, reselect, select, homeostasis)
        self.competition = competition
        self.winners = winners

    def update(self, hpass: HebbianPass) -> None:
        backend = self.problem.backend
        last = len(self.weights) - 1
        for layer in range(last):
            n_units = self.weights[layer].shape[1]
            k = None if self.competition == "none" else max(1, round(self.winners * n_units))
            self.average(layer, backend.hebbian_competitive(hpass, layer, k))
        self.average(last, self.readout_stat(hpass))


@register
class HebbianLabelSearcher(LabelReadout, HebbianBase):
    """The label as the post-synaptic teacher: readout directly, hidden layers by random projection.

    Hidden layer ``l`` gets a fixed random ±1 matrix ``R_l`` (classes × units)
    drawn from the searcher's seed; its units are taught ``(t - t̄) R_l``.

    Parameters
    ----------
    hidden : {"projection", "fixed"}
        ``"projection"``: hidden layers learn from the projected label;
        ``"fixed"``: hidden layers keep their starting mask (only the readout learns).
    epochs, momentum, reselect, select, homeostasis : see :class:`HebbianBase`.
    """

    name = "hebbian-label"
    summary = "label-driven Hebbian rule (readout; hidden layers by random label projection)"
    _parameter_constraints = {
        "hidden": Choice(("projection", "fixed")),
        **HebbianBase._parameter_constraints,
    }

    def __init__(
        self,
        hidden: str = "projection",
        epochs: float = 5.0,
        momentum: float = 0.9,
        reselect: int = 1,
        select: str | None = None,
        homeostasis: bool = True,
    ) -> None:
        super().__init__(epochs, momentum, reselect, select, homeostasis)
        self.hidden = hidden

    def setup(self, problem, rng, init_mask=None) -> None:
        super().setup(problem, rng, init_mask)
        n_out = self.weights[-1].shape[1]
        self.projections = [
            rng.choice(np.array([-1.0, 1.0]), size=(n_out, w.shape[1])) for w in self.weights[:-1]
        ]
        self.fixed = [m.copy() for m in self.mask]

    def update(self, hpass: HebbianPass) -> None:
        if self.hidden == "projection":
            for layer, R in enumerate(self.projections):
                self.average(layer, self.problem.backend.hebbian_label(hpass, layer, R))
        self.average(len(self.weights) - 1, self.readout_stat(hpass))

    def reselect_mask(self) -> None:
        super().reselect_mask()
        if self.hidden == "fixed":
            self.mask[:-1] = [m.copy() for m in self.fixed[:-1]]


@register
class HebbianRewardSearcher(HebbianBase):
    """Three-factor rule: eligibility ``x_i w_ij ξ_j`` credited by a perturbation's reward.

    Scores start as uniform noise in [0, 1) above which the starting mask's
    kept weights are lifted by 1 (so the first selection is the starting
    mask) and then accumulate normalised updates, as edge-popup accumulates
    gradients, but each update comes from two forward passes with the layer's
    pre-activations perturbed by ``±ξ``.

    Parameters
    ----------
    lr : float
        Size of one update relative to the scores' starting spread.
    noise : float
        ``σ_l`` as a fraction of the standard deviation of layer ``l``'s
        pre-activations on the batch.
    epochs, reselect, select : see :class:`HebbianBase` (``momentum`` is
        unused: scores are sums, not averages).
    """

    name = "hebbian-reward"
    summary = "three-factor rule: pre × weight × perturbation, modulated by the reward change"
    default_select = "layer"
    _parameter_constraints = {
        "lr": Real(0, MAX_SCALE),
        "noise": Real(0, MAX_SCALE),
        **{
            name: HebbianBase._parameter_constraints[name]
            for name in ("epochs", "reselect", "select")
        },
    }

    def __init__(
        self,
        lr: float = 0.05,
        noise: float = 0.1,
        epochs: float | None = None,
        reselect: int = 1,
        select: str | None = None,
    ) -> None:
        super().__init__(epochs, 0.0, reselect, select, homeostasis=False)
        self.lr = lr
        self.noise = noise

    def setup(self, problem, rng, init_mask=None) -> None:
        super().setup(problem, rng, init_mask)
        self.scores = [rng.random(m.shape) + m for m in self.mask]

    def selection_scores(self, layer: int) -> np.ndarray:
        return self.scores[layer]

    def update(self, hpass: HebbianPass) -> None:
        B = hpass.batch_size
        for layer, std in enumerate(hpass.pre_stds):
            sigma = float(self.noise) * (std or 1.0)
            xi = self.rng.standard_normal((B, self.weights[layer].shape[1])) * sigma
            delta = self.problem.backend.hebbian_reward(hpass, layer, xi, sigma)
            rms = float(np.sqrt(np.mean(delta**2))) or 1.0
            self.scores[layer] += float(self.lr) * delta / rms
            self.problem.charge_forward(B, from_layer=layer, passes=2)  # the ± pushes
