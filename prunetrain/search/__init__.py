"""Gradient-free searchers over masks, registered by name, and the shared run loop.

Importing this package registers every searcher family; ``SEARCHERS`` maps
names to classes and :func:`make_searcher` builds one by name.
"""

from prunetrain.search import random  # noqa: F401  (registers "random")
from prunetrain.search.base import SEARCHERS, Searcher, SearchResult, make_searcher, register
from prunetrain.search.loop import run

__all__ = ["SEARCHERS", "SearchResult", "Searcher", "make_searcher", "register", "run"]
