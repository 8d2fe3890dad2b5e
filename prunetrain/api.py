"""End-to-end Python API: one call runs a search and writes what the CLI writes.

``prunetrain search`` on the command line is a thin layer over :func:`run_search`,
and ``prunetrain evaluate`` over :func:`evaluate_ticket`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from prunetrain.backends import NumpyBackend
from prunetrain.data import Dataset, FeatureScaling, file_source, load_dataset
from prunetrain.errors import DataError, PrunetrainError
from prunetrain.files import atomic_write, check_writable_folder, write_folder, write_json
from prunetrain.masks import KeepRule
from prunetrain.metrics import accuracy, cross_entropy, log_softmax
from prunetrain.network import FrozenNetwork, NetworkSpec, check_seed, parse_arch
from prunetrain.objective import Budget, Problem
from prunetrain.provenance import record_provenance, versions  # noqa: F401  (versions: re-exported)
from prunetrain.search import (
    DEFAULT_METHOD,
    SEARCHERS,
    SearchResult,
    make_searcher,
    resolve_batch_size,
    run,
)
from prunetrain.search.checkpoint import CHECKPOINT, Checkpoint, read_checkpoint
from prunetrain.search.pipeline import Pipeline
from prunetrain.threads import one_blas_thread
from prunetrain.ticket import Ticket

if TYPE_CHECKING:
    from prunetrain.baselines.weights import TrainedWeights

DEFAULT_HIDDEN = (256, 256)
SPLITS = ("train", "val", "test")


def split_metrics(
    logits: Callable[[np.ndarray], np.ndarray],
    data: Dataset,
    splits: Sequence[str] = SPLITS,
    layer_sizes: Sequence[int] | None = None,
    what: str = "the ticket's network",
) -> dict[str, dict[str, float]]:
    """Loss and accuracy of a model, given as ``logits(X)``, on each non-empty split of ``data``.

    With ``layer_sizes``, first check that the model takes ``data``'s features
    and has an output per class.
    """
    if layer_sizes is not None:
        n_inputs, n_outputs = layer_sizes[0], layer_sizes[-1]
        if data.n_features != n_inputs:
            raise PrunetrainError(
                f"{what} takes {n_inputs} features; dataset {data.name!r} has {data.n_features}"
            )
        if data.n_classes > n_outputs:
            raise PrunetrainError(
                f"{what} has {n_outputs} outputs; dataset {data.name!r} has {data.n_classes} classes"
            )
    out = {}
    for split in splits:
        if split not in SPLITS:
            raise PrunetrainError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        X, y = getattr(data, f"X_{split}"), getattr(data, f"y_{split}")
        if len(y) == 0:
            continue
        z = logits(X)
        out[split] = {
            "accuracy": float(accuracy(z, y)),
            "loss": float(cross_entropy(z, y)),
            "n": len(y),
        }
    return out


@one_blas_thread()  # the same numbers with any number of threads
def evaluate_ticket(
    ticket: Ticket, data: Dataset, splits: Sequence[str] = SPLITS
) -> dict[str, dict[str, float]]:
    """Loss and accuracy of a ticket on each split of ``data``.

    Always computed by the NumPy reference backend in float32, with BLAS on
    one thread, so the same ticket and data give exactly the same numbers on
    this machine wherever it was searched and whatever the thread settings.
    """
    backend = NumpyBackend(ticket.network)
    return split_metrics(
        lambda X: backend.logits(ticket.mask, X), data, splits, ticket.spec.layer_sizes
    )


def load_model(path: str | os.PathLike) -> Ticket | TrainedWeights:
    """A ticket, or the trained weights a baseline wrote (``weights.npz``), told apart by content.

    Raises
    ------
    TicketError
        The file is missing or damaged, or is neither.
    """
    from prunetrain.baselines.weights import TrainedWeights

    try:
        with np.load(path, allow_pickle=False) as f:
            names = set(f.files)
    except (OSError, ValueError, EOFError, TypeError, AttributeError, zipfile.BadZipFile):
        names = set()  # not an .npz archive (AttributeError: a bare .npy): Ticket.load says so
    if "weight_0" in names:
        return TrainedWeights.load(path)
    return Ticket.load(path)


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
    """
    meta = model.meta
    sizes = model_arch(model)
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != sizes[0]:
        raise DataError(f"the model takes {sizes[0]} features; the data has shape {X.shape}")
    if "scaling" in meta:
        scaling = FeatureScaling.from_dict(meta["scaling"])
        scaling.check(sizes[0])
        X = scaling.transform(X)
    else:
        X = np.ascontiguousarray(X, dtype=np.float32)
    classes = np.asarray(meta.get("classes", np.arange(sizes[-1])))
    logits = np.asarray(model_logits(model)(X), dtype=np.float64)[:, : len(classes)]
    proba = np.exp(log_softmax(logits))
    return classes[np.argmax(proba, axis=1)], proba, classes


