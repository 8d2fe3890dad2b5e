"""The CuPy backend: GPU detection, selection and errors here; agreement with NumPy on a GPU.

Detection is tested in every situation by replacing CuPy (and the kernel
module) with fakes: not installed, failing to import, no driver, no device, a
failing first operation, numba.cuda missing or simulated, a failing kernel,
and a working "GPU". Where CuPy is really installed without a driver (as on
the development machine) the real failure is probed too.

The GPU tests at the end need a usable GPU and are skipped, with the reason,
everywhere else. The kernels and the backend's own code run without a GPU in
``tests/backends/test_cuda_kernels.py``, under Numba's CUDA simulator.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import pickle
import sys
import types

import numpy as np
import pytest

import prunetrain.backends.cupy
from prunetrain.backends import (
    BACKENDS,
    NumpyBackend,
    backend_names,
    backend_notice,
    flips,
    make_backend,
    resolve_backend,
    screen,
)
from prunetrain.backends.cupy import cupy_backend
from prunetrain.backends.cupy.cupy_backend import CupyBackend, gpu_unavailable_reason
from prunetrain.errors import BackendUnavailableError, PrunetrainError
from prunetrain.masks import KeepRule, MaskPopulation, random_mask
from prunetrain.network import FrozenNetwork, NetworkSpec

REASON = gpu_unavailable_reason()
needs_gpu = pytest.mark.skipif(REASON is not None, reason=f"needs a usable GPU: {REASON}")
without_gpu = pytest.mark.skipif(REASON is None, reason="a GPU works here")
CPU_FALLBACK = "numba" if "numba" in BACKENDS else "numpy"


# --- detection with fakes ---------------------------------------------------------------


class CUDARuntimeError(RuntimeError):
    """Named like CuPy's error."""


def fake_cupy(device_count=1, count_error=None, op_error=None, step=1):
    """A stand-in for the ``cupy`` module (NumPy inside); ``calls`` counts device-count queries."""
    calls = {"device_count": 0}

    def get_device_count():
        calls["device_count"] += 1
        if count_error is not None:
            raise count_error
        return device_count

    def arange(n, dtype=None):
        if op_error is not None:
            raise op_error
        return np.arange(0, n * step, step, dtype=dtype)

    module = types.ModuleType("cupy")
    module.float32 = np.float32
    module.arange = arange
    module.exp = np.exp
    module.asarray = lambda a, dtype=None: np.array(a, dtype=dtype)
    module.ones = lambda n, dtype=None: np.ones(n, dtype=dtype)
    module.asnumpy = np.asarray
    module.cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=get_device_count)
    )
    return module, calls


def fake_kernels(simulator=False, error=None):
    module = types.ModuleType("prunetrain.backends.cupy.cuda_kernels")
    module.SIMULATOR = simulator

    def bias_relu(z, bias):
        if error is not None:
            raise error
        z[...] = np.maximum(z + bias, 0)

    module.bias_relu = bias_relu
    return module


@pytest.fixture
def probe(monkeypatch):
    """Probe again with ``cupy`` (None: not installed) and the kernel module replaced."""
    real_find_spec = importlib.util.find_spec

    def run(cupy=None, kernels=None, installed=None):
        installed = cupy is not None if installed is None else installed

        def find_spec(name, *args, **kwargs):
            if name == "cupy":
                return importlib.machinery.ModuleSpec("cupy", None) if installed else None
            return real_find_spec(name, *args, **kwargs)

        monkeypatch.setattr(importlib.util, "find_spec", find_spec)
        # A module set to None in sys.modules raises ImportError when imported.
        monkeypatch.setitem(sys.modules, "cupy", cupy)
        monkeypatch.setitem(sys.modules, "prunetrain.backends.cupy.cuda_kernels", kernels)
        monkeypatch.delattr(prunetrain.backends.cupy, "cuda_kernels", raising=False)
        gpu_unavailable_reason.cache_clear()
        return gpu_unavailable_reason()

    gpu_unavailable_reason.cache_clear()
    yield run
    gpu_unavailable_reason.cache_clear()


def assert_one_line(reason):
    assert isinstance(reason, str) and reason and "\n" not in reason and len(reason) < 300


def test_not_installed_is_cheap_and_says_how_to_install(probe):
    reason = probe(None)  # `import cupy` would raise: the probe must not try it
    assert_one_line(reason)
    assert "CuPy is not installed" in reason and "prunetrain[gpu]" in reason


