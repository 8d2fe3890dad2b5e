"""The probe searcher: scores from the screen, flips confirmed by exact gains, keep rules, determinism."""

import dataclasses

import numpy as np
import pytest

from prunetrain.data import Dataset, load_dataset
from prunetrain.errors import PrunetrainError
from prunetrain.masks import KeepRule, random_mask
from prunetrain.metrics import cross_entropy
from prunetrain.network import FrozenNetwork, NetworkSpec
from prunetrain.problem import Problem
from prunetrain.search import make_searcher, run
from prunetrain.search.loop import searcher_rng
from prunetrain.search.probe import (
    DECAY_MAX,
    DECAY_SAMPLES,
    SMALL_TRAINING,
    SMALL_VALIDATION,
    TINY,
)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def problem(digits, rule="layer", backend="numba", arch=(64, 32, 16, 10), bias=False, seed=0):
    net = FrozenNetwork(NetworkSpec(arch, bias=bias), seed)
    return Problem(net, digits, KeepRule(0.5, rule), backend=backend, batch_size=128, seed=seed)


def bound(prob, **params):
    searcher = make_searcher("probe", **params)
    searcher.setup(prob, searcher_rng(0))
    return searcher


@pytest.mark.parametrize("rule", ["layer", "global", "free"])
def test_every_flip_is_confirmed_by_an_exact_gain_that_a_full_reevaluation_repeats(digits, rule):
    prob = problem(digits, rule)
    searcher = bound(prob, confirm=True)
    net = prob.network
    checked = 0
    for _ in range(6):
        before = [m.copy() for m in searcher.mask]
        searcher.step()
        batch = prob.batch  # the batch this step screened and checked on
        X, y = digits.X_train[batch.index], digits.y_train[batch.index]
        base = cross_entropy(net.forward(before, X), y)
        for layer, (flat, gains) in enumerate(searcher.last_flips):
            assert np.all(gains < 0)
            for index, gain in zip(flat[:5], gains[:5]):
                after = [m.copy() for m in before]
                after[layer].reshape(-1)[index] ^= True
                change = cross_entropy(net.forward(after, X), y) - base
                assert gain == pytest.approx(change, rel=1e-6, abs=1e-12)
                checked += 1
            changed = np.flatnonzero(before[layer].ravel() != searcher.mask[layer].ravel())
            np.testing.assert_array_equal(np.sort(flat), changed)
    assert checked > 20


@pytest.mark.parametrize("rule", ["layer", "global"])
def test_the_keep_rule_holds_exactly(digits, rule):
    prob = problem(digits, rule)
    start = [int(m.sum()) for m in prob.random_mask(searcher_rng(0))]
    result = run(prob, make_searcher("probe"), "150evals", seed=0)
    counts = [int(m.sum()) for m in result.mask]
    if rule == "layer":
        assert counts == start
    else:
        assert sum(counts) == sum(start)
        assert counts != start  # weights moved between layers


def test_the_search_learns(digits):
    # The best validated mask (digits' small validation split makes "auto" return the last).
    result = run(problem(digits), make_searcher("probe", select="best_val"), "1200evals", seed=0)
    assert result.val_accuracy > 0.7  # a random mask of this network: about 0.1


def test_select_last_returns_the_last_validated_mask_and_otherwise_searches_alike(digits):
    def search(select):
        seen = []
        callback = lambda row, mask: seen.append((dict(row), [m.copy() for m in mask]))  # noqa: E731
        searcher = make_searcher("probe", select=select)
        result = run(problem(digits), searcher, "300evals", seed=0, callbacks=[callback])
        return result, seen

    best, seen_best = search("best_val")
    last, seen_last = search("last")
    # The same search either way: the same masks validated, the same rows but "improved".
    assert len(seen_best) == len(seen_last) > 3
    for (row_b, mask_b), (row_l, mask_l) in zip(seen_best, seen_last):
        assert all(np.array_equal(x, y) for x, y in zip(mask_b, mask_l))
        assert {k: v for k, v in row_b.items() if k not in ("seconds", "improved")} == {
            k: v for k, v in row_l.items() if k not in ("seconds", "improved")
        }
        assert row_l["improved"]  # every validated mask is, in turn, the one "last" returns
    final_row, final_mask = seen_last[-1]
    assert all(np.array_equal(x, y) for x, y in zip(last.mask, final_mask))
    assert last.val_accuracy == final_row["val_accuracy"]
    assert last.val_loss == final_row["val_loss"]
    # "best_val" returns the first of the validated masks with the best (accuracy, -loss).
    rows = [row for row, _ in seen_best]
    top = max(range(len(rows)), key=lambda i: (rows[i]["val_accuracy"], -rows[i]["val_loss"]))
    assert all(np.array_equal(x, y) for x, y in zip(best.mask, seen_best[top][1]))
    assert last.history[-1]["best_val_accuracy"] == best.val_accuracy


