"""The untrusting ``.npz`` reader's numeric ``"array"`` entries, and the regular-file check."""

import os

import numpy as np
import pytest

from prunetrain.errors import ArchiveError, PrunetrainError
from prunetrain.files import check_regular_file
from prunetrain.npz import MAX_NDIM, Expect, read_entries, write_entries


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.array([True, False]),
        np.arange(5, dtype=np.int64),
        np.array(3.5),
        np.zeros((2, 0, 3), dtype=np.uint8),
    ],
)
def test_numeric_arrays_read_back_exactly(tmp_path, array):
    path = write_entries(tmp_path / "a.npz", {"a": array})
    got = read_entries(path, {"a": Expect("array", max_items=100)}, 2**20)["a"]
    assert got.dtype == array.dtype and got.shape == array.shape
    np.testing.assert_array_equal(got, array)


def test_array_entries_are_refused_beyond_their_limits(tmp_path):
    path = write_entries(tmp_path / "a.npz", {"a": np.zeros((4, 5))})
    with pytest.raises(ArchiveError, match="more than 19 elements"):
        read_entries(path, {"a": Expect("array", max_items=19)}, 2**20)
    with pytest.raises(ArchiveError, match="expected 1 dimensions"):
        read_entries(path, {"a": Expect("array", max_items=100, ndim=1)}, 2**20)
    deep = write_entries(tmp_path / "d.npz", {"a": np.zeros((1,) * (MAX_NDIM + 1))})
    with pytest.raises(ArchiveError, match=f"at most {MAX_NDIM} dimensions"):
        read_entries(deep, {"a": Expect("array", max_items=100)}, 2**20)


@pytest.mark.parametrize(
    "array", [np.array(["x"]), np.array([1 + 2j]), np.zeros(2, dtype=">f8"), np.zeros(2, "M8[s]")]
)
def test_array_entries_of_other_dtypes_are_refused(tmp_path, array):
    path = write_entries(tmp_path / "a.npz", {"a": array})
    with pytest.raises(ArchiveError, match="expected a little-endian bool, integer or float"):
        read_entries(path, {"a": Expect("array", max_items=100)}, 2**20)


def test_a_header_claiming_a_huge_array_is_refused_before_allocation(tmp_path):
    path = write_entries(tmp_path / "a.npz", {"a": np.zeros(3)})
    data = path.read_bytes().replace(b"'shape': (3,)", b"'shape': (9999999999999,)")
    path.write_bytes(data)
    with pytest.raises(ArchiveError):
        read_entries(path, {"a": Expect("array", max_items=10**15)}, 2**20)


def test_check_regular_file_refuses_fifos_folders_missing_and_long_names(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(PrunetrainError, match="ticket .*fifo is not a regular file"):
        check_regular_file(fifo, "ticket")
    with pytest.raises(PrunetrainError, match="is a folder"):
        check_regular_file(tmp_path, "ticket")
    with pytest.raises(PrunetrainError, match="No such file"):
        check_regular_file(tmp_path / "missing", "ticket")
    long = tmp_path / ("x" * 300)
    with pytest.raises(PrunetrainError, match="File name too long") as info:
        check_regular_file(long, "ticket")
    assert "\n" not in str(info.value) and len(str(info.value)) < 220
    ok = tmp_path / "ok"
    ok.write_text("1")
    assert check_regular_file(ok) == ok
