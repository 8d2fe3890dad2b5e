"""edge-popup (Ramanujan et al. 2020): learn a score per weight, keep the top-k, weights frozen.

Each weight ``w_ij`` of the frozen network gets a real score ``s_ij``. The
forward pass uses ``W ⊙ M`` with ``M`` the top ``k`` of ``|S|`` (per layer, or
over the whole network under the ``global`` keep rule). ``M`` is a step
function of ``S``, so its gradient is replaced by the identity (the
straight-through estimator): ``dL/d|s_ij| := dL/dm_ij = (dL/dW_eff)_ij · w_ij``,
the derivative of the loss with respect to a continuous mask value. Scores are
trained by SGD with momentum, weight decay and a cosine learning rate; the
weights never change, so the result is a ticket of the frozen network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from prunetrain.baselines.backprop import (
    learning_rate,
    logits_of,
    loss_and_gradients,
    make_optimizer,
)
from prunetrain.baselines.base import BaselineResult, EpochLog, register
from prunetrain.baselines.dense import GradientBaseline
from prunetrain.baselines.recipes import recipe_names
from prunetrain.baselines.select import keep_largest
from prunetrain.errors import PrunetrainError
from prunetrain.hyperparams import Choice
from prunetrain.masks import KeepRule, Mask

SCORE_INITS = ("kaiming_uniform", "uniform")


def top_k_mask(
    scores: Sequence[np.ndarray], rule: KeepRule, shapes: Sequence[tuple[int, int]]
) -> Mask:
    """The mask keeping the weights of largest ``|score|`` (per layer, or in total; see :func:`keep_largest`).

    Examples
    --------
    >>> top_k_mask([np.array([[0.1, -0.9], [0.5, 0.2]])], KeepRule(0.5), [(2, 2)])[0]
    array([[False,  True],
           [ True, False]])
    """
    return keep_largest([np.abs(s) for s in scores], rule, shapes)


def score_gradients(
    scores: Sequence[np.ndarray],
    mask: Mask,
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray] | None,
    X: np.ndarray,
    y: np.ndarray,
) -> tuple[float, list[np.ndarray]]:
    """Loss of ``W ⊙ mask`` on ``(X, y)`` and the straight-through gradient to the scores.

    ``dL/ds = sign(s) · (dL/dW_eff) · w``: the derivative with respect to a
    continuous mask value, passed through ``|s|``.
    """
    effective = [w * m for w, m in zip(weights, mask)]
    loss, grad_w, _ = loss_and_gradients(effective, biases, X, y)
    return loss, [np.sign(s) * g * w for s, g, w in zip(scores, grad_w, weights)]


def init_scores(shapes, kind: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Initial scores: ``kaiming_uniform`` (PyTorch's default layer init, bound 1/sqrt(fan_in)) or U(0, 1)."""
    if kind == "kaiming_uniform":
        return [
            rng.uniform(-1, 1, shape).astype(np.float32) / np.float32(math.sqrt(shape[0]))
            for shape in shapes
        ]
    if kind == "uniform":
        return [rng.random(shape, dtype=np.float32) for shape in shapes]
    raise PrunetrainError(f"unknown score init {kind!r}; expected one of {', '.join(SCORE_INITS)}")


@register
class EdgePopup(GradientBaseline):
    """Scores trained through a top-k mask on the frozen weights (Ramanujan et al. 2020).

    Parameters
    ----------
    epochs : int
        Passes over the training split.
    batch_size : int
        Samples per gradient step.
    optimizer : {"sgd", "adam"}
        SGD with ``momentum`` (the paper's choice), or Adam.
    lr : float
        Initial learning rate of the scores.
    momentum : float
        SGD momentum.
    weight_decay : float
        L2 penalty on the scores.
    schedule : {"cosine", "constant"}
        Cosine annealing to zero over all steps (the paper's), or constant.
    score_init : {"kaiming_uniform", "uniform"}
        How scores start.
    patience : int, optional
        Convergence mode: stop once ``patience`` epochs have not improved on the
        best validation accuracy (``epochs`` is then a maximum), and return the
        best epoch's mask.
    recipe : str, optional
        Start from a named recipe: ``"hidden-networks"`` (the reference
        implementation's FC recipe: SGD 0.1, momentum 0.9, cosine, weight decay
        1e-4, batch 128, 100 epochs, on the run's signed-constant network) or
        ``"converge"`` (:mod:`prunetrain.baselines.recipes`); other options given
        beside it override its values.
    """

    name = "edge-popup"
    summary = "scores per weight, top-k forward, straight-through gradient; a ticket"
    produces = "ticket"
    _parameter_constraints = {
        **GradientBaseline._parameter_constraints,
        "score_init": Choice(SCORE_INITS),
        "recipe": recipe_names("edge-popup"),
    }

    def __init__(
        self,
        epochs: int = 10,
        batch_size: int = 128,
        optimizer: str = "sgd",
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        schedule: str = "cosine",
        score_init: str = "kaiming_uniform",
        patience: int | None = None,
        recipe: str | None = None,
    ) -> None:
        super().__init__(
            epochs, batch_size, optimizer, lr, momentum, weight_decay, schedule, patience, recipe
        )
        self.score_init = score_init

    def fit(self, network, data, rule: KeepRule, *, seed=0, budget=None, progress=False):
        self.check_params()
        shapes = network.shapes
        scores = init_scores(shapes, self.score_init, np.random.default_rng([seed, 0x5C0E]))
        weights, biases = list(network.weights), network.biases
        optimizer = make_optimizer(self.optimizer, scores, self.momentum, self.weight_decay)
        trainer = self._trainer(len(data.y_train), seed, budget)
        X, y = data.X_train, data.y_train
        log = EpochLog(data, self.name if progress else None, int(self.epochs), self.converges)
        best_mask = None  # in convergence mode

        def step(rows: np.ndarray, number: int) -> float:
            mask = top_k_mask(scores, rule, shapes)
            loss, grads = score_gradients(scores, mask, weights, biases, X[rows], y[rows])
            optimizer.step(
                scores, grads, learning_rate(self.schedule, self.lr, number, trainer.total_steps)
            )
            return loss

        def on_epoch(epoch: int, loss: float) -> bool:
            nonlocal best_mask
            mask = top_k_mask(scores, rule, shapes)
            effective = [w * m for w, m in zip(weights, mask)]
            improved = log.add(
                lambda Z: logits_of(effective, biases, Z),
                epoch,
                loss,
                **trainer.counts(),
            )
            if improved and self.converges:
                best_mask = mask
            return improved

        trainer.run(step, on_epoch)
        log.close()
        return BaselineResult(
            mask=best_mask if best_mask is not None else top_k_mask(scores, rule, shapes),
            history=log.rows,
            snapshots=log.snapshots,
            **trainer.totals(),
            note=(
                "edge-popup: a mask over the frozen network's weights (a ticket), found by "
                "training scores with gradients (straight-through top-k)"
            ),
        )
