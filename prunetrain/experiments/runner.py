"""Run a comparison: independent runs on an executor, results appended as they finish, resumable.

Every run is one task, ``execute_run(spec, data_dir, threads)``, a plain
function of JSON-ready arguments, so it runs the same in this process, in a
local process pool, or on a Dask cluster (``Client.get_executor()``, a
``concurrent.futures`` executor). Only this process writes files: each
finished run becomes one line of ``results.jsonl`` at once, and a rerun skips
every run whose key (a hash of its config) is already there. Every write of
``results.jsonl`` holds a lock, so several comparisons may share one folder.
Ctrl-C stops the comparison at once (so do SIGTERM and SIGHUP, under
``prunetrain compare``); a run cut short is never recorded.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import functools
import multiprocessing
import os
import shlex
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from prunetrain.errors import PrunetrainError, WriteError
from prunetrain.experiments.config import Comparison, RunSpec, load_config, resolve_archs
from prunetrain.experiments.results import (
    RESULTS,
    append_record,
    lock,
    lock_path,
    read_results,
    rewrite_in_order,
)
from prunetrain.files import check_writable_folder, make_folders
from prunetrain.interrupts import Interrupted
from prunetrain.progress import format_seconds
from prunetrain.provenance import command_line
from prunetrain.threads import one_blas_thread, parallel_threads

#: At most this many history rows are kept per run in ``results.jsonl`` (evenly thinned).
MAX_HISTORY_ROWS = 300


# --- one run ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _dataset(name: str, data_dir: str | None):
    from prunetrain.data import load_dataset

    return load_dataset(name, data_dir=data_dir)


def execute_run(spec: dict, data_dir: str | None = None, threads: int | None = None) -> dict:
    """Run one search or baseline described by ``spec`` (:meth:`RunSpec.to_dict`); return its record.

    The record is what ``result.json`` of ``prunetrain search`` / ``baseline``
    holds, plus ``key``, ``kind``, ``label`` and ``run`` (the spec), with the
    history thinned to :data:`MAX_HISTORY_ROWS` rows, each carrying the test
    accuracy of the model the run would have returned at that point.

    Parameters
    ----------
    threads : int, optional
        Cap Numba (and OpenMP) threads while the run lasts, so parallel runs
        do not oversubscribe the cores. BLAS runs on one thread in any case
        (:func:`prunetrain.threads.one_blas_thread`), so the record does not
        depend on the executor.
    """
    run = RunSpec(**spec)
    limits = parallel_threads(threads) if threads else contextlib.nullcontext()
    with limits, one_blas_thread():
        data = _dataset(run.dataset, data_dir)
        record = _run_search(run, data) if run.kind == "search" else _run_baseline(run, data)
    record["history"] = _thin(record["history"], MAX_HISTORY_ROWS)
    return {"key": run.key, "kind": run.kind, "label": run.label, "run": run.to_dict(), **record}


def _run_search(run: RunSpec, data) -> dict:
    """``run_search`` with the test accuracy of the mask it would return at every validation.

    The run loop validates a recommended mask at each history row and returns
    the best of those on validation; a callback keeps a packed copy of each,
    so that the rows are scored on the test split *after* the search, outside
    its clock, without the search ever seeing that split.
    """
    from prunetrain import runs
    from prunetrain.backends import NumpyBackend
    from prunetrain.masks import pack_mask, unpack_mask
    from prunetrain.metrics import accuracy
    from prunetrain.options import SearchOptions
    from prunetrain.search import make_searcher

    o = run.options
    setup = runs.build(
        data,
        run.arch,
        init=o["init"],
        scale=o["scale"],
        keep=run.keep,
        keep_rule=o["keep_rule"],
        seed=run.seed,
    )
    validated: list[np.ndarray] = []
    options = SearchOptions(
        method=run.method,
        method_params=run.params,
        budget=run.budget,
        backend=o["backend"],
        batch_size=o["batch_size"],
        schedule=o["schedule"],
        patience=o["patience"],
        callbacks=[lambda row, mask: validated.append(pack_mask(mask))],
    )
    finished = runs.search(setup, make_searcher(run.method, **run.params), options)
    if finished.result.interrupted:  # a cut-short run is no result: stop the comparison
        raise Interrupted(finished.result.signal or signal.SIGINT)
    for key in ("data_source", "init_share"):  # never in a comparison's records: kept out
        del finished.config[key]
    record = finished.record()
    history = [dict(row) for row in record["history"]]
    if len(validated) == len(history):
        network, test = setup.network, None
        backend = NumpyBackend(network)
        for row, packed in zip(history, validated):
            if row["improved"]:  # the returned mask changes only here
                logits = backend.logits(unpack_mask(packed, network.shapes), data.X_test)
                test = float(accuracy(logits, data.y_test))
            row["test_accuracy"] = test
        history[-1]["test_accuracy"] = record["test_accuracy"]
    record["history"] = history
    return record


def _run_baseline(run: RunSpec, data) -> dict:
    """``run_baseline``, then each history row's model scored on the test split (after training)."""
    from prunetrain.baselines import run_baseline
    from prunetrain.metrics import accuracy

    o = run.options
    finished = run_baseline(
        data,
        run.arch,
        method=run.method,
        method_params=run.params,
        init=o["init"],
        scale=o["scale"],
        keep=run.keep,
        keep_rule=o["keep_rule"],
        budget=run.budget,
        seed=run.seed,
    )
    record = finished.record()
    record.update(ticket=None, weights=None)  # a comparison keeps records, not model files
    snapshots = finished.result.snapshots or []
    if len(snapshots) == len(record["history"]) and len(data.y_test):
        for row, logits in zip(record["history"], snapshots):
            row["test_accuracy"] = float(accuracy(logits(data.X_test), data.y_test))
        record["history"][-1]["test_accuracy"] = record["test_accuracy"]
    return record


