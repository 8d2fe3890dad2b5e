"""A run's folder: its name, the hold a run keeps on it, and its files.

A run folder is named by what tells runs apart and a hash of the run's
config (:func:`run_name`); it holds one run at a time (:func:`claim`: a
lock, and nothing left behind by a run that fails), a finished run there is
not replaced without ``force`` (:func:`check_out`), and a run's files are
written as a unit (:func:`save_run`). :mod:`prunetrain.runs` claims the
folder of every run, search or baseline, through :func:`held` and
:func:`claim_run_folder`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

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
from prunetrain.options import FolderOptions
from prunetrain.search.checkpoint import CHECKPOINT, config_hash


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
    out = writable_folder(out)
    if not force and (what := finished_run(out)):
        raise FinishedRunError.naming(
            lambda name: (
                f"{name('out')} {out} already holds a finished run ({what}); pass "
                f"{name('force=True')} to overwrite it, or choose another {name('out')}"
            )
        )
    return out


def writable_folder(out: str | os.PathLike, flag: str = "--out") -> Path:
    """:func:`~prunetrain.files.check_writable_folder` for the folder given as the Python
    parameter ``out``; its error names ``out``, and ``flag`` (``--out``, ``--resume``) on the
    command line."""
    try:
        return check_writable_folder(out, "out")
    except PrunetrainError as e:
        # The message names the folder first by its parameter (files.check_writable_folder).
        e.cli_message = str(e).replace("out", flag, 1)
        raise


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
    out = writable_folder(out, "--resume" if resume else "--out")
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


@contextlib.contextmanager
def held(folder: FolderOptions, *, resume: bool = False) -> Iterator[Path | None]:
    """:func:`claim` ``folder.out`` for a run from its first piece of work to its last file.

    So a run refuses a folder another process holds before it loads any data,
    and holds it until it is written. Without ``out`` nothing is held yet: a
    default folder is named by the run's config (:func:`claim_run_folder`).
    With ``resume``, ``out`` is a run to resume (see :func:`claim`).
    """
    if folder.out is None:
        yield None
        return
    with claim(folder.out, folder.force, resume=resume) as out:
        yield out


@contextlib.contextmanager
def claim_run_folder(config: dict, folder: FolderOptions) -> Iterator[Path | None]:
    """:func:`claim` the folder of the run of ``config``: ``folder.out``, else a folder named
    :func:`run_name` in ``folder.runs_dir``, else none.

    A default folder that holds a finished run of the same config (a rerun),
    or that another run is writing into, is passed over for the next free
    ``…-2``, ``…-3``, …; so a default folder is never overwritten (with
    ``force``, the first is claimed or refused).
    """
    out, runs_dir, force = folder.out, folder.runs_dir, folder.force
    if out is not None:
        with claim(out, force) as claimed:
            yield claimed
        return
    if runs_dir is None:
        yield None
        return
    base = Path(runs_dir) / run_name(config)
    with contextlib.ExitStack() as holding:
        for number in range(1, 10**6):
            candidate = base if number == 1 else base.with_name(f"{base.name}-{number}")
            if not force and (candidate.is_file() or finished_run(candidate)):
                continue
            try:
                claimed = holding.enter_context(claim(candidate, force))
                break
            except (BusyFolderError, FinishedRunError):
                if force:
                    raise
        yield claimed


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
