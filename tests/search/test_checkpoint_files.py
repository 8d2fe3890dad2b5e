"""Checkpoint files: data only, and refused in one line when damaged, edited, crafted or old.

A run folder is what researchers share ("here is my run, resume it"), so
``prunetrain search --resume DIR`` must never run code from it, and must say
in one line (exit 2, nothing written) what is wrong with a checkpoint it will
not resume.
"""

import io
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from prunetrain import api, npz
from prunetrain.cli import main
from prunetrain.network import NetworkSpec, parse_arch
from prunetrain.search import checkpoint as ckpt
from prunetrain.search.checkpoint import CHECKPOINT, read_checkpoint

ARGS = dict(arch="64-10-10", method="random", budget="200evals", seed=3, checkpoint_every=3600)


def cli(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return e.value.code, out, err


def files(folder: Path) -> dict:
    return {p.name: p.read_bytes() if p.is_file() else None for p in sorted(folder.iterdir())}


def ctrl_c_at(evaluations):
    sent = []

    def callback(row, mask):
        if not sent and row["evaluations"] >= evaluations:
            sent.append(True)
            signal.raise_signal(signal.SIGINT)

    return callback


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A search interrupted at 100 of 200 evaluations (its folder), and the uninterrupted ticket."""
    root = tmp_path_factory.mktemp("runs")
    whole = api.run_search("digits", out=root / "whole", **ARGS)
    cut = api.run_search("digits", out=root / "cut", callbacks=[ctrl_c_at(100)], **ARGS)
    assert cut.result.interrupted and not whole.result.interrupted
    assert (root / "cut" / CHECKPOINT).is_file()
    return root / "cut", (root / "whole" / "ticket.npz").read_bytes()


@pytest.fixture
def cut(runs, tmp_path):
    """A fresh copy of the interrupted run's folder."""
    folder = tmp_path / "cut"
    shutil.copytree(runs[0], folder)
    return folder


def entries(path: Path) -> dict[str, np.ndarray]:
    """A checkpoint's entries, read by NumPy (no pickles: allow_pickle=False)."""
    with np.load(path, allow_pickle=False) as f:
        return {name: f[name] for name in f.files}


def rewrite(path: Path, edit, rehash_config: bool = False) -> None:
    """Edit a checkpoint's header JSON with ``edit(header)`` and recompute its checksum
    (and, with ``rehash_config``, the hash of its config), as a deliberate editor would."""
    found = entries(path)
    header = json.loads(found["header"].tobytes())
    edit(header)
    if rehash_config:
        header["config_sha256"] = ckpt.config_hash(header["config"])
    text = json.dumps(header).encode()
    pools = {k[len("pool_") :]: v for k, v in found.items() if k.startswith("pool_")}
    found["header"] = np.frombuffer(text, dtype=np.uint8)
    found["sha256"] = np.frombuffer(ckpt._checksum(text, pools), dtype=np.uint8)
    npz.write_entries(path, found)


def assert_refused(capsys, folder: Path, *fragments: str) -> str:
    before = files(folder)
    code, out, err = cli(capsys, "search", "--resume", folder, "-q")
    assert code == 2 and err.count("\n") == 1 and err.startswith("prunetrain: error: "), err
    assert "Traceback" not in err and "interrupted" not in err
    for fragment in fragments:
        assert fragment in err, err
    assert files(folder) == before  # nothing written or removed
    return err


# --- what a checkpoint is -------------------------------------------------------------------


def test_a_checkpoint_holds_json_and_numeric_arrays_only(cut):
    found = entries(cut / CHECKPOINT)
    assert {"header", "sha256"} <= set(found)
    assert all(name.startswith("pool_") for name in set(found) - {"header", "sha256"})
    assert all(a.dtype.kind in "biuf" and a.ndim == 1 for a in found.values())
    header = json.loads(found["header"].tobytes())
    assert header["format"] == "prunetrain-checkpoint" and header["format_version"] == 3
    assert header["problem"]["weights_hash"] and header["searcher"]["name"] == "random"
    assert header["config_sha256"] == ckpt.config_hash(header["config"])
    # No pickle anywhere in the load path, nor np.load (which can be told to unpickle).
    for module in (ckpt, api, sys.modules["prunetrain.search.loop"], npz):
        source = Path(module.__file__).read_text()
        assert not re.search(r"import pickle|pickle\.|allow_pickle=True", source)
    assert "np.load(" not in Path(ckpt.__file__).read_text()


def test_the_codec_keeps_shared_references_cycles_and_exact_values(digits):
    """The state tree round trip: what the searchers hold comes back equal, shared and exact."""
    from prunetrain.masks import KeepRule, Segment
    from prunetrain.network import FrozenNetwork
    from prunetrain.problem import Problem
    from prunetrain.search import make_searcher

    problem = Problem(FrozenNetwork(NetworkSpec((64, 10, 10)), 0), digits, KeepRule(0.5))
    shared = np.arange(12.0).reshape(3, 4)
    fortran = np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3))
    rng = np.random.default_rng(5)
    mt = np.random.Generator(np.random.MT19937(7))
    cyclic: list = []
    cyclic.append(cyclic)
    searcher = make_searcher("random")
    searcher.problem, searcher.rng, searcher._t0 = problem, rng, 1.5
    state = {
        "floats": [float("nan"), float("inf"), -float("inf"), 0.1, -0.0],
        "keys": {1: "int", (2, "a"): "tuple", None: "none", 2.5: "float"},
        "a": shared,
        "b": [shared, shared[1:]],  # the same array twice, and a view (stored as a copy)
        "fortran": fortran,
        "scalars": (np.float32(0.25), np.int64(-3), np.bool_(True)),
        "rngs": [rng, rng, mt],
        "cyclic": cyclic,
        "segment": Segment(0, 10, None),
        "searcher": searcher,
        "bound": [problem.network, problem.X_train],
    }
    encoder = ckpt._Encoder(ckpt.bound_objects(problem), problem.backend)
    tree = json.loads(json.dumps(encoder.encode(state, "state", 0), allow_nan=False))
    back = ckpt._Decoder(encoder.pools(), ckpt.bound_objects(problem), problem.backend, "x")
    got = back.decode(tree, 0)
    np.testing.assert_equal(got["floats"], state["floats"])
    assert np.signbit(got["floats"][-1])
    assert got["keys"] == state["keys"]
    assert got["b"][0] is got["a"] and got["b"][1] is not got["a"]
    np.testing.assert_array_equal(got["a"], shared)
    assert got["a"].flags.writeable and got["a"].flags.owndata
    assert got["fortran"].flags.f_contiguous and got["fortran"].dtype == np.int16
    np.testing.assert_array_equal(got["fortran"], fortran)
    assert [type(x) for x in got["scalars"]] == [np.float32, np.int64, np.bool_]
    assert got["scalars"] == state["scalars"]
    assert got["rngs"][0] is got["rngs"][1] and got["rngs"][0] is got["searcher"].rng
    assert got["rngs"][0].random() == rng.random() and got["rngs"][2].random() == mt.random()
    assert got["cyclic"][0] is got["cyclic"]
    assert got["segment"] == state["segment"] and type(got["segment"]) is Segment
    assert type(got["searcher"]) is type(searcher) and got["searcher"]._t0 == 1.5
    assert got["searcher"].problem is problem and got["bound"][1] is problem.X_train


