"""Tests for prunetrain.data: named datasets, IDX files, user files, splits and errors."""

from __future__ import annotations

import gzip
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prunetrain.data import DATASETS, Dataset, load_dataset, read_idx
from prunetrain.errors import DataError, PrunetrainError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


# --- helpers -------------------------------------------------------------------------


def idx_bytes(array: np.ndarray, dtype_code: int = 0x08) -> bytes:
    """Encode a uint8 array in the IDX format."""
    header = bytes([0, 0, dtype_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    data = idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def tiny_idx_arrays(n_train: int = 40, n_test: int = 10) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(123)
    return {
        IDX_STEMS[0]: rng.integers(0, 256, size=(n_train, 3, 2), dtype=np.uint8),
        IDX_STEMS[1]: (np.arange(n_train) % 4).astype(np.uint8),
        IDX_STEMS[2]: rng.integers(0, 256, size=(n_test, 3, 2), dtype=np.uint8),
        IDX_STEMS[3]: (np.arange(n_test) % 4).astype(np.uint8),
    }


def write_tiny_idx_dir(folder: Path, gz: bool = True) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = tiny_idx_arrays()
    for i, (stem, array) in enumerate(arrays.items()):
        # Mix gzipped and plain files when gz is True, to cover both in one folder.
        write_idx(folder / stem, array, gz=gz and i % 2 == 0)
    return arrays


def assert_well_formed(ds: Dataset) -> None:
    for X in (ds.X_train, ds.X_val, ds.X_test):
        assert X.dtype == np.float32
        assert X.ndim == 2
        assert X.flags["C_CONTIGUOUS"]
        assert X.shape[1] == ds.n_features
        if X.size:
            assert X.min() >= 0.0
            assert X.max() <= 1.0
    for X, y in ((ds.X_train, ds.y_train), (ds.X_val, ds.y_val), (ds.X_test, ds.y_test)):
        assert y.dtype == np.int64
        assert y.shape == (len(X),)
        if y.size:
            assert y.min() >= 0
            assert y.max() < ds.n_classes
    assert np.all(ds.classes[:-1] < ds.classes[1:])  # sorted, distinct


def assert_same(a: Dataset, b: Dataset) -> None:
    for field in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test", "classes"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def save_npz(path: Path, **arrays: np.ndarray) -> str:
    np.savez(path, **arrays)
    return str(path)


def write_csv(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def blobs(n: int = 60, d: int = 3, n_classes: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    X = rng.normal(size=(n, d)) * 5 + y[:, None] * 10
    return X, y


# --- digits --------------------------------------------------------------------------


def test_datasets_names():
    assert DATASETS == ("digits", "fashion-mnist", "mnist")


def test_digits_shapes_range_and_dtypes():
    ds = load_dataset("digits")
    assert_well_formed(ds)
    assert ds.name == "digits"
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 1797
    assert len(ds.y_test) == 360  # 20 % of 1797, rounded up
    assert len(ds.y_val) == 144  # 10 % of the remaining 1437, rounded up
    assert ds.n_features == 64
    assert ds.n_classes == 10
    np.testing.assert_array_equal(ds.classes, np.arange(10))
    assert ds.X_train.max() == 1.0  # 16 / 16
    # Stratified: every class is in every split.
    for y in (ds.y_train, ds.y_val, ds.y_test):
        assert set(np.unique(y)) == set(range(10))


def test_digits_is_deterministic_and_describes_itself():
    a = load_dataset("digits")
    b = load_dataset("digits")
    assert_same(a, b)
    line = a.describe()
    assert "\n" not in line
    for part in ("digits", "1293", "144", "360", "64", "10"):
        assert part in line
    assert "digits" in repr(a)


def test_digits_validation_fraction():
    none = load_dataset("digits", validation_fraction=0.0)
    assert none.X_val.shape == (0, 64)
    assert none.y_val.shape == (0,)
    assert len(none.y_train) == 1797 - 360
    half = load_dataset("digits", validation_fraction=0.5)
    assert len(half.y_train) + len(half.y_val) == 1797 - 360
    assert abs(len(half.y_val) - len(half.y_train)) <= 1
    # The test split does not depend on the validation fraction.
    np.testing.assert_array_equal(none.X_test, half.X_test)


# --- read_idx ------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_exact_arrays(tmp_path, gz):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, 0, 255], dtype=np.uint8)
    got_images = read_idx(write_idx(tmp_path / "images-idx3-ubyte", images, gz=gz))
    got_labels = read_idx(write_idx(tmp_path / "labels-idx1-ubyte", labels, gz=gz))
    assert got_images.dtype == np.uint8
    assert got_images.shape == (2, 3, 4)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    got_labels[0] = 1  # a private, writable copy


def test_read_idx_detects_gzip_by_content(tmp_path):
    labels = np.array([1, 2, 3], dtype=np.uint8)
    path = tmp_path / "labels-without-suffix"
    path.write_bytes(gzip.compress(idx_bytes(labels)))
    np.testing.assert_array_equal(read_idx(path), labels)


def test_read_idx_rejects_bad_magic(tmp_path):
    path = tmp_path / "bad-magic"
    data = bytearray(idx_bytes(np.zeros(4, dtype=np.uint8)))
    data[0] = 0x12
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="magic number"):
        read_idx(path)


def test_read_idx_rejects_other_dtype(tmp_path):
    path = tmp_path / "floats"
    path.write_bytes(idx_bytes(np.zeros(4, dtype=np.uint8), dtype_code=0x0D))
    with pytest.raises(DataError, match="0x0d.*expected 0x08"):
        read_idx(path)


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_rejects_truncated_file(tmp_path, gz):
    data = idx_bytes(np.ones((5, 4, 4), dtype=np.uint8))
    data = gzip.compress(data)[:-12] if gz else data[:-3]
    path = tmp_path / "truncated"
    path.write_bytes(data)
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)


def test_read_idx_rejects_truncated_header_and_trailing_bytes(tmp_path):
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 5]))  # 3 dimensions announced, 1 given
    with pytest.raises(DataError, match="truncated"):
        read_idx(short)
    long = tmp_path / "long"
    long.write_bytes(idx_bytes(np.zeros(3, dtype=np.uint8)) + b"\x00")
    with pytest.raises(DataError, match="trailing"):
        read_idx(long)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="nothing-here"):
        read_idx(tmp_path / "nothing-here")


