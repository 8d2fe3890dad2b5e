"""The GPU check of issue 34: what ``experiments/gpu_check.sh`` runs on a lent GPU machine.

A GPU machine is lent now and then for about 15 minutes, and runs one command;
this is that command's Python side. ``gpu_check.sh OUTDIR [IDX_DIR]`` asks
:func:`plan` for the steps and their time limits, runs each step as
``python experiments/gpu_check.py STEP --out OUTDIR [--idx IDX_DIR]`` under
``timeout``, writes its exit status to ``OUTDIR/STEP.rc``, and ends with
``summary``, which prints one PASS/FAIL line per step with its figure (and
writes them to ``summary.txt`` and ``summary.json``) and exits non-zero if
any step failed. The steps:

1. ``versions``: ``nvidia-smi`` and the versions of the driver, CUDA, CuPy,
   numba, numba-cuda and torch (``versions.json``, ``nvidia-smi.txt``).
2. ``tests``: the GPU tests on the real device (``tests.json``, ``tests.xml``):
   ``tests/backends/test_backend_cupy.py``, the checks of ``tests/backends/test_cuda_kernels.py``
   that the simulator runs (here on the GPU) and the parity case of every
   backend operation (``tests/backends/test_backend_parity.py``). A test skipped for
   want of a usable GPU counts as a failure.
3. ``bench``: ``prunetrain bench --backend cupy --backend numba`` (P = 64,
   B = 1024) on 784-300-100-10 and 784-1000-1000-10, which measures cuBLAS's
   fp32 sgemm in the same run, then ``torch.bmm`` on the same device with the
   sgemm timed again beside it (``bench.json``).
4. ``search-cupy``, ``search-numba``: the run ``prunetrain search --backend B
   --budget 60s`` makes (the default method) on Fashion-MNIST 784-300-100-10
   from ``IDX_DIR`` (digits and 64-300-100-10 without it, which the summary
   says), with its test accuracy, steps per second and peak memory
   (``search-B.json``; the run folder ``search-B/``).

With ``GPU_CHECK_STUB=1`` every step writes a canned record instead of
running (no GPU, no prunetrain import), and the steps named in
``GPU_CHECK_STUB_FAIL`` (comma-separated) fail: that is how
``tests/test_gpu_check.py`` checks the script, the records and the summary
without a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import importlib.util
import io
import json
import logging
import os
import platform
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Each step and its time limit (s): at most 7 minutes in all. A search is 60 s of budget
#: after loading the data and compiling its kernels (numba.cuda's are not cached on disk).
STEPS = {
    "versions": 20,
    "tests": 100,
    "bench": 80,
    "search-cupy": 110,
    "search-numba": 110,
}
#: A skip with this prefix means "no usable GPU" (``tests/backends/test_backend_parity.py``).
NEEDS_GPU = "needs a usable GPU"
TEST_FILES = (
    "tests/backends/test_backend_cupy.py",
    "tests/backends/test_cuda_kernels.py",
    "tests/backends/test_backend_parity.py",
)
#: The simulator runs in tests/backends/test_cuda_kernels.py's child; on a GPU its checks run for real.
TEST_FILTER = "not test_under_cuda_simulator"
BENCH_ARCHS = ("784-300-100-10", "784-1000-1000-10")
POPULATION, BATCH, REPEATS = 64, 1024, 5
SEARCH_BUDGET = "60s"
FASHION_ARCH, DIGITS_ARCH = "784-300-100-10", "64-300-100-10"
#: A search whose test accuracy is not above this learned nothing (10 classes).
ACCURACY_FLOOR = 0.5
#: The 2-core CPU `probe` step (numba, one BLAS thread) that the GPU step is held against.
CPU_PROBE_STEP = REPO / "experiments" / "results" / "probe_step.json"
TARGET_PEAK_RATIO, TARGET_PROBE_SPEEDUP = 0.6, 10.0
STUB_ENV, STUB_FAIL_ENV = "GPU_CHECK_STUB", "GPU_CHECK_STUB_FAIL"


class StepFailed(Exception):
    """A step ran but its result is wrong; the message is the summary's figure."""


