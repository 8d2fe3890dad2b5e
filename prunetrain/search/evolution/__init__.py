"""Evolutionary and distribution-based mask search: GA, (1+λ)/(μ,λ)/(μ+λ), PBIL, CEM, NES.

One concept a module:

- :mod:`~prunetrain.search.evolution.operators`: mutation and crossover of
  masks held as rows of one flat boolean array;
- :mod:`~prunetrain.search.evolution.population`: :class:`PopulationSearcher`,
  what every searcher here shares (the flat layout, mutation and crossover
  under the keep rule, one backend call per generation);
- :mod:`~prunetrain.search.evolution.ga`: the genetic algorithm (``ga``);
- :mod:`~prunetrain.search.evolution.strategies`: (1+λ), (μ,λ) and (μ+λ)
  evolution (``evolution``);
- :mod:`~prunetrain.search.evolution.distributions`: estimation of
  distribution over keep logits (``pbil``, ``cem``, ``nes``).

Importing this package registers the searchers.

Default hyperparameters were picked on digits 64-256-256-10, keep 0.5, by
validation accuracy in 20 s runs at batch size 256 (one seed). Smaller
batches buy more generations per second at the price of noisier selection;
on digits 256 beat 1024 clearly for every method here and 128 was no better.
The exception is ``evolution``'s ``confirm``, built after measuring on
Fashion-MNIST's training data that most late winners of a generation were no
better than their parent (``experiments/results/evolution_acceptance``).
"""

from prunetrain.search.evolution.distributions import (
    CEMSearcher,
    DistributionSearcher,
    NESSearcher,
    PBILSearcher,
    nes_utilities,
    topk_mode,
)
from prunetrain.search.evolution.ga import GeneticSearcher
from prunetrain.search.evolution.operators import (
    block_crossover,
    choose_in_rows,
    flip_mutation,
    poisson_at_least_one,
    repair_counts,
    swap_mutation,
    uniform_crossover,
)
from prunetrain.search.evolution.population import PopulationSearcher
from prunetrain.search.evolution.strategies import STRATEGIES, EvolutionSearcher

__all__ = [
    "CEMSearcher",
    "DistributionSearcher",
    "EvolutionSearcher",
    "GeneticSearcher",
    "NESSearcher",
    "PBILSearcher",
    "PopulationSearcher",
    "STRATEGIES",
    "block_crossover",
    "choose_in_rows",
    "flip_mutation",
    "nes_utilities",
    "poisson_at_least_one",
    "repair_counts",
    "swap_mutation",
    "topk_mode",
    "uniform_crossover",
]
