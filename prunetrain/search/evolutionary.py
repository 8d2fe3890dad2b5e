"""The evolutionary family's former single module, kept so that its names still import from here.

The code lives in :mod:`prunetrain.search.evolution` (operators, the shared
population machinery, the GA, evolution strategies, distributions);
:class:`~prunetrain.masks.Layout` lives in :mod:`prunetrain.masks`.
"""

from prunetrain.masks import Layout
from prunetrain.search.evolution import *  # noqa: F403
from prunetrain.search.evolution import __all__ as _evolution_names

__all__ = ["Layout", *_evolution_names]