def dataset_meta(data: Dataset) -> dict:
    """What a ticket or a weights file records about its data, JSON-ready.

    The name and classes; where the data came from (``data_source``: a named
    dataset, or a file's path as given, resolved path and SHA-256); how raw
    features were scaled (``scaling``, for ``prunetrain predict``); a CSV
    file's feature columns (``feature_names``).
    """
    meta = {"dataset": data.name, "classes": np.asarray(data.classes).tolist()}
    if data.source is not None:
        meta["data_source"] = data.source
    if data.scaling is not None:
        meta["scaling"] = data.scaling.to_dict()
    if data.feature_names is not None:
        meta["feature_names"] = list(data.feature_names)
    return meta


def load_recorded_dataset(meta: dict, data_dir: str | os.PathLike | None = None) -> Dataset:
    """The dataset a ticket or run was made on, found again from its ``meta`` (or ``config``).

    A file is looked for at the path as given, then at its resolved path, and
    used only if its content hash is unchanged.

    Raises
    ------
    DataError
        The file is gone or its content changed (the message names the file
        and says to pass ``--dataset``), or the record names no dataset.
    """
    source = meta.get("data_source") or {}
    if "sha256" in source:
        changed = None
        for path in dict.fromkeys([source["path"], source["resolved"]]):
            if Path(path).is_file():
                now = file_source(path)["sha256"]
                if now == source["sha256"]:
                    return load_dataset(path)
                changed = changed or (path, now)
        if changed is not None:
            raise DataError(
                f"the data file {changed[0]} has changed since this run was made (SHA-256 now "
                f"{changed[1][:12]}…, recorded {source['sha256'][:12]}…); pass --dataset "
                f"{changed[0]} to evaluate on it anyway, or restore the original file"
            )
        raise DataError(
            f"this run was made on the data file {source['path']} (resolved {source['resolved']}, "
            f"SHA-256 {source['sha256'][:12]}…), which is not there; pass --dataset PATH"
        )
    name = source.get("name") or meta.get("dataset")
    if not name:
        raise PrunetrainError("the file does not name its dataset; pass --dataset")
    return load_dataset(name, data_dir=data_dir)


@dataclasses.dataclass
class SearchRun:
    """A finished search: its configuration, result, ticket and final metrics."""

    config: dict
    result: SearchResult
    ticket: Ticket
    metrics: dict[str, dict[str, float]]
    out: Path | None = None

    def record(self) -> dict:
        """The JSON-ready result record written as ``result.json``."""
        r = self.result
        return {
            "config": self.config,
            **record_provenance(),  # versions, machine and BLAS, git commit, command, time
            "method": r.method,
            "params": r.params,
            "stopped_by": r.stopped_by,
            "budget_overshoot": r.budget_overshoot,
            "last_step": r.last_step,
            "evaluations": r.evaluations,
            "sample_forwards": r.sample_forwards,
            "seconds": r.seconds,
            "compile_seconds": r.compile_seconds,
            "keep_fraction": self.ticket.keep_fraction,
            "train_accuracy": self.metrics["train"]["accuracy"],
            "val_accuracy": self.metrics.get("val", {}).get("accuracy"),
            "test_accuracy": self.metrics["test"]["accuracy"],
            "metrics": self.metrics,
            "history": r.history,
        }

    def save(self, out: str | os.PathLike, force: bool = False) -> Path:
        """Write ``ticket.npz``, ``result.json``, ``curve.csv`` and ``curve.png`` into ``out``.

        Refuses (:func:`check_out`) to replace a finished run unless ``force``.
        The four are written as a unit (:func:`~prunetrain.files.write_folder`):
        if any cannot be written, none is, and ``out`` keeps what it held.
        """
        out = check_out(out, force)
        record = self.record()
        title = f"{self.result.method} on {self.config['dataset']}"

        def fill(folder: Path) -> None:
            self.ticket.save(folder / "ticket.npz")
            write_json(folder / "result.json", record)
            write_curve(folder, self.result.history, title=title)

        write_folder(out, fill)
        (out / "weights.npz").unlink(missing_ok=True)  # a baseline's, replaced under --force
        return out


