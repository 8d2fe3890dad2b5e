"""What the population searchers share: flat rows, mutation, crossover, one call per generation.

Every searcher of :mod:`prunetrain.search.evolution` works on a *population*
of masks and evaluates it whole: each step takes one fresh batch and makes
one call to :meth:`Problem.evaluate <prunetrain.problem.Problem.evaluate>`
for every mask of the generation, incumbents included, so that all the
masks compared in a step are compared on the same samples.

Keep rules act through their segments (:meth:`KeepRule.segments
<prunetrain.masks.KeepRule.segments>`): under ``"layer"`` each layer is a
segment with its own count, under ``"global"`` the whole mask is one segment
(weights can move between layers), under ``"free"`` nothing is counted and
mutation is bit flipping.
"""

from __future__ import annotations

import numpy as np

from prunetrain.masks import Layout, Mask, check_mask
from prunetrain.search.base import Searcher
from prunetrain.search.evolution.operators import (
    block_crossover,
    flip_mutation,
    repair_counts,
    swap_mutation,
    uniform_crossover,
)


class PopulationSearcher(Searcher):
    """Shared machinery: the flat layout, mutation, crossover, evaluation of a generation."""

    # Every method here was clearly better at 256 than at 1024 on digits: more generations
    # per second outweigh the noisier selection (see :mod:`prunetrain.search.evolution`).
    preferred_batch_size = 256

    def setup(self, problem, rng, init_mask: Mask | None = None) -> None:
        super().setup(problem, rng, init_mask)
        self.layout = Layout(problem.shapes, problem.rule)
        self.init_flat = (
            None
            if init_mask is None
            else self.layout.flatten(check_mask(init_mask, problem.shapes))
        )
        self.best_row: np.ndarray | None = None
        self.best_loss = np.inf
        self.generations = 0

    def random_rows(self, n: int) -> np.ndarray:
        """``n`` random masks satisfying the rule, as flat rows."""
        return np.stack([self.layout.flatten(self.problem.random_mask(self.rng)) for _ in range(n)])

    def start_rows(self, n: int, mutation: float) -> np.ndarray:
        """The first generation: random masks, or mutants of the warm-start mask (row 0 itself)."""
        if self.init_flat is None:
            return self.random_rows(n)
        rows = np.repeat(self.init_flat[None], n, axis=0)
        k = self.rng.poisson(mutation, n)
        k[0] = 0
        self.mutate(rows, k)
        return rows

    def evaluate(self, rows: np.ndarray) -> np.ndarray:
        """Training losses of ``rows`` on a fresh batch (one backend call)."""
        batch = self.problem.next_batch()
        loss, _ = self.problem.evaluate(self.layout.population(rows), batch)
        self.generations += 1
        return np.asarray(loss, dtype=np.float64)

    def mutate(self, rows: np.ndarray, k: np.ndarray) -> None:
        """Mutate ``rows`` in place: ``k[i]`` swaps (flips under ``"free"``) for row ``i``.

        The swaps of a row land on the rule's segments in proportion to
        their sizes (a multinomial draw), so every weight is equally likely
        to be touched.
        """
        k = np.asarray(k, dtype=np.int64)
        segments = self.layout.segments
        if len(segments) == 1:
            split = k[:, None]
        else:
            shares = np.array([e - s for s, e, _ in segments], dtype=np.float64)
            split = self.rng.multinomial(k, shares / shares.sum())
        for j, (s, e, count) in enumerate(segments):
            if count is None:
                flip_mutation(rows[:, s:e], split[:, j], self.rng)
            else:
                swap_mutation(
                    rows[:, s:e], split[:, j], self.rng, self.layout.keep_fraction(s, e, count)
                )

    def recombine(self, a: np.ndarray, b: np.ndarray, kind: str) -> np.ndarray:
        """Children of ``a[i]`` and ``b[i]`` (``"uniform"`` or ``"block"``), counts repaired."""
        lay = self.layout
        if kind == "uniform":
            child = uniform_crossover(a, b, self.rng)
        else:
            child = np.empty_like(a)
            for layer in range(len(lay.shapes)):
                lay.layer(child, layer)[:] = block_crossover(
                    lay.layer(a, layer), lay.layer(b, layer), self.rng
                )
        for s, e, count in lay.segments:
            if count is not None:
                repair_counts(child[:, s:e], a[:, s:e], b[:, s:e], count, self.rng)
        return child

    def remember(self, rows: np.ndarray, loss: np.ndarray) -> None:
        """The best of the generation just evaluated becomes the recommended mask."""
        i = int(np.argmin(loss))
        self.best_row, self.best_loss = rows[i].copy(), float(loss[i])

    def recommend(self) -> tuple[Mask, float]:
        if self.best_row is None:
            row = self.init_flat if self.init_flat is not None else self.random_rows(1)[0]
            self.best_row = row.copy()
        return self.layout.mask(self.best_row), self.best_loss
