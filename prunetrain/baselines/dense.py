"""Dense MLPs trained by backprop: our NumPy trainer on the frozen init, and scikit-learn's.

Both learn every weight of the architecture, so they are the reference a
pruned network of the same shape is measured against. ``dense`` starts from
exactly the frozen network's weights (same engine, same init); ``dense-sklearn``
is the ecosystem's reference, ``MLPClassifier`` with the same hidden sizes (its
own Glorot init, with biases).
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from prunetrain.baselines.backprop import (
    OPTIMIZERS,
    SCHEDULES,
    Trainer,
    learning_rate,
    loss_and_gradients,
    make_optimizer,
)
from prunetrain.baselines.base import (
    Baseline,
    BaselineResult,
    EpochLog,
    budget_caps,
    register,
)
from prunetrain.baselines.recipes import recipe_names
from prunetrain.baselines.weights import snapshot_logits
from prunetrain.hyperparams import MAX_COUNT, MAX_REPEATS, MAX_SCALE, Choice, Integer, Real
from prunetrain.masks import KeepRule
from prunetrain.network import FrozenNetwork

#: ``patience`` of every trained baseline: epochs without a better validation accuracy,
#: bounded as ``epochs`` is.
PATIENCE = Integer(1, MAX_REPEATS, optional=True)


class GradientBaseline(Baseline):
    """Shared hyperparameters and their constraints of the baselines trained by our NumPy backprop.

    Its defaults are ``dense``'s; a subclass with other defaults or more
    hyperparameters passes its own on to this constructor. Every one takes
    ``patience`` (convergence mode) and ``recipe`` (a name from
    :data:`~prunetrain.baselines.recipes.RECIPES`, applied by
    :func:`~prunetrain.baselines.make_baseline`; each subclass declares its own
    recipes' names).
    """

    _parameter_constraints = {
        "epochs": Integer(0, MAX_REPEATS),
        "batch_size": Integer(1, MAX_COUNT),
        "optimizer": Choice(OPTIMIZERS),
        "lr": Real(0, MAX_SCALE),
        "momentum": Real(0, MAX_SCALE, closed="both"),
        "weight_decay": Real(0, MAX_SCALE, closed="both"),
        "schedule": Choice(SCHEDULES),
        "patience": PATIENCE,
    }  # and "recipe", which each subclass declares with the names of its own recipes

    def __init__(
        self,
        epochs: int = 10,
        batch_size: int = 128,
        optimizer: str = "adam",
        lr: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        schedule: str = "cosine",
        patience: int | None = None,
        recipe: str | None = None,
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.patience = patience
        self.recipe = recipe

    def _trainer(self, n_train: int, seed: int, budget, epochs: int | None = None) -> Trainer:
        max_seconds, max_steps = budget_caps(budget)
        return Trainer(
            n_train,
            int(self.batch_size),
            int(self.epochs if epochs is None else epochs),
            np.random.default_rng([seed, 0xBAC4]),
            max_seconds=max_seconds,
            max_steps=max_steps,
            patience=self.patience,
        )


def train_weights(
    baseline: GradientBaseline,
    network: FrozenNetwork,
    data,
    mask,
    trainer: Trainer,
    log: EpochLog,
    train_biases: bool = True,
) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """Train the network's weights from their frozen values, pruned weights held at zero.

    Returns the trained weights (``W ⊙ M``) and biases (trained when the spec has them):
    those of the last epoch, or in convergence mode (``trainer.patience``) of the
    best epoch on validation.
    """
    weights = [np.array(w, dtype=np.float32) for w in network.weights]
    masks = None if mask is None else [np.asarray(m, dtype=np.float32) for m in mask]
    if masks is not None:
        for w, m in zip(weights, masks):
            w *= m
    biases = None if network.biases is None else [np.array(b) for b in network.biases]
    params = weights + (biases if biases is not None and train_biases else [])
    optimizer = make_optimizer(baseline.optimizer, params, baseline.momentum, baseline.weight_decay)
    X, y = data.X_train, data.y_train

    def step(rows: np.ndarray, number: int) -> float:
        loss, gw, gb = loss_and_gradients(weights, biases, X[rows], y[rows])
        if masks is not None:
            gw = [g * m for g, m in zip(gw, masks)]
        grads = gw + (gb if gb is not None and train_biases else [])
        optimizer.step(
            params,
            grads,
            learning_rate(baseline.schedule, baseline.lr, number, trainer.total_steps),
        )
        if masks is not None and baseline.weight_decay:
            for w, m in zip(weights, masks):
                w *= m  # momentum of decay can move a pruned weight; hold it at zero
        return loss

    best = None  # (weights, biases) of the best epoch, in convergence mode

    def on_epoch(epoch: int, loss: float) -> bool:
        nonlocal best
        improved = log.add(snapshot_logits(weights, biases), epoch, loss, **trainer.counts())
        if improved and trainer.patience is not None:
            best = _copied(weights), None if biases is None else _copied(biases)
        return improved

    trainer.run(step, on_epoch)
    return best if best is not None else (weights, biases)


def _copied(arrays: list[np.ndarray]) -> list[np.ndarray]:
    return [np.array(a) for a in arrays]


@register
class DenseBackprop(GradientBaseline):
    """Every weight of the frozen network's architecture trained by NumPy backprop from its init.

    Parameters
    ----------
    epochs : int
        Passes over the training split.
    batch_size : int
        Samples per gradient step.
    optimizer : {"adam", "sgd"}
        Adam, or SGD with ``momentum``.
    lr : float
        Initial learning rate.
    momentum : float
        Momentum of SGD (unused by Adam).
    weight_decay : float
        L2 penalty added to the gradient.
    schedule : {"cosine", "constant"}
        Learning rate annealed to zero along a cosine over all steps, or constant.
    patience : int, optional
        Convergence mode: stop once ``patience`` epochs have not improved on the
        best validation accuracy (``epochs`` is then a maximum), and return the
        best epoch's weights, as ``MLPClassifier(early_stopping=True)`` does.
    recipe : str, optional
        Start from a named recipe: ``"lottery-ticket"`` (open_lth's LeNet-300-100:
        SGD 0.1, no momentum, constant rate, batch 128, 40 epochs) or
        ``"converge"`` (:mod:`prunetrain.baselines.recipes`); other options given
        beside it override its values.
    """

    name = "dense"
    summary = "all weights trained by NumPy backprop from the frozen init (same engine)"
    produces = "weights"
    _parameter_constraints = {
        **GradientBaseline._parameter_constraints,
        "recipe": recipe_names("dense"),
    }

    def fit(self, network, data, rule: KeepRule, *, seed=0, budget=None, progress=False):
        self.check_params()
        trainer = self._trainer(len(data.y_train), seed, budget)
        log = EpochLog(data, self.name if progress else None, int(self.epochs), self.converges)
        weights, biases = train_weights(self, network, data, None, trainer, log)
        log.close()
        return BaselineResult(
            weights=weights,
            biases=biases,
            history=log.rows,
            snapshots=log.snapshots,
            **trainer.totals(),
            note=(
                "dense network trained by backprop (all weights, keep 1.0) from the frozen "
                "network's init; trained weights, not a ticket of the frozen network"
            ),
        )


@register
class SklearnMLP(Baseline):
    """scikit-learn's ``MLPClassifier`` with the same hidden sizes, one ``partial_fit`` per epoch.

    Parameters
    ----------
    epochs : int
        Passes over the training split (``partial_fit`` calls).
    batch_size : int
        Samples per Adam step.
    lr : float
        ``learning_rate_init``.
    alpha : float
        L2 penalty (scikit-learn's default).
    patience : int, optional
        Convergence mode, as for the other trained baselines and as
        ``MLPClassifier(early_stopping=True)`` does, but on the validation split
        every baseline sees (scikit-learn would hold out part of the training
        split): stop once ``patience`` epochs have not improved on the best
        validation accuracy, and keep the best epoch's model.
    recipe : str, optional
        ``"converge"``: scikit-learn's own early-stopping defaults
        (:mod:`prunetrain.baselines.recipes`).
    """

    name = "dense-sklearn"
    summary = "scikit-learn MLPClassifier, same hidden sizes (the ecosystem's reference)"
    produces = "weights"
    _parameter_constraints = {
        "epochs": Integer(1, MAX_REPEATS),
        "batch_size": Integer(1, MAX_COUNT),
        "lr": Real(0, MAX_SCALE),
        "alpha": Real(0, MAX_SCALE, closed="both"),
        "patience": PATIENCE,
        "recipe": recipe_names("dense-sklearn"),
    }

    def __init__(
        self,
        epochs: int = 10,
        batch_size: int = 128,
        lr: float = 1e-3,
        alpha: float = 1e-4,
        patience: int | None = None,
        recipe: str | None = None,
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.alpha = alpha
        self.patience = patience
        self.recipe = recipe

    def fit(self, network, data, rule: KeepRule, *, seed=0, budget=None, progress=False):
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        self.check_params()
        epochs, batch_size = int(self.epochs), int(self.batch_size)
        model = MLPClassifier(
            hidden_layer_sizes=network.spec.layer_sizes[1:-1],
            activation="relu",
            solver="adam",
            alpha=float(self.alpha),
            batch_size=batch_size,
            learning_rate_init=float(self.lr),
            random_state=seed,
            shuffle=True,
        )

        max_seconds, max_steps = budget_caps(budget)
        n = len(data.y_train)
        steps_per_epoch = -(-n // batch_size)
        classes = np.arange(data.n_classes)
        log = EpochLog(data, self.name if progress else None, epochs, self.converges)
        seconds, steps, stopped_by = 0.0, 0, "epochs"
        best_epoch, best = None, None
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.partial_fit(data.X_train, data.y_train, classes=classes)  # one epoch
            seconds += time.perf_counter() - start
            steps += steps_per_epoch
            improved = log.add(
                snapshot_logits(model.coefs_, model.intercepts_),
                epoch,
                float(model.loss_),
                steps=steps,
                sample_forwards=epoch * n,
                seconds=seconds,
            )
            if improved and self.converges:
                best_epoch, best = epoch, (_copied(model.coefs_), _copied(model.intercepts_))
            if self.converges and epoch - (best_epoch or 0) >= int(self.patience):
                stopped_by = "converged"
                break
            capped = (max_seconds is not None and seconds >= max_seconds) or (
                max_steps is not None and steps >= max_steps
            )
            if capped and epoch < epochs:
                stopped_by = "budget"
                break
        log.close()
        coefs, intercepts = best if best is not None else (model.coefs_, model.intercepts_)
        return BaselineResult(
            weights=[np.asarray(c) for c in coefs],
            biases=[np.asarray(b) for b in intercepts],
            history=log.rows,
            snapshots=log.snapshots,
            seconds=seconds,
            steps=steps,
            sample_forwards=log.rows[-1]["sample_forwards"],
            epochs=log.rows[-1]["epoch"],
            stopped_by=stopped_by,
            best_epoch=best_epoch if self.converges else None,
            note=(
                "scikit-learn MLPClassifier (Adam, its own Glorot init, with biases) with the "
                "same hidden sizes; trained weights, not a ticket of the frozen network"
            ),
            logits=log.snapshots[-1],
        )
