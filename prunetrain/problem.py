"""The search problem: a frozen network, training data, a keep rule, a batch schedule, a budget.

A :class:`Problem` is all a searcher sees. It holds the training and
validation splits on the backend's device (never the test split), hands out
batches, evaluates populations of masks, counts what that costs and how much
of the run's budget it has used. A :class:`FlipSession` (from
:meth:`Problem.flip_session`) is one mask's caches on one batch for exact flip
gains, charging the problem for each use.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from prunetrain.backends import Backend, make_backend
from prunetrain.backends.flips import FlipState, flip_cost
from prunetrain.backends.screen import screen_cost
from prunetrain.errors import PrunetrainError
from prunetrain.masks import KeepRule, Mask, MaskPopulation, check_mask, random_mask
from prunetrain.network import FrozenNetwork

if TYPE_CHECKING:
    from prunetrain.data import Dataset

_BUDGET_RE = re.compile(r"^\s*(\d+(?:\.\d*)?(?:e\d+)?)\s*(s|sec|m|min|h|evals?)\s*$", re.IGNORECASE)
_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
#: The largest budgets: a year of wall time, 10**15 evaluations (exact as float64 counts).
MAX_SECONDS = 365 * 24 * 3600.0
MAX_EVALUATIONS = 10**15


@dataclasses.dataclass(frozen=True)
class Budget:
    """How long a search may run: wall-clock seconds or a count of mask evaluations.

    A count of evaluations makes a search reproducible (the same seed gives
    the same ticket); wall time does not, but the evaluations it used are
    recorded, and rerunning with that count reproduces the ticket.

    Examples
    --------
    >>> Budget.parse("10m")
    Budget(seconds=600.0, evaluations=None)
    >>> Budget.parse("20000evals")
    Budget(seconds=None, evaluations=20000)
    >>> Budget.parse(2.5)
    Budget(seconds=2.5, evaluations=None)
    """

    seconds: float | None = None
    evaluations: int | None = None

    def __post_init__(self) -> None:
        if (self.seconds is None) == (self.evaluations is None):
            raise PrunetrainError("a budget is either seconds or evaluations, not both or neither")
        if self.seconds is not None:
            if not 0 < self.seconds <= MAX_SECONDS:  # NaN and infinity fail too
                raise PrunetrainError(
                    f"a time budget must be positive and finite, at most {MAX_SECONDS:g} s "
                    f"(a year), got {self.seconds}"
                )
        elif (
            isinstance(self.evaluations, bool)
            or not isinstance(self.evaluations, (int, np.integer))
            or not 1 <= self.evaluations <= MAX_EVALUATIONS
        ):
            raise PrunetrainError(
                f"an evaluation budget must be a whole number from 1 to at most "
                f"{MAX_EVALUATIONS:.0e}, got {self.evaluations!r}"
            )

    @classmethod
    def parse(cls, value: str | float | int | Budget) -> Budget:
        """Read ``"30s"``, ``"10m"``, ``"1h"``, ``"20000evals"``, or a number of seconds."""
        if isinstance(value, Budget):
            return value
        if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
            return cls(seconds=float(value))
        match = _BUDGET_RE.match(str(value))
        if not match:
            raise PrunetrainError(
                f"bad budget {value!r}: expected a wall time such as 30s, 10m, 1h "
                "or an evaluation count such as 20000evals"
            )
        number, unit = float(match.group(1)), match.group(2).lower()
        if not math.isfinite(number):
            raise PrunetrainError(f"bad budget {value!r}: the number must be finite")
        if unit.startswith("eval"):
            if number != int(number):
                raise PrunetrainError(f"bad budget {value!r}: evaluations must be a whole number")
            if number > MAX_EVALUATIONS:
                raise PrunetrainError(
                    f"bad budget {value!r}: at most {MAX_EVALUATIONS:.0e} evaluations"
                )
            return cls(evaluations=int(number))
        return cls(seconds=number * _SECONDS[unit])

    def __str__(self) -> str:
        if self.evaluations is not None:
            return f"{self.evaluations}evals"
        return f"{self.seconds:g}s"

    def fraction_used(self, evaluations: float, seconds: float) -> float:
        """How much of the budget ``evaluations`` and ``seconds`` have used, in [0, 1]."""
        used = evaluations / self.evaluations if self.evaluations else seconds / self.seconds
        return min(1.0, used)


SCHEDULES = ("rotate", "fixed", "full")


@dataclasses.dataclass
class Batch:
    """One training batch on the backend's device."""

    X: object
    y: object
    index: np.ndarray  # rows of the training split
    number: int  # 0, 1, 2, ... in the order batches were handed out
    w: object = None  # sample weights (mean 1 over the training split) or None

    def __len__(self) -> int:
        return len(self.index)


