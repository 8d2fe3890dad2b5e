import io
import json
import os
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from prunetrain import __version__
from prunetrain.errors import TicketError
from prunetrain.masks import KeepRule, pack_mask, random_mask
from prunetrain.network import FrozenNetwork, NetworkSpec
from prunetrain.ticket import MAX_TICKET_BYTES, Ticket


def make_ticket(sizes=(20, 12, 5), seed=4, keep=0.5):
    net = FrozenNetwork(NetworkSpec(sizes, keep=keep), seed)
    rule = KeepRule(keep)
    mask = random_mask(net.shapes, rule, np.random.default_rng(seed))
    return Ticket(net, mask, rule, {"dataset": "digits", "classes": [0, 1, 2, 3, 4]})


def test_round_trip(tmp_path):
    t = make_ticket()
    path = t.save(tmp_path / "t.npz")
    u = Ticket.load(path)
    assert u.spec == t.spec and u.seed == t.seed and u.rule == t.rule and u.meta == t.meta
    for a, b in zip(u.mask, t.mask):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(u.network.weights, t.network.weights):
        np.testing.assert_array_equal(a, b)
    assert u.keep_fraction == pytest.approx(0.5, abs=0.01)
    assert [p.name for p in tmp_path.iterdir()] == ["t.npz"]  # no temporary left behind


def test_ticket_for_784_300_100_10_is_under_40_kb(tmp_path):
    path = make_ticket((784, 300, 100, 10), seed=0).save(tmp_path / "big.npz")
    assert os.path.getsize(path) < 40_000


def test_truncated_ticket_is_refused(tmp_path):
    path = make_ticket().save(tmp_path / "t.npz")
    data = path.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        with pytest.raises(TicketError, match="damaged"):
            Ticket.load(bad)


def test_flipped_byte_is_refused(tmp_path):
    t = make_ticket()
    path = t.save(tmp_path / "t.npz")
    data = bytearray(path.read_bytes())
    # Flip a byte inside the packed mask payload: the zip CRC or our checksum catches it.
    with np.load(path) as f:
        payload = f["mask"].tobytes()
    offset = data.find(payload) + len(payload) // 2
    assert offset > len(payload) // 2
    data[offset] ^= 0xFF
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(TicketError, match="damaged"):
        Ticket.load(bad)


def fields_of(path) -> dict:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def test_mismatched_weights_hash_is_refused_naming_the_versions(tmp_path):
    t = make_ticket()
    path = t.save(tmp_path / "t.npz")
    assert Ticket.load(path).written_by == {"prunetrain": __version__, "numpy": np.__version__}
    fields = fields_of(path)
    fields["weights_hash"] = np.array("0" * 64)
    fields["written_by"] = np.array(json.dumps({"prunetrain": "0.0.9", "numpy": "1.26.4"}))
    np.savez(tmp_path / "other.npz", **fields)
    with pytest.raises(TicketError, match="weights hash differs") as e:
        Ticket.load(tmp_path / "other.npz")
    assert "written by prunetrain 0.0.9 with NumPy 1.26.4" in str(e.value)
    assert f"this is prunetrain {__version__} with NumPy {np.__version__}" in str(e.value)
    # A ticket is refused for a network with another seed.
    with pytest.raises(TicketError, match="weights hash differs"):
        t.verify(FrozenNetwork(t.spec, t.seed + 1))
    t.verify(FrozenNetwork(t.spec, t.seed))


def test_ticket_without_recorded_versions_still_loads(tmp_path):
    # Tickets written before the versions were recorded lack the field.
    fields = fields_of(make_ticket().save(tmp_path / "t.npz"))
    del fields["written_by"]
    np.savez(tmp_path / "old.npz", **fields)
    old = Ticket.load(tmp_path / "old.npz")
    assert old.written_by is None and old.meta["dataset"] == "digits"
    fields["weights_hash"] = np.array("0" * 64)
    np.savez(tmp_path / "old_other.npz", **fields)
    with pytest.raises(TicketError, match="predates recording which prunetrain and NumPy"):
        Ticket.load(tmp_path / "old_other.npz")


def test_not_a_ticket(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.arange(3))
    with pytest.raises(TicketError, match="not a ticket"):
        Ticket.load(tmp_path / "x.npz")
    (tmp_path / "y.npz").write_text("hello")
    with pytest.raises(TicketError, match="damaged or not a ticket"):
        Ticket.load(tmp_path / "y.npz")
    with pytest.raises(TicketError, match="cannot read ticket .*missing.npz: No such file"):
        Ticket.load(tmp_path / "missing.npz")
    with pytest.raises(TicketError, match="File name too long"):
        Ticket.load(tmp_path / ("x" * 300 + ".npz"))


