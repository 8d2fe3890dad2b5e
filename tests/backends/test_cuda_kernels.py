"""numba.cuda kernels and the CuPy backend's code, under Numba's CUDA simulator and on a GPU.

``NUMBA_ENABLE_CUDASIM=1`` must be set before Numba is imported, and the rest
of the test session uses Numba's CPU kernels, so the checks run in ONE child
process: this file run as a script under the simulator, with NumPy arrays in
place of CuPy arrays. Each check compares a kernel (or the backend built on
them, ``CupyBackend(array_module=numpy)``) with the NumPy reference on small
random inputs: masks and packed bits exactly, losses and flip gains to 1e-5
relative. Each check is reported as its own test here.

No GPU is needed. What the simulator cannot show: CuPy itself (cuBLAS,
device memory, ``__cuda_array_interface__``) and speed; see
``tests/backends/test_backend_cupy.py`` for what runs only on a GPU.

The child also runs the parity case of every backend operation
(``tests/backends/test_backend_parity.py``), so that those cases are known to work
before a GPU runs them. Where a GPU works (``experiments/gpu_check.sh`` on a
lent machine), :func:`test_on_the_gpu` runs every other check again in this
process on the real device: the kernels get NumPy arrays, which numba.cuda
copies to the device and back, and the backend CuPy arrays.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback

import numpy as np
import pytest
import test_backend_parity as parity

from prunetrain.backends import flips, screen
from prunetrain.masks import KeepRule, MaskPopulation, random_mask
from prunetrain.metrics import accuracy, cross_entropy
from prunetrain.network import FrozenNetwork, NetworkSpec

CHECKS = {}
RESULT_PREFIX = "CUDASIM-RESULTS "


def check(fn):
    """Register a check that runs in the simulator child."""
    CHECKS[fn.__name__] = fn
    return fn


def kernels():
    from prunetrain.backends.cupy import cuda_kernels
    from prunetrain.backends.cupy.cupy_backend import gpu_unavailable_reason

    assert cuda_kernels.SIMULATOR or gpu_unavailable_reason() is None, (
        "the checks run under NUMBA_ENABLE_CUDASIM=1 or on a usable GPU"
    )
    return cuda_kernels


def gpu_backend(net, **options):
    """The CuPy backend: on NumPy arrays under the simulator, on CuPy arrays on a GPU."""
    from prunetrain.backends.cupy.cupy_backend import CupyBackend

    return CupyBackend(net, array_module=np if kernels().SIMULATOR else None, **options)


def flip_case(sizes, batch, seed, bias=False, scale=1.0, init="signed_constant"):
    """A network, a free random mask and a batch with zeros; large ``scale`` saturates the softmax."""
    rng = np.random.default_rng(seed)
    net = FrozenNetwork(NetworkSpec(tuple(sizes), bias=bias, init=init), seed)
    mask = random_mask(net.shapes, KeepRule(0.5, "free"), rng)
    X = rng.random((batch, sizes[0])) * scale
    X[rng.random(X.shape) < 0.3] = 0.0
    y = rng.integers(0, sizes[-1], batch)
    return net, mask, X, y, rng


def random_moves(rng, shape, n_moves):
    a, b = shape
    rows, cols = rng.integers(0, a, n_moves), rng.integers(0, b, n_moves)
    rows2 = np.where(rng.random(n_moves) < 0.5, rng.integers(0, a, n_moves), -1)
    rows2[rows2 == rows] = -1
    return rows, cols, rows2


# --- the checks (run in the child) ----------------------------------------------------


@check
def expand_wide_and_stack_equal_masked_weights():
    K = kernels()
    rng = np.random.default_rng(0)
    for fan_in, fan_out, P, start, count in [(5, 7, 4, 1, 3), (3, 1, 2, 0, 2), (9, 4, 3, 2, 1)]:
        w = rng.standard_normal((fan_in, fan_out)).astype(np.float32)
        bits = rng.random((P, fan_in, fan_out)) < 0.5
        pop = MaskPopulation.from_layers([bits])
        want = pop.layer(0, slice(start, start + count)) * w  # (count, fan_in, fan_out)
        out = np.full(count * fan_in * fan_out, np.nan, dtype=np.float32)
        K.expand_stack(pop.packed[0], start, count, w.ravel(), out)
        np.testing.assert_array_equal(out.reshape(count, fan_in, fan_out), want)
        out[:] = np.nan
        K.expand_wide(pop.packed[0], start, count, fan_out, w.ravel(), out)
        wide = out.reshape(fan_in, count, fan_out).transpose(1, 0, 2)
        np.testing.assert_array_equal(wide, want)


@check
def bias_relu_equals_numpy():
    K = kernels()
    rng = np.random.default_rng(1)
    z = rng.standard_normal((3, 5, 4)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    want = np.maximum(z + bias, np.float32(0.0))
    flat = z.ravel().copy()
    K.bias_relu(flat, bias)
    np.testing.assert_array_equal(flat.reshape(z.shape), want)
    assert flat.dtype == np.float32


@check
def cross_entropy_rows_equal_the_reference():
    K = kernels()
    rng = np.random.default_rng(2)
    P, B, C = 3, 7, 5
    logits = (rng.standard_normal((P, B, C)) * 4).astype(np.float32)
    logits[0] = 0.0  # all ties: the first class is the arg-max
    logits[1, 0] = [40.0, -40.0, 0.0, 3.0, 3.0]  # a saturated row
    bias = rng.standard_normal(C).astype(np.float32)
    y = rng.integers(0, C, B)
    losses, hits = np.empty((P, B)), np.empty((P, B), dtype=np.int32)
    K.cross_entropy_rows(logits, bias, y, losses, hits)
    loss, acc = np.empty(P), np.empty(P)
    K.sum_rows(losses, B, loss)
    K.sum_rows(hits, B, acc)
    z = logits + bias  # float32, as the reference backends add the bias
    np.testing.assert_allclose(loss, cross_entropy(z, y), rtol=1e-12)
    np.testing.assert_array_equal(acc, accuracy(z, y))
    bad = np.array([0, C, -1, 1, 2, 3, 4])  # out-of-range labels give NaN, never a bad read
    K.cross_entropy_rows(logits, bias, bad, losses, hits)
    assert np.isnan(losses[:, 1:3]).all() and np.isfinite(losses[:, [0, 3]]).all()


def kernel_gains(K, state, layer, rows, cols, rows2, lanes, workers):
    """Flip gains by the kernels, arranged as the backend arranges them."""
    moves = flips.pack_moves(state, layer, rows, cols, rows2)
    partial = np.full((len(rows), lanes), np.nan)
    out = np.full(len(rows), np.nan)
    common = (state.probs, state.log_probs, state.y, *moves)
    if layer == state.n_layers - 1:
        K.output_gains(state.acts_t[layer], *common, partial, out)
        return out
    downstream, widest = flips.flat_downstream(state, layer)
    pre_col = np.ascontiguousarray(state.pre[layer].T)
    scratch = np.full((workers, 2 * widest), np.nan)
    K.hidden_gains(
        state.acts_t[layer], pre_col, *common, *downstream, scratch, partial, out,
    )  # fmt: skip
    return out


@check
def output_and_hidden_flip_gains_equal_the_reference():
    K = kernels()
    cases = [
        ((6, 5, 4, 3), 9, 0, False, 1.0, "signed_constant"),
        ((4, 7, 3), 5, 1, True, 1.0, "kaiming_normal"),
        ((5, 3, 3, 4, 2), 7, 2, True, 1.0, "binary"),
        ((6, 4, 3), 6, 3, False, 300.0, "signed_constant"),  # saturated: the fallback path
        ((3, 2), 4, 4, False, 300.0, "binary"),
    ]
    for sizes, batch, seed, bias, scale, init in cases:
        net, mask, X, y, rng = flip_case(sizes, batch, seed, bias, scale, init)
        state = flips.build_state(net, mask, X, y)
        for layer, shape in enumerate(net.shapes):
            rows, cols, rows2 = random_moves(rng, shape, 6)
            for pair in (rows2, None):
                want = flips.flip_gains(state, layer, rows, cols, pair)
                # One lane and one worker; lanes and workers that do not divide the work.
                for lanes, workers in [(1, 1), (3, 5), (batch + 2, 40)]:
                    got = kernel_gains(K, state, layer, rows, cols, pair, lanes, workers)
                    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-13)


@check
def plan_gains_stays_in_bounds():
    K = kernels()
    for n_moves, n_samples, widest in [(1, 1, 1), (5, 100, 7), (10_000, 3, 2)]:
        lanes, workers = K.plan_gains(n_moves, n_samples, widest)
        assert 1 <= lanes <= n_samples
        assert 1 <= workers <= n_moves * lanes
        assert workers * 16 * widest <= K.SCRATCH_BYTES


@check
def add_columns_equals_add_at():
    K = kernels()
    rng = np.random.default_rng(4)
    acts_t = rng.standard_normal((6, 9))
    pre = rng.standard_normal((9, 5))
    rows = np.array([0, 3, 3, 5, 1])
    cols = np.array([2, 2, 4, 2, 0])  # column 2 three times: order matters in float
    coef = rng.standard_normal(5)
    want = pre.copy()
    np.add.at(want.T, cols, coef[:, None] * acts_t[rows])
    K.add_columns(acts_t, rows, cols, coef, pre)
    np.testing.assert_array_equal(pre, want)


@check
def backend_evaluate_and_logits_equal_the_numpy_backend():
    from prunetrain.backends import NumpyBackend

    for sizes, P, B, bias, seed in [((6, 5, 4, 3), 3, 7, False, 0), ((5, 4), 2, 5, True, 1)]:
        rng = np.random.default_rng(seed)
        net = FrozenNetwork(NetworkSpec(sizes, bias=bias), seed)
        masks = [random_mask(net.shapes, KeepRule(0.5), rng) for _ in range(P)]
        masks[0][-1][...] = False  # all-zero logits: exact ties
        population = MaskPopulation.from_masks(masks, net.shapes)
        X = rng.standard_normal((B, sizes[0])).astype(np.float32)
        y = rng.integers(0, sizes[-1], B)
        ref_loss, ref_acc = NumpyBackend(net).evaluate(population, X, y)
        for buffer_bytes in (1 << 20, 1):  # one chunk; one mask per chunk
            backend = gpu_backend(net, buffer_bytes=buffer_bytes)
            loss, acc = backend.evaluate(population, backend.asarray(X), backend.aslabels(y))
            assert loss.dtype == acc.dtype == np.float64
            np.testing.assert_allclose(loss, ref_loss, rtol=1e-5, atol=1e-7)
            assert np.all(np.abs(acc - ref_acc) <= 1 / B + 1e-12)
        np.testing.assert_allclose(
            # float32 sums in other orders: the error scales with the O(1) terms, not the logit.
            backend.logits(masks[1], X),
            NumpyBackend(net).logits(masks[1], X),
            rtol=1e-5,
            atol=1e-5,
        )


@check
def backend_weighted_losses_and_gains_equal_duplicated_rows():
    from prunetrain.backends import NumpyBackend

    for init in ("signed_constant", "kaiming_normal"):
        net, mask, X, y, rng = flip_case((6, 5, 4, 3), 8, 7, init=init)
        X = X.astype(np.float32)
        counts = rng.integers(0, 4, len(y))
        counts[0] = 2
        w = counts * len(y) / counts.sum()  # mean 1, as the Problem scales them
        rep = np.repeat(np.arange(len(y)), counts)
        population = MaskPopulation.from_masks(
            [mask, random_mask(net.shapes, KeepRule(0.5), rng)], net.shapes
        )
        backend = gpu_backend(net)
        loss, acc = backend.evaluate(
            population, backend.asarray(X), backend.aslabels(y), backend.asweights(w)
        )
        ref_loss, ref_acc = NumpyBackend(net).evaluate(population, X[rep], y[rep])
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
        np.testing.assert_allclose(acc, ref_acc, rtol=1e-12)
        state = backend.flip_state(mask, backend.asarray(X), backend.aslabels(y), w)
        ref = flips.build_state(net, mask, X[rep], y[rep])
        assert abs(state.loss - ref.loss) <= 1e-9 * abs(ref.loss)
        for layer in range(net.spec.n_layers):
            rows, cols, rows2 = random_moves(rng, net.shapes[layer], 6)
            np.testing.assert_allclose(
                backend.flip_gains(state, layer, rows, cols, rows2),
                flips.flip_gains(ref, layer, rows, cols, rows2),
                rtol=1e-5,
                atol=1e-13,
            )
        # The screen scores by the weighted mean over samples, as the loss does.
        for got, want in zip(backend.flip_screen(state), NumpyBackend(net).flip_screen(ref)):
            scale = max(np.abs(want).max(), 1e-3)
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale)


@check
def backend_flip_state_gains_and_updates_equal_the_reference():
    net, mask, X, y, rng = flip_case((6, 5, 4, 3), 8, 5, bias=True)
    backend = gpu_backend(net)
    state = backend.flip_state(mask, backend.asarray(X), backend.aslabels(y))
    ref = flips.build_state(net, mask, X.astype(np.float32), y)
    assert state.loss == ref.loss or abs(state.loss - ref.loss) <= 1e-12 * abs(ref.loss)
    for step in range(4):
        layer = step % net.spec.n_layers
        rows, cols, rows2 = random_moves(rng, net.shapes[layer], 5)
        np.testing.assert_allclose(
            backend.flip_gains(state, layer, rows, cols, rows2),
            flips.flip_gains(ref, layer, rows, cols, rows2),
            rtol=1e-5,
            atol=1e-13,
        )
        flat = rng.choice(int(np.prod(net.shapes[layer])), size=3, replace=False)
        r, c = np.divmod(flat, net.shapes[layer][1])
        backend.apply_flips(state, layer, r, c)
        flips.apply_flips(ref, layer, r, c)
        for got, want in zip(state.mask, ref.mask):
            np.testing.assert_array_equal(got, want)
        for name in ("masked", "acts_t", "pre"):
            for got, want in zip(getattr(state, name), getattr(ref, name)):
                np.testing.assert_allclose(backend.to_host(got), want, rtol=1e-9, atol=1e-12)
        probs = backend.to_host(state.probs)
        np.testing.assert_allclose(probs, ref.probs, rtol=1e-9, atol=1e-15)
        assert abs(state.loss - ref.loss) <= 1e-10 * abs(ref.loss)
    assert len(backend.flip_gains(state, 0, [], [])) == 0


SCREEN_CASES = [  # sizes, batch, seed, bias, input scale, init: depth 1 to 4
    ((4, 3), 5, 10, False, 1.0, "signed_constant"),
    ((5, 4, 3), 6, 11, True, 1.0, "kaiming_normal"),
    ((6, 5, 4, 3), 5, 12, False, 1.0, "signed_constant"),
    ((5, 3, 4, 3, 2), 4, 18, True, 1.0, "binary"),
    ((4, 5, 3, 3, 3), 4, 18, False, 1.0, "signed_constant"),
    ((6, 4, 3), 5, 14, False, 300.0, "signed_constant"),  # saturated softmax
]


def assert_close_to_largest(got, want, rtol):
    """``got`` equals ``want`` up to ``rtol`` of ``want``'s largest magnitude (which is not 0)."""
    scale = np.abs(want).max()
    assert scale > 0, "a reference of zeros shows nothing"
    np.testing.assert_allclose(got, want, rtol=0, atol=rtol * scale)


