"""The one run loop every searcher shares: budget, validation, early stopping, progress,
Ctrl-C, checkpoints and resuming from one."""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from prunetrain.backends import warm_up
from prunetrain.errors import PrunetrainError
from prunetrain.hyperparams import check_number
from prunetrain.interrupts import deferred_interrupt, signal_of
from prunetrain.masks import Mask, check_mask
from prunetrain.network import check_seed
from prunetrain.problem import Budget, Problem
from prunetrain.progress import Progress
from prunetrain.search.base import Searcher, SearchResult
from prunetrain.search.checkpoint import Checkpoint, CheckpointState, NotCheckpointable
from prunetrain.threads import one_blas_thread

logger = logging.getLogger(__name__)

#: Called after every validation with the history row and the validated mask; ``True`` stops.
Callback = Callable[[dict, Mask], "bool | None"]

#: Validate when this many validation-set sizes of training sample-forwards
#: have passed since the last validation, so validation costs about 10 %.
VALIDATION_RATIO = 10


def check_searcher(searcher: Searcher, keep_rule: str = "layer") -> None:
    """Raise if ``searcher``'s declared hyperparameters are out of range, before any real work.

    Only :meth:`~prunetrain.hyperparams.Hyperparameters.check_params`, which
    :func:`~prunetrain.search.make_searcher` has already run: ``keep_rule`` is unused. Kept
    for its caller (``api.run_search``), which can drop the call (issue 30, item 3).
    """
    searcher.check_params()


def searcher_rng(seed: int) -> np.random.Generator:
    """The searcher's random stream for ``seed`` (separate from the batch order)."""
    return np.random.default_rng([check_seed(seed), 0x5EA4C4])


