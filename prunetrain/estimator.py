"""``SubnetworkClassifier``: a scikit-learn classifier that searches a mask, not weights.

A thin scikit-learn face over the rest of the package: ``fit`` builds a
:class:`~prunetrain.network.FrozenNetwork` sized for the data and a
:class:`~prunetrain.problem.Problem` over the given arrays as every run does
(:func:`prunetrain.runs.build`), and runs a searcher with the shared run loop
through the run service's one door to it (:func:`prunetrain.runs.search_loop`);
the result is a
:class:`~prunetrain.ticket.Ticket`. Predictions always come from the
network's float64 reference forward (:meth:`FrozenNetwork.forward`), whatever
backend searched, so a reloaded ticket predicts exactly what the estimator did.
"""

from __future__ import annotations

import os
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions, validate_parameter_constraints
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

import prunetrain.search
from prunetrain import runs
from prunetrain.backends import backend_names
from prunetrain.data import Dataset, FeatureScaling
from prunetrain.data.prepare import minmax_scaling
from prunetrain.estimator_ticket import recorded_params, restore_fitted, ticket_meta
from prunetrain.masks import KeepRule, pack_mask, unpack_mask
from prunetrain.metrics import cross_entropy, log_softmax
from prunetrain.network import INIT_SCHEMES, MAX_LAYER_SIZE, FrozenNetwork, NetworkSpec
from prunetrain.options import SearchOptions
from prunetrain.problem import Budget
from prunetrain.search import SEARCHERS, make_searcher
from prunetrain.threads import one_blas_thread
from prunetrain.ticket import Ticket

DEFAULT_BUDGET = "5000evals"
"""Evaluations ``fit`` may spend by default, forward-pass equivalents of the default method
(``probe``: a step of screen, checks and flips costs about 4). What one default fit on 1347
digits (64-256-256-10, kernels compiled) costs and scores is measured in
``experiments/results/estimator_scaling/summary.md``. (Under ``accumulate``, the default
before ``probe``, 1000 evaluations took 24 s and 37 s on the project's shared 2-core machine.)"""

_SEED_HIGH = 2**31 - 1


