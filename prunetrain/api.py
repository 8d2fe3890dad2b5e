"""End-to-end Python API: one call runs a search and writes what the CLI writes.

``prunetrain search`` on the command line is a thin layer over :func:`run_search`,
and ``prunetrain evaluate`` over :func:`evaluate_ticket`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prunetrain.backends import NumpyBackend
from prunetrain.data import Dataset, load_dataset
from prunetrain.errors import PrunetrainError
from prunetrain.files import atomic_write, check_writable_folder, write_folder, write_json
from prunetrain.masks import KeepRule
from prunetrain.metrics import accuracy, cross_entropy
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

DEFAULT_HIDDEN = (256, 256)
SPLITS = ("train", "val", "test")


@one_blas_thread()  # the same numbers with any number of threads
def evaluate_ticket(
    ticket: Ticket, data: Dataset, splits: Sequence[str] = SPLITS
) -> dict[str, dict[str, float]]:
    """Loss and accuracy of a ticket on each split of ``data``.

    Always computed by the NumPy reference backend in float32, with BLAS on
    one thread, so the same ticket and data give exactly the same numbers on
    this machine wherever it was searched and whatever the thread settings.
    """
    n_inputs, n_outputs = ticket.spec.layer_sizes[0], ticket.spec.layer_sizes[-1]
    if data.n_features != n_inputs:
        raise PrunetrainError(
            f"the ticket's network takes {n_inputs} features; dataset {data.name!r} has {data.n_features}"
        )
    if data.n_classes > n_outputs:
        raise PrunetrainError(
            f"the ticket's network has {n_outputs} outputs; dataset {data.name!r} has {data.n_classes} classes"
        )
    backend = NumpyBackend(ticket.network)
    out = {}
    for split in splits:
        if split not in SPLITS:
            raise PrunetrainError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        X, y = getattr(data, f"X_{split}"), getattr(data, f"y_{split}")
        if len(y) == 0:
            continue
        logits = backend.logits(ticket.mask, X)
        out[split] = {
            "accuracy": float(accuracy(logits, y)),
            "loss": float(cross_entropy(logits, y)),
            "n": len(y),
        }
    return out


@dataclasses.dataclass
class SearchRun:
    """A finished search: its configuration, result, ticket and final metrics."""

    config: dict
    result: SearchResult
    ticket: Ticket
    metrics: dict[str, dict[str, float]]

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
            "keep_fraction": self.ticket.keep_fraction,
            "train_accuracy": self.metrics["train"]["accuracy"],
            "val_accuracy": self.metrics.get("val", {}).get("accuracy"),
            "test_accuracy": self.metrics["test"]["accuracy"],
            "metrics": self.metrics,
            "history": r.history,
        }

    def save(self, out: str | os.PathLike) -> Path:
        """Write ``ticket.npz``, ``result.json``, ``curve.csv`` and ``curve.png`` into ``out``.

        The four are written as a unit (:func:`~prunetrain.files.write_folder`):
        if any cannot be written, none is, and ``out`` keeps what it held.
        """
        record = self.record()
        title = f"{self.result.method} on {self.config['dataset']}"

        def fill(folder: Path) -> None:
            self.ticket.save(folder / "ticket.npz")
            write_json(folder / "result.json", record)
            write_curve(folder, self.result.history, title=title)

        return write_folder(out, fill)


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

    Returns
    -------
    SearchRun
        Config, search result, ticket and train/val/test metrics. The test split
        is only touched after the search, to report the final metrics.
    """
    seed = check_seed(seed)
    network_seed = seed if network_seed is None else check_seed(network_seed)
    budget = Budget.parse(budget)
    if out is not None:
        check_writable_folder(out)
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
    checkpoint = None
    if out is not None:
        source = None if isinstance(dataset, Dataset) else os.fspath(dataset)
        data_dir = None if data_dir is None else os.fspath(data_dir)
        resume_config = {"run": config, "dataset": source, "data_dir": data_dir}
        checkpoint = Checkpoint(Path(out) / CHECKPOINT, checkpoint_every, resume_config)
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
    return _finish_search(config, data, network, rule, result, out)


def resume_search(
    out: str | os.PathLike,
    *,
    dataset: Dataset | str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    progress: bool = False,
    checkpoint_every: float = 60.0,
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

    Returns
    -------
    SearchRun
        As :func:`run_search` returns; the checkpoint is removed once the
        search has finished and its outputs are written.
    """
    out = check_writable_folder(out)
    saved, state = read_checkpoint(out / CHECKPOINT)
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
    return _finish_search(config, data, network, rule, result, out)


def _finish_search(
    config: dict,
    data: Dataset,
    network: FrozenNetwork,
    rule: KeepRule,
    result: SearchResult,
    out: str | os.PathLike | None,
) -> SearchRun:
    """The ticket, its metrics and the record of a search; written to ``out`` if given.

    A search that ran to its end removes its checkpoint; an interrupted one
    keeps it, to be resumed.
    """
    meta = {
        "dataset": data.name,
        "classes": np.asarray(data.classes).tolist(),
        "method": config["method"],
        "seed": config["seed"],
    }
    ticket = Ticket(network, result.mask, rule, meta)
    metrics = evaluate_ticket(ticket, data)
    finished = SearchRun(config=config, result=result, ticket=ticket, metrics=metrics)
    if out is not None:
        finished.save(out)
        if not result.interrupted:
            (Path(out) / CHECKPOINT).unlink(missing_ok=True)
    return finished
