import pickle

import numpy as np
import pytest

from prunetrain.errors import PrunetrainError
from prunetrain.masks import KeepRule
from prunetrain.network import FrozenNetwork, NetworkSpec
from prunetrain.problem import Problem
from prunetrain.search import SEARCHERS, Searcher, make_searcher, run


def make_problem(digits, seed=0):
    net = FrozenNetwork(NetworkSpec((64, 32, 10)), 1)
    return Problem(net, digits, KeepRule(0.5), backend="numpy", batch_size=256, seed=seed)


def test_registry_and_params():
    assert "random" in SEARCHERS
    s = make_searcher("random", population=8)
    assert s.get_params() == {"population": 8}
    with pytest.raises(PrunetrainError, match="unknown method 'sgd'"):
        make_searcher("sgd")
    with pytest.raises(PrunetrainError, match="takes no option lr; its options are population"):
        make_searcher("random", lr=0.1)


def test_random_search_beats_its_first_mask_and_obeys_keep(digits):
    p = make_problem(digits)
    result = run(p, make_searcher("random", population=16), "400evals", seed=0)
    assert KeepRule(0.5).satisfied_by(result.mask)
    assert result.evaluations >= 400 and result.stopped_by == "budget"
    first = result.history[0]
    assert first["evaluations"] == 0 and first["train_loss"] is None
    assert result.val_accuracy == max(r["val_accuracy"] for r in result.history)
    assert result.val_accuracy >= first["val_accuracy"]
    # The returned mask really has the reported validation accuracy.
    assert p.validate(result.mask)[1] == result.val_accuracy


def test_time_budget_is_reproduced_by_its_evaluation_count(digits):
    timed = run(make_problem(digits), make_searcher("random", population=8), "0.5s", seed=2)
    assert timed.seconds >= 0.5
    counted = run(
        make_problem(digits),
        make_searcher("random", population=8),
        f"{int(timed.evaluations)}evals",
        seed=2,
    )
    assert counted.evaluations == timed.evaluations
    for x, y in zip(timed.mask, counted.mask):
        np.testing.assert_array_equal(x, y)


class Stuck(Searcher):
    """Never changes its mask: validation never improves."""

    name = "stuck-test"

    def setup(self, problem, rng, init_mask=None):
        super().setup(problem, rng, init_mask)
        self.mask = init_mask if init_mask is not None else problem.random_mask(rng)

    def step(self):
        self.problem.evaluate([self.mask])

    def recommend(self):
        return self.mask, 1.0


def test_early_stopping(digits):
    p = make_problem(digits)
    result = run(p, Stuck(), "100000evals", patience=3, validation_interval=1)
    assert result.stopped_by == "early_stopping"
    assert len(result.history) == 4  # the first, then three without improvement
    with pytest.raises(PrunetrainError, match="patience"):
        run(p, Stuck(), "10evals", patience=0)


def test_warm_start_and_callbacks(digits):
    p = make_problem(digits)
    start = p.random_mask(np.random.default_rng(9))
    seen = []
    result = run(
        p,
        Stuck(),
        "50evals",
        init_mask=start,
        validation_interval=1,
        callbacks=[lambda row, mask: seen.append(row) or len(seen) >= 2],
    )
    assert result.stopped_by == "callback" and len(seen) == 2
    for x, y in zip(result.mask, start):
        np.testing.assert_array_equal(x, y)


class Interrupted(Stuck):
    name = "interrupted-test"

    def step(self):
        super().step()
        if self.problem.n_evaluations >= 5:
            raise KeyboardInterrupt


def test_ctrl_c_returns_the_best_so_far(digits):
    result = run(make_problem(digits), Interrupted(), "1000evals", validation_interval=1)
    assert result.interrupted and result.stopped_by == "interrupted"
    assert result.evaluations == 5
    assert len(result.mask) == 2


class Done(Stuck):
    name = "done-test"

    def step(self):
        super().step()
        self.finished = self.problem.n_evaluations >= 3


def test_searcher_may_finish_early(digits):
    result = run(make_problem(digits), Done(), "1000evals")
    assert result.stopped_by == "finished" and result.evaluations == 3


def test_time_budget_overshoot_is_recorded(digits):
    result = run(make_problem(digits), make_searcher("random", population=8), "0.3s", seed=0)
    assert result.stopped_by == "budget"
    # Measured when the loop stopped stepping, before the final validation.
    assert 0.0 <= result.budget_overshoot <= result.seconds - 0.3
    assert result.budget_overshoot < result.last_step


class Metered(Stuck):
    """Records what its budget meter says at every step."""

    name = "metered-test"

    def setup(self, problem, rng, init_mask=None):
        super().setup(problem, rng, init_mask)
        self.readings = []

    def step(self):
        self.readings.append((self.budget_used(), self.problem.evaluations_used()))
        super().step()


def test_a_searcher_reads_the_budget_from_the_problem(digits):
    searcher = Metered()
    assert searcher.budget_used() == 0.0  # not bound yet
    p = make_problem(digits)
    result = run(p, searcher, "20evals")
    assert searcher.readings == [(used / 20, used) for used in range(20)]
    assert p.budget_used() == 1.0 and result.evaluations == 20
    assert "budget_used" not in vars(searcher)  # nothing written into the searcher


def test_a_pipeline_stage_reads_its_share_of_the_budget(digits):
    from prunetrain.search.pipeline import Pipeline, StageBudget

    first, then = Metered(), Metered()
    pipeline = Pipeline(first=first, then=then, share=0.25)
    run(make_problem(digits), pipeline, "40evals")
    assert pipeline.switched_at == 0.25
    assert isinstance(then.budget_view, StageBudget) and then.budget_view.pipeline is pipeline
    # The first stage's fraction runs over its quarter, the second's over the rest.
    assert [f for f, _ in first.readings] == pytest.approx([used / 10 for used in range(10)])
    assert [f for f, _ in then.readings] == pytest.approx([k / 30 for k in range(30)])
    # A view is a plain object: a checkpoint pickles it with the pipeline.
    view = pickle.loads(pickle.dumps(StageBudget(Fraction(0.5), 0.25, 0.5)))
    assert view.budget_used() == 0.5


class Fraction:
    def __init__(self, used):
        self.used = used

    def budget_used(self):
        return self.used