@pytest.mark.parametrize(
    "node, why",
    [
        ({"object": "Popen", "attrs": {}}, "unknown object 'Popen'"),
        ({"object": "subprocess.Popen", "attrs": {}}, "unknown object"),
        ({"searcher": "os.system", "attrs": {}}, "unknown searcher"),
        ({"searcher": "random", "attrs": {"__class__": {"bound": "problem"}}}, "'__class__'"),
        ({"searcher": "random", "attrs": {"__reduce__": 1}}, "not an attribute name"),
        ({"searcher": "random", "attrs": {"step": 1}}, "'step' is a method or property"),
        ({"object": "FlipState", "attrs": {"loss": 1.0}}, "'loss' is a method or property"),
        ({"rng": ["os.system", {"dict": []}]}, "a random generator"),
        ({"rng": ["PCG64", {"dict": [["state", "x"]]}]}, "a random generator's state"),
        ({"ref": 99}, "a reference to object 99"),
        ({"bound": "os"}, "a reference to 'os'"),
        ({"array": ["b1", 0, [1000000, 1000000], "C"]}, "beyond its pool"),
        ({"array": ["b1", -5, [1], "C"]}, "beyond its pool"),
        ({"array": ["O", 0, [1], "C"]}, "an array node"),
        ({"float": "1e999"}, "a float"),
        ({"tuple": [{"ref": 0}]}, "a cycle through a tuple"),
        ({"dict": [[[1, 2], 3]]}, "a dict key that is not a value"),
        ({"eval": "print(1)"}, "an unknown node"),
        ({"tuple": [1], "extra": 2}, "an unknown node"),
        ("ok", "not a search's state"),
        (
            {"dict": [[k, {"searcher": "random", "attrs": {}}] for k in ("searcher",)]},
            "not a search's state",
        ),
        (
            {
                "dict": [
                    ["searcher", {"searcher": "random", "attrs": {}}],
                    ["problem", 1],
                    ["loop", 1],
                ]
            },
            "its searcher is not the one its header names",  # no hyperparameters
        ),
    ],
)
def test_a_crafted_state_is_refused_in_one_line(capsys, cut, node, why):
    rewrite(cut / CHECKPOINT, lambda h: h.update(state=node), rehash_config=True)
    assert_refused(capsys, cut, "is damaged", why)