class Problem:
    """Network + training data + keep rule + batch schedule + backend + cost counters + budget.

    Parameters
    ----------
    network : FrozenNetwork
        The frozen network whose mask is searched.
    data : Dataset
        Only its training and validation splits are used; the test split is
        never copied into the problem, so no searcher can select on it.
    rule : KeepRule
        How many weights a mask keeps.
    backend : str or Backend
        ``"numpy"``, ``"numba"``, ``"cupy"``, ``"auto"``, or a backend instance.
    batch_size : int or None
        Samples per batch; ``None`` (or a size >= the training set) uses the
        whole training set.
    schedule : {"rotate", "fixed", "full"}
        ``"rotate"``: shuffled minibatches, a new one at each
        :meth:`next_batch`, reshuffled every epoch; ``"fixed"``: one random
        subset of ``batch_size`` samples, always; ``"full"``: the whole set.
    seed : int
        Seed of the batch order.
    sample_weight : (array, array), optional
        Weights of the training and of the validation samples (non-negative,
        not all zero). The objective becomes the weighted mean cross-entropy:
        each split's weights are scaled to mean 1 and every loss and accuracy
        is the mean of ``w · value`` over its batch (exact on a whole split,
        an unbiased estimate on a minibatch).

    Attributes
    ----------
    n_evaluations : float
        Mask evaluations charged so far (full forward passes of one mask on
        one batch; exact incremental evaluations may charge fractions).
    n_sample_forwards : float
        Samples forwarded through one mask, summed over evaluations.
    n_validations : int
        Masks evaluated on the validation split (not charged to the budget).
    budget : Budget or None
        The budget of the run in progress (:meth:`start`); ``None`` before one
        starts, when :meth:`budget_used` is 0.
    """

    def __init__(
        self,
        network: FrozenNetwork,
        data: Dataset,
        rule: KeepRule | None = None,
        backend: str | Backend = "auto",
        batch_size: int | None = 1024,
        schedule: str = "rotate",
        seed: int = 0,
        sample_weight: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.network = network
        self.rule = rule if rule is not None else KeepRule(network.spec.keep)
        self.rule.check_shapes(network.shapes)  # a keep that leaves a layer without a weight
        if data.n_features != network.spec.layer_sizes[0]:
            raise PrunetrainError(
                f"the data has {data.n_features} features but the network's input "
                f"size is {network.spec.layer_sizes[0]} (arch {network.spec.arch})"
            )
        if data.n_classes > network.spec.layer_sizes[-1]:
            raise PrunetrainError(
                f"the data has {data.n_classes} classes but the network has "
                f"{network.spec.layer_sizes[-1]} outputs (arch {network.spec.arch})"
            )
        if schedule not in SCHEDULES:
            raise PrunetrainError(
                f"unknown batch schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}"
            )
        n = len(data.y_train)
        if batch_size is not None and int(batch_size) < 1:
            raise PrunetrainError(f"batch size must be >= 1, got {batch_size}")
        if batch_size is None or int(batch_size) >= n or schedule == "full":
            batch_size, schedule = n, "full"
        self.batch_size = int(batch_size)
        self.schedule = schedule
        self.seed = seed
        self.backend = backend if isinstance(backend, Backend) else make_backend(backend, network)
        b = self.backend
        self.X_train, self.y_train = b.asarray(data.X_train), b.aslabels(data.y_train)
        self.X_val, self.y_val = b.asarray(data.X_val), b.aslabels(data.y_val)
        self.n_train, self.n_val = n, len(data.y_val)
        self.w_train = self.w_val = None
        if sample_weight is not None:
            w_train, w_val = (
                _mean_one(w, len(y), split)
                for w, y, split in zip(sample_weight, (data.y_train, data.y_val), ("train", "val"))
            )
            self.w_train = b.asweights(w_train)
            self.w_val = None if w_val is None else b.asweights(w_val)
        self._batch_rng = np.random.default_rng([seed, 0xBA7C])
        self._order = np.arange(n)
        self._position = 0
        self._batches_handed = 0
        self.n_evaluations = 0.0
        self.n_sample_forwards = 0.0
        self.n_validations = 0
        self.budget: Budget | None = None
        self._counted_from = (0.0, 0.0)  # the counters when the run began
        self._seconds_before = 0.0  # seconds the run used before this process took over
        self._clock: Callable[[], float] = time.perf_counter
        self._clock_start: float | None = None
        self._batch = self._make_batch(self._first_index())

    # --- batches -----------------------------------------------------------------
    def _first_index(self) -> np.ndarray:
        if self.schedule == "full":
            return np.arange(self.n_train)
        if self.schedule == "fixed":
            return np.sort(self._batch_rng.choice(self.n_train, self.batch_size, replace=False))
        return self._next_rotating_index()

    def _next_rotating_index(self) -> np.ndarray:
        if self._position + self.batch_size > self.n_train or self._batches_handed == 0:
            self._order = self._batch_rng.permutation(self.n_train)
            self._position = 0
        index = self._order[self._position : self._position + self.batch_size]
        self._position += self.batch_size
        return index

    def _make_batch(self, index: np.ndarray) -> Batch:
        b = self.backend
        batch = Batch(
            b.take(self.X_train, index),
            b.take(self.y_train, index),
            index,
            self._batches_handed,
            None if self.w_train is None else b.take(self.w_train, index),
        )
        self._batches_handed += 1
        return batch

    @property
    def batch(self) -> Batch:
        """The current training batch."""
        return self._batch

    def next_batch(self) -> Batch:
        """Advance the schedule and return the new current batch.

        Under the ``"fixed"`` and ``"full"`` schedules the batch never changes.
        """
        if self.schedule == "rotate":
            self._batch = self._make_batch(self._next_rotating_index())
        return self._batch

    # --- checkpoints ----------------------------------------------------------------
    def get_state(self) -> dict:
        """The batch order, cost counters and the run's usage, to continue exactly (a checkpoint)."""
        return {
            "batch_rng": self._batch_rng.bit_generator.state,
            "order": self._order.copy(),
            "position": self._position,
            "batches_handed": self._batches_handed,
            "batch_index": np.asarray(self._batch.index).copy(),
            "batch_number": self._batch.number,
            "n_evaluations": self.n_evaluations,
            "n_sample_forwards": self.n_sample_forwards,
            "n_validations": self.n_validations,
            "counted_from": self._counted_from,
            "seconds": self.seconds_used(),
        }

    def set_state(self, state: dict) -> None:
        """Continue from :meth:`get_state` of a problem with the same network, data and schedule.

        The run continues too: its evaluations count from where the checkpointed
        run's began, its seconds from those it had used (plus the clock since
        :meth:`start`).
        """
        _check_state(state, self.n_train)
        index = np.asarray(state["batch_index"], dtype=np.int64)
        if index.ndim != 1 or (len(index) and not 0 <= index.min() <= index.max() < self.n_train):
            raise PrunetrainError("the checkpoint's batch does not fit this training set")
        try:
            self._batch_rng.bit_generator.state = state["batch_rng"]
        except (TypeError, ValueError, KeyError, OverflowError):
            raise PrunetrainError("the checkpoint's batch order generator is damaged") from None
        self._order = np.asarray(state["order"], dtype=np.int64)
        self._position = int(state["position"])
        self._batches_handed = int(state["batches_handed"])
        b = self.backend
        self._batch = Batch(
            b.take(self.X_train, index), b.take(self.y_train, index), index, state["batch_number"]
        )
        self.n_evaluations = state["n_evaluations"]
        self.n_sample_forwards = state["n_sample_forwards"]
        self.n_validations = state["n_validations"]
        self._counted_from = tuple(state["counted_from"])
        self._seconds_before = state["seconds"]

    # --- the budget -----------------------------------------------------------------
    def start(self, budget: Budget, clock: Callable[[], float] = time.perf_counter) -> None:
        """Start a run under ``budget``: its evaluations and seconds count from now.

        ``budget`` was parsed where it entered (:class:`~prunetrain.options.SearchOptions`,
        or :meth:`Budget.parse` for a caller with a text in hand), and is not parsed again.
        ``clock`` gives the time in seconds (the run loop's: ``time.perf_counter``).
        """
        if not isinstance(budget, Budget):
            raise PrunetrainError(
                f"a problem starts under a Budget, got {budget!r}: read a text such as "
                "'20000evals' with Budget.parse"
            )
        self.budget = budget
        self._counted_from = (self.n_evaluations, self.n_sample_forwards)
        self._seconds_before = 0.0
        self._clock = clock
        self._clock_start = clock()

    def evaluations_used(self) -> float:
        """Evaluations charged since the run started."""
        return self.n_evaluations - self._counted_from[0]

    def sample_forwards_used(self) -> float:
        """Sample-forwards charged since the run started."""
        return self.n_sample_forwards - self._counted_from[1]

    def seconds_used(self) -> float:
        """Seconds of the run so far (with those of the run it continues, if resumed)."""
        if self._clock_start is None:
            return self._seconds_before
        return self._seconds_before + self._clock() - self._clock_start

    def budget_used(self) -> float:
        """Fraction of the run's budget spent so far, in [0, 1] (0 before a run starts)."""
        if self.budget is None:
            return 0.0
        return self.budget.fraction_used(self.evaluations_used(), self.seconds_used())

    # --- evaluation -----------------------------------------------------------------
    @property
    def shapes(self) -> list[tuple[int, int]]:
        return self.network.shapes

    def random_mask(self, rng: np.random.Generator) -> Mask:
        """A random mask satisfying the keep rule."""
        return random_mask(self.shapes, self.rule, rng)

    def population(self, masks: Sequence[Mask]) -> MaskPopulation:
        """Pack ``masks`` into a population for :meth:`evaluate`."""
        return MaskPopulation.from_masks(masks, self.shapes)

    def evaluate(
        self, population: MaskPopulation | Sequence[Mask], batch: Batch | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Training loss and accuracy of every mask on ``batch`` (the current one by default).

        Charges ``len(population)`` evaluations to the budget.
        """
        if not isinstance(population, MaskPopulation):
            population = self.population(population)
        batch = self._batch if batch is None else batch
        loss, acc = self.backend.evaluate(population, batch.X, batch.y, batch.w)
        self.charge(len(population), len(population) * len(batch))
        return loss, acc

    def charge(self, evaluations: float, sample_forwards: float) -> None:
        """Add work done outside :meth:`evaluate` and flip sessions to the counters."""
        self.n_evaluations += evaluations
        self.n_sample_forwards += sample_forwards

    def charge_forward(self, n_samples: int, from_layer: int = 0, passes: int = 1) -> None:
        """Charge ``passes`` forward passes of one mask on ``n_samples`` samples from
        ``from_layer`` on (a partial pass costs its layers' share of the weights)."""
        shapes = self.shapes
        frac = passes * sum(a * b for a, b in shapes[from_layer:]) / sum(a * b for a, b in shapes)
        self.charge(frac, frac * n_samples)

    def flip_session(
        self, mask: Mask, batch: Batch | None = None, screen: float | None = None
    ) -> FlipSession:
        """Cache ``mask`` on ``batch`` (the current one) for exact flip gains; one evaluation.

        With ``screen`` (a probe size, see
        :meth:`~prunetrain.backends.base.Backend.flip_screen`) every weight is
        screened too, into :attr:`FlipSession.screened`; that costs
        :func:`~prunetrain.backends.screen.screen_cost` evaluations more.
        """
        batch = self._batch if batch is None else batch
        state = self.backend.flip_state(mask, batch.X, batch.y, batch.w)
        if screen is None:
            self.charge(1, len(batch))
            return FlipSession(self, state)
        screened = self.backend.flip_screen(state, screen)
        cost = 1.0 + screen_cost(self.shapes)
        self.charge(cost, cost * len(batch))
        return FlipSession(self, state, screened)

    def validate(self, mask: Mask) -> tuple[float, float]:
        """Validation loss and accuracy of one mask (not charged to the budget).

        With an empty validation split the whole training split stands in.
        """
        mask = check_mask(mask, self.shapes)
        if self.n_val:
            X, y, w = self.X_val, self.y_val, self.w_val
        else:
            X, y, w = self.X_train, self.y_train, self.w_train
        loss, acc = self.backend.evaluate(self.population([mask]), X, y, w)
        self.n_validations += 1
        return float(loss[0]), float(acc[0])


class FlipSession:
    """One mask's caches on one batch (:meth:`Problem.flip_session`): exact loss changes of
    flips, and flips made, each charged to the problem as it happens.

    A move flips ``(rows[k], cols[k])`` of a layer and, where a second row
    ``rows2`` is given, also ``(rows2[k], cols[k])`` (a swap inside one unit).
    Evaluating a move costs :func:`~prunetrain.backends.flips.flip_cost` of
    its layer, twice that for a swap; making flips costs a forward pass from
    their layer on.

    Attributes
    ----------
    state : FlipState
        The backend's caches (mask, activations, loss) on the batch.
    screened : list of ndarray or None
        The screen of every weight, if the session was made with one.
    """

    def __init__(
        self, problem: Problem, state: FlipState, screened: list[np.ndarray] | None = None
    ) -> None:
        self.problem = problem
        self.state = state
        self.screened = screened

    @property
    def loss(self) -> float:
        """The (weighted) mean loss of the session's mask on its batch."""
        return self.state.loss

    @property
    def mask(self) -> Mask:
        return self.state.mask

    def gains(self, layer: int, rows, cols, rows2=None) -> np.ndarray:
        """Exact loss change of every move; all are charged."""
        g = self.problem.backend.flip_gains(self.state, layer, rows, cols, rows2)
        self._charge_moves(layer, len(rows), rows2 is not None)
        return g

    def first_accepted(
        self, layer: int, rows, cols, rows2=None, *, accept: Callable[[np.ndarray], np.ndarray]
    ) -> tuple[np.ndarray, int | None]:
        """The moves tried in order until the first one ``accept`` takes.

        ``accept`` maps the gains to a boolean array (the moves it would take).
        Returns the gains and the index of the first accepted move (``None``
        if none is); only the moves up to it (all, if none) are charged.
        """
        g = self.problem.backend.flip_gains(self.state, layer, rows, cols, rows2)
        ok = np.flatnonzero(accept(g))
        self._charge_moves(layer, ok[0] + 1 if len(ok) else len(rows), rows2 is not None)
        return g, (int(ok[0]) if len(ok) else None)

    def apply(self, layer: int, rows, cols) -> None:
        """Flip the (distinct) weights ``(rows, cols)`` of ``layer`` and update the caches."""
        if len(rows) == 0:
            return
        self.problem.backend.apply_flips(self.state, layer, rows, cols)
        # Updating the caches costs a forward pass from this layer on.
        self.problem.charge_forward(self.state.batch_size, from_layer=layer)

    def _charge_moves(self, layer: int, n_moves, swaps: bool) -> None:
        cost = n_moves * (flip_cost(self.problem.shapes, layer) * (2 if swaps else 1))
        self.problem.charge(cost, cost * self.state.batch_size)


_STATE_KEYS = {
    "batch_rng",
    "order",
    "position",
    "batches_handed",
    "batch_index",
    "batch_number",
    "n_evaluations",
    "n_sample_forwards",
    "n_validations",
    "counted_from",
    "seconds",
}


def _check_state(state: object, n_train: int) -> None:
    """Raise unless ``state`` is a :meth:`Problem.get_state` of a problem of ``n_train`` rows."""

    def count(value: object, whole: bool = False) -> bool:
        if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)
        ):
            return False
        return math.isfinite(value) and value >= 0 and (not whole or value == int(value))

    if not isinstance(state, dict) or set(state) != _STATE_KEYS:
        raise PrunetrainError("the checkpoint's problem state has other entries")
    order, counted = state["order"], state["counted_from"]
    if not (
        isinstance(order, np.ndarray)
        and order.shape == (n_train,)
        and order.dtype.kind in "iu"
        and np.array_equal(np.sort(order), np.arange(n_train))
    ):
        raise PrunetrainError("the checkpoint's batch order is not an order of this training set")
    whole = ("position", "batches_handed", "batch_number", "n_validations")
    if not all(count(state[k], whole=True) for k in whole) or state["position"] > n_train:
        raise PrunetrainError("the checkpoint's batch counters are damaged")
    if not all(count(state[k]) for k in ("n_evaluations", "n_sample_forwards", "seconds")) or not (
        isinstance(counted, (tuple, list)) and len(counted) == 2 and all(map(count, counted))
    ):
        raise PrunetrainError("the checkpoint's cost counters are damaged")
    index = state["batch_index"]
    if not isinstance(index, np.ndarray) or index.dtype.kind not in "iu":
        raise PrunetrainError("the checkpoint's batch does not fit this training set")


def _mean_one(w, n: int, split: str) -> np.ndarray | None:
    """Sample weights of one split checked and scaled to mean 1 (None for an empty split)."""
    w = np.asarray(w, dtype=np.float64)
    if w.shape != (n,):
        raise PrunetrainError(f"{split} sample weights have shape {w.shape}, expected ({n},)")
    if n == 0:
        return None
    if not np.isfinite(w).all() or (w < 0).any():
        raise PrunetrainError(f"{split} sample weights must be finite and non-negative")
    total = w.sum()
    if total <= 0:
        raise PrunetrainError(f"{split} sample weights are all zero")
    return w * (n / total)
