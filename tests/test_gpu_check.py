"""``experiments/gpu_check.sh`` and its Python side, without a GPU.

The script runs end to end with every GPU step stubbed (``GPU_CHECK_STUB=1``):
its records, its summary lines and its exit status. The summary, the junit
reading, the targets and the steps that also run on a CPU (the benchmark
plumbing, a search) are checked in this process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "gpu_check.sh"


def load_module():
    spec = importlib.util.spec_from_file_location(
        "gpu_check", REPO / "experiments" / "gpu_check.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_check = load_module()
STEPS = list(gpu_check.STEPS)


def run_script(out: Path, *args: str, fail: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "GPU_CHECK_STUB": "1", "GPU_CHECK_STUB_FAIL": fail}
    env["PYTHON"] = sys.executable
    return subprocess.run(
        ["bash", str(SCRIPT), str(out), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_steps_fit_well_inside_eight_minutes():
    assert STEPS == ["versions", "tests", "bench", "search-cupy", "search-numba"]
    assert sum(gpu_check.STEPS.values()) <= 7 * 60
    assert gpu_check.plan().splitlines() == [f"{s} {gpu_check.STEPS[s]}" for s in STEPS]
    assert set(gpu_check.RUNNERS) == set(STEPS)


def test_stubbed_script_passes_writes_every_record_and_one_line_per_step(tmp_path):
    out = tmp_path / "check"
    proc = run_script(out, str(tmp_path / "idx"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[:2] for line in lines[:5]] == [[s, "PASS"] for s in STEPS]
    assert lines[3].startswith("search-cupy   PASS  digits 64-300-100-10 probe 60s on cupy: ")
    assert "test accuracy 0.9000, 600 steps (10.0/s), peak device memory 1.00 GiB" in lines[3]
    assert "[no IDX_DIR given: digits, not Fashion-MNIST]" in lines[3]
    assert "peak device memory" not in lines[4] and "peak RSS 2.00 GiB" in lines[4]
    assert lines[5] == (
        "target cupy population evaluation 784-300-100-10 >= 0.6 of cuBLAS sgemm: met (0.70)"
    )
    assert (
        lines[6]
        == "target cupy population evaluation no slower than torch.bmm: met (1.40x torch.bmm)"
    )
    assert lines[7].startswith("target probe step >= 10x the 2-core CPU: n/a")
    assert lines[-1].startswith("gpu_check: 5 of 5 steps passed in ")
    assert (out / "summary.txt").read_text() == proc.stdout
    assert json.loads((out / "summary.json").read_text()) == {"lines": lines, "passed": True}
    for step in STEPS:
        assert (out / f"{step}.rc").read_text() == "0\n"
        assert json.loads((out / f"{step}.json").read_text())["stub"] is True
    assert proc.stderr.splitlines() == [
        f"gpu_check: {s} (at most {gpu_check.STEPS[s]} s)" for s in STEPS
    ]


def test_a_failing_step_fails_the_script(tmp_path):
    out = tmp_path / "check"
    proc = run_script(out, fail="bench,search-numba")
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[2] == "bench         FAIL  exit 1: stub bench failed"
    assert lines[4] == "search-numba  FAIL  exit 1: stub search-numba failed"
    assert [line.split()[1] for line in lines[:5]] == ["PASS", "PASS", "FAIL", "PASS", "FAIL"]
    assert lines[5].endswith(": n/a (not measured)")  # no bench figures: no target verdict
    assert lines[-1].startswith("gpu_check: 3 of 5 steps passed")
    assert (out / "bench.rc").read_text() == "1\n"
    assert "stub bench failed" in (out / "bench.log").read_text()


def test_the_script_refuses_a_bad_command_line(tmp_path):
    proc = run_script(tmp_path / "a", "b", "c")
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("usage: " + str(SCRIPT) + " OUTDIR [IDX_DIR]")
    assert not (tmp_path / "a").exists()


def write_step(out: Path, step: str, rc: int | None, record: dict | None = None) -> None:
    if rc is not None:
        (out / f"{step}.rc").write_text(f"{rc}\n")
    if record is not None:
        (out / f"{step}.json").write_text(json.dumps(record))


def test_summary_of_timeouts_missing_records_and_steps_not_run(tmp_path):
    write_step(tmp_path, "versions", 0, gpu_check.stub_record("versions"))
    write_step(tmp_path, "tests", 124)
    write_step(tmp_path, "bench", 0)
    write_step(tmp_path, "search-cupy", 1, {"error": "test accuracy 0.1000 is not above 0.5"})
    lines, passed = gpu_check.summarize(tmp_path)
    assert not passed
    assert lines[:5] == [
        "versions      PASS  Stub GPU, 1.0, 80 GiB; CUDA runtime ?; CuPy stub, numba stub, "
        "numba-cuda stub, torch stub",
        "tests         FAIL  timed out after 100 s (see tests.log)",
        "bench         FAIL  exit 0 but no bench.json",
        "search-cupy   FAIL  exit 1: test accuracy 0.1000 is not above 0.5",
        "search-numba  FAIL  not run",
    ]
    assert lines[-1] == "gpu_check: 1 of 5 steps passed"
    assert gpu_check.main(["summary", "--out", str(tmp_path)]) == 1


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.test_a" name="test_ok" />
<testcase classname="tests.test_a" name="test_bad"><failure message="boom" /></testcase>
<testcase classname="tests.test_b" name="test_err"><error message="fixture" /></testcase>
<testcase classname="tests.test_b" name="test_gpu"><skipped message="needs a usable GPU: none" /></testcase>
<testcase classname="tests.test_b" name="test_cpu"><skipped message="a GPU works here" /></testcase>
</testsuite></testsuites>"""