def run_name(config: dict) -> str:
    """The default folder name of a run: what tells runs apart, then a hash of the whole config.

    ``DATASET-METHOD-ARCH-keepK[-BUDGET]-seedS-HASH``; the hash (8 hex digits
    of SHA-256 over the config as JSON) covers every other option, so two
    runs share a folder only when their configs are equal.

    Examples
    --------
    >>> run_name({"dataset": "digits", "method": "random", "arch": "64-32-10", "keep": 0.5,
    ...           "budget": "20s", "seed": 0})
    'digits-random-64-32-10-keep0.5-20s-seed0-43131217'
    """
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
    parts = [config["dataset"], config["method"], config["arch"], f"keep{config['keep']:g}"]
    if config.get("budget"):
        parts.append(config["budget"])
    return "-".join([*map(str, parts), f"seed{config['seed']}", digest[:8]])


def finished_run(out: str | os.PathLike) -> str | None:
    """What finished run the folder ``out`` holds (``"METHOD on DATASET"``), or None.

    A run stopped by Ctrl-C is not finished: it may be replaced, e.g. by the
    search that resumes it. An unreadable ``result.json`` counts as finished.
    """
    record = Path(out) / "result.json"
    if not record.is_file():
        return None
    try:
        previous = json.loads(record.read_text())
        stopped_by = previous.get("stopped_by")
        what = f"{previous.get('method')} on {previous['config'].get('dataset')}"
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return "unreadable result.json"
    return None if stopped_by == "interrupted" else what


def check_out(out: str | os.PathLike, force: bool = False) -> Path:
    """Raise unless the run folder ``out`` may be written; return it as a ``Path``.

    It must be writable (:func:`~prunetrain.files.check_writable_folder`), and a
    folder that holds a finished run (:func:`finished_run`) is kept unless ``force``.
    """
    out = check_writable_folder(out)
    if not force and (what := finished_run(out)):
        raise PrunetrainError(
            f"--out {out} already holds a finished run ({what}); pass --force to overwrite it, "
            "or choose another --out"
        )
    return out


def resolve_out(
    config: dict, out: str | os.PathLike | None, runs_dir: str | os.PathLike | None, force: bool
) -> Path | None:
    """The run folder: ``out`` (checked), else a default folder in ``runs_dir``, else none.

    The default is ``runs_dir/run_name(config)``; when that holds a finished
    run of the same config (a rerun), the next free ``…-2``, ``…-3``, … is
    used instead, so a default folder is never overwritten (``force``
    overwrites the first).
    """
    if out is not None:
        return check_out(out, force)
    if runs_dir is None:
        return None
    base = Path(runs_dir) / run_name(config)
    candidate, number = base, 1
    while not force and (candidate.is_file() or finished_run(candidate)):
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    return check_out(candidate, force)


def write_curve(out: Path, history: list[dict], title: str = "") -> None:
    """Write the history as ``curve.csv`` and a plot of it as ``curve.png``."""
    keys = ["evaluations", "seconds", "train_loss", "val_loss", "val_accuracy", "best_val_accuracy"]

    def write_csv(f):
        f.write(",".join(keys) + "\n")
        for row in history:
            f.write(",".join("" if row[k] is None else repr(row[k]) for k in keys) + "\n")

    atomic_write(out / "curve.csv", write_csv, binary=False)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    seconds = [r["seconds"] for r in history]
    ax1.plot(
        seconds,
        [np.nan if r["train_loss"] is None else r["train_loss"] for r in history],
        label="train (batch)",
    )
    ax1.plot(seconds, [r["val_loss"] for r in history], label="validation")
    ax1.set(xlabel="wall time (s)", ylabel="cross-entropy", title=title)
    ax1.legend()
    ax2.plot(seconds, [r["val_accuracy"] for r in history], label="recommended")
    ax2.plot(seconds, [r["best_val_accuracy"] for r in history], label="best so far")
    ax2.set(xlabel="wall time (s)", ylabel="validation accuracy")
    ax2.legend()
    fig.tight_layout()
    atomic_write(out / "curve.png", lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)