def _thin(rows: list[dict], limit: int) -> list[dict]:
    """At most ``limit`` rows, evenly spaced, always the first and the last."""
    if len(rows) <= limit:
        return rows
    keep = np.unique(np.linspace(0, len(rows) - 1, limit).round().astype(int))
    return [rows[i] for i in keep]


# --- executors ------------------------------------------------------------------------------


class InlineExecutor(cf.Executor):
    """Runs each task in this process when it is submitted (``--jobs 1``)."""

    def submit(self, fn, /, *args, **kwargs):
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as e:  # noqa: BLE001  (handed to the caller through the future)
            future.set_exception(e)
        return future


def cpu_count() -> int:
    """Cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


#: How long to wait for a Dask scheduler to answer.
SCHEDULER_TIMEOUT = "20s"
#: Seconds between a worker's checks that the process that started it is still alive.
ORPHAN_POLL_SECONDS = 0.5


def worker_init(parent: int) -> None:
    """Set up a local worker process: leave Ctrl-C to the parent, exit when the parent dies.

    Ctrl-C at a terminal reaches the whole process group; the parent alone
    decides, so a worker ignores SIGINT (and the run loop then leaves it
    ignored). SIGTERM and SIGHUP end a worker at once, as the pool itself
    ends workers with SIGTERM; a run cut short is never recorded, and the
    parent stops the comparison on its own signal. A daemon thread ends the
    worker once ``os.getppid()`` is no longer ``parent`` (a killed parent
    leaves its children to another), so no worker outlives a ``compare``
    killed with SIGKILL for more than a moment.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(ORPHAN_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="prunetrain-orphan-watch", daemon=True).start()


def _stop_workers(pool: cf.ProcessPoolExecutor) -> None:
    """End a local pool's workers now, runs and all (after Ctrl-C or an error)."""
    processes = list(getattr(pool, "_processes", {}).values())
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(timeout=5)


def _start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker (which a spawned pool uses) deaf to SIGHUP.

    It ignores SIGINT and SIGTERM itself but not SIGHUP, which a closed
    terminal sends to the whole process group: it would die, and the one
    started in its place would print a traceback while ``compare`` stops.
    An ignored signal stays ignored in the process it starts.
    """
    from multiprocessing import resource_tracker

    if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
        resource_tracker.ensure_running()
        return
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        resource_tracker.ensure_running()
    finally:
        signal.signal(signal.SIGHUP, previous)


def check_jobs(jobs) -> int:
    """``jobs`` as a count of local worker processes, at least 1.

    Raises
    ------
    PrunetrainError
        If ``jobs`` is not a whole number of at least 1.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise PrunetrainError(f"jobs must be a whole number of at least 1, got {jobs!r}")
    return int(jobs)