def test_import_failure(probe):
    reason = probe(None, installed=True)  # found, but `import cupy` raises
    assert_one_line(reason)
    assert reason.startswith("CuPy cannot be imported (") and "Error: " in reason


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (
            {
                "count_error": CUDARuntimeError(
                    "cudaErrorInsufficientDriver: CUDA driver version\n is insufficient"
                )
            },
            "CuPy finds no usable CUDA driver or GPU (CUDARuntimeError: cudaErrorInsufficientDriver: CUDA driver version is insufficient)",
        ),
        ({"device_count": 0}, "CuPy finds no CUDA GPU"),
        (
            {"op_error": RuntimeError("nvrtc missing")},
            "CuPy cannot run on the GPU (RuntimeError: nvrtc missing)",
        ),
        ({"step": 2}, "CuPy computed a wrong result on the GPU (60.0 instead of 18)"),
    ],
)
def test_cupy_failures_give_one_line(probe, kwargs, expected):
    reason = probe(fake_cupy(**kwargs)[0], fake_kernels())
    assert_one_line(reason)
    assert reason.startswith(expected)


def test_long_errors_are_shortened(probe):
    reason = probe(fake_cupy(count_error=RuntimeError("x" * 1000))[0])
    assert_one_line(reason)
    assert reason.endswith("...)")


@pytest.mark.parametrize(
    "kernels, expected",
    [
        (None, "numba.cuda cannot be imported ("),
        (fake_kernels(simulator=True), "NUMBA_ENABLE_CUDASIM is set"),
        (
            fake_kernels(error=RuntimeError("no CUDA driver")),
            "numba.cuda cannot run a kernel on CuPy arrays (RuntimeError: no CUDA driver)",
        ),
    ],
)
def test_numba_cuda_failures_give_one_line(probe, kernels, expected):
    reason = probe(fake_cupy()[0], kernels)
    assert_one_line(reason)
    assert reason.startswith(expected)
    if kernels is None:
        assert "prunetrain[gpu]" in reason


def test_detection_runs_once_per_process(probe):
    cupy, calls = fake_cupy(count_error=CUDARuntimeError("no driver"))
    first = probe(cupy)
    for _ in range(3):
        assert gpu_unavailable_reason() == first
        assert CupyBackend.unavailable_reason() == first
    resolve_backend("auto")
    backend_notice("auto")
    assert calls["device_count"] == 1


def test_a_working_gpu_is_detected(probe):
    assert probe(fake_cupy()[0], fake_kernels()) is None


def test_real_cupy_without_a_driver_is_refused(probe, monkeypatch):
    """Where CuPy is really installed: the real probe (no fakes)."""
    monkeypatch.undo()  # the real modules
    gpu_unavailable_reason.cache_clear()
    if importlib.util.find_spec("cupy") is None:
        pytest.skip("CuPy is not installed here")
    reason = gpu_unavailable_reason()
    if reason is None:
        pytest.skip("a GPU works here")
    assert_one_line(reason)
    assert "CuPy" in reason or "numba.cuda" in reason


# --- selection, fallback and errors -----------------------------------------------------


def test_cupy_is_always_a_backend_name():
    assert "cupy" in backend_names()
    assert BACKENDS["cupy"] is CupyBackend


def test_auto_falls_back_with_a_notice(monkeypatch):
    monkeypatch.setattr(
        cupy_backend, "gpu_unavailable_reason", lambda: "CuPy is not installed (hint)"
    )
    cls = resolve_backend("auto")
    assert cls is BACKENDS[CPU_FALLBACK]
    notice = backend_notice("auto")
    assert_one_line(notice)
    assert notice == (
        f"backend auto: GPU backend 'cupy' not used (CuPy is not installed (hint)); "
        f"using {CPU_FALLBACK!r}"
    )
    for name in backend_names()[1:]:
        assert backend_notice(name) is None  # only "auto" falls back


def test_auto_picks_cupy_when_the_gpu_works(monkeypatch):
    monkeypatch.setattr(cupy_backend, "gpu_unavailable_reason", lambda: None)
    assert resolve_backend("auto") is CupyBackend
    assert resolve_backend("cupy") is CupyBackend
    assert backend_notice("auto") is None


def test_explicit_cupy_fails_with_the_reason(monkeypatch, small_net):
    monkeypatch.setattr(cupy_backend, "gpu_unavailable_reason", lambda: "CuPy finds no CUDA GPU")
    message = "backend 'cupy' cannot run here: CuPy finds no CUDA GPU"
    with pytest.raises(BackendUnavailableError, match=message):
        resolve_backend("cupy")
    with pytest.raises(BackendUnavailableError, match=message):
        make_backend("cupy", small_net)
    with pytest.raises(BackendUnavailableError, match=message):
        CupyBackend(small_net)
    assert issubclass(BackendUnavailableError, PrunetrainError)


