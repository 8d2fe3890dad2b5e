"""The CuPy backend against the NumPy reference on EVERY operation of the backend interface.

The operations are read off :class:`~prunetrain.backends.base.Backend` when
the tests are collected (its public methods), and each needs a case in
:data:`CASES`: an operation added to the interface later without a case here
fails :func:`test_every_backend_operation_has_a_parity_case`, which needs no
GPU and runs everywhere.

Each case takes a :class:`Harness`, which makes the backend under test, and
compares it with :class:`~prunetrain.backends.NumpyBackend` (and the NumPy
functions it calls) on random networks, masks and batches: bit for bit where
the result is integer or boolean (sampled masks, top-k rows, k-WTA winners of
untied inputs), to float rounding elsewhere (float64 sums may run in another
order on a GPU). The cases run:

* on a real GPU, here (:func:`test_cupy_matches_numpy_on_the_gpu`, skipped
  with the reason where no GPU works), with a 784-300-100-10 network
  (P = 64, B = 1024) on top of the small ones; ``experiments/gpu_check.sh``
  runs them on a lent GPU machine;
* under Numba's CUDA simulator, with NumPy arrays in place of CuPy's, as
  checks of ``tests/backends/test_cuda_kernels.py`` (one child process), so that the
  cases themselves are known to work before a GPU runs them.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable

import numpy as np
import pytest
from test_backend_contract import (
    assert_gains_match,
    assert_same_fitness,
    population_case,
    random_moves,
    rounding_scale,
)

from prunetrain.backends import NumpyBackend, flips, hebbian, screen
from prunetrain.backends.base import Backend
from prunetrain.errors import PrunetrainError
from prunetrain.masks import KeepRule, MaskPopulation, random_mask
from prunetrain.network import FrozenNetwork, NetworkSpec

#: Every skip of a test that needs a GPU starts so; ``experiments/gpu_check.py`` counts such
#: a skip on a GPU machine as a failure.
NEEDS_GPU = "needs a usable GPU"


def backend_operations(cls: type = Backend) -> list[str]:
    """The public methods of ``cls`` and the classes it derives from (``object`` and ``ABC`` aside)."""
    names = set()
    for klass in cls.__mro__:
        if klass.__module__ in ("builtins", "abc"):
            continue
        for name, member in vars(klass).items():
            function = (
                member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
            )
            if not name.startswith("_") and inspect.isfunction(function):
                names.add(name)
    return sorted(names)


OPERATIONS = backend_operations()


@dataclasses.dataclass(frozen=True)
class Harness:
    """How the cases make the backend under test.

    Attributes
    ----------
    make : callable
        ``make(network, **options)``: a :class:`CupyBackend` on the GPU, or
        one on NumPy arrays under the CUDA simulator.
    on_device : bool
        True on a real GPU: device arrays are CuPy's, and the large network is checked too.
    """

    make: Callable[..., Backend]
    on_device: bool

    @property
    def networks(self) -> list[tuple]:
        """``(sizes, P, B, bias)`` of the populations the cases evaluate."""
        small = [((6, 5, 4, 3), 3, 7, False), ((5, 4), 2, 5, True)]
        return small + [((784, 300, 100, 10), 64, 1024, False)] if self.on_device else small


def flip_case(seed: int, sizes=(6, 5, 4, 3), batch=9, bias=True, weighted=False):
    """A network, a free random mask, a batch with zeros and sample weights (mean 1) or None."""
    rng = np.random.default_rng(seed)
    net = FrozenNetwork(NetworkSpec(sizes, bias=bias), seed)
    mask = random_mask(net.shapes, KeepRule(0.5, "free"), rng)
    X = rng.random((batch, sizes[0])).astype(np.float32)
    X[rng.random(X.shape) < 0.3] = 0.0
    y = rng.integers(0, sizes[-1], batch)
    w = None
    if weighted:
        w = rng.integers(1, 4, batch).astype(np.float64)
        w *= batch / w.sum()
    return net, mask, X, y, w, rng


def states(h: Harness, net, mask, X, y, w):
    """The backend under test, its flip state, and the reference's state of the same batch."""
    backend = h.make(net)
    wd = None if w is None else backend.asweights(w)
    state = backend.flip_state(mask, backend.asarray(X), backend.aslabels(y), wd)
    return backend, state, NumpyBackend(net).flip_state(mask, X, y, w)