@contextlib.contextmanager
def make_executor(
    jobs: int, scheduler: str | None
) -> Iterator[tuple[cf.Executor, int | None, int]]:
    """The executor for ``jobs`` local processes or a Dask ``scheduler`` address.

    ``jobs`` is a count :func:`check_jobs` accepted (:func:`run_comparison` checks it).

    Yields ``(executor, threads per run, tasks to keep in flight)``. If the
    block raises (Ctrl-C included), local workers are ended at once rather
    than waited for.
    """
    if scheduler:
        try:
            from dask.distributed import Client
        except ImportError:
            raise PrunetrainError(
                "--scheduler needs Dask: pip install 'prunetrain[distributed]'"
            ) from None
        try:
            client = Client(scheduler, timeout=SCHEDULER_TIMEOUT)
        except Exception as e:  # noqa: BLE001  (OSError, TimeoutError, ValueError for a bad address, ...)
            raise PrunetrainError(
                f"cannot reach the Dask scheduler at {scheduler}: {' '.join(str(e).split())}"
            ) from None
        try:
            slots = max(1, sum(client.nthreads().values()))
            yield client.get_executor(pure=False), None, 2 * slots
        finally:
            client.close()
        return
    if jobs == 1:
        yield InlineExecutor(), None, 1
        return
    threads = max(1, cpu_count() // jobs)
    # Worker processes read these when they import NumPy and Numba; spawn (not fork)
    # so that they start clean of this process's BLAS and Numba thread pools.
    env = {
        v: str(threads)
        for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
    }
    saved = {v: os.environ.get(v) for v in env}
    os.environ.update(env)
    _start_resource_tracker()
    pool = cf.ProcessPoolExecutor(
        jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=worker_init,
        initargs=(os.getpid(),),
    )
    try:
        yield pool, threads, 2 * jobs
    except BaseException:
        _stop_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for v, old in saved.items():
            if old is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = old


# --- the comparison -----------------------------------------------------------------------------


@dataclasses.dataclass
class ComparisonResult:
    """What :func:`run_comparison` did."""

    comparison: Comparison
    records: list[dict]
    ran: list[str]
    skipped: list[str]
    failed: dict[str, str]
    seconds: float
    out: Path


def prepare(config: Comparison | str | os.PathLike) -> tuple[Comparison, dict]:
    """Load the config and its datasets, resolve architectures and check them against the data."""
    from prunetrain.runs import resolve_arch

    comparison = config if isinstance(config, Comparison) else load_config(config)
    names = dict.fromkeys(r.dataset for r in comparison.runs)
    datasets = {name: _dataset(name, comparison.data_dir) for name in names}
    comparison = resolve_archs(comparison, datasets)
    for r in comparison.runs:
        resolve_arch(r.arch, datasets[r.dataset])
    return comparison, datasets


def _leaves_no_empty_folder(
    run: Callable[..., ComparisonResult],
) -> Callable[..., ComparisonResult]:
    """Decorate :func:`run_comparison`: a folder it made for ``out`` that holds nothing when it
    ends (every run failed, a full disk, Ctrl-C before a run finished) is removed again."""

    @functools.wraps(run)
    def cleaned(config, out, *args, **kwargs):
        missing = []
        folder = Path(out)
        with contextlib.suppress(OSError):  # a name too long: run refuses it
            while not folder.exists() and folder != folder.parent:
                missing.append(folder)
                folder = folder.parent
        try:
            return run(config, out, *args, **kwargs)
        finally:
            if missing:
                _remove_if_empty(missing)

    return cleaned


def _remove_if_empty(made: list[Path]) -> None:
    """Remove the folders ``made`` (innermost first) while they hold nothing but the lock file."""
    out = made[0]
    held = lock_path(out / RESULTS)
    if held.is_file():
        with contextlib.suppress(OSError, PrunetrainError), lock(out / RESULTS):
            if [p.name for p in out.iterdir()] == [held.name]:
                held.unlink()  # while holding it: a waiting writer locks a file made anew
    for folder in made:
        try:
            folder.rmdir()
        except OSError:
            return


@_leaves_no_empty_folder
def run_comparison(
    config: Comparison | str | os.PathLike,
    out: str | os.PathLike,
    *,
    jobs: int = 1,
    scheduler: str | None = None,
    echo: Callable[[str], None] | None = print,
    report: bool = True,
    command: str | None = None,
) -> ComparisonResult:
    """Run every run of a comparison not already in ``out/results.jsonl``, then write the report.

    Parameters
    ----------
    config : Comparison or path
        A parsed config or the path of its TOML file.
    out : path
        Folder of ``results.jsonl``, ``summary.md`` and the plots.
    jobs : int
        Local worker processes (1: run in this process). Ignored with ``scheduler``.
    scheduler : str, optional
        Address of a Dask scheduler (``tcp://host:8786``): run the tasks there.
    echo : callable, optional
        Called with one line per finished run.
    report : bool
        Write ``summary.md``, ``summary.json``, the plots and ``report.html`` at the end.
    command : str, optional
        The command line to quote in the report's rerun line; by default
        the ``prunetrain compare`` command equivalent to these arguments.

    Returns
    -------
    ComparisonResult
        The records of the config's runs (in config order), and which ran,
        were skipped (already done) or failed.
    """
    start = time.perf_counter()
    if scheduler is None:
        jobs = check_jobs(jobs)
    comparison, _ = prepare(config)
    if scheduler is None:  # runs here: a backend that cannot run here would fail every run
        from prunetrain.backends import resolve_backend

        for name in sorted({r.options["backend"] for r in comparison.runs if r.kind == "search"}):
            resolve_backend(name)
    out = check_writable_folder(out, "output folder")
    path = out / RESULTS
    with lock(path) if out.is_dir() else contextlib.nullcontext():
        done = read_results(path)
    todo = [r for r in comparison.runs if r.key not in done]
    skipped = [r.key for r in comparison.runs if r.key in done]
    say = echo or (lambda line: None)
    ran: list[str] = []
    failed: dict[str, str] = {}
    with (
        make_executor(jobs, scheduler) if todo else _no_executor() as (executor, threads, in_flight)
    ):
        # Only now, with an executor that works, does the output folder appear.
        make_folders(out)
        say(
            f"{comparison.name}: {comparison.describe_size(jobs if scheduler is None else None)}, "
            f"{len(skipped)} already in {path}, "
            f"{len(todo)} to run"
        )
        pending: dict[cf.Future, RunSpec] = {}
        queue = list(todo)
        try:
            while queue or pending:
                while queue and len(pending) < in_flight:
                    run = queue.pop(0)
                    future = executor.submit(
                        execute_run, run.to_dict(), comparison.data_dir, threads
                    )
                    pending[future] = run
                finished, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for future in finished:
                    run = pending.pop(future)
                    try:
                        record = future.result()
                    except Exception as e:  # noqa: BLE001  (reported, the others go on)
                        failed[run.key] = f"{type(e).__name__}: {e}"
                        say(f"  FAILED {_describe(run)}: {failed[run.key]}")
                        continue
                    # A worker's own command line says nothing: record the comparison's.
                    record["provenance"].update(command=command_line(), cwd=os.getcwd())
                    append_record(path, record)
                    ran.append(run.key)
                    finished_runs = len(ran) + len(failed)
                    eta = (time.perf_counter() - start) * (len(todo) / finished_runs - 1)
                    say(
                        f"  [{len(skipped) + len(ran)}/{len(comparison.runs)}] {_describe(run)}: "
                        f"test {record['test_accuracy']:.4f} in {record['seconds']:.1f} s; "
                        f"eta {format_seconds(eta)}"
                    )
        except BaseException:  # Ctrl-C (a KeyboardInterrupt from a run, too): keep what is done
            for future in pending:
                future.cancel()
            raise
    ordered = rewrite_in_order(
        path, [r.key for r in comparison.runs]
    )  # config order; other configs' runs kept
    result = ComparisonResult(
        comparison, ordered, ran, skipped, failed, time.perf_counter() - start, out
    )
    if report and ordered:
        from prunetrain.experiments.report import write_report

        try:
            write_report(
                ordered,
                out,
                name=comparison.name,
                commands=[command or compare_command(comparison, out, jobs, scheduler)],
                options=comparison.report,
            )
        except WriteError as e:  # a full disk: the runs are safe, only the report is not whole
            raise WriteError(
                e.path,
                f"{e.reason} (the runs are recorded in {path}; "
                f"`prunetrain report {shlex.quote(str(out))}` writes the report again)",
            ) from None
    return result


@contextlib.contextmanager
def _no_executor():
    yield None, None, 0


def compare_command(comparison: Comparison, out: Path, jobs: int, scheduler: str | None) -> str:
    """The ``prunetrain compare`` command line that runs ``comparison`` as these arguments do."""
    where = f"--scheduler {shlex.quote(scheduler)}" if scheduler else f"--jobs {int(jobs)}"
    config = shlex.quote(comparison.source) if comparison.source else "CONFIG.toml"
    return f"prunetrain compare {config} {where} --out {shlex.quote(str(out))}"


def _describe(run: RunSpec) -> str:
    return f"{run.label} {run.dataset} {run.arch} keep {run.keep:g} seed {run.seed}"
