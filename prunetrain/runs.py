"""One path from a run's arguments to its record and folder: build, search, record, save.

:func:`build` loads the data and makes what a run works on, a :class:`Setup`
(data, network spec, frozen network, keep rule, seeds). :func:`search` runs a
searcher on it with the shared run loop and returns a :class:`SearchRun`: the
ticket, its metrics and the record ``result.json`` holds (:func:`run_config`
writes the record's ``config``, for searches and baselines alike). The run
folder's name, its guard against overwriting a finished run, its files
(:func:`save_run`, :func:`write_curve`) and the hold a run keeps on it
(:func:`claim`: one run at a time, and nothing left behind by one that fails)
are here too.

``prunetrain search`` (:func:`prunetrain.api.run_search`), the comparison
runner (:mod:`prunetrain.experiments.runner`) and the baselines
(:func:`prunetrain.baselines.run_baseline`) go through this module;
``SubnetworkClassifier.fit`` builds its network and problem here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from prunetrain.backends import NumpyBackend
from prunetrain.data import Dataset, load_dataset
from prunetrain.errors import BusyFolderError, FinishedRunError, PrunetrainError
from prunetrain.files import (
    atomic_write,
    check_writable_folder,
    folder_lock,
    make_folders,
    remove_empty_folders,
    remove_stale,
    write_error,
    write_folder,
    write_json,
)
from prunetrain.masks import KeepRule, Mask
from prunetrain.metrics import sample_losses
from prunetrain.network import FrozenNetwork, NetworkSpec, check_seed, parse_arch
from prunetrain.problem import Budget, Problem
from prunetrain.provenance import record_provenance
from prunetrain.search import Searcher, SearchResult, resolve_batch_size, run
from prunetrain.search.checkpoint import CHECKPOINT, OLD_CHECKPOINT, Checkpoint, config_hash
from prunetrain.search.loop import Callback
from prunetrain.search.pipeline import Pipeline
from prunetrain.threads import one_blas_thread
from prunetrain.ticket import Ticket

DEFAULT_HIDDEN = (256, 256)
SPLITS = ("train", "val", "test")


# --- what a run works on ------------------------------------------------------------------


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


@dataclasses.dataclass(frozen=True)
class Setup:
    """What a run works on: the data, the frozen network and its spec, the keep rule, the seeds.

    ``seed`` seeds the search and the training batch order; ``network_seed``
    drew the frozen weights. ``loaded_from`` and ``data_dir`` say how the data
    was loaded (a name or path; ``None`` for a :class:`Dataset` given as is),
    for a checkpoint to load it again.
    """

    data: Dataset
    spec: NetworkSpec
    rule: KeepRule
    network: FrozenNetwork
    seed: int
    network_seed: int
    loaded_from: str | None = None
    data_dir: str | None = None

    def problem(
        self,
        searcher: Searcher | None = None,
        *,
        backend: str = "auto",
        batch_size: int | str | None = "auto",
        schedule: str = "rotate",
        sample_weight: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> Problem:
        """The :class:`Problem` a searcher minimises on this setup, batches seeded by ``seed``.

        ``batch_size="auto"`` is ``searcher``'s preferred size
        (:func:`~prunetrain.search.resolve_batch_size`), so it needs the
        searcher; a resumed search gives its recorded size instead.
        """
        return Problem(
            self.network,
            self.data,
            self.rule,
            backend=backend,
            batch_size=resolve_batch_size(batch_size, searcher),
            schedule=schedule,
            seed=self.seed,
            sample_weight=sample_weight,
        )


def build(
    dataset: str | os.PathLike | Dataset = "digits",
    arch: str | Sequence[int] | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    init: str = "signed_constant",
    scale: str = "keep",
    keep: float = 0.5,
    keep_rule: str = "layer",
    seed: int = 0,
    network_seed: int | None = None,
    network: FrozenNetwork | None = None,
) -> Setup:
    """Load the data and make the network and keep rule a run works on.

    Parameters
    ----------
    dataset : str, path or Dataset
        A name (``digits``, ...), a ``.npz``/``.csv`` path, or a loaded dataset.
    arch : str or sequence of int, optional
        Layer sizes, checked against the data (:func:`resolve_arch`); by
        default the data's inputs, two hidden layers of 256, its classes.
    data_dir : path, optional
        Where the IDX files of a named dataset are.
    init, scale, keep, keep_rule
        As :class:`~prunetrain.network.NetworkSpec` and
        :class:`~prunetrain.masks.KeepRule` take them.
    seed : int
        Seed of the search and batch order (and of the network unless
        ``network_seed`` is given).
    network_seed : int, optional
        Seed of the frozen weights.
    network : FrozenNetwork, optional
        A network to search again (a warm start), used as it is: its spec and
        seed stand for ``init``, ``scale`` and ``network_seed``.
    """
    seed = check_seed(seed)
    network_seed = seed if network_seed is None else check_seed(network_seed)
    loaded_from = None if isinstance(dataset, Dataset) else os.fspath(dataset)
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, data_dir=data_dir)
    sizes = resolve_arch(arch, data)
    if network is None:
        spec = NetworkSpec(sizes, init=init, scale=scale, keep=keep)
        rule = KeepRule(keep, keep_rule)
        network = FrozenNetwork(spec, network_seed)
    else:
        spec, network_seed = network.spec, network.seed
        rule = KeepRule(keep, keep_rule)
    return Setup(
        data=data,
        spec=spec,
        rule=rule,
        network=network,
        seed=seed,
        network_seed=network_seed,
        loaded_from=loaded_from,
        data_dir=None if data_dir is None else os.fspath(data_dir),
    )


def run_config(
    setup: Setup,
    method: str,
    method_params: dict,
    budget: str | None,
    problem: Problem | None = None,
    **more,
) -> dict:
    """The ``config`` of a run's record: what it ran on, with what, and ``more`` at the end.

    With the ``problem`` a search ran on, its batch size, schedule and
    backend. The folder name (:func:`run_name`) hashes it.
    """
    config = {
        "dataset": setup.data.name,
        "data_source": setup.data.source,
        "arch": setup.spec.arch,
        "init": setup.spec.init,
        "scale": setup.spec.scale,
        "keep": setup.rule.keep,
        "keep_rule": setup.rule.kind,
        "method": method,
        "method_params": method_params,
        "budget": budget,
    }
    if problem is not None:
        config.update(
            batch_size=problem.batch_size,
            schedule=problem.schedule,
            backend=problem.backend.name,
        )
    config.update(seed=setup.seed, network_seed=setup.network_seed, **more)
    return config


# --- a search -------------------------------------------------------------------------------


def search(
    setup: Setup,
    searcher: Searcher,
    budget: str | float | Budget,
    *,
    method: str | None = None,
    backend: str = "auto",
    batch_size: int | str | None = "auto",
    schedule: str = "rotate",
    patience: int | None = None,
    init_mask: Mask | None = None,
    init_from: str | None = None,
    progress: bool = False,
    callbacks: Sequence[Callback] = (),
    out: str | os.PathLike | None = None,
    runs_dir: str | os.PathLike | None = None,
    force: bool = False,
    checkpoint_every: float = 60.0,
) -> SearchRun:
    """Run ``searcher`` on ``setup`` until ``budget`` is spent; the ticket, metrics and record.

    Parameters
    ----------
    setup : Setup
        From :func:`build`.
    searcher : Searcher
        An unbound searcher (a :class:`~prunetrain.search.pipeline.Pipeline`
        for an ``init_mask`` method).
    budget : str, float or Budget
        ``"30s"``, ``"20000evals"``, or seconds.
    method : str, optional
        The method's name as the record gives it; by default ``searcher.name``.
    backend, batch_size, schedule
        As :meth:`Setup.problem` takes them.
    patience : int, optional
        Early stopping after this many validations without improvement.
    init_mask : mask, optional
        Start from this mask.
    init_from : str, optional
        Where the start came from (a ticket's path, or a method's name), as
        the record's ``init_mask`` gives it.
    progress : bool
        Show a progress bar.
    callbacks : sequence of callables
        ``callback(row, mask)`` after every validation
        (:func:`~prunetrain.search.run`).
    out, runs_dir, force
        The run folder (:func:`claim_run_folder`: held for the whole search, and
        removed again if it fails): written when the search ends,
        ``checkpoint.npz`` there every ``checkpoint_every`` seconds while it runs.
    checkpoint_every : float
        Seconds between checkpoints (with a folder).

    Returns
    -------
    SearchRun
        With ``out`` the folder written, if any.
    """
    budget = Budget.parse(budget)
    problem = setup.problem(searcher, backend=backend, batch_size=batch_size, schedule=schedule)
    config = run_config(
        setup,
        searcher.name if method is None else method,
        searcher.get_params(),
        str(budget),
        problem,
        patience=patience,
        init_mask=init_from,
        init_share=searcher.share if isinstance(searcher, Pipeline) else None,
    )
    with claim_run_folder(config, out, runs_dir, force) as out:
        checkpoint = None
        if out is not None:
            resume_config = {
                "run": config,
                "dataset": setup.loaded_from,
                "data_dir": setup.data_dir,
            }
            checkpoint = Checkpoint(out / CHECKPOINT, checkpoint_every, resume_config)
        result = run(
            problem,
            searcher,
            budget,
            seed=setup.seed,
            init_mask=init_mask,
            patience=patience,
            progress=progress,
            callbacks=callbacks,
            checkpoint=checkpoint,
        )
        return finish(setup, config, result, out, force)


def finish(
    setup: Setup,
    config: dict,
    result: SearchResult,
    out: Path | None = None,
    force: bool = False,
) -> SearchRun:
    """The ticket, its metrics and the record of a search; written to ``out`` if given.

    A search that ran to its end removes its checkpoint (and an old pickled
    one a previous run left); an interrupted one keeps it, to be resumed.
    """
    meta = {**dataset_meta(setup.data), "method": config["method"], "seed": config["seed"]}
    ticket = Ticket(setup.network, result.mask, setup.rule, meta)
    metrics = evaluate_ticket(ticket, setup.data)
    finished = SearchRun(config=config, result=result, ticket=ticket, metrics=metrics, out=out)
    if out is not None:
        finished.save(out, force=force)
        if not result.interrupted:
            (out / CHECKPOINT).unlink(missing_ok=True)
            (out / OLD_CHECKPOINT).unlink(missing_ok=True)
    return finished


# --- metrics and records ------------------------------------------------------------------


#: Evaluation runs over chunks of samples whose widest layer holds at most this many
#: values (1 MB in float32, 2 MB as float64 log-probabilities), so its memory does not
#: grow with a split's size times the network's widest layer (a 64 KB ticket may
#: have 480,000 outputs).
CHUNK_VALUES = 2**18


def chunk_rows(layer_sizes: Sequence[int]) -> int:
    """Samples per chunk when evaluating a network of ``layer_sizes`` (:data:`CHUNK_VALUES`)."""
    return max(1, CHUNK_VALUES // max(layer_sizes))


def split_metrics(
    logits: Callable[[np.ndarray], np.ndarray],
    data: Dataset,
    splits: Sequence[str] = SPLITS,
    layer_sizes: Sequence[int] | None = None,
    what: str = "the ticket's network",
) -> dict[str, dict[str, float]]:
    """Loss and accuracy of a model, given as ``logits(X)``, on each non-empty split of ``data``.

    With ``layer_sizes``, first check that the model takes ``data``'s features
    and has an output per class, and compute the logits in chunks of
    :func:`chunk_rows` samples (the per-sample losses and hits are kept, so
    the means are those of the whole split).

    Raises
    ------
    PrunetrainError
        The model does not fit the data, or its outputs are not finite (weights
        or features so large that float32 overflows).
    """
    rows = None
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
        rows = chunk_rows(layer_sizes)
    out = {}
    for split in splits:
        if split not in SPLITS:
            raise PrunetrainError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        X, y = getattr(data, f"X_{split}"), getattr(data, f"y_{split}")
        if len(y) == 0:
            continue
        hits, losses = [], []
        for start in range(0, len(y), rows or len(y)):
            stop = start + (rows or len(y))
            with np.errstate(over="ignore", invalid="ignore"):  # refused below, in one line
                z = logits(X[start:stop])
            if not np.isfinite(z).all():
                raise PrunetrainError(
                    f"{what}'s outputs are not finite on the {split} split of {data.name!r}: "
                    "its weights or the features overflow float32"
                )
            hits.append(np.argmax(z, axis=-1) == y[start:stop])
            losses.append(sample_losses(z, y[start:stop]))
        out[split] = {
            "accuracy": float(np.concatenate(hits).mean()),
            "loss": float(np.concatenate(losses).mean()),
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
        The four are written as a unit (:func:`save_run`).
        """
        models = {"ticket.npz": self.ticket, "weights.npz": None}
        return save_run(out, self.record(), self.result.history, models, force=force)


