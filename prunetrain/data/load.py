"""One entry for every dataset: :func:`load_dataset` picks the source a name or a path asks for."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from prunetrain.data.dataset import Dataset
from prunetrain.data.named import DATASETS, load_digits, load_idx_dataset
from prunetrain.data.prepare import check_validation_fraction
from prunetrain.data.user_files import (
    FILE_SUFFIXES,
    check_data_file,
    file_source,
    load_csv,
    load_npz,
)
from prunetrain.errors import DataError


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
    check_validation_fraction(validation_fraction)
    name = os.fspath(name)
    if name in DATASETS:
        if name == "digits":
            data = load_digits(validation_fraction)
        else:
            data = load_idx_dataset(name, data_dir, validation_fraction)
        return dataclasses.replace(data, source={"name": name})
    path = Path(name)
    suffix = path.suffix.lower()
    if suffix in FILE_SUFFIXES or _exists(path):
        check_data_file(path, "dataset file")
        if suffix in (".npz", ".csv"):
            load = load_npz if suffix == ".npz" else load_csv
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
