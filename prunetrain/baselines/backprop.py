"""NumPy backpropagation for the frozen MLP's architecture: loss, gradients, optimizers, epochs.

This is the gradient engine of the baselines, and the only backprop in the
project (the searches use none). It is plain vectorised NumPy: a forward pass
that keeps the activations, a backward pass that returns the gradient of the
mean cross-entropy with respect to the *effective* weights ``W_l`` (what the
forward pass multiplied by), and two optimizers. Every baseline maps its own
parameters onto effective weights and back:

- ``dense``: the effective weights are the parameters;
- ``imp``: ``W ⊙ M`` with a fixed mask, so the gradient is ``dW ⊙ M``;
- ``edge-popup``: ``W ⊙ topk(S)`` with frozen ``W``; the straight-through
  gradient to the scores is ``dW ⊙ W``.

Computation stays in the dtype of the weights (float32 in training, float64
in the finite-difference tests); the mean loss is returned as a Python float.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np

from prunetrain.errors import PrunetrainError


def forward(
    weights: Sequence[np.ndarray], biases: Sequence[np.ndarray] | None, X: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Logits of a ReLU MLP and the activations entering each layer.

    Parameters
    ----------
    weights : sequence of ndarray
        Effective weights, ``(fan_in, fan_out)`` per layer.
    biases : sequence of ndarray or None
        ``(fan_out,)`` per layer, or None.
    X : ndarray
        ``(B, fan_in)`` inputs.

    Returns
    -------
    logits : ndarray
        ``(B, n_outputs)``.
    inputs : list of ndarray
        ``inputs[l]`` is what layer ``l`` multiplied (``X`` for the first);
        the backward pass needs them.
    """
    a = np.asarray(X, dtype=weights[0].dtype)
    inputs = []
    last = len(weights) - 1
    for layer, w in enumerate(weights):
        inputs.append(a)
        z = a @ w
        if biases is not None:
            z += biases[layer]
        a = np.maximum(z, 0, out=z) if layer < last else z
    return a, inputs


def loss_and_gradients(
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray] | None,
    X: np.ndarray,
    y: np.ndarray,
) -> tuple[float, list[np.ndarray], list[np.ndarray] | None]:
    """Mean cross-entropy of the MLP on ``(X, y)`` and its gradients.

    Returns
    -------
    loss : float
        Mean cross-entropy over the batch.
    grad_weights : list of ndarray
        d loss / d (effective weight), one per layer.
    grad_biases : list of ndarray or None
        d loss / d bias, when ``biases`` is given.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> W = [rng.standard_normal((4, 3)), rng.standard_normal((3, 2))]
    >>> loss, dW, _ = loss_and_gradients(W, None, rng.random((5, 4)), np.array([0, 1, 1, 0, 1]))
    >>> [g.shape for g in dW]
    [(4, 3), (3, 2)]
    """
    logits, inputs = forward(weights, biases, X)
    y = np.asarray(y)
    n = len(y)
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    total = e.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    loss = float(np.mean(np.log(total[:, 0].astype(np.float64)) - z[rows, y]))
    delta = e / total  # softmax; d loss / d logits = (softmax - onehot) / n
    delta[rows, y] -= 1
    delta /= n
    grad_w: list[np.ndarray] = [None] * len(weights)  # type: ignore[list-item]
    grad_b: list[np.ndarray] | None = [None] * len(weights) if biases is not None else None  # type: ignore[list-item]
    for layer in range(len(weights) - 1, -1, -1):
        a = inputs[layer]
        grad_w[layer] = a.T @ delta
        if grad_b is not None:
            grad_b[layer] = delta.sum(axis=0)
        if layer > 0:
            # a = relu(z) of the layer below, so d a / d z = [z > 0] = [a > 0].
            delta = (delta @ weights[layer].T) * (a > 0)
    return loss, grad_w, grad_b


def logits_of(
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray] | None,
    X: np.ndarray,
    chunk: int = 8192,
) -> np.ndarray:
    """Logits on ``X`` in chunks of rows (the forward pass without keeping activations)."""
    if len(X) == 0:
        return np.zeros((0, weights[-1].shape[1]), dtype=weights[0].dtype)
    return np.concatenate(
        [forward(weights, biases, X[s : s + chunk])[0] for s in range(0, len(X), chunk)]
    )


# --- optimizers --------------------------------------------------------------------------


class SGD:
    """Stochastic gradient descent with (heavy-ball) momentum and L2 weight decay.

    ``v ← μ v + (g + λ θ)``, ``θ ← θ − η v`` (PyTorch's convention).
    """

    def __init__(
        self, params: Sequence[np.ndarray], momentum: float = 0.9, weight_decay: float = 0.0
    ):
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.velocity = [np.zeros_like(p) for p in params]

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray], lr: float) -> None:
        """Update ``params`` in place."""
        for p, g, v in zip(params, grads, self.velocity):
            if self.weight_decay:
                g = g + self.weight_decay * p
            v *= self.momentum
            v += g
            p -= lr * v


class Adam:
    """Adam (Kingma & Ba 2015) with L2 weight decay added to the gradient."""

    def __init__(
        self,
        params: Sequence[np.ndarray],
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.weight_decay = float(weight_decay)
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray], lr: float) -> None:
        """Update ``params`` in place."""
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        step = lr * math.sqrt(1 - b2**self.t) / (1 - b1**self.t)
        for p, g, m, v in zip(params, grads, self.m, self.v):
            if self.weight_decay:
                g = g + self.weight_decay * p
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            p -= step * m / (np.sqrt(v) + self.eps)


OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cosine", "constant")


def make_optimizer(name: str, params: Sequence[np.ndarray], momentum: float, weight_decay: float):
    """``"sgd"`` (with ``momentum``) or ``"adam"``."""
    if name == "sgd":
        return SGD(params, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return Adam(params, weight_decay=weight_decay)
    raise PrunetrainError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")


def learning_rate(schedule: str, lr: float, step: int, total: int) -> float:
    """The learning rate at ``step`` of ``total``: constant, or cosine-annealed to zero.

    Examples
    --------
    >>> learning_rate("cosine", 0.1, 0, 100), learning_rate("cosine", 0.1, 50, 100)
    (0.1, 0.05)
    """
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        return 0.5 * lr * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))
    raise PrunetrainError(f"unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")


# --- the training loop --------------------------------------------------------------------


class Trainer:
    """Mini-batch epochs over the training split, with a clock that skips evaluation.

    Parameters
    ----------
    n_train : int
        Training samples.
    batch_size : int
        Samples per step; the last, smaller batch of an epoch is kept.
    epochs : int
        Passes over the training set.
    rng : numpy.random.Generator
        Shuffles each epoch.
    max_seconds, max_steps : float or int, optional
        Stop early (after the current step) once training time or steps reach these.
    patience : int, optional
        Convergence mode: stop once ``patience`` epochs in a row have not
        improved on the best validation accuracy (``epochs`` is then a maximum).

    Attributes
    ----------
    seconds : float
        Training time so far, not counting :meth:`paused` sections.
    steps, sample_forwards : int
        Gradient steps and training samples forwarded so far.
    stopped_by : str
        ``"epochs"``, ``"budget"`` or ``"converged"``.
    best_epoch : int or None
        The last epoch whose model improved on validation (0: the model before training).
    """

    def __init__(
        self,
        n_train: int,
        batch_size: int,
        epochs: int,
        rng: np.random.Generator,
        max_seconds: float | None = None,
        max_steps: int | None = None,
        patience: int | None = None,
    ) -> None:
        if int(batch_size) < 1:
            raise PrunetrainError(f"batch_size must be >= 1, got {batch_size}")
        if int(epochs) < 0:
            raise PrunetrainError(f"epochs must be >= 0, got {epochs}")
        self.n_train = int(n_train)
        self.batch_size = min(int(batch_size), self.n_train)
        self.epochs = int(epochs)
        self.rng = rng
        self.max_seconds = max_seconds
        self.max_steps = max_steps
        self.patience = None if patience is None else int(patience)
        self.steps_per_epoch = math.ceil(self.n_train / self.batch_size)
        self.total_steps = self.steps_per_epoch * self.epochs
        if max_steps is not None:
            self.total_steps = min(self.total_steps, int(max_steps))
        self.seconds = 0.0
        self.steps = 0
        self.sample_forwards = 0
        self.stopped_by = "epochs"
        self.best_epoch: int | None = None

    def counts(self) -> dict:
        """Gradient steps, samples forwarded and training seconds so far (:meth:`EpochLog.add`'s
        keywords)."""
        return {
            "steps": self.steps,
            "sample_forwards": self.sample_forwards,
            "seconds": self.seconds,
        }

    def totals(self) -> dict:
        """What a :class:`~prunetrain.baselines.base.BaselineResult` says of the training:
        :meth:`counts`, the epochs trained, why it stopped and, in convergence mode,
        the best epoch (whose model the baseline returns)."""
        return {
            **self.counts(),
            "epochs": self.steps / self.steps_per_epoch,
            "stopped_by": self.stopped_by,
            "best_epoch": None if self.patience is None else self.best_epoch,
        }

    def run(
        self,
        step: Callable[[np.ndarray, int], float],
        on_epoch: Callable[[int, float], bool | None],
    ):
        """Call ``step(batch_rows, step_number)`` over the epochs; ``on_epoch(epoch, mean_loss)`` after each.

        ``on_epoch(0, nan)`` is called once before training. ``on_epoch`` returns
        whether the epoch's model is the best so far on validation
        (:meth:`EpochLog.add`), which convergence mode counts on. Time spent in
        ``on_epoch`` is not counted in :attr:`seconds`.
        """
        if on_epoch(0, math.nan):
            self.best_epoch = 0
        for epoch in range(1, self.epochs + 1):
            order = self.rng.permutation(self.n_train)
            losses = []
            start = time.perf_counter()
            for s in range(0, self.n_train, self.batch_size):
                rows = order[s : s + self.batch_size]
                losses.append(step(rows, self.steps))
                self.steps += 1
                self.sample_forwards += len(rows)
                over_time = (
                    self.max_seconds is not None
                    and self.seconds + time.perf_counter() - start >= self.max_seconds
                )
                if over_time or self.steps >= self.total_steps:
                    break
            self.seconds += time.perf_counter() - start
            if on_epoch(epoch, float(np.mean(losses))):
                self.best_epoch = epoch
            if self.patience is not None and epoch - (self.best_epoch or 0) >= self.patience:
                self.stopped_by = "converged"
                break
            if self.steps >= self.total_steps or (
                self.max_seconds is not None and self.seconds >= self.max_seconds
            ):
                if epoch < self.epochs:
                    self.stopped_by = "budget"
                break
