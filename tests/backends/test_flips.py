"""Exact flip gains: NumPy reference and Numba kernels against full float64 re-evaluation."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prunetrain.backends import flips
from prunetrain.backends.numba import flip_kernels
from prunetrain.masks import KeepRule, random_mask
from prunetrain.metrics import cross_entropy
from prunetrain.network import FrozenNetwork, NetworkSpec

IMPLEMENTATIONS = {"numpy": flips.flip_gains, "numba": flip_kernels.flip_gains}


def full_reevaluation(net, mask, X, y, layer, rows, cols, rows2):
    """Loss change of each move by two full float64 forward passes, and its rounding scale.

    A float64 loss computed from logits is exact to about 1e-16 of the largest
    logit, so the scale is 1e-13 times the largest logit before or after the move.
    """
    before = net.forward(mask, X)
    base = cross_entropy(before, y)
    out, scale = [], []
    for k in range(len(rows)):
        m = [x.copy() for x in mask]
        m[layer][rows[k], cols[k]] ^= True
        if rows2 is not None and rows2[k] >= 0:
            m[layer][rows2[k], cols[k]] ^= True
        after = net.forward(m, X)
        out.append(cross_entropy(after, y) - base)
        scale.append(1e-13 * max(1.0, np.abs(before).max(), np.abs(after).max()))
    return np.array(out), np.array(scale)


def assert_gains_match(got, expected):
    value, scale = expected
    assert np.all(np.abs(got - value) <= 1e-5 * np.abs(value) + scale), (got, value)


case = st.fixed_dictionaries(
    {
        "sizes": st.lists(st.integers(1, 14), min_size=2, max_size=5),
        "batch": st.integers(1, 24),
        "seed": st.integers(0, 10_000),
        "bias": st.booleans(),
        "keep": st.floats(0.1, 1.0),
        "init": st.sampled_from(["signed_constant", "kaiming_normal", "binary"]),
        # Large inputs give saturated softmaxes: the precise log1p path must fall back.
        "scale": st.sampled_from([1.0, 1.0, 300.0]),
    }
)


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
@settings(max_examples=40, deadline=None)
@given(case)
def test_predicted_change_equals_full_reevaluation(impl, c):
    rng = np.random.default_rng(c["seed"])
    sizes = c["sizes"]
    net = FrozenNetwork(NetworkSpec(tuple(sizes), bias=c["bias"], init=c["init"]), c["seed"])
    mask = random_mask(net.shapes, KeepRule(c["keep"], "free"), rng)
    X = rng.random((c["batch"], sizes[0])) * c["scale"]
    X[rng.random(X.shape) < 0.3] = 0.0  # zero inputs exercise the skipping paths
    y = rng.integers(0, sizes[-1], c["batch"])
    state = flips.build_state(net, mask, X, y)
    assert state.loss == pytest.approx(cross_entropy(net.forward(mask, X), y), rel=1e-12)
    for layer, (a, b) in enumerate(net.shapes):
        K = 8
        rows, cols = rng.integers(0, a, K), rng.integers(0, b, K)
        rows2 = np.where(rng.random(K) < 0.5, rng.integers(0, a, K), -1)
        rows2[rows2 == rows] = -1
        expected = full_reevaluation(net, mask, X, y, layer, rows, cols, rows2)
        assert_gains_match(IMPLEMENTATIONS[impl](state, layer, rows, cols, rows2), expected)
        single = full_reevaluation(net, mask, X, y, layer, rows, cols, None)
        assert_gains_match(IMPLEMENTATIONS[impl](state, layer, rows, cols), single)


@settings(max_examples=30, deadline=None)
@given(case, st.integers(1, 6))
def test_caches_after_accepting_flips_equal_a_fresh_forward(c, n_flips):
    rng = np.random.default_rng(c["seed"])
    sizes = c["sizes"]
    net = FrozenNetwork(NetworkSpec(tuple(sizes), bias=c["bias"]), c["seed"])
    mask = random_mask(net.shapes, KeepRule(c["keep"], "free"), rng)
    X, y = rng.random((c["batch"], sizes[0])), rng.integers(0, sizes[-1], c["batch"])
    state = flips.build_state(net, mask, X, y)
    for _ in range(3):
        layer = int(rng.integers(0, len(net.shapes)))
        a, b = net.shapes[layer]
        flat = rng.choice(a * b, size=min(n_flips, a * b), replace=False)
        rows, cols = np.divmod(flat, b)
        predicted = state.loss + flips.flip_gains(state, layer, rows[:1], cols[:1])[0]
        flips.apply_flips(state, layer, rows[:1], cols[:1])
        assert state.loss == pytest.approx(predicted, rel=1e-9, abs=1e-12)
        flips.apply_flips(state, layer, rows[1:], cols[1:])
        mask[layer][rows, cols] ^= True
        fresh = flips.build_state(net, mask, X, y)
        for got, want in zip(state.mask, fresh.mask):
            np.testing.assert_array_equal(got, want)
        for name in ("masked", "acts_t", "pre"):
            for got, want in zip(getattr(state, name), getattr(fresh, name)):
                np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(state.probs, fresh.probs, rtol=1e-9, atol=1e-15)
        assert state.loss == pytest.approx(fresh.loss, rel=1e-10)


def test_apply_flips_rejects_duplicates():
    net = FrozenNetwork(NetworkSpec((3, 2)), 0)
    state = flips.build_state(net, [np.ones((3, 2), bool)], np.ones((1, 3)), np.array([0]))
    with pytest.raises(ValueError, match="twice"):
        flips.apply_flips(state, 0, np.array([1, 1]), np.array([0, 0]))


def test_flip_cost_is_a_small_fraction_of_a_forward():
    shapes = [(784, 300), (300, 100), (100, 10)]
    costs = [flips.flip_cost(shapes, layer) for layer in range(3)]
    assert costs[2] < costs[1] < costs[0] < 0.01
    assert costs[2] == pytest.approx(21 / 266_200)
