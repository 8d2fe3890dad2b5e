import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from prunetrain.cli import main
from prunetrain.errors import PrunetrainError
from prunetrain.experiments import load_config, parse_config, read_results, run_comparison
from prunetrain.provenance import command_line
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

# Results that must agree between executors for evaluation budgets (not timings, not where
# and when they ran).
TIMING = {"seconds", "compile_seconds", "versions", "provenance", "history"}


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


def test_run_key_covers_the_prunetrain_version(tmp_path, monkeypatch):
    from prunetrain import _version

    run = load_config(write_config(tmp_path)).runs[0]
    key = run.key
    monkeypatch.setattr(_version, "__version__", "99.0")
    assert run.key != key  # another prunetrain reruns every run


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
        ('budget = "1e400evals"\nmethods = {hill = {}}', "budget"),
        ('budget = "1e400s"\nmethods = {hill = {}}', "budget"),
        ('budget = "10evals"\nseeds = [-1]\nmethods = {hill = {}}', "seed"),
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
    # The rerun line quotes the command that ran, and the budget overshoot is reported.
    assert f"`prunetrain compare {config} --jobs 1 --out {out}`" in summary
    for r in records:
        if r["kind"] == "search":
            assert r["budget_overshoot"] == r["evaluations"] - 60 < r["last_step"]
    assert "over budget" in summary and "less than its last step" in summary
    assert (out / "report.html").stat().st_size > 10_000
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
    local_summary = (tmp_path / "local" / "summary.md").read_text()
    assert f"--jobs 2 --out {tmp_path / 'local'}`" in local_summary
    dask_summary = (tmp_path / "dask" / "summary.md").read_text()
    assert f"--scheduler {cluster.scheduler_address} --out" in dask_summary

    def numbers(folder):
        summary = json.loads((folder / "summary.json").read_text())
        return [
            (m["label"], m["test_values"], m["val_mean"], m["evaluations_mean"], m["keep_mean"])
            for group in summary["groups"]
            for m in group["methods"]
        ]

    # Exactly, baselines too: every run computes on one BLAS thread, and the Numba backend
    # splits its work by this machine's cores, not by the worker's threads.
    assert numbers(tmp_path / "local") == numbers(tmp_path / "dask")
    local = read_results(tmp_path / "local" / "results.jsonl")
    remote = read_results(tmp_path / "dask" / "results.jsonl")
    assert {k: stable(v) for k, v in local.items()} == {k: stable(v) for k, v in remote.items()}
    # Each record names the command that ran the comparison, not a worker's.
    assert {r["provenance"]["command"] for r in local.values()} == {command_line()}


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
    # The library names its parameter (issue 30: no CLI flag in a library error).
    assert err == "prunetrain: error: jobs must be a whole number of at least 1, got 0\n"
    assert code == 2 and not (tmp_path / "o").exists()


@pytest.mark.parametrize("jobs", [0, -1, True, 1.5, "2"])
def test_run_comparison_checks_jobs_once_where_it_enters(tmp_path, jobs):
    with pytest.raises(
        PrunetrainError, match=f"jobs must be a whole number of at least 1, got {jobs!r}"
    ):
        run_comparison(write_config(tmp_path), tmp_path / "o", jobs=jobs)
    assert not (tmp_path / "o").exists()


# --- faults: Ctrl-C, concurrent writers, orphaned workers, checks before work -------------

SLOW = """
datasets = ["digits"]
hidden = [[32]]
seeds = [0, 1, 2]
budget = "1s"
[search]
backend = "numpy"
[methods.random]
"""


