import json
import os

import numpy as np
import pytest

from prunetrain import __version__
from prunetrain.errors import TicketError
from prunetrain.masks import KeepRule, random_mask
from prunetrain.network import FrozenNetwork, NetworkSpec
from prunetrain.ticket import Ticket


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
    with pytest.raises(TicketError, match="no ticket"):
        Ticket.load(tmp_path / "missing.npz")


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
