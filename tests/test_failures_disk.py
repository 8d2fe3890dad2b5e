"""Full, read-only and unwritable outputs (issue 28, sections 3 and 5): one line, exit 2,
and nothing left behind -- no empty run folder, no checkpoint, no temporary file, no staging
folder.

Two ways to fill a disk: a real 256 KB tmpfs (needs root and permission to mount: skipped
elsewhere, with the reason), and in-process fault injection (:class:`FullDisk`: every file
opened for writing fails with ``ENOSPC`` once its room is spent), which runs everywhere.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from prunetrain import files
from prunetrain.cli import main
from prunetrain.errors import PrunetrainError

SEARCH = ["search", "--dataset", "digits", "--arch", "64-10-10", "--method", "hill"]
SEARCH += ["--budget", "50evals", "-q"]
TINY_COMPARE = """
name = "tiny"
datasets = ["digits"]
archs = ["64-10-10"]
keeps = [0.5]
seeds = [0]
budget = "30evals"

[methods.random]
population = 4
"""
LEFTOVER = re.compile(r"\.tmp$|\.staging-|checkpoint")


def cli(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return e.value.code, out, err


def one_line_error(code, err, *fragments):
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("prunetrain: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def tree(folder: Path) -> set[str]:
    """Every path under ``folder``, relative to it, hidden ones included."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# --- a real small disk ----------------------------------------------------------------------


class SmallDisk:
    """A 256 KB tmpfs mounted at ``root``: fill it to a given free space, or make it read-only."""

    def __init__(self, root: Path):
        self.root = root

    def fill(self, free_kb: int) -> None:
        st = os.statvfs(self.root)
        size = st.f_bavail * st.f_frsize - free_kb * 1024
        with open(self.root / "fill", "wb") as f:
            f.write(b"\0" * max(size, 0))
        assert os.statvfs(self.root).f_bavail * os.statvfs(self.root).f_frsize <= free_kb * 1024

    def read_only(self) -> None:
        done = mount("-o", "remount,ro", str(self.root))
        if done.returncode != 0:
            pytest.skip(f"cannot make the small tmpfs read-only here: {done.stderr.strip()}")


def mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@pytest.fixture
def small_disk(tmp_path):
    root = tmp_path / "disk"
    root.mkdir()
    try:
        done = mount("-t", "tmpfs", "-o", "size=256k", "tmpfs", str(root))
    except FileNotFoundError:
        pytest.skip("no mount command here to make a small disk")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield SmallDisk(root)
    finally:
        subprocess.run(["umount", "-l", str(root)], capture_output=True)


@pytest.mark.parametrize("free_kb", [0, 24, 60])
def test_search_on_a_full_disk_says_so_in_one_line_and_leaves_nothing(small_disk, capsys, free_kb):
    small_disk.fill(free_kb)
    out = small_disk.root / "runs" / "a"
    code, _, err = cli(capsys, *SEARCH, "--out", out)
    if code == 0:  # it fitted: then every output is whole
        assert {"ticket.npz", "result.json", "curve.csv", "curve.png"} <= tree(out)
        return
    one_line_error(code, err, str(small_disk.root), "No space left on device")
    assert tree(small_disk.root) == {"fill"}


def test_search_into_an_existing_folder_on_a_full_disk_keeps_the_folder_empty(small_disk, capsys):
    out = small_disk.root / "a"
    out.mkdir()
    small_disk.fill(0)
    code, _, err = cli(capsys, *SEARCH, "--out", out)
    one_line_error(code, err, str(out), "No space left on device")
    assert tree(small_disk.root) == {"fill", "a"}


@pytest.mark.parametrize("free_kb", [0, 24])
def test_compare_on_a_full_disk_says_so_in_one_line_and_leaves_no_debris(
    small_disk, tmp_path, capsys, free_kb
):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_COMPARE)
    small_disk.fill(free_kb)
    out = small_disk.root / "cmp"
    code, _, err = cli(capsys, "compare", config, "--out", out, "-q")
    one_line_error(code, err, str(small_disk.root), "No space left on device")
    left = tree(small_disk.root) - {"fill"}
    assert not [name for name in left if LEFTOVER.search(name)], left
    if left:  # only whole records, kept for a rerun
        for line in (out / "results.jsonl").read_text().splitlines():
            json.loads(line)
    else:
        assert not out.exists()


