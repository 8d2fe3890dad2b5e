"""Evolution strategies over masks: (1+λ) with the 1/5th success rule, (μ,λ) and (μ+λ)."""

from __future__ import annotations

import numpy as np

from prunetrain.errors import PrunetrainError
from prunetrain.hyperparams import (
    MAX_COUNT,
    MAX_POPULATION,
    MAX_SCALE,
    Choice,
    Flag,
    Integer,
    Real,
)
from prunetrain.search.base import register
from prunetrain.search.evolution.operators import poisson_at_least_one
from prunetrain.search.evolution.population import PopulationSearcher

STRATEGIES = ("1+lambda", "mu,lambda", "mu+lambda")


@register
class EvolutionSearcher(PopulationSearcher):
    """(1+λ), (μ,λ) and (μ+λ) evolution with swap mutation and a self-adapted strength.

    Each generation makes ``offspring`` children, each a copy of a parent
    with ``1 + Poisson(σ - 1)`` swaps (flips under the ``"free"`` rule), and
    evaluates them on a fresh batch — with the parents under ``"1+lambda"``
    and ``"mu+lambda"``, so incumbents are always compared on the same batch.

    - ``"1+lambda"``: one parent. The strength follows the 1/5th success
      rule: ``σ ← σ · adapt ** ((s - 1/5) / (4/5))`` with ``s`` the fraction
      of children better than the parent, so σ grows while more than a fifth
      of the children improve and shrinks otherwise. With ``confirm`` (the
      default) the best child does not replace the parent at once: if it
      beats the parent it becomes the *challenger*, evaluated with the next
      generation on the next batch, and replaces the parent only if it beats
      it there too. Without ``confirm`` the best child replaces the parent
      as soon as its loss is lower.
    - ``"mu,lambda"`` / ``"mu+lambda"``: ``parents`` parents, each with its own
      strength; a child inherits its parent's σ times ``exp(tau · N(0, 1))``
      (log-normal self-adaptation), and the ``parents`` best children (and,
      with ``+``, parents) survive with their σ.

    σ is kept in ``[1, max_mutation]``.

    Parameters
    ----------
    strategy : {"1+lambda", "mu,lambda", "mu+lambda"}
    offspring : int
        λ, children per generation.
    parents : int
        μ, survivors per generation (``"mu,lambda"`` and ``"mu+lambda"``).
    mutation : float
        Initial σ, the mean swaps per child.
    adapt : float
        Step factor of the 1/5th success rule (> 1).
    tau : float
        Learning rate of the log-normal self-adaptation.
    max_mutation : float, optional
        Cap on σ (default: 1 % of the weights, at least 1).
    confirm : bool
        ``"1+lambda"`` only: a child must beat the parent on a second,
        independent batch before it replaces it (see above). The best of
        λ children on one batch is partly the luckiest: on Fashion-MNIST at
        batch 256, once progress slows, about 45 % of the children that
        won a generation were worse than their parent on fresh data, and
        the search went on swapping without improving. Confirmation costs
        one more mask per generation and no extra backend call.

    Notes
    -----
    ``"mu,lambda"`` and ``"mu+lambda"`` select on one batch; ``confirm``
    does not apply to them.
    """

    name = "evolution"
    summary = "(1+λ), (μ,λ), (μ+λ) evolution with swap mutation and self-adapted strength"
    _parameter_constraints = {
        "strategy": Choice(STRATEGIES),
        "offspring": Integer(1, MAX_POPULATION),
        "parents": Integer(1, MAX_POPULATION),
        "mutation": Real(0, MAX_COUNT),
        "adapt": Real(1, MAX_SCALE),
        "tau": Real(0, MAX_SCALE, closed="both"),
        "max_mutation": Real(0, MAX_COUNT, optional=True),
        "confirm": Flag(),
    }

    def __init__(
        self,
        strategy: str = "1+lambda",
        offspring: int = 16,
        parents: int = 4,
        mutation: float = 4.0,
        adapt: float = 1.5,
        tau: float = 0.3,
        max_mutation: float | None = None,
        confirm: bool = True,
    ) -> None:
        self.strategy = strategy
        self.offspring = offspring
        self.parents = parents
        self.mutation = mutation
        self.adapt = adapt
        self.tau = tau
        self.max_mutation = max_mutation
        self.confirm = confirm

    def _check_relations(self) -> None:
        mu, lam = int(self.parents), int(self.offspring)
        if self.strategy == "mu,lambda" and mu > lam:
            raise PrunetrainError(f"parents must be <= offspring for mu,lambda, got {mu} > {lam}")

    def setup(self, problem, rng, init_mask=None) -> None:
        super().setup(problem, rng, init_mask)
        mu = 1 if self.strategy == "1+lambda" else int(self.parents)
        cap = self.max_mutation
        self.cap = float(cap) if cap is not None else max(1.0, 0.01 * self.layout.n)
        sigma0 = min(max(float(self.mutation), 1.0), self.cap)
        self.parent_rows = self.start_rows(mu, sigma0)
        self.sigma = np.full(mu, sigma0)
        self.challenger: np.ndarray | None = None

    def step(self) -> None:
        if self.strategy == "1+lambda" and self.confirm:
            self._step_confirmed()
            return
        rng, lam = self.rng, int(self.offspring)
        mu = len(self.parent_rows)
        pick = rng.integers(0, mu, lam) if mu > 1 else np.zeros(lam, dtype=np.int64)
        sigma = self.sigma[pick]
        if self.strategy != "1+lambda":
            sigma = np.clip(
                sigma * np.exp(float(self.tau) * rng.standard_normal(lam)), 1.0, self.cap
            )
        children = self.parent_rows[pick]
        self.mutate(children, poisson_at_least_one(rng, sigma))
        if self.strategy == "mu,lambda":
            rows, sigmas = children, sigma
        else:
            rows = np.concatenate([self.parent_rows, children])
            sigmas = np.concatenate([self.sigma, sigma])
        loss = self.evaluate(rows)
        self.remember(rows, loss)
        if self.strategy == "1+lambda":
            self._one_fifth_rule(loss[1:], loss[0])
            best = int(np.argmin(loss))  # the parent (index 0) wins ties
            self.parent_rows = rows[best : best + 1].copy()
        else:
            keep = np.argsort(loss, kind="stable")[:mu]
            self.parent_rows, self.sigma = rows[keep], sigmas[keep]

    def _one_fifth_rule(self, children_loss: np.ndarray, parent_loss: float) -> None:
        """``σ ← σ · adapt ** ((s - 1/5) / (4/5))``, ``s`` the fraction of children that beat the parent."""
        success = float(np.mean(children_loss < parent_loss))
        self.sigma = np.clip(
            self.sigma * float(self.adapt) ** ((success - 0.2) / 0.8), 1.0, self.cap
        )

    def _step_confirmed(self) -> None:
        """(1+λ) where a winning child must beat the parent again on the next batch."""
        lam = int(self.offspring)
        children = np.repeat(self.parent_rows, lam, axis=0)
        self.mutate(children, poisson_at_least_one(self.rng, np.full(lam, self.sigma[0])))
        head = [self.parent_rows]
        if self.challenger is not None:
            head.append(self.challenger[None])
        rows = np.concatenate(head + [children])
        loss = self.evaluate(rows)
        h = len(head)
        self._one_fifth_rule(loss[h:], loss[0])
        parent_loss = float(loss[0])
        if h == 2 and loss[1] < loss[0]:  # confirmed on a batch it was not chosen on
            self.parent_rows, parent_loss = rows[1:2].copy(), float(loss[1])
        best = h + int(np.argmin(loss[h:]))
        self.challenger = rows[best].copy() if loss[best] < parent_loss else None
        # Recommend the parent: every replacement of it has been confirmed.
        self.best_row, self.best_loss = self.parent_rows[0].copy(), parent_loss
