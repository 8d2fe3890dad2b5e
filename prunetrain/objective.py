"""The old name of :mod:`prunetrain.problem`, kept so that code and pickles naming it still work."""

from prunetrain.problem import *  # noqa: F403
from prunetrain.problem import Batch, Budget, FlipSession, Problem  # noqa: F401
