"""SIGTERM and SIGHUP stop a search as Ctrl-C does; late signals change nothing."""

import json
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from prunetrain.interrupts import (
    STOPPING,
    Interrupted,
    deferred_interrupt,
    exit_code,
    interrupting,
    signal_of,
)
from prunetrain.ticket import Ticket


def test_exit_codes_are_128_plus_the_signal():
    assert [exit_code(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)] == [130, 143, 129]
    assert signal_of(KeyboardInterrupt()) == signal.SIGINT
    assert signal_of(Interrupted(signal.SIGTERM)) == signal.SIGTERM
    assert isinstance(Interrupted(signal.SIGHUP), KeyboardInterrupt)


def test_deferred_interrupt_nests_marks_the_first_and_raises_on_the_second():
    with deferred_interrupt(STOPPING) as outer:
        with deferred_interrupt() as inner:  # the run loop's, inside prunetrain search's
            assert inner is outer
            signal.raise_signal(signal.SIGHUP)
            assert inner.is_set() and inner.signum == signal.SIGHUP
            with pytest.raises(Interrupted) as raised:
                signal.raise_signal(signal.SIGTERM)
            assert raised.value.signum == signal.SIGTERM
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # still the outer's
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_signals_after_one_search_change_nothing():
    with deferred_interrupt(STOPPING, one_search=True) as interrupt:
        with deferred_interrupt(search=True):  # the run loop's
            pass
        for signum in STOPPING:
            signal.raise_signal(signum)  # nothing happens
        assert not interrupt.is_set()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    with deferred_interrupt(STOPPING) as interrupt:  # around more than one search
        interrupt.search_ended()
        signal.raise_signal(signal.SIGTERM)
        assert interrupt.signum == signal.SIGTERM


def test_late_signals_are_ignored_and_stay_ignored():
    with deferred_interrupt(STOPPING) as interrupt:
        interrupt.ignore_until_exit()
        for signum in STOPPING:
            signal.raise_signal(signum)  # nothing happens
        assert not interrupt.is_set()
    assert all(signal.getsignal(s) is signal.SIG_IGN for s in STOPPING)
    with deferred_interrupt(STOPPING) as interrupt:  # the next command of this process hears them
        signal.raise_signal(signal.SIGTERM)
        assert interrupt.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_signal_someone_else_handles_or_ignores_is_left_alone():
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda *a: seen.append(a[0]))
    try:
        with deferred_interrupt(STOPPING) as interrupt:
            signal.raise_signal(signal.SIGTERM)
        assert seen == [signal.SIGTERM] and not interrupt.is_set()
    finally:
        signal.signal(signal.SIGTERM, previous)
    done = []

    def elsewhere():
        with deferred_interrupt(STOPPING) as interrupt:  # not the main thread: no handlers
            done.append(interrupt.is_set())

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert done == [False]


def test_interrupting_raises_at_once():
    with pytest.raises(Interrupted) as raised, interrupting():
        signal.raise_signal(signal.SIGTERM)
    assert raised.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def start_search(out, *args):
    return subprocess.Popen(
        [sys.executable, "-m", "prunetrain", "search", "--budget", "1h", "--arch", "64-16-10",
         "--method", "random", "--out", str(out), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_until_searching(proc) -> list[str]:
    """Read stderr until the progress line shows evaluations (the loop runs); return it all."""
    searching, chunks = threading.Event(), []

    def read():
        while chunk := proc.stderr.read(1):
            chunks.append(chunk)
            if "evals=" in "".join(chunks[-200:]):
                searching.set()

    threading.Thread(target=read, daemon=True).start()
    assert searching.wait(timeout=60), "".join(chunks)
    return chunks


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_write_the_ticket_and_checkpoint_and_exit_128_plus(
    tmp_path, signum, code
):
    """What a scheduler sends before it kills a job: today search simply died on it."""
    out = tmp_path / "run"
    proc = start_search(out)
    chunks = wait_until_searching(proc)
    proc.send_signal(signum)
    stdout = proc.stdout.read()
    proc.wait(timeout=60)
    stderr = "".join(chunks)
    assert proc.returncode == code, stderr
    assert "stopped by interrupted" in stdout and "Traceback" not in stderr
    assert f"interrupted ({signal.Signals(signum).name})" in stderr
    assert f"prunetrain search --resume {out}" in stderr
    assert json.loads((out / "result.json").read_text())["stopped_by"] == "interrupted"
    Ticket.load(out / "ticket.npz")
    assert (out / "checkpoint.npz").is_file()


LATE = """
import os, signal, sys
import prunetrain.cli as cli
import prunetrain.runs as runs

finish, summary = runs.finish, cli._print_summary

def finish_then_signals(*args, **kwargs):
    done = finish(*args, **kwargs)  # the outputs are written
    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGINT)
    return done

def summary_then_signals(*args, **kwargs):
    summary(*args, **kwargs)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        os.kill(os.getpid(), signum)
    print("after the signals", file=sys.stderr)

runs.finish, cli._print_summary = finish_then_signals, summary_then_signals
cli.main(sys.argv[1:])
"""


def test_signals_after_the_outputs_are_written_change_nothing(tmp_path):
    """In one probe trial a late SIGINT killed the process with no message."""
    out = tmp_path / "run"
    args = ["search", "--budget", "30evals", "--arch", "64-8-10", "--method", "random"]
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(LATE), *args, "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "stopped by budget" in proc.stdout and "after the signals" in proc.stderr
    assert "interrupted" not in proc.stderr and "Traceback" not in proc.stderr
    record = json.loads((out / "result.json").read_text())
    assert record["stopped_by"] == "budget" and not (out / "checkpoint.npz").exists()