def resolve_arch(arch: str | Sequence[int] | None, data: Dataset) -> tuple[int, ...]:
    """Layer sizes for ``data``: ``arch`` checked against it, or the default hidden sizes."""
    if arch is None:
        return (data.n_features, *DEFAULT_HIDDEN, data.n_classes)
    sizes = parse_arch(arch) if isinstance(arch, str) else tuple(int(s) for s in arch)
    if sizes[0] != data.n_features:
        raise PrunetrainError(
            f"--arch {'-'.join(map(str, sizes))} takes {sizes[0]} inputs but "
            f"dataset {data.name!r} has {data.n_features} features"
        )
    if sizes[-1] < data.n_classes:
        raise PrunetrainError(
            f"--arch {'-'.join(map(str, sizes))} has {sizes[-1]} outputs but "
            f"dataset {data.name!r} has {data.n_classes} classes"
        )
    return sizes


def run_search(
    dataset: str | Dataset = "digits",
    arch: str | Sequence[int] | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    init: str = "signed_constant",
    scale: str = "keep",
    keep: float = 0.5,
    keep_rule: str = "layer",
    method: str = DEFAULT_METHOD,
    method_params: dict | None = None,
    budget: str | float | Budget = "20s",
    batch_size: int | str | None = "auto",
    schedule: str = "rotate",
    backend: str = "auto",
    seed: int = 0,
    network_seed: int | None = None,
    patience: int | None = None,
    init_mask: Ticket | str | os.PathLike | None = None,
    init_share: float = 0.25,
    progress: bool = False,
    out: str | os.PathLike | None = None,
    runs_dir: str | os.PathLike | None = None,
    force: bool = False,
    checkpoint_every: float = 60.0,
) -> SearchRun:
    """Search a frozen random network for a mask, evaluate it, optionally save it.

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
    out : path, optional
        Folder to write ``ticket.npz``, ``result.json`` and the curve into.
        While the search runs, ``checkpoint.pkl`` there holds its state
        (written every ``checkpoint_every`` seconds and on Ctrl-C), from
        which :func:`resume_search` continues it; it is removed when the
        search ends other than by an interrupt.
    checkpoint_every : float
        Seconds between checkpoints (with ``out``).
    runs_dir : path, optional
        Without ``out``: write into ``runs_dir/<run_name(config)>``
        (:func:`run_name`; a rerun of the same config goes to ``…-2``, see
        :func:`resolve_out`), as ``prunetrain search`` does with ``runs``.
    force : bool
        Overwrite a finished run in the folder; without it that is an error,
        raised before the search starts.

    Returns
    -------
    SearchRun
        Config, search result, ticket, train/val/test metrics and the folder
        written (``out``). The test split is only touched after the search, to
        report the final metrics.
    """
    seed = check_seed(seed)
    network_seed = seed if network_seed is None else check_seed(network_seed)
    budget = Budget.parse(budget)
    if out is not None:
        check_out(out, force)
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, data_dir=data_dir)
    sizes = resolve_arch(arch, data)
    spec = NetworkSpec(sizes, init=init, scale=scale, keep=keep)
    rule = KeepRule(keep, keep_rule)
    searcher = make_searcher(method, **(method_params or {}))
    network = FrozenNetwork(spec, network_seed)
    start_mask = None
    if isinstance(init_mask, str) and init_mask in SEARCHERS and not Path(init_mask).exists():
        if not (isinstance(init_share, (int, float)) and 0 < init_share < 1):
            raise PrunetrainError(f"init share must be in (0, 1), got {init_share!r}")
        searcher = Pipeline(first=make_searcher(init_mask), then=searcher, share=init_share)
    elif isinstance(init_mask, (str, os.PathLike)) and not Path(init_mask).exists():
        raise PrunetrainError(
            f"init mask {str(init_mask)!r} is neither a ticket file nor a method "
            f"(methods: {', '.join(sorted(SEARCHERS))})"
        )
    elif init_mask is not None:
        start = init_mask if isinstance(init_mask, Ticket) else Ticket.load(init_mask)
        start.verify(network)
        start_mask = start.mask
    problem = Problem(
        network,
        data,
        rule,
        backend=backend,
        batch_size=resolve_batch_size(batch_size, searcher),
        schedule=schedule,
        seed=seed,
    )
    config = {
        "dataset": data.name,
        "data_source": data.source,
        "arch": spec.arch,
        "init": init,
        "scale": scale,
        "keep": rule.keep,
        "keep_rule": rule.kind,
        "method": method,
        "method_params": searcher.get_params(),
        "budget": str(budget),
        "batch_size": problem.batch_size,
        "schedule": problem.schedule,
        "backend": problem.backend.name,
        "seed": seed,
        "network_seed": network_seed,
        "patience": patience,
        "init_mask": None if init_mask is None or isinstance(init_mask, Ticket) else str(init_mask),
        "init_share": init_share if isinstance(searcher, Pipeline) else None,
    }
    out = resolve_out(config, out, runs_dir, force)
    checkpoint = None
    if out is not None:
        source = None if isinstance(dataset, Dataset) else os.fspath(dataset)
        data_dir = None if data_dir is None else os.fspath(data_dir)
        resume_config = {"run": config, "dataset": source, "data_dir": data_dir}
        checkpoint = Checkpoint(out / CHECKPOINT, checkpoint_every, resume_config)
    result = run(
        problem,
        searcher,
        budget,
        seed=seed,
        init_mask=start_mask,
        patience=patience,
        progress=progress,
        checkpoint=checkpoint,
    )
    return _finish_search(config, data, network, rule, result, out, force)


