"""Retired modules (issue 30): importing one, or unpickling a class by its old path, fails in one line."""

import importlib
import pickle
import subprocess
import sys

import pytest

import prunetrain  # noqa: F401  (installs the finder)
from prunetrain._retired import RETIRED


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("prunetrain.objective", "prunetrain.problem"),
        ("prunetrain.search.evolutionary", "prunetrain.search.evolution"),
    ],
)
def test_a_retired_module_names_its_new_home(old, new):
    assert old in RETIRED
    with pytest.raises(
        ModuleNotFoundError, match=f"^{old} was retired .*: import its names from {new}"
    ):
        importlib.import_module(old)
    # A pickle naming a class by the old path fails the same way (pickle imports the module).
    cls = old.encode() + b"\nBudget\n"
    with pytest.raises(ModuleNotFoundError, match=f"import its names from {new}"):
        pickle.loads(b"c" + cls + b".")


def test_the_finder_never_shadows_a_real_module():
    from prunetrain.problem import Budget

    assert importlib.import_module("prunetrain.problem").Budget is Budget
    with pytest.raises(ModuleNotFoundError, match="No module named 'prunetrain.nope'"):
        importlib.import_module("prunetrain.nope")


def test_importing_a_retired_module_first_thing_in_a_process():
    # The package root is imported on the way to a submodule, so the finder is there in time.
    done = subprocess.run(
        [sys.executable, "-c", "import prunetrain.objective"], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "ModuleNotFoundError: prunetrain.objective was retired (issue 30): "
        "import its names from prunetrain.problem"
    )
