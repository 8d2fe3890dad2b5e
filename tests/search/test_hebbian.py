"""Hebbian searchers: each score update is its formula, selection keeps exact counts, and the
label rule finds a planted readout (keep rules and seeds: ``tests/search/test_searcher_contract.py``)."""

import json

import numpy as np
import pytest
from conftest import planted
from hypothesis import given, settings
from hypothesis import strategies as st

from prunetrain.backends.hebbian import (
    competitive_stat,
    hebbian_pass,
    label_stat,
    reward_stat,
    sample_losses,
)
from prunetrain.errors import PrunetrainError
from prunetrain.masks import KeepRule
from prunetrain.problem import Budget, Problem
from prunetrain.search import make_searcher, run
from prunetrain.search.hebbian import balanced_top, select_top, unit_counts
from prunetrain.search.local import HillClimber

HEBBIAN = ["hebbian", "hebbian-label", "hebbian-reward"]


@pytest.fixture(scope="module")
def planted_problem():
    return planted(seed=1, sizes=(12, 24, 4), n=600)


def small_case(seed=0, B=7, a=5, b=4):
    rng = np.random.default_rng(seed)
    x = np.abs(rng.standard_normal((B, a)))
    z = rng.standard_normal((B, b))
    w = rng.choice([-0.5, 0.5], size=(a, b))
    return rng, x, z, w


def forward(weights, biases, mask, X):
    """Inputs and pre-activations of every layer (the reference's float64 pass)."""
    hpass = hebbian_pass(weights, biases, mask, X, np.zeros(len(X), dtype=np.int64))
    return hpass.inputs, hpass.pres


# --- the formulas, against direct sums over samples ------------------------------------
def test_competitive_stat_is_the_wta_formula():
    _, x, z, w = small_case()
    B, a = x.shape
    b, k = z.shape[1], 2
    expected = np.zeros((a, b))
    xbar = x.mean(axis=0)
    for j in range(b):
        wins = [s for s in range(B) if j in np.argsort(-z[s])[:k]]
        for i in range(a):
            if wins:
                expected[i, j] = np.sign(w[i, j]) * sum(x[s, i] - xbar[i] for s in wins) / len(wins)
    np.testing.assert_allclose(competitive_stat(x, z, w, k), expected, atol=1e-12)


def test_competitive_stat_without_competition_is_plain_correlation():
    _, x, z, w = small_case(1)
    B, a = x.shape
    expected = np.array(
        [
            [
                np.sign(w[i, j]) * sum(x[s, i] * max(z[s, j], 0) for s in range(B)) / B
                for j in range(4)
            ]
            for i in range(a)
        ]
    )
    np.testing.assert_allclose(competitive_stat(x, z, w, None), expected, atol=1e-12)


def test_label_stat_is_the_centred_correlation_formula():
    rng, x, _, w = small_case(2)
    B, a = x.shape
    t = np.eye(4)[rng.integers(0, 4, B)]
    expected = np.array(
        [
            [
                w[i, j] * sum(x[s, i] * (t[s, j] - t[:, j].mean()) for s in range(B)) / B
                for j in range(4)
            ]
            for i in range(a)
        ]
    )
    np.testing.assert_allclose(label_stat(x, t, w), expected, atol=1e-12)


def test_reward_stat_is_the_three_factor_formula():
    rng, x, z, w = small_case(3)
    B, a = x.shape
    r, sigma = rng.standard_normal(B), 0.3
    xi = rng.standard_normal(z.shape) * sigma
    expected = np.array(
        [
            [
                w[i, j] * sum(x[s, i] * r[s] * xi[s, j] for s in range(B)) / (B * sigma**2)
                for j in range(4)
            ]
            for i in range(a)
        ]
    )
    np.testing.assert_allclose(reward_stat(x, r, xi, sigma, w), expected, atol=1e-12)


