import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from prunetrain.cli import main
from prunetrain.provenance import command_line
from prunetrain.ticket import Ticket


def cli(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out, err = capsys.readouterr()
    return e.value.code, out, err


def test_search_then_evaluate_reproduces_test_accuracy(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = cli(
        capsys,
        "search",
        "--dataset",
        "digits",
        "--method",
        "random",
        "--budget",
        "300evals",
        "--out",
        str(out),
        "--arch",
        "64-32-10",
    )
    assert code == 0
    assert "random on digits" in stdout and "test" in stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "curve.csv",
        "curve.png",
        "result.json",
        "ticket.npz",
    ]
    record = json.loads((out / "result.json").read_text())
    assert record["config"]["arch"] == "64-32-10" and record["evaluations"] >= 300
    assert {"prunetrain", "numpy", "python"} <= set(record["versions"])
    provenance = record["provenance"]
    assert provenance["command"] == command_line()  # this process's (pytest's) command line
    assert provenance["machine"]["cpu"] and provenance["machine"]["blas"][0]["architecture"]
    assert provenance["created_utc"].endswith("Z")
    code, stdout, _ = cli(
        capsys, "evaluate", str(out / "ticket.npz"), "--dataset", "digits", "--json"
    )
    assert code == 0
    metrics = json.loads(stdout)["metrics"]
    # Exactly: both are the NumPy reference on one BLAS thread, on this machine.
    assert metrics["test"]["accuracy"] == record["test_accuracy"]
    assert metrics["train"]["loss"] == record["metrics"]["train"]["loss"]
    # The dataset defaults to the ticket's own.
    code, stdout, _ = cli(capsys, "evaluate", str(out / "ticket.npz"), "--split", "test")
    assert code == 0 and "test" in stdout and "train" not in stdout


def test_evaluation_budget_gives_byte_identical_masks(tmp_path, capsys):
    for name in ("a", "b"):
        code, _, _ = cli(
            capsys,
            "search",
            "--budget",
            "200evals",
            "--arch",
            "64-16-10",
            "--seed",
            "7",
            "--out",
            str(tmp_path / name),
            "-q",
        )
        assert code == 0
    a, b = (Ticket.load(tmp_path / n / "ticket.npz") for n in "ab")
    for x, y in zip(a.mask, b.mask):
        np.testing.assert_array_equal(x, y)


def test_time_budget_rerun_with_its_evaluation_count(tmp_path, capsys):
    """A searcher whose steps do not follow the budget's clock (not probe, anneal, pipeline)."""
    common = ("--arch", "64-16-10", "--method", "accumulate", "-q")
    cli(capsys, "search", "--budget", "1s", "--out", str(tmp_path / "t"), *common)
    evals = json.loads((tmp_path / "t" / "result.json").read_text())["evaluations"]
    cli(capsys, "search", "--budget", f"{int(evals)}evals", "--out", str(tmp_path / "e"), *common)
    a, b = (Ticket.load(tmp_path / n / "ticket.npz") for n in "te")
    for x, y in zip(a.mask, b.mask):
        np.testing.assert_array_equal(x, y)


def test_resume_from_a_ticket(tmp_path, capsys):
    cli(
        capsys,
        "search",
        "--budget",
        "50evals",
        "--arch",
        "64-16-10",
        "--out",
        str(tmp_path / "a"),
        "-q",
    )
    code, _, err = cli(
        capsys,
        "search",
        "--budget",
        "50evals",
        "--arch",
        "64-16-10",
        "--init-mask",
        str(tmp_path / "a" / "ticket.npz"),
        "--out",
        str(tmp_path / "b"),
        "-q",
    )
    assert code == 0, err
    first = json.loads((tmp_path / "a" / "result.json").read_text())
    second = json.loads((tmp_path / "b" / "result.json").read_text())
    # The resumed search starts from the saved mask, so it starts at its validation score.
    assert second["history"][0]["val_accuracy"] == first["val_accuracy"]


def test_hebbian_initialisation_then_the_method(tmp_path, capsys):
    code, _, err = cli(
        capsys,
        "search",
        "--budget",
        "60evals",
        "--arch",
        "64-16-10",
        "--method",
        "hill",
        "--init-mask",
        "hebbian-label",
        "--init-share",
        "0.5",
        "--out",
        str(tmp_path / "a"),
        "-q",
    )
    assert code == 0, err
    config = json.loads((tmp_path / "a" / "result.json").read_text())["config"]
    assert config["method"] == "hill" and config["init_mask"] == "hebbian-label"
    assert config["init_share"] == 0.5
    params = config["method_params"]
    assert params["first"]["method"] == "hebbian-label" and params["then"]["method"] == "hill"


@pytest.mark.parametrize(
    "args, message",
    [
        (["search", "--keep", "0"], "keep must lie in (0, 1]"),
        (["search", "--keep", "1.5"], "keep must lie in (0, 1]"),
        (["search", "--method", "nope"], "Invalid value for '--method': 'nope' is not one of"),
        (["search", "--dataset", "nope"], "unknown dataset"),
        (["search", "--backend", "tpu"], "Invalid value for '--backend': 'tpu' is not one of"),
        (["search", "--init", "xavier"], "Invalid value for '--init': 'xavier' is not one of"),
        (["search", "--arch", "64-x-10"], "bad architecture"),
        (["search", "--arch", "60-32-10"], "takes 60 inputs"),
        (["search", "--arch", "64-32-3"], "has 3 outputs"),
        (["search", "--budget", "ten"], "bad budget"),
        (
            ["search", "--keep-rule", "neuron"],
            "Invalid value for '--keep-rule': 'neuron' is not one of",
        ),
        (["search", "-p", "population"], "expected NAME=VALUE"),
        (["search", "-p", "population=3"], "takes no option population"),
        (["search", "--seed", "-1"], "seed must be"),
        (["search", "--init-mask", "nope"], "neither a ticket file nor a method"),
        (["search", "--init-mask", "hebbian", "--init-share", "1"], "init share must be in (0, 1)"),
        (["search", "--keep", "abc"], "'abc' is not a valid float"),
        (["search", "--no-such-option"], "No such option"),
        (["frobnicate"], "No such command"),
        (["evaluate"], "Missing argument"),
    ],
)
def test_user_errors_print_one_line_exit_2_write_nothing(
    tmp_path, capsys, monkeypatch, args, message
):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    extra = ["--out", str(out)] if args[0] == "search" else []
    code, stdout, err = cli(capsys, *args, *extra)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("prunetrain: error: ")
    assert message in err
    assert "Traceback" not in err + stdout
    assert list(tmp_path.iterdir()) == []  # nothing written, not even runs/


def test_bad_tickets_and_data(tmp_path, capsys):
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really")
    code, _, err = cli(capsys, "evaluate", str(tmp_path / "junk.npz"), "--dataset", "digits")
    assert code == 2 and "damaged" in err and err.count("\n") == 1
    code, _, err = cli(capsys, "evaluate", str(tmp_path / "missing.npz"))
    assert code == 2 and "missing.npz: No such file or directory" in err
    X = np.random.default_rng(0).random((40, 4))
    X[3, 2] = np.nan
    np.savez(tmp_path / "nan.npz", X=X, y=np.arange(40) % 2)
    code, _, err = cli(
        capsys, "search", "--dataset", str(tmp_path / "nan.npz"), "--out", str(tmp_path / "o")
    )
    assert code == 2 and "NaN" in err and not (tmp_path / "o").exists()


def test_ticket_for_another_dataset_is_refused(tmp_path, capsys):
    cli(
        capsys,
        "search",
        "--budget",
        "10evals",
        "--arch",
        "64-16-10",
        "--out",
        str(tmp_path / "a"),
        "-q",
    )
    np.savez(tmp_path / "d.npz", X=np.random.default_rng(0).random((50, 5)), y=np.arange(50) % 2)
    code, _, err = cli(
        capsys, "evaluate", str(tmp_path / "a" / "ticket.npz"), "--dataset", str(tmp_path / "d.npz")
    )
    assert code == 2 and "takes 64 features" in err


def test_methods_and_datasets(capsys):
    code, out, _ = cli(capsys, "methods")
    assert code == 0 and "random" in out and "population=32" in out
    code, out, _ = cli(capsys, "datasets")
    assert code == 0 and "digits" in out and "1293 train" in out


def test_entry_points_run():
    for cmd in (["prunetrain", "--version"], [sys.executable, "-m", "prunetrain", "--help"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "prunetrain", "search", "--keep", "2"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_bench_json(capsys):
    code, out, _ = cli(
        capsys,
        "bench",
        "--arch",
        "16-8-4",
        "--population",
        "3",
        "--batch-size",
        "32",
        "--repeats",
        "1",
        "--backend",
        "numpy",
        "--json",
    )
    assert code == 0
    result = json.loads(out)
    row = result["backends"]["numpy"]
    assert result["gemm_peak_gflops"] > 0 and row["evals_per_second"] > 0
    assert row["ratio_to_peak"] == pytest.approx(row["gflops"] / result["gemm_peak_gflops"])
    code, _, err = cli(capsys, "bench", "--batch-size", "0")
    assert code == 2 and err.count("\n") == 1


def test_ctrl_c_writes_the_best_ticket_so_far(tmp_path):
    import signal
    import threading

    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prunetrain",
            "search",
            "--budget",
            "1h",
            "--arch",
            "64-16-10",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    searching = threading.Event()
    err_chunks = []

    def read_stderr():  # the progress bar shows evaluations once the search loop runs
        while chunk := proc.stderr.read(1):
            err_chunks.append(chunk)
            if "evals=" in "".join(err_chunks[-200:]):
                searching.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    assert searching.wait(timeout=60), "".join(err_chunks)
    proc.send_signal(signal.SIGINT)
    stdout = proc.stdout.read()
    proc.wait(timeout=60)
    reader.join(timeout=10)
    stderr = "".join(err_chunks)
    assert proc.returncode == 130, stderr
    assert "stopped by interrupted" in stdout
    assert f"prunetrain search --resume {out}" in stderr and "Traceback" not in stderr
    record = json.loads((out / "result.json").read_text())
    assert record["stopped_by"] == "interrupted" and record["seconds"] < 60
    assert record["provenance"]["command"].endswith(
        "-m prunetrain search --budget 1h --arch 64-16-10 --out " + shlex.quote(str(out))
    )
    Ticket.load(out / "ticket.npz")
    assert (out / "checkpoint.npz").is_file()


def test_verbose_says_why_auto_passes_over_the_gpu(tmp_path, capsys):
    from prunetrain.backends import CupyBackend

    if CupyBackend.unavailable_reason() is None:
        pytest.skip("a GPU works here: auto uses it and there is nothing to explain")
    code, _, err = cli(
        capsys,
        "search",
        "--verbose",
        "-q",
        "--budget",
        "5evals",
        "--arch",
        "64-8-10",
        "--out",
        str(tmp_path / "v"),
    )
    assert code == 0
    assert err.startswith("backend auto: GPU backend 'cupy' not used (") and "using 'numba'" in err


def test_search_defaults_to_the_project_default_method(tmp_path, capsys):
    from prunetrain.search import DEFAULT_METHOD

    code, _, _ = cli(
        capsys,
        "search",
        "-q",
        "--budget",
        "5evals",
        "--arch",
        "64-8-10",
        "--out",
        str(tmp_path / "d"),
    )
    assert code == 0
    assert (
        json.loads((tmp_path / "d" / "result.json").read_text())["method"]
        == DEFAULT_METHOD
        == "probe"
    )


@pytest.mark.parametrize(
    ("method", "extra", "batch", "schedule"),
    [
        ("ga", [], 256, "rotate"),  # the evolutionary family was tuned at 256
        ("nes", [], 256, "rotate"),
        ("accumulate", [], 1024, "rotate"),
        ("probe", [], 256, "rotate"),
        ("nes", ["--batch-size", "512"], 512, "rotate"),  # an explicit size wins
        ("nes", ["--batch-size", "0"], None, "full"),  # 0: the whole training set
    ],
)
def test_batch_size_defaults_to_the_methods_preference(
    tmp_path, capsys, method, extra, batch, schedule
):
    out = tmp_path / "d"
    code, _, err = cli(
        capsys, "search", "-q", "--method", method, "--budget", "5evals", "--arch", "64-8-10",
        *extra, "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    config = json.loads((out / "result.json").read_text())["config"]
    assert config["schedule"] == schedule
    if batch is not None:
        assert config["batch_size"] == batch


@pytest.mark.parametrize("method", ["hebbian-reward", "evolution", "pipeline"])
def test_search_writes_strict_json_for_every_kind_of_default(tmp_path, capsys, method):
    # hebbian-reward once defaulted to epochs=inf, which result.json (strict JSON) cannot hold.
    out = tmp_path / method
    args = ["search", "-q", "--method", method, "--budget", "40evals", "--arch", "64-8-10"]
    code, _, err = cli(capsys, *args, "--out", str(out))
    assert code == 0, err
    record = json.loads((out / "result.json").read_text())
    assert record["method"] == method and record["evaluations"] >= 40


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seed", "9223372036854775808"], "seed must be an integer in [0, 2**63 - 1]"),
        (["--network-seed", "9223372036854775808"], "seed must be"),
        (["--budget", "1e400evals"], "budget"),
        (["--budget", "1e400s"], "budget"),
    ],
)
def test_out_of_range_values_are_refused_before_any_work(
    tmp_path, capsys, monkeypatch, args, message
):
    import prunetrain.runs  # where a run loads its data

    def no_work(*args, **kwargs):
        raise AssertionError("the search began before its options were checked")

    monkeypatch.setattr(prunetrain.runs, "load_dataset", no_work)
    code, stdout, err = cli(capsys, "search", *args, "--out", str(tmp_path / "o"), "-q")
    assert code == 2 and err.count("\n") == 1 and message in err
    assert not (tmp_path / "o").exists()


def test_unwritable_out_is_refused_before_the_search(tmp_path, capsys, monkeypatch):
    import prunetrain.runs  # where a run loads its data

    def no_work(*args, **kwargs):
        raise AssertionError("the search began before --out was checked")

    monkeypatch.setattr(prunetrain.runs, "load_dataset", no_work)
    (tmp_path / "file").write_text("x")
    outs = {tmp_path / "file" / "run": "not a folder", Path("/proc/nope/run"): "cannot write"}
    if os.geteuid() != 0:  # root writes into read-only folders
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        outs[locked / "run"] = "cannot write"
    for out, message in outs.items():
        for command in ("search", "baseline"):
            code, stdout, err = cli(capsys, command, "--out", str(out), "-q")
            assert code == 2 and err.count("\n") == 1 and message in err, err
            assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"] + (
        ["locked"] if os.geteuid() != 0 else []
    )


def test_extreme_features_search_writes_every_output(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.random((80, 5))
    X[:, 0] = np.where(rng.random(80) < 0.5, -1e308, 1e308)
    np.savez(tmp_path / "wide.npz", X=X, y=np.arange(80) % 2)
    out = tmp_path / "run"
    code, _, err = cli(
        capsys, "search", "--dataset", str(tmp_path / "wide.npz"), "--budget", "30evals",
        "--method", "random", "--out", str(out), "-q",
    )  # fmt: skip
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == OUTPUTS
    assert np.isfinite(json.loads((out / "result.json").read_text())["metrics"]["train"]["loss"])


OUTPUTS = ["curve.csv", "curve.png", "result.json", "ticket.npz"]


def test_outputs_are_written_as_a_unit(tmp_path, capsys, monkeypatch):
    import prunetrain.runs

    args = ["search", "--budget", "20evals", "--arch", "64-8-10", "--method", "random", "-q"]
    fresh, kept = tmp_path / "fresh", tmp_path / "kept"
    assert cli(capsys, *args, "--out", str(kept), "--seed", "1")[0] == 0
    before = {p.name: p.read_bytes() for p in kept.iterdir()}
    record = prunetrain.runs.SearchRun.record
    # result.json cannot be written (NaN is not JSON), as with overflowed features before.
    monkeypatch.setattr(
        prunetrain.runs.SearchRun, "record", lambda self: {**record(self), "x": float("nan")}
    )
    # kept holds a finished run: only --force may replace it, and a failed write keeps it whole.
    for out, force in ((fresh, []), (kept, ["--force"])):
        with pytest.raises(ValueError, match="JSON"):
            main([*args, "--out", str(out), *force])
    # No ticket.npz alone, and no checkpoint: a failed run leaves nothing (issue 28).
    assert not fresh.exists()
    after = {p.name: p.read_bytes() for p in kept.iterdir()}
    assert after == before  # the old set, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]  # no staging left


def test_interrupted_search_exits_130_and_resume_gives_the_uninterrupted_ticket(
    tmp_path, capsys, monkeypatch
):
    """The issue's case: ga interrupted at 160 of 320 evaluations, then resumed."""
    from prunetrain.problem import Problem

    args = ["search", "--method", "ga", "--budget", "320evals", "--arch", "64-16-10", "-q"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert cli(capsys, *args, "--out", str(whole))[0] == 0
    assert not (whole / "checkpoint.npz").exists()  # a finished search keeps no checkpoint

    next_batch = Problem.next_batch

    def ctrl_c_at_160(self):
        if self.n_evaluations >= 160:
            monkeypatch.setattr(Problem, "next_batch", next_batch)
            signal.raise_signal(signal.SIGINT)  # the real thing, in the middle of a step
        return next_batch(self)

    monkeypatch.setattr(Problem, "next_batch", ctrl_c_at_160)
    code, _, err = cli(capsys, *args, "--out", str(cut))
    assert code == 130 and f"prunetrain search --resume {cut}" in err
    record = json.loads((cut / "result.json").read_text())
    assert record["stopped_by"] == "interrupted" and 160 <= record["evaluations"] < 320
    assert sorted(p.name for p in cut.iterdir()) == sorted([*OUTPUTS, "checkpoint.npz"])

    code, _, err = cli(capsys, "search", "--resume", str(cut), "--budget", "10evals")
    assert code == 2 and "drop --budget" in err
    code, _, err = cli(capsys, "search", "--resume", str(cut), "-q")
    assert code == 0, err
    assert (cut / "ticket.npz").read_bytes() == (whole / "ticket.npz").read_bytes()
    resumed = json.loads((cut / "result.json").read_text())
    first = json.loads((whole / "result.json").read_text())
    assert resumed["evaluations"] == first["evaluations"] and resumed["stopped_by"] == "budget"
    assert [r["val_accuracy"] for r in resumed["history"]] == [
        r["val_accuracy"] for r in first["history"]
    ]
    assert sorted(p.name for p in cut.iterdir()) == OUTPUTS
    code, _, err = cli(capsys, "search", "--resume", str(cut))
    assert code == 2 and "no checkpoint" in err
