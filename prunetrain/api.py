"""The Python face of a run: one call runs a search and writes what the CLI writes.

``prunetrain search`` on the command line is a thin layer over :func:`run_search`
and :func:`resume_search`, ``prunetrain evaluate`` over :func:`evaluate_model`,
``prunetrain predict`` over :func:`predict`. A run itself is assembled,
looped and recorded in :mod:`prunetrain.runs` (its records, such as
:class:`~prunetrain.runs.SearchRun`, are there); this module only gives its
options the keyword signature a caller writes
(:func:`~prunetrain.options.takes_options`) and loads and applies models.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from prunetrain import runs
from prunetrain.backends import NumpyBackend
from prunetrain.data import Dataset, FeatureScaling, file_source, load_dataset
from prunetrain.errors import DataError, PrunetrainError
from prunetrain.metrics import log_softmax
from prunetrain.options import (
    FolderOptions,
    NetworkOptions,
    ResumeOptions,
    SearchOptions,
    takes_options,
)
from prunetrain.runs import SPLITS, SearchRun, chunk_rows, evaluate_ticket, split_metrics
from prunetrain.threads import one_blas_thread
from prunetrain.ticket import Ticket

if TYPE_CHECKING:
    from prunetrain.baselines.weights import TrainedWeights


def load_model(path: str | os.PathLike) -> Ticket | TrainedWeights:
    """A ticket, or the trained weights a baseline wrote; see :func:`prunetrain.models.load_model`."""
    # Imported here: reading a model file needs the baselines' weights format, a search does not.
    from prunetrain.models import load_model

    return load_model(path)


def model_logits(model: Ticket | TrainedWeights) -> Callable[[np.ndarray], np.ndarray]:
    """``logits(X)`` of a loaded model, as its own tools compute them.

    A search's ticket: the NumPy reference backend (float32), as
    :func:`evaluate_ticket`. A ``SubnetworkClassifier`` ticket: the float64
    reference forward its ``predict`` uses. Trained weights: their forward pass.
    """
    if not isinstance(model, Ticket):
        return model.logits
    if model.meta.get("estimator"):
        return lambda X: model.network.forward(model.mask, X)
    backend = NumpyBackend(model.network)
    return lambda X: backend.logits(model.mask, X)


def model_arch(model: Ticket | TrainedWeights) -> tuple[int, ...]:
    """Layer sizes of a loaded model."""
    return model.spec.layer_sizes if isinstance(model, Ticket) else model.layer_sizes


@one_blas_thread()
def evaluate_model(
    model: Ticket | TrainedWeights, data: Dataset, splits: Sequence[str] = SPLITS
) -> dict[str, dict[str, float]]:
    """Loss and accuracy of a ticket or of trained weights on each split of ``data``."""
    if isinstance(model, Ticket):
        return evaluate_ticket(model, data, splits)
    return split_metrics(model.logits, data, splits, model.layer_sizes, "the trained network")


def predict(
    model: Ticket | TrainedWeights, X: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classes and class probabilities of raw samples, preprocessed as the model's run did.

    The features go through the feature scaling the model's ``meta`` records
    (``scaling``: the search's min-max range, digits' /16, ...); a model
    made before tickets recorded it gets ``X`` as it is.

    Parameters
    ----------
    model : Ticket or TrainedWeights
        From :func:`load_model`.
    X : array-like of shape (n_samples, n_features)
        Raw features, as in the data file the model was made from.

    Returns
    -------
    labels : ndarray of shape (n_samples,)
        The most probable class of each sample (original labels).
    proba : ndarray of shape (n_samples, n_classes)
        Class probabilities (softmax of the logits, float64); columns follow ``classes``.
    classes : ndarray of shape (n_classes,)
        The class labels.

    Raises
    ------
    DataError
        ``X`` is not finite or has the wrong number of features; once scaled it
        exceeds float32, or the network's outputs overflow (never NaN
        probabilities); the model's ``meta`` lists more classes than it has outputs.
    """
    meta = model.meta
    sizes = model_arch(model)
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != sizes[0]:
        raise DataError(f"the model takes {sizes[0]} features; the data has shape {X.shape}")
    if not np.isfinite(X).all():
        raise DataError("the data holds NaN or infinite features: expected finite numbers")
    classes = np.asarray(meta.get("classes", np.arange(sizes[-1])))
    if len(classes) > sizes[-1]:
        raise DataError(
            f"the model has {sizes[-1]} outputs but its meta lists {len(classes)} classes"
        )
    with np.errstate(over="ignore"):  # a cast beyond float32 gives inf, refused below
        if "scaling" in meta:
            scaling = FeatureScaling.from_dict(meta["scaling"])
            scaling.check(sizes[0])
            X = scaling.transform(X)
        else:
            X = np.ascontiguousarray(X, dtype=np.float32)
    beyond = int(np.count_nonzero(~np.isfinite(X)))
    if beyond:
        raise DataError(
            f"{beyond} feature values of the data lie beyond float32's range (±3.4e38) once "
            "scaled as the model's run scaled its features; the network computes in float32"
        )
    logits = model_logits(model)
    rows = chunk_rows(sizes)
    proba = np.empty((len(X), len(classes)), dtype=np.float64)
    for start in range(0, len(X), rows):
        with np.errstate(over="ignore", invalid="ignore"):  # refused below, in one line
            z = np.asarray(logits(X[start : start + rows]), dtype=np.float64)[:, : len(classes)]
        if not np.isfinite(z).all():
            raise DataError(
                "the model's outputs are not finite on the data: its features are too large "
                "for the network (float32 overflows)"
            )
        proba[start : start + rows] = np.exp(log_softmax(z))
    return classes[np.argmax(proba, axis=1)], proba, classes