def plan() -> str:
    """The steps and their time limits, one ``name seconds`` line each, for the shell."""
    return "".join(f"{name} {limit}\n" for name, limit in STEPS.items())


def write_record(out: Path, step: str, record: dict) -> None:
    """``out/step.json``, written whole (a step killed by its time limit leaves none)."""
    path = out / f"{step}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1, default=str) + "\n")
    tmp.replace(path)


def gib(n_bytes: float | None) -> str:
    return "?" if n_bytes is None else f"{n_bytes / 2**30:.2f} GiB"


# --- step 1: the machine ------------------------------------------------------------------


def run_versions(out: Path, idx: str | None) -> dict:
    """``nvidia-smi`` into ``nvidia-smi.txt``; the versions, and whether the CuPy backend can run."""
    smi = {}
    for name, args in (
        ("nvidia-smi", ["nvidia-smi"]),
        (
            "query",
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
        ),
    ):
        try:
            proc = subprocess.run(args, capture_output=True, text=True, timeout=5)
            smi[name] = proc.stdout + proc.stderr
        except (OSError, subprocess.TimeoutExpired) as exc:
            smi[name] = f"{type(exc).__name__}: {exc}"
    (out / "nvidia-smi.txt").write_text(smi["nvidia-smi"])
    versions = {"python": platform.python_version()}
    for module, dist in (
        ("numpy", "numpy"),
        ("cupy", None),
        ("numba", "numba"),
        ("numba_cuda", "numba-cuda"),
        ("torch", "torch"),
    ):
        versions[module] = _version(module, dist)
    from prunetrain.backends.cupy.cupy_backend import gpu_info, gpu_unavailable_reason

    reason = gpu_unavailable_reason()
    record = {"nvidia_smi": smi["query"].strip(), "versions": versions, "gpu_unavailable": reason}
    if reason is None:
        record["gpu"] = gpu_info()
    write_record(out, "versions", record)
    if reason is not None:
        raise StepFailed(f"the CuPy backend cannot run: {reason}")
    return record


def _version(module: str, dist: str | None) -> str | None:
    """A distribution's version (without importing it), else the module's ``__version__``."""
    if dist is not None:
        with contextlib.suppress(Exception):
            return importlib.metadata.version(dist)
    try:
        return importlib.import_module(module).__version__
    except Exception as exc:  # noqa: BLE001 - a missing library is a fact to record
        return f"not available ({type(exc).__name__})"


# --- step 2: the GPU tests ----------------------------------------------------------------


def run_tests(out: Path, idx: str | None) -> dict:
    """The GPU tests on the device, through pytest in this process; a junit file read back."""
    import pytest

    xml = out / "tests.xml"
    args = [
        *(str(REPO / f) for f in TEST_FILES),
        "-k", TEST_FILTER, "-q", "-rs", "-p", "no:cacheprovider",
        f"--rootdir={REPO}", f"--junitxml={xml}",
    ]  # fmt: skip
    code = int(pytest.main(args))
    record = {"pytest_exit": code, "args": args, **read_junit(xml)}
    write_record(out, "tests", record)
    problem = tests_problem(record)
    if problem:
        raise StepFailed(problem)
    return record


def read_junit(path: Path) -> dict:
    """Counts of a pytest junit file, the names of failed tests and of those skipped for want of a GPU."""
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failed, gpu_skipped = [], []
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        if case.find("failure") is not None:
            counts["failed"] += 1
            failed.append(name)
        elif case.find("error") is not None:
            counts["errors"] += 1
            failed.append(name)
        elif (skip := case.find("skipped")) is not None:
            counts["skipped"] += 1
            if NEEDS_GPU in (skip.get("message") or ""):
                gpu_skipped.append(name)
        else:
            counts["passed"] += 1
    return {**counts, "failed_tests": failed, "gpu_skipped": gpu_skipped}


