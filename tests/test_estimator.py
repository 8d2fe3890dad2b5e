"""SubnetworkClassifier: the scikit-learn contract, model selection, pickling and tickets."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import (
    check_dataframe_column_names_consistency,
    check_param_validation,
    parametrize_with_checks,
)

from prunetrain import SubnetworkClassifier
from prunetrain.errors import TicketError
from prunetrain.masks import KeepRule
from prunetrain.network import FrozenNetwork, NetworkSpec
from prunetrain.search import DEFAULT_METHOD, SEARCHERS
from prunetrain.search.random import RandomSearcher
from prunetrain.ticket import Ticket

# Small and quick: the contract, not the accuracy, is under test here.
FAST = {"hidden_layer_sizes": (32, 32), "budget": "200evals", "random_state": 0}


def fast(**params) -> SubnetworkClassifier:
    return SubnetworkClassifier().set_params(**{**FAST, **params})


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def fitted(iris):
    return fast().fit(*iris)


# --- scikit-learn's own contract ----------------------------------------------------


def expected_failures(estimator) -> dict:
    """The checks that cannot pass, and why (the one skip, check_array_api_input, is
    scikit-learn's own: it runs only with SCIPY_ARRAY_API=1, and passes then too)."""
    why = (
        "a weighted fit and a fit on repeated rows draw different validation splits and "
        "batches, so their masks differ; the weighted loss itself equals repeated rows "
        "(tests/test_sample_weight.py)"
    )
    return {
        "check_sample_weight_equivalence_on_dense_data": why,
        "check_sample_weight_equivalence_on_sparse_data": why,
    }


@parametrize_with_checks([fast()], expected_failed_checks=expected_failures)
def test_sklearn_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize(
    "check", [check_param_validation, check_dataframe_column_names_consistency]
)
def test_sklearn_checks_not_in_the_default_set(check):
    check("SubnetworkClassifier", fast())


def test_init_only_stores_parameters():
    clf = SubnetworkClassifier(keep=7.0, method="no-such-method", budget="bogus")
    params = clf.get_params()
    assert (params["keep"], params["method"], params["budget"]) == (7.0, "no-such-method", "bogus")
    with pytest.raises(InvalidParameterError, match="'keep' parameter"):
        clf.fit([[0.0], [1.0]], [0, 1])


# --- model selection -----------------------------------------------------------------


def test_pipeline_with_scaler():
    X, y = load_iris(return_X_y=True)
    model = Pipeline([("scale", StandardScaler()), ("clf", fast(budget="400evals"))])
    model.fit(X, y)
    assert model.score(X, y) > 0.5  # well above chance (1/3)
    assert model.predict_proba(X).shape == (150, 3)


def test_grid_search_over_keep_and_method(iris):
    X, y = iris
    grid = GridSearchCV(
        fast(budget="100evals"), {"keep": [0.3, 0.5], "method": [None, "random"]}, cv=2
    )
    grid.fit(X, y)
    assert set(grid.best_params_) == {"keep", "method"}
    assert len(grid.cv_results_["params"]) == 4
    assert grid.best_estimator_.ticket_.rule.keep == grid.best_params_["keep"]


def test_cross_val_score(iris):
    scores = cross_val_score(fast(budget="100evals"), *iris, cv=3)
    assert scores.shape == (3,)
    assert np.all((scores >= 0) & (scores <= 1))


# --- fitted attributes -----------------------------------------------------------------


def test_fitted_attributes(fitted, iris):
    X, _ = iris
    clf = fitted
    assert clf.n_features_in_ == 4
    assert list(clf.classes_) == [0, 1, 2]
    assert clf.ticket_.spec.layer_sizes == (4, 32, 32, 3)
    assert [m.shape for m in clf.masks_] == [(4, 32), (32, 32), (32, 3)]
    assert clf.ticket_.keep_fraction == pytest.approx(0.5, abs=0.01)
    assert clf.n_iter_ >= 1
    assert len(clf.loss_curve_) == len(clf.validation_scores_) == clf.n_iter_
    assert all(isinstance(v, float) and np.isfinite(v) for v in clf.loss_curve_)
    assert clf.best_validation_score_ >= max(clf.validation_scores_) - 1e-12
    assert clf.n_evaluations_ > 0
    assert clf.ticket_.meta["method"] == DEFAULT_METHOD
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(X))
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba))


