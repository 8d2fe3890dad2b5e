"""Sample weights (issue 19): a weighted cross-entropy on every backend, in the Problem and in
``SubnetworkClassifier.fit``. Integer weights must equal duplicated rows."""

import numpy as np
import pytest

from prunetrain.backends import BACKENDS, NumpyBackend, flips, make_backend
from prunetrain.data import Dataset
from prunetrain.errors import PrunetrainError
from prunetrain.masks import KeepRule, MaskPopulation, random_mask
from prunetrain.network import FrozenNetwork, NetworkSpec
from prunetrain.problem import Problem
from prunetrain.search import make_searcher, run

CPU = [name for name in ("numpy", "numba") if name in BACKENDS]


def case(init="signed_constant", sizes=(12, 10, 8, 4), n=40, seed=0):
    rng = np.random.default_rng(seed)
    net = FrozenNetwork(NetworkSpec(sizes, init=init), seed)
    X = rng.random((n, sizes[0])).astype(np.float32)
    X[rng.random(X.shape) < 0.3] = 0.0
    y = rng.integers(0, sizes[-1], n)
    counts = rng.integers(0, 4, n)
    counts[0] = 3
    masks = [random_mask(net.shapes, KeepRule(0.5), rng) for _ in range(3)]
    return net, X, y, counts, masks, rng


@pytest.mark.parametrize("backend_name", CPU)
@pytest.mark.parametrize("init", ["signed_constant", "kaiming_normal"])
def test_integer_weights_equal_duplicated_rows(backend_name, init):
    net, X, y, counts, masks, rng = case(init)
    w = counts * len(y) / counts.sum()
    rep = np.repeat(np.arange(len(y)), counts)
    backend = make_backend(backend_name, net)
    population = MaskPopulation.from_masks(masks, net.shapes)
    loss, acc = backend.evaluate(population, X, y, backend.asweights(w))
    ref_loss, ref_acc = make_backend("numpy", net).evaluate(population, X[rep], y[rep])
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)
    np.testing.assert_allclose(acc, ref_acc, rtol=1e-12)
    state = backend.flip_state(masks[0], X, y, w)
    ref = flips.build_state(net, masks[0], X[rep], y[rep])
    assert state.loss == pytest.approx(ref.loss, rel=1e-12)
    for layer, (a, b) in enumerate(net.shapes):
        rows, cols = rng.integers(0, a, 12), rng.integers(0, b, 12)
        rows2 = np.where(rng.random(12) < 0.5, rng.integers(0, a, 12), -1)
        rows2[rows2 == rows] = -1
        np.testing.assert_allclose(
            backend.flip_gains(state, layer, rows, cols, rows2),
            flips.flip_gains(ref, layer, rows, cols, rows2),
            rtol=1e-9,
            atol=1e-15,
        )
    # The probe searcher's screen: the weighted mean over samples, as the loss takes it
    # (float32 scores on numba: close to each layer's largest magnitude).
    for got, want in zip(backend.flip_screen(state), NumpyBackend(net).flip_screen(ref)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * max(np.abs(want).max(), 1e-3))


@pytest.mark.parametrize("backend_name", CPU)
def test_unit_weights_change_nothing(backend_name):
    net, X, y, _, masks, rng = case()
    backend = make_backend(backend_name, net)
    population = MaskPopulation.from_masks(masks, net.shapes)
    ones = backend.asweights(np.ones(len(y)))
    for got, want in zip(
        backend.evaluate(population, X, y, ones), backend.evaluate(population, X, y)
    ):
        np.testing.assert_array_equal(got, want)
    plain, weighted = backend.flip_state(masks[0], X, y), backend.flip_state(masks[0], X, y, ones)
    rows, cols = rng.integers(0, 12, 8), rng.integers(0, 10, 8)
    np.testing.assert_array_equal(
        backend.flip_gains(plain, 0, rows, cols), backend.flip_gains(weighted, 0, rows, cols)
    )
    for got, want in zip(backend.flip_screen(weighted), backend.flip_screen(plain)):
        np.testing.assert_array_equal(got, want)


def split(X, y):
    a, b = int(0.6 * len(y)), int(0.8 * len(y))
    return Dataset("w", X[:a], y[:a], X[a:b], y[a:b], X[b:], y[b:], np.unique(y))


def test_problem_scales_weights_and_checks_them():
    net, X, y, counts, masks, _ = case(n=50)
    data = split(X, y)
    n_train, n_val = len(data.y_train), len(data.y_val)
    w = (np.arange(n_train) % 3 + 1.0, np.full(n_val, 5.0))
    problem = Problem(net, data, backend="numpy", batch_size=None, sample_weight=w)
    np.testing.assert_allclose(problem.w_train.mean(), 1.0)
    np.testing.assert_array_equal(problem.w_val, np.ones(n_val))  # a constant weight is no weight
    rep = np.repeat(np.arange(n_train), (np.arange(n_train) % 3 + 1))
    duplicated = Dataset(
        "d", X[rep], y[rep], data.X_val, data.y_val, data.X_test, data.y_test, data.classes
    )
    plain = Problem(net, duplicated, backend="numpy", batch_size=None)
    # float32 logits from GEMMs of other row counts: BLAS may round them differently (1e-7)
    np.testing.assert_allclose(problem.evaluate(masks)[0], plain.evaluate(masks)[0], rtol=1e-6)
    assert problem.validate(masks[0]) == pytest.approx(plain.validate(masks[0]), rel=1e-6)
    for bad, message in [
        ((np.ones(3), np.ones(n_val)), "expected"),
        ((-np.ones(n_train), np.ones(n_val)), "non-negative"),
        ((np.zeros(n_train), np.ones(n_val)), "all zero"),
    ]:
        with pytest.raises(PrunetrainError, match=message):
            Problem(net, data, backend="numpy", sample_weight=bad)


def test_searches_accept_weights_and_hebbian_rules_say_they_do_not():
    net, X, y, _, _, _ = case(n=60)
    data = split(X, y)
    w = (np.linspace(0.5, 2, len(data.y_train)), np.ones(len(data.y_val)))
    for method in ("accumulate", "probe", "ga", "random"):
        problem = Problem(net, data, backend="numpy", sample_weight=w)
        assert run(problem, make_searcher(method), "20evals").evaluations >= 20
    problem = Problem(net, data, backend="numpy", sample_weight=w)
    with pytest.raises(PrunetrainError, match="does not take sample weights"):
        run(problem, make_searcher("hebbian"), "20evals")