def set_entry(header, part: str, key: str, node) -> None:
    """Set entry ``key`` of the state's ``part`` ("loop" or "problem") to the tree ``node``."""
    entries = next(v for k, v in header["state"]["dict"] if k == part)["dict"]
    next(pair for pair in entries if pair[0] == key)[1] = node


@pytest.mark.parametrize(
    "part, key, node, why",
    [
        ("loop", "since_better", -1, "its loop state's since_better is '-1'"),
        ("loop", "step_start", "x", "its loop state's step_start"),
        ("loop", "history", [], "it has no validated mask"),
        ("loop", "history", [{"dict": [["seconds", 1.0]]}], "a row of its history"),
        ("loop", "best", {"dict": [["mask", []]]}, "its best mask's record"),
        ("problem", "position", -1, "batch counters are damaged"),
        ("problem", "n_evaluations", {"float": "nan"}, "cost counters are damaged"),
        ("problem", "order", {"tuple": [1, 2]}, "batch order is not an order"),
        ("problem", "batch_rng", {"dict": [["state", 1]]}, "batch order generator"),
    ],
)
def test_an_edited_loop_or_problem_state_is_refused_in_one_line(capsys, cut, part, key, node, why):
    rewrite(cut / CHECKPOINT, lambda h: set_entry(h, part, key, node), rehash_config=True)
    assert_refused(capsys, cut, why)


def test_a_deeply_nested_state_or_header_is_refused_in_one_line(capsys, cut, tmp_path):
    deep: object = 1
    for _ in range(ckpt.MAX_DEPTH + 5):
        deep = [deep]
    rewrite(cut / CHECKPOINT, lambda h: h.update(state=deep), rehash_config=True)
    assert_refused(capsys, cut, "nested more than")
    # JSON nested past the interpreter's recursion limit.
    path = cut / CHECKPOINT
    text = b'{"format": "prunetrain-checkpoint", "state": ' + b"[" * 200000 + b"]" * 200000 + b"}"
    npz.write_entries(
        path,
        {
            "header": np.frombuffer(text, dtype=np.uint8),
            "sha256": np.frombuffer(ckpt._checksum(text, {}), dtype=np.uint8),
        },
    )
    assert_refused(capsys, cut, "nests too deeply")


# --- damaged files ------------------------------------------------------------------------


def test_byte_flips_anywhere_are_refused_or_resume_to_the_same_ticket(capsys, runs, tmp_path):
    """The issue's fuzz: flipped bytes resumed 7 of 20 times to another ticket. Never now."""
    folder, expected = runs
    data = (folder / CHECKPOINT).read_bytes()
    positions = np.random.default_rng(28).choice(len(data), size=20, replace=False)
    refused = 0
    for k, at in enumerate(sorted(positions)):
        copy = tmp_path / f"flip{k}"
        shutil.copytree(folder, copy)
        flipped = bytearray(data)
        flipped[at] ^= 0x5A
        (copy / CHECKPOINT).write_bytes(bytes(flipped))
        before = files(copy)
        code, _, err = cli(capsys, "search", "--resume", copy, "-q")
        if code == 2:  # refused: one line, nothing changed
            assert err.count("\n") == 1 and "checkpoint" in err and "Traceback" not in err
            assert files(copy) == before
            refused += 1
        else:  # a byte nothing reads (a zip field such as a timestamp): the same search
            assert code == 0, (at, err)
            assert (copy / "ticket.npz").read_bytes() == expected, at
    assert refused >= 15