def resume_search(
    out: str | os.PathLike,
    *,
    dataset: Dataset | str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    progress: bool = False,
    checkpoint_every: float = 60.0,
    force: bool = False,
) -> SearchRun:
    """Continue the search whose checkpoint is in the folder ``out``, and write its outputs there.

    The search continues exactly where its checkpoint was written: the
    searcher's state, its random streams, the batch order, the budget used
    and the validation history. With an evaluation budget the result is the
    uninterrupted search's, the same ticket byte for byte.

    Parameters
    ----------
    out : path
        The run folder (``prunetrain search --out``) holding ``checkpoint.pkl``.
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
        Resume even if ``out`` holds a finished run (:func:`check_out`); an
        interrupted run's outputs are replaced without it.

    Returns
    -------
    SearchRun
        As :func:`run_search` returns; the checkpoint is removed once the
        search has finished and its outputs are written.
    """
    out = check_writable_folder(out)
    saved, state = read_checkpoint(out / CHECKPOINT)
    check_out(out, force)
    try:
        config = saved["run"]
        source = dataset if dataset is not None else saved["dataset"]
        if source is None:
            raise PrunetrainError(
                f"the search in {out} ran on a Dataset object: pass it again as dataset="
            )
        if data_dir is None:
            data_dir = saved["data_dir"]
        data = source if isinstance(source, Dataset) else load_dataset(source, data_dir=data_dir)
        _check_same_data(config.get("data_source"), data, dataset is None)
        spec = NetworkSpec(
            resolve_arch(config["arch"], data),
            init=config["init"],
            scale=config["scale"],
            keep=config["keep"],
        )
        rule = KeepRule(config["keep"], config["keep_rule"])
        network = FrozenNetwork(spec, config["network_seed"])
        problem = Problem(
            network,
            data,
            rule,
            backend=config["backend"],
            batch_size=config["batch_size"],
            schedule=config["schedule"],
            seed=config["seed"],
        )
        budget, patience = config["budget"], config["patience"]
    except (KeyError, TypeError):
        raise PrunetrainError(f"{out / CHECKPOINT} is damaged (its config is incomplete)") from None
    checkpoint = Checkpoint(out / CHECKPOINT, checkpoint_every, saved)
    result = run(
        problem, None, budget, patience=patience, progress=progress, checkpoint=checkpoint,
        resume=state,
    )  # fmt: skip
    return _finish_search(config, data, network, rule, result, out, force)


def _check_same_data(recorded: dict | None, data: Dataset, from_checkpoint: bool) -> None:
    """Raise if the data file a checkpointed search ran on has changed since (by its SHA-256)."""
    if not from_checkpoint or not recorded or "sha256" not in recorded:
        return
    now = (data.source or {}).get("sha256")
    if now != recorded["sha256"]:
        raise DataError(
            f"the data file {recorded['path']} has changed since the search was checkpointed "
            f"(SHA-256 now {str(now)[:12]}…, recorded {recorded['sha256'][:12]}…); restore it "
            "to resume the search"
        )


def _finish_search(
    config: dict,
    data: Dataset,
    network: FrozenNetwork,
    rule: KeepRule,
    result: SearchResult,
    out: Path | None,
    force: bool = False,
) -> SearchRun:
    """The ticket, its metrics and the record of a search; written to ``out`` if given.

    A search that ran to its end removes its checkpoint; an interrupted one
    keeps it, to be resumed.
    """
    meta = {**dataset_meta(data), "method": config["method"], "seed": config["seed"]}
    ticket = Ticket(network, result.mask, rule, meta)
    metrics = evaluate_ticket(ticket, data)
    finished = SearchRun(config=config, result=result, ticket=ticket, metrics=metrics, out=out)
    if out is not None:
        finished.save(out, force=force)
        if not result.interrupted:
            (out / CHECKPOINT).unlink(missing_ok=True)
    return finished
