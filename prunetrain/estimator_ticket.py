"""How a ``SubnetworkClassifier`` lives in a ticket: what its meta records, and read back.

A fitted estimator's ticket is a search's ticket with more in its meta
(:func:`ticket_meta`: the parameters, classes, scaling and curves), so that
:meth:`SubnetworkClassifier.from_ticket <prunetrain.estimator.SubnetworkClassifier.from_ticket>`
rebuilds the estimator that saved it (:func:`recorded_params`,
:func:`restore_fitted`); a ``prunetrain search`` ticket loads too.
"""

from __future__ import annotations

import json

import numpy as np
from sklearn.base import BaseEstimator

from prunetrain.data import FeatureScaling
from prunetrain.problem import Budget
from prunetrain.ticket import Ticket

# The estimator is typed by its scikit-learn base: this module is below prunetrain.estimator,
# which imports it, so naming SubnetworkClassifier here would close an import cycle.


def ticket_meta(estimator: BaseEstimator, method: str, seed: int) -> dict:
    """What a fitted ``estimator``'s ticket records for :func:`restore_fitted`, JSON-ready
    (its classes only if JSON can hold them exactly)."""
    meta = {
        "estimator": type(estimator).__name__,
        "method": method,
        "seed": seed,
        "n_features_in": int(estimator.n_features_in_),
        "params": json_params(estimator.get_params()),
        "n_iter": estimator.n_iter_,
        "n_evaluations": estimator.n_evaluations_,
        "best_validation_score": estimator.best_validation_score_,
        "loss_curve": estimator.loss_curve_,
        "validation_scores": estimator.validation_scores_,
        "loss": estimator.loss_,
        "best_loss": estimator.best_loss_,
    }
    if estimator.feature_scaling_ is not None:
        meta["scaling"] = estimator.feature_scaling_.to_dict()
    classes = classes_to_json(estimator.classes_)
    if classes is not None:
        meta["classes"], meta["classes_dtype"] = classes
    if hasattr(estimator, "feature_names_in_"):
        meta["feature_names_in"] = [str(name) for name in estimator.feature_names_in_]
    return meta


def recorded_params(ticket: Ticket, known: list[str]) -> dict:
    """The estimator parameters (of the names ``known``) a ticket records; a ``prunetrain
    search`` ticket gives its network's sizes, init and keep, and its method."""
    meta, spec = ticket.meta, ticket.spec
    params = {k: v for k, v in meta.get("params", {}).items() if k in known}
    params.update(hidden_layer_sizes=tuple(spec.layer_sizes[1:-1]), init=spec.init, keep=spec.keep)
    if "method" in meta and "method" not in params:
        params["method"] = meta["method"]
    return params


def restore_fitted(est: BaseEstimator, ticket: Ticket) -> None:
    """Set the fitted attributes of ``est`` from ``ticket``: those its meta records, else 0,
    empty or None (a ``prunetrain search`` ticket's), and the ticket and mask themselves.

    Raises
    ------
    ValueError
        The ticket's number of classes differs from its network's outputs.
    """
    meta, spec = ticket.meta, ticket.spec
    n_outputs = spec.layer_sizes[-1]
    if "classes" in meta:
        est.classes_ = classes_from_json(meta["classes"], meta.get("classes_dtype"))
    else:
        est.classes_ = np.arange(n_outputs)
    if len(est.classes_) != n_outputs:
        raise ValueError(
            f"the ticket lists {len(est.classes_)} classes but its network has "
            f"{n_outputs} outputs ({spec.arch})"
        )
    est.n_features_in_ = spec.layer_sizes[0]
    if "feature_names_in" in meta:
        est.feature_names_in_ = np.asarray(meta["feature_names_in"], dtype=object)
    est.n_iter_ = int(meta.get("n_iter", 0))
    est.loss_curve_ = list(meta.get("loss_curve", []))
    est.validation_scores_ = list(meta.get("validation_scores", []))
    est.best_validation_score_ = meta.get("best_validation_score")
    est.n_evaluations_ = float(meta.get("n_evaluations", 0.0))
    scaling = meta.get("scaling")
    est.feature_scaling_ = None if scaling is None else FeatureScaling.from_dict(scaling)
    if est.feature_scaling_ is not None:
        est.feature_scaling_.check(est.n_features_in_)
    est.loss_ = meta.get("loss")
    est.best_loss_ = meta.get("best_loss")
    est.n_layers_ = len(spec.layer_sizes)
    est.n_outputs_ = n_outputs
    est.ticket_ = ticket
    est.masks_ = ticket.mask


def json_params(params: dict) -> dict:
    """The parameters JSON can hold (a RandomState instance, for one, is left out)."""
    out = {}
    for name, value in params.items():
        if isinstance(value, Budget):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            continue
        out[name] = value
    return out


def classes_to_json(classes: np.ndarray) -> tuple[list, str] | None:
    """Class labels as a JSON list and their dtype, or None if JSON cannot hold them exactly."""
    values = classes.tolist()
    try:
        text = json.dumps(values, allow_nan=False)
    except (TypeError, ValueError):
        return None
    dtype = classes.dtype.str if classes.dtype != object else "object"
    back = classes_from_json(json.loads(text), dtype)
    if back.dtype != classes.dtype or not np.array_equal(back, classes):
        return None
    return values, dtype


def classes_from_json(values: list, dtype: str | None) -> np.ndarray:
    if dtype == "object":
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    return np.asarray(values, dtype=None if dtype is None else np.dtype(dtype))