# --- run folders ----------------------------------------------------------------------------


def save_run(
    out: str | os.PathLike,
    record: dict,
    history: list[dict],
    models: dict,
    force: bool = False,
) -> Path:
    """Write a run folder: its model files, ``result.json``, ``curve.csv`` and ``curve.png``.

    ``models`` maps file names (``ticket.npz``, ``weights.npz``) to what is
    saved there; a name mapped to ``None`` is removed (another run's, replaced
    under ``force``). Refuses (:func:`check_out`) to replace a finished run
    unless ``force``, and holds the folder (:func:`claim`) while it writes. The
    files are written as a unit (:func:`~prunetrain.files.write_folder`),
    ``result.json`` last: if any cannot be written, none is, and ``out`` keeps
    what it held.
    """
    title = f"{record['method']} on {record['config']['dataset']}"

    def fill(folder: Path) -> None:
        for name, model in models.items():
            if model is not None:
                model.save(folder / name)
        write_json(folder / "result.json", record)
        write_curve(folder, history, title=title)

    with claim(out, force) as out:
        write_folder(out, fill, last="result.json")  # the record last: it marks a finished run
        for name, model in models.items():
            if model is None:
                (out / name).unlink(missing_ok=True)
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
    digest = config_hash(config)
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
        raise FinishedRunError(
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


@contextlib.contextmanager
def claim(out: str | os.PathLike, force: bool = False, *, resume: bool = False) -> Iterator[Path]:
    """Hold the run folder ``out`` for one run, from before its first file to after its last.

    The folder is checked (:func:`~prunetrain.files.check_writable_folder`),
    made if missing, and locked (:func:`~prunetrain.files.folder_lock`), so
    that two runs never write into one folder: another process that claims
    it meanwhile is refused at once. Holding the lock, the run removes the
    temporary files and staging folders that killed writers left there
    (:func:`~prunetrain.files.remove_stale`) and checks that the folder holds
    no finished run (:func:`check_out`), so no other run can finish there
    between the check and the write. A claim within a claim of the same
    folder (in one process) is the same claim.

    If the run fails (an exception), the run's files it wrote into the folder
    (:data:`RUN_FILES`, its checkpoint) are removed, and the folders it made;
    what the folder held before stays, and so do files of other kinds (a
    comparison may share the folder). An interrupt (``KeyboardInterrupt``)
    keeps what was written: the checkpoint resumes it. An ``OSError`` that
    names no file (a full disk under a writer that does not say which file)
    becomes a :class:`~prunetrain.errors.WriteError` naming the folder.

    With ``resume``, the folder is a run to resume: it is not made, not
    checked for a finished run (the resumed search checks that itself), and
    a failure keeps its files, its checkpoint above all.

    Raises
    ------
    BusyFolderError
        Another process holds the folder.
    FinishedRunError
        It holds a finished run, and not ``force``.
    """
    out = check_writable_folder(out, "--resume" if resume else "--out")
    if resume and not out.is_dir():
        yield out  # the resumed search says that there is no checkpoint there
        return
    made = make_folders(out)
    try:
        with folder_lock(out):
            remove_stale(out)
            if not resume:
                check_out(out, force)
            before = _files(out)
            try:
                yield out
            except Exception as e:
                if not resume:
                    _remove_written(out, before)
                if isinstance(e, OSError) and e.filename is None:  # a write that named no file
                    raise write_error(out, e) from None
                raise
    except BaseException:
        remove_empty_folders(made)
        raise


def claims_out(resume: bool = False) -> Callable[[Callable], Callable]:
    """Decorate a function whose ``out`` and ``force`` arguments name a run folder: each call
    :func:`claim` s that folder (with ``resume``, as a run to resume) from start to end.

    So a run refuses a folder another process holds before it does any work
    (loading data, say), and holds it until its last file is written.
    """

    def decorate(run_into: Callable) -> Callable:
        signature = inspect.signature(run_into)

        @functools.wraps(run_into)
        def claimed(*args, **kwargs):
            given = signature.bind(*args, **kwargs)
            given.apply_defaults()
            out = given.arguments["out"]
            if out is None:
                return run_into(*args, **kwargs)
            with claim(out, given.arguments.get("force", False), resume=resume):
                return run_into(*args, **kwargs)

        return claimed

    return decorate


@contextlib.contextmanager
def claim_run_folder(
    config: dict, out: str | os.PathLike | None, runs_dir: str | os.PathLike | None, force: bool
) -> Iterator[Path | None]:
    """:func:`claim` the folder :func:`resolve_out` gives, for the run of ``config``; or none.

    A default folder (in ``runs_dir``) that another run is writing into, or
    has just finished, is passed over for the next free ``…-2``, ``…-3``, …
    (with ``force``, the first is claimed or refused).
    """
    if out is not None:
        with claim(out, force) as folder:
            yield folder
        return
    if runs_dir is None:
        yield None
        return
    base = Path(runs_dir) / run_name(config)
    with contextlib.ExitStack() as held:
        for number in range(1, 10**6):
            candidate = base if number == 1 else base.with_name(f"{base.name}-{number}")
            if not force and (candidate.is_file() or finished_run(candidate)):
                continue
            try:
                folder = held.enter_context(claim(candidate, force))
                break
            except (BusyFolderError, FinishedRunError):
                if force:
                    raise
        yield folder


#: The files a run writes into its folder, besides its checkpoint (named ``checkpoint.*``).
RUN_FILES = ("ticket.npz", "weights.npz", "result.json", "curve.csv", "curve.png")


def _files(folder: Path) -> dict[str, tuple[int, int, int]]:
    """A run's files in ``folder`` (:data:`RUN_FILES`, its checkpoint), each with its inode,
    modification time and size; other files there (a comparison's, say) are not the run's."""
    checkpoint = Path(CHECKPOINT).stem
    try:
        entries = [
            e
            for e in os.scandir(folder)
            if e.is_file(follow_symlinks=False)
            and (e.name in RUN_FILES or Path(e.name).stem == checkpoint)
        ]
        return {e.name: (e.inode(), e.stat().st_mtime_ns, e.stat().st_size) for e in entries}
    except OSError:
        return {}


def _remove_written(folder: Path, before: dict[str, tuple[int, int, int]]) -> None:
    """Remove the run's files in ``folder`` that are new or changed since ``before``
    (:func:`_files`)."""
    for name, identity in _files(folder).items():
        if before.get(name) != identity:
            (folder / name).unlink(missing_ok=True)


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
