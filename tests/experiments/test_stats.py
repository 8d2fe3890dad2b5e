import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata

from prunetrain.experiments.stats import (
    AccuracyAt,
    accuracy_at,
    ci95,
    forward_cost,
    median_or_none,
    min_wilcoxon_p,
    paired_difference,
    pareto_front,
    time_to_target,
    wilcoxon_p,
)

#: Student's t 0.975 quantile with 2 degrees of freedom (statistical tables: 4.3027).
T_975_2 = 4.302652729911275


def brute_force_wilcoxon(d):
    """Two-sided p of the signed-rank statistic over all 2**n sign flips (zeros dropped)."""
    d = np.asarray([x for x in d if x != 0], dtype=float)
    ranks = rankdata(np.abs(d))
    observed = ranks[d > 0].sum()
    centre = ranks.sum() / 2
    flips = [
        sum(r for r, s in zip(ranks, signs) if s)
        for signs in itertools.product([0, 1], repeat=len(d))
    ]
    return np.mean([abs(w - centre) >= abs(observed - centre) - 1e-9 for w in flips])


def test_paired_interval_has_the_t_half_width():
    a = {0: 0.80, 1: 0.82, 2: 0.87}
    b = {0: 0.70, 1: 0.75, 2: 0.74, 7: 0.1}  # seed 7 has no partner: not a pair
    d = paired_difference(a, b, "a", "b")
    assert d.seeds == [0, 1, 2] and d.n == 3
    assert d.differences == pytest.approx([0.10, 0.07, 0.13])
    assert d.mean == pytest.approx(0.10)
    half = T_975_2 * 0.03 / math.sqrt(3)  # sd of (0.10, 0.07, 0.13) is 0.03
    assert d.ci_low == pytest.approx(0.10 - half, rel=1e-6)
    assert d.ci_high == pytest.approx(0.10 + half, rel=1e-6)
    assert d.p == 0.25 and d.p_method == "exact" and d.min_p == 0.25
    assert ci95([0.10, 0.07, 0.13]) == pytest.approx(half, rel=1e-6)


def test_paired_difference_with_one_or_no_pairs():
    one = paired_difference({0: 0.9}, {0: 0.8})
    assert one.mean == pytest.approx(0.1) and one.ci_low is None and one.ci_high is None
    assert one.p == 1.0  # one pair: the exact test has nothing to tell
    none = paired_difference({0: 0.9}, {1: 0.8})
    assert (none.n, none.mean, none.p, none.p_method) == (0, None, None, "no pairs")


@pytest.mark.parametrize(
    ("d", "p", "method"),
    [
        ([0.01, 0.02, 0.03], 0.25, "exact"),  # 2 / 2**3
        ([-0.01, -0.02, -0.03, -0.04, -0.05, -0.06], 0.03125, "exact"),  # 2 / 2**6
        ([0.01, -0.02, 0.03, 0.04, 0.05], 6 / 32, "exact"),  # W- = 2: {}, {1}, {2}
        ([0.01, -0.01, 0.03, 0.04, 0.05], 6 / 32, "exact (all sign flips; ties)"),
        ([0.0, 0.01, 0.02, 0.03], 0.25, "exact"),  # the zero is dropped: three pairs
        ([0.0, 0.0], 1.0, "all differences zero"),
        ([], None, "no pairs"),
    ],
)
def test_wilcoxon_known_values(d, p, method):
    got, how = wilcoxon_p(d)
    assert how == method
    assert got == (None if p is None else pytest.approx(p))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-4, 4), min_size=1, max_size=9))
def test_wilcoxon_matches_enumerating_every_sign_flip(values):
    d = [v / 100 for v in values]  # accuracy gaps: many ties and zeros
    p, _ = wilcoxon_p(d)
    if not any(d):
        assert p == 1.0
    else:
        assert p == pytest.approx(brute_force_wilcoxon(d), abs=1e-9)


def test_fewer_than_six_pairs_cannot_reach_five_percent():
    assert [min_wilcoxon_p(n) for n in range(1, 7)] == [1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125]
    assert all(wilcoxon_p(np.arange(1, n + 1) / 100)[0] == min_wilcoxon_p(n) for n in range(1, 7))