@check
def screen_responses_equal_the_reference():
    K = kernels()

    for sizes, batch, seed, bias, scale, init in SCREEN_CASES:
        net, mask, X, y, _ = flip_case(sizes, batch, seed, bias, scale, init)
        state = flips.build_state(net, mask, X, y)
        want = screen.probe_responses(state)
        for layer, eps in enumerate(screen.probe_sizes(state)):
            if layer == net.spec.n_layers - 1:
                got = np.full(want[layer].shape, np.nan)
                K.output_responses(state.probs, state.log_probs, state.y, eps, got)
                assert_close_to_largest(got, want[layer], 1e-9)
                continue
            downstream, widest = flips.flat_downstream(state, layer)
            # One worker; workers that do not divide the work; one per probe.
            for workers in (1, 3, state.pre[layer].size):
                got = np.full(want[layer].shape, np.nan)
                scratch = np.full((workers, 2 * widest), np.nan)
                K.hidden_responses(
                    state.pre[layer], eps, state.probs, state.log_probs, state.y, *downstream,
                    scratch, got,
                )  # fmt: skip
                assert_close_to_largest(got, want[layer], 1e-9)


@check
def backend_flip_screen_equals_the_reference():
    for k, (sizes, batch, seed, bias, scale, init) in enumerate(SCREEN_CASES):
        net, mask, X, y, _ = flip_case(sizes, batch, seed, bias, scale, init)
        backend = gpu_backend(net)
        state = backend.flip_state(mask, backend.asarray(X), backend.aslabels(y))
        ref = flips.build_state(net, mask, X.astype(np.float32), y)
        probe = None if k % 2 else 0.05  # the default, or a larger probe
        want = screen.screen_gains(ref, screen.probe_responses(ref, probe or screen.PROBE))
        losses = backend.to_host(state.sample_losses).copy()
        got = backend.flip_screen(state, probe)
        untouched = backend.to_host(state.sample_losses)
        np.testing.assert_array_equal(untouched, losses)  # the state is untouched
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert isinstance(g, np.ndarray) and g.dtype == np.float32 and g.shape == w.shape
            assert_close_to_largest(g, w, 1e-5)


