"""Hyperparameters: `check_number` and friends, and the constraints every searcher and baseline
declares (`_parameter_constraints`), checked where each is made by name."""

import contextlib
import json
import math
import signal

import numpy as np
import pytest
from conftest import planted
from hypothesis import given
from hypothesis import strategies as st

from prunetrain.baselines import BASELINES, make_baseline
from prunetrain.errors import PrunetrainError
from prunetrain.hyperparams import (
    CLOSED,
    MAX_POPULATION,
    Choice,
    Constraint,
    Flag,
    Named,
    Real,
    check_choice,
    check_count,
    check_number,
)
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


# --- upper bounds: every count and size of every searcher and baseline -------------------

ABSURD = (1e300, 1e12, -1, math.nan)


def _swept_params(cls) -> list[str]:
    """Every hyperparameter that is not a name or a flag (numeric, or ``None`` by default)."""
    return [
        k
        for k, v in cls().get_params().items()
        if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
    ]


def _absurd_values(cls, name) -> tuple:
    default = cls().get_params()[name]
    counts = isinstance(default, int) and not isinstance(default, bool)
    return ABSURD + ((0.5,) if counts else ())


@contextlib.contextmanager
def _within(seconds: int, what: str):
    """Fail (instead of hanging the suite) if the block runs longer than ``seconds``."""

    def expired(signum, frame):
        raise AssertionError(f"{what} took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _assert_one_line_refusal(check, what):
    with _within(5, what):
        try:
            check()
        except PrunetrainError as e:
            assert "\n" not in str(e), what
            return
    raise AssertionError(f"{what} was accepted")


@pytest.mark.parametrize("method", sorted(SEARCHERS))
def test_searcher_refuses_absurd_counts_and_sizes_when_made(method):
    """`rounds=1e300` hung, `population=1e12` hung inside config validation, `tenure=1e300`
    overflowed and some ten more values failed only in the first run: every one is refused
    in one line as the searcher is made by name, fast."""
    cls = SEARCHERS[method]
    for name in _swept_params(cls):
        for bad in _absurd_values(cls, name):
            _assert_one_line_refusal(
                lambda name=name, bad=bad: make_searcher(method, **{name: bad}),
                f"{method} {name}={bad!r}",
            )


@pytest.mark.parametrize("method", sorted(BASELINES))
def test_baseline_refuses_absurd_counts_and_sizes_when_made(method):
    """`epochs=1e300` hung a baseline: it is refused as the baseline is made by name, and
    every other absurd value."""
    cls = BASELINES[method]
    for name in _swept_params(cls):
        for bad in _absurd_values(cls, name):
            _assert_one_line_refusal(
                lambda name=name, bad=bad: make_baseline(method, **{name: bad}),
                f"baseline {method} {name}={bad!r}",
            )


def test_check_count_states_its_bound():
    assert check_count("population", 32.0, MAX_POPULATION) == 32
    with pytest.raises(PrunetrainError) as err:
        check_count("population", 1e12, MAX_POPULATION)
    assert str(err.value) == (
        f"population must be a whole number in [1, {MAX_POPULATION}], got 1000000000000.0"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["search", "--method", "random", "-p", "population=1e12"],
            "population must be a whole number in [1, 10000], got 1000000000000.0",
        ),
        (
            ["search", "--method", "tabu", "-p", "tenure=1e300"],
            "tenure must be a whole number in [1, 1000000000], got 1e+300",
        ),
        (
            ["search", "--method", "hill", "-p", "rounds=1e300"],
            "rounds must be a whole number in [1, 10000], got 1e+300",
        ),
        (
            ["baseline", "--method", "dense", "-p", "epochs=1e300"],
            "epochs must be a whole number in [0, 10000], got 1e+300",
        ),
    ],
)
def test_cli_refuses_absurd_hyperparameters_in_one_line(tmp_path, capsys, args, message):
    """From the CLI these hung (`population=1e12`, `epochs=1e300`) or overflowed (`tenure`)."""
    from prunetrain.cli import main

    out = tmp_path / "o"
    with _within(20, " ".join(args)), pytest.raises(SystemExit) as exit_:
        main([*args, "--arch", "64-8-10", "--budget", "50evals", "--out", str(out), "-q"])
    _, err = capsys.readouterr()
    assert exit_.value.code == 2
    assert err.count("\n") == 1 and err.startswith("prunetrain: error: ") and message in err
    assert not out.exists()


