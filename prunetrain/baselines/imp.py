"""Iterative magnitude pruning with rewinding to init: the original lottery ticket (Frankle & Carbin 2019).

Train the network, prune the smallest-magnitude trained weights, rewind the
survivors to their initial (frozen) values, train again; repeat until the
target keep, then train the final sparse network. The result is a *trained*
sparse network — its weights are learned — not a ticket of the frozen network.
"""

from __future__ import annotations

import math

import numpy as np

from prunetrain.baselines.base import BaselineResult, EpochLog, register
from prunetrain.baselines.dense import GradientBaseline, train_weights
from prunetrain.baselines.recipes import recipe_names
from prunetrain.baselines.select import keep_largest
from prunetrain.hyperparams import MAX_REPEATS, Integer
from prunetrain.masks import KeepRule
from prunetrain.problem import Budget

#: Fraction of the remaining weights pruned per round when ``rounds`` is not given.
DEFAULT_PRUNE_RATE = 0.2


def default_rounds(keep: float, rate: float = DEFAULT_PRUNE_RATE) -> int:
    """Rounds of pruning ``rate`` of what remains until ``keep`` is reached (at least one below 1).

    Examples
    --------
    >>> default_rounds(0.5), default_rounds(0.1), default_rounds(1.0)
    (4, 11, 0)
    """
    if keep >= 1.0:
        return 0
    return max(1, math.ceil(math.log(keep) / math.log(1 - rate) - 1e-9))


@register
class IterativeMagnitudePruning(GradientBaseline):
    """Train, prune by magnitude, rewind to init, repeat; then train the sparse network.

    Parameters
    ----------
    epochs : int
        Epochs of each training (every round, and the final one).
    rounds : int, optional
        Pruning rounds; each keeps ``keep ** (1 / rounds)`` of what remains.
        Default: 20 % pruned per round, ``ceil(log(keep) / log(0.8))`` rounds.
    batch_size, optimizer, lr, momentum, weight_decay, schedule
        As for ``dense``; each training restarts the optimizer and the schedule.
    patience : int, optional
        Convergence mode, per training: each round trains until ``patience``
        epochs have not improved on its best validation accuracy (at most
        ``epochs``), and its best epoch's weights are the ones pruned (and, in the
        last round, returned).
    recipe : str, optional
        Start from a named recipe: ``"lottery-ticket"`` (open_lth's LeNet-300-100:
        SGD 0.1, no momentum, constant rate, batch 128, 40 epochs a round, 20 %
        pruned per round, rewinding to init) or ``"converge"``
        (:mod:`prunetrain.baselines.recipes`); other options given beside it
        override its values.
    """

    name = "imp"
    summary = "iterative magnitude pruning, rewinding to init; trained sparse weights"
    produces = "weights"
    _parameter_constraints = {
        **GradientBaseline._parameter_constraints,
        "rounds": Integer(1, MAX_REPEATS, optional=True),
        "recipe": recipe_names("imp"),
    }

    def __init__(
        self,
        epochs: int = 10,
        rounds: int | None = None,
        batch_size: int = 128,
        optimizer: str = "adam",
        lr: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        schedule: str = "cosine",
        patience: int | None = None,
        recipe: str | None = None,
    ) -> None:
        super().__init__(
            epochs, batch_size, optimizer, lr, momentum, weight_decay, schedule, patience, recipe
        )
        self.rounds = rounds

    def fit(self, network, data, rule: KeepRule, *, seed=0, budget=None, progress=False):
        self.check_params()
        rounds = default_rounds(rule.keep) if self.rounds is None else int(self.rounds)
        if rule.keep >= 1.0:
            rounds = 0  # nothing to prune: plain dense training
        shapes = network.shapes
        mask = [np.ones(s, dtype=bool) for s in shapes]
        rows: list[dict] = []
        snapshots = []
        seconds = steps = forwards = 0
        epochs_done = 0.0
        epoch_offset = 0  # epochs of the rounds before this one (rounds may stop early)
        stopped_by = "epochs"
        best_epoch = None
        weights = biases = None
        for r in range(rounds + 1):
            remaining = _remaining(budget, seconds, steps)
            if remaining is False:
                stopped_by = "budget"
                break
            if r > 0:
                # Prune the smallest trained magnitudes among the survivors, then rewind:
                # train_weights restarts from the frozen init times the new mask.
                target = rule.keep if r == rounds else rule.keep ** (r / rounds)
                magnitude = [np.where(m, np.abs(w), -1.0) for w, m in zip(weights, mask)]
                mask = keep_largest(magnitude, rule.with_keep(target), shapes)
            trainer = self._trainer(len(data.y_train), seed + 7919 * r, remaining)
            log = EpochLog(
                data,
                f"{self.name} round {r}" if progress else None,
                int(self.epochs),
                self.converges,
            )
            weights, biases = train_weights(self, network, data, mask, trainer, log)
            log.close()
            snapshots += log.snapshots[(1 if r else 0) :]
            round_epochs = log.rows[-1]["epoch"]  # before the rows are renumbered below
            for row in log.rows[(1 if r else 0) :]:  # a round's row 0 is the last round's end
                row.update(
                    round=r,
                    keep=sum(int(m.sum()) for m in mask) / network.spec.n_weights,
                    epoch=row["epoch"] + epoch_offset,
                    evaluations=row["evaluations"] + steps,
                    sample_forwards=row["sample_forwards"] + forwards,
                    seconds=row["seconds"] + seconds,
                )
                rows.append(row)
            seconds += trainer.seconds
            steps += trainer.steps
            forwards += trainer.sample_forwards
            epochs_done += trainer.steps / trainer.steps_per_epoch
            stopped_by = trainer.stopped_by
            if self.converges and trainer.best_epoch is not None:
                best_epoch = trainer.best_epoch + epoch_offset
            epoch_offset += round_epochs
            if trainer.stopped_by == "budget":
                break
        best = -1.0
        for row in rows:  # best validation so far, over all rounds
            if row["val_accuracy"] is not None:
                best = max(best, row["val_accuracy"])
                row["best_val_accuracy"] = best
        return BaselineResult(
            mask=mask,
            weights=weights,
            biases=biases,
            history=rows,
            snapshots=snapshots,
            seconds=seconds,
            steps=steps,
            sample_forwards=forwards,
            epochs=epochs_done,
            stopped_by=stopped_by,
            best_epoch=best_epoch,
            note=(
                f"iterative magnitude pruning ({rounds} rounds, rewinding to init): a trained "
                "sparse network (weights learned), not a ticket of the frozen network"
            ),
        )


def _remaining(budget: Budget | None, seconds: float, steps: int) -> Budget | None | bool:
    """What is left of ``budget`` after ``seconds`` and ``steps``; False when nothing is."""
    if budget is None:
        return None
    if budget.seconds is not None:
        left = budget.seconds - seconds
        return Budget(seconds=left) if left > 0 else False
    left = budget.evaluations - steps
    return Budget(evaluations=left) if left > 0 else False