def test_predict_out_on_a_full_disk_or_a_read_only_one(small_disk, tmp_path, capsys):
    ticket, data = _ticket_and_data(tmp_path, capsys)
    small_disk.fill(0)
    code, _, err = cli(
        capsys, "predict", ticket, data, "--out", small_disk.root / "sub" / "p.csv", "--proba"
    )
    one_line_error(code, err, str(small_disk.root / "sub" / "p.csv"), "No space left on device")
    assert tree(small_disk.root) == {"fill"}
    (small_disk.root / "fill").unlink()
    small_disk.read_only()
    code, _, err = cli(capsys, "predict", ticket, data, "--out", small_disk.root / "p.csv")
    one_line_error(code, err, str(small_disk.root / "p.csv"), "Read-only file system")


def test_search_into_a_read_only_disk_is_refused_before_any_work(small_disk, capsys):
    small_disk.read_only()
    code, _, err = cli(capsys, *SEARCH, "--out", small_disk.root / "a")
    one_line_error(code, err, str(small_disk.root / "a"), "Read-only file system")
    assert tree(small_disk.root) == set()


def _ticket_and_data(tmp_path, capsys):
    run = tmp_path / "run"
    code, _, err = cli(capsys, *SEARCH, "--out", run)
    assert code == 0, err
    from sklearn.datasets import load_digits

    data = tmp_path / "x.npz"
    np.savez(data, X=load_digits().data[:20])
    return run / "ticket.npz", data


# --- fault injection: the same promises on every machine -------------------------------------


class FullDisk:
    """Every file opened for writing fails with ``error`` once ``room`` bytes have been written.

    Patches the two ways prunetrain opens files for writing: ``os.fdopen`` (every
    :func:`~prunetrain.files.atomic_write`) and ``io.open`` (``Path.open``, the appends of
    ``results.jsonl``). A failing write raises as the kernel's does: an ``OSError`` with no
    file name.
    """

    def __init__(self, monkeypatch, room: int = 0, error: int = errno.ENOSPC):
        self.room, self.error = room, error
        real_fdopen, real_open = os.fdopen, io.open

        def fdopen(fd, mode="r", *args, **kwargs):
            return self._wrap(real_fdopen(fd, mode, *args, **kwargs), mode)

        def open_(file, mode="r", *args, **kwargs):
            return self._wrap(real_open(file, mode, *args, **kwargs), mode)

        monkeypatch.setattr(os, "fdopen", fdopen)
        monkeypatch.setattr(io, "open", open_)

    def _wrap(self, f, mode):
        return _Failing(f, self) if set(mode) & set("wax+") else f


class _Failing:
    def __init__(self, f, disk: FullDisk):
        self._f, self._disk = f, disk

    def write(self, data):
        if len(data) > self._disk.room:
            raise OSError(self._disk.error, os.strerror(self._disk.error))
        self._disk.room -= len(data)
        return self._f.write(data)

    def fileno(self):  # so that no writer goes around write() (PIL would)
        raise io.UnsupportedOperation("fileno")

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def test_atomic_write_turns_a_failed_write_into_one_line_and_leaves_no_temp_file(
    tmp_path, monkeypatch
):
    FullDisk(monkeypatch, room=3)
    target = tmp_path / "new" / "deeper" / "f.txt"
    with pytest.raises(PrunetrainError, match=r"cannot write .*f\.txt: No space left on device"):
        files.atomic_write(target, lambda f: f.write("hello"), binary=False)
    assert tree(tmp_path) == set()  # the folders it made are gone too