def test_simulated_arrays_need_the_simulator(small_net, monkeypatch):
    monkeypatch.setitem(sys.modules, "prunetrain.backends.cupy.cuda_kernels", fake_kernels())
    monkeypatch.delattr(prunetrain.backends.cupy, "cuda_kernels", raising=False)
    with pytest.raises(PrunetrainError, match="NUMBA_ENABLE_CUDASIM=1"):
        CupyBackend(small_net, array_module=np)
    with pytest.raises(PrunetrainError, match="buffer_bytes"):
        CupyBackend(small_net, buffer_bytes=0, array_module=np)


@without_gpu
def test_cli_search_with_cupy_is_one_line_and_exit_2(tmp_path, capsys):
    from prunetrain.cli import main

    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "--backend", "cupy", "--budget", "5evals", "--out", str(out), "--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith("prunetrain: error: backend 'cupy' cannot run here: ")
    assert not out.exists()


def test_importing_the_backends_imports_no_gpu_library():
    import subprocess

    code = (
        "import importlib.util, sys\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n == 'cupy' else real(n, *a)\n"
        "from prunetrain.backends import resolve_backend, backend_notice\n"
        "assert 'cupy' not in sys.modules and 'numba.cuda' not in sys.modules\n"
        "print(resolve_backend('auto').name)\n"
        "print(backend_notice('auto'))\n"
        "assert 'cupy' not in sys.modules and 'numba.cuda' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    name, notice = out.stdout.strip().splitlines()
    assert name == CPU_FALLBACK
    assert notice.startswith("backend auto: GPU backend 'cupy' not used (CuPy is not installed")


# --- bench: a GPU backend is compared with the GPU's own peak ---------------------------


class FakeGpuBackend(NumpyBackend):
    name = "cupy"


def test_bench_measures_a_gpu_backend_against_the_gpu_peak(monkeypatch):
    from prunetrain import bench
    from prunetrain.bench import available_backends, format_bench, run_bench

    monkeypatch.setitem(BACKENDS, "cupy", FakeGpuBackend)
    sizes = []

    def fake_peak(size, seed=0):
        sizes.append(size)
        return lambda: 1000.0

    monkeypatch.setattr(bench, "gpu_sgemm_peak", fake_peak)
    monkeypatch.setattr(bench, "gpu_info", lambda: {"name": "Fake GPU", "memory_gib": 1.0})
    assert "cupy" in available_backends()
    result = run_bench(
        "8-4", population=2, batch=4, backends=["numpy", "cupy"], repeats=2, gemm_size=64,
        gpu_gemm_size=128,
    )  # fmt: skip
    assert sizes == [128]
    assert result["gpu_gemm_peak_gflops"] == 1000.0 and result["gpu_gemm_size"] == 128
    assert result["gpu"]["name"] == "Fake GPU"
    gpu, cpu = result["backends"]["cupy"], result["backends"]["numpy"]
    assert gpu["peak"] == "gpu" and cpu["peak"] == "cpu"
    assert gpu["ratio_to_peak"] == pytest.approx(gpu["gflops"] / 1000.0)
    assert cpu["ratio_to_peak"] == pytest.approx(cpu["gflops"] / result["gemm_peak_gflops"])
    text = format_bench(result)
    assert "Fake GPU" in text and "GPU fp32 GEMM peak (128² cuBLAS sgemm): 1000.0 GFLOP/s" in text
    assert "of the GPU peak" in text


def test_bench_without_a_gpu_backend_has_no_gpu_numbers():
    from prunetrain.bench import run_bench

    result = run_bench("8-4", population=2, batch=4, backends=["numpy"], repeats=1, gemm_size=64)
    assert "gpu_gemm_peak_gflops" not in result and "gpu" not in result


# --- on a GPU: the backend against the NumPy reference ----------------------------------


def random_case(sizes, P, B, bias, seed):
    rng = np.random.default_rng(seed)
    net = FrozenNetwork(NetworkSpec(tuple(sizes), bias=bias), seed)
    masks = [random_mask(net.shapes, KeepRule(0.5), rng) for _ in range(P)]
    masks[0][-1][...] = False  # all-zero logits: exact ties
    X = rng.standard_normal((B, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], B)
    return net, masks, MaskPopulation.from_masks(masks, net.shapes), X, y, rng


@needs_gpu
@pytest.mark.parametrize(
    "sizes, P, B, bias",
    [
        ((64, 24, 16, 10), 9, 100, False),
        ((784, 300, 100, 10), 64, 1024, False),
        ((5, 3), 3, 7, True),
    ],
)
def test_gpu_evaluate_and_logits_match_numpy(sizes, P, B, bias):
    import cupy

    net, masks, population, X, y, _ = random_case(sizes, P, B, bias, 0)
    reference = NumpyBackend(net)
    ref_loss, ref_acc = reference.evaluate(population, X, y)
    for buffer_bytes in (cupy_backend.BUFFER_BYTES, 1):
        backend = CupyBackend(net, buffer_bytes=buffer_bytes)
        Xd, yd = backend.asarray(X), backend.aslabels(y)
        assert isinstance(Xd, cupy.ndarray) and isinstance(yd, cupy.ndarray)
        loss, acc = backend.evaluate(population, Xd, yd)
        assert isinstance(loss, np.ndarray) and loss.dtype == np.float64
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-5, atol=1e-7)
        assert np.all(np.abs(acc - ref_acc) <= 1 / B + 1e-12)
        index = np.arange(0, B, 2)
        sub = backend.evaluate(population, backend.take(Xd, index), backend.take(yd, index))
        np.testing.assert_allclose(
            sub[0], reference.evaluate(population, X[index], y[index])[0], rtol=1e-5
        )
    np.testing.assert_allclose(
        backend.logits(masks[1], X), reference.logits(masks[1], X), rtol=1e-5, atol=1e-5
    )