def test_a_bad_hyperparameter_is_refused_before_the_data_is_loaded(tmp_path, capsys, monkeypatch):
    """With progress shown (no -q), `-p population=1e12` printed a 'done' progress line before
    its error: the search's setup, where it was found, ran after the data and network were made."""
    from prunetrain import runs
    from prunetrain.cli import main

    def no_build(*args, **kwargs):
        raise AssertionError("the data was loaded before the hyperparameters were checked")

    monkeypatch.setattr(runs, "build", no_build)
    out = tmp_path / "o"
    with pytest.raises(SystemExit) as exit_:
        main(["search", "--method", "ga", "-p", "population=1e12", "--out", str(out)])
    _, err = capsys.readouterr()
    assert exit_.value.code == 2
    assert (
        err
        == "prunetrain: error: population must be a whole number in [2, 10000], got 1000000000000.0\n"
    )
    assert not out.exists()


# --- declared constraints (issue 30): every hyperparameter, checked where the object is made ----

REGISTERED = [("method", name, cls) for name, cls in sorted(SEARCHERS.items())] + [
    ("baseline", name, cls) for name, cls in BASELINES.items()
]


def _make(kind: str, name: str, **params):
    return make_searcher(name, **params) if kind == "method" else make_baseline(name, **params)


@pytest.mark.parametrize(("kind", "name", "cls"), REGISTERED, ids=lambda v: getattr(v, "name", v))
def test_every_registered_class_declares_exactly_its_constructor_parameters(kind, name, cls):
    declared = cls._parameter_constraints
    assert list(cls.param_constraints()) == cls.param_names()  # each one, in order
    assert set(declared) == set(cls.param_names())  # and nothing more
    assert all(isinstance(c, Constraint) for c in declared.values())
    for c in declared.values():  # a bound may name only a hyperparameter of the same class
        assert set(c.references) <= set(declared) - {n for n, d in declared.items() if d is c}
    _make(kind, name).check_params()  # the defaults satisfy them
    _make(kind, name, **cls.param_defaults())


def _bad_values(constraint: Constraint, defaults: dict) -> list:
    """Values that ``constraint`` must refuse: past each bound, and of the wrong type."""
    if isinstance(constraint, Real):
        bounds = [
            defaults[b] if isinstance(b, str) else b for b in (constraint.low, constraint.high)
        ]
        low, high = bounds
        open_low, open_high = CLOSED[constraint.closed]
        values = ["1", True, math.nan]
        values += [] if low is None else [low if open_low else low - 1]
        values += [] if high is None else [high if open_high else high * 2 + 1]
        return values + ([2.5] if constraint.integer else [])
    if isinstance(constraint, Choice):
        return ["no-such-option", 1]
    if isinstance(constraint, Flag):
        return ["yes", 1, None]
    if isinstance(constraint, Named):
        return ["no-such-searcher", 3]
    raise AssertionError(f"no bad values for {constraint!r}")


@pytest.mark.parametrize(("kind", "name", "cls"), REGISTERED, ids=lambda v: getattr(v, "name", v))
def test_build_named_refuses_every_out_of_range_value_naming_the_parameter(kind, name, cls):
    """By name (and, for the exact wording, built directly): one line naming the parameter,
    what it must be, and the value. (A baseline's unknown recipe is refused by name before
    it is built, as its recipe's values are looked up: "unknown recipe ... for baseline".)"""
    defaults = cls.param_defaults()
    for param, constraint in cls.param_constraints().items():
        for bad in _bad_values(constraint, defaults):
            with pytest.raises(PrunetrainError) as by_name:
                _make(kind, name, **{param: bad})
            with pytest.raises(PrunetrainError) as direct:
                cls(**{param: bad}).check_params()
            assert str(by_name.value) == str(direct.value) or param == "recipe"
            for message in (str(by_name.value), str(direct.value)):
                assert param in message and repr(bad) in message and "\n" not in message
            assert str(direct.value).startswith(f"{param} must be ")
            assert str(direct.value).endswith(repr(bad))