def test_failed_save_leaves_nothing(tmp_path):
    t = make_ticket()
    t.meta["bad"] = float("nan")  # not JSON: saving must fail before touching disk
    with pytest.raises(ValueError):
        t.save(tmp_path / "t.npz")
    assert list(tmp_path.iterdir()) == []


def test_meta_is_json(tmp_path):
    path = make_ticket().save(tmp_path / "t.npz")
    with np.load(path) as f:
        assert json.loads(str(f["meta"]))["dataset"] == "digits"


# --- hostile tickets ---------------------------------------------------------------------


def ticket_arrays(t=None) -> dict:
    """The arrays a ticket file holds (to edit and rewrite)."""
    return (t or make_ticket()).arrays()


def header(shape, descr="|u1", fortran=False) -> str:
    """A .npy header text, written by hand."""
    return repr({"descr": descr, "fortran_order": fortran, "shape": shape})


def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
    return buffer.getvalue()


def raw_npy(header: str, payload: bytes = b"") -> bytes:
    """A .npy entry with a header written by hand (version 1.0)."""
    h = header.encode("latin1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + payload


def write_zip(path, entries: dict, compression=zipfile.ZIP_STORED) -> bytes:
    """Entries (name -> array or raw bytes) as a zip at ``path``; returns the file's bytes."""
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, value in entries.items():
            data = value if isinstance(value, bytes) else npy_bytes(value)
            z.writestr(f"{name}.npy", data)
    return path.read_bytes()


def with_fields(tmp_path, name="t.npz", **changes) -> "os.PathLike":
    """A ticket whose entries are replaced by ``changes`` (arrays or raw .npy bytes)."""
    entries = ticket_arrays()
    entries.update(changes)
    path = tmp_path / name
    write_zip(path, entries)
    return path


def patch_central_and_local(data: bytes, offset_in_header: int, fmt: str, value) -> bytes:
    """Set a field of every local and central header (offsets from the local header's start)."""
    out = bytearray(data)
    central_shift = {6: 8, 8: 10}  # flag bits, compression method: local offset -> central
    for signature, shift in ((b"PK\x03\x04", 0), (b"PK\x01\x02", 2)):
        at = out.find(signature)
        while at >= 0:
            where = at + (offset_in_header if shift == 0 else central_shift[offset_in_header])
            struct.pack_into(fmt, out, where, value)
            at = out.find(signature, at + 4)
    return bytes(out)


def load_fails(path, match="damaged or not a ticket"):
    with pytest.raises(TicketError, match=match) as e:
        Ticket.load(path)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_zip_level_faults_raise_ticket_error(tmp_path):
    good = make_ticket().save(tmp_path / "good.npz").read_bytes()
    cases = {
        "encrypted": patch_central_and_local(good, 6, "<H", 0x1),  # RuntimeError in zipfile
        "patched-data-flag": patch_central_and_local(good, 6, "<H", 0x20),  # NotImplementedError
        "method-99": patch_central_and_local(good, 8, "<H", 99),  # NotImplementedError
    }
    deflated = bytearray(write_zip(tmp_path / "d.npz", ticket_arrays(), zipfile.ZIP_DEFLATED))
    start = deflated.find(b"mask.npy") + len("mask.npy")
    deflated[start + 5 : start + 40] = bytes(35)  # garbage deflate stream: zlib.error
    cases["bad-deflate"] = bytes(deflated)
    for name, data in cases.items():
        path = tmp_path / f"{name}.npz"
        path.write_bytes(data)
        load_fails(path)


def test_npy_header_faults_raise_ticket_error(tmp_path):
    n = (make_ticket().spec.n_weights + 7) // 8
    headers = {
        # tokenize.TokenError in NumPy's header parser
        "unterminated": "{'descr': '|u1', 'fortran_order': False, 'shape': (",
        # MemoryError: 1e12 elements claimed by a tiny entry
        "huge-shape": header((10**12,)),
        "two-d": header((1, n)),
        "float-mask": header((n,), "<f8"),
        "fortran": header((n,), fortran=True),
        "bool-shape": header((True,)),
        "not-a-dict": "[1, 2, 3]",
        "nested": "(" * 500 + ")" * 500,
    }
    for name, text in headers.items():
        path = with_fields(tmp_path, f"{name}.npz", mask=raw_npy(text, bytes(n)))
        load_fails(path)


def test_json_faults_raise_ticket_error(tmp_path):
    spec = make_ticket().spec.to_dict()
    deep = "[" * 100_000 + "]" * 100_000  # RecursionError in json
    cases = {
        "deep-meta": {"meta": np.array(deep)},
        "infinite-size": {"spec": np.array(json.dumps(spec).replace("12", "Infinity"))},
        "nan-keep": {"spec": np.array(json.dumps(spec).replace("0.5", "NaN"))},
        "meta-list": {"meta": np.array("[1, 2]")},
        "meta-string": {"meta": np.array('"digits"')},
        "meta-int": {"meta": np.array("5")},
        "meta-dataset-int": {"meta": np.array('{"dataset": 5}')},
        "meta-classes-dict": {"meta": np.array('{"classes": {"a": 1}}')},
        "meta-classes-dtype": {"meta": np.array('{"classes": [0], "classes_dtype": "(99999,)f8"}')},
        "rule-list": {"rule": np.array("[0.5]")},
        "spec-not-json": {"spec": np.array("{layer_sizes")},
        "written-by-list": {"written_by": np.array('["0.1.0"]')},
        "written-by-number": {"written_by": np.array('{"numpy": 2}')},
        "written-by-not-json": {"written_by": np.array("{numpy")},
        "written-by-bytes": {"written_by": np.frombuffer(b"1.0", dtype=np.uint8)},
    }
    for name, change in cases.items():
        load_fails(with_fields(tmp_path, f"{name}.npz", **change))


def test_lenient_values_are_refused(tmp_path):
    t = make_ticket()
    spec = t.spec.to_dict()
    cases = {
        "fractional-size": {**spec, "layer_sizes": [20, 12.7, 5]},
        "integral-float-size": {**spec, "layer_sizes": [20, 12.0, 5]},
        "bool-size": {**spec, "layer_sizes": [20, True, 5]},
        "string-keep": {**spec, "keep": "0.5"},
        "int-bias": {**spec, "bias": 1},
        "one-layer": {**spec, "layer_sizes": [20]},
    }
    for name, bad in cases.items():
        load_fails(with_fields(tmp_path, f"{name}.npz", spec=np.array(json.dumps(bad))))
    mask = pack_mask(t.mask)
    for name, change in {
        "float-seed": {"seed": np.array(4.0)},
        "fraction-seed": {"seed": np.array(0.9)},
        "infinite-seed": {"seed": np.array(np.inf)},
        "negative-seed": {"seed": np.array(-1)},
        "float-mask": {"mask": mask.astype(np.float64)},
        "2d-mask": {"mask": mask[None, :]},
        "bool-mask": {"mask": mask.astype(bool)},
        "short-mask": {"mask": mask[:-1]},
        "text-version": {"format_version": np.array("1")},
    }.items():
        load_fails(with_fields(tmp_path, f"{name}.npz", **change))


def test_a_small_file_claiming_a_huge_network_is_refused_before_any_allocation(tmp_path):
    # (A larger network's spec is refused before its mask: network.MAX_WEIGHTS.)
    spec = {**make_ticket().spec.to_dict(), "layer_sizes": [10000, 20000, 10]}
    n = (10000 * 20000 + 20000 * 10) // 8
    # The mask entry claims the 25 MB such a network needs, but holds 256 KB.
    mask = raw_npy(header((n,)), bytes(2**18))
    path = with_fields(tmp_path, spec=np.array(json.dumps(spec)), mask=mask)
    tracemalloc.start()
    try:
        message = load_fails(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "25025000" in message
    assert peak < 4 * 2**20


def test_unknown_entries_are_never_read(tmp_path):
    entries = ticket_arrays()
    entries["junk"] = np.zeros(8 * 2**20, dtype=np.uint8)  # 8 MB nobody asked for
    path = tmp_path / "t.npz"
    write_zip(path, entries)
    tracemalloc.start()
    try:
        t = Ticket.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert t.spec == make_ticket().spec
    assert peak < 2 * 2**20


def test_size_cap_is_stated(tmp_path):
    path = make_ticket().save(tmp_path / "t.npz")
    with path.open("r+b") as f:  # sparse: the size without the disk space
        f.truncate(MAX_TICKET_BYTES + 1)
    message = load_fails(path, "at most")
    assert str(MAX_TICKET_BYTES) in message and "MiB" in message


def test_saved_tickets_are_byte_identical(tmp_path):
    a = make_ticket().save(tmp_path / "a.npz").read_bytes()
    b = make_ticket().save(tmp_path / "b.npz").read_bytes()
    assert a == b
    with np.load(tmp_path / "a.npz") as f:  # still a plain .npz
        assert str(f["format"]) == "prunetrain-ticket"


def zip_mutations(data: bytes, rng: np.random.Generator):
    """Damaged copies of a ticket file's bytes: flips, cuts, splices, header fields."""
    n = len(data)
    for _ in range(60):  # random byte flips
        out = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            out[int(rng.integers(0, n))] ^= int(rng.integers(1, 256))
        yield bytes(out)
    for _ in range(20):  # cuts
        yield data[: int(rng.integers(0, n))]
    for _ in range(20):  # splices of random bytes
        at = int(rng.integers(0, n))
        yield data[:at] + rng.bytes(int(rng.integers(1, 64))) + data[at:]
    for _ in range(50):  # 16/32-bit fields set to extreme values
        out = bytearray(data)
        at = int(rng.integers(0, n - 4))
        fmt = "<I" if rng.random() < 0.5 else "<H"
        value = int(rng.choice([0, 1, 0xFFFF, 0xFFFFFFFF if fmt == "<I" else 0x7FFF, 99]))
        struct.pack_into(fmt, out, at, value)
        yield bytes(out)


JUNK = [b"9999999999", b"-", b"(((", b"1e400", b"\x00", b"Infinity", b"[", b"true", b"'", b"0.0"]


def entry_mutations(tmp_path, rng: np.random.Generator):
    """Tickets whose entries are damaged inside a valid zip (right CRCs), to reach the parsers."""
    entries = {name: npy_bytes(a) for name, a in ticket_arrays().items()}
    names = sorted(entries)
    path = tmp_path / "entry.npz"
    for i in range(180):
        changed = dict(entries)
        name = names[i % len(names)]
        raw = bytearray(changed[name])
        kind = i // len(names) % 4
        if kind == 0:  # flip bytes anywhere in the entry, header included
            for _ in range(int(rng.integers(1, 4))):
                raw[int(rng.integers(0, len(raw)))] ^= int(rng.integers(1, 256))
        elif kind == 1:  # cut or pad the entry
            raw = raw[: int(rng.integers(0, len(raw)))] if rng.random() < 0.5 else raw + bytes(8)
        else:  # insert junk after a token of the header or the text
            tokens = [t for t in (b"'shape': (", b"'descr': '", b"\x00\x00\x00", b"{") if t in raw]
            token = tokens[int(rng.integers(0, len(tokens)))] if tokens else b""
            at = raw.find(token) + len(token)
            raw[at:at] = JUNK[int(rng.integers(0, len(JUNK)))]
        changed[name] = bytes(raw)
        yield write_zip(path, changed)
    t = make_ticket()
    for i in range(60):  # well-formed entries holding edited JSON
        text = json.dumps(
            {"spec": t.spec.to_dict(), "rule": t.rule.to_dict(), "meta": t.meta}[
                ("spec", "rule", "meta")[i % 3]
            ]
        )
        at = int(rng.integers(0, len(text)))
        text = text[:at] + JUNK[int(rng.integers(0, len(JUNK)))].decode("latin1") + text[at:]
        yield write_zip(path, {**ticket_arrays(), ("spec", "rule", "meta")[i % 3]: np.array(text)})


def test_fuzzed_tickets_load_or_raise_ticket_error(tmp_path):
    good = make_ticket().save(tmp_path / "good.npz").read_bytes()
    rng = np.random.default_rng(2024)
    path = tmp_path / "fuzz.npz"
    outcomes = {"loaded": 0, "refused": 0}
    start = time.perf_counter()
    for data in [*zip_mutations(good, rng), *entry_mutations(tmp_path, rng)]:
        path.write_bytes(data)
        try:
            t = Ticket.load(path)
        except TicketError as e:
            assert "\n" not in str(e)
            outcomes["refused"] += 1
        else:
            assert [m.shape for m in t.mask] == t.spec.shapes
            outcomes["loaded"] += 1
    assert sum(outcomes.values()) == 390 and outcomes["refused"] > 300
    assert time.perf_counter() - start < 20


def digits_ticket(sizes, seed=0) -> Ticket:
    net = FrozenNetwork(NetworkSpec(sizes), seed)
    mask = random_mask(net.shapes, KeepRule(0.5), np.random.default_rng(seed))
    return Ticket(net, mask, KeepRule(0.5), {"dataset": "digits"})


#: The largest networks whose valid tickets stay under 64 KB (one bit a weight), one per
#: shape family. Evaluating one costs memory in proportion to its widest layer times the
#: samples evaluated at once, so the worst are wide layers bought with few weights.
WORST_UNDER_64_KB = {
    "wide": (64, 6500, 10),  # one wide hidden layer
    "deep": (64, 420, 420, 420, 10),  # several equal hidden layers
    "bottleneck": (64, 1, 44000, 10),  # a wide hidden layer behind a one-unit layer
    "wide-output": (64, 1, 480000),  # 480,000 outputs behind a one-unit layer
}


def bzip2_entry(path, name: str, header: bytes, zero_bytes: int) -> None:
    """An archive of one .npy entry, ``header`` and ``zero_bytes`` zeros compressed by bzip2."""
    info = zipfile.ZipInfo(f"{name}.npy")
    info.compress_type = zipfile.ZIP_BZIP2
    with zipfile.ZipFile(path, "w") as z, z.open(info, "w", force_zip64=True) as f:
        f.write(header)
        for _ in range(zero_bytes // 2**20):
            f.write(bytes(2**20))


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmHWM from /proc")
def test_no_ticket_under_64_kb_makes_evaluate_use_300_mb(tmp_path):
    """The acceptance bound, measured: peak RSS of one process evaluating the worst small files.

    The process first evaluates a tiny ticket: its peak is what the imports and the
    dataset cost (about 220 MB on the machine this was written on). Every other file
    under 64 KB -- the largest valid tickets of each shape family, a 64 KB weights
    file, and hostile files claiming or inflating to far more -- may add little to it.
    """
    models = {"tiny": digits_ticket((64, 16, 10)).save(tmp_path / "tiny.npz")}
    for name, sizes in WORST_UNDER_64_KB.items():
        models[name] = digits_ticket(sizes).save(tmp_path / f"{name}.npz")
    # Trained weights of 64 KB: 32,000 float16 values, 32,000 outputs.
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(s).astype(np.float16) for s in ((64, 1), (1, 32000))]
    np.savez(tmp_path / "weights.npz", weight_0=weights[0], weight_1=weights[1])
    models["weights-wide-output"] = tmp_path / "weights.npz"
    spec = {**digits_ticket((64, 16, 10)).spec.to_dict(), "layer_sizes": [64, 100000, 100000, 10]}
    claimed = (64 * 100000 + 100000 * 100000 + 100000 * 10 + 7) // 8
    base = ticket_arrays(digits_ticket((64, 16, 10)))
    entries = {
        "claims-1.25-GB": {
            **base,
            "spec": np.array(json.dumps(spec)),
            "mask": raw_npy(header((claimed,))),
        },
        "claims-1e12": {
            **base,
            "mask": raw_npy(header((10**12,))),
        },
        "deep-meta": {**base, "meta": np.array("[" * 7000 + "]" * 7000)},
    }
    for name, fields in entries.items():
        models[name] = tmp_path / f"{name}.npz"
        write_zip(models[name], fields)
    # A deflated mask that would inflate to 48 MB (a 400M-weight network), in a few KB.
    bomb_spec = {**spec, "layer_sizes": [64, 6_000_000, 10]}
    bomb_mask = np.zeros((64 * 6_000_000 + 6_000_000 * 10 + 7) // 8, dtype=np.uint8)
    models["deflate-bomb"] = tmp_path / "bomb.npz"
    write_zip(
        models["deflate-bomb"],
        {**base, "spec": np.array(json.dumps(bomb_spec)), "mask": bomb_mask},
        zipfile.ZIP_DEFLATED,
    )
    del bomb_mask
    # A weights file whose weight_0 inflates (bzip2) to 64 MB, in under 1 KB.
    models["weights-bzip2-bomb"] = tmp_path / "wbomb.npz"
    bzip2_entry(
        models["weights-bzip2-bomb"], "weight_0", raw_npy(header((64, 2**17), "<f8")), 64 * 2**20
    )
    # The zip directory claims a 300 MB entry the file does not hold.
    big = bytearray(write_zip(tmp_path / "x.npz", {**base, "junk": np.zeros(4, np.uint8)}))
    at = big.rfind(b"PK\x01\x02")  # the last central header is the junk entry's
    struct.pack_into("<II", big, at + 20, 300 * 2**20, 300 * 2**20)
    models["claims-300-MB-entry"] = tmp_path / "claims.npz"
    models["claims-300-MB-entry"].write_bytes(bytes(big))
    assert all(os.path.getsize(p) < 64 * 1024 for p in models.values())
    assert os.path.getsize(models["weights-bzip2-bomb"]) < 1024

    script = """
import resource, sys
# A guard for this machine if the bound breaks: allocations past 2 GB fail instead.
resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))
from prunetrain.cli import main

def peak_mb():  # VmHWM: this process's own peak (ru_maxrss may carry the forking parent's)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024

for i, path in enumerate(sys.argv[1:]):
    # The 480,000 logsumexps a sample of wide-output take time, not memory: one split.
    splits = ["--split", "test"] if "wide-output" in path else []
    try:
        main(["evaluate", path, "--dataset", "digits", *splits])
    except SystemExit as e:
        print("EXIT", path, e.code)
    if i == 0:
        print("BASE_MB", peak_mb())
print("PEAK_MB", peak_mb())
"""
    proc = subprocess.run(
        [sys.executable, "-c", script, *map(str, models.values())],
        capture_output=True,
        text=True,
        timeout=300,
    )
    exits = dict(line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("EXIT "))
    valid = ("tiny", *WORST_UNDER_64_KB, "weights-wide-output", "claims-300-MB-entry")
    expected = {str(p): ("0" if n in valid else "2") for n, p in models.items()}
    assert exits == expected, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    base_mb = float(proc.stdout.split("BASE_MB")[1].split()[0])
    peak = float(proc.stdout.split("PEAK_MB")[1])
    # What the files themselves add: chunked evaluation keeps it to about 15 MB.
    print(f"peak RSS {peak:.0f} MB, {base_mb:.0f} MB after the tiny ticket")
    assert peak - base_mb < 32, (
        f"peak RSS {peak:.0f} MB, {peak - base_mb:.0f} MB over the tiny ticket's"
    )
    assert peak < 300, f"peak RSS {peak:.0f} MB ({base_mb:.0f} MB for a tiny ticket)"


def test_data_identity_and_scaling_in_meta_are_checked(tmp_path):
    """The meta keys a search ticket records for evaluate and predict (issue 19) load well typed."""
    good = {
        "dataset": "iris",
        "data_source": {"path": "iris.csv", "resolved": "/d/iris.csv", "sha256": "ab" * 32},
        "scaling": {"offset": [0.0, 1.5], "factor": [0.5, 2.0], "clip": True},
        "feature_names": ["a", "b"],
        "loss": 0.25,
        "best_loss": None,
    }
    path = with_fields(tmp_path, "good.npz", meta=np.array(json.dumps(good)))
    assert Ticket.load(path).meta == good
    named = {"data_source": {"name": "digits"}, "scaling": {"offset": 0.0, "factor": 0.0625}}
    path = with_fields(tmp_path, "named.npz", meta=np.array(json.dumps(named)))
    assert Ticket.load(path).meta == named
    source = good["data_source"]
    bad = {
        "source-list": {"data_source": ["iris.csv"]},
        "source-no-hash-no-name": {"data_source": {"path": "iris.csv"}},
        "source-short-hash": {"data_source": {**source, "sha256": "ab"}},
        "source-no-resolved": {"data_source": {"path": "a", "sha256": "ab" * 32}},
        "source-number": {"data_source": {**source, "path": 5}},
        "scaling-no-factor": {"scaling": {"offset": 0.0}},
        "scaling-text": {"scaling": {"offset": "0", "factor": 1.0}},
        "scaling-nested": {"scaling": {"offset": [[0.0]], "factor": 1.0}},
        "scaling-extra": {"scaling": {"offset": 0.0, "factor": 1.0, "eval": "x"}},
        "scaling-clip-int": {"scaling": {"offset": 0.0, "factor": 1.0, "clip": 1}},
        "feature-names-numbers": {"feature_names": [1, 2]},
        "loss-text": {"loss": "0.25"},
    }
    for name, meta in bad.items():
        message = load_fails(with_fields(tmp_path, f"{name}.npz", meta=np.array(json.dumps(meta))))
        assert repr(next(iter(meta))) in message
