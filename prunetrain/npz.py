"""Small ``.npz`` archives read without trusting them, and written reproducibly.

``np.load`` trusts its file: it reads whatever entries are there, inflates
them, and allocates what an array header claims before it finds the data
missing. A ticket comes from anywhere, so :func:`read_entries` instead

- refuses a file over a size cap, and a zip directory claiming more entries or
  bytes than a small archive has, before the zip library parses it;
- reads only the entries it is asked for, each checked first: stored (not
  compressed, so no archive can inflate into more memory than the file
  occupies), not encrypted, no larger than its limit, no larger than the file;
- parses each ``.npy`` header itself and checks its dtype and shape against
  what is expected before any array data is touched.

Every fault becomes an :class:`~prunetrain.errors.ArchiveError` whose message
says what is wrong. :func:`write_entries` writes the same bytes for the same
arrays (fixed timestamps, stored entries), so a ticket file is reproducible.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import io
import math
import os
import re
import struct
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np

from prunetrain.errors import ArchiveError, PrunetrainError
from prunetrain.files import atomic_write

#: The zip directory of the archives read here is small: a handful of entries.
MAX_ENTRIES = 256
MAX_DIRECTORY_BYTES = 64 * 1024
#: Header bytes allowed in one ``.npy`` entry (NumPy itself writes 64 to 128).
MAX_NPY_HEADER = 4096
#: Dimensions an ``"array"`` entry may have.
MAX_NDIM = 8

_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_EOCD_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_NPY_MAGIC = b"\x93NUMPY"
# Flag bits a stored, unencrypted entry may carry: data descriptor, UTF-8 name.
_ALLOWED_FLAGS = 0x0008 | 0x0800
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


@dataclasses.dataclass(frozen=True)
class Expect:
    """What one entry must hold: a dtype kind, a shape, a size limit.

    Parameters
    ----------
    kind : {"text", "int", "bytes", "array"}
        ``"text"``: a 0-d unicode string (``<U``); ``"int"``: a 0-d integer;
        ``"bytes"``: a 1-D ``uint8`` array; ``"array"``: a numeric array (bool,
        integer or float, little-endian) of any shape with at most ``max_items``
        elements and at most :data:`MAX_NDIM` dimensions.
    max_items : int
        Most characters (text), bytes (bytes) or elements (array) allowed.
    length : int, optional
        For ``"bytes"``: the exact length required.
    optional : bool
        Whether the archive may lack the entry (then it is left out of the result).
    ndim : int, optional
        For ``"array"``: the exact number of dimensions required.
    """

    kind: str
    max_items: int = 64
    length: int | None = None
    optional: bool = False
    ndim: int | None = None

    def limit_bytes(self) -> int:
        """Most bytes the entry may occupy, header included."""
        item = {"text": 4, "int": 8, "bytes": 1, "array": 8}[self.kind]
        n = self.length if self.length is not None else self.max_items
        return MAX_NPY_HEADER + item * n


def check_archive(path: Path, max_bytes: int) -> int:
    """Check that ``path`` is a regular file of at most ``max_bytes`` with a small zip directory.

    Returns the file size. Reads only the tail of the file (the end record).
    """
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ArchiveError(f"cannot read it ({e.strerror})") from None
    if not path.is_file():
        raise ArchiveError("it is not a regular file")
    if size > max_bytes:
        raise ArchiveError(
            f"it is {size} bytes; a ticket may be at most {max_bytes} bytes "
            f"({max_bytes // 2**20} MiB)"
        )
    tail_size = min(size, _EOCD.size + 65535)  # the record and the longest comment
    with path.open("rb") as f:
        f.seek(size - tail_size)
        tail = f.read(tail_size)
    at = tail.rfind(_EOCD_SIGNATURE)
    if at < 0 or len(tail) - at < _EOCD.size:
        raise ArchiveError("it is not a zip archive (no end record)")
    _, disk, _, _, entries, dir_size, dir_offset, _ = _EOCD.unpack_from(tail, at)
    if at >= 20 and tail[at - 20 : at - 16] == _ZIP64_LOCATOR_SIGNATURE:
        raise ArchiveError("it is a zip64 archive, which no ticket needs")
    if disk != 0:
        raise ArchiveError("it is a multi-disk zip archive")
    if entries > MAX_ENTRIES or dir_size > MAX_DIRECTORY_BYTES:
        raise ArchiveError(
            f"its zip directory lists {entries} entries in {dir_size} bytes; "
            f"at most {MAX_ENTRIES} entries in {MAX_DIRECTORY_BYTES} bytes are read"
        )
    if dir_offset + dir_size > size:
        raise ArchiveError("its zip directory lies beyond the end of the file")
    return size


def read_entries(
    path: str | os.PathLike,
    expected: Mapping[str, Expect | Callable[[dict], Expect]],
    max_bytes: int,
) -> dict[str, np.ndarray]:
    """Read the named ``.npy`` entries of an ``.npz`` archive, checking each before reading it.

    Parameters
    ----------
    path : path
        The archive.
    expected : mapping
        Entry name (without ``.npy``) to its :class:`Expect`, or to a function
        of the entries read so far returning one (entries are read in the
        mapping's order, so a later entry's size can depend on earlier ones).
        Other entries of the archive are never read.
    max_bytes : int
        Size cap of the whole file.

    Returns
    -------
    dict
        Name to array (0-d arrays for text and integers).

    Raises
    ------
    ArchiveError
        One line saying what is wrong; nothing larger than the file (and the
        entries' limits) is ever allocated.
    """
    path = Path(path)
    size = check_archive(path, max_bytes)
    out: dict[str, np.ndarray] = {}
    with _zip_faults():
        with zipfile.ZipFile(path) as archive:
            by_name = _unique_entries(archive)
            for name, expect in expected.items():
                if callable(expect):
                    expect = expect(out)
                info = by_name.get(f"{name}.npy")
                if info is None and expect.optional:
                    continue
                if info is None:
                    raise ArchiveError(f"it has no {name!r} entry")
                _check_info(info, expect, size)
                out[name] = _parse_npy(archive.read(info), expect, name)
    return out


def entry_names(path: str | os.PathLike, max_bytes: int) -> list[str]:
    """The names of an archive's ``.npy`` entries (without ``.npy``), in the zip directory's order.

    Reads only the zip directory, after the checks of :func:`check_archive`,
    so a file can be told apart by what it holds before any entry is read.
    An entry whose name does not end in ``.npy`` is listed under its full name.

    Raises
    ------
    ArchiveError
        As :func:`read_entries`.
    """
    path = Path(path)
    check_archive(path, max_bytes)
    with _zip_faults():
        with zipfile.ZipFile(path) as archive:
            return [name.removesuffix(".npy") for name in _unique_entries(archive)]


def _unique_entries(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    infos = archive.infolist()
    by_name = {info.filename: info for info in infos}
    if len(by_name) != len(infos):
        raise ArchiveError("it holds two entries of the same name")
    return by_name


@contextlib.contextmanager
def _zip_faults() -> Iterator[None]:
    """Turn what zipfile raises on a damaged or unsupported archive into an :class:`ArchiveError`."""
    try:
        yield
    except PrunetrainError:  # ours, or raised by an ``expected`` function
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, struct.error) as e:
        raise ArchiveError(f"its zip structure is damaged ({_brief(e)})") from None
    except (ValueError, NotImplementedError, RuntimeError, OverflowError) as e:
        # zipfile raises these for unsupported or inconsistent headers it finds on its own.
        raise ArchiveError(f"its zip structure is not readable ({_brief(e)})") from None


def _check_info(info: zipfile.ZipInfo, expect: Expect, file_size: int) -> None:
    name = info.filename
    if info.flag_bits & 0x1:
        raise ArchiveError(f"its entry {name!r} is encrypted")
    if info.flag_bits & ~_ALLOWED_FLAGS:
        raise ArchiveError(f"its entry {name!r} has unsupported flags {info.flag_bits:#x}")
    if info.compress_type != zipfile.ZIP_STORED:
        raise ArchiveError(
            f"its entry {name!r} is compressed (method {info.compress_type}); entries are "
            "read only when stored uncompressed, as prunetrain writes them (np.savez, not "
            "np.savez_compressed), so no entry can inflate past the file's size"
        )
    if info.file_size > file_size or info.compress_size != info.file_size:
        raise ArchiveError(f"its entry {name!r} claims more bytes than the file holds")
    if info.file_size > expect.limit_bytes():
        raise ArchiveError(
            f"its entry {name!r} is {info.file_size} bytes, more than the "
            f"{expect.limit_bytes()} it may hold"
        )


_DESCR = {
    "text": re.compile(r"^<U(\d{1,9})$"),
    "int": re.compile(r"^[<|][iu][1248]$"),
    "bytes": re.compile(r"^\|u1$"),
    "array": re.compile(r"^(\|b1|\|[iu]1|<[iu][248]|<f[248])$"),
}


def _parse_npy(data: bytes, expect: Expect, name: str) -> np.ndarray:
    """One ``.npy`` payload as an array, after checking its header against ``expect``."""
    what = f"its entry {name!r}"
    if len(data) < 10 or data[:6] != _NPY_MAGIC:
        raise ArchiveError(f"{what} is not a .npy array")
    major = data[6]
    if major == 1:
        header_len, start = struct.unpack_from("<H", data, 8)[0], 10
    elif major in (2, 3):
        if len(data) < 12:
            raise ArchiveError(f"{what} is cut off")
        header_len, start = struct.unpack_from("<I", data, 8)[0], 12
    else:
        raise ArchiveError(f"{what} has .npy format version {major}")
    if header_len > MAX_NPY_HEADER or start + header_len > len(data):
        raise ArchiveError(f"{what} has a header of {header_len} bytes")
    header = _parse_header(data[start : start + header_len], what)
    descr, shape = header["descr"], header["shape"]
    match = _DESCR[expect.kind].match(descr)
    if match is None:
        raise ArchiveError(f"{what} has dtype {descr!r}; expected {_KIND_WORDS[expect.kind]}")
    if expect.kind == "bytes":
        if len(shape) != 1:
            raise ArchiveError(f"{what} has shape {shape}; expected a 1-D array of bytes")
        if expect.length is not None and shape[0] != expect.length:
            raise ArchiveError(f"{what} holds {shape[0]} bytes; expected {expect.length}")
        if shape[0] > expect.max_items and expect.length is None:
            raise ArchiveError(f"{what} holds {shape[0]} bytes, more than {expect.max_items}")
    elif expect.kind == "array":
        if len(shape) > MAX_NDIM or (expect.ndim is not None and len(shape) != expect.ndim):
            wanted = f"{expect.ndim}" if expect.ndim is not None else f"at most {MAX_NDIM}"
            raise ArchiveError(f"{what} has shape {shape}; expected {wanted} dimensions")
        if math.prod(shape) > expect.max_items:
            raise ArchiveError(f"{what} has shape {shape}, more than {expect.max_items} elements")
    elif shape != ():
        raise ArchiveError(f"{what} has shape {shape}; expected a single value")
    if expect.kind == "text" and int(match.group(1)) > expect.max_items:
        raise ArchiveError(
            f"{what} holds {match.group(1)} characters, more than {expect.max_items}"
        )
    dtype = np.dtype(descr)
    count = math.prod(shape)
    body = start + header_len
    if len(data) - body != count * dtype.itemsize:
        raise ArchiveError(
            f"{what} holds {len(data) - body} data bytes; its header says {count * dtype.itemsize}"
        )
    return np.frombuffer(data, dtype=dtype, count=count, offset=body).reshape(shape)


_KIND_WORDS = {
    "text": "a unicode string",
    "int": "an integer",
    "bytes": "uint8 bytes",
    "array": "a little-endian bool, integer or float array",
}


def _parse_header(raw: bytes, what: str) -> dict:
    """The header dict of a ``.npy`` entry, its three keys checked for type."""
    try:
        text = raw.decode("latin1")
        header = ast.literal_eval(text)
    except Exception:  # noqa: BLE001  (any parse failure of a hostile header is the same fault)
        raise ArchiveError(f"{what} has an unreadable .npy header") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise ArchiveError(f"{what} has a .npy header without exactly descr, fortran_order, shape")
    descr, fortran, shape = header["descr"], header["fortran_order"], header["shape"]
    if not isinstance(descr, str) or fortran is not False:
        raise ArchiveError(
            f"{what} has a .npy header with descr {descr!r}, fortran_order {fortran!r}"
        )
    if not isinstance(shape, tuple) or not all(
        type(n) is int and n >= 0
        for n in shape  # bools are not sizes
    ):
        raise ArchiveError(f"{what} has a .npy header with shape {shape!r}")
    return header


def _brief(e: BaseException) -> str:
    text = " ".join(str(e).split())[:120]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def write_entries(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write ``arrays`` as a stored ``.npz`` archive, the same bytes for the same arrays.

    The file is written whole or not at all; ``np.load`` reads it.
    """

    def write(f) -> None:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as archive:
            for name, array in arrays.items():
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_TIME)
                info.external_attr = 0o644 << 16
                archive.writestr(info, buffer.getvalue())

    return atomic_write(path, write)
