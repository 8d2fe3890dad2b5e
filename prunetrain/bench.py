"""How fast each backend evaluates a population of masks, against this machine's GEMM peak.

A mask evaluation is one mask's forward pass and loss on a batch of B
samples; it costs ``2·B·Σ fan_in·fan_out`` FLOPs, the dense count. The
machine's fp32 peak is measured in the same run as a large NumPy sgemm, so
the ratio says how close a backend gets to what this machine can do, whatever
else is running on it.

Every repeat times each contender once, in turn, so that a slow spell of the
machine falls on all of them alike; the numbers reported are medians.

A GPU backend (``cupy``) is measured against the GPU's own fp32 peak, a large
cuBLAS sgemm timed in the same rounds; its evaluations return their fitness
values to the host, so the time includes the synchronisation.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

from prunetrain.backends import BACKENDS, gpu_info, gpu_sgemm_peak, resolve_backend
from prunetrain.errors import PrunetrainError
from prunetrain.masks import MaskPopulation
from prunetrain.network import FrozenNetwork, NetworkSpec, parse_arch
from prunetrain.provenance import describe_blas, machine, versions

GEMM_SIZE = 4096
# Backends that run on the GPU, measured against the GPU's own GEMM peak.
GPU_BACKENDS = ("cupy",)
GPU_GEMM_SIZE = 8192
# Pause before each timed call: longer than OpenBLAS workers spin after a call.
SETTLE_SECONDS = 0.2


def random_problem(
    arch: str, population: int, batch: int, seed: int = 0
) -> tuple[FrozenNetwork, MaskPopulation, np.ndarray, np.ndarray]:
    """A network, ``population`` random masks (each weight kept with probability 1/2) and a batch.

    Returns
    -------
    network, masks, X (batch, d) float32, y (batch,) int64
    """
    if population < 1 or batch < 1:
        raise PrunetrainError(
            f"population and batch must be positive, got population={population}, batch={batch}"
        )
    spec = NetworkSpec(parse_arch(arch))
    network = FrozenNetwork(spec, seed)
    rng = np.random.default_rng(seed)
    packed = [
        rng.integers(0, 256, size=(population, (a * b + 7) // 8), dtype=np.uint8)
        for a, b in spec.shapes
    ]
    X = rng.standard_normal((batch, spec.layer_sizes[0]), dtype=np.float32)
    y = rng.integers(0, spec.layer_sizes[-1], size=batch)
    return network, MaskPopulation(packed, spec.shapes), X, y


def sgemm_peak(size: int = GEMM_SIZE, seed: int = 0) -> Callable[[], float]:
    """A timer for one ``size × size`` float32 NumPy GEMM; it returns the GFLOP/s of one call."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    out = np.empty((size, size), dtype=np.float32)
    np.matmul(a, b, out=out)  # warm up: threads started, pages touched

    def run() -> float:
        t = time.perf_counter()
        np.matmul(a, b, out=out)
        return 2.0 * size**3 / (time.perf_counter() - t) / 1e9

    return run


def time_interleaved(
    contenders: dict[str, Callable[[], object]], repeats: int, settle: float = SETTLE_SECONDS
) -> dict[str, list[float]]:
    """Seconds of each call of each contender, ``repeats`` rounds, one call of each per round.

    Each call starts ``settle`` seconds after the previous one ended, so that
    it does not share the cores with threads another contender left spinning
    (OpenBLAS workers spin for about 0.13 s after a multi-threaded call).
    """
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            time.sleep(settle)
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return times


def machine_info() -> dict:
    """The CPU, its cores and features, the BLAS libraries (:func:`prunetrain.provenance.machine`), and versions."""
    info = machine()
    info["python"] = platform.python_version()
    info["numpy"] = np.__version__
    info["numba"] = versions().get("numba")  # None where no backend loaded Numba
    return info


def _load_average() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def available_backends() -> list[str]:
    """Registered backends that can run here."""
    return [name for name, cls in BACKENDS.items() if cls.unavailable_reason() is None]