def test_atomic_write_into_a_read_only_folder(tmp_path, monkeypatch):
    def refused(*args, dir=None, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    with pytest.raises(PrunetrainError, match=r"cannot write .*p\.csv: Read-only file system"):
        files.atomic_write(tmp_path / "p.csv", lambda f: f.write(b"x"))
    assert tree(tmp_path) == set()


def test_write_folder_failing_leaves_no_staging_folder(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")

    def fill(folder):
        files.atomic_write(folder / "a.txt", lambda f: f.write(b"a"))
        FullDisk(monkeypatch, room=0)
        files.atomic_write(folder / "b.txt", lambda f: f.write(b"b"))

    with pytest.raises(PrunetrainError, match="No space left on device"):
        files.write_folder(out, fill)
    assert tree(tmp_path) == {"out", "out/old.txt"}


@pytest.mark.parametrize("room", [0, 8_000, 40_000])
def test_search_out_of_room_at_any_write_leaves_no_run_folder(tmp_path, capsys, monkeypatch, room):
    """0: the first checkpoint fails; more: a later checkpoint or one of the outputs."""
    FullDisk(monkeypatch, room=room)
    out = tmp_path / "runs" / "a"
    code, _, err = cli(capsys, *SEARCH, "--out", out)
    one_line_error(code, err, str(out), "No space left on device")
    assert tree(tmp_path) == set()


def test_a_failed_checkpoint_write_stops_the_search_with_one_line(tmp_path, capsys, monkeypatch):
    """Whatever writes the checkpoint, an OSError that names no file becomes one line naming
    the run folder, and the run leaves nothing (the outputs would not fit either)."""

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("prunetrain.search.checkpoint.Checkpoint.write", full)
    out = tmp_path / "a"
    code, _, err = cli(capsys, *SEARCH, "--out", out)
    one_line_error(code, err, f"cannot write {out}: No space left on device")
    assert tree(tmp_path) == set()


def test_a_failed_search_keeps_what_the_folder_held_before(tmp_path, capsys, monkeypatch):
    """A folder that existed keeps what it held; only what the failed run wrote is removed."""
    out = tmp_path / "a"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    FullDisk(monkeypatch, room=0)
    code, _, err = cli(capsys, *SEARCH, "--out", out)
    one_line_error(code, err, "No space left on device")
    assert tree(tmp_path) == {"a", "a/notes.txt"}


def test_baseline_out_of_room_leaves_no_run_folder(tmp_path, capsys, monkeypatch):
    FullDisk(monkeypatch, room=0)
    out = tmp_path / "b"
    code, _, err = cli(
        capsys, "baseline", "--dataset", "digits", "--arch", "64-10-10", "--method", "random",
        "-q", "--out", out,
    )  # fmt: skip
    one_line_error(code, err, str(out), "No space left on device")
    assert tree(tmp_path) == set()


def test_compare_out_of_room_leaves_no_folder(tmp_path, capsys, monkeypatch):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_COMPARE)
    FullDisk(monkeypatch, room=0)
    code, _, err = cli(capsys, "compare", config, "--out", tmp_path / "cmp", "-q")
    one_line_error(code, err, "results.jsonl", "No space left on device")
    assert tree(tmp_path) == {"tiny.toml"}


def test_compare_out_of_room_mid_record_keeps_earlier_records_whole(tmp_path, capsys, monkeypatch):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_COMPARE)
    out = tmp_path / "cmp"
    out.mkdir()
    results = out / "results.jsonl"
    results.write_text('{"key": "old", "x": 1}\n')
    FullDisk(monkeypatch, room=100)  # part of the record fits
    code, _, err = cli(capsys, "compare", config, "--out", out, "-q")
    one_line_error(code, err, "No space left on device")
    assert results.read_text() == '{"key": "old", "x": 1}\n'
    assert tree(out) <= {"results.jsonl", ".results.jsonl.lock"}


