import json
import os
import signal
import subprocess
import sys
import time

import pytest

from prunetrain.cli import main
from prunetrain.errors import PrunetrainError
from prunetrain.experiments import load_config, parse_config, read_results, run_comparison
from prunetrain.search import SEARCHERS

TINY = """
name = "tiny"
datasets = ["digits"]
archs = ["64-16-10"]
keeps = [0.5]
seeds = [0, 1]
budget = "60evals"

[search]
batch_size = 256

[methods.random]
population = 8

[methods.hill]

[baselines.edge-popup]
epochs = 2

[baselines.dense]
epochs = 2
lr = 0.01

[baselines.random-init]
method = "random"
"""

# Results that must agree between executors for evaluation budgets (not timings).
TIMING = {"seconds", "compile_seconds", "versions", "history"}


def write_config(tmp_path, text=TINY, name="tiny.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def cli(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return e.value.code, out, err


def stable(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in TIMING}


def test_config_expands_to_keyed_runs(tmp_path):
    c = load_config(write_config(tmp_path))
    assert c.name == "tiny" and c.budget == "60evals"
    assert len(c.runs) == 5 * 2
    assert len({r.key for r in c.runs}) == len(c.runs)
    r = c.runs[0]
    assert (r.kind, r.label, r.method, r.seed, r.params) == (
        "search",
        "random",
        "random",
        0,
        {"population": 8},
    )
    assert r.options["batch_size"] == 256 and r.options["keep_rule"] == "layer"
    assert [x.method for x in c.runs if x.label == "random-init"] == ["random", "random"]
    assert load_config(write_config(tmp_path)).runs[3].key == c.runs[3].key  # stable across reads
    # all_methods adds every registered searcher not listed, with its defaults.
    every = parse_config(
        {"budget": "10evals", "all_methods": True, "methods": {"hill": {"rounds": 2}}}
    )
    assert {r.method for r in every.runs} == set(SEARCHERS)
    assert every.runs[0].arch == "*-256-256-*"
    # Without a [search] batch_size each method runs at its preferred size, part of its key.
    sizes = {r.method: r.options["batch_size"] for r in every.runs}
    assert sizes["nes"] == sizes["ga"] == 256 and sizes["hill"] == sizes["accumulate"] == 1024
    explicit = parse_config(
        {"budget": "10evals", "methods": {"nes": {}}, "search": {"batch_size": 1024}}
    )
    assert explicit.runs[0].options["batch_size"] == 1024
    with pytest.raises(PrunetrainError, match="'auto'"):
        parse_config({"budget": "10evals", "methods": {"nes": {}}, "search": {"batch_size": "big"}})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('budget = "10evals"\nmethods = {nope = {}}', "unknown method"),
        ('budget = "10evals"\nmethods = {hill = {tenure = 3}}', "takes no option"),
        ('budget = "10evals"\nbaselines = {dense = {epochs = -2}}', "epochs"),
        ('budget = "10evals"\nbaselines = {dense = {}}\ncolour = 1', "unknown key"),
        ("methods = {hill = {}}", "budget"),
        ('budget = "10evals"', "no \\[methods"),
        ('budget = "10evals"\nmethods = {random = {}}\nbaselines = {random = {}}', "random-init"),
        ('budget = "10evals"\nkeeps = [1.5]\nmethods = {hill = {}}', "keep"),
        ('budget = "10evals"\narchs = ["64-x"]\nmethods = {hill = {}}', "architecture"),
        ("budget = ", "not valid TOML"),
    ],
)
def test_config_errors(tmp_path, text, message):
    with pytest.raises(PrunetrainError, match=message):
        load_config(write_config(tmp_path, text, "bad.toml"))


