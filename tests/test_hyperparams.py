"""`check_number` and `check_choice`: the one place hyperparameters are range-checked."""

import json
import math

import numpy as np
import pytest
from conftest import planted
from hypothesis import given
from hypothesis import strategies as st

from prunetrain.errors import PrunetrainError
from prunetrain.hyperparams import check_choice, check_number
from prunetrain.masks import KeepRule
from prunetrain.problem import Problem
from prunetrain.search import make_searcher, run
from prunetrain.search.base import SEARCHERS


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (("lr", 2, 0, 1), {}, "lr must be a finite number in (0, 1], got 2"),
        (("lr", 0.0, 0, 1), {}, "lr must be a finite number in (0, 1], got 0.0"),
        (
            ("m", 1, 0, 1),
            {"open_low": False, "open_high": True},
            "m must be a finite number in [0, 1), got 1",
        ),
        (("k", 0, 0), {"integer": True}, "k must be a whole number > 0, got 0"),
        (("k", 2.5, 0), {"integer": True}, "k must be a whole number > 0, got 2.5"),
        (("tau", -0.1, 0), {"open_low": False}, "tau must be a finite number >= 0, got -0.1"),
        (("x", 3, None, 2), {"open_high": True}, "x must be a finite number < 2, got 3"),
        (("x", "1"), {}, "x must be a finite number, got '1'"),
        (("x", None), {}, "x must be a finite number, got None"),
        (("x", True, 0), {}, "x must be a finite number > 0, got True"),
        (("x", np.True_, 0), {}, "x must be a finite number > 0, got np.True_"),
        (("x", math.nan, 0), {}, "x must be a finite number > 0, got nan"),
        (("k", math.inf, 0), {"integer": True}, "k must be a whole number > 0, got inf"),
    ],
)
def test_check_number_refuses_with_one_line(args, kwargs, message):
    with pytest.raises(PrunetrainError) as err:
        check_number(*args, **kwargs)
    assert str(err.value) == message


def test_check_number_returns_the_converted_value():
    assert check_number("k", 3.0, 0, integer=True) == 3
    assert type(check_number("k", np.int64(3), 0, integer=True)) is int
    assert type(check_number("lr", np.float32(0.5), 0, 1)) is float
    assert check_number("lr", 1, 0, 1) == 1.0  # (0, 1] includes 1
    assert check_number("tau", 0, 0, open_low=False) == 0.0
    assert check_number("cap", None, 0, optional=True) is None
    with pytest.raises(PrunetrainError, match="finite"):
        check_number("x", math.inf, 0)  # unbounded means None, which JSON can hold


@given(
    value=st.floats(allow_nan=False, allow_infinity=False, min_value=-10, max_value=10),
    low=st.integers(-5, 5),
    width=st.integers(0, 5),
    open_low=st.booleans(),
    open_high=st.booleans(),
)
def test_check_number_accepts_exactly_the_interval(value, low, width, open_low, open_high):
    high = low + width
    inside = (value > low if open_low else value >= low) and (
        value < high if open_high else value <= high
    )
    try:
        got = check_number("x", value, low, high, open_low=open_low, open_high=open_high)
    except PrunetrainError:
        assert not inside
    else:
        assert inside and got == value


def test_check_choice():
    check_choice("crossover", "block", ("uniform", "block"))
    with pytest.raises(PrunetrainError) as err:
        check_choice("crossover", "one-point", ("uniform", "block"))
    assert str(err.value) == "crossover must be one of 'uniform', 'block'; got 'one-point'"
    with pytest.raises(PrunetrainError, match="got None"):
        check_choice("crossover", None, ("uniform", "block"))


def _numeric_params(cls) -> list[str]:
    return [
        k
        for k, v in cls().get_params().items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    ]


@pytest.fixture(scope="module")
def planted_problem():
    return planted()


@pytest.mark.parametrize("method", sorted(SEARCHERS))
def test_no_searcher_accepts_nan_or_infinity(planted_problem, method):
    """Every numeric hyperparameter of every searcher refuses them before any evaluation."""
    net, data, _ = planted_problem
    for name in _numeric_params(SEARCHERS[method]):
        for bad in (math.nan, math.inf):
            problem = Problem(net, data, KeepRule(0.5), backend="numpy")
            with pytest.raises(PrunetrainError, match=name):
                run(problem, make_searcher(method, **{name: bad}), "10evals")
            assert problem.n_evaluations == 0


@pytest.mark.parametrize("method", sorted(SEARCHERS))
def test_default_hyperparameters_are_strict_json(method):
    """Records are written with allow_nan=False: an infinite default once broke `compare`."""
    json.dumps(SEARCHERS[method]().get_params(), allow_nan=False)
