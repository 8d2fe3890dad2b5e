"""The searcher contract: what every registered searcher must do, checked on each of them.

The suite iterates over ``SEARCHERS`` when it is collected, so a searcher
registered later is covered without a line here. On a tiny planted problem
(12-16-4, NumPy backend, small evaluation budgets) each searcher must:

- return, and recommend at every validation, masks that satisfy the keep
  rule, under each of the three rules;
- give the same mask and history for the same seed, another mask for another;
- refuse a bad hyperparameter (negative, NaN, infinite, of the wrong type)
  with a :class:`~prunetrain.errors.PrunetrainError` before any evaluation;
- stay within its budget but for its last step, in evaluations and in time;
- return the best validated mask when interrupted (Ctrl-C, once or twice).

A searcher that accepts a clearly bad value is listed in ``KNOWN_GAPS``
(a strict xfail: fixing it makes the suite say so).
"""

from __future__ import annotations

import itertools
import math
import signal
import types

import numpy as np
import pytest
from conftest import planted

from prunetrain.errors import PrunetrainError
from prunetrain.masks import KEEP_KINDS, KeepRule
from prunetrain.problem import Problem
from prunetrain.search import SEARCHERS, loop, make_searcher, run

METHODS = sorted(SEARCHERS)
KEEP = 0.3


@pytest.fixture(scope="module")
def planted_problem():
    return planted(seed=0, sizes=(12, 16, 4), n=400)


def make_problem(planted_problem, kind="layer", seed=1):
    net, data, _ = planted_problem
    return Problem(net, data, KeepRule(KEEP, kind), backend="numpy", batch_size=64, seed=seed)


def recording(searcher):
    """Record a copy of every mask ``searcher`` recommends (the run loop asks once per validation)."""
    recommended = []
    recommend = searcher.recommend

    def recording_recommend():
        mask, loss = recommend()
        recommended.append([np.array(m, dtype=bool) for m in mask])
        return mask, loss

    searcher.recommend = recording_recommend
    return recommended


