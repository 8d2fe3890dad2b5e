"""The run service: the one path from a run's options to its result, record and folder.

:func:`build` loads the data and makes what a run works on, a :class:`Setup`
(data, network spec, frozen network, keep rule, seeds), from
:class:`~prunetrain.options.NetworkOptions`. :func:`start_search` runs a
search from its options, :func:`search` a searcher in hand on a setup,
:func:`resume` a checkpointed search, each into its run folder
(:mod:`prunetrain.run_folders`), and :func:`finish` makes the ticket, its
metrics and the record ``result.json`` holds (:func:`run_config` writes the
record's ``config``, for searches and baselines alike).

:func:`search_loop` is the one door to the shared run loop
(:class:`~prunetrain.search.loop.RunLoop`): ``prunetrain search``
(:func:`prunetrain.api.run_search`), resuming, the comparison runner and
``SubnetworkClassifier.fit`` all pass through it. The baselines
(:func:`prunetrain.baselines.run_baseline`) build their setup, config and
folder here too.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from prunetrain.backends import NumpyBackend
from prunetrain.data import Dataset, load_dataset
from prunetrain.errors import PrunetrainError
from prunetrain.interrupts import STOPPING, deferred_interrupt
from prunetrain.masks import KeepRule, Mask
from prunetrain.metrics import sample_losses
from prunetrain.network import FrozenNetwork, NetworkSpec, parse_arch
from prunetrain.options import FolderOptions, NetworkOptions, ResumeOptions, SearchOptions
from prunetrain.problem import Problem
from prunetrain.provenance import record_provenance
from prunetrain.resuming import read_resume
from prunetrain.run_folders import claim_run_folder, held, save_run
from prunetrain.search import SEARCHERS, Searcher, SearchResult, make_searcher, resolve_batch_size
from prunetrain.search.checkpoint import CHECKPOINT, OLD_CHECKPOINT, Checkpoint, CheckpointState
from prunetrain.search.loop import RunLoop
from prunetrain.search.pipeline import Pipeline
from prunetrain.threads import one_blas_thread
from prunetrain.ticket import Ticket

DEFAULT_HIDDEN = (256, 256)
#: A run that writes no folder.
NO_FOLDER = FolderOptions()
SPLITS = ("train", "val", "test")


# --- what a run works on ------------------------------------------------------------------


def resolve_arch(arch: str | Sequence[int] | None, data: Dataset) -> tuple[int, ...]:
    """Layer sizes for ``data``: ``arch`` checked against it, or the default hidden sizes."""
    if arch is None:
        return (data.n_features, *DEFAULT_HIDDEN, data.n_classes)
    sizes = parse_arch(arch) if isinstance(arch, str) else tuple(int(s) for s in arch)
    arch = "-".join(map(str, sizes))
    if sizes[0] != data.n_features:
        raise PrunetrainError.naming(
            lambda name: (
                f"{name('arch')} {arch} takes {sizes[0]} inputs but "
                f"dataset {data.name!r} has {data.n_features} features"
            )
        )
    if sizes[-1] < data.n_classes:
        raise PrunetrainError.naming(
            lambda name: (
                f"{name('arch')} {arch} has {sizes[-1]} outputs but "
                f"dataset {data.name!r} has {data.n_classes} classes"
            )
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
    dataset: str | os.PathLike | Dataset | NetworkOptions = "digits",
    arch: str | Sequence[int] | None = None,
    *,
    network: FrozenNetwork | None = None,
    **options,
) -> Setup:
    """Load the data and make the network and keep rule a run works on.

    Parameters
    ----------
    dataset : str, path, Dataset or NetworkOptions
        A name (``digits``, ...), a ``.npz``/``.csv`` path, or a loaded
        dataset; or the whole :class:`~prunetrain.options.NetworkOptions`
        of a run (then no other option is given).
    arch : str or sequence of int, optional
        Layer sizes, checked against the data (:func:`resolve_arch`); by
        default the data's inputs, two hidden layers of 256, its classes.
    network : FrozenNetwork, optional
        A network to search again (a warm start), used as it is: its spec and
        seed stand for ``init``, ``scale`` and ``network_seed``.
    **options
        The other fields of :class:`~prunetrain.options.NetworkOptions`
        (``data_dir``, ``init``, ``scale``, ``keep``, ``keep_rule``, ``seed``,
        ``network_seed``).
    """
    if isinstance(dataset, NetworkOptions):
        if arch is not None or options:
            raise TypeError("build takes NetworkOptions, or options as arguments, not both")
        o = dataset
    else:
        o = NetworkOptions(dataset, arch, **options)
    loaded_from = None if isinstance(o.dataset, Dataset) else os.fspath(o.dataset)
    data = o.dataset
    if not isinstance(data, Dataset):
        data = load_dataset(data, data_dir=o.data_dir)
    sizes = resolve_arch(o.arch, data)
    if network is None:
        network = FrozenNetwork(
            NetworkSpec(sizes, init=o.init, scale=o.scale, keep=o.keep), o.network_seed
        )
    rule = KeepRule(o.keep, o.keep_rule)
    return Setup(
        data=data,
        spec=network.spec,
        rule=rule,
        network=network,
        seed=o.seed,
        network_seed=network.seed,
        loaded_from=loaded_from,
        data_dir=None if o.data_dir is None else os.fspath(o.data_dir),
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


def start_search(
    network: NetworkOptions, options: SearchOptions, folder: FolderOptions = NO_FOLDER
) -> SearchRun:
    """Run the search ``options`` describe on the network ``network`` describes, into ``folder``.

    The searcher's hyperparameters are checked as it is made, before anything
    else (:func:`~prunetrain.search.make_searcher`); ``folder.out`` is held (:func:`~prunetrain.run_folders.held`)
    from before the data is loaded to the last file; ``options.init_mask``
    starts the search from a ticket's mask, or from the mask another searcher
    finds first (a :class:`~prunetrain.search.pipeline.Pipeline`). Signals
    stop the search at the end of a step (:data:`~prunetrain.interrupts.STOPPING`).
    """
    searcher = make_searcher(options.method, **options.method_params)  # checks its hyperparameters
    with held(folder):
        setup = build(network)
        init_mask, start_mask = options.init_mask, None
        if isinstance(init_mask, str) and init_mask in SEARCHERS and not Path(init_mask).exists():
            searcher = Pipeline(
                first=make_searcher(init_mask), then=searcher, share=options.init_share
            )
        elif isinstance(init_mask, (str, os.PathLike)) and not Path(init_mask).exists():
            raise PrunetrainError(
                f"init mask {str(init_mask)!r} is neither a ticket file nor a method "
                f"(methods: {', '.join(sorted(SEARCHERS))})"
            )
        elif init_mask is not None:
            start = init_mask if isinstance(init_mask, Ticket) else Ticket.load(init_mask)
            start.verify(setup.network)
            start_mask = start.mask
        init_from = None if init_mask is None or isinstance(init_mask, Ticket) else str(init_mask)
        with deferred_interrupt(STOPPING):  # a signal before the first step stops after it
            return search(
                setup, searcher, options, folder, init_mask=start_mask, init_from=init_from
            )


def search(
    setup: Setup,
    searcher: Searcher,
    options: SearchOptions,
    folder: FolderOptions = NO_FOLDER,
    *,
    init_mask: Mask | None = None,
    init_from: str | None = None,
) -> SearchRun:
    """Run ``searcher`` on ``setup`` until ``options.budget`` is spent; the ticket, metrics, record.

    Parameters
    ----------
    setup : Setup
        From :func:`build`.
    searcher : Searcher
        An unbound searcher (a :class:`~prunetrain.search.pipeline.Pipeline`
        for an ``init_mask`` method); the record names it ``options.method``.
    options : SearchOptions
        The budget, batches, backend, patience, progress, callbacks and
        checkpoint interval; its ``init_mask`` is :func:`start_search`'s.
    folder : FolderOptions
        The run folder (:func:`~prunetrain.run_folders.claim_run_folder`: held
        for the whole search, and removed again if it fails): written when
        the search ends, ``checkpoint.npz`` there every
        ``options.checkpoint_every`` seconds while it runs.
    init_mask : mask, optional
        Start from this mask.
    init_from : str, optional
        Where the start came from (a ticket's path, or a method's name), as
        the record's ``init_mask`` gives it.

    Returns
    -------
    SearchRun
        With ``out`` the folder written, if any.
    """
    problem = setup.problem(
        searcher, backend=options.backend, batch_size=options.batch_size, schedule=options.schedule
    )
    config = run_config(
        setup,
        options.method,
        searcher.get_params(),
        str(options.budget),
        problem,
        patience=options.patience,
        init_mask=init_from,
        init_share=searcher.share if isinstance(searcher, Pipeline) else None,
    )
    with claim_run_folder(config, folder) as out:
        checkpoint = None
        if out is not None:
            resume_config = {
                "run": config,
                "dataset": setup.loaded_from,
                "data_dir": setup.data_dir,
            }
            checkpoint = Checkpoint(out / CHECKPOINT, options.checkpoint_every, resume_config)
        result = search_loop(
            problem, searcher, options, setup.seed, init_mask=init_mask, checkpoint=checkpoint
        )
        return finish(setup, config, result, out, folder.force)


def search_loop(
    problem: Problem,
    searcher: Searcher | None,
    options: SearchOptions,
    seed: int,
    *,
    init_mask: Mask | None = None,
    checkpoint: Checkpoint | None = None,
    resume: CheckpointState | None = None,
) -> SearchResult:
    """The one door of every run of the package to the shared run loop.

    Runs ``searcher`` (or the one ``resume`` holds) on ``problem`` with the
    budget, patience, callbacks and progress of ``options``, checked when
    they were made (:class:`~prunetrain.search.loop.RunLoop`).
    """
    loop = RunLoop(
        problem,
        searcher,
        options.budget,
        patience=options.patience,
        callbacks=options.callbacks,
        progress=options.progress,
        checkpoint=checkpoint,
    )
    return loop.run(seed=seed, init_mask=init_mask, resume=resume)


def resume(options: ResumeOptions) -> SearchRun:
    """Continue the search checkpointed in the folder ``options.out``; write its outputs there.

    The folder is held from start to end; the checkpoint's run options are
    read and checked (:func:`~prunetrain.resuming.read_resume`), the setup is
    rebuilt as a fresh run's is, and the loop continues from the state; see
    :func:`prunetrain.api.resume_search`.
    """
    out, force, every = options.out, options.force, options.checkpoint_every
    with held(FolderOptions(out, force=force), resume=True):
        resumed = read_resume(out, options.dataset, options.data_dir, force)
        config = resumed.config
        setup = build(
            resumed.data,
            config["arch"],
            init=config["init"],
            scale=config["scale"],
            keep=config["keep"],
            keep_rule=config["keep_rule"],
            seed=config["seed"],
            network_seed=config["network_seed"],
        )
        problem = setup.problem(
            backend=config["backend"], batch_size=config["batch_size"], schedule=config["schedule"]
        )
        search = SearchOptions(
            method=config["method"],
            method_params=config["method_params"],
            budget=config["budget"],
            patience=config["patience"],
            progress=options.progress,
            checkpoint_every=every,
        )
        checkpoint = Checkpoint(resumed.path, every, resumed.saved)
        with deferred_interrupt(STOPPING):
            result = search_loop(
                problem, None, search, setup.seed, checkpoint=checkpoint, resume=resumed.state
            )
            return finish(setup, config, result, resumed.out, force)


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
