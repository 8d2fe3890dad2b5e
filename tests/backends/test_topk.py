"""Mask sampling: the NumPy reference of :mod:`prunetrain.backends.topk`, and the Numba kernels
and backend operations agreeing with it bit for bit (the CUDA kernel: ``tests/backends/test_cuda_kernels.py``)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prunetrain.backends import NumbaBackend, NumpyBackend
from prunetrain.backends.numba import topk_kernels
from prunetrain.backends.topk import counter_uniforms, gumbel_top_k, top_k_rows
from prunetrain.network import FrozenNetwork, NetworkSpec
from prunetrain.search.evolution import topk_mode

NET = FrozenNetwork(NetworkSpec((4, 2)), 0)


def test_counter_uniforms_known_values():
    # SplitMix64 seeded with 0 starts 0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4 (its reference values).
    u = counter_uniforms(np.array([0], dtype=np.uint64), 2)
    top24 = np.array([0xE220A8397B1DCDAF >> 40, 0x6E789E6AA1B965F4 >> 40], dtype=np.float32)
    np.testing.assert_array_equal(u[0], (top24 + 1) * np.float32(2.0**-24))
    u = counter_uniforms(np.arange(4, dtype=np.uint64), 100_000)
    assert u.min() > 0 and u.max() <= 1
    assert abs(float(u.mean()) - 0.5) < 0.003
    # Different seeds give unrelated rows.
    assert abs(np.corrcoef(u[0], u[1])[0, 1]) < 0.02


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=4), st.integers(0, 3000))
def test_uniform_kernel_agrees_with_reference(seeds, n):
    seeds = np.array(seeds, dtype=np.uint64)
    np.testing.assert_array_equal(topk_kernels.uniforms(seeds, n), counter_uniforms(seeds, n))


def _argpartition_top_k(key, k):
    n = key.shape[1]
    out = np.zeros(key.shape, dtype=bool)
    out[np.arange(len(key))[:, None], np.argpartition(key, n - k, axis=1)[:, n - k :]] = True
    return out


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 30_000),
    st.floats(0.0, 1.0),
    st.integers(1, 3),
    st.integers(0, 2**32 - 1),
    st.sampled_from(["float32", "float64"]),
)
def test_top_k_rows_marks_the_k_largest(n, keep, size, seed, dtype):
    rng = np.random.default_rng(seed)
    k = round(keep * n)
    key = rng.standard_normal((size, n)).astype(dtype)
    ref = top_k_rows(key, k)
    np.testing.assert_array_equal(ref.sum(axis=1), k)
    if 0 < k < n:  # distinct values: the set is the argpartition one
        np.testing.assert_array_equal(ref, _argpartition_top_k(key, k))
    np.testing.assert_array_equal(topk_kernels.select_top_k(key, k), ref)
    np.testing.assert_array_equal(NumbaBackend(NET).top_k_rows(key, k), ref)


@pytest.mark.parametrize("n", [50, 9000, 40_000])
def test_top_k_rows_ties_go_to_the_lowest_columns(n):
    rng = np.random.default_rng(n)
    key = rng.integers(0, 5, size=(3, n)).astype(np.float32)  # massive ties
    for k in (0, 1, n // 3, n // 2, n - 1, n):
        fast, ref = topk_kernels.select_top_k(key, k), top_k_rows(key, k)
        np.testing.assert_array_equal(fast, ref)
        np.testing.assert_array_equal(ref.sum(axis=1), k)
        for row, kept in zip(key, ref):
            if 0 < k < n:
                t = np.sort(row)[n - k]  # the boundary value
                assert np.all(row[kept] >= t) and np.all(row[~kept] <= t)
                tied = np.flatnonzero(row == t)
                chosen = kept[tied]
                assert np.all(np.diff(chosen.astype(int)) <= 0)  # a prefix of the ties


def test_top_k_rows_exact_when_the_subsample_misleads():
    # Every strided sample is 0 while the rest is positive: the band misses the boundary
    # and the kernel must fall back to a full partition.
    n = 20_000
    key = np.random.default_rng(0).random((2, n)).astype(np.float32) + 1
    key[:, :: topk_kernels.stride(n)] = 0
    for k in (100, n // 2, 17_000):  # the top 17 777 are positive: no ties
        np.testing.assert_array_equal(
            topk_kernels.select_top_k(key, k), _argpartition_top_k(key, k)
        )


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 200), st.floats(0.0, 1.0), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_gumbel_top_k_and_mode_keep_exactly_k(n, keep, size, seed):
    rng = np.random.default_rng(seed)
    k = max(1, round(keep * n))
    theta = rng.normal(0, 3, n)
    np.testing.assert_array_equal(gumbel_top_k(theta, k, size, rng).sum(axis=1), k)
    mode = topk_mode(theta, k)
    assert mode.sum() == k and theta[mode].min() >= theta[~mode].max(initial=-np.inf)


def test_gumbel_top_k_follows_the_logits():
    theta = np.array([3.0, 0.0, 0.0, -3.0])
    x = gumbel_top_k(theta, 1, 50_000, np.random.default_rng(0))
    np.testing.assert_allclose(x.mean(axis=0), np.exp(theta) / np.exp(theta).sum(), atol=0.01)


def test_gumbel_top_k_inclusion_probabilities_match_sampling_without_replacement():
    # k = 2 of 3 with weights w: P(i kept) = 1 - P(i is the one left out), and the
    # one left out is last in a sequential draw: P(i left out) = Σ_j≠i w_j/W · w_l/(W - w_j).
    w = np.array([4.0, 2.0, 1.0])
    W = w.sum()
    left_out = [
        sum(w[j] / W * w[3 - i - j] / (W - w[j]) for j in range(3) if j != i) for i in range(3)
    ]
    x = gumbel_top_k(np.log(w), 2, 60_000, np.random.default_rng(1))
    np.testing.assert_allclose(x.mean(axis=0), 1 - np.array(left_out), atol=0.01)


@pytest.mark.parametrize("n", [100, 50_000])
def test_gumbel_top_k_same_seed_same_masks_on_every_cpu_backend(n):
    theta = np.random.default_rng(0).normal(0, 2, n)
    ref_rng = np.random.default_rng(7)
    ref = gumbel_top_k(theta, n // 2, 4, ref_rng)
    after = ref_rng.random()
    for backend in (NumpyBackend(NET), NumbaBackend(NET)):
        rng = np.random.default_rng(7)
        np.testing.assert_array_equal(backend.gumbel_top_k(theta, n // 2, 4, rng), ref)
        assert rng.random() == after  # the same draws from the searcher's generator
    assert not np.array_equal(ref[0], ref[1])
    mode = topk_mode(theta, n // 2)
    np.testing.assert_array_equal(topk_mode(theta, n // 2, NumbaBackend(NET)), mode)
