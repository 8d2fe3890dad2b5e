"""The searcher interface, the registry of searchers by name, and the search result."""

from __future__ import annotations

import abc
import dataclasses
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np

from prunetrain.errors import PrunetrainError
from prunetrain.hyperparams import Hyperparameters, build_named, registrar
from prunetrain.masks import Mask

if TYPE_CHECKING:
    from prunetrain.problem import Problem


class BudgetView(Protocol):
    """Anything that says what fraction of a budget is spent (a problem, a pipeline stage's share)."""

    def budget_used(self) -> float: ...


class Searcher(Hyperparameters, abc.ABC):
    """One gradient-free heuristic over masks.

    A searcher's constructor takes only its hyperparameters (keyword
    arguments with defaults, stored under the same names, as in
    scikit-learn), and the class declares each one's type and range in
    ``_parameter_constraints`` (:mod:`prunetrain.hyperparams`), which
    :func:`make_searcher` checks. :meth:`setup` binds it to a problem; the run loop then
    calls :meth:`step` until the budget is spent and asks :meth:`recommend`
    for the mask to validate. The loop, not the searcher, owns progress,
    validation, early stopping and interruption; the problem owns the budget
    (it charges every evaluation, and :meth:`budget_used` reads it).

    Checkpoints (``prunetrain search --resume``) need nothing from a searcher
    but this: **keep its state in attributes that are plain data.** Between
    two :meth:`step` calls the run loop stores the searcher's attributes
    (``vars(searcher)``: its hyperparameters, its random generator
    ``self.rng`` and everything :meth:`setup` and :meth:`step` have stored),
    and a resumed run rebuilds the searcher from its registered name and
    those attributes, without calling ``__init__`` or :meth:`setup` again; it
    then gets :meth:`step` calls only and must continue exactly as the
    uninterrupted one would (``tests/search/test_checkpoint.py`` checks every
    registered searcher for a byte-identical ticket). A checkpoint is data,
    never code (:mod:`prunetrain.search.checkpoint`), so an attribute may hold:

    - ``None``, bools, ints, floats (NaN and infinities too), strings, and
      lists, tuples and dicts of these;
    - NumPy arrays of a bool, integer or float dtype (up to 8 dimensions),
      NumPy scalars, and arrays on the backend's device (stored on the host);
    - an ``np.random.Generator`` (its bit generator's state is stored);
    - the problem, its network, backend, keep rule and data arrays (stored
      as references, bound to the resumed run's own);
    - other registered searchers (a pipeline's stages), and objects of the
      helper classes of :data:`~prunetrain.search.checkpoint.STATE_CLASSES`
      (a flip session and its cache, a mask layout, a pipeline stage's
      budget view). A new helper class is registered with the
      :func:`~prunetrain.search.checkpoint.state_class` decorator; its objects
      are stored as their attributes, by the same rules.

    References shared between attributes stay shared, and cycles are kept.
    Attribute names are identifiers with at most one leading underscore, and
    none may shadow a method or property of the class. So:

    - store no lambdas, closures, open files, locks, modules, sets or
      objects of other classes (store a registered helper object with a
      method instead, as :class:`~prunetrain.search.pipeline.StageBudget`);
    - keep state that must survive a checkpoint in attributes, not in
      generators or iterators held across steps.

    A searcher that breaks these rules still runs: the loop warns once and
    writes no checkpoints for it.
    """

    name: ClassVar[str]
    #: One line for ``prunetrain methods``.
    summary: ClassVar[str] = ""
    #: The training batch size the defaults were tuned at; used where the caller asks for
    #: ``batch_size="auto"`` (the default of ``run_search``, the CLI and the estimator).
    preferred_batch_size: ClassVar[int] = 1024

    problem: Problem
    rng: np.random.Generator
    #: A searcher sets this when it has nothing more to do (e.g. converged).
    finished: bool = False
    #: True: the run returns the last mask validated (the searcher's final recommendation)
    #: instead of the best on validation. For a searcher whose schedule settles on one mask,
    #: where the best of many noisy validations of a small split is partly luck.
    returns_last: bool = False
    #: Where :meth:`budget_used` reads from instead of the problem: an object with a
    #: ``budget_used()`` method, such as the share of a pipeline's budget that the
    #: :class:`~prunetrain.search.pipeline.Pipeline` gives each of its stages.
    budget_view: BudgetView | None = None

    def budget_used(self) -> float:
        """Fraction of the budget spent so far, in [0, 1]: the problem's
        (:meth:`~prunetrain.problem.Problem.budget_used`) or, if set, :attr:`budget_view`'s.
        0 before :meth:`setup`."""
        if self.budget_view is not None:
            return self.budget_view.budget_used()
        problem = getattr(self, "problem", None)
        return 0.0 if problem is None else problem.budget_used()

    def setup(
        self, problem: Problem, rng: np.random.Generator, init_mask: Mask | None = None
    ) -> None:
        """Bind to ``problem``; start from ``init_mask`` when given (a warm start).

        Checks the declared hyperparameters first (:meth:`check_params`), as scikit-learn's
        ``fit`` does, so that a searcher made without :func:`make_searcher` is refused
        before any evaluation too. A subclass checks here only what needs the problem.
        """
        self.check_params()
        self.problem = problem
        self.rng = rng
        self.finished = False

    @abc.abstractmethod
    def step(self) -> None:
        """Do one iteration: evaluate some masks through the problem, update state."""

    @abc.abstractmethod
    def recommend(self) -> tuple[Mask, float]:
        """The mask this searcher currently thinks best, and its last training loss."""


