"""Hostile model files given to ``prunetrain evaluate`` and ``predict`` (issue 28, section 3).

A model file (a ticket, or the ``weights.npz`` a baseline writes) comes from
anywhere. Whatever it holds, both commands either work or print one line and
exit 2: no traceback, no hang, no NaN printed as a prediction, and nothing
allocated that the file does not hold.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import struct
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from prunetrain.api import load_model
from prunetrain.baselines.weights import TrainedWeights
from prunetrain.cli import main
from prunetrain.errors import PrunetrainError
from prunetrain.masks import KeepRule, random_mask
from prunetrain.network import FrozenNetwork, NetworkSpec
from prunetrain.ticket import Ticket

DIGITS_META = {
    "dataset": "digits",
    "classes": list(range(10)),
    "data_source": {"name": "digits"},
    "scaling": {"offset": 0.0, "factor": 0.0625, "clip": False},
}


def cli(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return e.value.code, out, err


def refused(capsys, *args, match: str) -> str:
    """Run the CLI; it must print exactly one error line containing ``match`` and exit 2."""
    code, out, err = cli(capsys, *args)
    assert code == 2, (code, out, err)
    assert err.startswith("prunetrain: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err + out
    assert match in err, err
    return err


def make_ticket(meta=None) -> Ticket:
    net = FrozenNetwork(NetworkSpec((64, 16, 10)), 0)
    mask = random_mask(net.shapes, KeepRule(0.5), np.random.default_rng(0))
    return Ticket(net, mask, KeepRule(0.5), dict(DIGITS_META if meta is None else meta))


def weight_arrays() -> dict[str, np.ndarray]:
    """The entries of a real weights.npz (64-16-10, with biases), as TrainedWeights.save writes them."""
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(s).astype(np.float32) for s in ((64, 16), (16, 10))]
    biases = [rng.standard_normal(n).astype(np.float32) for n in (16, 10)]
    return {
        "weight_0": weights[0],
        "weight_1": weights[1],
        "bias_0": biases[0],
        "bias_1": biases[1],
        "format": np.array("prunetrain-weights"),
        "meta": np.array(json.dumps(DIGITS_META, sort_keys=True)),
    }


def write_npz(path, entries: dict, compression=zipfile.ZIP_STORED):
    """Entries (name -> array, or raw .npy bytes) as a zip archive at ``path``."""
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, value in entries.items():
            if not isinstance(value, bytes):
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.asanyarray(value), allow_pickle=False)
                value = buffer.getvalue()
            z.writestr(f"{name}.npy", value)
    return path


def weights_with(tmp_path, name="w.npz", **changes):
    """A weights file whose entries are changed (``None`` removes one)."""
    entries = weight_arrays()
    for key, value in changes.items():
        if value is None:
            entries.pop(key)
        else:
            entries[key] = value
    return write_npz(tmp_path / name, entries)


@pytest.fixture
def samples(tmp_path):
    """Raw digits features (0..16) of a few samples, as ``predict`` reads them."""
    from sklearn.datasets import load_digits

    path = tmp_path / "samples.npz"
    np.savez(path, X=load_digits().data[:12])
    return path


def assert_both_refuse(capsys, model, samples, match):
    """``evaluate`` and ``predict`` refuse ``model`` in one line naming ``match``."""
    refused(capsys, "evaluate", model, "--dataset", "digits", match=match)
    refused(capsys, "predict", model, samples, match=match)


# --- the files as written work --------------------------------------------------------------


def test_real_ticket_and_weights_evaluate_and_predict(tmp_path, capsys, samples):
    for model in (
        make_ticket().save(tmp_path / "ticket.npz"),
        TrainedWeights(*_weights_and_biases(), None, dict(DIGITS_META)).save(tmp_path / "w.npz"),
    ):
        code, out, err = cli(capsys, "evaluate", model, "--dataset", "digits", "--json")
        assert code == 0, err
        assert set(json.loads(out)["metrics"]) == {"train", "val", "test"}
        code, out, err = cli(capsys, "predict", model, samples, "--proba")
        assert code == 0, err
        rows = out.splitlines()
        assert len(rows) == 13 and "nan" not in out


def _weights_and_biases():
    entries = weight_arrays()
    return [entries["weight_0"], entries["weight_1"]], [entries["bias_0"], entries["bias_1"]]


def test_weights_as_older_prunetrain_wrote_them_still_load(tmp_path):
    """np.savez (stored entries, zip64 extras, no format or meta entry) as every version wrote it."""
    entries = weight_arrays()
    arrays = {k: v for k, v in entries.items() if k.startswith(("weight_", "bias_"))}
    np.savez(tmp_path / "weights.npz", **arrays)
    model = load_model(tmp_path / "weights.npz")
    assert isinstance(model, TrainedWeights) and model.layer_sizes == (64, 16, 10)
    np.testing.assert_array_equal(model.weights[1], entries["weight_1"])


# --- weights files that do not hold an MLP ---------------------------------------------------

BAD_WEIGHTS = {
    "0-d": ({"weight_0": np.array(1.0)}, "weight_0"),
    "1-d": ({"weight_0": np.ones(64, np.float32)}, "weight_0"),
    "3-d": ({"weight_0": np.ones((64, 16, 1), np.float32)}, "weight_0"),
    "string": ({"weight_0": np.array(["a" * 20] * 4)}, "weight_0"),
    "bool": ({"weight_0": np.ones((64, 16), bool)}, "weight_0"),
    "nan": ({"weight_1": np.full((16, 10), np.nan, np.float32)}, "weight_1"),
    "bias-length": ({"bias_0": np.ones(7, np.float32)}, "bias_0"),
    "bias-2-d": ({"bias_1": np.ones((10, 1), np.float32)}, "bias_1"),
    "bias-string": ({"bias_1": np.array("0" * 10)}, "bias_1"),
    "one-bias-of-two": ({"bias_1": None}, "bias"),
    "unchained": ({"weight_1": np.ones((15, 10), np.float32)}, "chain"),
    "empty-layer": (
        {"weight_0": np.ones((64, 0), np.float32), "weight_1": np.ones((0, 10), np.float32)},
        "weight_0",
    ),
    "gap-in-numbers": (
        {"weight_1": None, "bias_1": None, "weight_2": np.ones((16, 10), np.float32)},
        "no weight_1",
    ),
    "deep-meta": ({"meta": np.array("[" * 400_000 + "]" * 400_000)}, "meta"),
    "meta-number": ({"meta": np.array("5")}, "meta"),
    "meta-bytes": ({"meta": np.frombuffer(b"{}", np.uint8)}, "meta"),
}


@pytest.mark.parametrize("case", sorted(BAD_WEIGHTS))
def test_weights_that_are_not_an_mlp_are_refused_in_one_line(tmp_path, capsys, samples, case):
    changes, match = BAD_WEIGHTS[case]
    path = weights_with(tmp_path, **changes)
    assert_both_refuse(capsys, path, samples, match)


def test_a_ticket_whose_meta_is_nested_800_kb_deep_is_refused(tmp_path, capsys, samples):
    path = tmp_path / "t.npz"
    write_npz(path, {**make_ticket().arrays(), "meta": np.array("[" * 400_000 + "]" * 400_000)})
    assert_both_refuse(capsys, path, samples, "nested too deeply")


def test_too_many_layers_are_refused_before_reading_them(tmp_path, capsys, samples):
    entries = {f"weight_{i}": np.ones((1, 1), np.float32) for i in range(80)}
    write_npz(tmp_path / "deep.npz", entries)
    assert_both_refuse(capsys, tmp_path / "deep.npz", samples, "80 layers")


# --- damaged or hostile archives --------------------------------------------------------------


def raw_npy(header: dict, payload: bytes = b"") -> bytes:
    h = repr(header).encode("latin1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + payload


def test_a_bare_npy_claiming_800_gb_is_refused_without_allocating(tmp_path, capsys, samples):
    path = tmp_path / "big.npz"
    path.write_bytes(raw_npy({"descr": "<f8", "fortran_order": False, "shape": (10**11,)}))
    assert path.stat().st_size < 200
    assert_both_refuse(capsys, path, samples, "not a zip archive")


def set_version_needed(data: bytes, version: int) -> bytes:
    """Every central header's 'version needed to extract' set (zipfile: NotImplementedError)."""
    out = bytearray(data)
    at = out.find(b"PK\x01\x02")
    while at >= 0:
        struct.pack_into("<H", out, at + 6, version)
        at = out.find(b"PK\x01\x02", at + 4)
    return bytes(out)


