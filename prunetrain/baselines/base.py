"""The baseline interface, its registry by name, and what a baseline returns."""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from prunetrain.baselines.recipes import with_recipe
from prunetrain.errors import PrunetrainError
from prunetrain.hyperparams import Hyperparameters, build_named, registrar
from prunetrain.masks import KeepRule, Mask
from prunetrain.metrics import accuracy, cross_entropy
from prunetrain.network import FrozenNetwork
from prunetrain.problem import Budget
from prunetrain.progress import Progress

if TYPE_CHECKING:
    from prunetrain.data import Dataset


@dataclasses.dataclass(kw_only=True)
class BaselineResult:
    """What a baseline returns (built by keyword; ``mask`` or ``weights`` is left ``None``).

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
        ``best_val_accuracy``. Training never touches the test split: the
        final model is scored on it once, after training (and ``compare``
        scores the ``snapshots`` on it afterwards for its curves).
        Rows go on after the best epoch in convergence mode (``patience``):
        they are the epochs that found no better model.
    seconds : float
        Training (or pruning) time.
    steps, sample_forwards : int
        Gradient steps and training samples forwarded.
    epochs : float
        Epochs trained (all rounds of ``imp`` counted).
    stopped_by : str
        ``"epochs"``, ``"budget"``, ``"converged"`` (``patience`` epochs without a
        better validation accuracy) or ``"finished"`` (data-free pruning).
    best_epoch : int or None
        In convergence mode (``patience``), the epoch whose model is returned: the
        one of best validation accuracy (the first of equals). ``None`` otherwise,
        where the model of the last epoch is returned.
    note : str
        What the result is, in one or two sentences, for ``result.json``.
    logits : callable, optional
        ``logits(X)`` of the trained model when it is not ``weights``/``biases``
        through the frozen architecture.
    snapshots : list of callable, optional
        ``logits(X)`` of the model the run would return had it stopped at each
        history row (that row's model; in convergence mode the best so far),
        kept (not saved) so that a caller can score the rows on held-out data
        after training.
    """

    mask: Mask | None = None
    weights: list[np.ndarray] | None = None
    biases: list[np.ndarray] | None = None
    history: list[dict]
    seconds: float
    steps: int
    sample_forwards: int
    epochs: float
    stopped_by: str
    note: str
    best_epoch: int | None = None
    logits: Callable[[np.ndarray], np.ndarray] | None = None
    snapshots: list[Callable[[np.ndarray], np.ndarray]] | None = None


class Baseline(Hyperparameters, abc.ABC):
    """A reference method to compare the searches against.

    As with searchers, the constructor takes only hyperparameters (keyword
    arguments with defaults, stored under the same names), whose types and
    ranges the class declares in ``_parameter_constraints``
    (:mod:`prunetrain.hyperparams`); :meth:`fit` checks them first, then does
    the work on the same frozen network and data splits a search would get.
    """

    name: ClassVar[str]
    #: One line for ``prunetrain baseline --help`` and the docs.
    summary: ClassVar[str] = ""
    #: ``"ticket"`` (a mask over the frozen network) or ``"weights"`` (trained weights).
    produces: ClassVar[str] = "ticket"
    #: Whether it trains with gradients on the data (else data-free pruning at init).
    trains: ClassVar[bool] = True

    @property
    def converges(self) -> bool:
        """Whether it trains in convergence mode: to ``patience`` epochs without improvement,
        returning the best epoch's model."""
        return getattr(self, "patience", None) is not None

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
#: Class decorator: make a baseline available by its ``name``.
register = registrar(BASELINES, "baseline")


def make_baseline(name: str, **params) -> Baseline:
    """The baseline registered as ``name``, built with ``params``.

    With ``recipe=NAME`` among ``params``, the baseline starts from that
    recipe's hyperparameters (:mod:`prunetrain.baselines.recipes`); the other
    ``params`` override them. The result is checked against the baseline's declared
    hyperparameters (a one-line :class:`PrunetrainError` otherwise).

    Examples
    --------
    >>> make_baseline("edge-popup", recipe="hidden-networks", epochs=5).get_params()["lr"]
    0.1
    """
    if name in BASELINES and "recipe" in BASELINES[name].param_names():
        params = with_recipe(name, params)
    return build_named(BASELINES, "baseline", name, params)


# --- helpers shared by the trained baselines ------------------------------------------------


def budget_caps(budget: Budget | None) -> tuple[float | None, int | None]:
    """A budget as caps on a trained baseline: (seconds, gradient steps)."""
    if budget is None:
        return None, None
    return budget.seconds, budget.evaluations


class EpochLog:
    """Builds a baseline's history: the validation metrics of the model at each epoch end.

    Only the validation split is evaluated during training; each row's model
    is kept as a snapshot (:attr:`snapshots`) for scoring after training.

    Parameters
    ----------
    data : Dataset
        The splits (only validation is used here).
    label : str, optional
        Show progress under this label (a bar on a terminal, plain lines in a
        log; :class:`~prunetrain.progress.Progress`); ``None`` shows nothing.
    epochs : int
        Epochs the training will run (at most), for the progress display.
    keep_best : bool
        Convergence mode: a row whose model is no better on validation keeps the
        best model so far as its snapshot (what the run would return there).
        Needs a validation split.

    Raises
    ------
    PrunetrainError
        With ``keep_best`` and no validation samples: there is nothing to converge on.
    """

    def __init__(
        self, data: Dataset, label: str | None = None, epochs: int = 0, keep_best: bool = False
    ) -> None:
        if keep_best and not len(data.y_val):
            raise PrunetrainError(
                f"patience needs a validation split to converge on; {data.name} has none"
            )
        self.data = data
        self.keep_best = keep_best
        self.rows: list[dict] = []
        self.snapshots: list[Callable[[np.ndarray], np.ndarray]] = []
        self.display = Progress(epochs, unit="epoch", label=label or "", enabled=label is not None)

    def add(
        self,
        logits: Callable[[np.ndarray], np.ndarray],
        epoch: int,
        train_loss: float,
        *,
        steps: int,
        sample_forwards: int,
        seconds: float,
    ) -> bool:
        """Record the model ``logits`` after ``epoch`` epochs (``steps`` gradient steps).

        ``logits`` must stay the model of this epoch after training goes on
        (a function of copied weights), since it is kept as the row's snapshot.

        Returns
        -------
        bool
            Whether this model's validation accuracy is strictly above every
            earlier row's: the best model so far (always False without a
            validation split).
        """
        d = self.data
        val_loss = val_acc = None
        if len(d.y_val):
            z = logits(d.X_val)
            val_loss, val_acc = float(cross_entropy(z, d.y_val)), float(accuracy(z, d.y_val))
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
            }
        )
        improved = val_acc is not None and val_acc > best
        if self.keep_best and not improved and self.snapshots:
            logits = self.snapshots[-1]  # the best model so far is what the run would return
        self.snapshots.append(logits)
        self.display.update(epoch, **self._fields())
        return improved

    def close(self) -> None:
        """End the progress display (call once training is over)."""
        self.display.close(**self._fields())

    def _fields(self) -> dict:
        if not self.rows:
            return {}
        row = self.rows[-1]

        def fmt(v):
            return "-" if v is None else f"{v:.4f}"

        return {"loss": fmt(row["train_loss"]), "val_acc": fmt(row["val_accuracy"])}
