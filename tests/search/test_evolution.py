"""Evolutionary searchers: operators keep counts, one backend call per generation, seeds reproduce, planted problems are solved."""

import numpy as np
import pytest
from conftest import planted
from hypothesis import given, settings
from hypothesis import strategies as st

from prunetrain.data import Dataset
from prunetrain.errors import PrunetrainError
from prunetrain.masks import KeepRule, Layout
from prunetrain.problem import Problem
from prunetrain.runs import evaluate_ticket
from prunetrain.search import make_searcher, run
from prunetrain.search.evolution.distributions import nes_utilities
from prunetrain.search.evolution.operators import (
    block_crossover,
    choose_in_rows,
    flip_mutation,
    repair_counts,
    swap_mutation,
    uniform_crossover,
)
from prunetrain.ticket import Ticket

EVOLUTIONARY = ["ga", "evolution", "pbil", "cem", "nes"]


def rows_with_counts(rng, p, n, counts):
    """``p`` random rows of length ``n``, row ``i`` keeping ``counts[i]`` weights."""
    ranks = np.argsort(np.argsort(rng.random((p, n)), axis=1), axis=1)
    return ranks < np.asarray(counts)[:, None]


def clear_planted(seed, sizes, n):
    """A planted problem keeping only the samples the target classifies with a wide margin.

    With every sample, cross-entropy (the objective) prefers confident masks
    that get the near-boundary samples wrong, so no searcher (local ones
    included) gets near 100 %; on the wide-margin half the target's labels
    can be recovered.
    """
    net, data, target = planted(seed, sizes, n)
    parts = []
    for X, y in [
        (data.X_train, data.y_train),
        (data.X_val, data.y_val),
        (data.X_test, data.y_test),
    ]:
        z = np.sort(net.forward(target, X), axis=1)
        wide = z[:, -1] - z[:, -2] >= np.median(z[:, -1] - z[:, -2])
        parts += [X[wide], y[wide]]
    return net, Dataset("planted-clear", *parts, data.classes), target


# --- operators -----------------------------------------------------------------------

populations = st.tuples(
    st.integers(1, 6),  # P
    st.integers(1, 400),  # n
    st.floats(0.0, 1.0),  # keep
    st.integers(0, 60),  # max swaps
    st.integers(0, 2**32 - 1),  # seed
)


@settings(max_examples=60, deadline=None)
@given(populations)
def test_swap_mutation_keeps_every_rows_count(args):
    p, n, keep, kmax, seed = args
    rng = np.random.default_rng(seed)
    count = round(keep * n)
    rows = rows_with_counts(rng, p, n, [max(count, 1)] * p) & (count > 0)
    before = rows.copy()
    k = rng.integers(0, kmax + 1, p)
    swap_mutation(rows, k, rng, keep)
    np.testing.assert_array_equal(rows.sum(axis=1), before.sum(axis=1))
    changed = (rows != before).sum(axis=1)
    assert np.all(changed % 2 == 0) and np.all(changed <= 2 * k)
    # Swaps happen whenever both kinds of weight exist (the draw oversamples enough).
    possible = np.minimum(k, np.minimum(before.sum(axis=1), n - before.sum(axis=1)))
    assert np.all(changed[possible > 0] > 0)


@settings(max_examples=40, deadline=None)
@given(populations)
def test_flip_mutation_flips_exactly_k_distinct_weights(args):
    p, n, _, kmax, seed = args
    rng = np.random.default_rng(seed)
    rows = rng.random((p, n)) < 0.5
    before = rows.copy()
    k = rng.integers(0, kmax + 1, p)
    flip_mutation(rows, k, rng)
    np.testing.assert_array_equal((rows != before).sum(axis=1), np.minimum(k, n))


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 5),
    st.integers(1, 12),
    st.integers(1, 12),
    st.floats(0.01, 1.0),
    st.sampled_from(["uniform", "block"]),
    st.integers(0, 2**32 - 1),
)
def test_crossover_with_repair_keeps_the_count_and_inherits_every_weight(
    p, fan_in, fan_out, keep, kind, seed
):
    rng = np.random.default_rng(seed)
    n = fan_in * fan_out
    count = max(1, round(keep * n))
    a = rows_with_counts(rng, p, n, [count] * p)
    b = rows_with_counts(rng, p, n, [count] * p)
    if kind == "uniform":
        child = uniform_crossover(a, b, rng)
    else:
        child = block_crossover(
            a.reshape(p, fan_in, fan_out), b.reshape(p, fan_in, fan_out), rng
        ).reshape(p, n)
    repair_counts(child, a, b, count, rng)
    np.testing.assert_array_equal(child.sum(axis=1), count)
    assert np.all((child == a) | (child == b))