# --- Fashion-MNIST from the Debian package ------------------------------------------


@pytest.mark.skipif(
    not FASHION_DIR.is_dir(),
    reason=f"{FASHION_DIR} is missing (apt-get install dataset-fashion-mnist)",
)
def test_fashion_mnist_from_real_files(monkeypatch):
    monkeypatch.delenv("PRUNETRAIN_DATA", raising=False)
    ds = load_dataset("fashion-mnist")
    assert_well_formed(ds)
    assert ds.name == "fashion-mnist"
    assert ds.X_train.shape == (54000, 784)
    assert ds.X_val.shape == (6000, 784)
    assert ds.X_test.shape == (10000, 784)
    assert ds.n_classes == 10
    np.testing.assert_array_equal(ds.classes, np.arange(10))
    assert ds.classes[ds.y_test[0]] == 9  # the first t10k label is 9 (ankle boot)
    assert ds.X_train.min() == 0.0
    assert ds.X_train.max() == 1.0
    # The test split is the official t10k set, in order, pixels / 255.
    raw = read_idx(FASHION_DIR / "t10k-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(ds.X_test[0], raw[0].reshape(-1).astype(np.float32) / 255)
    # Train and validation together are the 60k train images: compare pixel sums.
    raw_train = read_idx(FASHION_DIR / "train-images-idx3-ubyte.gz")
    total = ds.X_train.astype(np.float64).sum() + ds.X_val.astype(np.float64).sum()
    assert total == pytest.approx(raw_train.sum(dtype=np.float64) / 255, rel=1e-6)


# --- IDX datasets from a folder: data_dir, PRUNETRAIN_DATA ---------------------------


def test_idx_dataset_from_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("PRUNETRAIN_DATA", raising=False)
    arrays = write_tiny_idx_dir(tmp_path / "fm")
    ds = load_dataset("fashion-mnist", data_dir=tmp_path / "fm", validation_fraction=0.25)
    assert_well_formed(ds)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (30, 10, 10)
    assert ds.n_features == 6
    np.testing.assert_array_equal(ds.classes, np.arange(4))
    test_images = arrays["t10k-images-idx3-ubyte"]
    np.testing.assert_array_equal(
        ds.X_test, test_images.reshape(10, 6).astype(np.float32) / np.float32(255)
    )
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])
    # Train + validation hold every train image exactly once, paired with its label.
    train_images = arrays["train-images-idx3-ubyte"].reshape(40, 6)
    train_labels = arrays["train-labels-idx1-ubyte"]
    got = np.concatenate([ds.X_train, ds.X_val]) * 255
    got_labels = np.concatenate([ds.y_train, ds.y_val])
    order = np.lexsort(got.T[::-1])
    expected_order = np.lexsort(train_images.T[::-1])
    np.testing.assert_array_equal(np.rint(got[order]), train_images[expected_order])
    np.testing.assert_array_equal(got_labels[order], train_labels[expected_order])
    assert_same(
        ds, load_dataset("fashion-mnist", data_dir=str(tmp_path / "fm"), validation_fraction=0.25)
    )


