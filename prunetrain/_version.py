"""The installed version of prunetrain, in a leaf module.

``ticket.py``, ``provenance.py`` and the comparison configs record the version;
they import it from here rather than from the package root, which imports
nearly every module and would make each of them depend on all the others.
"""

import importlib.metadata


def _installed_version() -> str:
    """The version pip installed (pyproject.toml is its one source), or ``0+unknown`` if none."""
    try:
        return importlib.metadata.version("prunetrain")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree never installed
        return "0+unknown"


__version__ = _installed_version()