def assert_caches_match(backend, state, ref) -> None:
    """The flip state's caches, copied to the host, equal the reference's (float64)."""
    assert state.loss == pytest.approx(ref.loss, rel=1e-10)
    for got, want in zip(state.mask, ref.mask):
        np.testing.assert_array_equal(np.asarray(got), want)
    for name in ("masked", "acts_t", "pre"):
        for got, want in zip(getattr(state, name), getattr(ref, name)):
            np.testing.assert_allclose(backend.to_host(got), want, rtol=1e-9, atol=1e-12)
    for name in ("probs", "log_probs", "sample_losses"):
        got, want = backend.to_host(getattr(state, name)), getattr(ref, name)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


# --- the cases: one per operation ---------------------------------------------------------


def case_unavailable_reason(h: Harness) -> None:
    from prunetrain.backends.cupy.cupy_backend import CupyBackend, gpu_unavailable_reason

    assert NumpyBackend.unavailable_reason() is None
    reason = CupyBackend.unavailable_reason()
    assert reason == gpu_unavailable_reason()
    if h.on_device:
        assert reason is None
    else:
        assert isinstance(reason, str) and "\n" not in reason


def case_asarray(h: Harness) -> None:
    net = FrozenNetwork(NetworkSpec((5, 3)), 0)
    backend, reference = h.make(net), NumpyBackend(net)
    X = np.random.default_rng(0).standard_normal((8, 10))[:, ::2]  # float64, not contiguous
    got = backend.asarray(X)
    assert backend.is_device_array(got) == h.on_device
    host = backend.to_host(got)
    assert host.dtype == np.float32 and host.flags.c_contiguous
    np.testing.assert_array_equal(host, reference.asarray(X))


def case_aslabels(h: Harness) -> None:
    net = FrozenNetwork(NetworkSpec((5, 3)), 0)
    backend, reference = h.make(net), NumpyBackend(net)
    y = np.array([2, 0, 1, 1, 0], dtype=np.int32)
    host = backend.to_host(backend.aslabels(y))
    assert host.dtype == np.int64
    np.testing.assert_array_equal(host, reference.aslabels(y))
    again = backend.to_host(backend.aslabels(backend.aslabels(y)))  # a device array passes
    np.testing.assert_array_equal(again, host)
    with pytest.raises(PrunetrainError, match=r"labels must lie in \[0, 3\)"):
        backend.aslabels(np.array([0, 3]))


def case_asweights(h: Harness) -> None:
    net = FrozenNetwork(NetworkSpec((5, 3)), 0)
    backend, reference = h.make(net), NumpyBackend(net)
    w = np.array([0.5, 1.25, 0.0, 2.25], dtype=np.float32)
    host = backend.to_host(backend.asweights(w))
    assert host.dtype == np.float64
    np.testing.assert_array_equal(host, reference.asweights(w))


def case_take(h: Harness) -> None:
    net = FrozenNetwork(NetworkSpec((5, 3)), 0)
    backend, reference = h.make(net), NumpyBackend(net)
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((9, 5), dtype=np.float32), rng.integers(0, 3, 9)
    index = np.array([8, 0, 3, 3])
    got = backend.take(backend.asarray(X), index)
    np.testing.assert_array_equal(backend.to_host(got), reference.take(X, index))
    got = backend.take(backend.aslabels(y), index)
    np.testing.assert_array_equal(backend.to_host(got), reference.take(y, index))


def case_to_host(h: Harness) -> None:
    net = FrozenNetwork(NetworkSpec((5, 3)), 0)
    backend, reference = h.make(net), NumpyBackend(net)
    for a in (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([True, False]), np.arange(3)):
        got = backend.to_host(backend.to_device(a))
        assert type(got) is np.ndarray and got.dtype == a.dtype
        np.testing.assert_array_equal(got, reference.to_host(a))


def case_is_device_array(h: Harness) -> None:
    net = FrozenNetwork(NetworkSpec((5, 3)), 0)
    backend, reference = h.make(net), NumpyBackend(net)
    X = np.ones((2, 5), dtype=np.float32)
    assert backend.is_device_array(backend.asarray(X)) == h.on_device
    assert backend.is_device_array(backend.to_device(np.arange(3))) == h.on_device
    assert not backend.is_device_array(X) and not backend.is_device_array([1.0])
    assert not reference.is_device_array(reference.asarray(X))