def test_idx_dataset_plain_files_and_env_var(tmp_path, monkeypatch):
    write_tiny_idx_dir(tmp_path / "plain", gz=False)
    monkeypatch.setenv("PRUNETRAIN_DATA", str(tmp_path / "plain"))
    ds = load_dataset("mnist")
    assert ds.name == "mnist"
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (36, 4, 10)


def test_data_dir_overrides_env_var_and_subfolder_is_found(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNETRAIN_DATA", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    write_tiny_idx_dir(tmp_path / "root" / "fashion-mnist")
    # data_dir wins over the environment; a subfolder named after the dataset is used.
    ds = load_dataset("fashion-mnist", data_dir=tmp_path / "root")
    assert len(ds.y_test) == 10
    with pytest.raises(DataError, match=str(tmp_path / "empty")):
        load_dataset("fashion-mnist")


def test_missing_fashion_mnist_file_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("PRUNETRAIN_DATA", raising=False)
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist", data_dir=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "train-images-idx3-ubyte.gz") in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "--data-dir" in message
    assert "PRUNETRAIN_DATA" in message


def test_missing_single_idx_file_is_named(tmp_path, monkeypatch):
    write_tiny_idx_dir(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    monkeypatch.setenv("PRUNETRAIN_DATA", str(tmp_path))
    with pytest.raises(DataError, match="missing .*t10k-labels-idx1-ubyte.*download"):
        load_dataset("mnist")


def test_idx_labels_not_matching_images(tmp_path):
    write_tiny_idx_dir(tmp_path, gz=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(9, dtype=np.uint8), gz=False)
    with pytest.raises(DataError, match="10 images but 9 labels"):
        load_dataset("mnist", data_dir=tmp_path)


def test_idx_damaged_file_is_reported(tmp_path):
    write_tiny_idx_dir(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataError, match="truncated"):
        load_dataset("mnist", data_dir=tmp_path)


# --- user .npz files -----------------------------------------------------------------


def test_npz_x_y(tmp_path):
    X, y = blobs(n=100)
    labels = np.array(["cat", "dog", "eel"])[y]
    path = save_npz(tmp_path / "pets.npz", X=X, y=labels)
    ds = load_dataset(path)
    assert_well_formed(ds)
    assert ds.name == "pets"
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (72, 8, 20)
    np.testing.assert_array_equal(ds.classes, ["cat", "dog", "eel"])
    decoded = np.concatenate([ds.classes[ds.y_train], ds.classes[ds.y_val], ds.classes[ds.y_test]])
    assert sorted(decoded.tolist()) == sorted(labels.tolist())
    # Min-max on train: every feature spans exactly [0, 1] on the train split.
    np.testing.assert_array_equal(ds.X_train.min(axis=0), 0.0)
    np.testing.assert_array_equal(ds.X_train.max(axis=0), 1.0)
    assert_same(ds, load_dataset(path))


def test_npz_fixed_split(tmp_path):
    X, y = blobs(n=80)
    path = save_npz(
        tmp_path / "fixed.npz", X_train=X[:60], y_train=y[:60], X_test=X[60:], y_test=y[60:]
    )
    ds = load_dataset(path, validation_fraction=0.2)
    assert_well_formed(ds)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (48, 12, 20)
    np.testing.assert_array_equal(ds.y_test, y[60:])  # the given test split, in order
    # Scaling statistics come from the final train split (after validation is carved out).
    np.testing.assert_array_equal(ds.X_train.min(axis=0), 0.0)
    np.testing.assert_array_equal(ds.X_train.max(axis=0), 1.0)


def test_npz_fixed_split_with_given_validation(tmp_path):
    X, y = blobs(n=90)
    path = save_npz(
        tmp_path / "three.npz",
        X_train=X[:60],
        y_train=y[:60],
        X_val=X[60:70],
        y_val=y[60:70],
        X_test=X[70:],
        y_test=y[70:],
    )
    ds = load_dataset(path)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (60, 10, 20)
    np.testing.assert_array_equal(ds.y_val, y[60:70])


def test_minmax_uses_train_statistics_only(tmp_path):
    X_train = np.array([[0.0, 5.0, 1.0], [10.0, 5.0, 2.0], [5.0, 5.0, 3.0], [2.0, 5.0, 4.0]])
    y_train = np.array([0, 1, 0, 1])
    X_test = np.array([[20.0, 7.0, 0.0], [-3.0, 5.0, 2.5]])
    y_test = np.array([1, 0])
    path = save_npz(
        tmp_path / "s.npz", X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test
    )
    ds = load_dataset(path, validation_fraction=0.0)
    np.testing.assert_allclose(ds.X_train[:, 0], [0.0, 1.0, 0.5, 0.2], rtol=1e-6)
    np.testing.assert_array_equal(ds.X_train[:, 1], 0.0)  # constant feature maps to 0
    np.testing.assert_allclose(ds.X_train[:, 2], [0.0, 1 / 3, 2 / 3, 1.0], rtol=1e-6)
    # Test values beyond the train range are clipped; train statistics, not test ones.
    np.testing.assert_allclose(ds.X_test, [[1.0, 0.0, 0.0], [0.0, 0.0, 0.5]], rtol=1e-6)


def test_few_members_per_class_falls_back_to_plain_split(tmp_path):
    X, y = blobs(n=30, n_classes=2)
    y = y.copy()
    y[0] = 7  # a class with one member cannot be stratified
    ds = load_dataset(save_npz(tmp_path / "rare.npz", X=X, y=y))
    assert_well_formed(ds)
    assert ds.n_classes == 3
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 30


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(min_value=6, max_value=40),
    n_classes=st.integers(min_value=2, max_value=4),
    fraction=st.sampled_from([0.0, 0.1, 0.3]),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_npz_splits_keep_rows_and_labels_paired(n, n_classes, fraction, seed):
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % n_classes)
    # Column 0 is the label itself, so scaled rows must still match their labels.
    X = np.column_stack([y * 3.0 + 1.0, rng.normal(size=n)])
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "p.npz")
        np.savez(path, X=X, y=y * 10)
        ds = load_dataset(path, validation_fraction=fraction)
    assert_well_formed(ds)
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == n
    np.testing.assert_array_equal(ds.classes, np.arange(n_classes) * 10)
    low, high = y.min(), y.max()
    present = np.unique(ds.y_train)
    if present.min() == low and present.max() == high:
        for X_split, y_split in (
            (ds.X_train, ds.y_train),
            (ds.X_val, ds.y_val),
            (ds.X_test, ds.y_test),
        ):
            np.testing.assert_allclose(X_split[:, 0] * (high - low) + low, y_split, atol=1e-5)


