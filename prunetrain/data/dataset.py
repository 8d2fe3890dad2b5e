"""The :class:`Dataset`: train, validation and test splits of one dataset, as a network sees them."""

from __future__ import annotations

import dataclasses

import numpy as np

from prunetrain.data.prepare import FeatureScaling


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
    >>> from prunetrain.data import load_dataset
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


def make_dataset(
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