def test_time_to_target_reads_the_first_row_at_the_target():
    rows = [
        {"seconds": 0.0, "sample_forwards": 0, "test_accuracy": None},
        {"seconds": 1.0, "sample_forwards": 500, "test_accuracy": 0.6},
        {"seconds": 2.5, "sample_forwards": 1200, "test_accuracy": 0.85},
        {"seconds": 4.0, "sample_forwards": 2000, "test_accuracy": 0.80},
    ]
    hit = time_to_target(rows, 0.8)
    assert (hit.seconds, hit.sample_forwards, hit.reached) == (2.5, 1200.0, True)
    assert time_to_target(rows, 0.6).seconds == 1.0  # "at least": equal counts
    # A gradient step's backward pass counts as two forwards.
    assert time_to_target(rows, 0.8, "gradient").sample_forwards == 3600.0
    miss = time_to_target(rows, 0.9)
    assert (miss.seconds, miss.sample_forwards, miss.reached) == (None, None, False)
    assert forward_cost(10, "data-free") == 10.0


def test_median_counts_not_reached_as_never():
    assert median_or_none([3.0, 1.0, 2.0]) == 2.0
    assert median_or_none([3.0, None, 1.0]) == 3.0
    assert median_or_none([None, None, 1.0]) is None
    assert median_or_none([1.0, None]) is None  # median of (1, inf) is inf


def test_pareto_front_known_answer():
    #            A    B    C    D    E    F (= B)
    costs = [1.0, 2.0, 3.0, 4.0, 0.5, 2.0]
    accs = [0.5, 0.8, 0.7, 0.9, 0.1, 0.8]
    # C is dominated by B (cheaper and better); equal points (B, F) do not dominate each other.
    assert pareto_front(costs, accs) == [True, True, False, True, True, True]
    assert pareto_front([], []) == []


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=12))
def test_pareto_front_is_exactly_the_undominated_points(points):
    costs = [float(c) for c, _ in points]
    accs = [a / 6 for _, a in points]
    front = pareto_front(costs, accs)

    def dominates(j, i):
        return (
            costs[j] <= costs[i]
            and accs[j] >= accs[i]
            and (costs[j] < costs[i] or accs[j] > accs[i])
        )

    for i, on in enumerate(front):
        assert on == (not any(dominates(j, i) for j in range(len(points))))
    assert any(front)
    best = max(accs)
    assert any(on and accs[i] == best for i, on in enumerate(front))


def test_accuracy_at_reads_the_last_point_at_or_before_the_time():
    rows = [
        {"seconds": 1.0, "test_accuracy": 0.2},
        {"seconds": 2.0},  # a row without a test accuracy keeps the previous one
        {"seconds": 4.0, "test_accuracy": 0.6},
        {"seconds": 6.0, "test_accuracy": 0.7},
    ]
    at = [accuracy_at(rows, t, ended=6.5, final=0.75) for t in (0.5, 1.0, 3.0, 4.0, 6.0)]
    assert at == [
        AccuracyAt(None, False),
        AccuracyAt(0.2, False),
        AccuracyAt(0.2, False),
        AccuracyAt(0.6, False),
        AccuracyAt(0.7, False),  # its last point, but the run is still going (ends at 6.5 s)
    ]
    # From the moment it ended, its final accuracy, marked finished.
    assert accuracy_at(rows, 6.5, ended=6.5, final=0.75) == AccuracyAt(0.75, True)
    assert accuracy_at(rows, 100.0, ended=6.5, final=0.75) == AccuracyAt(0.75, True)
    # A curve recorded past the run's wall time: it has not ended before its last point.
    assert accuracy_at(rows, 5.5, ended=5.0, final=0.7) == AccuracyAt(0.6, False)
    assert accuracy_at([], 1.0, ended=2.0, final=0.5) == AccuracyAt(None, False)
    assert accuracy_at([], 3.0, ended=2.0, final=0.5) == AccuracyAt(0.5, True)