def test_predict_out_of_room_or_read_only(tmp_path, capsys, monkeypatch):
    ticket, data = _ticket_and_data(tmp_path, capsys)
    before = tree(tmp_path)
    with monkeypatch.context() as m:
        FullDisk(m, room=10)
        code, _, err = cli(capsys, "predict", ticket, data, "--out", tmp_path / "new" / "p.csv")
    one_line_error(code, err, str(tmp_path / "new" / "p.csv"), "No space left on device")
    assert tree(tmp_path) == before

    def refused(*args, dir=None, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    code, _, err = cli(capsys, "predict", ticket, data, "--out", tmp_path / "p.csv")
    one_line_error(code, err, str(tmp_path / "p.csv"), "Read-only file system")
    assert tree(tmp_path) == before


# --- stale staging folders and temporary files ---------------------------------------------


def dead_pid() -> int:
    """The id of a process that has ended (and been waited for)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.fixture
def live_pid():
    process = subprocess.Popen(["sleep", "60"])
    yield process.pid
    process.kill()
    process.wait()


def test_a_run_removes_stale_staging_folders_and_temp_files_but_not_live_ones(
    tmp_path, capsys, live_pid
):
    out = tmp_path / "a"
    out.mkdir()
    dead = dead_pid()
    stale = [
        out / f".a.staging-{dead}-k2j4h1x_",
        out / f".ticket.npz.{dead}-abc123xy.tmp",
        out / f".checkpoint.pkl.{dead}-q9w8e7r6.tmp",
    ]
    live = [out / f".a.staging-{live_pid}-zzzzzzzz", out / f".result.json.{live_pid}-yyyyyyyy.tmp"]
    for path in stale + live:
        if "staging" in path.name:
            path.mkdir()
            (path / "ticket.npz").write_bytes(b"half")
        else:
            path.write_bytes(b"half")
    code, _, err = cli(capsys, *SEARCH, "--out", out)
    assert code == 0, err
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in live)
    assert tree(out) == {"ticket.npz", "result.json", "curve.csv", "curve.png"} | {
        p.name for p in live
    } | {f"{live[0].name}/ticket.npz"}


KILLED_WRITER = """
import sys, time
from prunetrain.files import write_folder

def fill(folder):
    (folder / "ticket.npz").write_bytes(b"half")
    print("writing", flush=True)
    time.sleep(60)

write_folder(sys.argv[1], fill)
"""


def test_a_staging_folder_left_by_a_killed_writer_goes_with_the_next_run(tmp_path, capsys):
    out = tmp_path / "a"
    out.mkdir()
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(out)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    (staging,) = out.iterdir()
    assert staging.name.startswith(".a.staging-")
    code, _, err = cli(capsys, *SEARCH, "--out", out)
    assert code == 0, err
    assert tree(out) == {"ticket.npz", "result.json", "curve.csv", "curve.png"}


def test_a_failed_search_removes_only_its_own_files(tmp_path, monkeypatch):
    """Files of other kinds written into the folder meanwhile (a comparison's) stay."""
    from prunetrain.api import run_search
    from prunetrain.errors import WriteError

    out = tmp_path / "a"

    def compare_writes_here(row, mask):
        (out / "results.jsonl").write_text("{}\n")

    def full(folder, *args, **kwargs):
        raise WriteError(folder / "curve.png", os.strerror(errno.ENOSPC))

    monkeypatch.setattr("prunetrain.run_folders.write_curve", full)
    with pytest.raises(WriteError):
        run_search("digits", "64-10-10", method="hill", budget="50evals", out=out,
                   callbacks=[compare_writes_here])  # fmt: skip
    assert tree(tmp_path) == {"a", "a/results.jsonl"}


def test_temporary_names_carry_the_writers_pid(tmp_path):
    seen = []

    def write(f):
        seen.extend(p.name for p in tmp_path.iterdir())
        f.write(b"x")

    files.atomic_write(tmp_path / "f.bin", write)
    assert len(seen) == 1 and re.fullmatch(rf"\.f\.bin\.{os.getpid()}-\w+\.tmp", seen[0])
    files.write_folder(tmp_path / "out", lambda folder: seen.append(folder.name))
    assert re.fullmatch(rf"\.out\.staging-{os.getpid()}-\w+", seen[-1])


# --- file names too long (ENAMETOOLONG) -----------------------------------------------------

LONG = "n" * 300


def test_a_dataset_name_too_long_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, *SEARCH, "--dataset", f"{LONG}.npz", "--out", "a")
    one_line_error(code, err, "File name too long")
    assert tree(tmp_path) == set()


@pytest.mark.parametrize("where", ["--out", "--resume"])
def test_a_run_folder_name_too_long_is_one_line(tmp_path, capsys, monkeypatch, where):
    monkeypatch.chdir(tmp_path)
    args = [*SEARCH, "--out", f"sub/{LONG}"] if where == "--out" else ["search", "--resume", LONG]
    code, _, err = cli(capsys, *args)
    one_line_error(code, err, "File name too long")
    assert tree(tmp_path) == set()


def test_predict_out_name_too_long_is_one_line(tmp_path, capsys):
    ticket, data = _ticket_and_data(tmp_path, capsys)
    before = tree(tmp_path)
    code, _, err = cli(capsys, "predict", ticket, data, "--out", tmp_path / f"{LONG}.csv")
    one_line_error(code, err, "File name too long")
    assert tree(tmp_path) == before


def test_compare_with_a_name_too_long_for_its_default_folder_is_one_line(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    Path("c.toml").write_text(TINY_COMPARE.replace('name = "tiny"', f'name = "{LONG}"'))
    code, _, err = cli(capsys, "compare", "c.toml", "-q")
    one_line_error(code, err, "File name too long")
    assert tree(tmp_path) == {"c.toml"}


def test_main_turns_any_os_error_naming_a_file_into_one_line(capsys, monkeypatch):
    """The last line of defence: an OSError with a file name that no check caught."""

    def broken(*args, **kwargs):
        raise OSError(errno.EIO, os.strerror(errno.EIO), "/some/file")

    monkeypatch.setattr("prunetrain.api.load_model", broken)
    code, _, err = cli(capsys, "evaluate", "t.npz")
    one_line_error(code, err, "/some/file", "Input/output error")
