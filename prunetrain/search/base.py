"""The searcher interface, the registry of searchers by name, and the search result."""

from __future__ import annotations

import abc
import dataclasses
import inspect
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from prunetrain.errors import PrunetrainError
from prunetrain.masks import Mask

if TYPE_CHECKING:
    from prunetrain.objective import Problem


class Searcher(abc.ABC):
    """One gradient-free heuristic over masks.

    A searcher's constructor takes only its hyperparameters (keyword
    arguments with defaults, stored under the same names, as in
    scikit-learn). :meth:`setup` binds it to a problem; the run loop then
    calls :meth:`step` until the budget is spent and asks :meth:`recommend`
    for the mask to validate. The loop, not the searcher, owns the budget,
    progress, validation, early stopping and interruption.
    """

    name: ClassVar[str]
    #: One line for ``prunetrain methods``.
    summary: ClassVar[str] = ""

    problem: Problem
    rng: np.random.Generator
    #: A searcher sets this when it has nothing more to do (e.g. converged).
    finished: bool = False

    def budget_used(self) -> float:
        """Fraction of the budget spent so far, in [0, 1] (the run loop provides it)."""
        return 0.0

    def setup(
        self, problem: Problem, rng: np.random.Generator, init_mask: Mask | None = None
    ) -> None:
        """Bind to ``problem``; start from ``init_mask`` when given (a warm start)."""
        self.problem = problem
        self.rng = rng
        self.finished = False

    @abc.abstractmethod
    def step(self) -> None:
        """Do one iteration: evaluate some masks through the problem, update state."""

    @abc.abstractmethod
    def recommend(self) -> tuple[Mask, float]:
        """The mask this searcher currently thinks best, and its last training loss."""

    @classmethod
    def param_names(cls) -> list[str]:
        """Names of the constructor's hyperparameters."""
        sig = inspect.signature(cls.__init__)
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return [p.name for p in sig.parameters.values() if p.name != "self" and p.kind in kinds]

    def get_params(self) -> dict:
        """Hyperparameters as a dict (JSON-ready)."""
        return {name: getattr(self, name) for name in self.param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


SEARCHERS: dict[str, type[Searcher]] = {}


def register(cls: type[Searcher]) -> type[Searcher]:
    """Class decorator: make a searcher available by its ``name``."""
    if cls.name in SEARCHERS:
        raise RuntimeError(f"two searchers are named {cls.name!r}")
    SEARCHERS[cls.name] = cls
    return cls


def make_searcher(name: str, **params) -> Searcher:
    """The searcher registered as ``name``, built with ``params``."""
    cls = SEARCHERS.get(name)
    if cls is None:
        raise PrunetrainError(
            f"unknown method {name!r}; expected one of {', '.join(sorted(SEARCHERS))}"
        )
    unknown = set(params) - set(cls.param_names())
    if unknown:
        raise PrunetrainError(
            f"method {name!r} takes no option {', '.join(sorted(unknown))}; "
            f"its options are {', '.join(cls.param_names()) or 'none'}"
        )
    return cls(**params)


@dataclasses.dataclass
class SearchResult:
    """What a search returns.

    Attributes
    ----------
    mask : list of ndarray
        The chosen mask: the best on validation among the masks the searcher
        recommended at each validation point.
    train_loss : float
        That mask's training loss on the batch it was last evaluated on.
    val_loss, val_accuracy : float
        That mask's validation loss and accuracy.
    history : list of dict
        One row per validation point: ``evaluations``, ``sample_forwards``,
        ``seconds``, ``train_loss``, ``val_loss``, ``val_accuracy``,
        ``best_val_accuracy``, ``improved`` (this mask became the best).
    evaluations, sample_forwards, seconds : float
        Total cost of the search.
    stopped_by : str
        ``"budget"``, ``"early_stopping"``, ``"finished"`` or ``"interrupted"``.
    """

    mask: Mask
    train_loss: float
    val_loss: float
    val_accuracy: float
    history: list[dict]
    evaluations: float
    sample_forwards: float
    seconds: float
    stopped_by: str
    method: str
    params: dict

    @property
    def interrupted(self) -> bool:
        return self.stopped_by == "interrupted"