def load_recorded_dataset(meta: dict, data_dir: str | os.PathLike | None = None) -> Dataset:
    """The dataset a ticket or run was made on, found again from its ``meta`` (or ``config``).

    A file is looked for at the path as given, then at its resolved path, and
    used only if its content hash is unchanged.

    Raises
    ------
    DataError
        The file is gone or its content changed (the message names the file
        and says to pass ``dataset``), or the record names no dataset.
    """
    source = meta.get("data_source") or {}
    if "sha256" in source:
        changed = None
        for path in dict.fromkeys([source["path"], source["resolved"]]):
            if os.path.isfile(path):  # False for a FIFO, a folder, a name too long
                now = file_source(path)["sha256"]
                if now == source["sha256"]:
                    return load_dataset(path)
                changed = changed or (path, now)
        if changed is not None:
            path, now = changed
            raise DataError.naming(
                lambda name: (
                    f"the data file {path} has changed since this run was made (SHA-256 "
                    f"now {now[:12]}…, recorded {source['sha256'][:12]}…); pass "
                    f"{name(f'dataset={path}')} to evaluate on it anyway, or restore the original file"
                )
            )
        raise DataError.naming(
            lambda name: (
                f"this run was made on the data file {source['path']} (resolved "
                f"{source['resolved']}, SHA-256 {source['sha256'][:12]}…), which is not there; "
                f"pass {name('dataset=PATH')}"
            )
        )
    name = source.get("name") or meta.get("dataset")
    if not name:
        raise PrunetrainError.naming(
            lambda name: f"the file does not name its dataset; pass {name('dataset=PATH')}"
        )
    return load_dataset(name, data_dir=data_dir)


