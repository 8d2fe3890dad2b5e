"""The Numba backend: worker threads, work plans, buffers, caching and errors.

Its agreement with the NumPy reference on random cases is in ``tests/backends/test_backend_contract.py``.
"""

import pickle

import numpy as np
import pytest
from conftest import assert_accuracy_agrees

pytest.importorskip("numba")

from prunetrain.backends import BACKENDS, make_backend  # noqa: E402
from prunetrain.backends.numba import numba_backend  # noqa: E402
from prunetrain.backends.numba.numba_backend import NumbaBackend, plan_items  # noqa: E402
from prunetrain.errors import PrunetrainError  # noqa: E402
from prunetrain.masks import KeepRule, MaskPopulation, random_mask  # noqa: E402
from prunetrain.network import FrozenNetwork, NetworkSpec  # noqa: E402


def random_case(sizes, P, B, bias, kind, keep, zero_layer, seed):
    rng = np.random.default_rng(seed)
    net = FrozenNetwork(NetworkSpec(tuple(sizes), bias=bias), seed)
    masks = [random_mask(net.shapes, KeepRule(keep, kind), rng) for _ in range(P)]
    if zero_layer is not None:  # one mask drops a whole layer: all-zero logits, exact ties
        masks[0][zero_layer % net.spec.n_layers][...] = False
    X = rng.standard_normal((B, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], B)
    return net, MaskPopulation.from_masks(masks, net.shapes), X, y


def assert_same_fitness(backend, reference, population, X, y):
    loss, acc = backend.evaluate(population, X, y)
    ref_loss, ref_acc = reference.evaluate(population, X, y)
    assert loss.dtype == acc.dtype == np.float64
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5, atol=1e-7)
    # Both backends compute float32 logits but sum the GEMMs in different orders,
    # so a near-tie between two classes may break differently.
    for p in range(len(population)):
        ref_logits = reference.logits(population.mask(p), X)
        assert_accuracy_agrees(acc[p], ref_acc[p], ref_logits, len(y))


@pytest.mark.parametrize("buffer_bytes", [numba_backend.BUFFER_BYTES, 200_000, 1])
@pytest.mark.parametrize("bias", [False, True])
def test_worker_threads_match_reference(buffer_bytes, bias):
    # Big enough to run on worker threads; small budgets split masks and rows.
    net, population, X, y = random_case((64, 48, 32, 10), 12, 300, bias, "layer", 0.5, None, 1)
    backend = NumbaBackend(net, buffer_bytes=buffer_bytes, n_workers=2)
    chunks, blocks, workers = backend._plan(len(population), len(y))
    assert workers == 2
    assert_same_fitness(backend, make_backend("numpy", net), population, X, y)
    np.testing.assert_allclose(
        backend.logits(population.mask(0), X),
        make_backend("numpy", net).logits(population.mask(0), X),
        rtol=1e-5,
        atol=1e-5,  # float32 rounding of O(1) terms (see above)
    )


def test_buffers_are_reused_across_calls():
    net, population, X, y = random_case((64, 48, 32, 10), 12, 300, False, "layer", 0.5, None, 2)
    backend = NumbaBackend(net, n_workers=2)
    first = backend.evaluate(population, X, y)
    held = [id(ws.weights) for ws in backend._workspaces]
    second = backend.evaluate(population, X, y)
    assert held == [id(ws.weights) for ws in backend._workspaces]
    np.testing.assert_array_equal(first[0], second[0])


@pytest.mark.parametrize(
    "arch, P, B",
    [((784, 1000, 1000, 10), 256, 1024), ((784, 300, 100, 10), 64, 1024), ((5, 3), 7, 2)],
)
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("budget", [numba_backend.BUFFER_BYTES, 50 << 20, 1])
def test_plan_covers_every_mask_and_row_once_within_budget(arch, P, B, workers, budget):
    spec = NetworkSpec(arch)
    act = sum(spec.layer_sizes[1:])
    chunks, blocks = plan_items(P, B, spec.n_weights, act, workers, budget)
    masks = np.concatenate([np.arange(s, s + c) for s, c in chunks])
    rows = np.concatenate([np.arange(s, s + c) for s, c in blocks])
    np.testing.assert_array_equal(masks, np.arange(P))
    np.testing.assert_array_equal(rows, np.arange(B))
    c, b = max(c for _, c in chunks), max(b for _, b in blocks)
    item = 4 * c * (spec.n_weights + b * act)
    if budget >= workers * 4 * (spec.n_weights + act):  # one mask and one row fit
        assert workers * item <= budget
    else:
        assert c == 1 and b == 1
    if P * B >= workers:
        assert len(chunks) * len(blocks) >= workers


