"""The NumPy reference backend against the plain float64 definition of the network."""

import numpy as np
import pytest
from conftest import assert_accuracy_agrees
from hypothesis import given, settings
from hypothesis import strategies as st

from prunetrain.backends import backend_names, make_backend, numpy_backend, resolve_backend
from prunetrain.errors import PrunetrainError
from prunetrain.masks import KeepRule, MaskPopulation, random_mask
from prunetrain.metrics import accuracy, cross_entropy
from prunetrain.network import FrozenNetwork, NetworkSpec


def test_cross_entropy_equals_direct_formula():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(7, 4)) * 3
    y = rng.integers(0, 4, 7)
    direct = np.mean([-np.log(np.exp(z[t]) / np.exp(z).sum()) for z, t in zip(logits, y)])
    assert cross_entropy(logits, y) == pytest.approx(direct, rel=1e-12)
    # Stable for huge logits where the naive formula overflows.
    big = np.array([[1000.0, 0.0], [0.0, 1000.0]])
    np.testing.assert_allclose(cross_entropy(big, np.array([1, 1])), 500.0)
    # Batched over leading axes.
    stacked = np.stack([logits, 2 * logits])
    np.testing.assert_allclose(
        cross_entropy(stacked, y), [cross_entropy(logits, y), cross_entropy(2 * logits, y)]
    )


def test_accuracy_takes_first_index_on_ties():
    logits = np.array([[1.0, 1.0], [0.0, 2.0], [3.0, 1.0]])
    assert accuracy(logits, np.array([0, 1, 1])) == pytest.approx(2 / 3)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(1, 20), min_size=2, max_size=4),
    st.integers(1, 9),
    st.integers(1, 40),
    st.booleans(),
    st.integers(0, 10_000),
)
def test_population_forward_equals_per_mask_float64_loop(sizes, P, B, bias, seed):
    rng = np.random.default_rng(seed)
    net = FrozenNetwork(NetworkSpec(tuple(sizes), bias=bias), seed)
    masks = [
        random_mask(net.shapes, KeepRule(rng.uniform(0.05, 1.0), "free"), rng) for _ in range(P)
    ]
    X = rng.random((B, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], B)
    backend = make_backend("numpy", net)
    loss, acc = backend.evaluate(MaskPopulation.from_masks(masks, net.shapes), X, y)
    for p, m in enumerate(masks):
        ref = net.forward(m, X)
        assert loss[p] == pytest.approx(cross_entropy(ref, y), rel=1e-5, abs=1e-6)
        np.testing.assert_allclose(backend.logits(m, X), ref, rtol=1e-4, atol=1e-5)
        # float32 vs float64 may only disagree on near-ties (many, where units tie exactly).
        assert_accuracy_agrees(acc[p], accuracy(ref, y), ref, B)


def test_chunked_population_equals_unchunked(monkeypatch):
    rng = np.random.default_rng(1)
    net = FrozenNetwork(NetworkSpec((30, 20, 5)), 0)
    pop = MaskPopulation.from_masks(
        [random_mask(net.shapes, KeepRule(0.5), rng) for _ in range(7)], net.shapes
    )
    X, y = rng.random((16, 30), dtype=np.float32), rng.integers(0, 5, 16)
    backend = make_backend("numpy", net)
    whole = backend.evaluate(pop, X, y)
    monkeypatch.setattr(numpy_backend, "CHUNK_BYTES", 4 * net.spec.n_weights * 2)  # 2 masks a chunk
    chunked = make_backend("numpy", net).evaluate(pop, X, y)
    # Chunks change the first GEMM's width, which BLAS may round differently (OpenBLAS's
    # AVX2 kernels do, in the 9th digit): equal to float32 rounding, not to the bit.
    np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-6)
    for p in range(len(pop)):
        assert_accuracy_agrees(chunked[1][p], whole[1][p], backend.logits(pop.mask(p), X), len(y))


def test_backend_registry():
    assert backend_names()[0] == "auto" and "numpy" in backend_names()
    assert resolve_backend("numpy").name == "numpy"
    assert resolve_backend("auto").unavailable_reason() is None
    with pytest.raises(PrunetrainError, match="unknown backend 'tpu'"):
        make_backend("tpu", FrozenNetwork(NetworkSpec((2, 2)), 0))