class SubnetworkClassifier(ClassifierMixin, BaseEstimator):
    """Classifier that keeps a random MLP frozen and searches a binary mask over its weights.

    No weight is ever trained and no gradient is computed: ``fit`` draws a
    random ReLU network (input → ``hidden_layer_sizes`` → one output per
    class, no biases) and searches, with a gradient-free heuristic, for the
    subnetwork (a *ticket* of the strong lottery ticket hypothesis) with the
    lowest training cross-entropy, keeping the best mask on a held-out
    validation split.

    Parameters
    ----------
    hidden_layer_sizes : int or array-like of int, default=(256, 256)
        Width of each hidden layer; an int is one hidden layer, ``()`` none.
    init : {"signed_constant", "kaiming_normal", "kaiming_uniform", "binary"}, \
default="signed_constant"
        How the frozen weights are drawn (see :class:`~prunetrain.network.NetworkSpec`).
        Weights are scaled by ``1/sqrt(keep)`` to keep activation variance.
    keep : float, default=0.5
        Fraction of the weights of every layer the mask keeps, in (0, 1].
    method : str or None, default=None
        Name of the search heuristic (a key of ``prunetrain.search.SEARCHERS``;
        ``prunetrain methods`` lists them). ``None`` means the project's
        default, ``prunetrain.search.DEFAULT_METHOD``, read when ``fit`` runs.
    method_params : dict or None, default=None
        Hyperparameters of the searcher, e.g. ``{"population": 64}``.
    budget : str or float, default="5000evals"
        How much search ``fit`` may do. An evaluation count such as
        ``"5000evals"`` (one evaluation = one mask forwarded on one training
        batch) makes ``fit`` reproducible with an int ``random_state``. A
        wall time (``"30s"``, ``"10m"``, ``"1h"``, or a number of seconds) is
        accepted too but is **not** reproducible: how far the search gets
        depends on the machine; ``n_evaluations_`` records what it used.
        See ``DEFAULT_BUDGET`` for what the default costs on digits.
    scaling : {"standard", "minmax"} or None, default="standard"
        How ``fit`` scales the features before the search, learnt on the
        training data (weighted by ``sample_weight``) and applied again by
        ``predict``: ``"standard"`` to mean 0 and unit variance, ``"minmax"``
        onto [0, 1], ``None`` not at all. Raw features then work as well as
        scaled ones (see Notes).
    batch_size : int, "auto" or None, default="auto"
        Training samples per search step (fresh shuffled minibatches).
        ``"auto"`` is the method's preferred size (256 for the evolutionary
        family, else 1024); ``None`` or a size at least the training set uses
        the whole training set.
    backend : str, default="auto"
        Where the search runs: ``"auto"`` (the fastest that works here),
        ``"numpy"``, or another registered backend. Predictions always use
        the float64 NumPy reference forward.
    validation_fraction : float, default=0.1
        Share of the training data held out (stratified when every class
        allows it) to choose the returned mask among those the searcher
        recommends, and for early stopping. With ``0`` (or too little data to
        split) the training data stands in for the validation split.
    early_stopping : bool, default=False
        Stop when the validation accuracy has not improved for
        ``n_iter_no_change`` validation points in a row. Off by default, as in
        ``MLPClassifier``: on small data the validation split is a few dozen
        samples, and stopping on its noise ended searches after a few
        hundred evaluations (the mask is chosen on validation either way).
    n_iter_no_change : int, default=20
        Validation points without improvement before early stopping. The
        search validates whenever it has forwarded ten validation-set sizes of
        training samples, so validation costs about 10 % of the search.
    warm_start : bool, default=False
        When True and the estimator is fitted, ``fit`` continues the search
        from the current mask on the same frozen network (same classes,
        ``hidden_layer_sizes``, ``init`` and ``keep`` required) and the curves
        and counters accumulate.
    random_state : int, RandomState instance or None, default=None
        Draws the seeds of the frozen weights, the validation split and the
        search. An int with an evaluation ``budget`` gives identical fits.
    verbose : bool or int, default=False
        Show a progress bar on stderr.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels (any type ``numpy.unique`` sorts, strings included).
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen during ``fit``, when ``X`` had string
        column names (a pandas DataFrame).
    ticket_ : Ticket
        The frozen network and the chosen mask; ``ticket_.meta`` holds the
        classes and what :meth:`from_ticket` needs.
    masks_ : list of ndarray of bool
        The chosen mask, one ``(fan_in, fan_out)`` array per layer.
    n_iter_ : int
        Number of validation points of the search after its first step (the
        starting mask is validated too, but has no training loss yet and is
        not counted). Summed over fits with ``warm_start``.
    loss_curve_ : list of float
        Training loss (mean cross-entropy on the batch it was last evaluated
        on) of the searcher's recommended mask at each of the ``n_iter_``
        validation points.
    validation_scores_ : list of float
        Validation accuracy of the recommended mask at the same points.
    best_validation_score_ : float
        Validation accuracy of the returned mask, the best of all masks the
        last ``fit`` validated, its starting mask included.
    n_evaluations_ : float
        Mask evaluations the search charged (summed over fits with
        ``warm_start``). ``budget=f"{int(n_evaluations_)}evals"`` with the same
        ``random_state`` reproduces a wall-time fit.
    feature_scaling_ : FeatureScaling or None
        The scaling learnt by ``fit`` (``scaling``), applied to every ``X``
        before the network; stored in the ticket, so :meth:`from_ticket` and
        ``prunetrain predict`` apply it too.
    loss_ : float
        Mean cross-entropy (weighted by ``sample_weight``) of the returned mask
        on the training samples the search used (the validation split left out).
    best_loss_ : float or None
        The lowest value of ``loss_curve_``; ``None`` with ``early_stopping``,
        as in ``MLPClassifier``.
    n_layers_ : int
        Number of layers, input and output included.
    n_outputs_ : int
        Number of output units: one per class (also for two classes, unlike
        ``MLPClassifier``'s single logistic output).

    See Also
    --------
    sklearn.neural_network.MLPClassifier : The backprop-trained counterpart.

    Notes
    -----
    **Scaling.** The network has no biases and no trainable weights, so it
    cannot shift features far from the origin, and it is positively
    homogeneous: multiplying the input by ``c`` multiplies the logits by
    ``c``, which sets how sharp the cross-entropy the search follows is. On
    raw digits pixels (0..16) the logits are about 16 times those of
    standardised pixels, and cross-validation scores on 600 digits ranged
    from 0.33 to 0.68. ``scaling="standard"`` (the default) therefore
    standardises inside the estimator; with it the frozen networks' initial
    logits have an RMS of about 1.3, which is also where the search does best
    (input multiplied by 0.25, 0.5, 1, 2, 4 gave mean scores 0.64, 0.71,
    0.77, 0.77, 0.73), so no separate loss temperature is needed. Raw,
    standardised and min-max scaled inputs then give the same fold scores
    (``experiments/results/estimator_scaling/summary.md``).

    **Sparse input** is accepted and densified (float32): the frozen network
    is dense, and the search holds the training data as one dense array.

    Features are converted to float32, as the search sees them. Predictions
    use the float64 reference forward (:meth:`FrozenNetwork.forward`), so a
    sample's probabilities do not depend on the other rows predicted with it.

    **Pickling** works as for any scikit-learn estimator (``pickle``,
    ``joblib``): the pickle holds the packed mask and rebuilds the frozen
    weights. Unpickling runs whatever code the pickle names, so load only
    pickles you trust (as scikit-learn says of its own). To share a fitted
    model, share its ticket instead (:meth:`save_ticket`, read back by
    :meth:`from_ticket`): a ticket is data only and is checked when it is read.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from prunetrain import SubnetworkClassifier
    >>> X, y = load_iris(return_X_y=True)  # raw features: scaled inside
    >>> clf = SubnetworkClassifier(hidden_layer_sizes=(64, 64), budget="500evals", random_state=0)
    >>> clf.fit(X, y).predict_proba(X[:2]).shape
    (2, 3)
    >>> bool(clf.score(X, y) > 0.5)
    True
    >>> clf.ticket_.keep_fraction, clf.n_layers_, clf.n_outputs_
    (0.5, 4, 3)
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, MAX_LAYER_SIZE, closed="both")],
        "init": [StrOptions(set(INIT_SCHEMES))],
        "keep": [Interval(Real, 0, 1, closed="right")],
        "method": [str, None],  # checked against the registry when fit runs
        "method_params": [dict, None],
        "budget": [str, Interval(Real, 0, None, closed="neither"), Budget],
        "scaling": [StrOptions({"standard", "minmax"}), None],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"}), None],
        "backend": [str],  # checked against the registered backends when fit runs
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "early_stopping": ["boolean"],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        hidden_layer_sizes=(256, 256),
        init="signed_constant",
        keep=0.5,
        method=None,
        method_params=None,
        budget=DEFAULT_BUDGET,
        scaling="standard",
        batch_size="auto",
        backend="auto",
        validation_fraction=0.1,
        early_stopping=False,
        n_iter_no_change=20,
        warm_start=False,
        random_state=None,
        verbose=False,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.init = init
        self.keep = keep
        self.method = method
        self.method_params = method_params
        self.budget = budget
        self.scaling = scaling
        self.batch_size = batch_size
        self.backend = backend
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose

    # --- parameters ---------------------------------------------------------------
    def _validate_params(self) -> None:
        super()._validate_params()
        # The registries may grow after import, so their names are read now.
        validate_parameter_constraints(
            {
                "method": [StrOptions(set(SEARCHERS)), None],
                "backend": [StrOptions(set(backend_names()))],
            },
            {"method": self.method, "backend": self.backend},
            caller_name=type(self).__name__,
        )

    def _hidden_sizes(self) -> tuple[int, ...]:
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, Integral):
            return (int(sizes),)
        sizes = tuple(sizes)
        if not all(isinstance(s, Integral) and not isinstance(s, bool) for s in sizes) or any(
            s < 1 for s in sizes
        ):
            raise ValueError(
                f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}"
            )
        return tuple(int(s) for s in sizes)

    def _method_name(self) -> str:
        return prunetrain.search.DEFAULT_METHOD if self.method is None else self.method

    # --- fit ------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Search the frozen network for the mask that best classifies ``(X, y)``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training features (finite; scaled as ``scaling`` says, then float32).
        y : array-like of shape (n_samples,)
            Class labels, at least two distinct ones.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each sample: the search minimises the
            weighted mean cross-entropy, and the returned mask is chosen by
            the weighted validation accuracy (integer weights act as repeated
            samples). Not taken by the Hebbian methods.

        Returns
        -------
        self : SubnetworkClassifier
            The fitted estimator.
        """
        warm = bool(self.warm_start) and hasattr(self, "ticket_")
        X, y = validate_data(
            self, X, y, accept_sparse=True, dtype=np.float64, order="C", reset=not warm
        )
        X = _dense(X, np.float64)
        _check_float32_range(X)
        weights = (
            None
            if sample_weight is None
            else _check_sample_weight(sample_weight, X, ensure_non_negative=True)
        )
        check_classification_targets(y)
        classes = unique_labels(y)
        if len(classes) < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes in y, but y "
                f"contains only 1 class: {classes[0]!r}"
            )
        hidden = self._hidden_sizes()
        spec = NetworkSpec((X.shape[1], *hidden, len(classes)), init=self.init, keep=self.keep)
        if warm:
            self._check_warm_start(spec, classes)
            classes = self.classes_
        codes = np.searchsorted(classes, y).astype(np.int64)
        method = self._method_name()
        options = SearchOptions(  # the budget and patience checked here, once
            method=method,
            method_params=self.method_params,
            budget=self.budget,
            batch_size=self.batch_size,
            backend=self.backend,
            patience=self.n_iter_no_change if self.early_stopping else None,
            progress=bool(self.verbose),
        )
        searcher = make_searcher(method, **options.method_params)

        rs = check_random_state(self.random_state)
        network_seed, split_seed, search_seed = (int(s) for s in rs.randint(_SEED_HIGH, size=3))
        if warm:
            network, init_mask = self.ticket_.network, self.masks_
            # Continue, do not repeat: a warm fit must not redraw the first fit's candidates.
            previous = int(round(self.n_evaluations_))
            search_seed = int(np.random.SeedSequence([search_seed, previous]).generate_state(1)[0])
        else:
            network, init_mask = None, None

        # A warm fit continues on the features the mask was found for.
        scaling = self.feature_scaling_ if warm else _fit_scaling(self.scaling, X, weights)
        X = _scaled(scaling, X)
        data, split_weights = self._dataset(X, codes, classes, split_seed, weights)
        setup = runs.build(
            data,
            spec.layer_sizes,
            init=self.init,
            keep=self.keep,
            seed=search_seed,
            network_seed=network_seed,
            network=network,  # a warm fit searches its network again
        )
        network = setup.network
        problem = setup.problem(
            searcher, backend=self.backend, batch_size=self.batch_size, sample_weight=split_weights
        )
        result = runs.search_loop(problem, searcher, options, setup.seed, init_mask=init_mask)

        rows = [row for row in result.history if row["train_loss"] is not None]
        losses = [float(row["train_loss"]) for row in rows]
        scores = [float(row["val_accuracy"]) for row in rows]
        if warm:
            self.n_iter_ += len(rows)
            self.loss_curve_ = self.loss_curve_ + losses
            self.validation_scores_ = self.validation_scores_ + scores
            self.n_evaluations_ = float(self.n_evaluations_ + result.evaluations)
        else:
            self.classes_ = classes
            self.n_iter_ = len(rows)
            self.loss_curve_ = losses
            self.validation_scores_ = scores
            self.n_evaluations_ = float(result.evaluations)
        self.best_validation_score_ = float(result.val_accuracy)
        self.feature_scaling_ = scaling
        w_train = None if split_weights is None else split_weights[0]
        self.loss_ = float(
            cross_entropy(
                network.forward(result.mask, data.X_train),
                data.y_train,
                None if w_train is None else w_train * (len(w_train) / w_train.sum()),
            )
        )
        self.best_loss_ = None if self.early_stopping else min(self.loss_curve_, default=None)
        self.n_layers_ = len(spec.layer_sizes)
        self.n_outputs_ = spec.layer_sizes[-1]
        self.ticket_ = Ticket(
            network, result.mask, setup.rule, ticket_meta(self, method, search_seed)
        )
        self.masks_ = self.ticket_.mask
        return self

    def _check_warm_start(self, spec: NetworkSpec, classes: np.ndarray) -> None:
        if set(classes.tolist()) != set(self.classes_.tolist()):
            raise ValueError(
                "warm_start can only be used where y has the same classes as in the "
                f"previous call to fit. Previously got {self.classes_}, y has {classes}"
            )
        old = self.ticket_.spec
        if (old.layer_sizes, old.init, old.keep) != (spec.layer_sizes, spec.init, spec.keep):
            raise ValueError(
                "warm_start continues the search on the same frozen network: "
                f"it was fitted with hidden_layer_sizes={old.layer_sizes[1:-1]}, "
                f"init={old.init!r}, keep={old.keep}, now {spec.layer_sizes[1:-1]}, "
                f"{spec.init!r}, {spec.keep}; set warm_start=False to start afresh"
            )

    def _dataset(
        self,
        X: np.ndarray,
        codes: np.ndarray,
        classes: np.ndarray,
        split_seed: int,
        weights: np.ndarray | None = None,
    ) -> tuple[Dataset, tuple[np.ndarray, np.ndarray] | None]:
        """Training and validation splits (the test split is empty: nothing is reported on it),
        and the sample weights of the two splits."""
        w = np.ones(len(codes)) if weights is None else weights
        X_train, X_val, y_train, y_val, w_train, w_val = X, X[:0], codes, codes[:0], w, w[:0]
        if self.validation_fraction > 0:
            for stratify in (codes, None):
                try:
                    X_train, X_val, y_train, y_val, w_train, w_val = train_test_split(
                        X,
                        codes,
                        w,
                        test_size=self.validation_fraction,
                        stratify=stratify,
                        random_state=split_seed,
                    )
                    break
                except ValueError:
                    continue  # a class too small to stratify, or too few samples to split
        if weights is not None and not (w_train > 0).any():
            X_train, y_train, w_train = X, codes, w  # nothing left to train on: use all
        split_weights = None
        if weights is not None:
            split_weights = (w_train, w_val if (w_val > 0).any() else np.ones(len(w_val)))
        return Dataset(
            name="fit",
            X_train=np.ascontiguousarray(X_train, dtype=np.float32),
            y_train=np.ascontiguousarray(y_train, dtype=np.int64),
            X_val=np.ascontiguousarray(X_val, dtype=np.float32),
            y_val=np.ascontiguousarray(y_val, dtype=np.int64),
            X_test=np.zeros((0, X.shape[1]), dtype=np.float32),
            y_test=np.zeros(0, dtype=np.int64),
            classes=classes,
        ), split_weights

    # --- prediction -----------------------------------------------------------------
    def _log_proba(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = _dense(
            validate_data(self, X, accept_sparse=True, dtype=np.float64, reset=False), np.float64
        )
        X = _scaled(self.feature_scaling_, X)
        # The float64 reference forward: a row's probabilities must not depend on which
        # other rows are predicted with it (float32 GEMMs of 1 and of n rows round apart).
        with one_blas_thread():  # and not on the thread count (prunetrain.threads)
            return log_softmax(self.ticket_.network.forward(self.masks_, X))

    def predict(self, X):
        """Predict the class of each sample.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        y : ndarray of shape (n_samples,)
            The class with the highest probability (the first on ties).
        """
        log_proba = self._log_proba(X)
        return self.classes_[np.argmax(log_proba, axis=1)]

    def predict_log_proba(self, X):
        """Log of the class probabilities, computed stably in float64.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            ``log_softmax`` of the subnetwork's logits; columns follow ``classes_``.
        """
        return self._log_proba(X)

    def predict_proba(self, X):
        """Class probabilities: the softmax of the subnetwork's logits, in float64.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Rows sum to one; columns follow ``classes_``.
        """
        return np.exp(self._log_proba(X))

    # --- tickets --------------------------------------------------------------------
    def save_ticket(self, path: str | os.PathLike) -> Path:
        """Write the fitted ticket (network spec, seed, packed mask, classes) to ``path``.

        Parameters
        ----------
        path : str or os.PathLike
            Where to write the ``.npz`` ticket (whole or not at all).

        Returns
        -------
        Path
            The path written.

        Raises
        ------
        ValueError
            The class labels cannot be stored as JSON (use int, float, bool or
            str labels).
        """
        check_is_fitted(self)
        if "classes" not in self.ticket_.meta:
            raise ValueError(
                f"classes_ {self.classes_[:5]!r} cannot be stored in a ticket: a ticket keeps "
                "its class labels as JSON, so they must be int, float, bool or str"
            )
        return self.ticket_.save(path)

    @classmethod
    def from_ticket(cls, ticket: Ticket | str | os.PathLike) -> SubnetworkClassifier:
        """A fitted classifier from a ticket file (or a loaded :class:`Ticket`).

        Predicts exactly what the estimator that saved it predicted. Tickets
        written by ``prunetrain search`` load too: their ``classes`` come from
        the dataset, and the feature scaling the search used (recorded since
        issue 19) becomes ``feature_scaling_``, so they predict on raw data.

        Parameters
        ----------
        ticket : Ticket, str or os.PathLike
            A ticket or the path of one.

        Returns
        -------
        SubnetworkClassifier
            Fitted, with the parameters it was fitted with where recorded.
            Fitted attributes a ticket does not record (those of a
            ``prunetrain search`` ticket) are 0, empty or None.

        Raises
        ------
        TicketError
            The file is missing, damaged, or does not match its network.
        ValueError
            The ticket's number of classes differs from its network's outputs.
        """
        if not isinstance(ticket, Ticket):
            ticket = Ticket.load(ticket)
        estimator = cls(**recorded_params(ticket, cls._get_param_names()))
        restore_fitted(estimator, ticket)
        return estimator

    # --- pickling: a ticket is tiny, so pickles store the mask and rebuild the weights.
    # (Unpickling is running code: the class docstring says to load only trusted pickles.)
    def __getstate__(self):
        state = dict(super().__getstate__())
        ticket = state.pop("ticket_", None)
        if ticket is not None:
            state.pop("masks_", None)
            state["_ticket_state"] = {
                "spec": ticket.spec.to_dict(),
                "seed": ticket.seed,
                "rule": ticket.rule.to_dict(),
                "mask": pack_mask(ticket.mask),
                "meta": ticket.meta,
                "weights_hash": ticket.network.weights_hash,
            }
        return state

    def __setstate__(self, state):
        state = dict(state)
        saved = state.pop("_ticket_state", None)
        if saved is not None:
            spec = NetworkSpec.from_dict(saved["spec"])
            network = FrozenNetwork(spec, saved["seed"])
            if network.weights_hash != saved["weights_hash"]:
                raise ValueError(
                    "the pickled SubnetworkClassifier's frozen weights cannot be rebuilt here "
                    "(weights hash differs: NumPy's random streams changed?)"
                )
            mask = unpack_mask(saved["mask"], spec.shapes)
            ticket = Ticket(network, mask, KeepRule.from_dict(saved["rule"]), saved["meta"])
            state["ticket_"], state["masks_"] = ticket, ticket.mask
        super().__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _dense(X, dtype=np.float32):
    """Sparse input is densified: the frozen network and the search are dense."""
    return np.ascontiguousarray(X.toarray() if sp.issparse(X) else X, dtype=dtype)


def _fit_scaling(
    kind: str | None, X: np.ndarray, weights: np.ndarray | None
) -> FeatureScaling | None:
    """The feature scaling ``fit`` learns: standardise (weighted mean and variance), min-max, or none."""
    if kind is None:
        return None
    if kind == "minmax":
        return minmax_scaling(X, clip=False)  # the data package's one min-max scaler
    mean = np.average(X, axis=0, weights=weights)
    std = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=weights))
    # A constant feature keeps factor 1 (and becomes 0), as StandardScaler does.
    return FeatureScaling(
        mean,
        np.divide(
            1.0, std, out=np.ones_like(std), where=std > 1e-12 * np.maximum(1.0, np.abs(mean))
        ),
    )


def _scaled(scaling: FeatureScaling | None, X: np.ndarray) -> np.ndarray:
    """Features as the network sees them: scaled, float32, C-contiguous."""
    _check_float32_range(X)
    out = np.ascontiguousarray(X, dtype=np.float32) if scaling is None else scaling.transform(X)
    _check_float32_range(out)
    return out


def _check_float32_range(X: np.ndarray) -> None:
    """The search runs in float32: refuse values it cannot hold (as ``validate_data`` would)."""
    if X.size and not np.all(np.abs(X) <= np.finfo(np.float32).max):
        raise ValueError("Input X contains infinity or a value too large for dtype('float32').")