@pytest.mark.parametrize("keep", [0, 1, 22, 100, 0.5, -1])
def test_empty_and_truncated_checkpoints_are_refused_not_read_as_ctrl_d(capsys, cut, keep):
    path = cut / CHECKPOINT
    data = path.read_bytes()
    size = int(len(data) * keep) if isinstance(keep, float) else keep % len(data)
    path.write_bytes(data[:size])
    assert_refused(capsys, cut, f"checkpoint {path}")


def test_a_checkpoint_claiming_a_huge_array_is_refused_before_allocating(capsys, cut):
    """A small file whose pool says it holds 2**40 floats: refused from its header, no MemoryError."""
    path = cut / CHECKPOINT
    found = entries(path)
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776,), }"
    header += b" " * (118 - len(header)) + b"\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\0" * 64
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name in ("header", "sha256"):
            one = io.BytesIO()
            np.lib.format.write_array(one, found[name], allow_pickle=False)
            archive.writestr(f"{name}.npy", one.getvalue())
        archive.writestr("pool_f8.npy", npy)
    path.write_bytes(buffer.getvalue())
    tracemalloc.start()
    try:
        err = assert_refused(capsys, cut, "pool_f8")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "elements" in err and peak < 20 * 2**20


def test_a_checkpoint_that_is_not_a_regular_file_is_refused(capsys, cut):
    path = cut / CHECKPOINT
    path.unlink()
    os.mkfifo(path)
    assert_refused(capsys, cut, "is not a regular file")


# --- edited configs -----------------------------------------------------------------------


EDITS = [
    ("seed", 1, "its seed is"),
    ("network_seed", 7, "network (weights hash)"),
    ("keep", 0.25, "network (weights hash)"),  # the weights are scaled by 1/sqrt(keep)
    ("keep_rule", "global", "its keep_rule is"),
    ("init", "kaiming_normal", "network (weights hash)"),
    ("scale", "none", "network (weights hash)"),
    ("batch_size", 64, "its batch_size is"),
]


@pytest.mark.parametrize("key, value, why", EDITS)
def test_an_edited_config_is_refused(capsys, cut, key, value, why):
    """Today's defect: a changed seed, keep, init... resumed silently, for another network."""
    path = cut / CHECKPOINT
    original = path.read_bytes()

    def edit(header):
        header["config"]["run"][key] = value

    rewrite(path, edit)  # the checksum recomputed, not the config's hash
    assert_refused(capsys, cut, "was edited: its config does not match")
    path.write_bytes(original)
    rewrite(path, edit, rehash_config=True)  # both recomputed: the problem is not the one searched
    assert_refused(capsys, cut, "was written for another problem", why)


@pytest.mark.parametrize(
    "edit, why",
    [
        (lambda c: c["run"].update(patience="x"), "has patience 'x' in its config; expected int"),
        (lambda c: c["run"].update(patience=0), "patience must be a whole number >= 1, got 0"),
        (lambda c: c.update(run=[1]), "its run config is '[1]'"),
        (lambda c: c["run"].update(budget=[1]), "has budget '[1]' in its config; expected str"),
        (lambda c: c["run"].update(budget="forever"), "bad budget 'forever'"),
        (lambda c: c["run"].update(seed="x"), "has seed 'x'"),
        (lambda c: c["run"].update(seed=True), "has seed 'True'"),
        (lambda c: c["run"].update(arch=[64, 10, 10]), "has arch '[64, 10, 10]'"),
        (lambda c: c["run"].update(arch="64-x-10"), "bad architecture '64-x-10'"),
        (lambda c: c["run"].update(keep=2.0), "keep must"),
        (lambda c: c["run"].update(backend="gpu"), "unknown backend 'gpu'"),
        (lambda c: c["run"].pop("schedule"), "its config has no schedule"),
        (lambda c: c["run"].update(method_params={"population": 3}), "searcher's options"),
        (lambda c: c.update(dataset=["digits"]), "has dataset"),
        (lambda c: c.update(extra=1), "its config is not a search's"),
    ],
)
def test_config_values_are_checked_as_a_fresh_runs_are(capsys, cut, edit, why):
    """Today: patience "x" gave a TypeError, run = [1] an AttributeError."""
    rewrite(cut / CHECKPOINT, lambda h: edit(h["config"]), rehash_config=True)
    assert_refused(capsys, cut, why)