@takes_options(NetworkOptions, SearchOptions, FolderOptions)
def run_search(network: NetworkOptions, options: SearchOptions, folder: FolderOptions) -> SearchRun:
    """Search a frozen random network for a mask, evaluate it, optionally save it.

    The keyword parameters are the fields of the three option blocks
    (:class:`~prunetrain.options.NetworkOptions`, :class:`~prunetrain.options.SearchOptions`,
    :class:`~prunetrain.options.FolderOptions`), each checked as its block is
    made, before any work; :func:`prunetrain.runs.start_search` runs it.

    Parameters
    ----------
    dataset : str or Dataset
        A name (``digits``, ``fashion-mnist``, ``mnist``), a ``.npz``/``.csv`` path,
        or a loaded :class:`~prunetrain.data.Dataset`.
    arch : str or sequence of int, optional
        Layer sizes such as ``"64-256-256-10"``; default: the data's inputs,
        two hidden layers of 256, the data's classes.
    init, scale : str
        Weight init scheme and scale rule (see :class:`NetworkSpec`).
    keep : float
        Fraction of weights kept, in (0, 1].
    keep_rule : {"layer", "global", "free"}
        How the keep fraction is enforced (see :class:`KeepRule`).
    method : str
        A searcher name (``prunetrain methods`` lists them).
    method_params : dict, optional
        Hyperparameters of the searcher.
    budget : str, float or Budget
        ``"30s"``, ``"10m"``, ``"20000evals"``, or seconds.
    batch_size : int, "auto" or None
        Training samples per step: ``"auto"`` is the method's preferred size
        (:attr:`Searcher.preferred_batch_size <prunetrain.search.Searcher.preferred_batch_size>`:
        256 for the evolutionary family, else 1024); ``0`` or ``None`` the whole
        training set.
    schedule : str
        Training batch schedule (see :class:`Problem`).
    backend : str
        ``auto``, ``numpy``, ``numba`` or ``cupy``.
    seed : int
        Seed of the search (and of the network unless ``network_seed`` is given).
    network_seed : int, optional
        Seed of the frozen weights, to search one network with several seeds.
    patience : int, optional
        Early stopping after this many validations without improvement.
    init_mask : Ticket, path or method name, optional
        Start from this ticket's mask (it must belong to the same network),
        or from the mask a searcher such as ``"hebbian-reward"`` finds first:
        it runs for at most ``init_share`` of the budget, then ``method``
        refines its mask (a :class:`~prunetrain.search.pipeline.Pipeline`).
    init_share : float
        Most of the budget an ``init_mask`` searcher may use, in (0, 1).
    progress : bool
        Show a progress bar.
    callbacks : sequence of callables
        ``callback(row, mask)`` after every validation, the starting mask's and
        the final one's included: the history row just recorded and the mask
        validated for it (copy what you keep). One that returns ``True`` stops
        the search (``stopped_by="callback"``); see :func:`~prunetrain.search.run`.
    out : path, optional
        Folder to write ``ticket.npz``, ``result.json`` and the curve into.
        While the search runs, ``checkpoint.npz`` there holds its state
        (written every ``checkpoint_every`` seconds and on Ctrl-C, SIGTERM
        or SIGHUP), from which :func:`resume_search` continues it; it is
        removed when the search ends other than by an interrupt.
    checkpoint_every : float
        Seconds between checkpoints (with ``out``).
    runs_dir : path, optional
        Without ``out``: write into ``runs_dir/<run_name(config)>``
        (:func:`~prunetrain.run_folders.run_name`; a rerun of the same config
        goes to ``…-2``, see :func:`~prunetrain.run_folders.claim_run_folder`),
        as ``prunetrain search`` does with ``runs``.
    force : bool
        Overwrite a finished run in the folder; without it that is an error,
        raised before the search starts.

    Returns
    -------
    SearchRun
        Config, search result, ticket, train/val/test metrics and the folder
        written (``out``). The test split is only touched after the search, to
        report the final metrics.

    Notes
    -----
    In the main thread, Ctrl-C, SIGTERM and SIGHUP stop the search at the end
    of its current step, and it returns (and writes) the best mask so far
    with ``stopped_by="interrupted"`` and the signal in ``result.signal``; a
    second one stops it at once. One that arrives after the search's last
    step changes nothing.
    """
    return runs.start_search(network, options, folder)


@takes_options(ResumeOptions, positional=("out",))
def resume_search(options: ResumeOptions) -> SearchRun:
    """Continue the search whose checkpoint is in the folder ``out``, and write its outputs there.

    The search continues exactly where its checkpoint was written: the
    searcher's state, its random streams, the batch order, the budget used
    and the validation history. With an evaluation budget the result is the
    uninterrupted search's, the same ticket byte for byte.

    Resuming runs no code from the folder: the checkpoint is data only
    (:mod:`prunetrain.search.checkpoint`), and is refused in one line if it
    is damaged (its checksum), if its config was edited (its hash) or fails
    the checks a fresh run's options pass, or if the network its config
    builds is not the one searched (its weights hash). A pickled
    ``checkpoint.pkl`` of an older prunetrain is refused, never read.

    Parameters
    ----------
    out : path
        The run folder (``prunetrain search --out``) holding ``checkpoint.npz``.
    dataset : Dataset or str, optional
        The data, if the search was given a :class:`~prunetrain.data.Dataset`
        object (a name or file is stored in the checkpoint and loaded again).
    data_dir : path, optional
        Where the IDX files are now, if not where they were.
    progress : bool
        Show a progress bar.
    checkpoint_every : float
        Seconds between the resumed search's own checkpoints.
    force : bool
        Resume even if ``out`` holds a finished run (:func:`~prunetrain.run_folders.check_out`);
        an interrupted run's outputs are replaced without it.

    Returns
    -------
    SearchRun
        As :func:`run_search` returns; the checkpoint is removed once the
        search has finished and its outputs are written. Signals stop it as
        they stop :func:`run_search`.
    """
    return runs.resume(options)
