"""The one run loop every searcher shares: budget, validation, early stopping, progress, Ctrl-C."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from prunetrain.backends import warm_up
from prunetrain.errors import PrunetrainError
from prunetrain.masks import Mask, check_mask
from prunetrain.network import check_seed
from prunetrain.objective import Budget, Problem
from prunetrain.progress import Progress
from prunetrain.search.base import Searcher, SearchResult

logger = logging.getLogger(__name__)

Callback = Callable[[dict], "bool | None"]

#: Validate when this many validation-set sizes of training sample-forwards
#: have passed since the last validation, so validation costs about 10 %.
VALIDATION_RATIO = 10


def searcher_rng(seed: int) -> np.random.Generator:
    """The searcher's random stream for ``seed`` (separate from the batch order)."""
    return np.random.default_rng([check_seed(seed), 0x5EA4C4])


def run(
    problem: Problem,
    searcher: Searcher,
    budget: str | float | Budget,
    *,
    seed: int = 0,
    init_mask: Mask | None = None,
    patience: int | None = None,
    validation_interval: float | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = False,
) -> SearchResult:
    """Run ``searcher`` on ``problem`` until ``budget`` is spent.

    Parameters
    ----------
    problem : Problem
        Network, training/validation data, keep rule, backend.
    searcher : Searcher
        An unbound searcher (``make_searcher(name, **params)``).
    budget : str, float or Budget
        ``"30s"``, ``"10m"``, ``"1h"``, ``"20000evals"``, or seconds. With an
        evaluation budget the same seed gives the same mask.
    seed : int
        Seed of the searcher's random stream.
    init_mask : mask, optional
        Start from this mask (a warm start or a resumed search).
    patience : int, optional
        Stop after this many validations in a row without a better
        validation accuracy. ``None`` never stops early.
    validation_interval : float, optional
        Training sample-forwards between validations. By default
        ``10 × (validation set size)`` (the training set stands in for an empty
        validation set), so validation costs about 10 %.
    callbacks : sequence of callables
        Each is called with the history row after every validation; one that
        returns ``True`` stops the search (``stopped_by="callback"``). A row
        with ``improved`` true means ``searcher.recommend()`` is now the mask
        the search would return.
    progress : bool
        Show progress on stderr (:class:`~prunetrain.progress.Progress`: a
        bar on a terminal, plain lines otherwise): evaluations, best train
        loss, validation accuracy, evaluations/s.

    Returns
    -------
    SearchResult
        The best mask on validation among those the searcher recommended.
        Ctrl-C ends the search early and still returns the best so far
        (``stopped_by="interrupted"``).

    Notes
    -----
    Before the clock starts, every kernel of the backend runs once on a few
    rows (:func:`prunetrain.backends.warm_up`), so Numba or CUDA compilation
    is not charged to the budget; its time is ``compile_seconds`` of the
    result.
    """
    budget = Budget.parse(budget)
    if patience is not None and patience < 1:
        raise PrunetrainError(f"patience must be >= 1 validations, got {patience}")
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
    start = time.perf_counter()
    start_evals, start_forwards = problem.n_evaluations, problem.n_sample_forwards
    history: list[dict] = []
    best: dict = {}
    since_better = 0
    stopped_by = "budget"

    def elapsed() -> float:
        return time.perf_counter() - start

    def used() -> float:
        return problem.n_evaluations - start_evals

    def validate() -> bool:
        """Validate the recommended mask, record it; True if it is the best so far."""
        nonlocal since_better
        mask, train_loss = searcher.recommend()
        # Before its first step a searcher has no training loss yet (inf): record None.
        train_loss = float(train_loss) if np.isfinite(train_loss) else None
        val_loss, val_acc = problem.validate(mask)
        better = not best or (val_acc, -val_loss) > (best["val_accuracy"], -best["val_loss"])
        if better:
            best.update(
                mask=[m.copy() for m in mask],
                train_loss=train_loss,
                val_loss=val_loss,
                val_accuracy=val_acc,
            )
            since_better = 0
        else:
            since_better += 1
        history.append(
            {
                "evaluations": used(),
                "sample_forwards": problem.n_sample_forwards - start_forwards,
                "seconds": elapsed(),
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "best_val_accuracy": best["val_accuracy"],
                "improved": better,
            }
        )
        return better

    def spent() -> bool:
        if budget.evaluations is not None:
            return used() >= budget.evaluations
        return elapsed() >= budget.seconds

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

    try:
        searcher.budget_used = lambda: budget.fraction_used(used(), elapsed())
        searcher.setup(problem, searcher_rng(seed), init_mask)
        validate()
        last_validation = problem.n_sample_forwards
        while not spent():
            searcher.step()
            if searcher.finished:
                stopped_by = "finished"
                break
            if problem.n_sample_forwards - last_validation >= interval:
                last_validation = problem.n_sample_forwards
                validate()
                if any(cb(history[-1]) for cb in callbacks):
                    stopped_by = "callback"
                    break
                if patience is not None and since_better >= patience:
                    stopped_by = "early_stopping"
                    break
            if progress:
                done, fields = shown()
                bar.update(done, **fields)
        if history[-1]["evaluations"] != used():
            validate()
    except KeyboardInterrupt:
        stopped_by = "interrupted"
        if not best:
            raise
    finally:
        if progress and best:
            done, fields = shown()
            bar.close(done, **fields)  # the final numbers, drawn once
        bar.close()
    return SearchResult(
        mask=best["mask"],
        train_loss=best["train_loss"],
        val_loss=best["val_loss"],
        val_accuracy=best["val_accuracy"],
        history=history,
        evaluations=used(),
        sample_forwards=problem.n_sample_forwards - start_forwards,
        seconds=elapsed(),
        stopped_by=stopped_by,
        method=searcher.name,
        params=searcher.get_params(),
        compile_seconds=compile_seconds,
    )