def without_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def same_mask(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def assert_returns_the_best_validated_mask(result, recommended, rule, returns_last=False):
    """``result.mask`` is the mask recommended at the last validation that improved, and is valid.

    For a searcher that ``returns_last``, every validation "improves" and the last is returned.
    """
    history = result.history
    assert len(recommended) == len(history)  # one recommendation per validation
    if returns_last:
        assert all(row["improved"] for row in history)
        assert (result.val_accuracy, result.val_loss) == (
            history[-1]["val_accuracy"],
            history[-1]["val_loss"],
        )
        assert same_mask(result.mask, recommended[-1])
        assert rule.satisfied_by(result.mask)
        return
    best = max(range(len(history)), key=lambda i: (history[i]["improved"], i))
    assert history[best]["improved"]
    assert (result.val_accuracy, -result.val_loss) == max(
        (row["val_accuracy"], -row["val_loss"]) for row in history
    )
    assert result.val_accuracy == history[best]["val_accuracy"]
    assert result.val_loss == history[best]["val_loss"]
    assert same_mask(result.mask, recommended[best])
    assert rule.satisfied_by(result.mask)


# --- (1) the keep rule, (2) seeds -------------------------------------------------------------


@pytest.mark.parametrize("kind", KEEP_KINDS)
@pytest.mark.parametrize("method", METHODS)
def test_keep_rule_holds_and_seed_reproduces(planted_problem, method, kind):
    rule = KeepRule(KEEP, kind)

    def search(seed):
        problem = make_problem(planted_problem, kind)
        searcher = make_searcher(method)
        recommended = recording(searcher)
        return run(problem, searcher, "120evals", seed=seed), recommended

    (a, recommended), (b, _), (c, _) = search(1), search(1), search(2)
    assert rule.satisfied_by(a.mask)
    assert len(recommended) >= 2  # the first mask and at least one after a step
    for mask in recommended:
        assert rule.satisfied_by(mask)
    assert same_mask(a.mask, b.mask)
    assert without_seconds(a.history) == without_seconds(b.history)
    assert (a.evaluations, a.stopped_by) == (b.evaluations, b.stopped_by)
    # Another searcher seed on the same problem (same batches): another start, another mask.
    assert a.history[0]["val_loss"] != c.history[0]["val_loss"]
    assert not same_mask(a.mask, c.mask)


# --- (3) bad hyperparameters ------------------------------------------------------------------

#: (method, hyperparameter) pairs whose bad values a searcher does not refuse yet, and why.
KNOWN_GAPS: dict[tuple[str, str], str] = {}


def bad_values(default) -> list:
    """Values no hyperparameter with this default may take, by the default's type."""
    if isinstance(default, bool):
        return ["yes"]
    if isinstance(default, int):
        return [-1, math.nan, math.inf, 2.5, "abc"]
    if isinstance(default, float):
        return [-1.0, math.nan, math.inf, "abc"]
    if isinstance(default, str):
        return ["no-such-choice", 3]
    if default is None:  # an optional number or choice
        return [-1, math.nan, "abc"]
    return []  # a searcher or other object: nothing generic to say


def bad_hyperparameters() -> list:
    cases = []
    for method in METHODS:
        for param, default in SEARCHERS[method]().get_params().items():
            gap = KNOWN_GAPS.get((method, param))
            marks = [pytest.mark.xfail(strict=True, reason=gap)] if gap else []
            for value in bad_values(default):
                case = pytest.param(
                    method, param, value, marks=marks, id=f"{method}-{param}={value!r}"
                )
                cases.append(case)
    return cases


def test_every_hyperparameter_has_bad_values_to_try():
    untested = [
        (method, param)
        for method in METHODS
        for param, default in SEARCHERS[method]().get_params().items()
        if not bad_values(default)
    ]
    assert untested == []


@pytest.mark.parametrize("method, param, value", bad_hyperparameters())
def test_bad_hyperparameters_are_refused_before_any_evaluation(
    planted_problem, method, param, value
):
    problem = make_problem(planted_problem)
    with pytest.raises(PrunetrainError):
        run(problem, make_searcher(method, **{param: value}), "20evals", seed=0)
    assert problem.n_evaluations == 0 and problem.n_sample_forwards == 0
    assert problem.n_validations == 0


# --- (4) budgets --------------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [50, 300])
@pytest.mark.parametrize("method", METHODS)
def test_evaluation_budget_is_overshot_by_less_than_one_step(planted_problem, method, budget):
    problem = make_problem(planted_problem)
    result = run(problem, make_searcher(method), f"{budget}evals", seed=0)
    assert result.evaluations == problem.n_evaluations  # validation is not charged
    assert 0 < result.last_step <= result.evaluations
    assert result.evaluations <= budget + result.last_step
    if result.stopped_by != "budget":  # a searcher that finished by itself uses less
        assert result.stopped_by == "finished"
        assert result.budget_overshoot == 0.0 and result.evaluations < budget
        return
    assert result.evaluations >= budget
    assert result.budget_overshoot == result.evaluations - budget
    # The budget is checked before every step: only the last one can cross it.
    assert result.budget_overshoot < result.last_step or result.budget_overshoot == 0.0


@pytest.mark.parametrize("method", METHODS)
def test_a_tiny_time_budget_stops_the_search(planted_problem, method):
    seconds = 0.05
    result = run(make_problem(planted_problem), make_searcher(method), f"{seconds}s", seed=0)
    assert result.stopped_by in ("budget", "finished")
    assert result.seconds < 30  # it stopped (the steps here take milliseconds)
    if result.stopped_by == "budget":
        assert result.seconds >= seconds
        assert 0.0 <= result.budget_overshoot < result.last_step
        assert result.budget_overshoot <= result.seconds - seconds
    assert KeepRule(KEEP).satisfied_by(result.mask)


def test_a_step_starts_only_before_the_budget_ends_whatever_the_clock_does(
    planted_problem, monkeypatch
):
    """A clock that moves on every reading (a pause anywhere) never starts a step after the end."""
    for seconds in [k + 0.5 for k in range(4, 14)]:
        ticks = itertools.count()
        clock = types.SimpleNamespace(perf_counter=lambda ticks=ticks: float(next(ticks)))
        monkeypatch.setattr(loop, "time", clock)
        result = run(make_problem(planted_problem), make_searcher("random"), seconds, seed=0)
        assert result.stopped_by == "budget" and result.seconds >= seconds
        assert 0.0 <= result.budget_overshoot < result.last_step  # the last step began in time


# --- (5) interrupts -------------------------------------------------------------------------------


def interrupt_at_step(searcher, n, how):
    """Make the ``n``-th step a Ctrl-C: ``"soft"`` sends SIGINT when the step ends (a first
    Ctrl-C), ``"hard"`` raises KeyboardInterrupt before it starts (a second one, mid-step)."""
    step, calls = searcher.step, []

    def interrupting_step():
        calls.append(None)
        if how == "hard" and len(calls) == n:
            raise KeyboardInterrupt
        step()
        if how == "soft" and len(calls) == n:
            signal.raise_signal(signal.SIGINT)

    searcher.step = interrupting_step
    return calls


@pytest.mark.parametrize("how", ["soft", "hard"])
@pytest.mark.parametrize("method", METHODS)
def test_an_interrupt_returns_the_best_validated_mask(planted_problem, method, how):
    """The best validated mask, or the last for a searcher that ``returns_last``."""
    n = 4
    rule = KeepRule(KEEP)
    problem = make_problem(planted_problem)
    searcher = make_searcher(method)
    recommended = recording(searcher)
    calls = interrupt_at_step(searcher, n, how)
    result = run(problem, searcher, "100000evals", seed=0, validation_interval=1)
    assert result.stopped_by == "interrupted" and result.interrupted
    assert len(calls) == n  # no step after the interrupt
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert result.evaluations == problem.n_evaluations
    assert len(result.history) >= (n + 1 if how == "soft" else n)  # the first, then one a step
    if how == "soft":  # stopped at a step boundary: the last mask was validated too
        assert result.history[-1]["evaluations"] == result.evaluations
    for mask in recommended:
        assert rule.satisfied_by(mask)
    assert_returns_the_best_validated_mask(result, recommended, rule, searcher.returns_last)
    assert problem.validate(result.mask) == (result.val_loss, result.val_accuracy)
