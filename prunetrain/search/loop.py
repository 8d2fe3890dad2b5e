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


def searcher_rng(seed: int) -> np.random.Generator:
    """The searcher's random stream for ``seed`` (separate from the batch order)."""
    return np.random.default_rng([check_seed(seed), 0x5EA4C4])


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

    The door for a caller that has a problem and a searcher in hand (a test,
    a benchmark); a run of the package goes through :mod:`prunetrain.runs`,
    whose options are checked where they enter. Here ``budget`` and
    ``patience`` are checked, and :class:`RunLoop` runs the search.

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
    loop = RunLoop(
        problem,
        searcher,
        budget,
        patience=patience,
        validation_interval=validation_interval,
        callbacks=callbacks,
        progress=progress,
        checkpoint=checkpoint,
    )
    return loop.run(seed=seed, init_mask=init_mask, resume=resume)


class RunLoop:
    """One search, from the searcher's setup (or a checkpoint) to its result.

    Made with checked options (:func:`run` and :mod:`prunetrain.runs` check
    them where they enter); :meth:`run` runs it once. Between steps it
    validates the recommended mask (:meth:`validate`), writes checkpoints
    (:meth:`save_checkpoint`) and shows progress (:meth:`show`). What a
    checkpoint holds of the loop is :attr:`state`.
    """

    def __init__(
        self,
        problem: Problem,
        searcher: Searcher | None,
        budget: Budget,
        *,
        patience: int | None = None,
        validation_interval: float | None = None,
        callbacks: Sequence[Callback] = (),
        progress: bool = False,
        checkpoint: Checkpoint | None = None,
    ):
        self.problem, self.searcher, self.budget = problem, searcher, budget
        self.patience, self.callbacks = patience, callbacks
        self.progress, self.checkpoint = progress, checkpoint
        self.interval = (
            validation_interval
            if validation_interval is not None
            else VALIDATION_RATIO * (problem.n_val or problem.n_train)
        )
        self.total = budget.evaluations if budget.evaluations is not None else budget.seconds
        self.state = {  # everything of the loop a checkpoint holds besides searcher and problem
            "history": [],
            "best": {},
            "last": {},  # the last validated mask, kept when the searcher returns_last
            "since_better": 0,
            "last_validation": 0.0,
            "step_start": 0.0,  # budget usage when the latest step (or the setup) began
        }
        self.last_checkpoint = 0.0
        self.stopped_by = "budget"
        self.signum = None

    @property
    def best(self) -> dict:
        """The best validated mask with its scores (empty before the first validation)."""
        return self.state["best"]

    @property
    def history(self) -> list[dict]:
        """The rows validation has recorded."""
        return self.state["history"]

    def usage(self) -> float:
        """What the budget counts: evaluations, or seconds."""
        if self.budget.evaluations is not None:
            return self.problem.evaluations_used()
        return self.problem.seconds_used()

    @one_blas_thread()  # the same floats with any number of threads (prunetrain.threads)
    def run(
        self,
        *,
        seed: int = 0,
        init_mask: Mask | None = None,
        resume: CheckpointState | None = None,
    ) -> SearchResult:
        """Set the searcher up (or restore it from ``resume``), step it until the budget is
        spent or something stops it, and return the best mask (see :func:`run`)."""
        problem = self.problem
        if (self.searcher is None) == (resume is None):
            raise PrunetrainError("run needs a searcher or a checkpoint state to resume, not both")
        if init_mask is not None:
            init_mask = check_mask(init_mask, problem.shapes)
        compile_seconds = self.warm_up()
        problem.start(self.budget, time.perf_counter)  # the problem charges the budget, from now
        if resume is not None:
            saved = resume.restore(problem)
            self.searcher = saved["searcher"]
            self.state.update(_checked_loop_state(saved["loop"], problem, resume))
            problem.set_state(saved["problem"])  # with the seconds and evaluations used so far
        self.last_checkpoint = time.perf_counter()
        self.bar = Progress(
            self.total,
            unit="eval" if self.budget.evaluations is not None else "s",
            label=self.searcher.name,
            enabled=self.progress,
        )
        overshoot = last_step = 0.0
        try:
            with deferred_interrupt(search=True) as interrupt:
                if resume is None:
                    self.set_up(seed, init_mask)
                self.step_until_stopped(interrupt)
                # A step cannot be stopped halfway, so the budget is checked before each: a
                # search overshoots it by less than its last step (with the validation after
                # it; setup counts as a step), and records by how much.
                now = self.usage()
                last_step = now - self.state["step_start"]
                overshoot = max(0.0, now - self.total) if self.stopped_by == "budget" else 0.0
                if self.history[-1]["evaluations"] != problem.evaluations_used():
                    self.validate()  # the search ends here whatever the callbacks say
        except KeyboardInterrupt as e:  # a second Ctrl-C, or one outside the main thread
            self.stopped_by, self.signum = "interrupted", signal_of(e)
            if not self.best:
                raise
        finally:
            if self.progress and self.best:
                done, fields = self.shown()
                self.bar.close(done, **fields)  # the final numbers, drawn once
            self.bar.discard()  # nothing validated: a failed setup, whose error says it all
        return self.result(compile_seconds, overshoot, last_step)

    def warm_up(self) -> float:
        """Compile the backend's kernels before the clock starts; the seconds it took."""
        backend = self.problem.backend
        compile_seconds = warm_up(backend, self.problem.X_train, self.problem.y_train)
        if compile_seconds > 1.0:
            logger.info(
                "compiled the %s backend's kernels in %.1f s, outside the budget "
                "(cached: later runs load them)",
                backend.name,
                compile_seconds,
            )
        return compile_seconds

    def set_up(self, seed: int, init_mask: Mask | None) -> None:
        """Set the searcher up (charged as a step), validate its first mask, checkpoint it."""
        self.state["step_start"] = self.usage()
        self.searcher.setup(self.problem, searcher_rng(seed), init_mask)
        if self.validate():
            self.stopped_by = "callback"
        self.state["last_validation"] = self.problem.n_sample_forwards
        if self.checkpoint is not None:
            self.save_checkpoint()

    def step_until_stopped(self, interrupt) -> None:
        """Step the searcher until the budget is spent, it finishes, early stopping, a callback
        or an interrupt stops it; validate, checkpoint and show progress between steps."""
        problem, searcher, state = self.problem, self.searcher, self.state
        while self.stopped_by != "callback":
            # One reading of the clock both decides and dates the step, so a pause between
            # two readings cannot start a step that the budget has already ended.
            start = self.usage()
            if start >= self.total:
                return
            state["step_start"] = start
            searcher.step()
            if searcher.finished:
                self.stopped_by = "finished"
                return
            if problem.n_sample_forwards - state["last_validation"] >= self.interval:
                state["last_validation"] = problem.n_sample_forwards
                if self.validate():
                    self.stopped_by = "callback"
                    return
                if self.patience is not None and state["since_better"] >= self.patience:
                    self.stopped_by = "early_stopping"
                    return
            if interrupt.is_set():
                self.stopped_by, self.signum = "interrupted", interrupt.signum
                if self.checkpoint is not None:
                    self.save_checkpoint()
                return
            if (
                self.checkpoint is not None
                and time.perf_counter() - self.last_checkpoint >= self.checkpoint.every
            ):
                self.save_checkpoint()
            if self.progress:
                done, fields = self.shown()
                self.bar.update(done, **fields)

    def validate(self) -> bool:
        """Validate the recommended mask, record it, call the callbacks; True if one says stop."""
        problem, searcher, state = self.problem, self.searcher, self.state
        best, last = state["best"], state["last"]
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
            "evaluations": problem.evaluations_used(),
            "sample_forwards": problem.sample_forwards_used(),
            "seconds": problem.seconds_used(),
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "best_val_accuracy": best["val_accuracy"],
            "improved": better or searcher.returns_last,  # the mask the run would return now
        }
        state["history"].append(row)
        return any(cb(row, mask) for cb in self.callbacks)

    def save_checkpoint(self) -> None:
        """Write the whole state; a searcher that cannot be stored runs on without checkpoints."""
        self.last_checkpoint = time.perf_counter()
        try:
            self.checkpoint.write(self.searcher, self.problem, self.state)
        except NotCheckpointable as e:
            warnings.warn(
                f"searcher {self.searcher.name!r} cannot be checkpointed ({e}); this search "
                "continues without checkpoints (see the Searcher docstring)",
                stacklevel=4,
            )
            self.checkpoint = None

    def shown(self) -> tuple[float, dict]:
        """How far the progress bar is, and the numbers it shows."""
        used, seconds = self.problem.evaluations_used(), self.problem.seconds_used()
        done = used if self.budget.evaluations is not None else min(seconds, self.total)
        return done, {
            "evals": f"{used:.0f}",
            "loss": f"{self.history[-1]['train_loss'] or float('nan'):.4f}",
            "val_acc": f"{self.best['val_accuracy']:.4f}",
            "evals_s": f"{used / max(seconds, 1e-9):.0f}",
        }

    def result(self, compile_seconds: float, overshoot: float, last_step: float) -> SearchResult:
        """The search's result: the mask chosen (the best, or the last for ``returns_last``)."""
        searcher, problem = self.searcher, self.problem
        last = self.state["last"]
        chosen = last if searcher.returns_last and last else self.best
        return SearchResult(
            mask=chosen["mask"],
            train_loss=chosen["train_loss"],
            val_loss=chosen["val_loss"],
            val_accuracy=chosen["val_accuracy"],
            history=self.history,
            evaluations=problem.evaluations_used(),
            sample_forwards=problem.sample_forwards_used(),
            seconds=problem.seconds_used(),
            stopped_by=self.stopped_by,
            method=searcher.name,
            params=searcher.get_params(),
            compile_seconds=compile_seconds,
            budget_overshoot=float(overshoot),
            last_step=float(last_step),
            signal=self.signum,
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
