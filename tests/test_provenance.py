"""Result records say where they came from: versions, CPU and BLAS, git commit, command, time."""

import calendar
import os
import shutil
import subprocess
import sys
import time

import pytest

import prunetrain
from prunetrain.provenance import (
    command_line,
    describe_blas,
    git_commit,
    machine,
    record_provenance,
)


def test_record_provenance_names_machine_blas_commit_command_and_time():
    before = time.time()
    record = record_provenance()
    assert record["versions"]["prunetrain"] == prunetrain.__version__
    p = record["provenance"]
    assert set(p) == {"machine", "git", "command", "cwd", "created_utc"}
    assert p["command"] == command_line() and p["cwd"] == os.getcwd()
    created = calendar.timegm(time.strptime(p["created_utc"], "%Y-%m-%dT%H:%M:%SZ"))
    assert before - 1 <= created <= time.time() + 1
    m = p["machine"]
    assert m["cpu"] and m["cores"] >= 1 and isinstance(m["cpu_features"], list)
    assert m["blas"], "NumPy's BLAS is loaded, threadpoolctl must find it"
    for blas in m["blas"]:
        assert {"library", "version", "architecture", "threading_layer", "threads", "file"} <= set(
            blas
        )
        assert f"{blas['library']} {blas['version']} ({blas['architecture']}," in describe_blas(
            m["blas"]
        )
    assert p["git"] == git_commit()


def test_git_commit_is_none_outside_a_checkout_that_tracks_prunetrain(tmp_path, monkeypatch):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")

    def git(*args):
        subprocess.run(
            ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
            check=True,
            capture_output=True,
        )

    package = tmp_path / "prunetrain"
    package.mkdir()
    (package / "__init__.py").write_text("")
    # git_commit asks git about the folder that holds provenance.py, the package's own.
    monkeypatch.setattr(prunetrain.provenance, "__file__", str(package / "provenance.py"))
    if subprocess.run(["git", "-C", str(tmp_path), "rev-parse"], capture_output=True).returncode:
        assert git_commit.__wrapped__() is None  # an installed package: no checkout at all
    git("init", "-q")
    assert git_commit.__wrapped__() is None  # a repository that does not track the package
    git("add", "prunetrain/__init__.py")
    git("commit", "-q", "-m", "x")
    head = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert git_commit.__wrapped__() == {"commit": head, "dirty": False}
    (package / "__init__.py").write_text("changed = True\n")
    assert git_commit.__wrapped__() == {"commit": head, "dirty": True}


def test_the_checkout_under_test_reports_its_commit():
    found = git_commit()
    here = os.path.dirname(prunetrain.__file__)
    tracked = subprocess.run(
        ["git", "-C", here, "ls-files", "--error-unmatch", "__init__.py"], capture_output=True
    )
    if shutil.which("git") is None or tracked.returncode:
        assert found is None
        return
    head = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True)
    assert found["commit"] == head.stdout.strip() and isinstance(found["dirty"], bool)


def test_machine_lists_cpu_features_by_name():
    m = machine()
    assert set(m["cpu_features"]) <= set(prunetrain.provenance.CPU_FEATURES)
    assert describe_blas([]) == "unknown"


def test_command_line_of_python_dash_m(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/x/prunetrain/__main__.py", "search", "--out", "a b"])
    monkeypatch.setattr(sys, "orig_argv", ["/bin/python3", "-m", "prunetrain", "search"])
    assert command_line() == "/bin/python3 -m prunetrain search --out 'a b'"
    monkeypatch.setattr(sys, "argv", ["/venv/bin/prunetrain", "bench"])
    assert command_line() == "/venv/bin/prunetrain bench"