def tests_problem(record: dict) -> str | None:
    """Why the tests step failed, or None."""
    if record["failed"] or record["errors"]:
        return f"{record['failed'] + record['errors']} failed: " + ", ".join(
            record["failed_tests"][:5]
        )
    if record["gpu_skipped"]:
        return f"{len(record['gpu_skipped'])} skipped for want of a usable GPU"
    if record["passed"] == 0 or record.get("pytest_exit", 0) != 0:
        return f"pytest exited with {record.get('pytest_exit')} and {record['passed']} passed"
    return None


# --- step 3: the benchmark ----------------------------------------------------------------


def run_cli(argv: list[str]) -> str:
    """``prunetrain ARGV`` in this process; its standard output (a failure raises StepFailed)."""
    from prunetrain.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
    sys.stderr.write(stderr.getvalue())
    if code:
        said = (stderr.getvalue().strip().splitlines() or ["nothing on stderr"])[-1]
        raise StepFailed(f"prunetrain {argv[0]} exited with {code}: {said}")
    return stdout.getvalue()


def bench_arch(
    arch: str,
    backends: tuple[str, ...] = ("cupy", "numba"),
    population: int = POPULATION,
    batch: int = BATCH,
    repeats: int = REPEATS,
    torch_device: str | None = "cuda",
) -> dict:
    """``prunetrain bench`` of ``backends`` on ``arch``, torch on ``torch_device`` and the losses' agreement.

    torch's contenders (:func:`population_eval.torch_contenders`: masks as bool
    tensors, ``W * M`` for every mask on every call, ``torch.bmm``) are timed
    in rounds with the GPU's sgemm, so their ratio is to an sgemm of the same
    moment. ``max_rel_loss_diff`` is the largest relative difference of a
    backend's losses from the NumPy reference's on the benchmark's masks.
    """
    import numpy as np

    from prunetrain.backends import make_backend
    from prunetrain.bench import random_problem

    argv = ["bench", "--arch", arch, "--population", str(population), "--batch-size", str(batch)]
    argv += [arg for name in backends for arg in ("--backend", name)]
    argv += ["--repeats", str(repeats), "--json"]
    result = {"command": "prunetrain " + " ".join(argv), "bench": json.loads(run_cli(argv))}
    network, masks, X, y = random_problem(arch, population, batch)
    reference = make_backend("numpy", network).evaluate(masks, X, y)[0]
    agreement = {}
    for name in backends:
        backend = make_backend(name, network)
        loss = backend.evaluate(masks, backend.asarray(X), backend.aslabels(y))[0]
        agreement[name] = float(np.max(np.abs(loss / reference - 1)))
    result["max_rel_loss_diff"] = agreement
    result["torch"] = bench_torch(network, masks, X, y, repeats, torch_device)
    return result


def bench_torch(network, masks, X, y, repeats: int, device: str | None) -> dict:
    """torch's population evaluation on ``device`` against the GPU sgemm of the same rounds."""
    if device is None:
        return {"skipped": "no torch device asked for"}
    try:
        import torch
    except ImportError as exc:
        return {"skipped": f"torch is not installed ({exc})"}
    if not torch.cuda.is_available():
        return {"skipped": f"torch {torch.__version__} finds no CUDA device"}
    from prunetrain.backends.cupy.cupy_backend import GPU_GEMM_SIZE, gpu_sgemm_peak
    from prunetrain.bench import measure

    flops = float(network.spec.flops_per_sample() * X.shape[0])
    try:
        contenders = population_eval().torch_contenders(network, masks, X, y, device=device)
        numbers, _ = measure(
            contenders,
            len(masks),
            flops,
            repeats,
            gemm_size=256,  # the CPU's peak is not what torch is held against here
            gpu_peak=gpu_sgemm_peak(GPU_GEMM_SIZE),
            gpu_contenders=list(contenders),
        )
    except Exception as exc:  # noqa: BLE001 - torch is only a comparison: record why it is missing
        return {
            "skipped": f"torch failed ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
        }
    return {
        "version": torch.__version__,
        "tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "gpu_gemm_peak_gflops": numbers["gpu_gemm_peak_gflops"],
        "contenders": numbers["contenders"],
    }


