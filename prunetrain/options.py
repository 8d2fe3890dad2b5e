"""The options of a run, as typed, frozen dataclasses checked once, where they enter.

A run is described by three blocks of options, as ``open_lth``'s hparams
dataclasses describe a job:

- :class:`NetworkOptions`: the data and the frozen network (a search's and a
  baseline's alike);
- :class:`SearchOptions` (or :class:`BaselineOptions`): what runs on it;
- :class:`FolderOptions`: where its files go.

Each block checks its values in ``__post_init__`` (seeds, the budget,
``patience``, ``init_share``), so a bad value is refused before any data is
loaded, and nothing downstream parses it again: the :class:`~prunetrain.problem.Budget`
a :class:`SearchOptions` holds is the one the run loop and the problem use.
What needs the data (the architecture against its features, the keep fraction
against the network) is checked where the network is built
(:func:`prunetrain.runs.build`).

The Python signatures of :func:`prunetrain.api.run_search` and
:func:`prunetrain.baselines.run_baseline` are derived from the fields
(:func:`takes_options`), and so are the command line's option blocks: a
field's ``metadata`` holds its ``help`` (and ``flag`` or ``choices`` where
the command line needs them), which :mod:`prunetrain.cli` turns into click
options.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from prunetrain.errors import PrunetrainError
from prunetrain.hyperparams import check_number
from prunetrain.network import check_seed
from prunetrain.problem import Budget
from prunetrain.search import DEFAULT_METHOD

if TYPE_CHECKING:
    from prunetrain.data import Dataset
    from prunetrain.search.loop import Callback
    from prunetrain.ticket import Ticket


def option(default: object, help: str = "", **cli) -> dataclasses.Field:
    """A field with its command-line ``help`` (and ``flag``, ``choices``, ``type``) as metadata."""
    return dataclasses.field(default=default, metadata={"help": help, **cli})


def _set(options: object, name: str, value: object) -> None:
    """Store a checked value on a frozen dataclass, in its ``__post_init__``."""
    object.__setattr__(options, name, value)


@dataclasses.dataclass(frozen=True)
class NetworkOptions:
    """The data and the frozen network a run works on.

    ``network_seed`` defaults to ``seed``; both are checked integers in
    [0, 2**63 - 1] once made.
    """

    dataset: str | os.PathLike | Dataset = option(
        "digits", "digits, fashion-mnist, mnist, or a .npz/.csv file."
    )
    arch: str | Sequence[int] | None = option(
        None, "Layer sizes, e.g. 784-300-100-10. Default: inputs-256-256-classes."
    )
    data_dir: str | os.PathLike | None = option(
        None,
        "Folder of the IDX files (else $PRUNETRAIN_DATA, else the Debian path).",
        path="folder",
    )
    init: str = option("signed_constant", "How the frozen weights are drawn.", choices="init")
    scale: str = option("keep", "keep: scale weights by 1/sqrt(keep); none.", choices="scale")
    keep: float = option(0.5, "Fraction of weights kept, in (0, 1].", type=float)
    keep_rule: str = option(
        "layer",
        "layer: exact count per layer; global: exact over the network; free.",
        choices="keep_rule",
    )
    seed: int = option(0, "Seed of the {what} and, by default, of the network.", type=int)
    network_seed: int | None = option(
        None, "Seed of the frozen weights, if other than --seed.", type=int
    )

    def __post_init__(self) -> None:
        _set(self, "seed", check_seed(self.seed))
        seed = self.seed if self.network_seed is None else check_seed(self.network_seed)
        _set(self, "network_seed", seed)


@dataclasses.dataclass(frozen=True)
class SearchOptions:
    """What a search runs and for how long: the method, its budget, batches, backend, start.

    ``budget`` is parsed into a :class:`~prunetrain.problem.Budget` here, once;
    ``method_params`` is copied into a dict.
    """

    method: str = option(
        DEFAULT_METHOD, "Search method; see `prunetrain methods`.", choices="searchers"
    )
    method_params: dict | None = None
    budget: str | float | Budget = option(
        "20s", "Wall time (30s, 10m, 1h) or evaluations (20000evals)."
    )
    batch_size: int | str | None = "auto"
    schedule: str = option(
        "rotate",
        "rotate: a fresh minibatch each step; fixed: one subset; full: the whole set.",
        choices="schedule",
    )
    backend: str = option(
        "auto", "Where the search runs; auto: the fastest that works here.", choices="backend"
    )
    patience: int | None = option(
        None, "Stop after this many validations without improvement.", type=int
    )
    init_mask: Ticket | str | os.PathLike | None = option(
        None,
        "Start from this ticket's mask (resume a search), or from the mask a searcher finds "
        "first, e.g. hebbian-reward (a Hebbian initialisation).",
        path="file",
    )
    init_share: float = option(
        0.25, "Most of the budget an --init-mask searcher may use.", type=float
    )
    progress: bool = False
    callbacks: Sequence[Callback] = ()
    checkpoint_every: float = 60.0

    def __post_init__(self) -> None:
        _set(self, "budget", Budget.parse(self.budget))
        _set(self, "method_params", dict(self.method_params or {}))
        _set(self, "callbacks", tuple(self.callbacks))
        patience = check_number(
            "patience", self.patience, 1, None, open_low=False, integer=True, optional=True
        )
        _set(self, "patience", patience)
        if not (isinstance(self.init_share, (int, float)) and 0 < self.init_share < 1):
            raise PrunetrainError(f"init share must be in (0, 1), got {self.init_share!r}")


@dataclasses.dataclass(frozen=True)
class BaselineOptions:
    """What a baseline runs: the method, its hyperparameters, an optional budget cap.

    ``budget`` (``None``: the method's own schedule) is parsed here, once.
    """

    method: str = option("dense", "Baseline; see `prunetrain methods`.", choices="baselines")
    method_params: dict | None = None
    budget: str | float | Budget | None = option(
        None,
        "Optional cap: wall time (30s, 10m) or gradient steps (5000evals). "
        "Default: the method's epochs.",
    )
    batch_size: int | None = option(
        None, "Training batch size. Default: the method's (128).", type=int
    )
    progress: bool = False

    def __post_init__(self) -> None:
        _set(self, "budget", None if self.budget is None else Budget.parse(self.budget))
        _set(self, "method_params", dict(self.method_params or {}))


@dataclasses.dataclass(frozen=True)
class ResumeOptions:
    """A checkpointed search to continue: its folder ``out``, and what may differ from the run.

    ``dataset`` stands for the recorded data (a :class:`~prunetrain.data.Dataset`
    object is not recorded: it must be given again), ``data_dir`` for where the
    IDX files were; ``force`` resumes a folder that holds a finished run.
    """

    out: str | os.PathLike
    dataset: Dataset | str | os.PathLike | None = None
    data_dir: str | os.PathLike | None = None
    progress: bool = False
    checkpoint_every: float = 60.0
    force: bool = False


@dataclasses.dataclass(frozen=True)
class FolderOptions:
    """Where a run's files go: ``out``, else a folder named by the run in ``runs_dir``, else none.

    ``force`` lets a finished run there be replaced.
    """

    out: str | os.PathLike | None = None
    runs_dir: str | os.PathLike | None = None
    force: bool = False


def signature_of(
    *blocks: type, positional: Sequence[str] = ("dataset", "arch")
) -> inspect.Signature:
    """The signature whose parameters are the fields of ``blocks``, in order: those named in
    ``positional`` may be given by position, the rest by keyword only."""
    parameters = []
    for block in blocks:
        for field in dataclasses.fields(block):
            kind = "POSITIONAL_OR_KEYWORD" if field.name in positional else "KEYWORD_ONLY"
            default = field.default
            if default is dataclasses.MISSING:
                default = inspect.Parameter.empty
            parameters.append(
                inspect.Parameter(
                    field.name,
                    getattr(inspect.Parameter, kind),
                    default=default,
                    annotation=field.type,
                )
            )
    return inspect.Signature(parameters)


def takes_options(
    *blocks: type, positional: Sequence[str] = ("dataset", "arch")
) -> Callable[[Callable], Callable]:
    """Give a function of option blocks the keyword signature of their fields.

    ``run(network, search, folder)`` decorated with
    ``takes_options(NetworkOptions, SearchOptions, FolderOptions)`` is called
    as ``run("digits", "64-32-10", budget="200evals", out=...)``: the
    arguments are bound to the fields (an unknown one is a ``TypeError``, as
    for any function) and each block is made, and so checked, in turn. The fields
    named in ``positional`` may be given by position.
    """
    signature = signature_of(*blocks, positional=positional)

    def decorate(run: Callable) -> Callable:
        @functools.wraps(run)
        def call(*args, **kwargs):
            given = signature.bind(*args, **kwargs).arguments
            made = []
            for block in blocks:
                names = [f.name for f in dataclasses.fields(block)]
                made.append(block(**{name: given[name] for name in names if name in given}))
            return run(*made)

        call.__signature__ = signature
        return call

    return decorate