SEARCHERS: dict[str, type[Searcher]] = {}
#: Class decorator: make a searcher available by its ``name``.
register = registrar(SEARCHERS, "searcher")


def make_searcher(name: str, **params) -> Searcher:
    """The searcher registered as ``name``, built with ``params`` and checked against its
    declared hyperparameters (a one-line :class:`PrunetrainError` otherwise)."""
    return build_named(SEARCHERS, "method", name, params)


def resolve_batch_size(batch_size: int | str | None, searcher: Searcher) -> int | None:
    """The batch size to give :class:`~prunetrain.problem.Problem` for ``searcher``.

    ``"auto"`` is the searcher's :attr:`~Searcher.preferred_batch_size`;
    ``0`` and ``None`` mean the whole training set (``None``); a positive
    integer is itself.

    Examples
    --------
    >>> resolve_batch_size("auto", make_searcher("nes")), resolve_batch_size(0, make_searcher("nes"))
    (256, None)
    """
    if isinstance(batch_size, str):
        if batch_size != "auto":
            raise PrunetrainError(
                f"batch size must be a positive integer, 0 (the whole training set) or "
                f"'auto', got {batch_size!r}"
            )
        return searcher.preferred_batch_size
    return batch_size or None  # Problem checks the rest where the value enters


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
        ``best_val_accuracy``, ``improved`` (this mask became the one the run returns:
        the best, or each in turn for a searcher that ``returns_last``).
    evaluations, sample_forwards, seconds : float
        Total cost of the search.
    stopped_by : str
        ``"budget"``, ``"early_stopping"``, ``"finished"`` or ``"interrupted"``.
    compile_seconds : float
        Time spent compiling (or loading) kernels before the clock started;
        not part of ``seconds`` nor of the budget.
    budget_overshoot : float
        How far the search went past its budget, in the budget's unit
        (evaluations, or seconds): the loop checks the budget before each step,
        so this is less than :attr:`last_step`. 0 unless ``stopped_by="budget"``.
    last_step : float
        What the last step used, in the same unit (with the validation after
        it; the setup, if no step ran).
    signal : int or None
        The signal that interrupted the search (``signal.SIGINT`` for Ctrl-C,
        ``SIGTERM``, ``SIGHUP``); ``None`` unless ``stopped_by="interrupted"``.
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
    compile_seconds: float = 0.0
    budget_overshoot: float = 0.0
    last_step: float = 0.0
    signal: int | None = None

    @property
    def interrupted(self) -> bool:
        return self.stopped_by == "interrupted"