def measure(
    contenders: dict[str, Callable[[], object]],
    evals_per_call: int,
    flops_per_eval: float,
    repeats: int,
    gemm_size: int = GEMM_SIZE,
    seed: int = 0,
    gpu_peak: Callable[[], float] | None = None,
    gpu_contenders: Sequence[str] = (),
) -> tuple[dict, dict]:
    """Time each contender's first call, then ``repeats`` interleaved rounds with the sgemm peak.

    Parameters
    ----------
    contenders : dict of name -> callable
        Each call evaluates ``evals_per_call`` masks of ``flops_per_eval`` FLOPs.
    repeats : int
        Rounds; each times the peak GEMM and every contender once.
    gpu_peak : callable, optional
        A timer returning the GFLOP/s of one GPU GEMM (see
        :func:`prunetrain.backends.gpu_sgemm_peak`), timed in
        every round too; ``gpu_contenders`` are compared with it.

    Returns
    -------
    numbers : dict
        JSON-ready: ``load_average`` (1-minute, before and after), ``gemm_size``,
        ``gemm_peak_gflops`` (median), ``gemm_peak_all``, and ``contenders``:
        per name ``first_call_seconds`` (in no other number), ``compile_seconds``
        (the first call less a steady one), ``seconds`` (median), ``seconds_all``,
        ``evals_per_second``, ``gflops``, ``ratio_to_peak`` and ``peak`` (``"cpu"``,
        or ``"gpu"`` for ``gpu_contenders``, whose ratio is to ``gpu_gemm_peak_gflops``,
        present with ``gpu_gemm_peak_all`` when ``gpu_peak`` is given).
    first_outputs : dict
        What each contender's first call returned.
    """
    if repeats < 1:
        raise PrunetrainError(f"repeats must be at least 1, got {repeats}")
    first_call, first_outputs = {}, {}
    for name, fn in contenders.items():
        t = time.perf_counter()
        first_outputs[name] = fn()
        first_call[name] = time.perf_counter() - t
    peak_run = sgemm_peak(gemm_size, seed)
    peaks: list[float] = []
    gpu_peaks: list[float] = []
    timed = {"__peak__": lambda: peaks.append(peak_run())}
    if gpu_peak is not None:
        timed["__gpu_peak__"] = lambda: gpu_peaks.append(gpu_peak())
    load_before = _load_average()
    times = time_interleaved({**timed, **contenders}, repeats)
    peak = statistics.median(peaks)
    gpu_median = statistics.median(gpu_peaks) if gpu_peaks else None
    rows = {}
    for name in contenders:
        seconds = statistics.median(times[name])
        gflops = evals_per_call * flops_per_eval / seconds / 1e9
        on_gpu = name in gpu_contenders and gpu_median is not None
        rows[name] = {
            "first_call_seconds": first_call[name],
            "compile_seconds": max(0.0, first_call[name] - seconds),
            "seconds": seconds,
            "seconds_all": times[name],
            "evals_per_second": evals_per_call / seconds,
            "gflops": gflops,
            "ratio_to_peak": gflops / (gpu_median if on_gpu else peak),
            "peak": "gpu" if on_gpu else "cpu",
        }
    numbers = {
        "load_average": [load_before, _load_average()],
        "gemm_size": gemm_size,
        "gemm_peak_gflops": peak,
        "gemm_peak_all": peaks,
        "contenders": rows,
    }
    if gpu_median is not None:
        numbers["gpu_gemm_peak_gflops"] = gpu_median
        numbers["gpu_gemm_peak_all"] = gpu_peaks
    return numbers, first_outputs


