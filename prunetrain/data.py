"""Datasets: named ones and user files, loaded into deterministic float32 splits.

:func:`load_dataset` turns a name (``"digits"``, ``"fashion-mnist"``,
``"mnist"``) or a path to a ``.npz`` / ``.csv`` file into a :class:`Dataset`:
train, validation and test splits with features scaled into [0, 1] as
C-contiguous float32 and labels encoded as int64 ``0 .. n_classes - 1``.
Every split is made with a fixed random state, independent of any search
seed, so the same call always gives the same arrays. Nothing is cached on
disk.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import math
import os
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from prunetrain.errors import DataError
from prunetrain.files import check_regular_file

DATASETS = ("digits", "fashion-mnist", "mnist")

FILE_SUFFIXES = (".npz", ".csv")

TEST_FRACTION = 0.2
"""Share of an unsplit dataset (digits, ``X``/``y`` files) held out as the test split."""

SPLIT_RANDOM_STATE = 0
"""Fixed seed of every split; independent of any search seed."""

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

LABEL_COLUMNS = ("label", "target", "class", "y")

_IDX_UBYTE = 0x08

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
#: Data bytes an IDX file may claim (MNIST's train images are 47 MB); a gzipped file is
#: inflated only up to what its header claims.
MAX_IDX_BYTES = 4 * 2**30
#: Dimensions of an IDX file: labels (n,) or images (n, rows, cols).
MAX_IDX_DIMS = 3
#: Bytes read at a time from an archive entry or a gzip stream.
_CHUNK = 16 * 2**20


@dataclasses.dataclass(frozen=True, eq=False)
class FeatureScaling:
    """How raw features become the features a network sees: ``clip((x - offset) · factor)``.

    Computed in float64, per feature (or one number for all), then cast to
    float32; ``clip`` bounds the result to [0, 1]. Every loader scales its
    features through :meth:`transform`, and tickets store :meth:`to_dict`, so
    ``prunetrain predict`` sends raw data through exactly the search's
    preprocessing.

    Parameters
    ----------
    offset, factor : float or ndarray of shape (n_features,)
        Subtracted, then multiplied.
    clip : bool
        Clip the result to [0, 1] (the min-max scaling of user files, whose
        validation and test values may fall outside the train range).

    Examples
    --------
    >>> s = FeatureScaling(offset=np.array([0.0, 10.0]), factor=np.array([0.5, 0.1]), clip=True)
    >>> s.transform(np.array([[1.0, 15.0], [4.0, 0.0]]))
    array([[0.5, 0.5],
           [1. , 0. ]], dtype=float32)
    >>> FeatureScaling.from_dict(s.to_dict()).transform([[1.0, 15.0]])
    array([[0.5, 0.5]], dtype=float32)
    """

    offset: float | np.ndarray = 0.0
    factor: float | np.ndarray = 1.0
    clip: bool = False

    def transform(self, X) -> np.ndarray:
        """Scaled features, float32, C-contiguous."""
        X = np.asarray(X, dtype=np.float64)
        offset = np.asarray(self.offset, dtype=np.float64)
        factor = np.asarray(self.factor, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            shifted = X - offset
            out = shifted * factor
            # Where x - offset overflows (a feature spanning more than the largest float),
            # halving both sides cannot overflow; elsewhere it would round the same.
            over = np.isinf(shifted) & np.isfinite(X)
            if over.any():
                out[over] = ((X / 2 - offset / 2) * (2.0 * factor))[over]
        if self.clip:
            np.clip(out, 0.0, 1.0, out=out)
        return np.ascontiguousarray(out, dtype=np.float32)

    def to_dict(self) -> dict:
        """JSON-ready form (floats round-trip exactly through JSON)."""

        def plain(v):
            v = np.asarray(v, dtype=np.float64)
            return float(v) if v.ndim == 0 else v.tolist()

        return {"offset": plain(self.offset), "factor": plain(self.factor), "clip": bool(self.clip)}

    @classmethod
    def from_dict(cls, d: dict) -> FeatureScaling:
        """Inverse of :meth:`to_dict`."""

        def array(v):
            v = np.asarray(v, dtype=np.float64)
            return float(v) if v.ndim == 0 else v

        return cls(array(d["offset"]), array(d["factor"]), bool(d.get("clip", False)))

    def check(self, n_features: int) -> None:
        """Raise :class:`DataError` unless this scaling applies to ``n_features`` features."""
        for name in ("offset", "factor"):
            size = np.size(getattr(self, name))
            if size not in (1, n_features):
                raise DataError(
                    f"the feature scaling has {size} {name}s but the data has {n_features} features"
                )


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


@dataclasses.dataclass(eq=False, repr=False)
class Dataset:
    """Train, validation and test splits of one dataset.

    Parameters
    ----------
    name : str
        The dataset's name (a name from :data:`DATASETS`, or a file's stem).
    X_train, X_val, X_test : np.ndarray
        Features, float32, C-contiguous, shape ``(n_split, n_features)``,
        scaled into [0, 1].
    y_train, y_val, y_test : np.ndarray
        Labels, int64, encoded as ``0 .. n_classes - 1``.
    classes : np.ndarray
        The original label values, sorted; ``classes[k]`` is the label encoded
        as ``k``.
    source : dict, optional
        Where the data came from: ``{"name": ...}`` for a named dataset;
        ``{"path", "resolved", "sha256"}`` for a file (:func:`file_source`).
    scaling : FeatureScaling, optional
        How the raw features were scaled into ``X_*``.
    feature_names : list of str, optional
        The feature columns of a CSV file, in order.

    Examples
    --------
    >>> ds = load_dataset("digits")
    >>> ds.n_features, ds.n_classes
    (64, 10)
    >>> ds.describe()
    'digits: 1293 train, 144 val, 360 test; 64 features, 10 classes'
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: np.ndarray
    source: dict | None = None
    scaling: FeatureScaling | None = None
    feature_names: list[str] | None = None

    @property
    def n_features(self) -> int:
        """Number of input features (columns of ``X_train``)."""
        return int(self.X_train.shape[1])

    @property
    def n_classes(self) -> int:
        """Number of classes (length of ``classes``)."""
        return len(self.classes)

    def describe(self) -> str:
        """Summarise the dataset in one line.

        Returns
        -------
        str
            Name, the sizes of the three splits, ``n_features`` and ``n_classes``.
        """
        return (
            f"{self.name}: {len(self.y_train)} train, {len(self.y_val)} val, "
            f"{len(self.y_test)} test; {self.n_features} features, {self.n_classes} classes"
        )

    def __repr__(self) -> str:
        return f"Dataset({self.describe()})"


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    validation_fraction: float = 0.1,
) -> Dataset:
    """Load a named dataset or a user file into train / validation / test splits.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`, or the path of a ``.npz`` or ``.csv`` file.

        - ``"digits"``: scikit-learn's 8×8 digits (embedded, no download);
          pixels / 16; 20 % test, stratified.
        - ``"fashion-mnist"``, ``"mnist"``: the four IDX files (``.gz`` or
          plain) in the data directory; the official 10k test set; pixels / 255.
        - ``.npz``: keys ``X`` and ``y`` (split 20 % test, stratified when
          possible), or a fixed split ``X_train``, ``y_train``, ``X_test``,
          ``y_test`` (optionally ``X_val``, ``y_val``; otherwise validation
          is carved from train).
        - ``.csv``: a header row, numeric feature columns and one label
          column: the first of ``label``, ``target``, ``class``, ``y``
          (case-insensitive) that is present, else the last column.
          Labels may be strings.

        User files are min-max scaled per feature with train statistics
        only; validation and test values are clipped to [0, 1], and a
        constant feature maps to 0.

        A file is read without trusting it, within stated limits: a FIFO,
        a device or a folder is refused at once; an ``.npz`` entry's header
        must account for exactly the bytes it holds (so no header claims
        more memory than the file has), compressed entries may inflate to
        :data:`MAX_INFLATED_BYTES` (4 GiB) in all, object arrays are
        refused, and bytes labels are decoded as UTF-8 text; a CSV row may
        have :data:`MAX_CSV_FIELDS` (100,000) fields and
        :data:`MAX_CSV_LINE_CHARS` (4 Mi) characters, checked as it is
        read, and every label cell must be filled; an IDX file may claim
        :data:`MAX_IDX_BYTES` (4 GiB) and at most 3 dimensions, and a
        gzipped one is inflated only as far as its header claims.
    data_dir : str or os.PathLike, optional
        Folder holding the IDX files of ``fashion-mnist`` / ``mnist`` (the
        files may also be in a subfolder named after the dataset). Defaults
        to the environment variable ``PRUNETRAIN_DATA`` when set, else
        ``/usr/share/datasets/<name>``. Ignored for other datasets.
    validation_fraction : float, default 0.1
        Share of the train data held out as the validation split, in [0, 1).

    Returns
    -------
    Dataset
        The splits. The same call always returns identical arrays.

    Raises
    ------
    DataError
        Unknown name, missing or damaged file, NaN or infinite features,
        inconsistent shapes or labels, or a bad ``validation_fraction``.

    Examples
    --------
    >>> ds = load_dataset("digits", validation_fraction=0.25)
    >>> ds.X_train.dtype, ds.y_train.dtype, len(ds.y_val)
    (dtype('float32'), dtype('int64'), 360)
    """
    _check_validation_fraction(validation_fraction)
    name = os.fspath(name)
    if name in DATASETS:
        if name == "digits":
            data = _load_digits(validation_fraction)
        else:
            data = _load_idx_dataset(name, data_dir, validation_fraction)
        return dataclasses.replace(data, source={"name": name})
    path = Path(name)
    suffix = path.suffix.lower()
    if suffix in FILE_SUFFIXES or _exists(path):
        _check_data_file(path, "dataset file")
        if suffix in (".npz", ".csv"):
            load = _load_npz if suffix == ".npz" else _load_csv
            return dataclasses.replace(load(path, validation_fraction), source=file_source(path))
        raise DataError(
            f"dataset file {str(path)!r} has suffix {path.suffix!r}: expected a file ending "
            f"{' or '.join(FILE_SUFFIXES)}"
        )
    raise DataError(
        f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}, "
        f"or a path to a file ending {' or '.join(FILE_SUFFIXES)}"
    )


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long for the file system: checked as a file, which says so
        return True


