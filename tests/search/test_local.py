"""Local searchers: they beat random masks, and each variant does what it says.

Keep rules, seeds, budgets and interrupts: ``tests/search/test_searcher_contract.py``.
"""

import numpy as np
import pytest
from conftest import planted

from prunetrain.errors import PrunetrainError
from prunetrain.masks import KeepRule
from prunetrain.problem import Problem
from prunetrain.runs import evaluate_ticket
from prunetrain.search import make_searcher, run
from prunetrain.ticket import Ticket

LOCAL = ["accumulate", "hill", "anneal", "tabu", "steepest"]


@pytest.fixture(scope="module")
def planted_problem():
    return planted()


@pytest.mark.parametrize("method", LOCAL)
def test_planted_problem_beats_random_and_the_planted_loss(planted_problem, method):
    net, data, target = planted_problem
    problem = Problem(net, data, KeepRule(0.5), backend="numpy", batch_size=None)
    result = run(problem, make_searcher(method), "1500evals", seed=0)
    found = evaluate_ticket(Ticket(net, result.mask, KeepRule(0.5)), data)["train"]
    planted_fit = evaluate_ticket(Ticket(net, target, KeepRule(0.5)), data)["train"]
    start = evaluate_ticket(
        Ticket(net, problem.random_mask(np.random.default_rng(99)), KeepRule(0.5)), data
    )["train"]
    # Cross-entropy, the objective, gets below the planted mask's own (which has
    # accuracy 1 but small margins), far below a random mask's; the mask chosen on
    # validation (by accuracy) is far more accurate than a random one.
    best_train_loss = min(r["train_loss"] for r in result.history[1:])
    assert best_train_loss < planted_fit["loss"] < start["loss"]
    assert found["accuracy"] >= 0.7 > start["accuracy"] + 0.1


def test_fixed_batch_hill_climbing_never_gets_worse(planted_problem):
    net, data, _ = planted_problem
    problem = Problem(net, data, KeepRule(0.5), backend="numpy", batch_size=None)
    searcher = make_searcher("hill")
    losses = []
    run(
        problem,
        searcher,
        "300evals",
        callbacks=[
            lambda row, mask: (
                searcher.state is not None  # set by the first step
                and losses.append(searcher.state.loss)
            )
        ],
        validation_interval=1,
    )
    assert all(b <= a + 1e-12 for a, b in zip(losses, losses[1:]))
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(
    "method, params, match",
    [
        ("hill", {"variant": "worst"}, "variant"),
        ("hill", {"candidates": 0}, "candidates"),
        ("anneal", {"t_start": -1.0}, "t_start"),
        ("tabu", {"tenure": 1.5}, "tenure"),
        ("steepest", {"block": 0}, "block"),
        ("accumulate", {"decay": 1.0}, "decay"),
        ("accumulate", {"flip_fraction": 0.0}, "flip_fraction"),
        ("accumulate", {"shrink": -1.0}, "shrink"),
    ],
)
def test_bad_hyperparameters(planted_problem, method, params, match):
    net, data, _ = planted_problem
    problem = Problem(net, data, KeepRule(0.5), backend="numpy")
    with pytest.raises(PrunetrainError, match=match):
        run(problem, make_searcher(method, **params), "10evals")


def test_annealing_temperature_is_calibrated_and_cools(planted_problem):
    net, data, _ = planted_problem
    problem = Problem(net, data, KeepRule(0.5), backend="numpy")
    searcher = make_searcher("anneal")
    temps = []
    run(
        problem,
        searcher,
        "200evals",
        callbacks=[
            lambda row, mask: (
                searcher._t0 is not None  # set by the first step
                and temps.append(searcher.temperature())
            )
        ],
        validation_interval=1,
    )
    assert searcher._t0 > 0
    assert temps[0] > temps[-1] > 0
    assert temps[-1] == pytest.approx(searcher._t0 * 1e-3, rel=0.2)