def test_junit_counts_and_what_fails_the_tests_step(tmp_path):
    path = tmp_path / "tests.xml"
    path.write_text(JUNIT)
    record = gpu_check.read_junit(path)
    assert record == {
        "passed": 1,
        "failed": 1,
        "errors": 1,
        "skipped": 2,
        "failed_tests": ["tests.test_a::test_bad", "tests.test_b::test_err"],
        "gpu_skipped": ["tests.test_b::test_gpu"],
    }
    assert gpu_check.tests_problem(record) == (
        "2 failed: tests.test_a::test_bad, tests.test_b::test_err"
    )
    record.update(failed=0, errors=0)
    assert gpu_check.tests_problem(record) == "1 skipped for want of a usable GPU"
    record.update(gpu_skipped=[], pytest_exit=0)
    assert gpu_check.tests_problem(record) is None
    record.update(passed=0)
    assert gpu_check.tests_problem(record) == "pytest exited with 0 and 0 passed"


def test_targets_against_the_same_runs_sgemm_torch_and_the_committed_cpu_step():
    bench = gpu_check.stub_record("bench")
    search = {**gpu_check.stub_record("search-cupy"), "dataset": "fashion-mnist"}
    cpu = gpu_check.cpu_probe_steps_per_second()
    assert 40 < cpu < 100  # experiments/results/probe_step.json: a 15.4 ms step
    search["steps_per_second"] = 10 * cpu + 1
    rows = gpu_check.targets({"bench": bench, "search-cupy": search})
    assert [met for _, met, _ in rows] == [True, True, True]
    row = bench["archs"]["784-300-100-10"]
    row["bench"]["backends"]["cupy"].update(ratio_to_peak=0.59, gflops=499.0)
    search["steps_per_second"] = 9 * cpu
    rows = gpu_check.targets({"bench": bench, "search-cupy": search})
    assert [(met, text.split()[0]) for _, met, text in rows] == [
        (False, "0.59"),
        (False, "1.00x"),
        (False, "9.0x"),
    ]


def test_run_step_records_the_error_and_exits_1(tmp_path, monkeypatch, capsys):
    def wrong(out, idx):
        gpu_check.write_record(out, "bench", {"archs": {}})
        raise gpu_check.StepFailed("losses  differ\nfrom the reference")

    monkeypatch.delenv(gpu_check.STUB_ENV, raising=False)
    monkeypatch.setitem(gpu_check.RUNNERS, "bench", wrong)
    assert gpu_check.main(["bench", "--out", str(tmp_path)]) == 1
    record = json.loads((tmp_path / "bench.json").read_text())
    assert record == {"archs": {}, "error": "losses differ from the reference"}
    assert capsys.readouterr().err == "bench: losses  differ\nfrom the reference\n"

    def broken(out, idx):
        raise ZeroDivisionError("no")

    monkeypatch.setitem(gpu_check.RUNNERS, "tests", broken)
    with pytest.raises(ZeroDivisionError):
        gpu_check.main(["tests", "--out", str(tmp_path)])
    assert json.loads((tmp_path / "tests.json").read_text()) == {"error": "ZeroDivisionError: no"}


