"""`run_bench`: every number present, positive, and consistent with the others."""

import json

import pytest

from prunetrain.backends import BACKENDS
from prunetrain.bench import available_backends, format_bench, random_problem, run_bench
from prunetrain.errors import PrunetrainError


def test_run_bench_reports_every_backend():
    result = run_bench("16-12-4", population=3, batch=16, repeats=1, gemm_size=256)
    json.dumps(result)  # JSON-ready
    assert set(result["backends"]) == set(available_backends())
    assert "numpy" in result["backends"]
    assert result["gemm_peak_gflops"] > 0
    assert result["flops_per_mask_eval"] == 2 * 16 * (16 * 12 + 12 * 4)
    for r in result["backends"].values():
        for key in ("first_call_seconds", "seconds", "evals_per_second", "gflops", "ratio_to_peak"):
            assert r[key] > 0, key
        assert 0 <= r["compile_seconds"] <= r["first_call_seconds"]
        assert r["evals_per_second"] == pytest.approx(3 / r["seconds"])
        assert r["gflops"] == pytest.approx(3 * result["flops_per_mask_eval"] / r["seconds"] / 1e9)
        assert r["ratio_to_peak"] == pytest.approx(r["gflops"] / result["gemm_peak_gflops"])
    text = format_bench(result)
    for name in result["backends"]:
        assert name in text
    assert "GFLOP/s" in text
    # The CPU and the BLAS kernels it ran (their instruction-set level) are named.
    machine = result["machine"]
    assert machine["cpu"] in text and machine["blas"]
    for blas in machine["blas"]:
        assert f"{blas['library']} {blas['version']} ({blas['architecture']}," in text


def test_run_bench_picks_backends_by_name():
    result = run_bench("8-4", population=2, batch=4, backends=["numpy"], repeats=2, gemm_size=64)
    assert list(result["backends"]) == ["numpy"]
    assert result["repeats"] == 2


def test_available_backends_can_run():
    names = available_backends()
    assert "numpy" in names
    assert all(BACKENDS[n].unavailable_reason() is None for n in names)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"backends": ["nope"]}, "unknown backend"),
        ({"repeats": 0}, "repeats"),
        ({"population": 0}, "population"),
        ({"arch": "10"}, "architecture"),
    ],
)
def test_bad_options_are_refused(kwargs, match):
    with pytest.raises(PrunetrainError, match=match):
        run_bench(**{"arch": "8-4", "population": 2, "batch": 4, "gemm_size": 64, **kwargs})


def test_random_problem_is_reproducible():
    a = random_problem("6-5-3", 4, 7, seed=1)
    b = random_problem("6-5-3", 4, 7, seed=1)
    assert a[0].weights_hash == b[0].weights_hash
    assert all((p == q).all() for p, q in zip(a[1].packed, b[1].packed))
    assert (a[2] == b[2]).all() and (a[3] == b[3]).all()
    assert a[2].shape == (7, 6) and a[3].max() < 3


def test_the_probe_step_benchmark_splits_a_step_into_its_parts(tmp_path):
    """experiments/benchmarks/probe_step.py (issue 29): the parts add up to the step."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / "benchmarks" / "probe_step.py"
    spec = importlib.util.spec_from_file_location("probe_step", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "probe_step.json"
    module.main(["--dataset", "digits", "--archs", "64-16-10", "--repeats", "3", "--warmup", "1",
                 "--out", str(out)])  # fmt: skip
    record = json.loads(out.read_text())
    (result,) = record["results"]
    assert result["arch"] == "64-16-10" and result["repeats"] == 3
    median = result["median_seconds"]
    assert set(median) == {"probe", "edge_popup", "forward", *module.PARTS, "other"}
    assert all(v > 0 for k, v in median.items() if k != "other")
    assert result["probe_over_edge_popup"] == median["probe"] / median["edge_popup"]
    text = out.read_text()  # no paths of this machine (records hold none)
    assert str(Path.cwd()) not in text and str(Path(module.__file__).parent) not in text
