"""The backend contract: every CPU backend agrees with the NumPy reference.

The suite iterates over ``BACKENDS`` when it is collected, so a CPU backend
registered later is covered without a line here; one that cannot run here
is skipped with its reason. Each is checked on random networks, masks and
batches against :class:`~prunetrain.backends.NumpyBackend` and
:mod:`prunetrain.backends.flips`: the loss and accuracy of a population
(with and without sample weights, on a batch and on rows taken from it),
the logits of one mask, the exact gains of random single and paired flips,
the caches after accepting flips, and the forward-probe screen. A backend
whose constructor takes ``buffer_bytes`` is checked again with a budget of
one byte (one mask and one row per work item).

The GPU backend (``cupy``) is left out: its code runs under Numba's CUDA
simulator in ``tests/backends/test_cuda_kernels.py`` (one child process, too slow to
repeat here) and against the reference on a GPU in ``tests/backends/test_backend_cupy.py``.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from conftest import assert_accuracy_agrees, near_ties
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from prunetrain.backends import BACKENDS, NumpyBackend, flips
from prunetrain.masks import KeepRule, MaskPopulation, random_mask
from prunetrain.network import FrozenNetwork, NetworkSpec

#: Backends checked elsewhere (see the module docstring).
GPU = {"cupy"}


def backend_variants(buffers: bool = True) -> list:
    """Every CPU backend (skipped where it cannot run), with ``buffers`` also at a 1-byte buffer."""
    variants = []
    for name in sorted(set(BACKENDS) - GPU):
        cls = BACKENDS[name]
        reason = cls.unavailable_reason()
        marks = []
        if reason is not None:
            marks = [pytest.mark.skip(reason=f"backend {name!r} cannot run here: {reason}")]
        variants.append(pytest.param(name, {}, marks=marks, id=name))
        if buffers and "buffer_bytes" in inspect.signature(cls.__init__).parameters:
            one = {"buffer_bytes": 1}
            variants.append(pytest.param(name, one, marks=marks, id=f"{name}-buffer_bytes=1"))
    return variants


VARIANTS = backend_variants()
#: The buffer budget changes how evaluate and logits split their work, nothing else.
BACKENDS_HERE = backend_variants(buffers=False)


def make(name, options, net):
    return BACKENDS[name](net, **options)


# --- evaluate and logits --------------------------------------------------------------------


def population_case(sizes, P, B, bias, kind, keep, zero_layer, weighted, seed):
    rng = np.random.default_rng(seed)
    net = FrozenNetwork(NetworkSpec(tuple(sizes), bias=bias), seed)
    masks = [random_mask(net.shapes, KeepRule(keep, kind), rng) for _ in range(P)]
    if zero_layer is not None:  # one mask drops a whole layer: all-zero logits, exact ties
        masks[0][zero_layer % net.spec.n_layers][...] = False
    X = rng.standard_normal((B, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], B)
    w = None
    if weighted:  # mean 1, some zero, as the Problem scales them
        counts = rng.integers(0, 4, B).astype(np.float64)
        counts[0] = 3
        w = counts * B / counts.sum()
    return net, masks, MaskPopulation.from_masks(masks, net.shapes), X, y, w


def assert_same_fitness(backend, reference, masks, population, X, y, w):
    """Losses to 1e-5 relative; accuracies equal but for near-ties (weighted by ``w``)."""
    Xd, yd = backend.asarray(X), backend.aslabels(y)
    wd = None if w is None else backend.asweights(w)
    loss, acc = backend.evaluate(population, Xd, yd, wd)
    ref_loss, ref_acc = reference.evaluate(population, X, y, w)
    assert isinstance(loss, np.ndarray) and isinstance(acc, np.ndarray)
    assert loss.dtype == acc.dtype == np.float64 and loss.shape == acc.shape == (len(masks),)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5, atol=1e-7)
    # Both compute float32 logits but may sum the GEMMs in other orders,
    # so a near-tie between two classes may break differently.
    for p, mask in enumerate(masks):
        ref_logits = reference.logits(mask, X)
        if w is None:
            assert_accuracy_agrees(acc[p], ref_acc[p], ref_logits, len(y))
        else:
            ties = sum(w[i] * near_ties(ref_logits[i : i + 1]) for i in range(len(y)))
            assert abs(acc[p] - ref_acc[p]) * len(y) <= ties + 1e-9


@pytest.mark.parametrize("name, options", VARIANTS)
@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 40), min_size=2, max_size=4),
    P=st.integers(1, 9),
    B=st.integers(1, 64),
    bias=st.booleans(),
    kind=st.sampled_from(["layer", "global", "free"]),
    keep=st.sampled_from([0.05, 0.5, 1.0]),
    zero_layer=st.none() | st.integers(0, 3),
    weighted=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_evaluate_and_logits_match_the_reference(
    name, options, sizes, P, B, bias, kind, keep, zero_layer, weighted, seed
):
    # A count-fixing rule refuses a keep that leaves a layer without a weight (check_keep).
    assume(kind == "free" or keep * min(a * b for a, b in zip(sizes, sizes[1:])) >= 0.5)
    net, masks, population, X, y, w = population_case(
        sizes, P, B, bias, kind, keep, zero_layer, weighted, seed
    )
    backend, reference = make(name, options, net), NumpyBackend(net)
    assert_same_fitness(backend, reference, masks, population, X, y, w)
    # Rows taken on the device (a minibatch) are those rows.
    index = np.arange(0, B, 2)
    loss, _ = backend.evaluate(
        population,
        backend.take(backend.asarray(X), index),
        backend.take(backend.aslabels(y), index),
    )
    np.testing.assert_allclose(
        loss, reference.evaluate(population, X[index], y[index])[0], rtol=1e-5, atol=1e-7
    )
    # float32 GEMMs of other shapes: the rounding error scales with the terms summed (O(1)),
    # not with the logit, so a logit near zero needs an absolute tolerance.
    mask = masks[-1]
    logits = backend.logits(mask, backend.asarray(X))
    assert isinstance(logits, np.ndarray) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, reference.logits(mask, X), rtol=1e-5, atol=1e-5)
    assert backend.logits(mask, backend.asarray(X[:0])).shape == (0, sizes[-1])


# --- exact flip gains and their caches --------------------------------------------------------

flip_case = st.fixed_dictionaries(
    {
        "sizes": st.lists(st.integers(1, 14), min_size=2, max_size=5),
        "batch": st.integers(1, 24),
        "seed": st.integers(0, 10_000),
        "bias": st.booleans(),
        "keep": st.floats(0.1, 1.0),
        "init": st.sampled_from(["signed_constant", "kaiming_normal", "binary"]),
        # Large inputs give saturated softmaxes: the precise log1p path must fall back.
        "scale": st.sampled_from([1.0, 1.0, 300.0]),
        "weighted": st.booleans(),
    }
)


def random_moves(rng, shape, k):
    """``k`` single flips and ``k`` moves that also flip a second row of the same column."""
    a, b = shape
    rows, cols = rng.integers(0, a, k), rng.integers(0, b, k)
    rows2 = np.where(rng.random(k) < 0.5, rng.integers(0, a, k), -1)
    rows2[rows2 == rows] = -1
    return rows, cols, rows2


def rounding_scale(net, mask, X, layer, rows, cols, rows2):
    """What a float64 loss change may round by: 1e-13 of the largest logit before or after.

    (The tolerance of ``tests/backends/test_flips.py``, where the gains meet full re-evaluation.)
    """
    largest = np.abs(net.forward(mask, X)).max(initial=1.0)
    scale = []
    for k in range(len(rows)):
        moved = [m.copy() for m in mask]
        moved[layer][rows[k], cols[k]] ^= True
        if rows2 is not None and rows2[k] >= 0:
            moved[layer][rows2[k], cols[k]] ^= True
        scale.append(1e-13 * max(largest, np.abs(net.forward(moved, X)).max(initial=1.0)))
    return np.array(scale)


def assert_gains_match(got, want, scale):
    assert isinstance(got, np.ndarray) and got.shape == want.shape
    assert np.all(np.abs(got - want) <= 1e-5 * np.abs(want) + scale), (got, want)


@pytest.mark.parametrize("name, options", BACKENDS_HERE)
@settings(max_examples=25, deadline=None)
@given(flip_case)
def test_flip_gains_and_accepted_flips_match_the_reference(name, options, c):
    rng = np.random.default_rng(c["seed"])
    sizes = c["sizes"]
    net = FrozenNetwork(NetworkSpec(tuple(sizes), bias=c["bias"], init=c["init"]), c["seed"])
    mask = random_mask(net.shapes, KeepRule(c["keep"], "free"), rng)
    X = (rng.random((c["batch"], sizes[0])) * c["scale"]).astype(np.float32)
    X[rng.random(X.shape) < 0.3] = 0.0  # zero inputs exercise the skipping paths
    y = rng.integers(0, sizes[-1], c["batch"])
    w = rng.integers(1, 4, c["batch"]) * 1.0 if c["weighted"] else None
    w = None if w is None else w * len(w) / w.sum()
    backend = make(name, options, net)
    state = backend.flip_state(
        mask, backend.asarray(X), backend.aslabels(y), None if w is None else backend.asweights(w)
    )
    ref = flips.build_state(net, mask, X, y, w)
    assert state.loss == pytest.approx(ref.loss, rel=1e-12)
    for _ in range(3):  # gains, then accept flips and check the updated caches, three times
        for layer, shape in enumerate(net.shapes):
            rows, cols, rows2 = random_moves(rng, shape, 8)
            current = [np.asarray(m, dtype=bool) for m in ref.mask]
            for second in (rows2, None):
                scale = rounding_scale(
                    net, current, X.astype(np.float64), layer, rows, cols, second
                )
                assert_gains_match(
                    backend.flip_gains(state, layer, rows, cols, second),
                    flips.flip_gains(ref, layer, rows, cols, second),
                    scale,
                )
        layer = int(rng.integers(0, len(net.shapes)))
        a, b = net.shapes[layer]
        flat = rng.choice(a * b, size=min(3, a * b), replace=False)
        r, col = np.divmod(flat, b)
        backend.apply_flips(state, layer, r, col)
        flips.apply_flips(ref, layer, r, col)
        assert state.loss == pytest.approx(ref.loss, rel=1e-10)
        for got, want in zip(state.mask, ref.mask):
            np.testing.assert_array_equal(np.asarray(got), want)


# --- the forward-probe screen ----------------------------------------------------------------


@pytest.mark.parametrize("name, options", BACKENDS_HERE)
@pytest.mark.parametrize(
    "sizes, batch, bias, seed",
    # The first is tests/backends/test_screen.py's case; then a deeper one and a single layer.
    [((12, 9, 7, 4), 30, True, 1), ((20, 16, 12, 8, 5), 40, False, 2), ((6, 3), 9, True, 3)],
)
@pytest.mark.parametrize("weighted", [False, True])
def test_flip_screen_matches_the_reference(name, options, sizes, batch, bias, seed, weighted):
    net = FrozenNetwork(NetworkSpec(sizes, bias=bias), seed)
    rng = np.random.default_rng(seed)
    mask = random_mask(net.shapes, KeepRule(0.5), rng)
    X, y = rng.random((batch, sizes[0])).astype(np.float32), rng.integers(0, sizes[-1], batch)
    w = rng.integers(0, 4, batch) + 0.5 if weighted else None
    backend = make(name, options, net)
    state = backend.flip_state(
        mask, backend.asarray(X), backend.aslabels(y), None if w is None else backend.asweights(w)
    )
    want = NumpyBackend(net).flip_screen(flips.build_state(net, mask, X, y, w))
    got = backend.flip_screen(state)
    assert len(got) == len(want)
    # float32 scores: close to each layer's largest magnitude.
    for g, v in zip(got, want):
        assert isinstance(g, np.ndarray) and g.shape == v.shape
        np.testing.assert_allclose(g, v, rtol=0, atol=1e-5 * max(np.abs(v).max(), 1e-3))