def test_a_huge_layer_in_the_config_is_refused_as_a_fresh_run_refuses_it(capsys, cut, tmp_path):
    """Today: an arch of 64-100000000-10 in a checkpoint gave a MemoryError traceback."""
    arch = "64-100000000-10"
    with pytest.raises(ckpt.PrunetrainError, match="at most 1048576 per layer"):
        NetworkSpec(parse_arch(arch))
    fresh = cli(capsys, "search", "--arch", arch, "--budget", "10evals", "--out", tmp_path / "f")
    assert fresh[0] == 2 and fresh[2].count("\n") == 1
    rewrite(cut / CHECKPOINT, lambda h: h["config"]["run"].update(arch=arch), rehash_config=True)
    assert assert_refused(capsys, cut) == fresh[2]


# --- old and hostile files ----------------------------------------------------------------


def popen_pickle(marker: Path) -> bytes:
    """The issue's 90-byte payload: ``subprocess.Popen(["touch", marker])`` on unpickling."""

    def s(text):
        b = text.encode()
        return b"X" + struct.pack("<I", len(b)) + b

    return (
        b"\x80\x04" + s("prunetrain.provenance") + s("subprocess.Popen") + b"\x93"
        b"(](" + s("touch") + s(str(marker)) + b"et" + b"R."
    )


@pytest.mark.parametrize("name", ["checkpoint.pkl", "checkpoint.npz"])
def test_a_crafted_pickle_runs_nothing(tmp_path, name):
    """The issue's critical case, in a real process: one line, exit 2, and nothing ran."""
    folder, marker = tmp_path / "shared-run", tmp_path / "pwned"
    folder.mkdir()
    (folder / name).write_bytes(popen_pickle(marker))
    before = files(folder)
    proc = subprocess.run(
        [sys.executable, "-m", "prunetrain", "search", "--resume", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    if name == "checkpoint.pkl":
        assert "written by an older prunetrain" in proc.stderr
        assert "pickles; they are no longer read" in proc.stderr
    else:
        assert "is damaged or not a checkpoint" in proc.stderr
    assert not marker.exists()
    assert files(folder) == before


def test_an_old_pickled_checkpoint_says_how_to_rerun(capsys, cut):
    (cut / CHECKPOINT).rename(cut / "checkpoint.pkl")
    command = json.loads((cut / "result.json").read_text())["provenance"]["command"]
    err = assert_refused(capsys, cut, "Rerun the search from its start")
    assert command in err


def test_an_eof_error_is_an_error_not_an_interrupt(capsys, cut, monkeypatch):
    """Today an EOFError from a damaged file read as Ctrl-D: 'interrupted', exit 130."""

    def ends_early(*args, **kwargs):
        raise EOFError("Ran out of input")

    monkeypatch.setattr(api, "resume_search", ends_early)
    code, _, err = cli(capsys, "search", "--resume", cut)
    assert code == 2 and err == "prunetrain: error: unexpected end of input (Ran out of input)\n"


def test_read_checkpoint_names_a_missing_file(tmp_path):
    with pytest.raises(ckpt.PrunetrainError, match="no checkpoint at"):
        read_checkpoint(tmp_path / CHECKPOINT)


class DeviceArray:
    """Stands for an array on a device (a CuPy array): not a NumPy array."""

    def __init__(self, host):
        self.host = host


def test_device_arrays_go_through_the_backend(digits):
    """checkpoint.py knows no device: the backend says what is a device array and moves it."""
    from prunetrain.backends import NumpyBackend
    from prunetrain.masks import KeepRule
    from prunetrain.network import FrozenNetwork
    from prunetrain.problem import Problem

    class Device(NumpyBackend):
        def is_device_array(self, obj):
            return isinstance(obj, DeviceArray)

        def to_host(self, array):
            return array.host if isinstance(array, DeviceArray) else np.asarray(array)

        def to_device(self, array):
            return DeviceArray(array)

    network = FrozenNetwork(NetworkSpec((64, 10, 10)), 0)
    problem = Problem(network, digits, KeepRule(0.5), backend=Device(network))
    cache = DeviceArray(np.linspace(0, 1, 6).reshape(2, 3))
    encoder = ckpt._Encoder(ckpt.bound_objects(problem), problem.backend)
    tree = encoder.encode({"cache": cache, "again": cache}, "state", 0)
    assert tree["dict"][0][1] == {"device": ["f8", 0, [2, 3], "C"]}
    decoder = ckpt._Decoder(encoder.pools(), ckpt.bound_objects(problem), problem.backend, "x")
    got = decoder.decode(json.loads(json.dumps(tree)), 0)
    assert isinstance(got["cache"], DeviceArray) and got["again"] is got["cache"]
    np.testing.assert_array_equal(got["cache"].host, cache.host)