def test_block_crossover_moves_whole_units():
    rng = np.random.default_rng(0)
    a = np.ones((50, 3, 7), dtype=bool)
    child = block_crossover(a, ~a, rng)
    per_unit = child.sum(axis=1)  # (P, fan_out): 3 (from a) or 0 (from b), never mixed
    assert set(np.unique(per_unit)) == {0, 3}


def test_uniform_crossover_takes_half_from_each_parent():
    rng = np.random.default_rng(0)
    a = np.ones((4, 10_000), dtype=bool)
    child = uniform_crossover(a, ~a, rng)
    assert np.all(np.abs(child.mean(axis=1) - 0.5) < 0.03)


def test_repair_uses_any_weight_when_parents_disagree_on_counts():
    rng = np.random.default_rng(1)
    child = np.zeros((2, 20), dtype=bool)
    repair_counts(child, child.copy(), child.copy(), np.array([5, 9]), rng)
    np.testing.assert_array_equal(child.sum(axis=1), [5, 9])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 300), st.integers(0, 300), st.integers(0, 2**32 - 1))
def test_choose_in_rows_picks_distinct_candidates(p, n, need_max, seed):
    rng = np.random.default_rng(seed)
    candidates = rng.random((p, n)) < rng.random((p, 1))
    need = rng.integers(0, need_max + 1, p)
    r, c = choose_in_rows(candidates, need, rng)
    assert np.all(candidates[r, c])
    assert len(set(zip(r.tolist(), c.tolist()))) == len(r)
    np.testing.assert_array_equal(
        np.bincount(r, minlength=p), np.minimum(need, candidates.sum(axis=1))
    )


def test_choose_in_rows_is_uniform():
    rng = np.random.default_rng(0)
    candidates = np.ones((20_000, 10), dtype=bool)
    r, c = choose_in_rows(candidates, np.full(20_000, 3), rng)
    freq = np.bincount(c, minlength=10) / 20_000
    np.testing.assert_allclose(freq, 0.3, atol=0.02)


def test_nes_utilities_sum_to_zero_and_decrease():
    for n in (1, 2, 7, 32):
        u = nes_utilities(n)
        assert abs(u.sum()) < 1e-12 and np.all(np.diff(u) <= 0)


# --- searchers on problems ------------------------------------------------------------


@pytest.fixture(scope="module")
def planted_problem():
    return planted()


@pytest.mark.parametrize("kind", ["layer", "global", "free"])
def test_layout_segments_follow_the_rule(kind):
    shapes = [(4, 3), (3, 2)]
    layout = Layout(shapes, KeepRule(0.5, kind))
    counts = [c for _, _, c in layout.segments]
    assert {"layer": [6, 3], "global": [9], "free": [None, None]}[kind] == counts


def population_of(searcher):
    """Every mask the searcher holds right now, as flat rows."""
    if hasattr(searcher, "rows"):
        return searcher.rows
    if hasattr(searcher, "parent_rows"):
        return searcher.parent_rows
    return searcher.sample(8)


@pytest.mark.parametrize("method", EVOLUTIONARY)
@pytest.mark.parametrize("kind", ["layer", "global", "free"])
def test_keep_rule_holds_and_seed_reproduces(planted_problem, method, kind):
    net, data, _ = planted_problem
    rule = KeepRule(0.3, kind)

    def search(seed):
        problem = Problem(net, data, rule, backend="numpy", batch_size=64, seed=seed)
        searcher = make_searcher(method)
        result = run(problem, searcher, "400evals", seed=seed)
        return result, searcher

    (a, sa), (b, _) = search(1), search(1)
    assert rule.satisfied_by(a.mask)
    for row in population_of(sa):
        assert rule.satisfied_by(sa.layout.mask(row))
    for x, y in zip(a.mask, b.mask):
        np.testing.assert_array_equal(x, y)
    assert a.history == [{**r, "seconds": a.history[i]["seconds"]} for i, r in enumerate(b.history)]
    assert all("evaluations" in r and "seconds" in r for r in a.history)
    c, _ = search(2)
    assert any((x != y).any() for x, y in zip(a.mask, c.mask))


