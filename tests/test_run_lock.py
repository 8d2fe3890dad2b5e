"""One run at a time in a run folder (issue 28, section 6).

Two ``prunetrain search`` processes started together on one ``--out`` both exited 0, one
silently replacing the other's finished run. A run now holds the folder's lock from before
its first file to after its last; another process is refused at once, in one line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prunetrain.cli import main
from prunetrain.errors import BusyFolderError
from prunetrain.files import LOCK_NAME, folder_lock

SEARCH = ["search", "--dataset", "digits", "--arch", "64-10-10", "--method", "hill"]
SEARCH += ["--budget", "50evals", "-q"]
BASELINE = ["baseline", "--dataset", "digits", "--arch", "64-10-10", "--method", "random", "-q"]
OUTPUTS = {"ticket.npz", "result.json", "curve.csv", "curve.png"}


def cli(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return e.value.code, out, err


HOLD = """
import sys, time
from prunetrain.files import folder_lock
with folder_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def held(tmp_path):
    """``held(folder)``: another process holds ``folder``'s lock until the test ends."""
    processes = []

    def hold(folder: Path) -> subprocess.Popen:
        folder.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True
        )
        processes.append(process)
        assert process.stdout.readline().strip() == "held"
        return process

    yield hold
    for process in processes:
        process.kill()
        process.wait()


def test_a_folder_another_process_writes_into_is_refused_at_once(tmp_path, capsys, held):
    out = tmp_path / "a"
    holder = held(out)
    for args in (SEARCH, BASELINE):
        code, _, err = cli(capsys, *args, "--out", out)
        assert code == 2 and err.count("\n") == 1, err
        assert f"another prunetrain run is writing into {out} (pid {holder.pid})" in err
        assert {p.name for p in out.iterdir()} == {LOCK_NAME}  # the holder's, untouched


def test_resume_takes_the_same_lock(tmp_path, capsys, held):
    out = tmp_path / "a"
    holder = held(out)
    code, _, err = cli(capsys, "search", "--resume", out)
    assert code == 2 and f"writing into {out} (pid {holder.pid})" in err


def test_the_lock_is_released_when_its_holder_is_killed(tmp_path, capsys, held):
    out = tmp_path / "a"
    holder = held(out)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    code, _, err = cli(capsys, *SEARCH, "--out", out)
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == OUTPUTS  # the dead holder's lock file is gone too


def test_a_default_folder_being_written_is_passed_over_for_the_next(
    tmp_path, capsys, monkeypatch, held
):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, *SEARCH)
    assert code == 0, err
    (first,) = Path("runs").iterdir()
    for path in first.iterdir():  # as if a run of the same config were still writing it
        path.unlink()
    held(first)
    code, _, err = cli(capsys, *SEARCH)
    assert code == 0, err
    assert OUTPUTS <= {p.name for p in Path("runs", f"{first.name}-2").iterdir()}
    assert {p.name for p in first.iterdir()} == {LOCK_NAME}


def test_folder_lock_is_reentrant_in_a_process_and_leaves_no_file(tmp_path):
    with folder_lock(tmp_path):
        with folder_lock(tmp_path):
            assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()}\n"
        assert (tmp_path / LOCK_NAME).exists()
    assert list(tmp_path.iterdir()) == []


def test_folder_lock_refuses_without_waiting(tmp_path, held):
    holder = held(tmp_path / "a")
    start = time.perf_counter()
    with pytest.raises(BusyFolderError, match=rf"writing into .*a \(pid {holder.pid}\)"):
        with folder_lock(tmp_path / "a"):
            pass
    assert time.perf_counter() - start < 1


# --- two real processes started together ----------------------------------------------------

RACER = """
import io, json, sys, time
from pathlib import Path
from prunetrain.cli import main

root, trials, args = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
print("ready", flush=True)
for trial in range(trials):
    while not (root / f"go{trial}").exists():
        time.sleep(0.0005)
    sys.stderr = io.StringIO()
    try:
        main([*args, "--out", str(root / f"run{trial}")])
        code = 0
    except SystemExit as e:
        code = e.code
    err, sys.stderr = sys.stderr.getvalue(), sys.__stderr__
    print(json.dumps({"trial": trial, "code": code, "err": err}), flush=True)
"""


def test_two_searches_started_together_on_one_out_one_wins_the_other_is_refused(tmp_path):
    trials = 3
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(tmp_path), str(trials), *SEARCH],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for racer in racers:
            assert racer.stdout.readline().strip() == "ready"
        for trial in range(trials):
            (tmp_path / f"go{trial}").touch()
            outcomes = [json.loads(racer.stdout.readline()) for racer in racers]
            codes = sorted(o["code"] for o in outcomes)
            assert codes == [0, 2], outcomes
            (refused,) = [o["err"] for o in outcomes if o["code"] == 2]
            assert refused.count("\n") == 1, refused
            assert (
                "another prunetrain run is writing into" in refused
                or "already holds a finished run" in refused
            ), refused
            run = tmp_path / f"run{trial}"
            assert {p.name for p in run.iterdir()} == OUTPUTS
            json.loads((run / "result.json").read_text())
    finally:
        for racer in racers:
            racer.kill()
            racer.wait()