def case_to_device(h: Harness) -> None:
    net = FrozenNetwork(NetworkSpec((5, 3)), 0)
    backend, reference = h.make(net), NumpyBackend(net)
    for a in (np.linspace(0, 1, 12).reshape(3, 4), np.arange(5, dtype=np.int64)):
        got = backend.to_device(a)
        assert backend.is_device_array(got) == h.on_device
        assert tuple(got.shape) == a.shape and got.dtype == a.dtype
        np.testing.assert_array_equal(backend.to_host(got), reference.to_device(a))


def case_evaluate(h: Harness) -> None:
    for k, (sizes, P, B, bias) in enumerate(h.networks):
        # Weighted near-ties are counted sample by sample on the host: the small networks only.
        for weighted in (False, True) if B < 100 else (False,):
            net, masks, population, X, y, w = population_case(
                sizes, P, B, bias, "layer", 0.5, 0, weighted, seed=k
            )
            reference = NumpyBackend(net)
            for options in ({}, {"buffer_bytes": 1}):  # one chunk; one mask per chunk
                backend = h.make(net, **options)
                assert_same_fitness(backend, reference, masks, population, X, y, w)
            index = np.arange(0, B, 2)  # rows taken on the device: a minibatch
            loss, _ = backend.evaluate(
                population,
                backend.take(backend.asarray(X), index),
                backend.take(backend.aslabels(y), index),
            )
            want = reference.evaluate(population, X[index], y[index])[0]
            np.testing.assert_allclose(loss, want, rtol=1e-5, atol=1e-7)
    net = FrozenNetwork(NetworkSpec((5, 3)), 0)
    with pytest.raises(PrunetrainError, match="empty batch"):
        h.make(net).evaluate(
            MaskPopulation.from_masks([[np.ones((5, 3), bool)]], net.shapes),
            np.zeros((0, 5), np.float32),
            np.zeros(0, np.int64),
        )


def case_logits(h: Harness) -> None:
    for k, (sizes, P, B, bias) in enumerate(h.networks):
        net, masks, _, X, _, _ = population_case(sizes, P, B, bias, "layer", 0.5, 0, False, k)
        backend, reference = h.make(net), NumpyBackend(net)
        for mask in (masks[0], masks[-1]):  # masks[0] drops its first layer: all-zero logits
            got = backend.logits(mask, backend.asarray(X))
            assert isinstance(got, np.ndarray) and got.dtype == np.float32
            np.testing.assert_allclose(got, reference.logits(mask, X), rtol=1e-5, atol=1e-5)
        assert backend.logits(masks[0], backend.asarray(X[:0])).shape == (0, sizes[-1])


def case_flip_state(h: Harness) -> None:
    for seed, weighted in ((0, False), (1, True)):
        net, mask, X, y, w, _ = flip_case(seed, weighted=weighted)
        backend, state, ref = states(h, net, mask, X, y, w)
        assert state.batch_size == ref.batch_size == len(y)
        assert state.loss == pytest.approx(ref.loss, rel=1e-12)
        assert_caches_match(backend, state, ref)


def case_flip_gains(h: Harness) -> None:
    for seed, weighted in ((2, False), (3, True)):
        net, mask, X, y, w, rng = flip_case(seed, weighted=weighted)
        backend, state, ref = states(h, net, mask, X, y, w)
        for layer, shape in enumerate(net.shapes):
            rows, cols, rows2 = random_moves(rng, shape, 8)
            for second in (rows2, None):
                X64 = X.astype(np.float64)
                scale = rounding_scale(net, mask, X64, layer, rows, cols, second)
                assert_gains_match(
                    backend.flip_gains(state, layer, rows, cols, second),
                    flips.flip_gains(ref, layer, rows, cols, second),
                    scale,
                )
        assert len(backend.flip_gains(state, 0, np.empty(0, int), np.empty(0, int))) == 0


def case_apply_flips(h: Harness) -> None:
    net, mask, X, y, w, rng = flip_case(4, weighted=True)
    backend, state, ref = states(h, net, mask, X, y, w)
    for step in range(2 * net.spec.n_layers):
        layer = step % net.spec.n_layers
        a, b = net.shapes[layer]
        rows, cols = np.divmod(rng.choice(a * b, size=3, replace=False), b)
        backend.apply_flips(state, layer, rows, cols)
        flips.apply_flips(ref, layer, rows, cols)
        assert_caches_match(backend, state, ref)


