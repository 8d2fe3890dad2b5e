"""Gradient-free searchers over masks, registered by name, and the shared run loop.

Importing this package registers every searcher family; ``SEARCHERS`` maps
names to classes and :func:`make_searcher` builds one by name.
"""

from prunetrain.search import evolution, hebbian, local, pipeline, probe, random  # noqa: F401  (registers the searchers)
from prunetrain.search.base import (
    SEARCHERS,
    Searcher,
    SearchResult,
    make_searcher,
    register,
    resolve_batch_size,
)
from prunetrain.search.loop import run

#: The method ``prunetrain search`` and ``SubnetworkClassifier`` use by default.
DEFAULT_METHOD = "probe"

__all__ = [
    "DEFAULT_METHOD",
    "SEARCHERS",
    "SearchResult",
    "Searcher",
    "make_searcher",
    "register",
    "resolve_batch_size",
    "run",
]