@check
def probe_search_runs_on_the_backend_and_keeps_the_rule():
    from conftest import planted

    from prunetrain.problem import Problem
    from prunetrain.search import make_searcher, run

    net, data, _ = planted(seed=1, sizes=(6, 5, 4, 3), n=60)
    for kind in ("layer", "free"):
        rule = KeepRule(0.5, kind)
        backend = gpu_backend(net)
        problem = Problem(net, data, rule, backend=backend, batch_size=16, seed=0)
        searcher = make_searcher(
            "probe", confirm=True
        )  # exact checks too: flip_gains on the backend
        result = run(problem, searcher, "30evals", seed=0)
        assert searcher.steps >= 3 and np.isfinite(searcher.loss)
        assert sum(searcher.n_checked) > 0 and sum(searcher.n_flipped) > 0
        assert rule.satisfied_by(result.mask) and rule.satisfied_by(searcher.mask)


@check
def counter_uniforms_equal_the_reference():
    K = kernels()
    from prunetrain.backends import topk

    seeds = np.array([0, 1, 2**64 - 1], dtype=np.uint64)  # the largest seed wraps at once
    out = np.empty((3, 37), dtype=np.float32)
    K.counter_uniforms(seeds, out)
    np.testing.assert_array_equal(out, topk.counter_uniforms(seeds, 37))


