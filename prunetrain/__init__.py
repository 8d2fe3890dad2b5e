"""prunetrain: train neural networks without backpropagation.

A randomly initialised network is kept frozen and a binary mask over its
weights is searched for by gradient-free heuristics (a winning ticket of the
strong lottery ticket hypothesis).

Examples
--------
>>> import prunetrain
>>> run = prunetrain.run_search("digits", "64-32-10", method="random", budget="200evals", seed=0)
>>> 0.0 <= run.metrics["test"]["accuracy"] <= 1.0
True
"""

from prunetrain import _retired
from prunetrain._version import __version__ as __version__
from prunetrain.api import resume_search, run_search
from prunetrain.data import Dataset, load_dataset
from prunetrain.errors import PrunetrainError
from prunetrain.masks import KeepRule, MaskPopulation, pack_mask, random_mask, unpack_mask
from prunetrain.network import FrozenNetwork, NetworkSpec
from prunetrain.problem import Budget, Problem
from prunetrain.runs import SearchRun, evaluate_ticket
from prunetrain.search import SEARCHERS, Searcher, SearchResult, make_searcher, run
from prunetrain.ticket import Ticket

_retired.install()  # old module names fail in one line naming their new home

__all__ = [
    "SEARCHERS",
    "Budget",
    "Dataset",
    "FrozenNetwork",
    "KeepRule",
    "MaskPopulation",
    "NetworkSpec",
    "Problem",
    "PrunetrainError",
    "SearchResult",
    "SearchRun",
    "Searcher",
    "SubnetworkClassifier",
    "Ticket",
    "evaluate_ticket",
    "load_dataset",
    "make_searcher",
    "pack_mask",
    "random_mask",
    "run",
    "resume_search",
    "run_search",
    "unpack_mask",
]


def __getattr__(name: str):
    # The scikit-learn estimator is imported on first use: it pulls in scikit-learn,
    # which the CLI and the search API do not need at startup.
    if name == "SubnetworkClassifier":
        from prunetrain.estimator import SubnetworkClassifier

        return SubnetworkClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