def test_budget_counts_evaluations(iris):
    clf = fast(method="random", method_params={"population": 9}, early_stopping=False)
    clf.fit(*iris)
    assert 200 <= clf.n_evaluations_ < 210  # the last step (1 + 9 masks) may overshoot


@pytest.mark.parametrize("hidden", [(), 8, [16, 8, 4]])
def test_hidden_layer_sizes(iris, hidden):
    clf = fast(hidden_layer_sizes=hidden, budget="50evals").fit(*iris)
    expected = (hidden,) if isinstance(hidden, int) else tuple(hidden)
    assert clf.ticket_.spec.layer_sizes == (4, *expected, 3)
    with pytest.raises(ValueError, match="positive integers"):
        fast(hidden_layer_sizes=(8, 0)).fit(*iris)


def test_int_random_state_reproduces_the_fit_and_none_varies(iris):
    a, b = fast().fit(*iris), fast().fit(*iris)
    for ma, mb in zip(a.masks_, b.masks_):
        np.testing.assert_array_equal(ma, mb)
    assert a.ticket_.network.weights_hash == b.ticket_.network.weights_hash
    c, d = fast(random_state=None).fit(*iris), fast(random_state=None).fit(*iris)
    assert c.ticket_.network.weights_hash != d.ticket_.network.weights_hash


def test_string_labels_and_dataframe_feature_names(iris):
    pd = pytest.importorskip("pandas")
    X, y = iris
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    frame = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    clf = fast().fit(frame, names)
    assert list(clf.classes_) == ["setosa", "versicolor", "virginica"]
    assert list(clf.feature_names_in_) == ["sl", "sw", "pl", "pw"]
    assert set(clf.predict(frame)) <= set(clf.classes_)
    assert clf.score(frame, names) > 0.4


def test_early_stopping_stops_before_the_budget(iris):
    clf = fast(
        budget="20000evals", early_stopping=True, n_iter_no_change=2, validation_fraction=0.3
    ).fit(*iris)
    assert clf.n_evaluations_ < 20000
    assert clf.n_iter_ == len(clf.validation_scores_)


def test_no_validation_split_uses_the_training_data(iris):
    clf = fast(validation_fraction=0.0, early_stopping=False).fit(*iris)
    assert clf.n_iter_ >= 1
    assert 0.0 <= clf.best_validation_score_ <= 1.0


def test_time_budget_is_accepted(iris):
    clf = fast(budget=0.2).fit(*iris)
    assert clf.n_evaluations_ > 0
    assert fast(budget="0.2s").fit(*iris).n_evaluations_ > 0


# --- warm start -----------------------------------------------------------------------


def test_warm_start_continues_from_the_current_mask(iris):
    clf = fast(warm_start=True).fit(*iris)
    first = [m.copy() for m in clf.masks_]
    n_iter, evals, score = clf.n_iter_, clf.n_evaluations_, clf.best_validation_score_
    weights = clf.ticket_.network.weights_hash
    clf.fit(*iris)
    assert clf.ticket_.network.weights_hash == weights  # the same frozen network
    assert clf.n_iter_ > n_iter
    assert clf.n_evaluations_ > evals
    assert len(clf.loss_curve_) == len(clf.validation_scores_) == clf.n_iter_
    # The same split (int random_state) and the old mask validated first: never worse.
    assert clf.best_validation_score_ >= score
    # A cold refit with the same seed gives the first fit again, not the continued one.
    cold = clone(clf).set_params(warm_start=False).fit(*iris)
    for a, b in zip(cold.masks_, first):
        np.testing.assert_array_equal(a, b)