def children(pid: int) -> list[int]:
    """Pids of the live processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for a reaper does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start_compare(config, out, *args):
    return subprocess.Popen(
        [sys.executable, "-m", "prunetrain", "compare", str(config), "--out", str(out), *args],
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_records(process, results, n, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if results.is_file() and len(read_results(results)) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {n} record(s) in time: {process.poll()}")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize(
    "jobs, signum, code",
    [
        ("1", signal.SIGINT, 130),
        ("2", signal.SIGINT, 130),
        ("1", signal.SIGTERM, 143),  # what a scheduler sends before it kills the job
        ("2", signal.SIGTERM, 143),
        ("2", signal.SIGHUP, 129),  # the terminal closed
    ],
)
def test_ctrl_c_stops_compare_records_only_complete_runs_and_a_rerun_completes(
    tmp_path, capsys, jobs, signum, code
):
    config = write_config(tmp_path, SLOW, "slow.toml")
    out = tmp_path / "out"
    results = out / "results.jsonl"
    process = start_compare(config, out, "--jobs", jobs)
    try:
        wait_for_records(process, results, 1)
        workers = children(process.pid)
        time.sleep(0.3)  # into the next run(s)
        os.killpg(process.pid, signum)  # what Ctrl-C at a terminal does (to the whole group)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr and f"interrupted ({signal.Signals(signum).name})" in stderr
    before = read_results(results)
    assert 1 <= len(before) < 3
    assert all(r["stopped_by"] == "budget" and r["seconds"] >= 1 for r in before.values())
    deadline = time.monotonic() + 10
    while any(map(alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(alive, workers)), "worker processes outlived compare"
    code, stdout, _ = cli(capsys, "compare", config, "--out", out)
    assert code == 0 and f"{3 - len(before)} runs done, {len(before)} skipped" in stdout
    after = read_results(results)
    assert len(after) == 3 and all(r["stopped_by"] == "budget" for r in after.values())
    assert all(after[k] == v for k, v in before.items())


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_workers_exit_when_compare_is_killed(tmp_path):
    config = write_config(tmp_path, SLOW.replace('"1s"', '"30s"'), "slow.toml")
    process = start_compare(config, tmp_path / "out", "--jobs", "2", "-q")
    try:
        deadline = time.monotonic() + 60
        workers = []
        while len(workers) < 2 and time.monotonic() < deadline:
            workers = [
                pid
                for pid in children(process.pid)
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
            ]
            time.sleep(0.1)
        assert len(workers) == 2, "the workers did not start"
        time.sleep(1.0)  # the workers are importing or running
    finally:
        process.kill()  # SIGKILL to the parent alone: no chance to clean up
        process.wait()
    deadline = time.monotonic() + 10
    while any(map(alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in workers if alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, "worker processes outlived their killed parent"


def test_in_process_interrupt_records_only_complete_runs(tmp_path, monkeypatch):
    """--jobs 1 runs in this process: the cut-short run must not be recorded as finished."""
    from prunetrain.problem import Problem

    config = write_config(tmp_path, SLOW.replace('"1s"', '"40evals"'), "evals.toml")
    next_batch, batches = Problem.next_batch, []

    def ctrl_c_in_the_second_run(self):
        batches.append(self)
        if len({id(p) for p in batches}) == 2 and self.n_evaluations >= 20:
            monkeypatch.setattr(Problem, "next_batch", next_batch)
            signal.raise_signal(signal.SIGINT)
        return next_batch(self)

    monkeypatch.setattr(Problem, "next_batch", ctrl_c_in_the_second_run)
    with pytest.raises(KeyboardInterrupt):
        run_comparison(config, tmp_path / "out", echo=None)
    records = read_results(tmp_path / "out" / "results.jsonl")
    assert len(records) == 1 and next(iter(records.values()))["stopped_by"] == "budget"


def test_two_writers_on_one_out_lose_no_record(tmp_path):
    a = write_config(tmp_path, TINY.replace("seeds = [0, 1]", "seeds = [0]"), "a.toml")
    b_text = 'budget = "30evals"\narchs = ["64-8-10"]\n[methods.random]\npopulation = 4\n'
    b = write_config(tmp_path, b_text, "b.toml")
    out = tmp_path / "out"
    ran_b = []

    def echo(line):  # B runs to its end while A is between two of its runs
        if "[1/" in line and not ran_b:
            ran_b.append(run_comparison(b, out, echo=None, report=False))

    first = run_comparison(a, out, echo=echo, report=False)
    assert ran_b and len(ran_b[0].ran) == 1
    records = read_results(out / "results.jsonl")
    assert ran_b[0].ran[0] in records  # B's record survived A's final rewrite
    assert set(first.ran) <= set(records) and len(records) == len(first.ran) + 1
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == len(records)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('budget = "10evals"\nsearch = 5\nmethods = {hill = {}}', "search"),
        ('budget = "10evals"\nmethods = 5', "methods"),
        ('budget = "10evals"\nbaselines = 5\nmethods = {hill = {}}', "baselines"),
        ('budget = "10evals"\ndata_dir = 5\nmethods = {hill = {}}', "data_dir"),
        ('budget = "10evals"\nhidden = [[true]]\nmethods = {hill = {}}', "hidden"),
        ('budget = "10evals"\nhidden = [[16, -5]]\nmethods = {hill = {}}', "hidden"),
        ('budget = "10evals"\nhidden = [[-5]]\nmethods = {hill = {}}', "hidden"),
        ('budget = "10evals"\nhidden = [["16"]]\nmethods = {hill = {}}', "hidden"),
        ('budget = "10evals"\narchs = ["*-16--5-*"]\nmethods = {hill = {}}', "architecture"),
        ('budget = "10evals"\narchs = [5]\nmethods = {hill = {}}', "archs"),
        ('budget = "10evals"\ninit = "xavier"\nmethods = {hill = {}}', "init"),
        ('budget = "10evals"\nscale = 2\nmethods = {hill = {}}', "scale"),
        ('budget = "10evals"\nkeep_rule = "neuron"\nmethods = {hill = {}}', "keep rule"),
        ('budget = "10evals"\nsearch = {backend = "tpu"}\nmethods = {hill = {}}', "backend"),
        ('budget = "10evals"\nsearch = {schedule = "x"}\nmethods = {hill = {}}', "schedule"),
        ('budget = "10evals"\nsearch = {patience = 0}\nmethods = {hill = {}}', "patience"),
        ('budget = "10evals"\nsearch = {batch_size = -3}\nmethods = {hill = {}}', "batch size"),
        ('budget = "10evals"\nsearch = {batch_size = true}\nmethods = {hill = {}}', "batch size"),
        ('budget = "10evals"\nmethods = {hill = {rounds = -1}}', "rounds"),
        ('budget = "10evals"\nmethods = {ga = {population = 0}}', "population"),
        ('budget = "10evals"\nmethods = {pbil = {elite = 99}}', "elite"),
        ('budget = "10evals"\nmethods = {x = {method = 5}}', "method"),
        ('budget = "10evals"\nmethods = {hill = 5}', "table"),
        ('budget = "10evals"\nseeds = [0, 1, 0]\nmethods = {hill = {}}', "seed 0 twice"),
        ('budget = "10evals"\nseeds = [true]\nmethods = {hill = {}}', "seed"),
        ('budget = "10evals"\nkeeps = ["0.5"]\nmethods = {hill = {}}', "keep"),
        ('budget = "10evals"\ndatasets = [5]\nmethods = {hill = {}}', "datasets"),
        ('budget = "10evals"\nall_methods = "yes"\nmethods = {hill = {}}', "all_methods"),
        ('budget = "10evals"\nname = "../../../x"\nmethods = {hill = {}}', "file name"),
        ('budget = "10evals"\nname = "a/b"\nmethods = {hill = {}}', "file name"),
        ('budget = "10evals"\nname = ".."\nmethods = {hill = {}}', "file name"),
        ('budget = "10evals"\nname = 5\nmethods = {hill = {}}', "name"),
        ("budget = 10\nx = " + "[" * 50000 + "]" * 50000, "nested"),
    ],
)
def test_config_type_holes_are_one_line_errors(tmp_path, text, message):
    with pytest.raises(PrunetrainError, match=message) as e:
        load_config(write_config(tmp_path, text, "bad.toml"))
    assert "\n" not in str(e.value)


def test_hidden_only_archs_are_accepted_as_archs(tmp_path):
    c = load_config(
        write_config(
            tmp_path, 'budget = "10evals"\narchs = ["*-16-*", "*-*"]\nmethods = {hill = {}}'
        )
    )
    assert [r.arch for r in c.runs] == ["*-16-*", "*-*"]


def test_whole_config_is_checked_before_the_first_run(tmp_path, capsys, monkeypatch):
    import prunetrain.experiments.runner as runner

    def no_run(*args, **kwargs):
        raise AssertionError("a run started before the config was checked")

    monkeypatch.setattr(runner, "execute_run", no_run)
    bad = [
        'budget = "10evals"\nhidden = [[16]]\nmethods = {hill = {}, ga = {population = 0}}',
        'budget = "10evals"\nhidden = [[16]]\nsearch = {backend = "tpu"}\nmethods = {hill = {}}',
    ]
    for text in bad:
        code, stdout, err = cli(
            capsys, "compare", write_config(tmp_path, text, "bad.toml"), "--out", tmp_path / "o"
        )
        assert code == 2 and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


def test_unreachable_scheduler_leaves_no_folder(tmp_path, capsys, monkeypatch):
    pytest.importorskip("dask.distributed")
    import prunetrain.experiments.runner as runner

    monkeypatch.setattr(runner, "SCHEDULER_TIMEOUT", "1s")
    config = write_config(tmp_path)
    for address in ("tcp://127.0.0.1:1", "foo://x"):
        out = tmp_path / "o"
        code, _, err = cli(capsys, "compare", config, "--scheduler", address, "--out", out)
        assert code == 2 and err.count("\n") == 1 and "scheduler" in err, err
        assert not out.exists()


# --- a config's size and its duplicates, before any run (issue 28) -------------------------


def test_archs_naming_one_network_after_expansion_are_refused_up_front(
    tmp_path, capsys, monkeypatch
):
    """`archs = ["*-8-*", "64-8-10"]` ran both and failed only at report time."""
    import prunetrain.experiments.runner as runner

    def no_run(*args, **kwargs):
        raise AssertionError("a run started before the duplicates were found")

    monkeypatch.setattr(runner, "execute_run", no_run)
    text = 'budget = "10evals"\narchs = ["*-8-*", "64-8-10"]\nmethods = {random = {}}'
    out = tmp_path / "o"
    code, _, err = cli(capsys, "compare", write_config(tmp_path, text, "dup.toml"), "--out", out)
    assert code == 2 and err.count("\n") == 1
    assert (
        "archs '*-8-*' and '64-8-10' are the same network 64-8-10 on digits: "
        "each run must be listed once"
    ) in err
    assert not out.exists()


def test_the_size_of_a_comparison_is_counted_and_estimated(tmp_path):
    c = load_config(write_config(tmp_path))
    assert c.size(jobs=1) == (10, 0.0)  # evaluation budgets: no time estimate
    timed = load_config(
        write_config(
            tmp_path,
            'budget = "1h"\nhidden = [[8]]\nseeds = [0, 1, 2, 3]\nmethods = {random = {}, hill = {}}'
            "\nbaselines = {dense = {}}",
            "timed.toml",
        )
    )
    assert timed.size(jobs=2) == (12, 4 * 3600.0)  # 8 searches of 1 h on 2 jobs
    assert timed.describe_size(jobs=2) == ("12 runs; their search budgets alone take 4 h on 2 jobs")
    assert not timed.needs_confirmation(jobs=2)
    assert timed.needs_confirmation(jobs=1) is False  # 8 h
    many = dict(name="many", budget="24h")
    assert parse_config({**many, "methods": {"random": {}}}).needs_confirmation(jobs=1) is False
    assert parse_config({**many, "seeds": [0, 1], "methods": {"random": {}}}).needs_confirmation(
        jobs=1
    )


def test_a_grid_past_the_limit_starts_only_with_yes(tmp_path, capsys, monkeypatch):
    """A grid of 400,000 runs started without a word."""
    import prunetrain.experiments.runner as runner

    seeds = ", ".join(map(str, range(1001)))
    text = f'budget = "10evals"\nhidden = [[8]]\nseeds = [{seeds}]\nmethods = {{random = {{}}}}'
    config = write_config(tmp_path, text, "big.toml")
    out = tmp_path / "o"

    def no_run(*args, **kwargs):
        raise AssertionError("a run started without --yes")

    monkeypatch.setattr(runner, "execute_run", no_run)
    code, _, err = cli(capsys, "compare", config, "--out", out)
    assert code == 2 and err.count("\n") == 1
    assert (
        "1001 runs (time not estimated: evaluation budgets): more than 1000 runs or a day "
        "of search; pass --yes to start it"
    ) in err
    assert not out.exists()
    monkeypatch.undo()
    import prunetrain.experiments.config as config_module

    monkeypatch.setattr(config_module, "CONFIRM_RUNS", 1)
    small = write_config(
        tmp_path, 'budget = "20evals"\nhidden = [[8]]\nseeds = [0, 1]\nmethods = {random = {}}'
    )
    code, _, err = cli(capsys, "compare", small, "--out", out)
    assert code == 2 and "2 runs" in err and "--yes" in err and not out.exists()
    code, _, err = cli(capsys, "compare", small, "--out", out, "--yes")
    assert code == 0, err
    assert err.splitlines()[0].startswith(
        "tiny: 2 runs (time not estimated: evaluation budgets), 0 already in"
    )
    assert len(read_results(out / "results.jsonl")) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'budget = "10evals"\nhidden = [[8]]\nkeeps = [1e-300]\nmethods = {random = {}}',
            "keep 1e-300 leaves layer 2 (8x10, 80 weights) without a weight",
        ),
        (
            'budget = "10evals"\ndatasets = ["wide.npz"]\narchs = ["*-1000000-*"]\n'
            "methods = {random = {}}",
            "bad layer sizes 300-1000000-2: 302000000 weights; at most 268435456",
        ),
    ],
)
def test_networks_and_keeps_are_checked_against_the_data_before_any_run(
    tmp_path, capsys, monkeypatch, text, message
):
    """Hidden sizes fit a network only once the data gives its inputs and classes: each run
    failed on its own. They are checked, with each keep, when the archs are resolved."""
    import prunetrain.experiments.runner as runner

    def no_run(*args, **kwargs):
        raise AssertionError("a run started before its network was checked")

    monkeypatch.setattr(runner, "execute_run", no_run)
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "wide.npz", X=rng.random((20, 300)), y=np.arange(20) % 2)
    out = tmp_path / "o"
    code, _, err = cli(capsys, "compare", write_config(tmp_path, text, "n.toml"), "--out", out)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not out.exists()


# --- baseline recipes in configs (issue 29) ------------------------------------------------

RECIPE_CONFIG = """
budget = "10evals"
datasets = ["digits"]
archs = ["64-16-10"]
[baselines.ep]
method = "edge-popup"
recipe = "hidden-networks"
[baselines.ep-short]
method = "edge-popup"
recipe = "hidden-networks"
epochs = 2
[baselines.dense-converge]
method = "dense"
recipe = "converge"
"""


def test_configs_take_recipes_and_values_given_beside_them_win(tmp_path):
    c = load_config(write_config(tmp_path, RECIPE_CONFIG, "recipes.toml"))
    params = {r.label: r.params for r in c.runs}
    assert params["ep"]["recipe"] == "hidden-networks"
    assert (params["ep"]["epochs"], params["ep"]["weight_decay"]) == (100, 1e-4)
    assert (params["ep-short"]["epochs"], params["ep-short"]["weight_decay"]) == (2, 1e-4)
    assert params["dense-converge"]["patience"] == 10
    # The recipe is part of each run's identity: a run at another recipe is another run.
    keys = {r.label: r.key for r in c.runs}
    assert len(set(keys.values())) == 3


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            'recipe = "fast"',
            "[baselines.b]: unknown recipe 'fast' for baseline 'edge-popup'; "
            "expected one of converge, hidden-networks",
        ),
        ("recipe = 3", "[baselines.b]: unknown recipe 3 for baseline 'edge-popup'"),
        ("patience = 0", "[baselines.b]: patience must be a whole number in [1, 10000], got 0"),
        ("patience = 1e9", "[baselines.b]: patience must be a whole number in [1, 10000]"),
        ('patience = "ten"', "[baselines.b]: patience must be a whole number"),
    ],
)
def test_recipes_and_patience_are_checked_before_any_run(tmp_path, capsys, entry, message):
    text = f'budget = "10evals"\n[baselines.b]\nmethod = "edge-popup"\n{entry}\n'
    with pytest.raises(PrunetrainError) as e:
        load_config(write_config(tmp_path, text, "bad.toml"))
    assert message in str(e.value) and "\n" not in str(e.value)
    code, _, err = cli(capsys, "compare", tmp_path / "bad.toml", "--out", tmp_path / "out")
    assert code == 2 and err.startswith("prunetrain: error:") and message in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["fashion_mnist_recipes", "fashion_mnist_wide_recipes"])
def test_the_committed_recipe_configs_load_and_validate(name):
    """Issue 29's acceptance configs: edge-popup at its recipe and to convergence, dense and
    imp to convergence, beside the short budgets and probe for 10 minutes (not run here)."""
    path = Path(__file__).resolve().parents[2] / "experiments" / "configs" / f"{name}.toml"
    c = load_config(path)
    assert c.name == name and c.budget == "600s"
    arch = {"fashion_mnist_recipes": "784-300-100-10"}.get(name, "784-1000-1000-10")
    assert {(r.dataset, r.arch, r.keep) for r in c.runs} == {("fashion-mnist", arch, 0.5)}
    runs = {}
    for r in c.runs:
        runs.setdefault(r.label, []).append(r)
    assert all(sorted(r.seed for r in rs) == [0, 1, 2] for rs in runs.values())
    recipes = {label: (rs[0].method, rs[0].params.get("recipe")) for label, rs in runs.items()}
    assert recipes == {
        "probe": ("probe", None),
        "edge-popup-hidden-networks": ("edge-popup", "hidden-networks"),
        "edge-popup-converge": ("edge-popup", "converge"),
        "dense-converge": ("dense", "converge"),
        "imp-converge": ("imp", "converge"),
        "edge-popup-10ep": ("edge-popup", None),
        "dense-10ep": ("dense", None),
    }
    assert runs["probe"][0].budget == "600s"
    for label in ("edge-popup-converge", "dense-converge", "imp-converge"):
        assert runs[label][0].params["patience"] == 10
    assert runs["edge-popup-hidden-networks"][0].params["epochs"] == 100
    assert c.report.reference == "edge-popup-hidden-networks"
    # The command to run it is in the file.
    assert f"prunetrain compare experiments/configs/{name}.toml" in path.read_text()


def test_a_comparison_record_names_the_recipe_and_keeps_the_converged_epoch():
    from prunetrain.experiments.runner import execute_run

    c = parse_config(
        {
            "budget": "10evals",
            "archs": ["64-16-10"],
            "baselines": {
                "dense-converge": {
                    "method": "dense",
                    "recipe": "converge",
                    "patience": 2,
                    "lr": 0.05,
                },
            },
        }
    )
    record = execute_run(c.runs[0].to_dict())
    assert record["label"] == "dense-converge" and record["run"]["params"]["recipe"] == "converge"
    assert record["recipe"] == "converge" and record["recipe_overrides"] == ["lr", "patience"]
    assert record["stopped_by"] == "converged"
    history = record["history"]
    best = max(range(len(history)), key=lambda i: (history[i]["val_accuracy"], -i))
    assert history[best]["epoch"] == record["best_epoch"]
    # Each row's test accuracy is the model the run would have returned there: after the best
    # epoch, the best epoch's, which is also the record's.
    assert all(row["test_accuracy"] == history[best]["test_accuracy"] for row in history[best:])
    assert record["test_accuracy"] == history[best]["test_accuracy"]