def test_an_unsupported_zip_version_is_refused_in_one_line(tmp_path, capsys, samples):
    ticket = make_ticket().save(tmp_path / "t.npz")
    weights = write_npz(tmp_path / "w.npz", weight_arrays())
    for path in (ticket, weights):
        path.write_bytes(set_version_needed(path.read_bytes(), 99))
        assert_both_refuse(capsys, path, samples, "zip")


def bzip2_bomb(path, n_floats: int) -> None:
    """A weights file whose weight_0 entry inflates (bzip2) to ``8 * n_floats`` bytes."""
    shape = (64, n_floats // 64)
    header = raw_npy({"descr": "<f8", "fortran_order": False, "shape": shape})
    info = zipfile.ZipInfo("weight_0.npy")
    info.compress_type = zipfile.ZIP_BZIP2
    with zipfile.ZipFile(path, "w") as z:
        with z.open(info, "w", force_zip64=True) as f:
            f.write(header)
            zeros = bytes(2**20)
            for _ in range(8 * n_floats // len(zeros)):
                f.write(zeros)


def test_a_compressed_bomb_is_refused_before_it_is_inflated(tmp_path, capsys, samples):
    path = tmp_path / "bomb.npz"
    bzip2_bomb(path, 8 * 2**20)  # 64 MB inflated
    assert path.stat().st_size < 2048
    tracemalloc.start()
    try:
        with pytest.raises(PrunetrainError, match="compressed") as e:
            load_model(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "\n" not in str(e.value)
    assert peak < 4 * 2**20
    assert_both_refuse(capsys, path, samples, "compressed")


# --- what is not a regular file, or not a name ----------------------------------------------


@contextlib.contextmanager
def deadline(seconds: float):
    """Fail (instead of hanging the suite) if the block takes longer than ``seconds``."""

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_as_model_is_refused_at_once(tmp_path, capsys, samples):
    fifo = tmp_path / "ticket.npz"
    os.mkfifo(fifo)
    with deadline(10):
        assert_both_refuse(capsys, fifo, samples, "not a regular file")


def test_a_folder_as_model_is_refused(tmp_path, capsys, samples):
    (tmp_path / "dir.npz").mkdir()
    assert_both_refuse(capsys, tmp_path / "dir.npz", samples, "is a directory")


def test_missing_model_and_a_name_too_long(tmp_path, capsys, samples):
    assert_both_refuse(capsys, tmp_path / "missing.npz", samples, "No such file")
    long_name = tmp_path / ("x" * 300 + ".npz")
    assert_both_refuse(capsys, long_name, samples, "File name too long")


def test_predict_refuses_data_that_is_not_a_regular_file_or_a_name(tmp_path, capsys):
    model = make_ticket().save(tmp_path / "t.npz")
    refused(capsys, "predict", model, tmp_path / ("x" * 300 + ".npz"), match="File name too long")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "data.npz")
        with deadline(10):
            refused(capsys, "predict", model, tmp_path / "data.npz", match="not a regular file")


def test_a_recorded_data_path_too_long_is_refused_in_one_line(tmp_path, capsys):
    source = {"path": "x" * 300 + ".csv", "resolved": "/" + "y" * 300 + ".csv", "sha256": "a" * 64}
    model = make_ticket({**DIGITS_META, "data_source": source}).save(tmp_path / "t.npz")
    refused(capsys, "evaluate", model, match="pass --dataset")


# --- feature scaling and outputs that are not finite -----------------------------------------


def test_a_scaling_beyond_its_bound_is_refused_when_read(tmp_path, capsys, samples):
    for name, scaling in {
        "factor": {"offset": 0.0, "factor": 1e308},
        "factor-list": {"offset": 0.0, "factor": [0.0625] * 63 + [1e39]},
        "negative": {"offset": 0.0, "factor": -0.0625},
    }.items():
        meta = {**DIGITS_META, "scaling": scaling}
        path = make_ticket(meta).save(tmp_path / f"{name}.npz")
        err = refused(capsys, "predict", path, samples, match="scaling")
        assert "3.4e+38" in err or "3.40282e+38" in err
        with pytest.raises(PrunetrainError, match="scaling"):
            load_model(path)
    # The same bound holds for trained weights, whose meta is checked the same way.
    meta = np.array(json.dumps({**DIGITS_META, "scaling": {"offset": 0.0, "factor": 1e308}}))
    refused(capsys, "predict", weights_with(tmp_path, meta=meta), samples, match="scaling")


def test_predict_never_prints_nan(tmp_path, capsys):
    """Finite raw features that overflow float32 once scaled, or the network's outputs, are refused."""
    ticket = make_ticket().save(tmp_path / "t.npz")
    weights = write_npz(tmp_path / "w.npz", weight_arrays())
    huge = tmp_path / "huge.npz"
    np.savez(huge, X=np.full((3, 64), 1e300))  # finite, but 6e298 after /16: beyond float32
    for model in (ticket, weights):
        refused(capsys, "predict", model, huge, match="float32")
    # Within float32 once scaled, but the network's outputs overflow.
    large = tmp_path / "large.npz"
    np.savez(large, X=np.full((3, 64), 16 * 3e38))
    for model in (ticket, weights):
        refused(capsys, "predict", model, large, match="not finite")


def test_predict_refuses_more_classes_than_outputs(tmp_path, capsys, samples):
    path = make_ticket({**DIGITS_META, "classes": list(range(12))}).save(tmp_path / "t.npz")
    refused(capsys, "predict", path, samples, match="10 outputs but its meta lists 12 classes")


def test_weights_whose_outputs_overflow_are_refused_by_evaluate(tmp_path, capsys):
    w = np.full((64, 16), 1e38, np.float32)
    path = weights_with(tmp_path, weight_0=w)
    refused(capsys, "evaluate", path, "--dataset", "digits", "--json", match="not finite")


# --- fuzzing: every damaged copy loads identically or is refused in one line ----------------


def same_model(a, b) -> bool:
    if type(a) is not type(b) or a.meta != b.meta:
        return False
    if isinstance(a, Ticket):
        return (
            a.spec == b.spec
            and a.seed == b.seed
            and a.rule == b.rule
            and all(np.array_equal(x, y) for x, y in zip(a.mask, b.mask))
        )
    pairs = [(a.weights, b.weights), (a.biases or [], b.biases or []), (a.mask or [], b.mask or [])]
    return all(
        len(x) == len(y) and all(np.array_equal(u, v) for u, v in zip(x, y)) for x, y in pairs
    )


def test_byte_flips_of_a_ticket_and_a_weights_file_load_identically_or_are_refused(tmp_path):
    rng = np.random.default_rng(28)
    originals = {
        "ticket": make_ticket().save(tmp_path / "ticket.npz"),
        "weights": TrainedWeights(*_weights_and_biases(), None, dict(DIGITS_META)).save(
            tmp_path / "weights.npz"
        ),
    }
    path = tmp_path / "flipped.npz"
    start = time.perf_counter()
    for kind, original in originals.items():
        good = original.read_bytes()
        reference = load_model(original)
        headers = [m for m in range(len(good) - 4) if good[m : m + 2] == b"PK"]
        outcomes = {"same": 0, "refused": 0}
        for _ in range(150):
            data = bytearray(good)
            # Half the flips hit the zip structure (headers, directory), half anywhere.
            if rng.random() < 0.5:
                at = int(rng.choice(headers)) + int(rng.integers(0, 46))
            else:
                at = int(rng.integers(0, len(good)))
            at = min(at, len(good) - 1)
            data[at] ^= int(rng.integers(1, 256))
            path.write_bytes(bytes(data))
            try:
                model = load_model(path)
            except PrunetrainError as e:
                assert "\n" not in str(e), str(e)
                outcomes["refused"] += 1
            else:
                assert same_model(model, reference), (kind, at)
                outcomes["same"] += 1
        assert outcomes["refused"] > 50, (kind, outcomes)
    assert time.perf_counter() - start < 20