def case_warm_up(h: Harness) -> None:
    net, masks, population, X, y, _ = population_case(
        (6, 5, 4, 3), 3, 7, True, "layer", 0.5, None, False, 5
    )
    backend = h.make(net)
    Xd, yd = backend.asarray(X), backend.aslabels(y)
    assert backend.warm_up(Xd, yd) is None
    assert NumpyBackend(net).warm_up(X, y) is None
    # Warming up leaves nothing behind: the data and the results are as before.
    np.testing.assert_array_equal(backend.to_host(Xd), X)
    assert_same_fitness(backend, NumpyBackend(net), masks, population, X, y, None)


def case_flip_screen(h: Harness) -> None:
    sizes = [((6, 5, 4, 3), False), ((4, 3), True)]
    if h.on_device:
        sizes.append(((784, 300, 100, 10), False))
    for seed, (shape, weighted) in enumerate(sizes):
        net, mask, X, y, w, _ = flip_case(10 + seed, shape, batch=11, weighted=weighted)
        backend, state, ref = states(h, net, mask, X, y, w)
        losses = backend.to_host(state.sample_losses).copy()
        for probe in (None, 0.05):
            got = backend.flip_screen(state) if probe is None else backend.flip_screen(state, probe)
            want = screen.screen_gains(ref, screen.probe_responses(ref, probe or screen.PROBE))
            assert len(got) == len(want)
            for g, v in zip(got, want):
                assert isinstance(g, np.ndarray) and g.dtype == np.float32 and g.shape == v.shape
                np.testing.assert_allclose(g, v, rtol=0, atol=1e-5 * max(np.abs(v).max(), 1e-3))
        # the screen leaves the state as it was
        np.testing.assert_array_equal(backend.to_host(state.sample_losses), losses)


# --- mask sampling: bits equal to the reference's ------------------------------------------


def case_counter_uniforms(h: Harness) -> None:
    net = FrozenNetwork(NetworkSpec((5, 3)), 0)
    backend, reference = h.make(net), NumpyBackend(net)
    seeds = np.array([0, 1, 2**64 - 1, 12345, 7, 99], dtype=np.uint64)  # 2**64 - 1 wraps at once
    widths = (1, 37, 784 * 300) if h.on_device else (1, 37)
    for n in widths:
        for rows in (seeds, seeds[::2]):  # a strided view is made contiguous on the way in
            got = backend.counter_uniforms(rows, n)
            assert backend.is_device_array(got) == h.on_device
            host = backend.to_host(got)
            assert host.dtype == np.float32 and host.shape == (len(rows), n)
            np.testing.assert_array_equal(host, reference.counter_uniforms(rows, n))


def case_top_k_rows(h: Harness) -> None:
    net = FrozenNetwork(NetworkSpec((5, 3)), 0)
    backend, reference = h.make(net), NumpyBackend(net)
    rng = np.random.default_rng(6)
    for n in (41, 784 * 300) if h.on_device else (41,):
        distinct = rng.standard_normal((3, n))
        tied = rng.integers(0, 4, (3, n)).astype(np.float64)  # ties go to the lowest columns
        for key in (distinct, tied, distinct.astype(np.float32), tied.astype(np.float32)):
            for k in (0, 1, n // 2, n - 1, n):
                want = reference.top_k_rows(key, k)
                np.testing.assert_array_equal(want.sum(axis=1), k)
                for given in (key, backend.to_device(key)):  # keys from the host or the device
                    got = backend.top_k_rows(given, k)
                    assert type(got) is np.ndarray and got.dtype == bool
                    np.testing.assert_array_equal(got, want)


def case_gumbel_top_k(h: Harness) -> None:
    net = FrozenNetwork(NetworkSpec((5, 3)), 0)
    backend, reference = h.make(net), NumpyBackend(net)
    widths = [(41, (0, 1, 20, 40, 41, 50), 3)]
    if h.on_device:  # the first layer of 784-300-100-10, half kept
        widths.append((784 * 300, (1, 784 * 150), 4))
    for n, ks, size in widths:
        theta = np.random.default_rng(n).normal(0, 2, n)
        for k in ks:
            ours, theirs = np.random.default_rng(k), np.random.default_rng(k)
            got = backend.gumbel_top_k(theta, k, size, ours)
            want = reference.gumbel_top_k(theta, k, size, theirs)
            assert type(got) is np.ndarray and got.dtype == bool and got.shape == (size, n)
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(got.sum(axis=1), min(k, n))
            assert ours.random() == theirs.random()  # the same draws from the searcher's generator
            if 0 < k < n:
                assert not np.array_equal(got[0], got[1])  # one seed per mask


# --- Hebbian statistics: float64 on the device, to rounding of sums in another order -------


def assert_float64_close(got, want) -> None:
    """float64 statistics equal to 1e-9 relative, or 1e-10 of ``want``'s largest magnitude.

    A GPU sums the GEMMs in another order; under the simulator they are equal.
    """
    assert isinstance(got, np.ndarray) and got.dtype == np.float64 and got.shape == want.shape
    scale = float(np.abs(want).max())
    assert scale > 0, "a reference of zeros shows nothing"
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10 * scale)


