"""Packaging (issue 19): every imported library declared, minimum versions that work, one version."""

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

import prunetrain

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# Import names whose distribution is called otherwise.
DISTRIBUTIONS = {"sklearn": "scikit-learn", "cupy": "cupy-cuda12x", "numba_cuda": "numba-cuda"}


def requirements(entries):
    """``{"scikit-learn": "1.6", ...}``: each name and its minimum version (None if none)."""
    out = {}
    for entry in entries:
        match = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(?:>=\s*([0-9.]+))?", entry)
        out[match.group(1).lower()] = match.group(2)
    return out


def test_every_third_party_import_of_the_package_is_declared():
    declared = set(requirements(PROJECT["dependencies"]))
    for extra in PROJECT["optional-dependencies"].values():
        declared |= set(requirements(extra))
    imported = set()
    for path in (ROOT / "prunetrain").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = {
        DISTRIBUTIONS.get(name, name).lower()
        for name in imported
        if name not in sys.stdlib_module_names and name != "prunetrain"
    }
    assert "scipy" in third_party
    assert third_party <= declared, third_party - declared


def test_minimum_versions_cover_the_apis_used():
    required = requirements(PROJECT["dependencies"])
    # validate_data and __sklearn_tags__ (the estimator) arrived in scikit-learn 1.6.
    assert tuple(map(int, required["scikit-learn"].split("."))) >= (1, 6)
    assert required["scipy"] is not None


def test_project_metadata():
    assert any(c.startswith("Programming Language :: Python :: 3") for c in PROJECT["classifiers"])
    assert "version" in PROJECT


def test_the_version_comes_from_the_installed_metadata(monkeypatch):
    assert prunetrain.__version__ == importlib.metadata.version("prunetrain") == PROJECT["version"]
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "9.9.9")
    assert prunetrain._version._installed_version() == "9.9.9"

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert prunetrain._version._installed_version() == "0+unknown"
    for module in ("__init__.py", "_version.py"):
        source = (ROOT / "prunetrain" / module).read_text()
        assert not re.search(r"__version__\s*=\s*['\"]", source)  # no second literal


@pytest.mark.parametrize("name", ["numpy", "scipy", "scikit-learn", "numba"])
def test_installed_versions_meet_the_declared_minimums(name):
    minimum = requirements(PROJECT["dependencies"])[name]
    installed = importlib.metadata.version(name)
    as_tuple = lambda v: tuple(int(p) for p in re.findall(r"\d+", v)[:2])  # noqa: E731
    assert as_tuple(installed) >= as_tuple(minimum)