@pytest.mark.parametrize(
    ("kind", "name", "params", "message"),
    [
        ("method", "ga", {"elites": 16}, "elites must be a whole number in [0, 16), got 16"),
        (
            "method",
            "ga",
            {"population": 40, "elites": 40},
            "elites must be a whole number in [0, 40), got 40",
        ),
        ("method", "pbil", {"elite": 33}, "elite must be a whole number in [1, 32], got 33"),
        ("method", "hill", {"variant": "worst"}, "variant must be one of 'best', 'first'; got 'worst'"),
        ("method", "hebbian", {"select": "row"}, "select must be one of 'unit', 'layer' or None; got 'row'"),
        ("method", "evolution", {"confirm": 1}, "confirm must be True or False, got 1"),
        ("method", "probe", {"confirm": "yes"}, "confirm must be True, False or 'auto', got 'yes'"),
        ("method", "probe", {"confirm": 1}, "confirm must be True, False or 'auto', got 1"),
        (
            "method",
            "evolution",
            {"strategy": "mu,lambda", "parents": 20, "offspring": 10},
            "parents must be <= offspring for mu,lambda, got 20 > 10",
        ),
        ("method", "accumulate", {"pool": 0}, "pool must be a whole number in [1, 1000000000], got 0"),
        ("baseline", "dense", {"optimizer": "rmsprop"}, "optimizer must be one of 'sgd', 'adam'; got 'rmsprop'"),
        ("baseline", "imp", {"rounds": 0}, "rounds must be a whole number in [1, 10000], got 0"),
        ("baseline", "edge-popup", {"score_init": "zeros"}, "score_init must be one of 'kaiming_uniform', 'uniform'; got 'zeros'"),
    ],
)  # fmt: skip
def test_refusals_name_the_parameter_the_range_and_the_value(kind, name, params, message):
    with pytest.raises(PrunetrainError) as err:
        _make(kind, name, **params)
    assert str(err.value) == message


def test_a_searcher_made_directly_is_checked_when_it_is_set_up(planted_problem):
    """Not made by name, it is still refused before any evaluation (as scikit-learn's fit)."""
    from prunetrain.search.evolution.ga import GeneticSearcher

    net, data, _ = planted_problem
    problem = Problem(net, data, KeepRule(0.5), backend="numpy")
    with pytest.raises(PrunetrainError, match=r"population must be a whole number in \[2, 10000\]"):
        run(problem, GeneticSearcher(population=1), "10evals")
    assert problem.n_evaluations == 0


def test_a_baseline_made_directly_is_checked_when_it_is_fit(digits):
    from prunetrain.baselines.at_init import SynFlow
    from prunetrain.network import FrozenNetwork, NetworkSpec

    network = FrozenNetwork(NetworkSpec((64, 8, 10)), 0)
    with pytest.raises(PrunetrainError, match="iterations must be a whole number"):
        SynFlow(iterations=0).fit(network, digits, KeepRule(0.5))


def test_a_config_is_validated_without_any_network_or_data(monkeypatch):
    """A comparison config's hyperparameters are checked as each is made by name: nothing
    builds a network, a problem or a dataset (the old check set a searcher up on a fake one)."""
    from prunetrain.data import Dataset
    from prunetrain.experiments.config import parse_config
    from prunetrain.network import FrozenNetwork

    def forbidden(*args, **kwargs):
        raise AssertionError("config validation built a network, a problem or a dataset")

    for cls in (FrozenNetwork, Problem, Dataset):
        monkeypatch.setattr(cls, "__init__", forbidden)
    config = {
        "datasets": ["digits"],
        "archs": ["64-8-10"],
        "budget": "50evals",
        "methods": {"g": {"method": "ga", "elites": 16}},
    }
    with pytest.raises(PrunetrainError) as err:
        parse_config(config, source="c.toml")
    assert str(err.value) == "c.toml: [methods.g]: elites must be a whole number in [0, 16), got 16"
    config["methods"] = {"p": {"method": "pipeline", "first": "hill", "share": 0.3}}
    config["baselines"] = {"b": {"method": "edge-popup", "momentum": -1}}
    with pytest.raises(PrunetrainError) as err:
        parse_config(config, source="c.toml")
    assert str(err.value) == (
        "c.toml: [baselines.b]: momentum must be a finite number in [0, 1e+06], got -1"
    )
    del config["baselines"]
    (spec,) = parse_config(config, source="c.toml").runs
    assert spec.params == {"first": "hill", "then": "accumulate", "share": 0.3}