def hebbian_passes(h: Harness):
    """``(backend, its pass, the reference's pass, rng)`` of each network the Hebbian cases check.

    The features are normal (no zeros), so no pre-activation is tied at a
    sample's k-WTA boundary and the winners are defined without ``argpartition``'s choice.
    """
    # Without biases a unit whose inputs are all pruned or silent sits at 0, and two such
    # units tie: the seed of the small network without biases is one where none do.
    cases = [((7, 6, 5, 3), 9, True, 0), ((6, 7, 4), 8, False, 1)]
    if h.on_device:
        cases.append(((784, 300, 100, 10), 1024, False, 2))
    for sizes, B, bias, seed in cases:
        net, masks, _, X, y, _ = population_case(sizes, 1, B, bias, "layer", 0.5, None, False, seed)
        backend, reference = h.make(net), NumpyBackend(net)
        hp = backend.hebbian_pass(masks[0], backend.asarray(X), backend.aslabels(y))
        yield backend, hp, reference.hebbian_pass(masks[0], X, y), np.random.default_rng(seed)


def case_hebbian_pass(h: Harness) -> None:
    for backend, hp, ref, _ in hebbian_passes(h):
        assert hp.batch_size == ref.batch_size
        assert hp.loss == pytest.approx(ref.loss, rel=1e-10)
        np.testing.assert_allclose(hp.pre_stds, ref.pre_stds, rtol=1e-10)
        np.testing.assert_array_equal(backend.to_host(hp.y), ref.y)
        assert (hp.biases is None) == (ref.biases is None)
        for got, want in zip(hp.input_means, ref.input_means):  # on the host
            assert_float64_close(got, want)
        assert backend.is_device_array(hp.pres[0]) == h.on_device  # the rest stays on the device
        for name in ("weights", "masked", "biases", "inputs", "pres"):
            for got, want in zip(getattr(hp, name) or [], getattr(ref, name) or []):
                assert_float64_close(backend.to_host(got), want)


def assert_untied(z: np.ndarray, k: int) -> None:
    """No sample of ``z`` has its ``k``-th and ``k+1``-th largest equal (a precondition of the cases)."""
    if k < z.shape[1]:
        ordered = -np.sort(-z, axis=1)
        assert np.all(ordered[:, k - 1] > ordered[:, k]), f"tied winners at k = {k}"