def test_the_reward_estimates_the_masks_straight_through_gradient():
    """Averaged over many perturbations, -Δ is the gradient of the loss w.r.t. the mask."""
    net, data, target = planted(seed=4, sizes=(6, 5, 3), n=40)
    weights = [w.astype(np.float64) for w in net.weights]
    X, y = data.X_train.astype(np.float64), data.y_train
    inputs, pres = forward(weights, None, target, X)
    # Exact gradient of the mean loss w.r.t. the readout's mask entries.
    probs = np.exp(pres[-1] - pres[-1].max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    delta = (probs - np.eye(3)[y]) / len(y)
    exact = weights[-1] * (inputs[-1].T @ delta)
    rng = np.random.default_rng(0)
    sigma, total = 0.01, np.zeros_like(exact)
    n = 4000
    for _ in range(n):
        xi = rng.standard_normal(pres[-1].shape) * sigma
        r = -(sample_losses(pres[-1] + xi, y) - sample_losses(pres[-1] - xi, y)) / 2
        total += reward_stat(inputs[-1], r, xi, sigma, weights[-1])
    np.testing.assert_allclose(-total / n, exact, atol=0.1 * np.abs(exact).max())


# --- one searcher step against the formulas ------------------------------------------------
def one_step(method, planted_problem, **params):
    net, data, target = planted_problem
    problem = Problem(net, data, KeepRule(0.5), backend="numpy", batch_size=64, seed=0)
    searcher = make_searcher(method, **params)
    searcher.setup(problem, np.random.default_rng(5), init_mask=[m.copy() for m in target])
    searcher.step()
    index = problem.batch.index  # the step took one fresh batch
    return searcher, net, target, data.X_train[index].astype(np.float64), data.y_train[index]


@pytest.mark.parametrize("competition", ["wta", "none"])
def test_hebbian_step_averages_the_stats_of_the_current_mask(planted_problem, competition):
    s, net, target, X, y = one_step("hebbian", planted_problem, competition=competition)
    weights = [w.astype(np.float64) for w in net.weights]
    inputs, pres = forward(weights, None, target, X)
    k = None if competition == "none" else round(0.1 * 24)
    np.testing.assert_allclose(
        s.averaged(0), competitive_stat(inputs[0], pres[0], weights[0], k), atol=1e-12
    )
    np.testing.assert_allclose(
        s.averaged(1), label_stat(inputs[1], np.eye(4)[y], weights[1]), atol=1e-12
    )


def test_hebbian_label_step_teaches_hidden_units_the_projected_label(planted_problem):
    s, net, target, X, y = one_step("hebbian-label", planted_problem)
    weights = [w.astype(np.float64) for w in net.weights]
    inputs, _ = forward(weights, None, target, X)
    for layer, R in enumerate(s.projections):
        assert set(np.unique(R)) <= {-1.0, 1.0} and R.shape == (4, weights[layer].shape[1])
        expected = label_stat(inputs[layer], np.eye(4)[y] @ R, weights[layer])
        np.testing.assert_allclose(s.averaged(layer), expected, atol=1e-12)


def test_hebbian_reward_step_adds_the_normalised_three_factor_update(planted_problem):
    s, net, target, X, y = one_step("hebbian-reward", planted_problem, lr=0.07, noise=0.2)
    weights = [w.astype(np.float64) for w in net.weights]
    rng = np.random.default_rng(5)
    scores = [rng.random(m.shape) + m for m in target]
    inputs, pres = forward(weights, None, target, X)
    for layer, z in enumerate(pres):
        sigma = 0.2 * z.std()
        xi = rng.standard_normal(z.shape) * sigma
        logits = []
        for sign in (1, -1):
            a = z + sign * xi
            for q in range(layer + 1, len(weights)):
                a = np.maximum(a, 0) @ (weights[q] * target[q])
            logits.append(a)
        r = -(sample_losses(logits[0], y) - sample_losses(logits[1], y)) / 2
        d = reward_stat(inputs[layer], r, xi, sigma, weights[layer])
        np.testing.assert_allclose(
            s.scores[layer], scores[layer] + 0.07 * d / np.sqrt(np.mean(d**2)), atol=1e-10
        )


# --- the backends' statistics against the reference ---------------------------------------
@pytest.mark.parametrize("backend_name", ["numpy", "numba"])
@pytest.mark.parametrize("bias", [False, True])
def test_backend_hebbian_statistics_equal_the_reference(backend_name, bias):
    from prunetrain.backends import hebbian, make_backend
    from prunetrain.masks import random_mask
    from prunetrain.network import FrozenNetwork, NetworkSpec

    net = FrozenNetwork(NetworkSpec((9, 7, 6, 4), bias=bias), 2)
    rng = np.random.default_rng(3)
    mask = random_mask(net.shapes, KeepRule(0.5), rng)
    X = rng.random((11, 9)).astype(np.float32)
    X[:, :3] = 0.0  # silent inputs: tied pre-activations, where the k-WTA must break ties alike
    y = rng.integers(0, 4, 11)
    backend = make_backend(backend_name, net)
    hp = backend.hebbian_pass(mask, backend.asarray(X), backend.aslabels(y))
    w = [a.astype(np.float64) for a in net.weights]
    b = None if net.biases is None else [a.astype(np.float64) for a in net.biases]
    ref = hebbian.hebbian_pass(w, b, mask, X, y)
    assert hp.loss == pytest.approx(ref.loss, rel=1e-12)
    for got, want in [*zip(hp.pres, ref.pres), *zip(hp.input_means, ref.input_means)]:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(hp.pre_stds, ref.pre_stds, rtol=1e-12)
    tied = np.zeros((3, 6))
    tied[1, 2:] = 1.0
    for z in (ref.pres[0], tied):
        for k in (1, 2, 5):
            np.testing.assert_array_equal(
                backend.winners_take_all(np.ascontiguousarray(z), k),
                hebbian.winners_take_all(z, k),
            )
    for layer in range(2):
        for k in (None, 2):
            np.testing.assert_allclose(
                backend.hebbian_competitive(hp, layer, k),
                hebbian.competitive_stat(ref.inputs[layer], ref.pres[layer], w[layer], k),
                rtol=1e-12, atol=1e-15,
            )  # fmt: skip
        R = rng.choice([-1.0, 1.0], size=(4, w[layer].shape[1]))
        np.testing.assert_allclose(
            backend.hebbian_label(hp, layer, R),
            hebbian.label_stat(ref.inputs[layer], np.eye(4)[y] @ R, w[layer]),
            rtol=1e-12, atol=1e-15,
        )  # fmt: skip
    np.testing.assert_allclose(
        backend.hebbian_label(hp, 2),
        hebbian.label_stat(ref.inputs[2], np.eye(4)[y], w[2]),
        rtol=1e-12, atol=1e-15,
    )  # fmt: skip
    for layer in range(3):
        xi = rng.standard_normal(ref.pres[layer].shape) * 0.3
        np.testing.assert_allclose(
            backend.hebbian_reward(hp, layer, xi, 0.3),
            hebbian.reward_delta(ref, layer, xi, 0.3),
            rtol=1e-12, atol=1e-15,
        )  # fmt: skip


def test_backend_label_statistic_refuses_a_target_that_does_not_fit_the_layer():
    from prunetrain.backends import make_backend
    from prunetrain.network import FrozenNetwork, NetworkSpec

    net = FrozenNetwork(NetworkSpec((5, 6, 3)), 0)
    backend = make_backend("numpy", net)
    mask = [np.ones(s, dtype=bool) for s in net.shapes]
    hp = backend.hebbian_pass(mask, np.ones((2, 5), dtype=np.float32), np.array([0, 2]))
    with pytest.raises(PrunetrainError, match=r"layer 0 has 6 units, not one per class \(3\)"):
        backend.hebbian_label(hp, 0)
    with pytest.raises(PrunetrainError, match=r"projection has shape \(3, 5\), expected \(3, 6\)"):
        backend.hebbian_label(hp, 0, np.ones((3, 5)))
    assert backend.hebbian_label(hp, 1).shape == (6, 3)


@pytest.mark.parametrize("k", [1, 2, 3, 6])
def test_numba_winners_take_all_equals_the_reference_with_and_without_ties(k):
    from prunetrain.backends import hebbian
    from prunetrain.backends.numba import hebbian_kernels

    rng = np.random.default_rng(k)
    distinct = rng.standard_normal((40, 6))
    tied = rng.integers(-1, 2, (40, 6)).astype(np.float64)  # boundaries tied in most rows
    for z in (distinct, tied):
        want = hebbian.winners_take_all(z, k)
        np.testing.assert_array_equal(want.sum(axis=1), k)
        np.testing.assert_array_equal(hebbian_kernels.winners_take_all(z, k), want)
    # Untied rows: the winners are the k largest.
    kth = np.sort(distinct, axis=1)[:, -k][:, None]
    np.testing.assert_array_equal(hebbian.winners_take_all(distinct, k), distinct >= kth)


# --- selection and keep counts -------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    a=st.integers(1, 12),
    b=st.integers(1, 9),
    keep=st.floats(0.05, 1.0),
    per_unit=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_selection_keeps_exact_counts(a, b, keep, per_unit, seed):
    rng = np.random.default_rng(seed)
    count = max(1, round(keep * a * b))
    scores = rng.standard_normal((a, b))
    mask = select_top(scores, count, per_unit)
    assert mask.sum() == count
    if per_unit:
        np.testing.assert_array_equal(mask.sum(axis=0), unit_counts(count, a, b))
        for j in range(b):  # each unit keeps its highest scores
            kept, dropped = scores[mask[:, j], j], scores[~mask[:, j], j]
            assert not len(dropped) or not len(kept) or kept.min() >= dropped.max()
    else:
        assert scores[mask].min() >= scores[~mask].max(initial=-np.inf)
    balanced = balanced_top(scores, rng.standard_normal((a, b)) + 0.5, count)
    np.testing.assert_array_equal(balanced.sum(axis=0), unit_counts(count, a, b))


def test_homeostasis_holds_each_units_kept_drive_near_zero():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((200, 30))
    drive = rng.standard_normal((200, 30)) + 0.4  # plain top-k would keep about +40 per unit
    plain = (drive * select_top(scores, 3000, per_unit=True)).sum(axis=0)
    kept = (drive * balanced_top(scores, drive, 3000)).sum(axis=0)
    assert np.all(np.abs(kept) < 3) and np.all(plain > 15)


def test_the_label_rule_recovers_the_planted_readout():
    """Labels made by a planted readout over known hidden features: the rule finds it."""
    net, data, target = planted(seed=2, sizes=(16, 64, 4), n=3000)
    # A readout that keeps, per class, the connections that push that class up.
    w = net.weights[-1]
    readout = np.zeros_like(target[-1])
    rng = np.random.default_rng(0)
    for j in range(w.shape[1]):
        positive = np.flatnonzero(w[:, j] > 0)
        readout[rng.choice(positive, size=len(positive) // 2, replace=False), j] = True
    planted_mask = [target[0], readout]
    for X, y in [(data.X_train, data.y_train), (data.X_val, data.y_val)]:
        y[:] = np.argmax(net.forward(planted_mask, X), axis=1)
    problem = Problem(net, data, KeepRule(0.5), backend="numpy", batch_size=512, seed=0)
    searcher = make_searcher("hebbian-label", hidden="fixed", homeostasis=False)
    start = [target[0].copy(), np.zeros_like(readout)]
    start[1][:32] = True
    result = run(problem, searcher, Budget(evaluations=200), seed=0, init_mask=start)
    found = searcher.mask[-1]
    # The rule keeps half of each unit's connections, so a random choice would hold
    # half of the planted ones; correlation alone finds about 78 % (the rule's limit:
    # more data or epochs do not raise it), and the readout predicts the planted labels.
    recovered = (found & readout).sum() / readout.sum()
    assert recovered > 0.7
    majority = np.bincount(data.y_val).max() / len(data.y_val)
    assert result.val_accuracy > majority + 0.2


# --- errors, the pipeline -----------------------------------------------------------------
@pytest.mark.parametrize(
    "method, params, match",
    [
        ("hebbian", {"competition": "max"}, "competition"),
        ("hebbian", {"winners": 0}, "winners"),
        ("hebbian", {"momentum": 1.0}, "momentum"),
        ("hebbian-label", {"hidden": "none"}, "hidden"),
        ("hebbian-label", {"select": "row"}, "select"),
        ("hebbian-reward", {"lr": -1}, "lr"),
        ("hebbian-reward", {"reselect": 0.5}, "reselect"),
        ("pipeline", {"share": 1.0}, "share"),
        ("pipeline", {"first": "nope"}, "first must be a searcher or its name"),
        ("pipeline", {"then": "pipeline"}, "then must be a searcher or its name, one of 'acc"),
    ],
)
def test_bad_hyperparameters(planted_problem, method, params, match):
    net, data, _ = planted_problem
    problem = Problem(net, data, KeepRule(0.5), backend="numpy")
    with pytest.raises(PrunetrainError, match=match):
        run(problem, make_searcher(method, **params), Budget(evaluations=5))


def test_hebbian_rules_finish_after_their_epochs(planted_problem):
    net, data, _ = planted_problem
    problem = Problem(net, data, KeepRule(0.5), backend="numpy", batch_size=105)
    result = run(problem, make_searcher("hebbian", epochs=2), Budget(evaluations=1000))
    assert result.stopped_by == "finished"
    assert result.evaluations == 8  # 2 epochs of 420 training samples in batches of 105


class RecordingHill(HillClimber):
    """Hill climbing that remembers the mask it was started from."""

    def setup(self, problem, rng, init_mask=None):
        self.started_from = [m.copy() for m in init_mask]
        super().setup(problem, rng, init_mask)


def test_pipeline_hands_the_first_stages_mask_to_the_second(planted_problem):
    net, data, _ = planted_problem
    problem = Problem(net, data, KeepRule(0.5), backend="numpy", batch_size=105)
    then = RecordingHill()
    searcher = make_searcher("pipeline", first="hebbian-label", then=then, share=0.5)
    result = run(problem, searcher, Budget(evaluations=200), seed=0)
    first = searcher.stages[0]
    assert all((a == b).all() for a, b in zip(first.mask, then.started_from))
    # hebbian-label finishes after 5 epochs = 20 forward passes, long before half the budget.
    assert first.finished and searcher.switched_at == pytest.approx(20 / 200)
    assert searcher.current is then and result.evaluations >= 200
    assert json.loads(json.dumps(result.params)) == {
        "first": "hebbian-label",
        "then": {"method": "hill", "params": then.get_params()},
        "share": 0.5,
    }


def test_pipeline_stops_the_first_stage_at_its_share(planted_problem):
    net, data, _ = planted_problem
    problem = Problem(net, data, KeepRule(0.5), backend="numpy", batch_size=105)
    searcher = make_searcher("pipeline", first="hebbian-reward", then="hill", share=0.3)
    run(problem, searcher, Budget(evaluations=100), seed=0)
    assert 0.3 <= searcher.switched_at < 0.35
