"""Every weight a candidate on every batch: evidence from forward probes; on small data, exact checks.

Local search that samples candidate flips (``accumulate``, ``steepest``) can
afford a few hundred exact flip evaluations per batch, a sliver of a large
first layer. ``probe`` looks at every weight of every layer on every batch:

1. **Screen.** The backend's :meth:`~prunetrain.backends.base.Backend.flip_screen`
   pushes every unit's pre-activation a little, forwards the push to the loss
   (one-sided finite differences, batched into GEMMs), and turns the
   responses into a first-order loss change for flipping each weight — for
   about three forward passes (:mod:`prunetrain.backends.screen`).
2. **Evidence.** Each weight keeps a *score* ``s``: the keep rule's best mask
   for the scores (the top-``k`` per layer under ``"layer"``) is where the
   search is heading. A batch's screen gives each weight its estimated loss
   change per unit of mask ``u`` (``+gain`` for a pruned weight, ``-gain``
   for a kept one); it is averaged across batches with momentum,
   ``v ← μ·v + u + λ·s``, and integrated, ``s ← s - η_t·v``. A single batch
   moves a score by ``η_t·|v|``, small against the margins that decide a
   flip, so no one noisy batch decides anything; ``η_t`` follows a cosine
   from ``lr`` to zero over the budget, so the flip rate falls as the
   search converges.
3. **Flips.** Weights on the wrong side of the scores' threshold are
   *proposals*. Unconfirmed (``confirm=False``) every proposal is flipped:
   the mask is the keep rule's best mask for the scores after every batch,
   as edge-popup's is. Confirmed (``confirm=True``) each proposed flip is
   first evaluated exactly on the current batch
   (:meth:`~prunetrain.backends.base.Backend.flip_gains`, at most
   ``max_checks`` per layer, the clearest first) and only flips whose exact
   loss change is negative are made — as many switched on as off in each
   layer under ``"layer"`` (in the network under ``"global"``), the best of
   each side, so counts stay exact. A rejected proposal keeps its score and
   is tried again on later batches while its evidence holds.

   Which is better depends on the data (issue 29,
   ``experiments/results/probe_confirm/``). Confirmation caps a batch's flips
   at what about two forward passes can check (some 200 of Fashion-MNIST
   784-300-100-10's 235,200 first-layer weights), and a flip that helps the
   trajectory need not lower this batch's loss on its own, so on
   Fashion-MNIST's 54,000 training samples the mask lags its scores: there
   the unconfirmed search reaches a lower training loss and a higher
   validation accuracy for the same budget, and a step is a quarter cheaper.
   On digits' 1,293 samples, where twenty seconds are hundreds of epochs and
   the scores carry a strong weight decay, following the scores unchecked
   makes the last mask noisy, and confirmation wins on held-out folds. The
   default, ``confirm="auto"``, confirms below :data:`SMALL_TRAINING`
   training samples, between those two measured sizes.

Information used: loss differences of forward passes only (the probes'
finite differences and, with ``confirm``, the exact flip gains); no backward pass, no
derivative formula. The screen carries the same first-order information as
edge-popup's straight-through gradient, estimated by finite differences.
"""

from __future__ import annotations

import math

import numpy as np

from prunetrain.backends.flips import flip_cost
from prunetrain.backends.screen import PROBE
from prunetrain.hyperparams import MAX_COUNT, MAX_SCALE, Choice, Flag, Integer, Real
from prunetrain.masks import Mask
from prunetrain.search.base import Searcher, register

SCHEDULES = ("cosine", "constant")
SELECTIONS = ("auto", "best_val", "last")
#: Forward passes' worth of exact checks each layer may spend per batch, by default.
CHECK_WORK = 2.0
#: Velocities below this are flushed to zero now and then, so they never turn subnormal.
TINY = 1e-30
FLUSH_EVERY = 256
#: The default weight decay: this over the number of training samples, at most ``DECAY_MAX``.
#: 5e-4 at Fashion-MNIST's 54,000, 0.02 from 1,350 samples down (digits: 1,293).
DECAY_SAMPLES = 27.0
DECAY_MAX = 0.02
#: ``select="auto"`` returns the last mask below this many validation samples.
SMALL_VALIDATION = 1000
#: ``confirm="auto"`` confirms flips exactly below this many training samples: between
#: digits' 1,293 (where confirmation won) and Fashion-MNIST's 54,000 (where it lost).
SMALL_TRAINING = 10_000