def case_winners_take_all(h: Harness) -> None:
    net = FrozenNetwork(NetworkSpec((5, 3)), 0)
    backend = h.make(net)
    rng = np.random.default_rng(8)
    shapes = [(9, 6), (1, 4)] + ([(1024, 300)] if h.on_device else [])
    for B, units in shapes:
        distinct = rng.standard_normal((B, units))
        tied = rng.integers(-1, 2, (B, units)).astype(np.float64)
        for k in sorted({1, 2, units // 10 or 1, units - 1, units}):
            assert_untied(distinct, k)
            got = backend.winners_take_all(backend.to_device(distinct), k)
            assert backend.is_device_array(got) == h.on_device
            got = backend.to_host(got)
            assert got.dtype == np.float64
            np.testing.assert_array_equal(got, hebbian.winners_take_all(distinct, k))
            # Tied boundaries: the reference's choice among the tied units is its own;
            # any backend's winners are k units at or above every loser.
            wins = backend.to_host(backend.winners_take_all(backend.to_device(tied), k))
            np.testing.assert_array_equal(wins.sum(axis=1), k)
            losers = np.where(wins == 0, tied, -np.inf).max(axis=1)
            assert np.all(np.where(wins == 1, tied, np.inf).min(axis=1) >= losers)


def case_hebbian_competitive(h: Harness) -> None:
    for backend, hp, ref, _ in hebbian_passes(h):
        for layer, (_, units) in enumerate(backend.network.shapes):
            # All units winning leaves the centred inputs' sums: zeros up to rounding.
            for winners in (None, 1, 2, max(1, units // 10), units - 1):
                if winners is not None:
                    assert_untied(ref.pres[layer], winners)
                assert_float64_close(
                    backend.hebbian_competitive(hp, layer, winners),
                    NumpyBackend(backend.network).hebbian_competitive(ref, layer, winners),
                )


def case_hebbian_label(h: Harness) -> None:
    for backend, hp, ref, rng in hebbian_passes(h):
        reference = NumpyBackend(backend.network)
        n_classes = backend.network.spec.layer_sizes[-1]
        for layer, (_, units) in enumerate(backend.network.shapes):
            projection = rng.choice([-1.0, 1.0], (n_classes, units))
            assert_float64_close(
                backend.hebbian_label(hp, layer, projection),
                reference.hebbian_label(ref, layer, projection),
            )
        last = len(backend.network.shapes) - 1
        assert_float64_close(backend.hebbian_label(hp, last), reference.hebbian_label(ref, last))
        with pytest.raises(PrunetrainError, match="its label target needs a projection"):
            backend.hebbian_label(hp, 0)


def case_hebbian_reward(h: Harness) -> None:
    for backend, hp, ref, rng in hebbian_passes(h):
        reference = NumpyBackend(backend.network)
        for layer in range(len(backend.network.shapes)):
            for sigma in (0.3, 0.01):  # a small perturbation: rewards from close losses
                noise = rng.standard_normal(ref.pres[layer].shape) * sigma
                assert_float64_close(
                    backend.hebbian_reward(hp, layer, noise, sigma),
                    reference.hebbian_reward(ref, layer, noise, sigma),
                )


#: One parity case per operation of :class:`~prunetrain.backends.base.Backend`.
CASES: dict[str, Callable[[Harness], None]] = {
    name.removeprefix("case_"): fn
    for name, fn in list(globals().items())
    if name.startswith("case_") and callable(fn)
}


def test_every_backend_operation_has_a_parity_case():
    missing = sorted(set(OPERATIONS) - set(CASES))
    assert not missing, (
        f"Backend operations without a CuPy-vs-NumPy parity case in {__name__}: "
        f"{', '.join(missing)}; add a case_<operation>(h) function"
    )
    assert sorted(set(CASES) - set(OPERATIONS)) == [], "a case names no Backend operation"


def test_backend_operations_are_read_off_the_interface():
    class Extra(Backend):
        def sample_masks(self):
            """A later operation."""

        def _private(self):
            """Not an operation."""

    assert "sample_masks" in backend_operations(Extra)
    assert "sample_masks" not in OPERATIONS and "_private" not in backend_operations(Extra)
    assert {"evaluate", "flip_gains", "flip_screen", "unavailable_reason"} <= set(OPERATIONS)


def require_gpu() -> None:
    """Skip the calling test, with :data:`NEEDS_GPU` and the reason, where no GPU works."""
    from prunetrain.backends.cupy.cupy_backend import gpu_unavailable_reason

    reason = gpu_unavailable_reason()
    if reason is not None:
        pytest.skip(f"{NEEDS_GPU}: {reason}")


@pytest.fixture(scope="module")
def gpu() -> Harness:
    """The harness of the CuPy backend on the GPU (the test skips where none works)."""
    require_gpu()
    from prunetrain.backends.cupy.cupy_backend import CupyBackend

    return Harness(CupyBackend, on_device=True)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_cupy_matches_numpy_on_the_gpu(gpu, operation):
    if operation not in CASES:
        pytest.fail(f"no parity case for Backend.{operation}", pytrace=False)
    CASES[operation](gpu)