def population_eval():
    """``experiments/benchmarks/population_eval.py`` as a module (its torch contenders)."""
    path = REPO / "experiments" / "benchmarks" / "population_eval.py"
    spec = importlib.util.spec_from_file_location("population_eval", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_bench(out: Path, idx: str | None) -> dict:
    """Both architectures; one that fails is recorded with its ``error`` and fails the step."""
    record, problems = {"archs": {}}, []
    for arch in BENCH_ARCHS:
        try:
            r = record["archs"][arch] = bench_arch(arch)
        except StepFailed as exc:
            record["archs"][arch] = {"error": str(exc)}
            problems.append(f"{arch}: {exc}")
            continue
        worst = max(r["max_rel_loss_diff"].values())
        if not worst <= 1e-5:
            problems.append(f"{arch}: losses differ from the NumPy reference by {worst:.2g}")
    write_record(out, "bench", record)
    if problems:
        raise StepFailed("; ".join(problems))
    return record


# --- step 4: a search ---------------------------------------------------------------------


class PeakMemory:
    """Peak memory of a search, sampled at each validation (a callback) and at its end.

    On a GPU: bytes in use on the device (``cudaMemGetInfo``: total less free,
    the CUDA context and every library's memory included) and bytes held by
    CuPy's memory pool (which keeps what it allocated, so its last value is
    its peak). Everywhere: this process's peak resident set.
    """

    def __init__(self, gpu: bool) -> None:
        self.device_peak = self.pool_peak = None
        self._cupy = None
        if gpu:
            import cupy

            self._cupy = cupy
            self.device_peak = self.pool_peak = 0
        self.device_before = self.sample()

    def sample(self) -> int | None:
        if self._cupy is None:
            return None
        free, total = self._cupy.cuda.runtime.memGetInfo()
        self.device_peak = max(self.device_peak, total - free)
        self.pool_peak = max(self.pool_peak, self._cupy.get_default_memory_pool().total_bytes())
        return total - free

    def __call__(self, row: dict, mask) -> bool:
        self.sample()
        return False  # never stops the search

    def record(self) -> dict:
        self.sample()
        return {
            "peak_device_bytes": self.device_peak,
            "peak_pool_bytes": self.pool_peak,
            "device_bytes_before_search": self.device_before,
            "peak_rss_bytes": population_eval().peak_rss_bytes(),
        }


def search_data(idx: str | None):
    """``(data, arch, note)``: Fashion-MNIST loaded from ``idx``, else digits and why."""
    from prunetrain.data import load_dataset
    from prunetrain.errors import PrunetrainError

    if idx is None:
        return load_dataset("digits"), DIGITS_ARCH, "no IDX_DIR given: digits, not Fashion-MNIST"
    try:
        return load_dataset("fashion-mnist", data_dir=idx), FASHION_ARCH, None
    except PrunetrainError as exc:
        note = f"IDX_DIR {idx} unusable ({exc}): digits, not Fashion-MNIST"
        return load_dataset("digits"), DIGITS_ARCH, note


def search(out: Path, backend: str, idx: str | None, budget: str = SEARCH_BUDGET) -> dict:
    """The search ``prunetrain search --backend BACKEND --budget BUDGET`` runs, with its step count and memory.

    Through :func:`prunetrain.runs.search` with a searcher made here, so that
    its step count can be read; the run folder is ``out/search-BACKEND``.
    """
    from prunetrain import runs
    from prunetrain.backends import resolve_backend
    from prunetrain.errors import PrunetrainError
    from prunetrain.options import FolderOptions, SearchOptions
    from prunetrain.search import DEFAULT_METHOD, make_searcher

    try:
        resolve_backend(backend)
    except PrunetrainError as exc:
        raise StepFailed(str(exc)) from None
    data, arch, note = search_data(idx)
    dataset = data.name
    command = (
        f"prunetrain search --backend {backend} --dataset {dataset} --arch {arch} --budget {budget}"
    )
    if note is None:
        command += f" --data-dir {idx}"
    setup = runs.build(data, arch)
    searcher = make_searcher(DEFAULT_METHOD)
    memory = PeakMemory(gpu=backend == "cupy")
    print(f"{command}: compiling kernels, then {budget} of search", file=sys.stderr)
    t = time.perf_counter()
    finished = runs.search(
        setup,
        searcher,
        SearchOptions(DEFAULT_METHOD, budget=budget, backend=backend, callbacks=[memory]),
        FolderOptions(out / f"search-{backend}", force=True),
    )
    r = finished.result
    steps = getattr(searcher, "steps", None)
    record = {
        "command": command,
        "backend": backend,
        "dataset": dataset,
        "dataset_note": note,
        "arch": arch,
        "method": DEFAULT_METHOD,
        "budget": budget,
        "test_accuracy": finished.metrics["test"]["accuracy"],
        "val_accuracy": r.val_accuracy,
        "steps": steps,
        "seconds": r.seconds,
        "steps_per_second": None if steps is None else steps / r.seconds,
        "evaluations": r.evaluations,
        "compile_seconds": r.compile_seconds,
        "wall_seconds": time.perf_counter() - t,
        "stopped_by": r.stopped_by,
        **memory.record(),
    }
    write_record(out, f"search-{backend}", record)
    if not record["test_accuracy"] > ACCURACY_FLOOR:
        raise StepFailed(
            f"test accuracy {record['test_accuracy']:.4f} is not above {ACCURACY_FLOOR}"
        )
    return record


# --- the summary --------------------------------------------------------------------------


def figure(step: str, record: dict) -> str:
    """The summary's figure of a step's record."""
    if step == "versions":
        g, v = record.get("gpu") or {}, record["versions"]
        smi = (record["nvidia_smi"] or g.get("name", "?")).splitlines()[0]
        return (
            f"{smi}; CUDA runtime {g.get('cuda_runtime', '?')}; "
            f"CuPy {v['cupy']}, numba {v['numba']}, numba-cuda {v['numba_cuda']}, torch {v['torch']}"
        )
    if step == "tests":
        return (
            f"{record['passed']} passed, {record['failed']} failed, {record['errors']} errors, "
            f"{record['skipped']} skipped ({len(record['gpu_skipped'])} for want of a GPU)"
        )
    if step == "bench":
        return "; ".join(bench_figure(arch, r) for arch, r in record["archs"].items())
    acc, rate = record["test_accuracy"], record["steps_per_second"]
    memory = f"peak RSS {gib(record['peak_rss_bytes'])}"
    if record["peak_device_bytes"] is not None:
        memory = (
            f"peak device memory {gib(record['peak_device_bytes'])} "
            f"(CuPy pool {gib(record['peak_pool_bytes'])}), " + memory
        )
    text = (
        f"{record['dataset']} {record['arch']} {record['method']} {record['budget']} on "
        f"{record['backend']}: test accuracy {acc:.4f}, {record['steps']} steps "
        f"({rate or float('nan'):.1f}/s), {memory}"
    )
    return text + (f" [{record['dataset_note']}]" if record.get("dataset_note") else "")


def bench_figure(arch: str, r: dict) -> str:
    if "error" in r:
        return f"{arch}: {r['error']}"
    b = r["bench"]
    parts = []
    if "cupy" in b["backends"]:
        c = b["backends"]["cupy"]
        parts.append(
            f"cupy {c['gflops']:.0f} GFLOP/s = {c['ratio_to_peak']:.2f} of cuBLAS sgemm "
            f"{b.get('gpu_gemm_peak_gflops', float('nan')):.0f}"
        )
    torch_rows = r["torch"].get("contenders", {})
    if "torch.bmm" in torch_rows:
        parts.append(f"torch.bmm {torch_rows['torch.bmm']['gflops']:.0f}")
    else:
        parts.append(f"torch.bmm: {r['torch'].get('skipped', 'not measured')}")
    for name, row in b["backends"].items():
        if name != "cupy":
            parts.append(f"{name} {row['gflops']:.0f} ({row['ratio_to_peak']:.2f} of CPU sgemm)")
    return f"{arch}: " + ", ".join(parts)


def targets(records: dict) -> list[tuple[str, bool | None, str]]:
    """The issue's targets on an H100: ``(what, met or None when not measured, figure)``."""
    rows = []
    bench = records.get("bench", {}).get("archs", {}).get(BENCH_ARCHS[0], {})
    cupy = bench.get("bench", {}).get("backends", {}).get("cupy")
    what = f"cupy population evaluation {BENCH_ARCHS[0]} >= {TARGET_PEAK_RATIO} of cuBLAS sgemm"
    if cupy:
        rows.append(
            (what, cupy["ratio_to_peak"] >= TARGET_PEAK_RATIO, f"{cupy['ratio_to_peak']:.2f}")
        )
    else:
        rows.append((what, None, "not measured"))
    torch_row = bench.get("torch", {}).get("contenders", {}).get("torch.bmm")
    what = "cupy population evaluation no slower than torch.bmm"
    if cupy and torch_row:
        ratio = cupy["gflops"] / torch_row["gflops"]
        rows.append((what, ratio >= 1.0, f"{ratio:.2f}x torch.bmm"))
    else:
        rows.append((what, None, "not measured"))
    what = f"probe step >= {TARGET_PROBE_SPEEDUP:g}x the 2-core CPU"
    s = records.get("search-cupy", {})
    cpu = cpu_probe_steps_per_second()
    on_fashion = s.get("dataset") == "fashion-mnist" and s.get("method") == "probe"
    if on_fashion and s.get("steps_per_second") and cpu:
        speedup = s["steps_per_second"] / cpu
        rows.append(
            (
                what,
                speedup >= TARGET_PROBE_SPEEDUP,
                f"{speedup:.1f}x ({cpu:.1f} steps/s in {CPU_PROBE_STEP.relative_to(REPO)})",
            )
        )
    else:
        rows.append((what, None, "not measured (needs the probe search on Fashion-MNIST)"))
    return rows


def cpu_probe_steps_per_second() -> float | None:
    """Steps/s of the committed 2-core `probe` step on 784-300-100-10, or None."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        for row in json.loads(CPU_PROBE_STEP.read_text())["results"]:
            if row["arch"] == FASHION_ARCH:
                return 1.0 / row["median_seconds"]["probe"]
    return None


def summarize(out: Path) -> tuple[list[str], bool]:
    """One line per step (PASS/FAIL and its figure), the targets, and whether every step passed."""
    lines, records, n_passed = [], {}, 0
    for step, limit in STEPS.items():
        rc_file, record_file = out / f"{step}.rc", out / f"{step}.json"
        rc = int(rc_file.read_text().strip() or -1) if rc_file.exists() else None
        record = json.loads(record_file.read_text()) if record_file.exists() else None
        if record is not None:
            records[step] = record
        if rc is None:
            status, text = "FAIL", "not run"
        elif rc in (124, 137):
            status, text = "FAIL", f"timed out after {limit} s (see {step}.log)"
        elif rc != 0:
            reason = (record or {}).get("error") or f"see {step}.log"
            status, text = "FAIL", f"exit {rc}: {reason}"
        elif record is None:
            status, text = "FAIL", f"exit 0 but no {step}.json"
        else:
            status, text = "PASS", figure(step, record)
        n_passed += status == "PASS"
        lines.append(f"{step:<13} {status}  {text}")
    for what, met, text in targets(records):
        verdict = "n/a" if met is None else ("met" if met else "MISSED")
        lines.append(f"target {what}: {verdict} ({text})")
    started = out / "started"
    took = ""
    if started.exists():
        took = f" in {time.time() - float(started.read_text()):.0f} s"
    lines.append(f"gpu_check: {n_passed} of {len(STEPS)} steps passed{took}")
    return lines, n_passed == len(STEPS)


def write_summary(out: Path) -> int:
    lines, passed = summarize(out)
    text = "\n".join(lines) + "\n"
    (out / "summary.txt").write_text(text)
    write_record(out, "summary", {"lines": lines, "passed": passed})
    print(text, end="")
    return 0 if passed else 1


# --- stubs (GPU_CHECK_STUB=1) -------------------------------------------------------------


def stub_record(step: str) -> dict:
    """A canned record of ``step`` with the real one's fields (figures invented, marked ``stub``)."""
    if step == "versions":
        v = dict.fromkeys(("python", "numpy", "cupy", "numba", "numba_cuda", "torch"), "stub")
        return {
            "stub": True,
            "nvidia_smi": "Stub GPU, 1.0, 80 GiB",
            "versions": v,
            "gpu_unavailable": None,
        }
    if step == "tests":
        return {"stub": True, "pytest_exit": 0, "passed": 40, "failed": 0, "errors": 0, "skipped": 2,
                "failed_tests": [], "gpu_skipped": []}  # fmt: skip
    if step == "bench":
        row = {"gflops": 700.0, "ratio_to_peak": 0.7}
        arch = {
            "bench": {"backends": {"cupy": row, "numba": {"gflops": 70.0, "ratio_to_peak": 0.5}},
                      "gpu_gemm_peak_gflops": 1000.0},
            "torch": {"contenders": {"torch.bmm": {"gflops": 500.0}}},
            "max_rel_loss_diff": {"cupy": 1e-7, "numba": 1e-7},
        }  # fmt: skip
        return {"stub": True, "archs": dict.fromkeys(BENCH_ARCHS, arch)}
    return {
        "stub": True, "backend": step.removeprefix("search-"), "dataset": "digits",
        "dataset_note": "no IDX_DIR given: digits, not Fashion-MNIST", "arch": DIGITS_ARCH,
        "method": "probe", "budget": SEARCH_BUDGET, "test_accuracy": 0.9, "steps": 600,
        "seconds": 60.0, "steps_per_second": 10.0, "peak_rss_bytes": 2**31,
        "peak_device_bytes": 2**30 if step == "search-cupy" else None,
        "peak_pool_bytes": 2**29 if step == "search-cupy" else None,
    }  # fmt: skip


def run_stub(step: str, out: Path) -> int:
    failing = {name.strip() for name in os.environ.get(STUB_FAIL_ENV, "").split(",")}
    if step in failing:
        write_record(out, step, {"stub": True, "error": f"stub {step} failed"})
        print(f"stub {step} failed", file=sys.stderr)
        return 1
    write_record(out, step, stub_record(step))
    return 0


RUNNERS = {
    "versions": run_versions,
    "tests": run_tests,
    "bench": run_bench,
    "search-cupy": lambda out, idx: search(out, "cupy", idx),
    "search-numba": lambda out, idx: search(out, "numba", idx),
}


def run_step(step: str, out: Path, idx: str | None) -> int:
    """Run one step; a failure is written into its record as ``error`` and gives exit status 1."""
    if os.environ.get(STUB_ENV) == "1":
        return run_stub(step, out)
    try:
        RUNNERS[step](out, idx)
    except StepFailed as exc:
        _add_error(out, step, str(exc))
        print(f"{step}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        _add_error(out, step, f"{type(exc).__name__}: {exc}")
        raise
    return 0


def _add_error(out: Path, step: str, error: str) -> None:
    path = out / f"{step}.json"
    record = json.loads(path.read_text()) if path.exists() else {}
    write_record(out, step, {**record, "error": " ".join(error.split())[:300]})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["plan", "summary", *STEPS])
    parser.add_argument("--out", type=Path, help="The folder of the records.")
    parser.add_argument("--idx", help="Folder of the Fashion-MNIST IDX files (else digits).")
    args = parser.parse_args(argv)
    if args.step == "plan":
        print(plan(), end="")
        return 0
    if args.out is None:
        parser.error("--out is required")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.step == "summary":
        return write_summary(args.out)
    return run_step(args.step, args.out, args.idx)


if __name__ == "__main__":
    # prunetrain's INFO lines (kernels compiled in how long) go into the step's log.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    sys.exit(main())