def run_bench(
    arch: str = "784-300-100-10",
    population: int = 64,
    batch: int = 1024,
    backends: Sequence[str] | None = None,
    repeats: int = 5,
    seed: int = 0,
    gemm_size: int = GEMM_SIZE,
    gpu_gemm_size: int = GPU_GEMM_SIZE,
) -> dict:
    """Measure population evaluation on each backend and the machine's fp32 GEMM peak.

    Parameters
    ----------
    arch : str
        Layer sizes, e.g. ``"784-300-100-10"``.
    population, batch : int
        Masks evaluated per call, samples per batch.
    backends : list of str, optional
        Backend names (default: every registered backend that can run here).
        An unknown or unusable name raises :class:`PrunetrainError`.
    repeats : int
        Timed rounds; each round times the GEMM peak and every backend once.
    seed : int
        Seed of the network, the masks and the batch.
    gemm_size : int
        Size of the square sgemm that measures the peak.
    gpu_gemm_size : int
        Size of the square cuBLAS sgemm that measures the GPU's peak, when a
        GPU backend (``cupy``) is measured.

    Returns
    -------
    dict
        JSON-ready: ``arch``, ``population``, ``batch``, ``repeats``, ``seed``,
        ``flops_per_mask_eval``, ``machine``, ``load_average`` (1-minute, before
        and after: other work on the machine shows here), ``gemm_size``,
        ``gemm_peak_gflops`` (median), and ``backends``: per name
        ``first_call_seconds`` (the first evaluation, which compiles or loads
        cached kernels; in no other number), ``compile_seconds`` (that call
        less a steady-state one), ``seconds`` (median per population
        evaluation) and ``seconds_all``, ``evals_per_second`` (mask
        evaluations), ``gflops``, ``ratio_to_peak`` and ``peak`` (see
        :func:`measure`). With a GPU backend also ``gpu`` (the device and CUDA
        versions), ``gpu_gemm_size`` and ``gpu_gemm_peak_gflops``, the GPU's
        own fp32 peak that the GPU backend's ``ratio_to_peak`` refers to.

    Examples
    --------
    >>> r = run_bench("16-8-4", population=2, batch=8, backends=["numpy"], repeats=1, gemm_size=64)
    >>> sorted(r["backends"])
    ['numpy']
    """
    names = list(available_backends() if backends is None else backends)
    if not names:
        raise PrunetrainError("no backend to benchmark")
    classes = {name: resolve_backend(name) for name in names}  # raises on unknown names
    network, masks, X, y = random_problem(arch, population, batch, seed)
    flops = float(network.spec.flops_per_sample() * batch)
    contenders = {}
    for name, cls in classes.items():
        backend = cls(network)
        Xd, yd = backend.asarray(X), backend.aslabels(y)
        contenders[name] = lambda b=backend, Xd=Xd, yd=yd: b.evaluate(masks, Xd, yd)
    gpu_names = [name for name in classes if name in GPU_BACKENDS]
    gpu_peak, gpu = None, {}
    if gpu_names:
        gpu_peak = gpu_sgemm_peak(gpu_gemm_size, seed)
        gpu = {"gpu": gpu_info(), "gpu_gemm_size": gpu_gemm_size}
    numbers, _ = measure(
        contenders, population, flops, repeats, gemm_size, seed, gpu_peak, gpu_names
    )
    if gpu_names:
        gpu["gpu_gemm_peak_gflops"] = numbers["gpu_gemm_peak_gflops"]
    return {
        "arch": network.spec.arch,
        "population": population,
        "batch": batch,
        "repeats": repeats,
        "seed": seed,
        "flops_per_mask_eval": flops,
        "machine": machine_info(),
        "load_average": numbers["load_average"],
        "gemm_size": gemm_size,
        "gemm_peak_gflops": numbers["gemm_peak_gflops"],
        **gpu,
        "backends": numbers["contenders"],
    }


def format_bench(result: dict) -> str:
    """A short human-readable table of :func:`run_bench`'s result."""
    m = result["machine"]
    lines = [
        f"arch {result['arch']}, population {result['population']}, batch {result['batch']}: "
        f"{result['flops_per_mask_eval'] / 1e6:.1f} MFLOP per mask evaluation, "
        f"median of {result['repeats']}",
        f"machine: {m['cpu']}, {m['cores']} cores ({' '.join(m.get('cpu_features') or ['?'])}); "
        f"BLAS: {describe_blas(m.get('blas') or [])}" + _load_text(result.get("load_average")),
        f"fp32 GEMM peak ({result['gemm_size']}² sgemm): {result['gemm_peak_gflops']:.1f} GFLOP/s",
        *_gpu_lines(result),
        "",
        f"{'backend':<10}{'compile s':>11}{'eval s':>10}{'masks/s':>10}{'GFLOP/s':>10}{'of peak':>9}",
    ]
    for name, r in result["backends"].items():
        lines.append(
            f"{name:<10}{r['compile_seconds']:>11.3f}{r['seconds']:>10.4f}"
            f"{r['evals_per_second']:>10.1f}{r['gflops']:>10.1f}{r['ratio_to_peak']:>8.0%} "
            + ("of the GPU peak" if r.get("peak") == "gpu" else "")
        )
    lines.append("(compile s: the first call less a steady one; in no other column)")
    return "\n".join(line.rstrip() for line in lines)


def _gpu_lines(result: dict) -> list[str]:
    if "gpu_gemm_peak_gflops" not in result:
        return []
    g = result.get("gpu") or {}
    return [
        f"GPU: {g.get('name', '?')}, {g.get('memory_gib', '?')} GiB; CUDA runtime "
        f"{g.get('cuda_runtime', '?')}, driver {g.get('cuda_driver', '?')}; CuPy {g.get('cupy', '?')}",
        f"GPU fp32 GEMM peak ({result['gpu_gemm_size']}² cuBLAS sgemm): "
        f"{result['gpu_gemm_peak_gflops']:.1f} GFLOP/s",
    ]


def _load_text(load) -> str:
    if not load or None in load:
        return ""
    return f"; load average {load[0]:.2f} before, {load[1]:.2f} after"