# --- user .csv files -----------------------------------------------------------------


def test_csv_string_labels_in_label_column(tmp_path):
    rows = ["a,Label,b"]
    species = ["setosa", "versicolor", "virginica"]
    for i in range(30):
        rows.append(f"{i},{species[i % 3]},{(i % 3) * 2.5}")
    ds = load_dataset(write_csv(tmp_path / "iris.csv", "\n".join(rows) + "\n"))
    assert_well_formed(ds)
    assert ds.name == "iris"
    assert ds.n_features == 2
    np.testing.assert_array_equal(ds.classes, species)
    # Column b determines the class: scaled b is 0, 0.5 or 1 per class on every split.
    for X, y in ((ds.X_train, ds.y_train), (ds.X_val, ds.y_val), (ds.X_test, ds.y_test)):
        np.testing.assert_allclose(X[:, 1], y / 2.0, atol=1e-6)


def test_csv_label_in_last_column(tmp_path):
    rows = ["f1,f2,kind"]
    for i in range(20):
        rows.append(f"{i * 0.5},{-i},{10 if i % 2 else 2}")
    ds = load_dataset(write_csv(tmp_path / "last.csv", "\n".join(rows)))
    assert ds.n_features == 2
    # Integer labels are sorted numerically, not as strings ("10" < "2").
    np.testing.assert_array_equal(ds.classes, [2, 10])
    assert ds.classes.dtype.kind == "i"
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 20


