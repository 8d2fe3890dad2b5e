"""Baselines: gradient-trained and data-free references on the network and data a search gets.

- ``dense``: every weight trained by our NumPy backprop from the frozen init;
  ``dense-sklearn``: scikit-learn's ``MLPClassifier`` with the same hidden sizes.
- ``edge-popup``: scores trained through a top-k mask of the frozen weights (a ticket).
- ``imp``: iterative magnitude pruning with rewinding to init (trained sparse weights).
- ``random``, ``magnitude``, ``synflow``: pruning at init without data (tickets).

Importing this package registers them all; ``BASELINES`` maps names to classes
and :func:`run_baseline` runs one as ``run_search`` runs a search.

The trained ones take ``recipe`` (a published recipe by name, or ``converge``;
:mod:`prunetrain.baselines.recipes`) and ``patience`` (train to convergence on
the validation split, keeping the best epoch).
"""

from prunetrain.baselines import at_init, dense, edge_popup, imp  # noqa: F401  (registers them)
from prunetrain.baselines.api import BaselineRun, run_baseline
from prunetrain.baselines.base import BASELINES, Baseline, BaselineResult, make_baseline, register

__all__ = [
    "BASELINES",
    "Baseline",
    "BaselineResult",
    "BaselineRun",
    "make_baseline",
    "register",
    "run_baseline",
]