@one_blas_thread()  # the same floats with any number of threads (prunetrain.threads)
def run(
    problem: Problem,
    searcher: Searcher | None,
    budget: str | float | Budget,
    *,
    seed: int = 0,
    init_mask: Mask | None = None,
    patience: int | None = None,
    validation_interval: float | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = False,
    checkpoint: Checkpoint | None = None,
    resume: CheckpointState | None = None,
) -> SearchResult:
    """Run ``searcher`` on ``problem`` until ``budget`` is spent.

    Parameters
    ----------
    problem : Problem
        Network, training/validation data, keep rule, backend.
    searcher : Searcher or None
        An unbound searcher (``make_searcher(name, **params)``); ``None``
        with ``resume``, which holds the searcher.
    budget : str, float or Budget
        ``"30s"``, ``"10m"``, ``"1h"``, ``"20000evals"``, or seconds. With an
        evaluation budget the same seed gives the same mask.
    seed : int
        Seed of the searcher's random stream.
    init_mask : mask, optional
        Start from this mask (a warm start).
    patience : int, optional
        Stop after this many validations in a row without a better
        validation accuracy (a whole number >= 1). ``None`` never stops early.
    validation_interval : float, optional
        Training sample-forwards between validations. By default
        ``10 × (validation set size)`` (the training set stands in for an empty
        validation set), so validation costs about 10 %.
    callbacks : sequence of callables
        Each is called as ``callback(row, mask)`` after every validation, the
        starting mask's and the final one's included: ``row`` is the history
        row just appended, ``mask`` the mask validated for it (the searcher's
        ``recommend()``; its own arrays, so copy what you keep). One that
        returns ``True`` stops the search (``stopped_by="callback"``), before
        its first step if it does so for the starting mask. A row with
        ``improved`` true means ``mask`` is now the one the search would return.
    progress : bool
        Show progress on stderr (:class:`~prunetrain.progress.Progress`: a
        bar on a terminal, plain lines otherwise): evaluations, best train
        loss, validation accuracy, evaluations/s.
    checkpoint : Checkpoint, optional
        Write the search's whole state there once it has started, every
        ``checkpoint.every`` seconds at a step boundary, and on Ctrl-C. A
        searcher whose state cannot be stored as data (see
        :class:`~prunetrain.search.base.Searcher`) runs on without checkpoints,
        with a warning.
    resume : CheckpointState, optional
        The state of a checkpoint (:func:`~prunetrain.search.checkpoint.read_checkpoint`)
        to continue from, on a problem rebuilt as the checkpointed one was
        (same network, data, keep rule, batch schedule and seed, same backend):
        a checkpoint of another network is refused. With the same evaluation
        budget the result is that of the uninterrupted search, exactly.

    Returns
    -------
    SearchResult
        The best mask on validation among those the searcher recommended
        (the last one validated, for a searcher that sets ``returns_last``).
        Ctrl-C ends the search early and still returns the best so far
        (``stopped_by="interrupted"``): the first at the end of the current
        step (after writing a checkpoint), a second at once. Inside
        :func:`~prunetrain.interrupts.deferred_interrupt` blocks that cover
        them (``prunetrain search``'s), SIGTERM and SIGHUP do the same, and
        the result's ``signal`` says which signal stopped the search.

    Notes
    -----
    The whole search runs with BLAS on one thread
    (:func:`prunetrain.threads.one_blas_thread`): with an evaluation budget
    the same seed gives the same ticket whatever the thread settings.

    Before the clock starts, every kernel of the backend runs once on a few
    rows (:func:`prunetrain.backends.warm_up`), so Numba or CUDA compilation
    is not charged to the budget; its time is ``compile_seconds`` of the
    result (of this process, when resuming).
    """
    budget = Budget.parse(budget)
    patience = check_number(
        "patience", patience, 1, None, open_low=False, integer=True, optional=True
    )
    if (searcher is None) == (resume is None):
        raise PrunetrainError("run needs a searcher or a checkpoint state to resume, not both")
    if init_mask is not None:
        init_mask = check_mask(init_mask, problem.shapes)
    interval = (
        validation_interval
        if validation_interval is not None
        else VALIDATION_RATIO * (problem.n_val or problem.n_train)
    )
    compile_seconds = warm_up(problem.backend, problem.X_train, problem.y_train)
    if compile_seconds > 1.0:
        logger.info(
            "compiled the %s backend's kernels in %.1f s, outside the budget "
            "(cached: later runs load them)",
            problem.backend.name,
            compile_seconds,
        )
    state = {  # everything of the loop a checkpoint holds besides the searcher and problem
        "history": [],
        "best": {},
        "last": {},  # the last validated mask, kept when the searcher returns_last
        "since_better": 0,
        "last_validation": 0.0,
        "step_start": 0.0,  # budget usage when the latest step (or the setup) began
    }
    problem.start(budget, time.perf_counter)  # the problem charges the budget, from now
    stopped_by = "budget"
    used, elapsed = problem.evaluations_used, problem.seconds_used  # this run's, so far

    if resume is not None:
        saved = resume.restore(problem)
        searcher = saved["searcher"]
        state.update(_checked_loop_state(saved["loop"], problem, resume))
        problem.set_state(saved["problem"])  # with the seconds and evaluations the run had used
    history, best, last = state["history"], state["best"], state["last"]

    def validate() -> bool:
        """Validate the recommended mask, record it, call the callbacks; True if one says stop."""
        mask, train_loss = searcher.recommend()
        # Before its first step a searcher has no training loss yet (inf): record None.
        train_loss = float(train_loss) if np.isfinite(train_loss) else None
        val_loss, val_acc = problem.validate(mask)
        better = not best or (val_acc, -val_loss) > (best["val_accuracy"], -best["val_loss"])
        scores = dict(train_loss=train_loss, val_loss=val_loss, val_accuracy=val_acc)
        if better:
            best.update(mask=[m.copy() for m in mask], **scores)
            state["since_better"] = 0
        else:
            state["since_better"] += 1
        if searcher.returns_last:
            last.update(mask=[m.copy() for m in mask], **scores)
        row = {
            "evaluations": used(),
            "sample_forwards": problem.sample_forwards_used(),
            "seconds": elapsed(),
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "best_val_accuracy": best["val_accuracy"],
            "improved": better or searcher.returns_last,  # the mask the run would return now
        }
        history.append(row)
        return any(cb(row, mask) for cb in callbacks)

    last_checkpoint = time.perf_counter()

    def save_checkpoint() -> None:
        nonlocal checkpoint, last_checkpoint
        last_checkpoint = time.perf_counter()
        try:
            checkpoint.write(searcher, problem, state)
        except NotCheckpointable as e:
            warnings.warn(
                f"searcher {searcher.name!r} cannot be checkpointed ({e}); this search "
                "continues without checkpoints (see the Searcher docstring)",
                stacklevel=3,
            )
            checkpoint = None

    def usage() -> float:
        """What the budget counts: evaluations, or seconds."""
        return used() if budget.evaluations is not None else elapsed()

    total = budget.evaluations if budget.evaluations is not None else budget.seconds

    bar = Progress(
        total,
        unit="eval" if budget.evaluations is not None else "s",
        label=searcher.name,
        enabled=progress,
    )

    def shown() -> tuple[float, dict]:
        seconds = elapsed()
        done = used() if budget.evaluations is not None else min(seconds, total)
        return done, {
            "evals": f"{used():.0f}",
            "loss": f"{history[-1]['train_loss'] or float('nan'):.4f}",
            "val_acc": f"{best['val_accuracy']:.4f}",
            "evals_s": f"{used() / max(seconds, 1e-9):.0f}",
        }

    # A step cannot be stopped halfway, so the budget is checked before each: a search
    # overshoots it by less than its last step (with the validation after it; setup counts
    # as a step), and records by how much.
    overshoot = last_step = 0.0
    signum = None
    try:
        with deferred_interrupt(search=True) as interrupt:
            if resume is None:
                state["step_start"] = usage()
                searcher.setup(problem, searcher_rng(seed), init_mask)
                if validate():
                    stopped_by = "callback"
                state["last_validation"] = problem.n_sample_forwards
                if checkpoint is not None:
                    save_checkpoint()
            while stopped_by != "callback":
                # One reading of the clock both decides and dates the step, so a pause between
                # two readings cannot start a step that the budget has already ended.
                start = usage()
                if start >= total:
                    break
                state["step_start"] = start
                searcher.step()
                if searcher.finished:
                    stopped_by = "finished"
                    break
                if problem.n_sample_forwards - state["last_validation"] >= interval:
                    state["last_validation"] = problem.n_sample_forwards
                    if validate():
                        stopped_by = "callback"
                        break
                    if patience is not None and state["since_better"] >= patience:
                        stopped_by = "early_stopping"
                        break
                if interrupt.is_set():
                    stopped_by, signum = "interrupted", interrupt.signum
                    if checkpoint is not None:
                        save_checkpoint()
                    break
                if (
                    checkpoint is not None
                    and time.perf_counter() - last_checkpoint >= checkpoint.every
                ):
                    save_checkpoint()
                if progress:
                    done, fields = shown()
                    bar.update(done, **fields)
            now = usage()
            last_step = now - state["step_start"]
            overshoot = max(0.0, now - total) if stopped_by == "budget" else 0.0
            if history[-1]["evaluations"] != used():
                validate()  # the search ends here whatever the callbacks say
    except KeyboardInterrupt as e:  # a second Ctrl-C, or one outside the main thread
        stopped_by, signum = "interrupted", signal_of(e)
        if not best:
            raise
    finally:
        if progress and best:
            done, fields = shown()
            bar.close(done, **fields)  # the final numbers, drawn once
        bar.discard()  # nothing validated: a failed setup, whose error says it all
    chosen = last if searcher.returns_last and last else best
    return SearchResult(
        mask=chosen["mask"],
        train_loss=chosen["train_loss"],
        val_loss=chosen["val_loss"],
        val_accuracy=chosen["val_accuracy"],
        history=history,
        evaluations=used(),
        sample_forwards=problem.sample_forwards_used(),
        seconds=elapsed(),
        stopped_by=stopped_by,
        method=searcher.name,
        params=searcher.get_params(),
        compile_seconds=compile_seconds,
        budget_overshoot=float(overshoot),
        last_step=float(last_step),
        signal=signum,
    )