def test_csv_target_column_case_insensitive_and_blank_lines(tmp_path):
    text = "x,TARGET,z\n1,0,5\n\n2,1,6\n3,0,7\n4,1,8\n5,0,9\n6,1,1\n7,0,2\n8,1,3\n9,0,4\n10,1,5\n"
    ds = load_dataset(write_csv(tmp_path / "t.csv", text), validation_fraction=0.0)
    assert ds.n_features == 2
    np.testing.assert_array_equal(ds.classes, [0, 1])


# --- errors --------------------------------------------------------------------------


def test_errors_are_value_errors():
    assert issubclass(DataError, PrunetrainError)
    assert issubclass(DataError, ValueError)


def test_unknown_name_lists_known_datasets():
    with pytest.raises(DataError) as info:
        load_dataset("cifar-10")
    message = str(info.value)
    for name in DATASETS:
        assert name in message
    assert ".npz" in message and ".csv" in message


def test_existing_file_with_unknown_suffix(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"'\.txt'.*\.npz or \.csv"):
        load_dataset(str(path))


def test_missing_user_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(str(tmp_path / "absent.npz"))


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5, float("nan"), "0.1", True])
def test_bad_validation_fraction(fraction):
    with pytest.raises(DataError, match=r"validation_fraction.*\[0, 1\)"):
        load_dataset("digits", validation_fraction=fraction)


def test_nan_and_inf_features_are_counted(tmp_path):
    X, y = blobs(n=30)
    X[0, 0] = np.nan
    X[1, 1] = np.nan
    X[2, 2] = np.inf
    with pytest.raises(DataError, match=r"X in bad\.npz has 2 NaN and 1 infinite"):
        load_dataset(save_npz(tmp_path / "bad.npz", X=X, y=y))


def test_nan_in_fixed_split_names_the_split(tmp_path):
    X, y = blobs(n=30)
    X_test = X[20:].copy()
    X_test[3, 0] = -np.inf
    path = save_npz(
        tmp_path / "f.npz", X_train=X[:20], y_train=y[:20], X_test=X_test, y_test=y[20:]
    )
    with pytest.raises(DataError, match="X_test in f.npz has 0 NaN and 1 infinite"):
        load_dataset(path)


def test_nan_in_csv(tmp_path):
    text = "a,b,label\n1,nan,x\n2,3,y\n4,5,x\n6,7,y\n"
    with pytest.raises(DataError, match="1 NaN"):
        load_dataset(write_csv(tmp_path / "n.csv", text))


def test_x_not_two_d(tmp_path):
    with pytest.raises(DataError, match=r"shape \(10,\).*2-D"):
        load_dataset(save_npz(tmp_path / "flat.npz", X=np.arange(10.0), y=np.arange(10) % 2))


def test_x_y_length_mismatch(tmp_path):
    X, y = blobs(n=30)
    with pytest.raises(DataError, match="29 labels but X has 30 rows"):
        load_dataset(save_npz(tmp_path / "m.npz", X=X, y=y[:29]))


def test_fewer_than_two_classes(tmp_path):
    X, _ = blobs(n=30)
    with pytest.raises(DataError, match="1 distinct label.*at least 2"):
        load_dataset(save_npz(tmp_path / "one.npz", X=X, y=np.zeros(30, dtype=int)))


def test_fixed_split_feature_mismatch(tmp_path):
    X, y = blobs(n=30)
    path = save_npz(
        tmp_path / "w.npz", X_train=X[:20], y_train=y[:20], X_test=X[20:, :2], y_test=y[20:]
    )
    with pytest.raises(DataError, match="X_train has 3 features but X_test has 2"):
        load_dataset(path)


def test_test_labels_not_in_train(tmp_path):
    X, y = blobs(n=30)
    y_test = y[20:].copy()
    y_test[0] = 42
    path = save_npz(
        tmp_path / "u.npz", X_train=X[:20], y_train=y[:20], X_test=X[20:], y_test=y_test
    )
    with pytest.raises(DataError, match=r"y_test .*not present in the train labels: \[42\]"):
        load_dataset(path)


def test_empty_datasets(tmp_path):
    with pytest.raises(DataError, match="no samples"):
        load_dataset(save_npz(tmp_path / "e.npz", X=np.zeros((0, 3)), y=np.zeros(0)))
    with pytest.raises(DataError, match="no samples"):
        load_dataset(write_csv(tmp_path / "e.csv", "a,b,label\n"))
    with pytest.raises(DataError, match="empty"):
        load_dataset(write_csv(tmp_path / "blank.csv", ""))