def test_compare_writes_results_summary_plots_and_resumes(tmp_path, capsys):
    config = write_config(tmp_path)
    out = tmp_path / "a"
    code, stdout, _ = cli(capsys, "compare", config, "--out", out)
    assert code == 0, stdout
    assert "10 runs done, 0 skipped" in stdout
    assert {"results.jsonl", "summary.md", "summary.json"} <= {p.name for p in out.iterdir()}
    for plot in ("test_vs_time.png", "test_vs_evaluations.png", "final_accuracy.png"):
        assert (out / plot).stat().st_size > 1000
    lines = (out / "results.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 10 and all(r["history"] for r in records)
    search = next(r for r in records if r["kind"] == "search")
    assert search["history"][-1]["test_accuracy"] == search["test_accuracy"]
    assert all("test_accuracy" in row for row in search["history"])
    summary = (out / "summary.md").read_text()
    for label in ("random", "hill", "edge-popup", "dense", "random-init"):
        assert f"| {label} |" in summary
    assert "95 % confidence" in summary and "60evals" in summary
    # Rerun: nothing to do, results untouched.
    code, stdout, _ = cli(capsys, "compare", config, "--out", out)
    assert code == 0 and "0 runs done, 10 skipped" in stdout
    assert (out / "results.jsonl").read_text().splitlines() == lines
    # Another run of the same config gives the same results (evaluation budgets).
    again = run_comparison(config, tmp_path / "b", echo=None, report=False)
    assert [stable(r) for r in again.records] == [stable(r) for r in records]


def test_dask_scheduler_gives_the_same_summary_as_local_processes(tmp_path, capsys):
    distributed = pytest.importorskip("dask.distributed")
    config = write_config(tmp_path)
    code, _, err = cli(capsys, "compare", config, "--jobs", "2", "--out", tmp_path / "local", "-q")
    assert code == 0, err
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        protocol="tcp://",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        code, stdout, err = cli(
            capsys,
            "compare",
            config,
            "--scheduler",
            cluster.scheduler_address,
            "--out",
            tmp_path / "dask",
            "-q",
        )
    assert code == 0, err
    assert "10 runs done" in stdout

    def numbers(folder):
        summary = json.loads((folder / "summary.json").read_text())
        return [
            (m["label"], m["test_values"], m["val_mean"], m["evaluations_mean"], m["keep_mean"])
            for group in summary["groups"]
            for m in group["methods"]
        ]

    assert numbers(tmp_path / "local") == numbers(tmp_path / "dask")
    local = read_results(tmp_path / "local" / "results.jsonl")
    remote = read_results(tmp_path / "dask" / "results.jsonl")
    assert {k: stable(v) for k, v in local.items()} == {k: stable(v) for k, v in remote.items()}


def test_killed_compare_resumes_with_only_the_missing_runs(tmp_path, capsys):
    config = write_config(tmp_path, TINY.replace('"60evals"', '"400evals"'))
    out = tmp_path / "out"
    results = out / "results.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "prunetrain", "compare", str(config), "--out", str(out), "-q"],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if results.is_file() and results.read_text().count("\n") >= 1:
                break
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the whole group: this process and its workers
        process.wait()
    before = read_results(results)
    assert 1 <= len(before) < 10, "the comparison was not interrupted midway"
    with results.open("a") as f:
        f.write('{"key": "cut off in the midd')  # as if killed while writing a line
    code, stdout, err = cli(capsys, "compare", config, "--out", out)
    assert code == 0
    assert f"{len(before)} already in" in err and f"{10 - len(before)} to run" in err
    assert f"{10 - len(before)} runs done, {len(before)} skipped" in stdout
    after = read_results(results)
    assert len(after) == 10 and len(results.read_text().splitlines()) == 10
    assert all(after[k] == v for k, v in before.items())  # finished runs were not redone


def test_compare_cli_errors(tmp_path, capsys):
    code, _, err = cli(capsys, "compare", tmp_path / "missing.toml")
    assert code == 2 and "no config file" in err
    bad = write_config(tmp_path, 'budget = "10evals"\nmethods = {nope = {}}', "bad.toml")
    code, _, err = cli(capsys, "compare", bad, "--out", tmp_path / "o")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "unknown method" in err
    code, _, err = cli(
        capsys, "compare", write_config(tmp_path), "--jobs", "0", "--out", tmp_path / "o"
    )
    assert code == 2 and "--jobs" in err
    assert not (tmp_path / "o" / "results.jsonl").exists()
