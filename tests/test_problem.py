import numpy as np
import pytest

from prunetrain.backends.flips import flip_cost
from prunetrain.errors import PrunetrainError
from prunetrain.masks import KeepRule
from prunetrain.network import FrozenNetwork, NetworkSpec
from prunetrain.problem import MAX_EVALUATIONS, MAX_SECONDS, Budget, FlipSession, Problem


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


def test_the_problem_owns_the_budget_of_a_run(digits):
    p = make_problem(digits, batch_size=64)
    rng = np.random.default_rng(0)
    masks = [p.random_mask(rng) for _ in range(4)]
    assert p.budget is None and p.budget_used() == 0.0  # no run yet
    p.evaluate(masks[:1])  # before the run: not the run's
    now = [10.0]
    p.start(Budget.parse("10evals"), clock=lambda: now[0])
    assert p.budget == Budget(evaluations=10) and p.budget_used() == 0.0
    p.evaluate(masks[:3])
    assert p.evaluations_used() == 3 and p.sample_forwards_used() == 3 * 64
    assert p.budget_used() == 0.3
    now[0] = 12.5
    assert p.seconds_used() == 2.5
    p.evaluate(masks * 3)
    assert p.budget_used() == 1.0  # never more
    # A checkpoint carries the run's usage: the continued run starts where it was.
    state = p.get_state()
    q = make_problem(digits, batch_size=64)
    q.start(Budget.parse("20evals"), clock=lambda: 100.0)
    q.set_state(state)
    assert q.evaluations_used() == 15 and q.sample_forwards_used() == 15 * 64
    assert q.budget_used() == 0.75 and q.seconds_used() == 2.5


def test_a_time_budget_is_read_on_the_clock(digits):
    p = make_problem(digits)
    now = [0.0]
    p.start(Budget(seconds=4.0), clock=lambda: now[0])
    p.evaluate([p.random_mask(np.random.default_rng(0))])
    now[0] = 1.0
    assert p.budget_used() == 0.25 and p.evaluations_used() == 1


@pytest.mark.parametrize("rule", ["layer", "free"])
def test_a_flip_session_charges_exactly_its_cost(digits, rule):
    p = Problem(
        FrozenNetwork(NetworkSpec((64, 16, 10)), 0), digits, KeepRule(0.5, rule),
        backend="numpy", batch_size=64,
    )  # fmt: skip
    mask = p.random_mask(np.random.default_rng(1))
    expected = 1.0  # building the caches: one forward pass

    def charged():
        assert p.n_sample_forwards == pytest.approx(expected * 64, rel=1e-12)
        return p.n_evaluations

    session = p.flip_session(mask)
    assert isinstance(session, FlipSession) and charged() == expected
    assert session.loss == pytest.approx(p.evaluate([mask])[0][0], rel=1e-5)
    expected += 1
    rows, cols = np.array([0, 1, 2]), np.array([3, 4, 5])
    g = session.gains(0, rows, cols)
    expected += 3 * flip_cost(p.shapes, 0)
    assert len(g) == 3 and charged() == pytest.approx(expected)
    session.gains(1, rows, cols, rows2=np.array([6, 7, 8]))  # swaps cost two flips
    expected += 3 * 2 * flip_cost(p.shapes, 1)
    assert charged() == pytest.approx(expected)
    # Tried in order up to the first accepted move: only those are charged.
    g, k = session.first_accepted(0, rows, cols, accept=lambda g: np.arange(len(g)) >= 1)
    expected += 2 * flip_cost(p.shapes, 0)
    assert k == 1 and charged() == pytest.approx(expected)
    g, k = session.first_accepted(0, rows, cols, accept=lambda g: np.zeros(len(g), bool))
    expected += 3 * flip_cost(p.shapes, 0)
    assert k is None and charged() == pytest.approx(expected)
    # Flipping costs a forward pass from the flipped layer on; nothing to flip, nothing.
    session.apply(1, np.array([0]), np.array([0]))
    expected += 160 / (64 * 16 + 160)
    assert charged() == pytest.approx(expected)
    assert session.mask[1][0, 0] != mask[1][0, 0]
    session.apply(0, np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    assert charged() == pytest.approx(expected)


def test_a_screening_flip_session_charges_the_screen_with_the_caches(digits):
    from prunetrain.backends.screen import screen_cost

    p = make_problem(digits, batch_size=32)
    session = p.flip_session(p.random_mask(np.random.default_rng(2)), screen=0.05)
    assert [g.shape for g in session.screened] == p.shapes
    assert p.n_evaluations == 1.0 + screen_cost(p.shapes)
    assert p.n_sample_forwards == (1.0 + screen_cost(p.shapes)) * 32


def test_charge_forward_charges_a_share_of_a_pass_per_layer(digits):
    p = make_problem(digits, batch_size=32)
    p.charge_forward(10)
    assert (p.n_evaluations, p.n_sample_forwards) == (1.0, 10.0)
    p.charge_forward(10, from_layer=1, passes=2)
    assert p.n_evaluations == 1.0 + 2 * 160 / (64 * 16 + 160)


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
