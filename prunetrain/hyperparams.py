"""Hyperparameters of named strategies (searchers, baselines) and building them by name.

Like scikit-learn, a strategy's constructor takes only keyword hyperparameters
and stores each under its own name, so they can be listed, recorded and
checked against what a user passed.
"""

from __future__ import annotations

import inspect
from typing import TypeVar

from prunetrain.errors import PrunetrainError


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