@needs_gpu
def test_gpu_flip_gains_and_updates_match_the_reference():
    net, masks, _, X, y, rng = random_case((64, 24, 16, 10), 1, 50, True, 1)
    backend = CupyBackend(net)
    state = backend.flip_state(masks[0], backend.asarray(X), backend.aslabels(y))
    ref = flips.build_state(net, masks[0], X, y)
    assert state.loss == pytest.approx(ref.loss, rel=1e-12)
    assert isinstance(state.mask[0], np.ndarray) and state.batch_size == 50
    for step in range(6):
        layer = step % net.spec.n_layers
        a, b = net.shapes[layer]
        rows, cols = rng.integers(0, a, 200), rng.integers(0, b, 200)
        rows2 = np.where(rng.random(200) < 0.5, rng.integers(0, a, 200), -1)
        rows2[rows2 == rows] = -1
        np.testing.assert_allclose(
            backend.flip_gains(state, layer, rows, cols, rows2),
            flips.flip_gains(ref, layer, rows, cols, rows2),
            rtol=1e-5,
            atol=1e-13,
        )
        r, c = np.divmod(rng.choice(a * b, size=5, replace=False), b)
        backend.apply_flips(state, layer, r, c)
        flips.apply_flips(ref, layer, r, c)
        assert state.loss == pytest.approx(ref.loss, rel=1e-10)
        for got, want in zip(state.mask, ref.mask):
            np.testing.assert_array_equal(got, want)


@needs_gpu
@pytest.mark.parametrize(
    "sizes, B, bias", [((784, 300, 100, 10), 256, False), ((64, 24, 16, 10), 50, True)]
)
def test_gpu_flip_screen_matches_the_reference(sizes, B, bias):
    net, masks, _, X, y, _ = random_case(sizes, 2, B, bias, 3)
    backend = CupyBackend(net)
    state = backend.flip_state(masks[1], backend.asarray(X), backend.aslabels(y))
    ref = flips.build_state(net, masks[1], X, y)
    want = screen.screen_gains(ref, screen.probe_responses(ref))
    got = backend.flip_screen(state)
    assert [g.shape for g in got] == [w.shape for w in want]
    for g, w in zip(got, want):
        assert isinstance(g, np.ndarray) and g.dtype == np.float32
        scale = np.abs(w).max()
        assert scale > 0
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-5 * scale)
    for g, again in zip(got, backend.flip_screen(state)):  # deterministic: no atomics
        np.testing.assert_array_equal(g, again)


@needs_gpu
def test_gpu_pickling_and_search():
    from prunetrain.data import load_dataset
    from prunetrain.problem import Problem
    from prunetrain.search import make_searcher, run

    net, *_ = random_case((64, 24, 10), 1, 1, False, 2)
    backend = CupyBackend(net)
    rule = KeepRule(0.5, "layer")
    clone = pickle.loads(pickle.dumps(backend))
    assert isinstance(clone, CupyBackend) and clone.network is not None
    problem = Problem(net, load_dataset("digits"), rule, backend="cupy")
    assert problem.backend.name == "cupy"
    result = run(problem, make_searcher("accumulate"), "50evals", seed=0)
    assert np.isfinite(result.train_loss) and rule.satisfied_by(result.mask)


@needs_gpu
def test_gpu_bench_includes_cupy_with_the_gpu_peak():
    from prunetrain.bench import run_bench

    result = run_bench(
        "64-32-10", population=4, batch=64, repeats=1, gemm_size=64, gpu_gemm_size=512
    )
    assert "cupy" in result["backends"] and result["gpu_gemm_peak_gflops"] > 0
    assert result["backends"]["cupy"]["peak"] == "gpu"
