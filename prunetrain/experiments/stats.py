"""Statistics of a comparison: paired differences, time-to-target, equal-time accuracy, Pareto.

Runs with the same seed on the same dataset, architecture, keep and init share
the frozen network and the data splits, so two methods are compared on their
*paired* differences, seed by seed: the mean difference with a Student's t
95 % interval, and a two-sided Wilcoxon signed-rank p-value (scipy.stats).
With few seeds the Wilcoxon test is exact and coarse: with n pairs it cannot
give a p-value below ``2 ** (1 - n)`` (0.25 for three seeds), see
:func:`min_wilcoxon_p`.

Costs: a search's ``sample_forwards`` counts every sample it pushed through
the network (or its exact equivalent, for incremental flip gains); a gradient
step forwards each sample of its batch once and back-propagates it once, and
the backward pass is counted as two forward passes (:data:`BACKWARD_FORWARDS`),
so a gradient baseline costs three forward-equivalents per sample it trained on.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

#: A backward pass through the network costs this many forward passes.
BACKWARD_FORWARDS = 2

#: Below this many pairs the exact two-sided Wilcoxon test cannot reach p < 0.05.
WILCOXON_MIN_PAIRS = 6

#: Pairs up to which, with ties or zero differences, the Wilcoxon p-value comes from
#: enumerating all 2**n sign flips (scipy's permutation method) instead of the normal
#: approximation.
WILCOXON_PERMUTATION_MAX = 13


def ci95(values: Sequence[float]) -> float | None:
    """Half-width of the 95 % confidence interval of the mean (Student's t); None for one value.

    Examples
    --------
    >>> round(ci95([0.8, 0.9, 1.0]), 4)
    0.2484
    """
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n < 2:
        return None
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n))


def min_wilcoxon_p(n: int) -> float:
    """The smallest two-sided p-value an exact Wilcoxon signed-rank test of ``n`` pairs can give.

    All ``n`` differences of one sign: ``2 / 2**n``. Ties or zero differences
    only make it larger.

    Examples
    --------
    >>> [min_wilcoxon_p(n) for n in (1, 3, 5, 6)]
    [1.0, 0.25, 0.0625, 0.03125]
    """
    return 1.0 if n < 1 else min(1.0, 2.0 ** (1 - n))


def wilcoxon_p(differences: Sequence[float]) -> tuple[float | None, str]:
    """Two-sided Wilcoxon signed-rank p-value of paired ``differences``, and how it was computed.

    Zero differences are dropped (Wilcoxon's own rule). Without ties among
    the rest the p-value is exact (scipy's ``method="exact"``); with ties, up
    to :data:`WILCOXON_PERMUTATION_MAX` pairs it is still exact, by
    enumerating every sign flip; beyond, the normal approximation. Returns
    ``(None, "no pairs")`` without pairs and ``(1.0, "all differences zero")``
    when every difference is zero.

    Examples
    --------
    >>> wilcoxon_p([0.01, 0.02, 0.03])
    (0.25, 'exact')
    >>> wilcoxon_p([0.01, -0.02, 0.03, 0.04, 0.05])
    (0.1875, 'exact')
    """
    from scipy import stats

    d = np.asarray(differences, dtype=float)
    if len(d) == 0:
        return None, "no pairs"
    nonzero = d[d != 0]
    if len(nonzero) == 0:
        return 1.0, "all differences zero"
    ties = len(np.unique(np.abs(nonzero))) < len(nonzero)
    if not ties:
        method, name = "exact", "exact"
    elif len(nonzero) <= WILCOXON_PERMUTATION_MAX:
        method = stats.PermutationMethod(n_resamples=2 ** len(nonzero))
        name = "exact (all sign flips; ties)"
    else:
        method, name = "asymptotic", "normal approximation (ties)"
    result = stats.wilcoxon(nonzero, zero_method="wilcox", alternative="two-sided", method=method)
    return float(result.pvalue), name


@dataclasses.dataclass
class PairedDifference:
    """``label`` minus ``reference`` test accuracy, paired by seed.

    Attributes
    ----------
    seeds : list of int
        The seeds both have, in order; ``differences`` follows them.
    mean : float or None
        Mean paired difference (None without pairs).
    ci_low, ci_high : float or None
        Student's t 95 % interval of the mean difference (None below two pairs).
    p : float or None
        Two-sided Wilcoxon signed-rank p-value; ``p_method`` says how it was
        computed, ``min_p`` is the smallest p-value the exact test of this many
        non-zero pairs could give.
    """

    label: str
    reference: str
    seeds: list[int]
    differences: list[float]
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    p: float | None
    p_method: str
    min_p: float

    @property
    def n(self) -> int:
        return len(self.seeds)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "n": self.n}


def paired_difference(
    values: Mapping[int, float],
    reference: Mapping[int, float],
    label: str = "",
    reference_label: str = "",
) -> PairedDifference:
    """Paired difference ``values - reference`` over the seeds both have.

    Examples
    --------
    >>> d = paired_difference({0: 0.9, 1: 0.8, 2: 0.7}, {0: 0.8, 1: 0.7, 2: 0.7, 3: 0.5})
    >>> d.seeds, [round(x, 6) for x in d.differences], round(d.mean, 6), d.p
    ([0, 1, 2], [0.1, 0.1, 0.0], 0.066667, 0.5)
    """
    seeds = sorted(set(values) & set(reference))
    # Rounded so that equal accuracies give an exact zero and equal gaps exact ties.
    d = np.array([round(values[s] - reference[s], 12) for s in seeds], dtype=float)
    mean = float(d.mean()) if len(d) else None
    half = ci95(d)
    p, p_method = wilcoxon_p(d)
    return PairedDifference(
        label=label,
        reference=reference_label,
        seeds=[int(s) for s in seeds],
        differences=d.tolist(),
        mean=mean,
        ci_low=None if half is None else mean - half,
        ci_high=None if half is None else mean + half,
        p=p,
        p_method=p_method,
        min_p=min_wilcoxon_p(int(np.count_nonzero(d))),
    )


# --- costs and time-to-target ----------------------------------------------------------


def forward_cost(sample_forwards: float, kind: str) -> float:
    """Sample-forwards in forward-pass equivalents: a gradient step's backward pass counts twice.

    ``kind`` is ``"search"``, ``"gradient"`` or ``"data-free"`` (what
    :func:`prunetrain.experiments.report.kind_of` says of a record).

    Examples
    --------
    >>> forward_cost(1000, "search"), forward_cost(1000, "gradient")
    (1000.0, 3000.0)
    """
    return float(sample_forwards) * (1 + BACKWARD_FORWARDS if kind == "gradient" else 1)


@dataclasses.dataclass
class Reached:
    """When a run's recorded curve first reached a test accuracy (None: never)."""

    seconds: float | None
    sample_forwards: float | None  # forward-pass equivalents

    @property
    def reached(self) -> bool:
        return self.seconds is not None


def time_to_target(history: Iterable[Mapping], target: float, kind: str = "search") -> Reached:
    """Wall time and forward-equivalent sample-forwards at the first history row at ``target``.

    A row counts if its ``test_accuracy`` is at least ``target``. The answer
    is only as fine as the recorded rows (the validation points).

    Examples
    --------
    >>> rows = [{"seconds": 0.5, "sample_forwards": 100, "test_accuracy": 0.4},
    ...         {"seconds": 2.0, "sample_forwards": 900, "test_accuracy": 0.8}]
    >>> time_to_target(rows, 0.7, "gradient")
    Reached(seconds=2.0, sample_forwards=2700.0)
    >>> time_to_target(rows, 0.9).reached
    False
    """
    for row in history:
        acc = row.get("test_accuracy")
        if acc is not None and acc >= target:
            return Reached(float(row["seconds"]), forward_cost(row["sample_forwards"], kind))
    return Reached(None, None)


@dataclasses.dataclass
class AccuracyAt:
    """A run's test accuracy at a time of its own wall clock (None: no point recorded yet).

    ``finished`` says the run had ended by then, so ``accuracy`` is its final one.
    """

    accuracy: float | None
    finished: bool


def accuracy_at(
    history: Sequence[Mapping], seconds: float, *, ended: float, final: float
) -> AccuracyAt:
    """Test accuracy of a run ``seconds`` into its own wall time, read off its recorded curve.

    The last history row with a ``test_accuracy`` at or before ``seconds``
    (the curve the time-to-target table and the plots use: a value holds
    until the next point); None before the first. A run that had ended
    (``ended``, its wall time) at or before ``seconds`` carries its
    ``final`` test accuracy and says so: comparing at equal time, a method
    that stopped early keeps what it returned.

    Examples
    --------
    >>> rows = [{"seconds": 1.0, "test_accuracy": 0.4}, {"seconds": 3.0, "test_accuracy": 0.8}]
    >>> accuracy_at(rows, 0.5, ended=3.0, final=0.8)
    AccuracyAt(accuracy=None, finished=False)
    >>> accuracy_at(rows, 2.0, ended=3.0, final=0.8)
    AccuracyAt(accuracy=0.4, finished=False)
    >>> accuracy_at(rows, 5.0, ended=3.0, final=0.8)
    AccuracyAt(accuracy=0.8, finished=True)
    """
    ended = max([float(ended)] + [float(r["seconds"]) for r in history[-1:]])
    if ended <= seconds:
        return AccuracyAt(float(final), True)
    value = None
    for row in history:
        if float(row["seconds"]) > seconds:
            break
        if row.get("test_accuracy") is not None:
            value = float(row["test_accuracy"])
    return AccuracyAt(value, False)


def median_or_none(values: Sequence[float | None]) -> float | None:
    """Median of ``values`` with None (not reached) counted as infinite; None if that is infinite.

    Examples
    --------
    >>> median_or_none([1.0, None, 3.0]), median_or_none([1.0, None, None]), median_or_none([])
    (3.0, None, None)
    """
    if not values:
        return None
    m = float(np.median([math.inf if v is None else v for v in values]))
    return None if math.isinf(m) or math.isnan(m) else m


# --- Pareto fronts -----------------------------------------------------------------------


def pareto_front(costs: Sequence[float], accuracies: Sequence[float]) -> list[bool]:
    """Which points no other point dominates (cost no higher and accuracy no lower, one strictly).

    Examples
    --------
    >>> pareto_front([1, 2, 3, 2], [0.5, 0.8, 0.7, 0.8])
    [True, True, False, True]
    """
    c = np.asarray(costs, dtype=float)
    a = np.asarray(accuracies, dtype=float)
    out = []
    for i in range(len(c)):
        dominated = (c <= c[i]) & (a >= a[i]) & ((c < c[i]) | (a > a[i]))
        out.append(not bool(dominated.any()))
    return out
