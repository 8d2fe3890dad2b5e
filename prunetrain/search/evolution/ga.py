"""The genetic algorithm: tournaments, elitism, uniform or block crossover, swap mutation."""

from __future__ import annotations

import numpy as np

from prunetrain.hyperparams import MAX_COUNT, MAX_POPULATION, Choice, Integer, Real
from prunetrain.search.base import register
from prunetrain.search.evolution.operators import poisson_at_least_one
from prunetrain.search.evolution.population import PopulationSearcher


@register
class GeneticSearcher(PopulationSearcher):
    """Genetic algorithm: tournament selection, elitism, crossover, mutation.

    Each generation evaluates the whole population (elites again) on a
    fresh batch. The ``elites`` best pass unchanged; every other member of
    the next generation is a child of two parents, each the best of
    ``tournament`` members drawn at random: with probability ``crossover_rate``
    their crossover, otherwise a copy of the first, then mutated with
    ``1 + Poisson(mutation - 1)`` swaps (flips under the ``"free"`` rule).
    Under the ``"layer"`` and ``"global"`` rules crossover is followed by
    count repair among the weights where the parents differ, and mutation
    swaps a kept and a pruned weight, so every child keeps exact counts.

    Parameters
    ----------
    population : int
        Masks per generation.
    elites : int
        Best masks copied unchanged into the next generation.
    tournament : int
        Members drawn per tournament (selection pressure).
    crossover : {"uniform", "block"}
        ``"uniform"``: each weight from either parent; ``"block"``: each
        unit's whole fan-in from either parent.
    crossover_rate : float
        Probability that a child is a crossover (else a mutated copy).
    mutation : float
        Mean swaps per child (at least one).
    """

    name = "ga"
    summary = "genetic algorithm: tournaments, elitism, uniform/block crossover, swap mutation"
    _parameter_constraints = {
        "population": Integer(2, MAX_POPULATION),
        "elites": Integer(0, "population", closed="left"),
        "tournament": Integer(1, MAX_POPULATION),
        "crossover": Choice(("uniform", "block")),
        "crossover_rate": Real(0, 1, closed="both"),
        "mutation": Real(0, MAX_COUNT),
    }

    def __init__(
        self,
        population: int = 16,
        elites: int = 2,
        tournament: int = 3,
        crossover: str = "uniform",
        crossover_rate: float = 0.5,
        mutation: float = 8.0,
    ) -> None:
        self.population = population
        self.elites = elites
        self.tournament = tournament
        self.crossover = crossover
        self.crossover_rate = crossover_rate
        self.mutation = mutation

    def setup(self, problem, rng, init_mask=None) -> None:
        super().setup(problem, rng, init_mask)
        self.rows = self.start_rows(int(self.population), float(self.mutation))

    def step(self) -> None:
        rows, rng = self.rows, self.rng
        loss = self.evaluate(rows)
        self.remember(rows, loss)
        p, e = len(rows), int(self.elites)
        n = p - e
        order = np.argsort(loss, kind="stable")
        drawn = rng.integers(0, p, size=(2, n, int(self.tournament)))
        winners = np.take_along_axis(drawn, np.argmin(loss[drawn], axis=2)[..., None], 2)[..., 0]
        mothers, fathers = winners
        children = rows[mothers]
        cross = np.flatnonzero(rng.random(n) < float(self.crossover_rate))
        if len(cross):
            children[cross] = self.recombine(
                rows[mothers[cross]], rows[fathers[cross]], self.crossover
            )
        self.mutate(children, poisson_at_least_one(rng, float(self.mutation), n))
        self.rows = np.concatenate([rows[order[:e]], children])