# --- the parity case of every backend operation ---------------------------------------

PARITY = "parity_"


def parity_check(case):
    """``case`` of ``tests/backends/test_backend_parity.py`` as a check, on the simulated backend."""

    def run():
        case(parity.Harness(gpu_backend, on_device=not kernels().SIMULATOR))

    return run


for _operation, _case in parity.CASES.items():
    CHECKS[PARITY + _operation] = parity_check(_case)


# --- the parent side: one child process, one test per check -------------------------


def run_checks() -> dict:
    """Run every check here (under the simulator); a traceback for each that fails."""
    try:
        from numba import cuda  # noqa: F401
        from numba.core import config
    except Exception as exc:  # noqa: BLE001
        return {"__skip__": f"numba.cuda cannot be imported here ({type(exc).__name__}: {exc})"}
    if not config.ENABLE_CUDASIM:
        return {"__skip__": "NUMBA_ENABLE_CUDASIM=1 was not set before Numba was imported"}
    results = {}
    for name, fn in CHECKS.items():
        try:
            fn()
            results[name] = "ok"
        except Exception:  # noqa: BLE001 - reported to the parent as this check's failure
            results[name] = traceback.format_exc()
    return results


@pytest.fixture(scope="module")
def simulated() -> dict:
    # The child runs this file as a script: tests/ (conftest's helpers) goes on its path too.
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": path}
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        pytest.fail(
            f"the simulator child failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}",
            pytrace=False,
        )
    results = json.loads(lines[-1][len(RESULT_PREFIX) :])
    if "__skip__" in results:
        pytest.skip(results["__skip__"])
    return results


@pytest.mark.parametrize("name", list(CHECKS))
def test_under_cuda_simulator(simulated, name):
    result = simulated.get(name, "not run by the child")
    if result != "ok":
        pytest.fail(f"{name}, under the CUDA simulator:\n{result}", pytrace=False)


#: Checks run again on a GPU; the parity cases run there in ``tests/backends/test_backend_parity.py``.
DEVICE_CHECKS = [name for name in CHECKS if not name.startswith(PARITY)]


@pytest.mark.parametrize("name", DEVICE_CHECKS)
def test_on_the_gpu(name):
    parity.require_gpu()
    CHECKS[name]()


if __name__ == "__main__":
    print(RESULT_PREFIX + json.dumps(run_checks()), flush=True)
