"""Modules older prunetrain had and this one does not: importing one says where its names went.

The alias modules ``prunetrain.objective`` (renamed :mod:`prunetrain.problem`)
and ``prunetrain.search.evolutionary`` (split into
:mod:`prunetrain.search.evolution`) were retired by issue 30. Nothing in the
package reads them: checkpoints rebuild objects from fixed tables of names,
never from a module path, and the pickled checkpoints of older versions are
refused by file name. What remains is code, or a user's own pickle, naming the
old module; importing it (``pickle.load`` does) fails in one line that names
the new home, rather than with a bare "no module named".

This is the one place that knows the old names. :data:`RETIRED` answers only
after every other finder has failed, so it never shadows a real module.
"""

from __future__ import annotations

import importlib.abc
import sys

#: A retired module's name -> where its names live now.
RETIRED = {
    "prunetrain.objective": "prunetrain.problem",
    "prunetrain.search.evolutionary": (
        "prunetrain.search.evolution (and Layout from prunetrain.masks)"
    ),
}


class RetiredModuleFinder(importlib.abc.MetaPathFinder):
    """Last on ``sys.meta_path``: refuse a retired module with the name of its new home."""

    def find_spec(self, fullname, path, target=None):
        new = RETIRED.get(fullname)
        if new is None:
            return None
        raise ModuleNotFoundError(
            f"{fullname} was retired (issue 30): import its names from {new}", name=fullname
        )


def install() -> None:
    """Put the finder at the end of ``sys.meta_path``, once."""
    if not any(isinstance(f, RetiredModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(RetiredModuleFinder())