def test_warm_start_refuses_another_network(iris):
    clf = fast(warm_start=True).fit(*iris)
    with pytest.raises(ValueError, match="same frozen network"):
        clf.set_params(keep=0.3).fit(*iris)
    clf.set_params(keep=0.5)
    X, y = iris
    with pytest.raises(ValueError, match="same classes"):
        clf.fit(X[y < 2], y[y < 2])


# --- input validation -------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_nan_and_inf_are_refused(iris):
    X, y = iris
    for bad in (np.nan, np.inf):
        Xb = X.copy()
        Xb[3, 1] = bad
        with pytest.raises(ValueError, match="NaN|infinity"):
            fast().fit(Xb, y)
    with pytest.raises(ValueError, match="infinity or a value too large"):
        fast().fit(np.where(X > 2, 1e300, X), y)  # finite in float64, inf in float32


def test_sparse_input_is_densified(iris):
    X, y = iris
    dense, sparse = fast().fit(X, y), fast().fit(sp.csr_matrix(X), y)
    for a, b in zip(dense.masks_, sparse.masks_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(dense.predict_proba(X), sparse.predict_proba(sp.csc_matrix(X)))


def test_wrong_number_of_features_at_predict(fitted, iris):
    with pytest.raises(ValueError, match="4 features"):
        fitted.predict(iris[0][:, :3])


def test_single_class_is_refused(iris):
    X, y = iris
    with pytest.raises(ValueError, match="at least 2 classes.*only 1 class"):
        fast().fit(X[:10], y[:10])


def test_unknown_method_is_refused_when_fit_runs(iris):
    with pytest.raises(InvalidParameterError, match="'method' parameter"):
        fast(method="no-such-method").fit(*iris)
    with pytest.raises(ValueError, match="takes no option"):
        fast(method_params={"bogus": 1}).fit(*iris)
    with pytest.raises(ValueError, match="bad budget"):
        fast(budget="lots").fit(*iris)
    with pytest.raises(InvalidParameterError, match="'backend' parameter"):
        fast(backend="abacus").fit(*iris)


def test_methods_registered_after_import_are_accepted(iris, monkeypatch):
    class Other(RandomSearcher):
        name = "other-random"

    monkeypatch.setitem(SEARCHERS, "other-random", Other)
    clf = fast(method="other-random", method_params={"population": 4}).fit(*iris)
    assert clf.ticket_.meta["method"] == "other-random"


# --- pickling and tickets -----------------------------------------------------------------


def test_pickle_round_trip_predicts_identically(fitted, iris):
    X, _ = iris
    blob = pickle.dumps(fitted)
    again = pickle.loads(blob)
    np.testing.assert_array_equal(again.predict_proba(X), fitted.predict_proba(X))
    np.testing.assert_array_equal(again.predict(X), fitted.predict(X))
    assert again.get_params() == fitted.get_params()
    assert again.n_iter_ == fitted.n_iter_
    assert again.ticket_.meta == fitted.ticket_.meta
    # The mask travels packed and the frozen weights are rebuilt from (spec, seed).
    assert len(blob) < 4 * fitted.ticket_.spec.n_weights


def test_from_ticket_reproduces_predict_proba_exactly(tmp_path, iris):
    pd = pytest.importorskip("pandas")
    X, y = iris
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = fast(keep=0.4, method="random", method_params={"population": 8}).fit(frame, labels)
    path = clf.save_ticket(tmp_path / "clf.npz")
    loaded = SubnetworkClassifier.from_ticket(path)
    np.testing.assert_array_equal(loaded.predict_proba(frame), clf.predict_proba(frame))
    np.testing.assert_array_equal(loaded.predict(frame), clf.predict(frame))
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    assert loaded.classes_.dtype == clf.classes_.dtype
    assert list(loaded.feature_names_in_) == ["a", "b", "c", "d"]
    assert loaded.get_params() == clf.get_params()
    assert loaded.n_evaluations_ == clf.n_evaluations_
    assert loaded.loss_curve_ == clf.loss_curve_
    assert loaded.score(frame, labels) == clf.score(frame, labels)


@pytest.mark.parametrize(
    "labels",
    [np.array([10, 20, 30]), np.array([1.0, 2.0, 4.0]), np.array([False, True, True])],
)
def test_ticket_keeps_label_types(tmp_path, iris, labels):
    X, y = iris
    y_labels = labels[y]
    clf = fast(budget="50evals").fit(X, y_labels)
    loaded = SubnetworkClassifier.from_ticket(clf.save_ticket(tmp_path / "t.npz"))
    assert loaded.classes_.dtype == clf.classes_.dtype
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


def test_labels_json_cannot_hold_are_refused_by_save_ticket(tmp_path, iris):
    X, y = iris
    labels = np.empty(3, dtype=object)
    labels[:] = [("a", 1), ("b", 2), ("c", 3)]  # tuples: sortable, hashable, not JSON
    clf = fast(budget="50evals").fit(X, np.array([str(v) for v in labels[y]], dtype=object))
    clf.classes_ = labels  # as if the labels had been tuples
    clf.ticket_.meta.pop("classes")
    with pytest.raises(ValueError, match="cannot be stored in a ticket"):
        clf.save_ticket(tmp_path / "t.npz")
    assert not (tmp_path / "t.npz").exists()


def test_from_ticket_reads_a_search_ticket(tmp_path, iris):
    # What `prunetrain search` writes: classes from the dataset, no estimator parameters.
    X, y = iris
    network = FrozenNetwork(NetworkSpec((4, 16, 3)), seed=5)
    mask = [np.random.default_rng(0).random(s) < 0.5 for s in network.shapes]
    meta = {"dataset": "iris", "classes": [0, 1, 2], "method": "random", "seed": 5}
    path = Ticket(network, mask, KeepRule(0.5, "free"), meta).save(tmp_path / "t.npz")
    clf = SubnetworkClassifier.from_ticket(path)
    assert clf.hidden_layer_sizes == (16,)
    assert clf.method == "random"
    assert clf.n_features_in_ == 4
    logits = network.forward(mask, X)
    np.testing.assert_array_equal(clf.predict(X), logits.argmax(axis=1))
    with pytest.raises(TicketError):
        SubnetworkClassifier.from_ticket(tmp_path / "missing.npz")


def test_from_ticket_refuses_mismatched_classes(tmp_path):
    network = FrozenNetwork(NetworkSpec((4, 8, 3)), seed=1)
    mask = [np.ones(s, dtype=bool) for s in network.shapes]
    ticket = Ticket(network, mask, KeepRule(1.0), {"classes": [0, 1]})
    with pytest.raises(ValueError, match="2 classes but its network has 3 outputs"):
        SubnetworkClassifier.from_ticket(ticket)


@pytest.mark.parametrize(
    ("method", "batch_size", "expected"),
    [("ga", "auto", 256), ("hill", "auto", 1024), ("ga", 32, 32), ("ga", None, None)],
)
def test_batch_size_auto_is_the_methods_preference(iris, monkeypatch, method, batch_size, expected):
    import prunetrain.runs as runs_module  # where fit's Problem is made

    seen = []
    real = runs_module.Problem

    def recording(*args, **kwargs):
        seen.append(kwargs["batch_size"])
        return real(*args, **kwargs)

    monkeypatch.setattr(runs_module, "Problem", recording)
    fast(method=method, batch_size=batch_size, budget="20evals").fit(*iris)
    assert seen == [expected]


@pytest.mark.parametrize("budget", ["1e400evals", "1e400s", float("inf"), 1e300])
def test_out_of_range_budgets_are_refused_before_fitting(iris, budget):
    X, y = iris
    with pytest.raises(ValueError, match="budget") as e:
        fast(budget=budget).fit(X, y)
    assert not isinstance(e.value, OverflowError)