def test_buffers_stay_under_budget():
    net, population, X, y = random_case((64, 48, 32, 10), 40, 300, False, "free", 0.5, None, 3)
    budget = 1 << 20
    backend = NumbaBackend(net, buffer_bytes=budget, n_workers=2)
    backend.evaluate(population, X, y)
    assert 0 < backend.buffer_nbytes() <= budget


def test_auto_picks_numba_without_a_gpu(small_net):
    cupy = BACKENDS.get("cupy")
    if cupy is not None and cupy.unavailable_reason() is None:
        pytest.skip("a GPU backend works here and comes first")
    assert BACKENDS["numba"] is NumbaBackend
    assert NumbaBackend.unavailable_reason() is None
    assert isinstance(make_backend("auto", small_net), NumbaBackend)


def test_bad_input_is_refused(small_net, rng):
    backend = NumbaBackend(small_net)
    masks = [random_mask(small_net.shapes, KeepRule(0.5), rng) for _ in range(2)]
    population = MaskPopulation.from_masks(masks, small_net.shapes)
    X = rng.standard_normal((5, 64), dtype=np.float32)
    with pytest.raises(PrunetrainError, match="labels must lie"):
        backend.evaluate(population, X, np.array([0, 1, 2, 3, 10]))
    with pytest.raises(PrunetrainError, match="labels have shape"):
        backend.evaluate(population, X, np.zeros(4, dtype=int))
    with pytest.raises(PrunetrainError, match="features have shape"):
        backend.evaluate(population, X[:, :10], np.zeros(5, dtype=int))
    other = MaskPopulation.from_masks([[m[:3] for m in masks[0][:1]]], [(3, 24)])
    with pytest.raises(PrunetrainError, match="population has layers"):
        backend.evaluate(other, X, np.zeros(5, dtype=int))
    with pytest.raises(PrunetrainError):
        NumbaBackend(small_net, buffer_bytes=0)
    assert backend.logits(masks[0], X[:0]).shape == (0, 10)


def test_pickles_without_its_buffers(small_net, rng):
    population = MaskPopulation.from_masks(
        [random_mask(small_net.shapes, KeepRule(0.5), rng) for _ in range(3)], small_net.shapes
    )
    X = rng.standard_normal((20, 64), dtype=np.float32)
    y = rng.integers(0, 10, 20)
    backend = NumbaBackend(small_net)
    loss, _ = backend.evaluate(population, X, y)
    clone = pickle.loads(pickle.dumps(backend))
    np.testing.assert_array_equal(clone.evaluate(population, X, y)[0], loss)


def test_kernels_are_cached_on_disk():
    kernels = [
        numba_backend._expand_wide,
        numba_backend._expand_stack,
        numba_backend._bias_relu,
        numba_backend._cross_entropy_sums,
    ]
    for kernel in kernels:
        assert kernel._cache.__class__.__name__ == "FunctionCache", kernel
        assert kernel.targetoptions.get("fastmath", False) is False


def test_concurrent_evaluations_agree_and_restore_blas_threads():
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_info

    before = {i["filepath"]: i["num_threads"] for i in threadpool_info()}
    cases = [random_case((64, 48, 32, 10), 12, 300, False, "free", 0.5, None, s) for s in range(4)]
    backends = [NumbaBackend(net, n_workers=2) for net, *_ in cases]
    expected = [make_backend("numpy", net).evaluate(pop, X, y)[0] for net, pop, X, y in cases]

    def run(k):
        net, pop, X, y = cases[k]
        return [backends[k].evaluate(pop, X, y)[0] for _ in range(3)]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, range(4)))
    for got, want in zip(results, expected):
        for loss in got:
            np.testing.assert_allclose(loss, want, rtol=1e-5)
    after = {i["filepath"]: i["num_threads"] for i in threadpool_info()}
    assert {path: after[path] for path in before} == before  # (SciPy's BLAS may load meanwhile)