@pytest.mark.parametrize("method", EVOLUTIONARY)
def test_one_backend_call_per_generation(planted_problem, method):
    net, data, _ = planted_problem
    problem = Problem(net, data, KeepRule(0.5), backend="numpy", batch_size=64)
    calls = []
    evaluate = problem.evaluate

    def counting(population, batch=None):
        calls.append((len(population), batch.number if batch is not None else None))
        return evaluate(population, batch)

    problem.evaluate = counting
    searcher = make_searcher(method)
    result = run(problem, searcher, "300evals")
    assert len(calls) == searcher.generations
    assert sum(n for n, _ in calls) == result.evaluations
    assert min(n for n, _ in calls) > 1
    numbers = [b for _, b in calls]
    assert numbers == sorted(set(numbers))  # a fresh batch for every generation


@pytest.mark.slow
@pytest.mark.parametrize("method", EVOLUTIONARY)
def test_planted_problem_is_solved(method):
    net, data, target = clear_planted(1, (12, 24, 4), 1200)
    problem = Problem(net, data, KeepRule(0.5), backend="numpy", batch_size=None)
    result = run(problem, make_searcher(method), "5000evals", seed=0)
    found = evaluate_ticket(Ticket(net, result.mask, KeepRule(0.5)), data)
    start = evaluate_ticket(
        Ticket(net, problem.random_mask(np.random.default_rng(99)), KeepRule(0.5)), data
    )
    assert found["train"]["accuracy"] >= 0.98 > start["train"]["accuracy"] + 0.3
    assert found["val"]["accuracy"] >= 0.95


@pytest.mark.parametrize("warm", [False, True])
def test_distribution_recommends_the_better_of_mode_and_incumbent(planted_problem, warm):
    net, data, target = planted_problem
    problem = Problem(net, data, KeepRule(0.5), backend="numpy", batch_size=None)
    searcher = make_searcher("cem")
    run(problem, searcher, "100evals", init_mask=target if warm else None)
    mask, _ = searcher.recommend()
    incumbent = searcher.layout.mask(searcher.best_row)
    mode = searcher.layout.mask(searcher.mode_row)
    best_acc = max(problem.validate(incumbent)[1], problem.validate(mode)[1])
    assert problem.validate(mask)[1] == best_acc


def test_warm_start_begins_at_the_given_mask(planted_problem):
    net, data, target = planted_problem
    problem = Problem(net, data, KeepRule(0.5), backend="numpy", batch_size=None)
    searcher = make_searcher("evolution")
    result = run(problem, searcher, "17evals", init_mask=target)
    # One generation: the parent (the target) and 16 children; the target is hard to beat.
    assert result.val_accuracy >= problem.validate(target)[1] - 0.05


@pytest.mark.parametrize(
    "method, params, match",
    [
        ("ga", {"population": 1}, "population"),
        ("ga", {"elites": 32}, "elites"),
        ("ga", {"tournament": 0}, "tournament"),
        ("ga", {"crossover": "one-point"}, "crossover"),
        ("ga", {"crossover_rate": 1.5}, "crossover_rate"),
        ("ga", {"mutation": 0}, "mutation"),
        ("evolution", {"strategy": "1,1"}, "strategy"),
        ("evolution", {"offspring": 0}, "offspring"),
        ("evolution", {"strategy": "mu,lambda", "parents": 20, "offspring": 10}, "parents"),
        ("evolution", {"adapt": 1.0}, "adapt"),
        ("evolution", {"tau": -0.1}, "tau"),
        ("evolution", {"confirm": "yes"}, "confirm"),
        ("pbil", {"lr": 0.0}, "lr"),
        ("pbil", {"elite": 40}, "elite"),
        ("pbil", {"negative_lr": -1}, "negative_lr"),
        ("cem", {"elite_fraction": 1.5}, "elite_fraction"),
        ("cem", {"smoothing": 0}, "smoothing"),
        ("nes", {"lr": -1.0}, "lr"),
        ("nes", {"momentum": 1.0}, "momentum"),
        ("nes", {"max_logit": 0}, "max_logit"),
        ("nes", {"population": 2.5}, "population"),
    ],
)
def test_bad_hyperparameters(planted_problem, method, params, match):
    net, data, _ = planted_problem
    problem = Problem(net, data, KeepRule(0.5), backend="numpy")
    with pytest.raises(PrunetrainError, match=match):
        run(problem, make_searcher(method, **params), "10evals")


