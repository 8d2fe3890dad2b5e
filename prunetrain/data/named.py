"""The named datasets: ``digits`` (embedded in scikit-learn) and the IDX files of MNIST-like sets.

``fashion-mnist`` and ``mnist`` are read from their four IDX files (gzipped
or plain) in a data folder; the official 10k test set is kept, validation is
drawn from train with a fixed permutation, and pixels are divided by 255.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from prunetrain.data.dataset import Dataset, make_dataset
from prunetrain.data.prepare import (
    SPLIT_RANDOM_STATE,
    TEST_FRACTION,
    FeatureScaling,
    check_subset,
    classes_of,
    encode_with,
    hold_out,
)
from prunetrain.errors import DataError

DATASETS = ("digits", "fashion-mnist", "mnist")

DATA_ENV = "PRUNETRAIN_DATA"

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

DEFAULT_DATA_DIRS = {
    "fashion-mnist": Path("/usr/share/datasets/fashion-mnist"),
    "mnist": Path("/usr/share/datasets/mnist"),
}

_HOW_TO_GET = {
    "fashion-mnist": "install it with `apt-get install dataset-fashion-mnist`",
    "mnist": (
        "download the four MNIST IDX files (e.g. from "
        "https://ossci-datasets.s3.amazonaws.com/mnist/) into "
        f"{DEFAULT_DATA_DIRS['mnist']}"
    ),
}

_IDX_UBYTE = 0x08

#: Data bytes an IDX file may claim (MNIST's train images are 47 MB); a gzipped file is
#: inflated only up to what its header claims.
MAX_IDX_BYTES = 4 * 2**30

#: Dimensions of an IDX file: labels (n,) or images (n, rows, cols).
MAX_IDX_DIMS = 3

#: Bytes read at a time from an archive entry or a gzip stream.
_CHUNK = 16 * 2**20


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file of unsigned bytes (the MNIST format), gzipped or plain.

    Parameters
    ----------
    path : str or os.PathLike
        The file. Gzip is detected from the content, not the suffix.

    Returns
    -------
    np.ndarray
        uint8 array with the dimensions stored in the header.

    Raises
    ------
    DataError
        The file is missing, not gzip-readable, has a bad magic number, a data
        type other than unsigned byte (0x08), or fewer or more bytes than its
        dimensions say.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x-idx2-ubyte"
    >>> _ = p.write_bytes(bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]))
    >>> read_idx(p)
    array([[1, 2, 3],
           [4, 5, 6]], dtype=uint8)
    """
    path = Path(path)
    gzipped = False
    try:
        with open(path, "rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"
            f.seek(0)
            stream = gzip.GzipFile(fileobj=f) if gzipped else f
            return _read_idx_stream(stream, path, None if gzipped else os.fstat(f.fileno()).st_size)
    except (OSError, EOFError, zlib.error) as exc:
        if gzipped and not isinstance(exc, FileNotFoundError):
            raise DataError(
                f"IDX file {str(path)!r} is damaged or truncated (gzip: {exc})"
            ) from None
        raise DataError(f"cannot read IDX file {str(path)!r}: {exc.strerror or exc}") from None


def _read_idx_stream(stream, path: Path, file_size: int | None) -> np.ndarray:
    """The array of an open IDX stream; nothing is read past what its header claims, plus one."""
    raw = stream.read(4)
    if len(raw) < 4:
        raise DataError(
            f"IDX file {str(path)!r} is truncated: {len(raw)} bytes, expected a 4-byte magic number"
        )
    dtype_code, ndim = raw[2], raw[3]
    if raw[:2] != b"\x00\x00" or ndim == 0:
        raise DataError(
            f"IDX file {str(path)!r} has bad magic number 0x{raw[:4].hex()}: expected "
            "0x0000 followed by a type byte and a dimension count >= 1 (e.g. 0x00000803)"
        )
    if dtype_code != _IDX_UBYTE:
        raise DataError(
            f"IDX file {str(path)!r} has data type 0x{dtype_code:02x}: expected 0x08 (unsigned byte)"
        )
    if ndim > MAX_IDX_DIMS:
        raise DataError(
            f"IDX file {str(path)!r} has {ndim} dimensions: expected 1 to {MAX_IDX_DIMS} "
            "(labels, or images of n × rows × cols)"
        )
    header = 4 + 4 * ndim
    dims = stream.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise DataError(
            f"IDX file {str(path)!r} is truncated: {4 + len(dims)} bytes, expected a {header}-byte "
            f"header for {ndim} dimensions"
        )
    shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4"))
    expected = math.prod(shape)
    if expected > MAX_IDX_BYTES:
        raise DataError(
            f"IDX file {str(path)!r} claims shape {shape}, {expected} bytes: at most "
            f"{MAX_IDX_BYTES} are read (MAX_IDX_BYTES)"
        )
    if file_size is not None and file_size - header < expected:
        actual = file_size - header
    else:
        data = bytearray()
        while len(data) <= expected:  # one byte past the claim tells trailing bytes
            chunk = stream.read(min(_CHUNK, expected + 1 - len(data)))
            if not chunk:
                break
            data += chunk
        actual = len(data)
    if actual != expected:
        what = "truncated" if actual < expected else "damaged (trailing bytes)"
        raise DataError(
            f"IDX file {str(path)!r} is {what}: {actual} data bytes, expected {expected} "
            f"for shape {shape}"
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(shape).copy()


def load_digits(validation_fraction: float) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    scaling = FeatureScaling(factor=1 / 16)  # pixels 0..16
    X = scaling.transform(bunch.data)
    y = bunch.target.astype(np.int64)
    X_rest, X_test, y_rest, y_test = hold_out(X, y, TEST_FRACTION, "digits")
    X_train, X_val, y_train, y_val = hold_out(X_rest, y_rest, validation_fraction, "digits")
    data = make_dataset(
        "digits", X_train, y_train, X_val, y_val, X_test, y_test, np.arange(10, dtype=np.int64)
    )
    return dataclasses.replace(data, scaling=scaling)


def _resolve_data_dir(name: str, data_dir: str | os.PathLike | None) -> Path:
    if data_dir is not None:
        base = Path(data_dir)
    elif os.environ.get(DATA_ENV):
        base = Path(os.environ[DATA_ENV])
    else:
        return DEFAULT_DATA_DIRS[name]
    # One folder may serve both datasets when each sits in a subfolder named after it.
    if not _find_idx(base, IDX_FILES[0]) and _find_idx(base / name, IDX_FILES[0]):
        return base / name
    return base


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def load_idx_dataset(
    name: str, data_dir: str | os.PathLike | None, validation_fraction: float
) -> Dataset:
    folder = _resolve_data_dir(name, data_dir)
    paths = []
    for stem in IDX_FILES:
        found = _find_idx(folder, stem)
        if found is None:
            raise DataError(
                f"{name}: missing {folder / stem}.gz: {_HOW_TO_GET[name]}, or pass --data-dir / "
                f"set {DATA_ENV} to a folder holding the four IDX files ({', '.join(IDX_FILES)}, "
                ".gz or plain)"
            )
        paths.append(found)
    train_images, train_labels, test_images, test_labels = (read_idx(p) for p in paths)
    for images, labels, split in (
        (train_images, train_labels, "train"),
        (test_images, test_labels, "test"),
    ):
        if images.ndim != 3 or labels.ndim != 1:
            raise DataError(
                f"{name} {split} files in {folder} have images of shape {images.shape} and labels "
                f"of shape {labels.shape}: expected (n, rows, cols) images and (n,) labels"
            )
        if len(images) != len(labels):
            raise DataError(
                f"{name} {split} files in {folder} hold {len(images)} images but "
                f"{len(labels)} labels: expected the same number"
            )
        if len(images) == 0:
            raise DataError(f"{name} {split} files in {folder} hold no images")
    if train_images.shape[1:] != test_images.shape[1:]:
        raise DataError(
            f"{name} in {folder}: train images are {train_images.shape[1:]} but test images are "
            f"{test_images.shape[1:]}: expected the same size"
        )

    n = len(train_labels)
    n_val = int(round(validation_fraction * n))
    if n_val >= n:
        raise DataError(
            f"{name}: validation_fraction={validation_fraction} leaves no train images out of {n}"
        )
    order = np.random.default_rng(SPLIT_RANDOM_STATE).permutation(n)
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])

    scaling = FeatureScaling(factor=1 / 255)  # pixels 0..255

    def pixels(images: np.ndarray) -> np.ndarray:
        return scaling.transform(images.reshape(len(images), math.prod(images.shape[1:])))

    classes = classes_of(train_labels, "train labels", str(folder))
    check_subset(classes, test_labels, "test labels", str(folder))
    y_train, y_val, y_test = (
        encode_with(classes, labels, split, name)
        for labels, split in (
            (train_labels[train_idx], "train"),
            (train_labels[val_idx], "validation"),
            (test_labels, "test"),
        )
    )
    data = make_dataset(
        name,
        pixels(train_images[train_idx]),
        y_train,
        pixels(train_images[val_idx]),
        y_val,
        pixels(test_images),
        y_test,
        classes.astype(np.int64),
    )
    return dataclasses.replace(data, scaling=scaling)
