"""The baseline interface, its registry by name, and what a baseline returns."""

from __future__ import annotations

import abc
import dataclasses
import math
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from prunetrain.hyperparams import Hyperparameters, build_named
from prunetrain.masks import KeepRule, Mask
from prunetrain.metrics import accuracy, cross_entropy
from prunetrain.network import FrozenNetwork
from prunetrain.objective import Budget

if TYPE_CHECKING:
    from prunetrain.data import Dataset


@dataclasses.dataclass
class BaselineResult:
    """What a baseline returns.

    Attributes
    ----------
    mask : list of ndarray or None
        A mask over the frozen network (a ticket), for baselines that prune it.
    weights, biases : list of ndarray or None
        Trained weights (and biases), for baselines that train them; the
        network they define is not the frozen one.
    history : list of dict
        One row per epoch (row 0 before training): ``epoch``, ``evaluations``
        (gradient steps so far), ``sample_forwards``, ``seconds`` (training
        time, evaluation excluded), ``train_loss`` (mean over the epoch's
        batches), ``val_loss``, ``val_accuracy``, ``best_val_accuracy``,
        ``test_accuracy``. The test split is only recorded, never used to choose.
    seconds : float
        Training (or pruning) time.
    steps, sample_forwards : int
        Gradient steps and training samples forwarded.
    epochs : float
        Epochs trained (all rounds of ``imp`` counted).
    stopped_by : str
        ``"epochs"``, ``"budget"`` or ``"finished"`` (data-free pruning).
    note : str
        What the result is, in one or two sentences, for ``result.json``.
    logits : callable, optional
        ``logits(X)`` of the trained model when it is not ``weights``/``biases``
        through the frozen architecture.
    """

    mask: Mask | None
    weights: list[np.ndarray] | None
    biases: list[np.ndarray] | None
    history: list[dict]
    seconds: float
    steps: int
    sample_forwards: int
    epochs: float
    stopped_by: str
    note: str
    logits: Callable[[np.ndarray], np.ndarray] | None = None


class Baseline(Hyperparameters, abc.ABC):
    """A reference method to compare the searches against.

    As with searchers, the constructor takes only hyperparameters (keyword
    arguments with defaults, stored under the same names); :meth:`fit` does
    the work on the same frozen network and data splits a search would get.
    """

    name: ClassVar[str]
    #: One line for ``prunetrain baseline --help`` and the docs.
    summary: ClassVar[str] = ""
    #: ``"ticket"`` (a mask over the frozen network) or ``"weights"`` (trained weights).
    produces: ClassVar[str] = "ticket"
    #: Whether it trains with gradients on the data (else data-free pruning at init).
    trains: ClassVar[bool] = True

    def check(self) -> None:
        """Raise :class:`PrunetrainError` if a hyperparameter is out of range (``fit`` calls it)."""
        return None  # a baseline without hyperparameters has nothing to check

    @abc.abstractmethod
    def fit(
        self,
        network: FrozenNetwork,
        data: Dataset,
        rule: KeepRule,
        *,
        seed: int = 0,
        budget: Budget | None = None,
        progress: bool = False,
    ) -> BaselineResult:
        """Run the baseline on ``network`` and the training split of ``data``."""


BASELINES: dict[str, type[Baseline]] = {}


def register(cls: type[Baseline]) -> type[Baseline]:
    """Class decorator: make a baseline available by its ``name``."""
    if cls.name in BASELINES:
        raise RuntimeError(f"two baselines are named {cls.name!r}")
    BASELINES[cls.name] = cls
    return cls


def make_baseline(name: str, **params) -> Baseline:
    """The baseline registered as ``name``, built with ``params``."""
    return build_named(BASELINES, "baseline", name, params)


# --- helpers shared by the trained baselines ------------------------------------------------


def budget_caps(budget: Budget | None) -> tuple[float | None, int | None]:
    """A budget as caps on a trained baseline: (seconds, gradient steps)."""
    if budget is None:
        return None, None
    return budget.seconds, budget.evaluations


class EpochLog:
    """Builds a baseline's history: validation and test metrics of a model at each epoch end."""

    def __init__(self, data: Dataset, progress: str | None = None) -> None:
        self.data = data
        self.progress = progress  # a label: print one line per epoch on stderr
        self.rows: list[dict] = []

    def add(
        self,
        logits: Callable[[np.ndarray], np.ndarray],
        epoch: int,
        train_loss: float,
        *,
        steps: int,
        sample_forwards: int,
        seconds: float,
    ) -> None:
        """Record the model ``logits`` after ``epoch`` epochs (``steps`` gradient steps)."""
        d = self.data
        val_loss = val_acc = None
        if len(d.y_val):
            z = logits(d.X_val)
            val_loss, val_acc = float(cross_entropy(z, d.y_val)), float(accuracy(z, d.y_val))
        test_acc = float(accuracy(logits(d.X_test), d.y_test)) if len(d.y_test) else None
        best = max(
            [r["val_accuracy"] for r in self.rows if r["val_accuracy"] is not None] or [-1.0]
        )
        self.rows.append(
            {
                "epoch": epoch,
                "evaluations": steps,
                "sample_forwards": sample_forwards,
                "seconds": seconds,
                "train_loss": None if math.isnan(train_loss) else train_loss,
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "best_val_accuracy": max(best, val_acc) if val_acc is not None else None,
                "test_accuracy": test_acc,
            }
        )
        if self.progress:
            row = self.rows[-1]

            def fmt(v):
                return "-" if v is None else f"{v:.4f}"

            print(
                f"{self.progress} epoch {epoch}: {seconds:.1f} s, train loss {fmt(row['train_loss'])}, "
                f"val acc {fmt(val_acc)}, test acc {fmt(test_acc)}",
                file=sys.stderr,
                flush=True,
            )
