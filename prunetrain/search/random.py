"""Random search: the best of random masks at the target keep — the floor every method must beat."""

from __future__ import annotations

import numpy as np

from prunetrain.hyperparams import MAX_POPULATION, Integer
from prunetrain.masks import Mask
from prunetrain.search.base import Searcher, register


@register
class RandomSearcher(Searcher):
    """Draw ``population`` random masks per step; keep the best.

    Each step evaluates the new masks and the incumbent on the same fresh
    batch, so the comparison is fair under a rotating minibatch schedule;
    the incumbent is replaced when a new mask has a lower training loss.

    Parameters
    ----------
    population : int
        Random masks drawn per step.
    """

    name = "random"
    summary = "best of random masks at the target keep (the floor)"
    _parameter_constraints = {"population": Integer(1, MAX_POPULATION)}

    def __init__(self, population: int = 32) -> None:
        self.population = population

    def setup(self, problem, rng, init_mask: Mask | None = None) -> None:
        super().setup(problem, rng, init_mask)
        self.best_mask = init_mask if init_mask is not None else problem.random_mask(rng)
        self.best_loss = np.inf

    def step(self) -> None:
        problem = self.problem
        batch = problem.next_batch()
        candidates = [self.best_mask] + [
            problem.random_mask(self.rng) for _ in range(int(self.population))
        ]
        loss, _ = problem.evaluate(candidates, batch)
        winner = int(np.argmin(loss))  # the incumbent (index 0) wins ties
        self.best_mask, self.best_loss = candidates[winner], float(loss[winner])

    def recommend(self) -> tuple[Mask, float]:
        return self.best_mask, self.best_loss
