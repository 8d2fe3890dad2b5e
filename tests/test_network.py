import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prunetrain.errors import PrunetrainError
from prunetrain.network import INIT_SCHEMES, FrozenNetwork, NetworkSpec, parse_arch


def test_parse_arch():
    assert parse_arch("784-300-100-10") == (784, 300, 100, 10)
    assert parse_arch("4x3x2") == (4, 3, 2)
    for bad in ["", "784", "a-b", "10--5", "10-0-3", "-3-4"]:
        with pytest.raises(PrunetrainError, match="bad architecture"):
            parse_arch(bad)


def test_shapes_and_counts():
    spec = NetworkSpec((784, 300, 100, 10))
    assert spec.shapes == [(784, 300), (300, 100), (100, 10)]
    assert spec.n_weights == 784 * 300 + 300 * 100 + 100 * 10
    assert spec.flops_per_sample() == 2 * spec.n_weights
    assert spec.arch == "784-300-100-10"
    assert NetworkSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"init": "xavier"}, "unknown init"),
        ({"scale": "double"}, "unknown scale"),
        ({"keep": 0.0}, r"keep must lie in \(0, 1\]"),
        ({"keep": 1.5}, r"keep must lie in \(0, 1\]"),
        ({"keep": float("nan")}, "keep must lie"),
        ({"activation": "tanh"}, "unknown activation"),
    ],
)
def test_spec_rejects_bad_values(kwargs, match):
    with pytest.raises(PrunetrainError, match=match):
        NetworkSpec((4, 3), **kwargs)


@pytest.mark.parametrize("init", INIT_SCHEMES)
@pytest.mark.parametrize("scale", ["keep", "none"])
def test_init_statistics(init, scale):
    keep = 0.25
    net = FrozenNetwork(NetworkSpec((400, 300, 10), init=init, scale=scale, keep=keep), seed=0)
    factor = 2.0 if scale == "keep" else 1.0  # 1/sqrt(0.25)
    for w, (fan_in, _) in zip(net.weights, net.shapes):
        assert w.dtype == np.float32 and not w.flags.writeable
        std = math.sqrt(2.0 / fan_in) if init != "binary" else 1.0
        expected = std * factor
        if init in ("signed_constant", "binary"):
            np.testing.assert_allclose(np.unique(np.abs(w)), [expected], rtol=1e-6)
            assert abs((w > 0).mean() - 0.5) < 0.03
        else:
            assert abs(w.std() / expected - 1) < 0.05
            assert abs(w.mean()) < 0.05 * expected
        if init == "kaiming_uniform":
            assert np.abs(w).max() <= math.sqrt(3) * expected * (1 + 1e-6)
            assert np.abs(w).max() > 0.95 * math.sqrt(3) * expected


def test_weights_are_a_pure_function_of_spec_and_seed():
    spec = NetworkSpec((20, 10, 5))
    a, b, c = FrozenNetwork(spec, 1), FrozenNetwork(spec, 1), FrozenNetwork(spec, 2)
    for wa, wb, wc in zip(a.weights, b.weights, c.weights):
        np.testing.assert_array_equal(wa, wb)
        assert not np.array_equal(wa, wc)
    assert a.weights_hash == b.weights_hash != c.weights_hash
    # A layer's weights do not depend on the size of later layers.
    d = FrozenNetwork(NetworkSpec((20, 10, 7)), 1)
    np.testing.assert_array_equal(a.weights[0], d.weights[0])


def test_hash_covers_spec_not_only_weights():
    # binary ±1 weights with and without keep scaling differ; so do hashes of specs
    # whose weights happen to be equal (scale=none vs keep=1.0 with scale=keep).
    a = FrozenNetwork(NetworkSpec((6, 4), scale="none"), 0)
    b = FrozenNetwork(NetworkSpec((6, 4), scale="keep", keep=1.0), 0)
    np.testing.assert_array_equal(a.weights[0], b.weights[0])
    assert a.weights_hash != b.weights_hash