def test_same_seed_same_ticket_other_seed_other_ticket(digits):
    def mask(seed):
        return run(problem(digits), make_searcher("probe"), "100evals", seed=seed).mask

    a, b, c = mask(0), mask(0), mask(1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, z) for x, z in zip(a, c))


@pytest.mark.parametrize("confirm", [True, False])
def test_backends_agree_on_the_first_steps(digits, confirm):
    """NumPy and Numba screen and check alike: the same flips on the first batches."""
    searchers = [
        bound(problem(digits, backend=name, bias=True), confirm=confirm)
        for name in ("numpy", "numba")
    ]
    for _ in range(3):
        for s in searchers:
            s.step()
        for (fa, ga), (fb, gb) in zip(searchers[0].last_flips, searchers[1].last_flips):
            np.testing.assert_array_equal(np.sort(fa), np.sort(fb))
            np.testing.assert_allclose(np.sort(ga), np.sort(gb), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("rule", ["layer", "global", "free"])
def test_without_confirmation_the_mask_is_the_keep_rules_best_mask_for_the_scores(digits, rule):
    """Unconfirmed, every proposal flips: after each step the mask is the scores' top-k."""
    prob = problem(digits, rule)
    searcher = bound(prob, confirm=False)
    for _ in range(4):
        searcher.step()
        flat = [m.reshape(-1) for m in searcher.mask]
        wants = prob.rule.keep_top(searcher.scores, like=flat)
        for m, want in zip(flat, wants):
            np.testing.assert_array_equal(m, want)
    assert searcher.n_checked == [0, 0, 0]
    assert sum(searcher.n_flipped) > 0
    assert all(np.isnan(g).all() for _, g in searcher.last_flips)


def test_auto_confirms_below_the_small_training_size_and_not_above(digits):
    assert bound(problem(digits)).confirm_ is True  # digits: 1,293 training samples
    rng = np.random.default_rng(0)
    n = SMALL_TRAINING
    X, y = rng.random((n, 64), dtype=np.float32), np.arange(n) % 10
    large = Dataset("large", X, y, X[:50], y[:50], X[:0], y[:0], np.arange(10))
    searcher = bound(problem(large))
    assert searcher.confirm_ is False
    searcher.step()
    assert searcher.n_checked == [0, 0, 0] and sum(searcher.n_flipped) > 0
    for given in (True, False):
        assert bound(problem(large), confirm=given).confirm_ is given


def test_without_confirmation_max_checks_caps_the_flips(digits):
    searcher = bound(problem(digits), confirm=False, max_checks=2)
    for _ in range(3):
        searcher.step()
        assert all(len(flat) <= 2 * 2 for flat, _ in searcher.last_flips)  # two off, two on
    assert searcher.n_checked == [0, 0, 0]


def test_max_checks_caps_the_exact_evaluations(digits):
    searcher = bound(problem(digits), confirm=True, max_checks=3)
    for _ in range(4):
        searcher.step()
    assert max(searcher.n_checked) <= 4 * 2 * 3  # both sides, three each, per step
    assert searcher.n_proposed[0] > searcher.n_checked[0]


def test_score_update_is_momentum_on_the_screened_change(digits):
    """One step of ``v ← μv + u + λs``, ``s ← s - ηv`` with ``u`` the screen's change per unit of mask."""
    searcher = bound(problem(digits), schedule="constant", lr=0.5, momentum=0.5, weight_decay=0.1)
    s0 = [s.copy() for s in searcher.scores]
    v0 = [np.full_like(s, 0.25) for s in s0]
    searcher.velocity = [v.copy() for v in v0]
    gains = [np.full(m.shape, 0.125, dtype=np.float32) for m in searcher.mask]
    searcher._update_scores(gains)
    for m, s, v, s_new, v_new in zip(searcher.mask, s0, v0, searcher.scores, searcher.velocity):
        u = np.where(m.ravel(), -0.125, 0.125)
        want_v = 0.5 * v + u + np.float32(0.1) * s
        np.testing.assert_allclose(v_new, want_v, rtol=1e-6)
        np.testing.assert_allclose(s_new, s - 0.5 * want_v, rtol=1e-6, atol=1e-7)


def sized(digits, n_train, n_val):
    """Digits with ``n_train`` training and ``n_val`` validation rows (repeated as needed)."""
    rows = lambda X, n: np.resize(np.arange(len(X)), n)  # noqa: E731
    t, v = rows(digits.X_train, n_train), rows(digits.X_val, n_val)
    return dataclasses.replace(
        digits,
        X_train=np.ascontiguousarray(digits.X_train[t]),
        y_train=digits.y_train[t],
        X_val=np.ascontiguousarray(digits.X_val[v]),
        y_val=digits.y_val[v],
    )


@pytest.mark.parametrize(
    "n_train, n_val, decay, select",
    [
        (54000, 6000, 5e-4, "best_val"),  # Fashion-MNIST: the fixed defaults of before
        (1293, 144, DECAY_MAX, "last"),  # digits
        (2700, SMALL_VALIDATION, 0.01, "best_val"),
        (2700, SMALL_VALIDATION - 1, 0.01, "last"),
        (100, 0, DECAY_MAX, "last"),
    ],
)
def test_default_settings_follow_the_split_sizes(digits, n_train, n_val, decay, select):
    data = sized(digits, n_train, n_val)
    net = FrozenNetwork(NetworkSpec((64, 8, 10)), 0)
    prob = Problem(net, data, KeepRule(0.5), backend="numpy", batch_size=64)
    searcher = bound(prob)
    assert searcher.weight_decay_ == pytest.approx(decay, rel=1e-12)
    assert searcher.select_ == select and searcher.returns_last == (select == "last")
    if n_train == 54000:  # bit for bit the earlier default
        assert searcher.weight_decay_ == 5e-4 == DECAY_SAMPLES / 54000
    explicit = bound(prob, weight_decay=0.125, select="best_val")
    assert explicit.weight_decay_ == 0.125 and explicit.select_ == "best_val"
    assert not explicit.returns_last


def test_velocities_never_become_subnormal(digits):
    searcher = bound(problem(digits), weight_decay=0.0)
    zero = [np.zeros(m.shape, dtype=np.float32) for m in searcher.mask]
    searcher.velocity = [np.full_like(v, 1e-20) for v in searcher.velocity]
    for _ in range(600):  # 0.9^600 · 1e-20 is far below float32's smallest normal
        searcher._update_scores(zero)
        searcher.steps += 1
    for v in searcher.velocity:
        tiny = v[v != 0]
        assert np.all(np.abs(tiny) >= TINY)


def test_scores_start_on_the_side_of_the_initial_mask(digits):
    prob = problem(digits)
    init = random_mask(prob.shapes, prob.rule, np.random.default_rng(5))
    searcher = make_searcher("probe")
    searcher.setup(prob, searcher_rng(0), init)
    for m, s in zip(init, searcher.scores):
        assert np.all((s > 0) == m.ravel())


@pytest.mark.parametrize(
    "params",
    [
        {"lr": -1},
        {"momentum": 1.0},
        {"probe": 0},
        {"schedule": "linear"},
        {"confirm": "yes"},
        {"confirm": 1},
        {"select": "best"},
        {"weight_decay": "strong"},
        {"weight_decay": -0.1},
    ],
)
def test_bad_hyperparameters_are_refused_before_any_evaluation(digits, params):
    prob = problem(digits)
    with pytest.raises(PrunetrainError):
        bound(prob, **params)
    assert prob.n_evaluations == 0
