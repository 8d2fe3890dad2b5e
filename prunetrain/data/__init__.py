"""Datasets: named ones and user files, loaded into deterministic float32 splits.

:func:`load_dataset` turns a name (``"digits"``, ``"fashion-mnist"``,
``"mnist"``) or a path to a ``.npz`` / ``.csv`` file into a :class:`Dataset`:
train, validation and test splits with features scaled into [0, 1] as
C-contiguous float32 and labels encoded as int64 ``0 .. n_classes - 1``.
Every split is made with a fixed random state, independent of any search
seed, so the same call always gives the same arrays. Nothing is cached on
disk.

The package's modules: :mod:`~prunetrain.data.load` (:func:`load_dataset`, the
one entry), :mod:`~prunetrain.data.named` (digits and the IDX sources),
:mod:`~prunetrain.data.user_files` (``.npz`` and ``.csv`` parsing),
:mod:`~prunetrain.data.prepare` (checks, scaling, splits, encoding) and
:mod:`~prunetrain.data.dataset` (the :class:`Dataset`). This face re-exports
their public names.
"""

from prunetrain.data.dataset import Dataset
from prunetrain.data.load import load_dataset
from prunetrain.data.named import (
    DATA_ENV,
    DATASETS,
    DEFAULT_DATA_DIRS,
    IDX_FILES,
    MAX_IDX_BYTES,
    MAX_IDX_DIMS,
    read_idx,
)
from prunetrain.data.prepare import SPLIT_RANDOM_STATE, TEST_FRACTION, FeatureScaling
from prunetrain.data.user_files import (
    FILE_SUFFIXES,
    LABEL_COLUMNS,
    MAX_CSV_FIELDS,
    MAX_CSV_LINE_CHARS,
    MAX_INFLATED_BYTES,
    file_source,
    read_features,
    read_npz,
)

__all__ = [
    "DATASETS",
    "DATA_ENV",
    "DEFAULT_DATA_DIRS",
    "FILE_SUFFIXES",
    "IDX_FILES",
    "LABEL_COLUMNS",
    "MAX_CSV_FIELDS",
    "MAX_CSV_LINE_CHARS",
    "MAX_IDX_BYTES",
    "MAX_IDX_DIMS",
    "MAX_INFLATED_BYTES",
    "SPLIT_RANDOM_STATE",
    "TEST_FRACTION",
    "Dataset",
    "FeatureScaling",
    "file_source",
    "load_dataset",
    "read_features",
    "read_idx",
    "read_npz",
]