@pytest.mark.parametrize("strategy", ["1+lambda", "mu,lambda", "mu+lambda"])
def test_every_evolution_strategy_improves(planted_problem, strategy):
    net, data, _ = planted_problem
    problem = Problem(net, data, KeepRule(0.5), backend="numpy", batch_size=None)
    result = run(problem, make_searcher("evolution", strategy=strategy), "1500evals", seed=0)
    assert result.history[-1]["best_val_accuracy"] > result.history[0]["val_accuracy"] + 0.2


def test_unconfirmed_evolution_improves_too(planted_problem):
    net, data, _ = planted_problem
    problem = Problem(net, data, KeepRule(0.5), backend="numpy", batch_size=None)
    result = run(problem, make_searcher("evolution", confirm=False), "1500evals", seed=0)
    assert result.history[-1]["best_val_accuracy"] > result.history[0]["val_accuracy"] + 0.2


def test_a_child_replaces_the_parent_only_after_winning_on_a_second_batch(planted_problem):
    net, data, _ = planted_problem
    problem = Problem(net, data, KeepRule(0.5), backend="numpy", batch_size=32, seed=0)
    searcher = make_searcher("evolution")
    generations = []  # (parent before, rows evaluated, their losses, parent after)
    evaluate, step = searcher.evaluate, searcher.step

    def recording_evaluate(rows):
        loss = evaluate(rows)
        generations.append([searcher.parent_rows[0].copy(), rows.copy(), loss])
        return loss

    def recording_step():
        step()
        generations[-1].append(searcher.parent_rows[0].copy())

    searcher.evaluate, searcher.step = recording_evaluate, recording_step
    run(problem, searcher, "2000evals", seed=0)
    replaced = 0
    for t, (before, rows, loss, after) in enumerate(generations):
        np.testing.assert_array_equal(rows[0], before)  # the parent is re-evaluated
        if np.array_equal(before, after):
            continue
        replaced += 1
        # The new parent is this generation's challenger and beat the parent here ...
        np.testing.assert_array_equal(after, rows[1])
        assert loss[1] < loss[0]
        # ... and it was a child of the previous generation that beat its parent there.
        _, prev_rows, prev_loss, _ = generations[t - 1]
        i = next(i for i, r in enumerate(prev_rows) if np.array_equal(r, after))
        assert i >= 1 and prev_loss[i] < prev_loss[0]
    assert replaced >= 5  # the planted problem leaves room to improve
    assert generations[-1][2].size in (17, 18)


def test_one_fifth_rule_adapts_the_strength(planted_problem):
    net, data, _ = planted_problem
    problem = Problem(net, data, KeepRule(0.5), backend="numpy", batch_size=None)
    searcher = make_searcher("evolution", mutation=20.0)
    run(problem, searcher, "1000evals", seed=0)
    # Near a good mask few children improve, so σ shrinks from where it started.
    assert searcher.sigma[0] < 20.0


def test_the_family_prefers_batches_of_256():
    from prunetrain.search.pipeline import Pipeline

    for name in ("ga", "evolution", "pbil", "cem", "nes"):
        assert make_searcher(name).preferred_batch_size == 256
    assert make_searcher("accumulate").preferred_batch_size == 1024
    # A pipeline runs at its second stage's size: that stage has most of the budget.
    assert Pipeline(first="hebbian-reward", then="nes").preferred_batch_size == 256
    assert Pipeline(first="hebbian-reward", then="hill").preferred_batch_size == 1024