#: The loop state's entries and the types of their values (a checkpoint's is checked).
_LOOP_STATE = {
    "history": list,
    "best": dict,
    "last": dict,
    "since_better": int,
    "last_validation": float,
    "step_start": float,
}
_ROW_KEYS = {
    "evaluations",
    "sample_forwards",
    "seconds",
    "train_loss",
    "val_loss",
    "val_accuracy",
    "best_val_accuracy",
    "improved",
}
_SCORES = ("train_loss", "val_loss", "val_accuracy")
_COUNTS = ("evaluations", "sample_forwards", "seconds")


def _checked_loop_state(loop: object, problem: Problem, resume: CheckpointState) -> dict:
    """The loop state of a checkpoint, refused in one line unless it is one this loop wrote."""

    def number(value: object, optional: bool = False, finite: bool = True) -> bool:
        if value is None:
            return optional
        numeric = isinstance(value, (int, float, np.integer, np.floating))
        numeric = numeric and not isinstance(value, (bool, np.bool_))
        return numeric and (not finite or math.isfinite(value))

    def score(key: str, value: object) -> bool:  # a loss may be infinite; a count may not
        return number(value, optional=key == "train_loss", finite=key in _COUNTS)

    def damaged(why: str) -> PrunetrainError:
        return PrunetrainError(f"checkpoint {resume.path} is damaged ({why})")

    if not isinstance(loop, dict) or set(loop) != set(_LOOP_STATE):
        raise damaged("its loop state has other entries")
    for key, kind in _LOOP_STATE.items():
        value = loop[key]
        ok = number(value) if kind in (int, float) else isinstance(value, kind)
        if not ok or (kind is int and (value != int(value) or value < 0)):
            raise damaged(f"its loop state's {key} is {str(value)[:40]!r}")
    for row in loop["history"]:
        if not isinstance(row, dict) or set(row) != _ROW_KEYS:
            raise damaged("a row of its history has other entries")
        if not all(score(k, row[k]) for k in _ROW_KEYS - {"improved"}):
            raise damaged("a row of its history holds a value that is not a number")
    for key in ("best", "last"):
        kept = loop[key]
        if not kept:
            continue
        if set(kept) != {"mask", *_SCORES} or not all(score(k, kept[k]) for k in _SCORES):
            raise damaged(f"its {key} mask's record has other entries")
        try:
            kept["mask"] = check_mask(kept["mask"], problem.shapes)
        except (PrunetrainError, TypeError, ValueError):
            raise damaged(f"its {key} mask does not fit the network") from None
    if not loop["history"] or not loop["best"]:
        raise damaged("it has no validated mask")
    return loop
