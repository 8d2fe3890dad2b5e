"""SubnetworkClassifier on raw features, MLPClassifier parity and sample weights (issue 19)."""

import numpy as np
import pytest
from sklearn.datasets import load_digits, load_iris
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from prunetrain import SubnetworkClassifier
from prunetrain.cli import main

QUICK = {"hidden_layer_sizes": (16,), "budget": "300evals", "random_state": 0}


@pytest.fixture(scope="module")
def digits600():
    X, y = load_digits(return_X_y=True)
    return X[:600], y[:600]


def test_raw_features_score_like_scaled_ones_on_every_fold(digits600):
    X, y = digits600
    scores = {
        name: cross_val_score(wrap(SubnetworkClassifier(**QUICK)), X, y, cv=2)
        for name, wrap in [
            ("raw", lambda c: c),
            ("standard", lambda c: make_pipeline(StandardScaler(), c)),
            ("minmax", lambda c: make_pipeline(MinMaxScaler(), c)),
        ]
    }
    best = np.maximum(scores["standard"], scores["minmax"])
    assert np.all(scores["raw"] >= best - 0.02), scores
    # Without the scaling inside, raw pixels (0..16) are far from what the scaled runs reach.
    unscaled = cross_val_score(SubnetworkClassifier(**QUICK, scaling=None), X, y, cv=2)
    assert unscaled.mean() < scores["raw"].mean() - 0.05, (unscaled, scores["raw"])


def test_the_scaling_is_learnt_by_fit_and_used_by_predict():
    X, y = load_iris(return_X_y=True)
    X = 100 * X + 7
    clf = SubnetworkClassifier(**QUICK).fit(X, y)
    np.testing.assert_allclose(clf.feature_scaling_.offset, X.mean(axis=0))
    np.testing.assert_allclose(clf.feature_scaling_.factor, 1 / X.std(axis=0))
    standardised = SubnetworkClassifier(**QUICK, scaling=None).fit(
        StandardScaler().fit_transform(X), y
    )
    assert clf.ticket_.network.weights_hash == standardised.ticket_.network.weights_hash
    # Predictions are those of the network on the scaled features.
    z = clf.ticket_.network.forward(clf.masks_, clf.feature_scaling_.transform(X))
    np.testing.assert_array_equal(clf.predict(X), z.argmax(axis=1))
    minmax = SubnetworkClassifier(**QUICK, scaling="minmax").fit(X, y)
    assert minmax.feature_scaling_.transform(X).min() == 0.0
    assert minmax.feature_scaling_.transform(X).max() == 1.0


def test_warm_start_keeps_the_first_fits_scaling():
    X, y = load_iris(return_X_y=True)
    clf = SubnetworkClassifier(**QUICK, warm_start=True).fit(X, y)
    first = clf.feature_scaling_
    clf.fit(X * 3, y)  # other features: the mask was found for the first fit's scaling
    assert clf.feature_scaling_ is first


def test_tickets_carry_the_scaling_to_from_ticket_and_the_cli(tmp_path, capsys):
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = SubnetworkClassifier(**QUICK).fit(X, names)
    clf.save_ticket(tmp_path / "t.npz")
    again = SubnetworkClassifier.from_ticket(tmp_path / "t.npz")
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    assert (again.loss_, again.n_layers_, again.n_outputs_) == (clf.loss_, 3, 3)
    np.savez(tmp_path / "raw.npz", X=X)
    with pytest.raises(SystemExit) as e:
        main(["predict", str(tmp_path / "t.npz"), str(tmp_path / "raw.npz")])
    assert e.value.code == 0
    predicted = capsys.readouterr().out.splitlines()[1:]
    assert predicted == clf.predict(X).tolist()


def test_mlp_parity_attributes():
    X, y = load_iris(return_X_y=True)
    clf = SubnetworkClassifier(**QUICK, validation_fraction=0.0).fit(X, y)
    log_p = clf.predict_log_proba(X)
    assert clf.loss_ == pytest.approx(-log_p[np.arange(len(y)), y].mean(), rel=1e-9)
    assert clf.best_loss_ == min(clf.loss_curve_)
    assert (clf.n_layers_, clf.n_outputs_) == (3, 3)
    binary = SubnetworkClassifier(**{**QUICK, "hidden_layer_sizes": (8, 4)}).fit(X[y < 2], y[y < 2])
    assert (binary.n_layers_, binary.n_outputs_) == (4, 2)
    stopped = SubnetworkClassifier(**QUICK, early_stopping=True).fit(X, y)
    assert stopped.best_loss_ is None


def test_sample_weight_weights_the_cross_entropy():
    X, y = load_iris(return_X_y=True)
    w = np.where(y == 2, 5.0, 1.0)
    clf = SubnetworkClassifier(**QUICK, validation_fraction=0.0).fit(X, y, sample_weight=w)
    log_p = clf.predict_log_proba(X)
    losses = -log_p[np.arange(len(y)), y]
    assert clf.loss_ == pytest.approx((w * losses).sum() / w.sum(), rel=1e-9)
    # Unit weights are no weights: the very same fit.
    plain = SubnetworkClassifier(**QUICK).fit(X, y)
    ones = SubnetworkClassifier(**QUICK).fit(X, y, sample_weight=np.ones(len(y)))
    np.testing.assert_array_equal(ones.predict_proba(X), plain.predict_proba(X))
    # Weighting a class up makes the search favour it.
    heavy = np.where(y == 0, 50.0, 1.0)
    favoured = SubnetworkClassifier(**QUICK).fit(X, y, sample_weight=heavy)
    assert np.mean(favoured.predict(X)[y == 0] == 0) >= np.mean(plain.predict(X)[y == 0] == 0)


def test_sample_weight_errors():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="non-zero"):
        SubnetworkClassifier(**QUICK).fit(X, y, sample_weight=np.zeros(len(y)))
    with pytest.raises(ValueError, match="Negative values"):
        SubnetworkClassifier(**QUICK).fit(X, y, sample_weight=np.where(y == 0, -1.0, 1.0))
    with pytest.raises(ValueError, match="does not take sample weights"):
        SubnetworkClassifier(**QUICK, method="hebbian").fit(X, y, sample_weight=np.ones(len(y)))


def test_minmax_scaling_of_a_feature_wider_than_the_largest_float():
    # Issue 30: fit's own min-max copy computed max - min = inf (an overflow warning) and
    # scaled that feature to 0 everywhere; the data package's scaler (the one copy) halves
    # both sides instead.
    import warnings

    from prunetrain.estimator import _fit_scaling

    X = np.array([[-1e308, 0.0], [1e308, 1.0], [0.0, 0.5], [5e307, 0.25]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scaling = _fit_scaling("minmax", X, None)
    np.testing.assert_array_equal(
        scaling.transform(X), np.array([[0, 0], [1, 1], [0.5, 0.5], [0.75, 0.25]], np.float32)
    )
    assert not scaling.clip  # unlike user files, values past the train range are not clipped
    np.testing.assert_array_equal(scaling.transform([[0.0, 2.0]]), [[0.5, 2.0]])
