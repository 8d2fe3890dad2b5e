import numpy as np
import pytest

from prunetrain.errors import PrunetrainError
from prunetrain.masks import KeepRule
from prunetrain.network import FrozenNetwork, NetworkSpec
from prunetrain.objective import MAX_EVALUATIONS, MAX_SECONDS, Budget, Problem


@pytest.mark.parametrize(
    "text, seconds, evals",
    [
        ("30s", 30.0, None),
        ("10m", 600.0, None),
        ("1h", 3600.0, None),
        ("1.5h", 5400.0, None),
        ("20000evals", None, 20000),
        ("1eval", None, 1),
        (" 5 S ", 5.0, None),
        (12, 12.0, None),
        (0.5, 0.5, None),
    ],
)
def test_budget_parse(text, seconds, evals):
    b = Budget.parse(text)
    assert (b.seconds, b.evaluations) == (seconds, evals)
    assert Budget.parse(str(b)) == b


@pytest.mark.parametrize(
    "bad", ["", "10", "10x", "-5s", "0s", "0evals", "1.5evals", "ten minutes", 0, -1]
)
def test_budget_rejects(bad):
    with pytest.raises(PrunetrainError):
        Budget.parse(bad)


def test_budget_fraction():
    assert Budget.parse("100evals").fraction_used(25, 999) == 0.25
    assert Budget.parse("10s").fraction_used(10**9, 5) == 0.5
    assert Budget.parse("10s").fraction_used(0, 50) == 1.0


def make_problem(digits, **kw):
    net = FrozenNetwork(NetworkSpec((64, 16, 10)), 0)
    return Problem(net, digits, KeepRule(0.5), backend="numpy", **kw)


def test_problem_never_holds_the_test_split(digits):
    p = make_problem(digits)
    held = {id(getattr(p, k)) for k in vars(p)}
    assert not hasattr(p, "data")
    assert p.n_train == len(digits.y_train) and p.n_val == len(digits.y_val)
    assert id(digits.X_test) not in held
    # No attribute of the problem contains a test row.
    test_rows = {r.tobytes() for r in digits.X_test[:20]}
    train_rows = {r.tobytes() for r in p.X_train} | {r.tobytes() for r in p.X_val}
    assert not test_rows & train_rows


def test_rotating_batches_cover_each_epoch(digits):
    p = make_problem(digits, batch_size=100, seed=3)
    per_epoch = p.n_train // 100
    seen = [p.batch.index] + [p.next_batch().index for _ in range(per_epoch - 1)]
    flat = np.concatenate(seen)
    assert len(flat) == len(set(flat.tolist())) == per_epoch * 100  # no repeats within an epoch
    nxt = p.next_batch()
    assert nxt.number == per_epoch
    np.testing.assert_array_equal(p.batch.X, digits.X_train[nxt.index])
    # Same seed, same order; another seed, another order.
    q = make_problem(digits, batch_size=100, seed=3)
    np.testing.assert_array_equal(q.batch.index, seen[0])
    r = make_problem(digits, batch_size=100, seed=4)
    assert not np.array_equal(r.batch.index, seen[0])


def test_fixed_and_full_schedules(digits):
    fixed = make_problem(digits, batch_size=50, schedule="fixed")
    first = fixed.batch.index.copy()
    np.testing.assert_array_equal(fixed.next_batch().index, first)
    assert len(first) == 50
    full = make_problem(digits, batch_size=None)
    assert full.schedule == "full" and len(full.batch) == full.n_train
    big = make_problem(digits, batch_size=10**6)
    assert big.schedule == "full"


def test_evaluate_charges_the_budget(digits):
    p = make_problem(digits, batch_size=64)
    rng = np.random.default_rng(0)
    masks = [p.random_mask(rng) for _ in range(3)]
    loss, acc = p.evaluate(masks)
    assert loss.shape == acc.shape == (3,)
    assert p.n_evaluations == 3 and p.n_sample_forwards == 3 * 64
    p.charge(0.5, 32)
    assert p.n_evaluations == 3.5
    p.validate(masks[0])
    assert p.n_evaluations == 3.5 and p.n_validations == 1


def test_problem_errors(digits):
    net = FrozenNetwork(NetworkSpec((30, 10)), 0)
    with pytest.raises(PrunetrainError, match="64 features but the network's input size is 30"):
        Problem(net, digits)
    net = FrozenNetwork(NetworkSpec((64, 5)), 0)
    with pytest.raises(PrunetrainError, match="10 classes but the network has 5 outputs"):
        Problem(net, digits)
    with pytest.raises(PrunetrainError, match="schedule"):
        make_problem(digits, schedule="epochs")
    with pytest.raises(PrunetrainError, match="batch size"):
        make_problem(digits, batch_size=0)


@pytest.mark.parametrize(
    "bad",
    ["1e400evals", "1e400s", "1e300s", "1e20evals", "2e7h", float("inf"), float("nan"), 1e300],
)
def test_budgets_out_of_range_are_refused_with_one_error(bad):
    with pytest.raises(PrunetrainError, match="budget") as e:
        Budget.parse(bad)
    assert "at most" in str(e.value) or "finite" in str(e.value)


def test_budget_limits_are_inclusive():
    assert Budget.parse(f"{MAX_EVALUATIONS}evals").evaluations == MAX_EVALUATIONS
    assert Budget.parse(MAX_SECONDS).seconds == MAX_SECONDS
    with pytest.raises(PrunetrainError):
        Budget(seconds=float("inf"))
    with pytest.raises(PrunetrainError):
        Budget(evaluations=2.5)
