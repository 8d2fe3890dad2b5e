"""How raw arrays become a dataset's arrays: checks, feature scaling, splits, label encoding.

Every source (:mod:`prunetrain.data.named`, :mod:`prunetrain.data.user_files`)
and the scikit-learn estimator pass their features and labels through these
functions, so a check, a split or a scaling is written once. Every split uses a
fixed random state, independent of any search seed, so the same data always
gives the same arrays.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from prunetrain.errors import DataError

TEST_FRACTION = 0.2
"""Share of an unsplit dataset (digits, ``X``/``y`` files) held out as the test split."""

SPLIT_RANDOM_STATE = 0
"""Fixed seed of every split; independent of any search seed."""


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


def minmax_scaling(X_train: np.ndarray, clip: bool) -> FeatureScaling:
    """The per-feature min-max scaling that maps train values onto [0, 1]; constant features to 0.

    The one min-max scaler of the package: user files use it with ``clip``
    (validation and test values outside the train range are clipped), the
    estimator's ``scaling="minmax"`` without.

    Any finite features scale without overflow: where ``max - min`` exceeds the
    largest float (say -1e308 and 1e308) the factor is ``0.5 / (max/2 - min/2)``,
    which cannot overflow, and :meth:`FeatureScaling.transform` halves both
    sides wherever ``x - min`` would overflow.

    Examples
    --------
    >>> s = minmax_scaling(np.array([[-1e308, 2.0], [1e308, 2.0]]), clip=True)
    >>> s.transform([[-1e308, 2.0], [0.0, 5.0], [1e308, 2.0]])
    array([[0. , 0. ],
           [0.5, 0. ],
           [1. , 0. ]], dtype=float32)
    """
    low, high = X_train.min(axis=0), X_train.max(axis=0)
    with np.errstate(over="ignore"):
        span = high - low
    wide = ~np.isfinite(span)
    factor = np.divide(1.0, span, out=np.zeros_like(span), where=span > 0)
    factor[wide] = 0.5 / (high[wide] / 2 - low[wide] / 2)
    return FeatureScaling(low, factor, clip=clip)


def check_validation_fraction(validation_fraction: float) -> None:
    ok = isinstance(validation_fraction, (int, float, np.floating, np.integer)) and not isinstance(
        validation_fraction, bool
    )
    if not ok or not 0.0 <= float(validation_fraction) < 1.0:
        raise DataError(f"validation_fraction={validation_fraction!r}: expected a number in [0, 1)")


def check_features(X: np.ndarray, what: str, source: str, allow_empty: bool = False) -> np.ndarray:
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


def check_labels(y: np.ndarray, n: int, what: str, x_what: str, source: str) -> np.ndarray:
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


def classes_of(y: np.ndarray, what: str, source: str) -> np.ndarray:
    """The sorted distinct labels of ``y``; at least two are needed to classify."""
    classes = np.unique(y)
    if len(classes) < 2:
        raise DataError(
            f"{what} in {source} has {len(classes)} distinct label"
            f"{'' if len(classes) == 1 else 's'} {classes.tolist()}: expected at least 2 classes"
        )
    return classes


def check_subset(classes: np.ndarray, y: np.ndarray, what: str, source: str) -> None:
    unknown = np.unique(y[~np.isin(y, classes)]).tolist()
    if unknown:
        raise DataError(
            f"{what} in {source} has labels not present in the train labels: {unknown[:10]}"
            f"{' ...' if len(unknown) > 10 else ''} (train classes: {classes.tolist()[:10]}"
            f"{' ...' if len(classes) > 10 else ''})"
        )


def encode_with(classes: np.ndarray, y: np.ndarray, split: str, source: str) -> np.ndarray:
    codes = np.searchsorted(classes, y)
    codes = np.minimum(codes, len(classes) - 1)
    if len(y) and not np.array_equal(classes[codes], y):
        raise DataError(f"{split} labels in {source} are not among the classes {classes.tolist()}")
    return codes.astype(np.int64)


def hold_out(
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