@register
class ProbeSearcher(Searcher):
    """Scores of every weight from forward-probe screens; exact flip gains confirm each flip.

    Parameters
    ----------
    lr : float
        Initial step size of the scores (they start at ``±U(0, 0.5)/sqrt(fan_in)``,
        positive for kept weights).
    momentum : float
        Decay of the averaged evidence ``v``, in [0, 1).
    weight_decay : float, optional
        Pull of every score toward zero, ``λ`` (keeps scores near the threshold
        and able to move). By default ``min(27 / n_train, 0.02)``. The scores
        average per-sample evidence, so the pull that balances it grows as the
        training set shrinks, like an L2 prior against a mean loss: 5e-4 on
        Fashion-MNIST (54,000 training samples, where 5e-3 lost on validation),
        0.02 on digits (1,293, where it beat 5e-4 on held-out folds), and
        capped at 0.02, the largest value measured
        (``experiments/results/probe_tuning/``, ``probe_digits_cv/``). The value
        used is ``weight_decay_`` after setup.
    schedule : {"cosine", "constant"}
        Step size over the budget: a cosine from ``lr`` to zero, or constant.
    probe : float
        Probe size relative to each layer's rms pre-activation.
    confirm : bool or "auto"
        Flip only proposals whose exact loss change on the batch is negative
        (at most ``max_checks`` per layer and batch); ``False`` flips every
        proposal unchecked, so the mask follows the scores. ``"auto"``:
        confirm below :data:`SMALL_TRAINING` (10,000) training samples, where
        it won on held-out folds of digits, and not above, where it lost on
        Fashion-MNIST's validation split. The choice made is ``confirm_``
        after setup.
    max_checks : int, optional
        Most proposals per layer evaluated exactly (with ``confirm``) or flipped
        (without) per batch. By default, with ``confirm``, about two forward
        passes' worth per layer (all of a small layer); without, no cap.
    select : {"auto", "best_val", "last"}
        Which mask the run returns: the best on validation among all validated
        (the run loop's rule for every searcher), or the last, where the cosine
        schedule has settled. With a small validation split the best of several
        hundred validations is partly luck (on digits' 144 samples, one sample
        is 0.7 %): there ``"last"`` with weight decay 0.02 beat the best on
        validation with 5e-4 on held-out folds
        (``experiments/results/probe_digits_cv/``). ``"auto"``: ``"last"``
        below 1,000 validation samples, else ``"best_val"``. The choice made is
        ``select_`` after setup.
    """

    name = "probe"
    summary = "every weight screened on every batch by forward probes; the mask follows the scores"
    preferred_batch_size = 256
    _parameter_constraints = {
        "lr": Real(0, MAX_SCALE),
        "momentum": Real(0, 1, closed="left"),
        "weight_decay": Real(0, MAX_SCALE, closed="both", optional=True),
        "schedule": Choice(SCHEDULES),
        "probe": Real(0, 1),
        "confirm": Flag(auto=True),
        "max_checks": Integer(1, MAX_COUNT, optional=True),
        "select": Choice(SELECTIONS),
    }

    def __init__(
        self,
        lr: float = 0.2,
        momentum: float = 0.9,
        weight_decay: float | None = None,
        schedule: str = "cosine",
        probe: float = PROBE,
        confirm: bool | str = "auto",
        max_checks: int | None = None,
        select: str = "auto",
    ) -> None:
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.probe = probe
        self.confirm = confirm
        self.max_checks = max_checks
        self.select = select

    @property
    def returns_last(self) -> bool:
        return getattr(self, "select_", None) == "last"

    def setup(self, problem, rng, init_mask: Mask | None = None) -> None:
        super().setup(problem, rng, init_mask)
        shapes = problem.shapes
        self.weight_decay_ = (
            min(DECAY_SAMPLES / problem.n_train, DECAY_MAX)
            if self.weight_decay is None
            else float(self.weight_decay)
        )
        self.confirm_ = self.confirm
        if self.confirm == "auto":
            self.confirm_ = bool(problem.n_train < SMALL_TRAINING)
        self.select_ = self.select
        if self.select == "auto":
            self.select_ = "last" if problem.n_val < SMALL_VALIDATION else "best_val"
        self.mask = [
            np.array(m, dtype=bool)
            for m in (init_mask if init_mask is not None else problem.random_mask(rng))
        ]
        self.scores = [
            (np.where(m, 1.0, -1.0) * rng.uniform(0.0, 0.5, m.shape) / math.sqrt(m.shape[0]))
            .astype(np.float32)
            .ravel()
            for m in self.mask
        ]
        self.velocity = [np.zeros_like(s) for s in self.scores]
        self.flip_costs = [flip_cost(shapes, layer) for layer in range(len(shapes))]
        self.checks = [
            min(a * b, self._default_checks(c) if self.max_checks is None else int(self.max_checks))
            for (a, b), c in zip(shapes, self.flip_costs)
        ]
        self.steps = 0
        self.loss = np.inf
        #: Per layer, over the whole search: proposals (counted each batch they stand),
        #: proposals evaluated exactly, and flips made.
        self.n_proposed = [0] * len(shapes)
        self.n_checked = [0] * len(shapes)
        self.n_flipped = [0] * len(shapes)

    def _default_checks(self, flip_cost: float) -> int:
        """Proposals per layer and batch without ``max_checks``: ``CHECK_WORK`` passes of checks, or all."""
        return math.ceil(CHECK_WORK / flip_cost) if self.confirm_ else MAX_COUNT

    def step_size(self) -> float:
        """``η_t``: ``lr`` times the schedule at the budget used so far."""
        if self.schedule == "constant":
            return float(self.lr)
        return float(self.lr) * 0.5 * (1.0 + math.cos(math.pi * self.budget_used()))

    def step(self) -> None:
        problem = self.problem
        batch = problem.next_batch()
        session = problem.flip_session(self.mask, batch, screen=float(self.probe))
        self.loss = session.loss
        self._update_scores(session.screened)
        self.last_flips = self._confirm(session, self._proposals())
        for layer, (flat_index, _) in enumerate(self.last_flips):
            flat = self.mask[layer].reshape(-1)
            flat[flat_index] = ~flat[flat_index]
            self.n_flipped[layer] += len(flat_index)
        self.steps += 1

    def _update_scores(self, screen) -> None:
        eta = np.float32(self.step_size())
        mu, decay = np.float32(self.momentum), np.float32(self.weight_decay_)
        flush = self.steps % FLUSH_EVERY == FLUSH_EVERY - 1
        for m, gain, s, v in zip(self.mask, screen, self.scores, self.velocity):
            # Loss change per unit of mask: a pruned weight's gain, a kept one's with its sign turned.
            u = np.where(m.reshape(-1), -gain.reshape(-1), gain.reshape(-1))
            v *= mu
            v += u
            v += decay * s
            if flush:
                v[np.abs(v) < TINY] = 0.0
            s -= eta * v

    def _proposals(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per layer: flat indices to switch off and on to reach the scores' best mask, clearest first."""
        masks = [m.reshape(-1) for m in self.mask]
        # Counted segments keep the counts they have now; uncounted ones ("free") keep s > 0.
        wants = self.problem.rule.keep_top(self.scores, like=masks)
        out = []
        for m, want, s in zip(masks, wants, self.scores):
            off = np.flatnonzero(m & ~want)
            on = np.flatnonzero(~m & want)
            off = off[np.argsort(s[off], kind="stable")]
            on = on[np.argsort(-s[on], kind="stable")]
            out.append((off, on))
        return out

    def _confirm(self, session, proposals) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per layer, the flips to make now and their exact gains on the batch.

        Exactly confirmed proposals (gain < 0), balanced as the keep rule needs;
        without ``confirm`` every proposal up to ``max_checks``, gains NaN.
        """
        checked = []
        for layer, (off, on) in enumerate(proposals):
            self.n_proposed[layer] += len(off) + len(on)
            cap = self.checks[layer]
            off, on = off[:cap], on[:cap]
            both = np.concatenate([off, on])
            if self.confirm_ and len(both):
                g = session.gains(layer, *np.divmod(both, self.mask[layer].shape[1]))
                self.n_checked[layer] += len(both)
            else:
                g = np.full(len(both), np.nan if len(both) else 0.0)
            checked.append((off, g[: len(off)], on, g[len(off) :]))
        pairs = [None] * len(checked)
        for layers, count in self.problem.rule.layer_segments(self.problem.shapes):
            group = [checked[layer] for layer in layers]
            if count is None:
                done = [
                    _confirmed(off, g_off) + _confirmed(on, g_on) for off, g_off, on, g_on in group
                ]
            else:
                done = _best_pairs(group)
            pairs[layers.start : layers.stop] = done
        return [(np.concatenate([a, c]), np.concatenate([b, d])) for a, b, c, d in pairs]

    def recommend(self) -> tuple[Mask, float]:
        return self.mask, self.loss


def _confirmed(index: np.ndarray, gains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The moves whose exact gain is negative (all of them when unchecked, NaN), best first."""
    good = np.flatnonzero(~(gains >= 0))
    good = good[np.argsort(gains[good], kind="stable")]
    return index[good], gains[good]


def _best_pairs(checked):
    """As many confirmed flips off as on over the layers of ``checked``, the best of each side.

    ``checked`` holds one segment's layers, so the segment keeps its count.
    """

    def side(index, gains):
        layers = np.concatenate([np.full(len(i), layer) for layer, i in enumerate(index)])
        index, gains = np.concatenate(index), np.concatenate(gains)
        order = np.flatnonzero(~(gains >= 0))
        order = order[np.argsort(gains[order], kind="stable")]
        return layers[order], index[order], gains[order]

    l_off, i_off, g_off = side([c[0] for c in checked], [c[1] for c in checked])
    l_on, i_on, g_on = side([c[2] for c in checked], [c[3] for c in checked])
    n = min(len(g_off), len(g_on))
    l_off, i_off, g_off, l_on, i_on, g_on = (a[:n] for a in (l_off, i_off, g_off, l_on, i_on, g_on))
    return [
        (i_off[l_off == k], g_off[l_off == k], i_on[l_on == k], g_on[l_on == k])
        for k in range(len(checked))
    ]
