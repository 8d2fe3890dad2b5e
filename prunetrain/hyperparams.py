"""Hyperparameters of named strategies (searchers, baselines) and building them by name.

Like scikit-learn, a strategy's constructor takes only keyword hyperparameters
and stores each under its own name, so they can be listed, recorded and
checked against what a user passed.
"""

from __future__ import annotations

import inspect
import math
from typing import TypeVar

import numpy as np

from prunetrain.errors import PrunetrainError

# Upper bounds of the count and size hyperparameters of every searcher and baseline: what one
# machine can hold and what one step of a run may do, so that a typo such as
# ``population=1e12`` is refused in one line instead of hanging or failing mid-run. They are
# far above any value that works (the defaults are 1 to 100).

#: Masks one step may hold and evaluate (``population``, ``offspring``, ``parents``,
#: ``tournament``, ``elite``): memory and time grow with it in every step.
MAX_POPULATION = 10_000
#: Repeats of a unit of work that one step, or one baseline, makes without a budget check
#: (local search's ``rounds``, ``epochs``, pruning ``rounds`` and ``iterations``, ``reselect``).
MAX_REPEATS = 10_000
#: Other counts and sizes (candidate moves, pool sizes, tabu tenure, ages, swaps per child,
#: batch sizes): bounded so that counters and draws fit 64-bit integers with room to spare.
MAX_COUNT = 10**9
#: Rates, temperatures, decays and other scales (``lr``, ``t_start``, ``noise``, ``adapt``,
#: ``weight_decay``): losses and scores here are of order 1, so past this none of them means
#: anything, and their products and exponentials start to overflow.
MAX_SCALE = 1e6


class Hyperparameters:
    """Mixin: ``param_names``, ``get_params`` and a ``repr`` from the constructor's signature."""

    @classmethod
    def param_names(cls) -> list[str]:
        """Names of the constructor's hyperparameters."""
        sig = inspect.signature(cls.__init__)
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return [p.name for p in sig.parameters.values() if p.name != "self" and p.kind in kinds]

    def get_params(self) -> dict:
        """Hyperparameters as a dict (JSON-ready)."""
        return {name: getattr(self, name) for name in self.param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


T = TypeVar("T", bound=Hyperparameters)


def registrar(registry: dict[str, type[T]], kind: str):
    """A class decorator that makes a class available in ``registry`` by its ``name``."""

    def register(cls: type[T]) -> type[T]:
        if cls.name in registry:
            raise RuntimeError(f"two {kind}s are named {cls.name!r}")
        registry[cls.name] = cls
        return cls

    return register


def build_named(registry: dict[str, type[T]], kind: str, name: str, params: dict) -> T:
    """``registry[name](**params)``, or a one-line error naming what ``kind`` exists or takes."""
    cls = registry.get(name)
    if cls is None:
        raise PrunetrainError(
            f"unknown {kind} {name!r}; expected one of {', '.join(sorted(registry))}"
        )
    unknown = set(params) - set(cls.param_names())
    if unknown:
        raise PrunetrainError(
            f"{kind} {name!r} takes no option {', '.join(sorted(unknown))}; "
            f"its options are {', '.join(cls.param_names()) or 'none'}"
        )
    return cls(**params)


def check_number(
    name: str,
    value,
    low: float | None = None,
    high: float | None = None,
    *,
    open_low: bool = True,
    open_high: bool = False,
    integer: bool = False,
    optional: bool = False,
):
    """``value`` as a float (an int with ``integer``) if it lies between ``low`` and ``high``.

    The bounds are exclusive or inclusive as ``open_low`` / ``open_high`` say
    (by default ``(low, high]``); ``None`` means unbounded. NaN, infinities,
    booleans and non-numbers are refused (an unbounded hyperparameter takes
    ``None``, which JSON records can hold). With ``optional``, ``None``
    passes through.

    Raises
    ------
    PrunetrainError
        One line naming the hyperparameter, the interval and the value.
    """
    if value is None and optional:
        return None
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )
    ok = ok and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if open_low else value >= low
    if ok and high is not None:
        ok = value < high if open_high else value <= high
    if ok and integer:
        ok = int(value) == value
    if not ok:
        kind = "a whole number" if integer else "a finite number"
        low_, high_ = _shown(low), _shown(high)
        if low is not None and high is not None:
            where = f"in {'(' if open_low else '['}{low_}, {high_}{')' if open_high else ']'}"
        elif low is not None:
            where = f"{'>' if open_low else '>='} {low_}"
        elif high is not None:
            where = f"{'<' if open_high else '<='} {high_}"
        else:
            where = ""
        raise PrunetrainError(f"{name} must be {kind} {where}".rstrip() + f", got {value!r}")
    return int(value) if integer else float(value)


def _shown(bound: float | None) -> str:
    """A bound as a message shows it: integers in full (``1000000000``), floats short."""
    if bound is None or isinstance(bound, (int, np.integer)):
        return str(bound)
    return f"{bound:g}"


def check_count(name: str, value, high: int, low: int = 1, *, optional: bool = False):
    """``value`` as an int in ``[low, high]``: a count or size hyperparameter, bounded above.

    ``high`` is one of :data:`MAX_POPULATION`, :data:`MAX_REPEATS`, :data:`MAX_COUNT` (or a
    smaller bound that another hyperparameter sets), so that no count a machine cannot hold
    gets past the check.

    Examples
    --------
    >>> check_count("population", 32.0, MAX_POPULATION)
    32
    >>> check_count("population", 1e12, MAX_POPULATION)
    Traceback (most recent call last):
    ...
    prunetrain.errors.PrunetrainError: population must be a whole number in [1, 10000], got 1000000000000.0
    """
    return check_number(name, value, low, high, open_low=False, integer=True, optional=optional)


def check_choice(name: str, value, choices) -> None:
    """Raise a one-line :class:`PrunetrainError` unless ``value`` is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise PrunetrainError(
            f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}"
        )


def check_flag(name: str, value) -> bool:
    """``value`` as a bool if it is one, else a one-line :class:`PrunetrainError`."""
    if not isinstance(value, (bool, np.bool_)):
        raise PrunetrainError(f"{name} must be True or False, got {value!r}")
    return bool(value)
