"""One progress display (issue 19): plain lines in a log, a bar on a terminal, logging for messages,
and baselines that touch the test split only after training."""

import io
import logging
import subprocess
import sys

import pytest

from prunetrain import progress
from prunetrain.progress import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_plain_lines_in_a_log_with_an_eta_and_the_last_state_once(monkeypatch):
    log = io.StringIO()
    p = Progress(100, unit="eval", label="hill", stream=log, interval=0)
    for n in (10, 50, 90):
        p.update(n, loss="0.5")
    p.close(100, loss="0.25")
    p.close()  # closing twice draws nothing more
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert [line.split(" eval")[0] for line in lines] == [
        "hill: 10/100",
        "hill: 50/100",
        "hill: 90/100",
        "hill: done 100/100",
    ]
    assert all("eta " in line for line in lines[:-1]) and "eta" not in lines[-1]
    assert lines[-1].endswith("; loss=0.25")


def test_plain_lines_are_periodic(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: now[0])
    log = io.StringIO()
    p = Progress(60, unit="s", label="s", stream=log, interval=10)
    for n in range(60):
        now[0] = float(n)
        p.update(n)
    lines = log.getvalue().splitlines()  # one line every 10 s, not one per update
    assert [line.split(" s (")[0] for line in lines] == [f"s: {n}.0/60" for n in range(0, 60, 10)]


def test_on_a_terminal_a_bar_whose_last_frame_is_drawn_once():
    screen = Terminal()
    p = Progress(50, unit="eval", label="ga", stream=screen)
    p.update(20, force=True, loss="1.0")
    p.close(50, loss="0.123")
    frames = [f for f in screen.getvalue().replace("\n", "\r").split("\r") if f.strip()]
    assert sum("loss=0.123" in f for f in frames) == 1
    assert "50/50" in frames[-1]


def test_search_on_a_pipe_writes_log_lines_not_bar_frames(tmp_path):
    out = tmp_path / "run"
    args = ["search", "--method", "random", "--budget", "50evals", "--arch", "64-8-10"]
    proc = subprocess.run(
        [sys.executable, "-m", "prunetrain", *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("random: ")]
    assert lines[-1].startswith("random: done ") and "evals=" in lines[-1]
    assert sum(line.startswith("random: done") for line in lines) == 1


class CountingData:
    """A dataset whose test split counts how often it is read."""

    def __init__(self, data):
        self._data, self.test_reads = data, 0

    def __getattr__(self, name):
        if name in ("X_test", "y_test"):
            self.test_reads += 1
        return getattr(self._data, name)


@pytest.mark.parametrize("method", ["dense", "dense-sklearn", "edge-popup", "imp", "synflow"])
def test_baselines_do_not_touch_the_test_split_while_training(digits, method, capsys):
    from prunetrain.baselines import make_baseline
    from prunetrain.masks import KeepRule
    from prunetrain.network import FrozenNetwork, NetworkSpec

    params = {"epochs": 2} if method != "synflow" else {"iterations": 3}
    if method == "imp":
        params["rounds"] = 1
    network = FrozenNetwork(NetworkSpec((64, 16, 10)), 0)
    data = CountingData(digits)
    result = make_baseline(method, **params).fit(network, data, KeepRule(0.5), progress=True)
    assert data.test_reads == 0
    assert not any("test_accuracy" in row for row in result.history)
    err = capsys.readouterr().err
    assert "test" not in err and "\r" not in err
    assert err.splitlines()[-1].startswith(method)


def test_compare_lines_carry_an_eta(tmp_path):
    from prunetrain.experiments import run_comparison

    config = tmp_path / "c.toml"
    config.write_text(
        'name = "c"\ndatasets = ["digits"]\narchs = ["64-8-10"]\nkeeps = [0.5]\nseeds = [0, 1]\n'
        'budget = "10evals"\n\n[methods.random]\n'
    )
    lines = []
    run_comparison(config, tmp_path / "out", echo=lines.append, report=False)
    done = [line for line in lines if "] random" in line]
    assert len(done) == 2 and all("; eta " in line for line in done)
    assert done[-1].endswith("eta 0.0s")


def test_cli_messages_go_through_logging(capsys):
    from prunetrain.cli import main

    class Keep(logging.Handler):
        def __init__(self):
            super().__init__()
            self.records = []

        def emit(self, record):
            self.records.append(record)

    keep = Keep()
    logging.getLogger("prunetrain").addHandler(keep)
    try:
        with pytest.raises(SystemExit) as e:
            main(["bench", "--arch", "8-4", "--population", "1", "--batch", "4", "--repeats", "1",
                  "--backend", "numpy", "--json"])  # fmt: skip
    finally:
        logging.getLogger("prunetrain").removeHandler(keep)
    message = "--batch is deprecated: use --batch-size (as search and baseline do)"
    assert e.value.code == 0
    assert [(r.levelname, r.getMessage()) for r in keep.records] == [("WARNING", message)]
    assert capsys.readouterr().err == message + "\n"  # one plain line on stderr


def test_a_discarded_display_writes_no_final_line():
    log = io.StringIO()
    p = Progress(10, unit="eval", label="probe", stream=log, interval=3600)
    p.discard()
    p.close(10)
    assert log.getvalue() == ""