def test_too_few_samples_to_split(tmp_path):
    with pytest.raises(DataError, match="too few"):
        load_dataset(save_npz(tmp_path / "two.npz", X=np.eye(2), y=np.array([0, 1])))


def test_npz_without_expected_keys(tmp_path):
    with pytest.raises(DataError, match=r"keys \['features'\].*'X' and 'y'"):
        load_dataset(save_npz(tmp_path / "k.npz", features=np.eye(3)))


def test_damaged_npz(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(DataError, match="cannot read"):
        load_dataset(str(path))


def test_npz_with_object_array_is_refused(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, X=np.eye(3), y=np.array(["a", 1, None], dtype=object))
    with pytest.raises(DataError, match="entry 'y' has dtype object"):
        load_dataset(str(path))


def test_csv_non_numeric_feature(tmp_path):
    text = "a,b,label\n1,2,x\n3,oops,y\n"
    with pytest.raises(DataError, match=r"line 3, column 'b': value 'oops' is not a number"):
        load_dataset(write_csv(tmp_path / "s.csv", text))


def test_csv_ragged_row_and_missing_header(tmp_path):
    with pytest.raises(DataError, match="line 3 has 2 fields: expected 3"):
        load_dataset(write_csv(tmp_path / "r.csv", "a,b,label\n1,2,x\n3,4\n"))
    with pytest.raises(DataError, match="header row"):
        load_dataset(write_csv(tmp_path / "h.csv", "1,2,0\n3,4,1\n"))


def test_extreme_finite_features_scale_without_overflow(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.random((60, 4))
    X[:, 0] = np.where(rng.random(60) < 0.5, -1e308, 1e308)  # a span beyond the largest float
    X[:, 1] = np.linspace(-1.7, 1.7, 60) * 1e308
    X[:, 2] = 5.0  # constant
    X[0, 2] = X[1, 2] = 1e308  # ... but for two rows, wherever they land
    X_test = X[:10].copy()
    X_test[:, 3] = [-1e308, 1e308] * 5  # far outside the train range of feature 3
    path = tmp_path / "wide.npz"
    np.savez(path, X_train=X, y_train=np.arange(60) % 2, X_test=X_test, y_test=np.arange(10) % 2)
    data = load_dataset(path)
    for split in (data.X_train, data.X_val, data.X_test):
        assert np.isfinite(split).all() and split.min() >= 0 and split.max() <= 1
    both = np.concatenate([data.X_train, data.X_val])
    assert set(np.unique(both[:, 0])) == {0.0, 1.0}  # -1e308 -> 0, 1e308 -> 1
    assert np.all(np.diff(np.sort(both[:, 1])) >= 0) and both[:, 1].max() == 1.0
    assert set(np.unique(data.X_test[:, 3])) == {0.0, 1.0}  # clipped, not NaN


# --- hostile and unusual user files (issue 28) -------------------------------------------


def npy_claiming(shape: tuple, data: bytes = bytes(48), descr: str = "<f8") -> bytes:
    """A ``.npy`` payload whose header claims ``shape`` but which holds only ``data``."""
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue() + data


def write_zip(path: Path, entries: dict[str, bytes], compress: bool = False) -> str:
    import zipfile

    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, payload in entries.items():
            archive.writestr(name, payload)
    return str(path)


def y_npy(n: int = 6) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.arange(n) % 2)
    return buffer.getvalue()


def test_npz_whose_header_claims_8_tb_is_refused_before_allocation(tmp_path):
    """np.load allocated what the header of X claimed: a MemoryError traceback in search and
    predict. The header is checked against the bytes the entry holds before any allocation."""
    import tracemalloc

    from prunetrain.data import read_features

    path = write_zip(
        tmp_path / "huge.npz", {"X.npy": npy_claiming((10**12, 1000)), "y.npy": y_npy()}
    )
    tracemalloc.start()
    try:
        for read in (lambda: load_dataset(path), lambda: read_features(path, 1000)):
            with pytest.raises(DataError) as err:
                read()
            assert str(err.value) == (
                "huge.npz: entry 'X' claims shape (1000000000000, 1000) of float64, "
                "8000000000000000 bytes, but holds 48"
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20


def test_a_bare_npy_named_npz_is_refused_in_one_line(tmp_path):
    """np.load returned an array, not an archive: a TypeError traceback."""
    from prunetrain.data import read_features

    path = tmp_path / "x.npz"
    np.save(tmp_path / "x.npy", np.eye(3))
    (tmp_path / "x.npy").rename(path)
    for read in (lambda: load_dataset(str(path)), lambda: read_features(path, 3)):
        with pytest.raises(DataError) as err:
            read()
        assert str(err.value) == (
            f"cannot read {str(path)!r} as .npz: it is a single .npy array; a dataset is "
            "an .npz archive of named arrays, e.g. np.savez(path, X=X, y=y)"
        )


def test_compressed_npz_datasets_load_and_their_declared_size_is_bounded(tmp_path, monkeypatch):
    import prunetrain.data.user_files

    X, y = blobs()
    np.savez_compressed(tmp_path / "c.npz", X=X, y=y)
    np.savez(tmp_path / "s.npz", X=X, y=y)
    assert_same(load_dataset(str(tmp_path / "c.npz")), load_dataset(str(tmp_path / "s.npz")))
    monkeypatch.setattr(prunetrain.data.user_files, "MAX_INFLATED_BYTES", 1000)
    with pytest.raises(DataError) as err:
        load_dataset(str(tmp_path / "c.npz"))
    assert str(err.value) == (
        "c.npz: entry 'X' is compressed and inflates to 1568 bytes; a compressed entry may "
        "inflate to at most 1000 bytes (store it uncompressed with np.savez)"
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (npy_claiming((3,), bytes(24), "|O"), "entry 'X' has dtype object: expected numbers"),
        (b"\x93NUMPY\x01\x00\xff\xffjunk", "entry 'X' has a damaged .npy header"),
        (b"not an array at all", "entry 'X' is not a .npy array"),
        (npy_claiming((2, 2), bytes(64)), "entry 'X' claims shape (2, 2) of float64, 32 bytes"),
    ],
)
def test_npz_entries_are_checked_before_their_data(tmp_path, payload, message):
    path = write_zip(tmp_path / "bad.npz", {"X.npy": payload, "y.npy": y_npy(2)})
    with pytest.raises(DataError) as err:
        load_dataset(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bytes_labels_are_decoded_as_text_where_the_data_enters(tmp_path):
    """Bytes labels failed only after the whole search, when the record was written."""
    X, y = blobs(n_classes=2)
    names = np.array([b"cat", b"dog"])[y]
    ds = load_dataset(save_npz(tmp_path / "b.npz", X=X, y=names))
    assert ds.classes.tolist() == ["cat", "dog"] and ds.classes.dtype.kind == "U"
    bad = np.array([b"\xff\xfe", b"dog"])[y]
    with pytest.raises(DataError) as err:
        load_dataset(save_npz(tmp_path / "nb.npz", X=X, y=bad))
    assert str(err.value) == "y in nb.npz holds bytes labels that are not UTF-8 text: b'\\xff\\xfe'"


def test_search_on_bytes_labels_writes_its_record(tmp_path, capsys):
    import json

    from prunetrain.cli import main
    from prunetrain.ticket import Ticket

    X, y = blobs(n_classes=2)
    path = save_npz(tmp_path / "b.npz", X=X, y=np.array([b"cat", b"dog"])[y])
    out = tmp_path / "o"
    with pytest.raises(SystemExit) as exit_:
        main(["search", "--dataset", path, "--arch", "3-4-2", "--budget", "20evals",
              "--out", str(out), "-q"])  # fmt: skip
    assert exit_.value.code == 0, capsys.readouterr().err
    assert json.loads((out / "result.json").read_text())["evaluations"] >= 20
    assert Ticket.load(out / "ticket.npz").meta["classes"] == ["cat", "dog"]


def test_an_idx_set_of_two_images_loads(tmp_path):
    """It gave "cannot reshape array of size 0" (the empty validation split)."""
    arrays = tiny_idx_arrays(n_train=2, n_test=2)
    arrays[IDX_STEMS[1]][:] = [0, 1]
    arrays[IDX_STEMS[3]][:] = [0, 1]
    for stem, array in arrays.items():
        write_idx(tmp_path / stem, array, gz=False)
    ds = load_dataset("fashion-mnist", data_dir=tmp_path)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (2, 0, 2)
    assert ds.X_val.shape == (0, 6)


def test_an_idx_file_of_255_dimensions_is_refused_in_one_line(tmp_path):
    path = tmp_path / "deep-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 255]) + struct.pack(">255I", *([1] * 255)) + b"\x07")
    with pytest.raises(DataError) as err:
        read_idx(path)
    assert str(err.value) == (
        f"IDX file {str(path)!r} has 255 dimensions: expected 1 to 3 (labels, or images "
        "of n × rows × cols)"
    )


def test_a_gzipped_idx_is_not_inflated_past_what_its_header_claims(tmp_path):
    path = tmp_path / "bomb-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 4]) + bytes(50_000_000)))
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="trailing bytes"):
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20  # 50 MB were inflated whole before


def test_csv_lines_are_bounded_while_reading(tmp_path, monkeypatch):
    """A 1 GB single-line CSV grew past 3.5 GB before a MemoryError: each line's length and
    field count are checked as it is read."""
    import prunetrain.data.user_files

    monkeypatch.setattr(prunetrain.data.user_files, "MAX_CSV_FIELDS", 4)
    wide = write_csv(tmp_path / "wide.csv", "a,b,c,label\n1,2,3,0\n1,2,3,4,5\n")
    with pytest.raises(DataError) as err:
        load_dataset(wide)
    assert str(err.value) == (
        "wide.csv line 3 has 5 fields: a row may have at most 4 (MAX_CSV_FIELDS)"
    )
    monkeypatch.setattr(prunetrain.data.user_files, "MAX_CSV_LINE_CHARS", 20)
    long = write_csv(tmp_path / "long.csv", "a,label\n1,0\n" + "1" * 30 + ",1\n")
    with pytest.raises(DataError) as err:
        load_dataset(long)
    assert str(err.value) == (
        "long.csv line 3 is longer than 20 characters: a row may have at most 20 "
        "(MAX_CSV_LINE_CHARS)"
    )


def test_a_huge_single_line_csv_is_refused_with_bounded_memory(tmp_path):
    import tracemalloc

    import prunetrain.data.user_files

    path = tmp_path / "line.csv"
    n = prunetrain.data.user_files.MAX_CSV_LINE_CHARS // 2 + 1000  # one-character fields
    path.write_text("x," * n + "label\n")
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="line 1 is longer than"):
            load_dataset(str(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * prunetrain.data.user_files.MAX_CSV_LINE_CHARS + 2**20


def test_an_empty_label_cell_is_refused_with_its_line(tmp_path):
    """`''` became a class and turned every label into a string."""
    text = "a,label\n1,0\n2,1\n3,\n4,1\n"
    with pytest.raises(DataError) as err:
        load_dataset(write_csv(tmp_path / "e.csv", text))
    assert str(err.value) == "e.csv line 4: the label (column 'label') is empty"


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
def test_a_fifo_given_as_data_is_refused_at_once(tmp_path, suffix):
    from prunetrain.data import read_features

    path = tmp_path / f"pipe{suffix}"
    os.mkfifo(path)
    for read in (lambda: load_dataset(str(path)), lambda: read_features(path, 3)):
        with pytest.raises(PrunetrainError, match="is not a regular file"):
            read()


@pytest.mark.parametrize("name", ["a" * 300 + ".npz", "b" * 300])
def test_a_file_name_too_long_is_refused_in_one_line(name):
    """It gave an ENAMETOOLONG traceback (the name without a suffix from `exists()`)."""
    with pytest.raises(PrunetrainError) as err:
        load_dataset(name)
    assert str(err.value).endswith(": File name too long") and "\n" not in str(err.value)


def test_a_pickle_from_before_the_data_package_loads():
    # A SubnetworkClassifier pickled before issue 30 names prunetrain.data.FeatureScaling;
    # the class lives in prunetrain.data.prepare now and the package's face still answers.
    import pickle

    from prunetrain.data import FeatureScaling

    scaling = FeatureScaling(offset=np.array([1.0, 2.0]), factor=np.array([0.5, 0.25]), clip=True)
    new = pickle.dumps(scaling, protocol=2)
    assert b"prunetrain.data.prepare\nFeatureScaling" in new
    old = pickle.loads(new.replace(b"prunetrain.data.prepare\n", b"prunetrain.data\n"))
    assert type(old) is FeatureScaling
    np.testing.assert_array_equal(old.transform([[3.0, 6.0]]), [[1.0, 1.0]])