def _check_data_file(path: Path, what: str) -> None:
    """Refuse a missing file, and at once a FIFO, a device or a folder (reading a FIFO blocks)."""
    try:
        os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{what} {str(path)!r} does not exist") from None
    except OSError:
        pass  # check_regular_file says why
    check_regular_file(path, what)


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


# --- named datasets -----------------------------------------------------------------


def _load_digits(validation_fraction: float) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    scaling = FeatureScaling(factor=1 / 16)  # pixels 0..16
    X = scaling.transform(bunch.data)
    y = bunch.target.astype(np.int64)
    X_rest, X_test, y_rest, y_test = _split(X, y, TEST_FRACTION, "digits")
    X_train, X_val, y_train, y_val = _split(X_rest, y_rest, validation_fraction, "digits")
    data = _make_dataset(
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


def _load_idx_dataset(
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

    classes = _classes(train_labels, "train labels", str(folder))
    _check_subset(classes, test_labels, "test labels", str(folder))
    y_train, y_val, y_test = (
        _encode_with(classes, labels, split, name)
        for labels, split in (
            (train_labels[train_idx], "train"),
            (train_labels[val_idx], "validation"),
            (test_labels, "test"),
        )
    )
    data = _make_dataset(
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


# --- user files ---------------------------------------------------------------------


def _load_npz(path: Path, validation_fraction: float) -> Dataset:
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

    X_train = _check_features(arrays["X_train"], "X_train", source)
    y_train = _check_labels(arrays["y_train"], len(X_train), "y_train", "X_train", source)
    X_test = _check_features(arrays["X_test"], "X_test", source)
    y_test = _check_labels(arrays["y_test"], len(X_test), "y_test", "X_test", source)
    others = [("X_test", X_test)]
    given_val = "X_val" in arrays and "y_val" in arrays
    if given_val:
        X_val = _check_features(arrays["X_val"], "X_val", source, allow_empty=True)
        y_val = _check_labels(arrays["y_val"], len(X_val), "y_val", "X_val", source)
        others.append(("X_val", X_val))
    for other, X_other in others:
        if X_other.shape[1] != X_train.shape[1]:
            raise DataError(
                f"{source}: X_train has {X_train.shape[1]} features but {other} has "
                f"{X_other.shape[1]}: expected the same number"
            )
    classes = _classes(y_train, "y_train", source)
    _check_subset(classes, y_test, "y_test", source)
    if given_val:
        _check_subset(classes, y_val, "y_val", source)
    else:
        X_train, X_val, y_train, y_val = _split(X_train, y_train, validation_fraction, source)
    return _finish_user_data(
        path.stem, classes, source, X_train, y_train, X_val, y_val, X_test, y_test
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


def _load_csv(path: Path, validation_fraction: float) -> Dataset:
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
    _check_data_file(path, "data file")
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
    X = _check_features(X, "X", source)
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
    X = _check_features(X, names[0], source)
    y = _check_labels(y, len(X), names[1], names[0], source)
    classes = _classes(y, names[1], source)
    X_rest, X_test, y_rest, y_test = _split(X, y, TEST_FRACTION, source)
    X_train, X_val, y_train, y_val = _split(X_rest, y_rest, validation_fraction, source)
    return _finish_user_data(name, classes, source, X_train, y_train, X_val, y_val, X_test, y_test)


def _finish_user_data(
    name: str,
    classes: np.ndarray,
    source: str,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
) -> Dataset:
    low, scale = _minmax(X_train)
    scaling = FeatureScaling(low, scale, clip=True)
    scaled = [scaling.transform(X) for X in (X_train, X_val, X_test)]
    encoded = [
        _encode_with(classes, y, split, source)
        for y, split in ((y_train, "train"), (y_val, "validation"), (y_test, "test"))
    ]
    data = _make_dataset(
        name,
        scaled[0],
        encoded[0],
        scaled[1],
        encoded[1],
        scaled[2],
        encoded[2],
        classes,
    )
    return dataclasses.replace(data, scaling=scaling)


def _minmax(X_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature offset and factor mapping train values onto [0, 1]; constant features to 0.

    Any finite features scale without overflow: where ``max - min`` exceeds the
    largest float (say -1e308 and 1e308) the factor is ``0.5 / (max/2 - min/2)``,
    which cannot overflow, and :meth:`FeatureScaling.transform` halves both
    sides wherever ``x - min`` would overflow.
    """
    low, high = X_train.min(axis=0), X_train.max(axis=0)
    with np.errstate(over="ignore"):
        span = high - low
    wide = ~np.isfinite(span)
    factor = np.divide(1.0, span, out=np.zeros_like(span), where=span > 0)
    factor[wide] = 0.5 / (high[wide] / 2 - low[wide] / 2)
    return low, factor


# --- checks, splits, encoding ------------------------------------------------------


def _check_validation_fraction(validation_fraction: float) -> None:
    ok = isinstance(validation_fraction, (int, float, np.floating, np.integer)) and not isinstance(
        validation_fraction, bool
    )
    if not ok or not 0.0 <= float(validation_fraction) < 1.0:
        raise DataError(f"validation_fraction={validation_fraction!r}: expected a number in [0, 1)")


def _check_features(X: np.ndarray, what: str, source: str, allow_empty: bool = False) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise DataError(
            f"{what} in {source} has shape {X.shape}: expected a 2-D array (samples × features)"
        )
    if X.dtype.kind not in "biuf":
        raise DataError(f"{what} in {source} has dtype {X.dtype}: expected numeric features")
    if X.shape[0] == 0 and not allow_empty:
        raise DataError(f"{what} in {source} holds no samples: expected at least one row")
    if X.shape[1] == 0:
        raise DataError(f"{what} in {source} has no features: expected at least one column")
    X = X.astype(np.float64)
    finite = np.isfinite(X)
    if not finite.all():
        n_nan = int(np.isnan(X).sum())
        n_inf = int(X.size - finite.sum()) - n_nan
        raise DataError(
            f"{what} in {source} has {n_nan} NaN and {n_inf} infinite values: expected finite numbers"
        )
    return X


def _check_labels(y: np.ndarray, n: int, what: str, x_what: str, source: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{what} in {source} has shape {y.shape}: expected a 1-D array of labels")
    if len(y) != n:
        raise DataError(
            f"{what} in {source} has {len(y)} labels but {x_what} has {n} rows: expected the same number"
        )
    if y.dtype.kind not in "biufUS":
        raise DataError(
            f"{what} in {source} has dtype {y.dtype}: expected integer, float or string labels"
        )
    if y.dtype.kind == "S":
        # Bytes labels become text here: a record (JSON) holds text, and a user who saved
        # b"cat" means "cat".
        for label in np.unique(y):
            try:
                label.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(
                    f"{what} in {source} holds bytes labels that are not UTF-8 text: "
                    f"{bytes(label)!r}"
                ) from None
        y = np.char.decode(y, "utf-8")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise DataError(f"{what} in {source} has NaN or infinite labels: expected finite values")
    return y


def _classes(y: np.ndarray, what: str, source: str) -> np.ndarray:
    """The sorted distinct labels of ``y``; at least two are needed to classify."""
    classes = np.unique(y)
    if len(classes) < 2:
        raise DataError(
            f"{what} in {source} has {len(classes)} distinct label"
            f"{'' if len(classes) == 1 else 's'} {classes.tolist()}: expected at least 2 classes"
        )
    return classes


def _check_subset(classes: np.ndarray, y: np.ndarray, what: str, source: str) -> None:
    unknown = np.unique(y[~np.isin(y, classes)]).tolist()
    if unknown:
        raise DataError(
            f"{what} in {source} has labels not present in the train labels: {unknown[:10]}"
            f"{' ...' if len(unknown) > 10 else ''} (train classes: {classes.tolist()[:10]}"
            f"{' ...' if len(classes) > 10 else ''})"
        )


def _encode_with(classes: np.ndarray, y: np.ndarray, split: str, source: str) -> np.ndarray:
    codes = np.searchsorted(classes, y)
    codes = np.minimum(codes, len(classes) - 1)
    if len(y) and not np.array_equal(classes[codes], y):
        raise DataError(f"{split} labels in {source} are not among the classes {classes.tolist()}")
    return codes.astype(np.int64)


def _split(
    X: np.ndarray, y: np.ndarray, fraction: float, source: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out ``fraction`` of the rows, stratified when every class allows it."""
    if fraction == 0:
        return X, X[:0], y, y[:0]
    from sklearn.model_selection import train_test_split

    try:
        return train_test_split(
            X, y, test_size=fraction, stratify=y, random_state=SPLIT_RANDOM_STATE
        )
    except ValueError:
        pass  # a class with too few members to stratify: fall back to a plain split
    try:
        return train_test_split(X, y, test_size=fraction, random_state=SPLIT_RANDOM_STATE)
    except ValueError:
        raise DataError(
            f"{source} has {len(y)} samples, too few to hold out {fraction:g} of them "
            "and keep at least one for training"
        ) from None


def _make_dataset(
    name: str,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    classes: np.ndarray,
) -> Dataset:
    def features(X: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(X, dtype=np.float32)

    def labels(y: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(y, dtype=np.int64)

    return Dataset(
        name=name,
        X_train=features(X_train),
        y_train=labels(y_train),
        X_val=features(X_val),
        y_val=labels(y_val),
        X_test=features(X_test),
        y_test=labels(y_test),
        classes=np.asarray(classes),
    )