def test_an_unusable_idx_folder_falls_back_to_digits_and_says_so(tmp_path):
    data, arch, note = gpu_check.search_data(str(tmp_path))
    assert (data.name, arch) == ("digits", "64-300-100-10")
    assert note.startswith(f"IDX_DIR {tmp_path} unusable (fashion-mnist: missing ")
    assert note.endswith("): digits, not Fashion-MNIST")


def test_bench_step_runs_prunetrain_bench_and_compares_losses(monkeypatch):
    import prunetrain.bench

    monkeypatch.setattr(prunetrain.bench, "sgemm_peak", lambda size, seed=0: lambda: 100.0)
    r = gpu_check.bench_arch("8-4", ("numpy",), population=2, batch=4, repeats=1, torch_device=None)
    assert r["command"] == (
        "prunetrain bench --arch 8-4 --population 2 --batch-size 4 --backend numpy --repeats 1 --json"
    )
    assert r["bench"]["arch"] == "8-4" and r["bench"]["gemm_peak_gflops"] == 100.0
    assert r["max_rel_loss_diff"] == {"numpy": 0.0}
    assert r["torch"] == {"skipped": "no torch device asked for"}
    assert gpu_check.bench_figure("8-4", r).startswith(
        "8-4: torch.bmm: no torch device asked for, numpy "
    )


def test_search_step_records_accuracy_steps_and_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "ACCURACY_FLOOR", 1.0)  # no search is above it
    with pytest.raises(gpu_check.StepFailed, match=r"test accuracy 0\.\d{4} is not above 1\.0"):
        gpu_check.search(tmp_path, "numpy", None, budget="10evals")
    record = json.loads((tmp_path / "search-numpy.json").read_text())
    assert record["command"] == (
        "prunetrain search --backend numpy --dataset digits --arch 64-300-100-10 --budget 10evals"
    )
    assert record["method"] == "probe" and record["dataset_note"].startswith("no IDX_DIR given")
    assert record["steps"] >= 1
    assert record["steps_per_second"] == pytest.approx(record["steps"] / record["seconds"])
    assert record["peak_device_bytes"] is None and record["peak_rss_bytes"] > 0
    assert (tmp_path / "search-numpy" / "result.json").exists()
    saved = json.loads((tmp_path / "search-numpy" / "result.json").read_text())
    assert saved["test_accuracy"] == record["test_accuracy"]


def test_a_search_on_a_backend_that_cannot_run_fails_in_one_line(tmp_path, monkeypatch):
    from prunetrain.backends.cupy import cupy_backend

    monkeypatch.setattr(cupy_backend, "gpu_unavailable_reason", lambda: "CuPy finds no CUDA GPU")
    with pytest.raises(gpu_check.StepFailed) as failed:
        gpu_check.search(tmp_path, "cupy", None)
    assert str(failed.value) == "backend 'cupy' cannot run here: CuPy finds no CUDA GPU"
    assert list(tmp_path.iterdir()) == []


def test_a_failing_prunetrain_command_says_why(capsys):
    with pytest.raises(gpu_check.StepFailed) as failed:
        gpu_check.run_cli(["bench", "--population", "0"])
    assert str(failed.value) == (
        "prunetrain bench exited with 2: prunetrain: error: --population, --batch-size and "
        "--repeats must be at least 1"
    )
    assert capsys.readouterr().err.startswith("prunetrain: error: --population")


def test_bench_step_records_each_architecture_and_fails_on_any(tmp_path, monkeypatch):
    good = gpu_check.stub_record("bench")["archs"]["784-300-100-10"]

    def bench_arch(arch):
        if arch == "784-1000-1000-10":
            raise gpu_check.StepFailed("prunetrain bench exited with 2: out of memory")
        return good

    monkeypatch.setattr(gpu_check, "bench_arch", bench_arch)
    with pytest.raises(gpu_check.StepFailed, match=r"^784-1000-1000-10: prunetrain bench exited"):
        gpu_check.run_bench(tmp_path, None)
    record = json.loads((tmp_path / "bench.json").read_text())
    assert record["archs"]["784-300-100-10"] == good
    assert record["archs"]["784-1000-1000-10"] == {
        "error": "prunetrain bench exited with 2: out of memory"
    }
    assert gpu_check.figure("bench", record).endswith(
        "; 784-1000-1000-10: prunetrain bench exited with 2: out of memory"
    )
    assert gpu_check.targets({"bench": record})[0][1] is True  # the first architecture's figures
