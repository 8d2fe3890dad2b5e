"""One searcher's mask as another's start: e.g. a Hebbian rule, then local search."""

from __future__ import annotations

from prunetrain.hyperparams import Named, Real
from prunetrain.masks import Mask
from prunetrain.search.base import SEARCHERS, BudgetView, Searcher, make_searcher, register

#: A stage: any searcher but a pipeline, by name or as a searcher.
STAGE = Named(SEARCHERS, Searcher, "searcher", exclude=("pipeline",))


@register
class Pipeline(Searcher):
    """Run ``first`` until it finishes or has used ``share`` of the budget, then ``then``
    from ``first``'s recommended mask, within the one run loop and budget.

    ``prunetrain search --init-mask hebbian-reward`` builds one of these around
    the chosen method.

    Parameters
    ----------
    first, then : str or Searcher
        The two stages: searcher names (built with their defaults) or searchers, other
        than pipelines.
    share : float
        Most of the budget the first stage may use, in (0, 1).

    Examples
    --------
    >>> Pipeline(first="hebbian-label", then="accumulate", share=0.2)
    Pipeline(first='hebbian-label', then='accumulate', share=0.2)
    """

    name = "pipeline"
    summary = "one searcher's mask as the start of another (e.g. Hebbian init, then local search)"
    _parameter_constraints = {"first": STAGE, "then": STAGE, "share": Real(0, 1, closed="neither")}

    def __init__(
        self,
        first: str | Searcher = "hebbian-reward",
        then: str | Searcher = "accumulate",
        share: float = 0.25,
    ) -> None:
        self.first = first
        self.then = then
        self.share = share

    def setup(self, problem, rng, init_mask: Mask | None = None) -> None:
        super().setup(problem, rng, init_mask)
        self.stages = [self._build(self.first), self._build(self.then)]
        first = self.stages[0]
        first.budget_view = StageBudget(self, 0.0, float(self.share))
        first.setup(problem, rng, init_mask)
        self.current = first
        self.switched_at: float | None = None

    @property
    def preferred_batch_size(self) -> int:  # type: ignore[override]
        """The second stage's: it has most of the budget."""
        return self._build(self.then).preferred_batch_size

    @staticmethod
    def _build(stage: str | Searcher) -> Searcher:
        return stage if isinstance(stage, Searcher) else make_searcher(stage)

    def get_params(self) -> dict:
        """Hyperparameters, JSON-ready: a stage given as a searcher becomes its name and params."""
        params = super().get_params()
        for key in ("first", "then"):
            stage = params[key]
            if isinstance(stage, Searcher):
                params[key] = {"method": stage.name, "params": stage.get_params()}
        return params

    def step(self) -> None:
        first, then = self.stages
        if self.current is first and (first.finished or self.budget_used() >= self.share):
            start = [m.copy() for m in first.recommend()[0]]
            at = self.switched_at = self.budget_used()
            then.budget_view = StageBudget(self, at, 1.0 - at)
            then.setup(self.problem, self.rng, start)
            self.current = then
        self.current.step()
        self.finished = self.current is then and then.finished

    def recommend(self) -> tuple[Mask, float]:
        return self.current.recommend()


class StageBudget:
    """A stage's view of the budget (its :attr:`~prunetrain.search.base.Searcher.budget_view`):
    the fraction of its share ``[start, start + share)`` of the pipeline's budget spent so far.
    An object of a registered class, not a closure, so a checkpoint can store it.

    Examples
    --------
    >>> class Half:
    ...     def budget_used(self):
    ...         return 0.5
    >>> StageBudget(Half(), 0.25, 0.5).budget_used()
    0.5
    """

    def __init__(self, pipeline: BudgetView, start: float, share: float) -> None:
        self.pipeline, self.start, self.share = pipeline, start, share

    def budget_used(self) -> float:
        return min(1.0, (self.pipeline.budget_used() - self.start) / max(self.share, 1e-12))