def test_bias_option():
    net = FrozenNetwork(NetworkSpec((5, 4, 3), bias=True), 0)
    assert [b.shape for b in net.biases] == [(4,), (3,)]
    assert FrozenNetwork(NetworkSpec((5, 4, 3)), 0).biases is None


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=2, max_size=4), st.integers(0, 2**32), st.booleans())
def test_forward_matches_a_naive_loop(sizes, seed, bias):
    net = FrozenNetwork(NetworkSpec(tuple(sizes), bias=bias), seed % 1000)
    rng = np.random.default_rng(seed)
    X = rng.random((3, sizes[0]))
    masks = [rng.random(s) < 0.5 for s in net.shapes]
    out = net.forward(masks, X)
    for n in range(3):
        a = X[n].astype(np.float64)
        for layer, (w, m) in enumerate(zip(net.weights, masks)):
            z = np.array(
                [
                    sum(a[i] * float(w[i, j]) * m[i, j] for i in range(len(a)))
                    for j in range(w.shape[1])
                ]
            )
            if bias:
                z = z + net.biases[layer]
            a = z if layer == len(masks) - 1 else np.maximum(z, 0)
        np.testing.assert_allclose(out[n], a, rtol=1e-10, atol=1e-12)


def test_seed_validation():
    for bad in [-1, 1.5, "3", True]:
        with pytest.raises(PrunetrainError, match="seed"):
            FrozenNetwork(NetworkSpec((3, 2)), bad)


# The first weights and biases of NetworkSpec((5, 4, 3), init=..., bias=True) with seed 2024,
# as NumPy's Generator drew them when tickets were first written. Tickets store no weights:
# if NumPy's random streams change, every saved ticket stops loading (its weights hash
# differs), so a change must fail here, loudly, before it reaches users.
PINNED_WEIGHTS = {
    "signed_constant": (
        [0.8944271802902222, 0.8944271802902222, -0.8944271802902222, 0.8944271802902222],
        [-1.0, -1.0, -1.0],
        [0.026886792853474617, -0.05660170316696167],
    ),
    "kaiming_normal": (
        [-0.1893720030784607, -0.15349464118480682, 0.5350342988967896, -0.5415955185890198],
        [2.2140161991119385, -0.8298833966255188, 1.0592010021209717],
        [-0.05357133969664574, 0.04816072806715965],
    ),
    "kaiming_uniform": (
        [0.466522753238678, 0.09161966294050217, -1.0314805507659912, 0.5143353939056396],
        [-1.3031636476516724, -0.1445605754852295, -1.3396687507629395],
        [0.026886792853474617, -0.05660170316696167],
    ),
    "binary": (
        [1.4142135381698608, 1.4142135381698608, -1.4142135381698608, 1.4142135381698608],
        [-1.4142135381698608, -1.4142135381698608, -1.4142135381698608],
        [0.026886792853474617, -0.05660170316696167],
    ),
}


@pytest.mark.parametrize("init", INIT_SCHEMES)
def test_weights_of_a_known_spec_and_seed_are_pinned(init):
    net = FrozenNetwork(NetworkSpec((5, 4, 3), init=init, bias=True), seed=2024)
    first, second, bias = PINNED_WEIGHTS[init]
    # Exact: NumPy makes these floats from the bit generator's integers in IEEE arithmetic.
    assert net.weights[0].ravel()[:4].tolist() == first
    assert net.weights[1].ravel()[:3].tolist() == second
    assert net.biases[0][:2].tolist() == bias
    assert net.biases[1][:2].tolist() == [-0.05461287498474121, -0.052211228758096695]


def test_weights_hash_of_the_default_spec_is_pinned():
    # The hash covers the spec's JSON too: a new spec field would also invalidate tickets.
    expected = "688da32dfe5f2fb2f86264c16d59b0f284bfcc21193e2fd3cb03a1a185fdb74c"
    assert FrozenNetwork(NetworkSpec((64, 32, 10)), 0).weights_hash == expected
