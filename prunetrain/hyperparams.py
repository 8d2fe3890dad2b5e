"""Hyperparameters of named strategies (searchers, baselines), declared, checked and built by name.

Like scikit-learn, a strategy's constructor takes only keyword hyperparameters
and stores each under its own name, so they can be listed, recorded and
checked against what a user passed. Each class declares every one's type and
range once, in ``_parameter_constraints`` (scikit-learn's name), with the
constraint objects of this module (:class:`Real`, :class:`Integer`,
:class:`Choice`, :class:`Flag`, :class:`Named`):

>>> class Climber(Hyperparameters):
...     _parameter_constraints = {"rounds": Integer(1, MAX_REPEATS), "lr": Real(0, 1)}
...
...     def __init__(self, rounds: int = 4, lr: float = 0.1) -> None:
...         self.rounds = rounds
...         self.lr = lr
>>> Climber(rounds=0).check_params()
Traceback (most recent call last):
...
prunetrain.errors.PrunetrainError: rounds must be a whole number in [1, 10000], got 0

:func:`build_named` checks them when it makes an object, so a bad value is
refused in one line before any data is loaded or any network made; ``prunetrain
methods`` lists them (:meth:`Constraint.describe`).
"""

from __future__ import annotations

import abc
import dataclasses
import inspect
import math
from collections.abc import Mapping
from typing import ClassVar, TypeVar

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
    """Mixin: ``param_names``, ``get_params`` and a ``repr`` from the constructor's signature,
    and :meth:`check_params` from the declared ``_parameter_constraints``."""

    #: Each constructor hyperparameter's type and range, by name: a :class:`Constraint` for
    #: every name of :meth:`param_names` and no other (``tests/test_hyperparams.py`` holds
    #: every registered class to that). A subclass that adds or drops hyperparameters
    #: declares its own mapping, e.g. ``{**Base._parameter_constraints, "tenure": ...}``.
    _parameter_constraints: ClassVar[dict[str, Constraint]] = {}

    @classmethod
    def param_names(cls) -> list[str]:
        """Names of the constructor's hyperparameters."""
        sig = inspect.signature(cls.__init__)
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return [p.name for p in sig.parameters.values() if p.name != "self" and p.kind in kinds]

    @classmethod
    def param_defaults(cls) -> dict:
        """Each hyperparameter's default (the constructor's), in the constructor's order."""
        parameters = inspect.signature(cls.__init__).parameters
        return {name: parameters[name].default for name in cls.param_names()}

    @classmethod
    def param_constraints(cls) -> dict[str, Constraint]:
        """Each hyperparameter's declared constraint, in the constructor's order."""
        return {name: cls._parameter_constraints[name] for name in cls.param_names()}

    @classmethod
    def param_table(cls) -> dict[str, dict]:
        """Each hyperparameter's ``default``, declared ``type`` and ``range``, whether it is
        ``optional`` (takes ``None``), and the two in words (``describe``): what ``prunetrain
        methods`` lists.

        Examples
        --------
        >>> class Climber(Hyperparameters):
        ...     _parameter_constraints = {"rounds": Integer(1, MAX_REPEATS)}
        ...
        ...     def __init__(self, rounds: int = 4) -> None:
        ...         self.rounds = rounds
        >>> Climber.param_table()["rounds"]["describe"]
        'int in [1, 10000]'
        """
        defaults = cls.param_defaults()
        return {
            name: {
                "default": defaults[name],
                "type": c.kind,
                "range": c.range,
                "optional": c.optional,
                "describe": c.describe(),
            }
            for name, c in cls.param_constraints().items()
        }

    def get_params(self) -> dict:
        """Hyperparameters as a dict (JSON-ready)."""
        return {name: getattr(self, name) for name in self.param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def check_params(self) -> None:
        """Raise a one-line :class:`PrunetrainError` naming the first hyperparameter outside
        its declared constraint (then any relation of :meth:`_check_relations` that fails).

        The values are only checked, never replaced, so that what the record holds is what
        was given. A bound named by another hyperparameter (``Integer(0, "population")``) is
        that one's value, checked first.
        """
        constraints = self._parameter_constraints
        checked: dict[str, object] = {}
        for name in sorted(constraints, key=lambda n: bool(constraints[n].references)):
            checked[name] = constraints[name].check(name, getattr(self, name), checked)
        self._check_relations()

    def _check_relations(self) -> None:
        """Raise if a relation between hyperparameters that no single range states fails
        (each is already in range). None by default."""
        return None


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
    made = cls(**params)
    made.check_params()
    return made


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
        where = _interval(low, high, open_low, open_high)
        raise PrunetrainError(f"{name} must be {kind} {where}".rstrip() + f", got {value!r}")
    return int(value) if integer else float(value)


def _interval(low, high, open_low: bool, open_high: bool) -> str:
    """``in (low, high]``, ``>= low``, ``< high`` or nothing: where a number must lie."""
    low_, high_ = _shown(low), _shown(high)
    if low is not None and high is not None:
        return f"in {'(' if open_low else '['}{low_}, {high_}{')' if open_high else ']'}"
    if low is not None:
        return f"{'>' if open_low else '>='} {low_}"
    if high is not None:
        return f"{'<' if open_high else '<='} {high_}"
    return ""


def _shown(bound: float | str | None) -> str:
    """A bound as a message shows it: integers in full (``1000000000``), floats short, and
    another hyperparameter by its name."""
    if bound is None or isinstance(bound, (str, int, np.integer)):
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


def check_choice(name: str, value, choices, *, optional: bool = False) -> None:
    """Raise a one-line :class:`PrunetrainError` unless ``value`` is one of ``choices``
    (or ``None``, with ``optional``)."""
    if value is None and optional:
        return
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(map(repr, choices)) + (" or None" if optional else "")
        raise PrunetrainError(f"{name} must be one of {listed}; got {value!r}")


def check_flag(name: str, value) -> bool:
    """``value`` as a bool if it is one, else a one-line :class:`PrunetrainError`."""
    if not isinstance(value, (bool, np.bool_)):
        raise PrunetrainError(f"{name} must be True or False, got {value!r}")
    return bool(value)


# --- declared constraints ---------------------------------------------------------------

#: Which ends of an interval belong to it (scikit-learn's ``closed``), as (open low, open high).
CLOSED = {
    "both": (False, False),
    "left": (False, True),
    "right": (True, False),
    "neither": (True, True),
}

#: A bound of an interval: a number, another hyperparameter's name (its value), or none.
Bound = float | str | None


class Constraint(abc.ABC):
    """The declared type and range of one hyperparameter (a value of ``_parameter_constraints``).

    ``optional`` constraints also take ``None`` (the hyperparameter's "let the method
    choose", which JSON records hold as ``null``).
    """

    optional: bool = False

    @property
    def references(self) -> tuple[str, ...]:
        """Other hyperparameters whose values this constraint's bounds are."""
        return ()

    @abc.abstractmethod
    def check(self, name: str, value, checked: Mapping[str, object]):
        """``value`` converted (a float, an int, ...) if it satisfies the constraint, else a
        one-line :class:`PrunetrainError` naming ``name``, what was expected and the value.
        ``checked`` holds the converted values of the hyperparameters named in
        :attr:`references`."""

    @property
    @abc.abstractmethod
    def kind(self) -> str:
        """The type, as ``prunetrain methods`` shows it: ``"int"``, ``"float"``, ``"str"``..."""

    @property
    @abc.abstractmethod
    def range(self) -> str:
        """Where a value must lie, as ``prunetrain methods`` shows it (may be empty)."""

    def describe(self) -> str:
        """Type and range in words: ``"int in [1, 10000]"``, ``"float >= 0, or None"``."""
        text = f"{self.kind} {self.range}".rstrip()
        return text + (", or None" if self.optional else "")


@dataclasses.dataclass(frozen=True)
class Real(Constraint):
    """A finite number from ``low`` to ``high``; by default ``(low, high]`` (``closed="right"``).

    A bound is a number, ``None`` (unbounded) or the name of another hyperparameter, whose
    value it then is.

    Examples
    --------
    >>> Real(0, 1).describe(), Real(0, MAX_SCALE, closed="both", optional=True).describe()
    ('float in (0, 1]', 'float in [0, 1e+06], or None')
    """

    low: Bound = None
    high: Bound = None
    closed: str = "right"
    optional: bool = False
    #: Whole numbers only (checked and converted to ``int``).
    integer: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.closed not in CLOSED:
            raise ValueError(f"closed must be one of {', '.join(CLOSED)}, got {self.closed!r}")

    @property
    def references(self) -> tuple[str, ...]:
        return tuple(b for b in (self.low, self.high) if isinstance(b, str))

    def check(self, name: str, value, checked: Mapping[str, object]):
        open_low, open_high = CLOSED[self.closed]
        low, high = (checked[b] if isinstance(b, str) else b for b in (self.low, self.high))
        return check_number(
            name,
            value,
            low,
            high,
            open_low=open_low,
            open_high=open_high,
            integer=self.integer,
            optional=self.optional,
        )

    @property
    def kind(self) -> str:
        return "int" if self.integer else "float"

    @property
    def range(self) -> str:
        return _interval(self.low, self.high, *CLOSED[self.closed])


@dataclasses.dataclass(frozen=True)
class Integer(Real):
    """A whole number (a count or a size) from ``low`` to ``high``; by default ``[low, high]``.

    ``high`` is one of :data:`MAX_POPULATION`, :data:`MAX_REPEATS`, :data:`MAX_COUNT` or
    another hyperparameter, so that no count a machine cannot hold gets past the check.
    A whole float (``32.0``, as TOML and ``-p`` may give it) passes.

    Examples
    --------
    >>> Integer(0, "population", closed="left").describe()
    'int in [0, population)'
    """

    closed: str = "both"
    integer: ClassVar[bool] = True


@dataclasses.dataclass(frozen=True)
class Choice(Constraint):
    """One of the strings ``options``.

    Examples
    --------
    >>> Choice(("best", "first")).describe()
    "str in {'best', 'first'}"
    """

    options: tuple[str, ...]
    optional: bool = False

    def check(self, name: str, value, checked: Mapping[str, object]):
        check_choice(name, value, self.options, optional=self.optional)
        return value

    @property
    def kind(self) -> str:
        return "str"

    @property
    def range(self) -> str:
        return "in {" + ", ".join(map(repr, self.options)) + "}"


@dataclasses.dataclass(frozen=True)
class Flag(Constraint):
    """``True`` or ``False`` (NumPy's booleans too; not 0, 1 or ``"yes"``); with ``auto``, also ``"auto"``.

    ``"auto"`` lets the object decide from the problem when it is set up.

    Examples
    --------
    >>> Flag(auto=True).describe()
    "bool or 'auto'"
    """

    auto: bool = False

    def check(self, name: str, value, checked: Mapping[str, object]):
        if self.auto and isinstance(value, str) and value == "auto":
            return value
        if self.auto and not isinstance(value, (bool, np.bool_)):
            raise PrunetrainError(f"{name} must be True, False or 'auto', got {value!r}")
        return check_flag(name, value)

    @property
    def kind(self) -> str:
        return "bool or 'auto'" if self.auto else "bool"

    @property
    def range(self) -> str:
        return ""


@dataclasses.dataclass(frozen=True)
class Named(Constraint):
    """An object of class ``base`` (a ``what``, e.g. a pipeline's stage), or the name of one
    in ``registry``, except those named in ``exclude``; an object given must pass its own
    :meth:`~Hyperparameters.check_params`.

    ``registry`` is read when a value is checked, so it may be filled after the
    declaration (classes register as their modules are imported).
    """

    registry: Mapping[str, type] = dataclasses.field(repr=False)
    base: type
    what: str
    exclude: tuple[str, ...] = ()

    def allowed(self) -> list[str]:
        """The names a value may have, sorted."""
        return sorted(set(self.registry) - set(self.exclude))

    def check(self, name: str, value, checked: Mapping[str, object]):
        allowed = self.allowed()
        if isinstance(value, str) and value in allowed:
            return value
        if isinstance(value, self.base) and getattr(value, "name", None) not in self.exclude:
            value.check_params()
            return value
        raise PrunetrainError(
            f"{name} must be a {self.what} or its name, one of {', '.join(map(repr, allowed))}"
            f"; got {value!r}"
        )

    @property
    def kind(self) -> str:
        return self.what

    @property
    def range(self) -> str:
        excluded = ", ".join(map(repr, self.exclude))
        return "or its name" + (f", other than {excluded}" if excluded else "")
