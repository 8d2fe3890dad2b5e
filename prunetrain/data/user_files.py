"""Datasets from user files: ``.npz`` and ``.csv`` parsed without trusting them.

A file is read within stated limits (:data:`MAX_INFLATED_BYTES`,
:data:`MAX_CSV_FIELDS`, :data:`MAX_CSV_LINE_CHARS`), checked before memory is
spent; features are min-max scaled per feature with train statistics
(:func:`prunetrain.data.prepare.minmax_scaling`) and clipped to [0, 1].
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import math
import os
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from prunetrain.data.dataset import Dataset, make_dataset
from prunetrain.data.prepare import (
    TEST_FRACTION,
    check_features,
    check_labels,
    check_subset,
    classes_of,
    encode_with,
    hold_out,
    minmax_scaling,
)
from prunetrain.errors import DataError
from prunetrain.files import check_regular_file

FILE_SUFFIXES = (".npz", ".csv")

LABEL_COLUMNS = ("label", "target", "class", "y")

# What a data file may cost to read. A stored ``.npz`` entry is bounded by the file itself
# (its header must account for exactly the bytes it holds); the others are stated here and
# checked while reading, before the memory is spent.

#: Bytes the compressed entries of an ``.npz`` dataset may inflate to, in all (checked against
#: the sizes the archive declares, before inflating; inflating stops at the declared size).
MAX_INFLATED_BYTES = 4 * 2**30

#: Fields a CSV row may have.
MAX_CSV_FIELDS = 100_000

#: Characters a CSV row may take (one line, or the lines of a row with quoted line breaks).
MAX_CSV_LINE_CHARS = 4 * 2**20

#: Bytes read at a time from an archive entry or a gzip stream.
_CHUNK = 16 * 2**20


def file_source(path: str | os.PathLike) -> dict:
    """Where a data file came from: the path as given, the resolved path, its content hash.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.csv"
    >>> _ = p.write_bytes(b"x,label")
    >>> info = file_source(p)
    >>> info["path"] == str(p), info["sha256"][:12]
    (True, '5ce860bd9c91')
    """
    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {
        "path": os.fspath(path),
        "resolved": os.fspath(path.resolve()),
        "sha256": digest.hexdigest(),
    }


def check_data_file(path: Path, what: str) -> None:
    """Refuse a missing file, and at once a FIFO, a device or a folder (reading a FIFO blocks)."""
    try:
        os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{what} {str(path)!r} does not exist") from None
    except OSError:
        pass  # check_regular_file says why
    check_regular_file(path, what)


def load_npz(path: Path, validation_fraction: float) -> Dataset:
    source = path.name
    fixed = ("X_train", "y_train", "X_test", "y_test")

    def wanted(keys: set[str]) -> tuple[str, ...]:
        if set(fixed) <= keys:
            return fixed + tuple(k for k in ("X_val", "y_val") if k in keys)
        if {"X", "y"} <= keys:
            return ("X", "y")
        return ()

    keys, arrays = read_npz(path, wanted)
    if not arrays:
        raise DataError(
            f"{source} holds keys {sorted(keys)}: expected 'X' and 'y', or a fixed split "
            "'X_train', 'y_train', 'X_test', 'y_test'"
        )

    if "X" in arrays:
        return _from_unsplit(
            path.stem, arrays["X"], arrays["y"], validation_fraction, source, ("X", "y")
        )

    X_train = check_features(arrays["X_train"], "X_train", source)
    y_train = check_labels(arrays["y_train"], len(X_train), "y_train", "X_train", source)
    X_test = check_features(arrays["X_test"], "X_test", source)
    y_test = check_labels(arrays["y_test"], len(X_test), "y_test", "X_test", source)
    others = [("X_test", X_test)]
    given_val = "X_val" in arrays and "y_val" in arrays
    if given_val:
        X_val = check_features(arrays["X_val"], "X_val", source, allow_empty=True)
        y_val = check_labels(arrays["y_val"], len(X_val), "y_val", "X_val", source)
        others.append(("X_val", X_val))
    for other, X_other in others:
        if X_other.shape[1] != X_train.shape[1]:
            raise DataError(
                f"{source}: X_train has {X_train.shape[1]} features but {other} has "
                f"{X_other.shape[1]}: expected the same number"
            )
    classes = classes_of(y_train, "y_train", source)
    check_subset(classes, y_test, "y_test", source)
    if given_val:
        check_subset(classes, y_val, "y_val", source)
    else:
        X_train, X_val, y_train, y_val = hold_out(X_train, y_train, validation_fraction, source)
    return _finish_user_data(
        path.stem, classes, source, (X_train, y_train), (X_val, y_val), (X_test, y_test)
    )


def read_npz(
    path: Path, wanted: Callable[[set[str]], Sequence[str]]
) -> tuple[set[str], dict[str, np.ndarray]]:
    """The names of an ``.npz`` file's arrays, and the arrays ``wanted(names)`` picks.

    ``np.load`` trusts its file: it allocates what an array header claims and
    inflates whatever an entry holds. Here every entry is checked first:
    stored entries must hold exactly the bytes their header claims (so none
    claims more than the file), compressed ones may declare at most
    :data:`MAX_INFLATED_BYTES` in all and are inflated only up to what they
    declare, and object arrays (pickles) are refused. Only then is an
    array allocated and filled.

    Raises
    ------
    DataError
        One line saying what is wrong with the file or which entry.
    """
    source = path.name
    try:
        with zipfile.ZipFile(path) as archive:
            infos = {
                info.filename[: -len(".npy")]: info
                for info in archive.infolist()
                if info.filename.endswith(".npy")
            }
            file_size = os.stat(path).st_size
            inflated = 0
            arrays = {}
            for key in wanted(set(infos)):
                info = infos[key]
                if info.compress_type == zipfile.ZIP_STORED:
                    if info.file_size > file_size:
                        raise DataError(
                            f"{source}: entry {key!r} claims {info.file_size} bytes, more than "
                            f"the file's {file_size}"
                        )
                elif info.compress_type == zipfile.ZIP_DEFLATED:
                    inflated += info.file_size
                    if inflated > MAX_INFLATED_BYTES:
                        raise DataError(
                            f"{source}: entry {key!r} is compressed and inflates to "
                            f"{info.file_size} bytes; a compressed entry may inflate to at most "
                            f"{MAX_INFLATED_BYTES} bytes (store it uncompressed with np.savez)"
                        )
                else:
                    raise DataError(
                        f"{source}: entry {key!r} is compressed with method "
                        f"{info.compress_type}: expected stored or deflated (np.savez, "
                        "np.savez_compressed)"
                    )
                with archive.open(info) as entry:
                    arrays[key] = _read_npy(entry, info.file_size, key, source)
    except DataError:
        raise
    except (
        OSError,
        EOFError,
        ValueError,
        RuntimeError,
        NotImplementedError,
        zlib.error,
        zipfile.BadZipFile,
    ) as exc:
        if isinstance(exc, zipfile.BadZipFile) and _starts_with(path, b"\x93NUMPY"):
            raise DataError(
                f"cannot read {str(path)!r} as .npz: it is a single .npy array; a dataset is "
                "an .npz archive of named arrays, e.g. np.savez(path, X=X, y=y)"
            ) from None
        raise DataError(f"cannot read {str(path)!r} as .npz: {exc}") from None
    return set(infos), arrays


def _read_npy(entry, size: int, key: str, source: str) -> np.ndarray:
    """One ``.npy`` entry of ``size`` bytes, its header checked against ``size`` before any
    allocation."""
    fmt = np.lib.format
    what = f"{source}: entry {key!r}"
    try:
        version = fmt.read_magic(entry)
    except ValueError:
        raise DataError(f"{what} is not a .npy array") from None
    try:
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(entry)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(entry)
        else:
            raise DataError(f"{what} has .npy format version {version}: expected 1.0 or 2.0")
    except (ValueError, TypeError, SyntaxError):
        raise DataError(f"{what} has a damaged .npy header") from None
    if dtype.hasobject:
        raise DataError(f"{what} has dtype object: expected numbers or text (no pickles)")
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    held = size - entry.tell()
    if nbytes != held:
        raise DataError(f"{what} claims shape {shape} of {dtype}, {nbytes} bytes, but holds {held}")
    array = np.empty(count, dtype=dtype)
    if nbytes:
        buffer = array.view(np.uint8)
        done = 0
        while done < nbytes:
            got = entry.readinto(buffer[done : done + _CHUNK])
            if not got:
                raise DataError(f"{what} is truncated: {done} of {nbytes} bytes")
            done += got
    return array.reshape(shape, order="F" if fortran else "C")


def _starts_with(path: Path, magic: bytes) -> bool:
    with open(path, "rb") as f:
        return f.read(len(magic)) == magic


def load_csv(path: Path, validation_fraction: float) -> Dataset:
    source = path.name
    header, body, lines = _read_csv(path)
    if len(header) < 2:
        raise DataError(
            f"{source} has {len(header)} column: expected at least one feature column "
            "and a label column"
        )
    lowered = [cell.lower() for cell in header]
    label_col = next(
        (lowered.index(name) for name in LABEL_COLUMNS if name in lowered), len(header) - 1
    )
    feature_cols = [j for j in range(len(header)) if j != label_col]
    table = np.char.strip(np.array(body, dtype=str))
    X = _numeric_columns(
        table, feature_cols, header, lines, f" (the label column is {header[label_col]!r})", source
    )
    empty = np.flatnonzero(table[:, label_col] == "")
    if len(empty):
        raise DataError(
            f"{source} line {lines[empty[0] + 1]}: the label (column {header[label_col]!r}) "
            "is empty"
        )
    data = _from_unsplit(
        path.stem,
        X,
        _parse_labels(table[:, label_col]),
        validation_fraction,
        source,
        ("features", "labels"),
    )
    return dataclasses.replace(data, feature_names=[header[j] for j in feature_cols])


def read_features(
    path: str | os.PathLike, n_features: int, feature_names: list[str] | None = None
) -> np.ndarray:
    """Raw features of new samples from a ``.npz`` (key ``X``) or ``.csv`` file, for prediction.

    A CSV file's columns are chosen by ``feature_names`` when its header has
    them all (the columns a model was trained on, in that order); otherwise
    every column but a label column (``label``, ``target``, ``class``, ``y``)
    must be a feature, ``n_features`` of them.

    Returns
    -------
    ndarray of shape (n_samples, n_features), float64
        Unscaled: a model applies its own feature scaling.

    Raises
    ------
    DataError
        Missing or damaged file, no ``X``, wrong number of features, a
        non-numeric value, NaN or infinite values.
    """
    path = Path(path)
    source = path.name
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise DataError(
            f"cannot read {str(path)!r}: expected a file ending {' or '.join(FILE_SUFFIXES)}"
        )
    check_data_file(path, "data file")
    if suffix == ".npz":
        keys, arrays = read_npz(path, lambda keys: ("X",) if "X" in keys else ())
        if "X" not in arrays:
            raise DataError(
                f"{source} holds keys {sorted(keys)}: expected 'X' (samples × features)"
            )
        X = arrays["X"]
    else:
        header, body, lines = _read_csv(path)
        table = np.char.strip(np.array(body, dtype=str))
        if feature_names and set(feature_names) <= set(header):
            cols = [header.index(name) for name in feature_names]
        else:
            lowered = [cell.lower() for cell in header]
            cols = [j for j in range(len(header)) if lowered[j] not in LABEL_COLUMNS]
        X = _numeric_columns(table, cols, header, lines, "", source)
    X = check_features(X, "X", source)
    if X.shape[1] != n_features:
        named = (
            f" (its columns: {', '.join(feature_names[:5])}{' ...' if len(feature_names) > 5 else ''})"
            if feature_names
            else ""
        )
        raise DataError(
            f"{source} has {X.shape[1]} feature columns: the model takes {n_features}{named}"
        )
    return X


def _read_csv(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """The header, the data rows and their line numbers of a CSV file, checked for shape."""
    source = path.name
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            bounded = _BoundedLines(handle, source)
            reader = csv.reader(bounded)
            rows, lines = [], []
            for row in reader:
                if len(row) > MAX_CSV_FIELDS:
                    raise DataError(
                        f"{source} line {reader.line_num} has {len(row)} fields: a row may have "
                        f"at most {MAX_CSV_FIELDS} (MAX_CSV_FIELDS)"
                    )
                bounded.row_done()
                if any(cell.strip() for cell in row):
                    rows.append(row)
                    lines.append(reader.line_num)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {str(path)!r} as CSV: {exc}") from None
    if not rows:
        raise DataError(f"{source} is empty: expected a header row and at least one data row")
    header = [cell.strip() for cell in rows[0]]
    if all(_is_number(cell) for cell in header):
        raise DataError(
            f"{source}: the first row {header[:5]} looks numeric: expected a header row naming "
            "the columns"
        )
    body = rows[1:]
    if not body:
        raise DataError(f"{source} holds no samples: expected data rows after the header")
    for line, row in zip(lines[1:], body, strict=True):
        if len(row) != len(header):
            raise DataError(
                f"{source} line {line} has {len(row)} fields: expected {len(header)} like the header"
            )
    return header, body, lines


class _BoundedLines:
    """The lines of a text file for :func:`csv.reader`, no row longer than
    :data:`MAX_CSV_LINE_CHARS` characters: a line is read at most that far, so a huge line
    costs that much memory and no more before it is refused."""

    def __init__(self, handle, source: str) -> None:
        self.handle = handle
        self.source = source
        self.line = 0
        self.row_chars = 0  # characters of the row being read (a quoted field may span lines)

    def __iter__(self) -> _BoundedLines:
        return self

    def __next__(self) -> str:
        line = self.handle.readline(MAX_CSV_LINE_CHARS + 1 - self.row_chars)
        if not line:
            raise StopIteration
        self.line += 1
        self.row_chars += len(line)
        if self.row_chars > MAX_CSV_LINE_CHARS:
            raise DataError(
                f"{self.source} line {self.line} is longer than {MAX_CSV_LINE_CHARS} characters: "
                f"a row may have at most {MAX_CSV_LINE_CHARS} (MAX_CSV_LINE_CHARS)"
            )
        return line

    def row_done(self) -> None:
        self.row_chars = 0


def _numeric_columns(
    table: np.ndarray, cols: list[int], header: list[str], lines: list[int], hint: str, source: str
) -> np.ndarray:
    """Columns ``cols`` of a CSV table as float64; a clear error names the first bad cell."""
    cells = table[:, cols]
    try:
        return cells.astype(np.float64)
    except ValueError:
        bad = next(
            (i, j)
            for i in range(cells.shape[0])
            for j in range(cells.shape[1])
            if not _is_number(cells[i, j])
        )
        raise DataError(
            f"{source} line {lines[bad[0] + 1]}, column {header[cols[bad[1]]]!r}: "
            f"value {str(cells[bad])!r} is not a number: expected numeric features{hint}"
        ) from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_labels(labels: np.ndarray) -> np.ndarray:
    """Labels as integers when they all are, else floats when they all are, else strings."""
    for dtype in (np.int64, np.float64):
        try:
            return labels.astype(dtype)
        except (ValueError, OverflowError):
            continue
    return labels


def _from_unsplit(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    validation_fraction: float,
    source: str,
    names: tuple[str, str],
) -> Dataset:
    X = check_features(X, names[0], source)
    y = check_labels(y, len(X), names[1], names[0], source)
    classes = classes_of(y, names[1], source)
    X_rest, X_test, y_rest, y_test = hold_out(X, y, TEST_FRACTION, source)
    X_train, X_val, y_train, y_val = hold_out(X_rest, y_rest, validation_fraction, source)
    return _finish_user_data(
        name, classes, source, (X_train, y_train), (X_val, y_val), (X_test, y_test)
    )


def _finish_user_data(
    name: str,
    classes: np.ndarray,
    source: str,
    *splits: tuple[np.ndarray, np.ndarray],
) -> Dataset:
    """The dataset of checked ``(X, y)`` train, validation and test splits of a user file.

    Features are min-max scaled with the train split's range (clipped), labels
    encoded as indices into ``classes``.
    """
    scaling = minmax_scaling(splits[0][0], clip=True)
    arrays = []
    for (X, y), split in zip(splits, ("train", "validation", "test")):
        arrays += [scaling.transform(X), encode_with(classes, y, split, source)]
    data = make_dataset(name, *arrays, classes)
    return dataclasses.replace(data, scaling=scaling)
