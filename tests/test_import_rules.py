"""Only ``prunetrain/backends/`` knows devices: no other part imports numba or cupy.

Read from the source (every ``import`` statement, at module level or inside a
function, and ``importlib.import_module``/``__import__`` calls with a literal
name), because importing the modules would load the backends, which do load
Numba.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import prunetrain

PACKAGE = Path(prunetrain.__file__).parent
#: The parts that must not know devices (issue 30), and the backends' NumPy references.
DEVICE_FREE = [
    "search",
    "experiments",
    "bench.py",
    "api.py",
    "runs.py",
    "estimator.py",
    "backends/topk.py",
    "backends/hebbian.py",
    "backends/flips.py",
    "backends/screen.py",
]
DEVICE_MODULES = ("numba", "cupy", "prunetrain.backends.numba", "prunetrain.backends.cupy")


def imported_names(source: str) -> list[tuple[int, str]]:
    """``(line, module)`` of every module that ``source`` imports, wherever the import stands."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # `from prunetrain.backends import cupy` imports the submodule.
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None))
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def device_imports(source: str) -> list[tuple[int, str]]:
    """``(line, module)`` of the device imports of ``source``, one per line, in line order."""
    found: dict[int, str] = {}
    for line, name in sorted(imported_names(source), key=lambda x: (x[0], len(x[1]))):
        if any(name == m or name.startswith(m + ".") for m in DEVICE_MODULES):
            found.setdefault(line, name)
    return sorted(found.items())


def test_the_scan_finds_every_kind_of_device_import():
    source = (
        "import numpy\n"
        "def f():\n    import numba.cuda\n"
        "from prunetrain.backends import cupy\n"
        "from prunetrain.backends.numba.workers import run_rows\n"
        "importlib.import_module('cupy')\n"
        "from prunetrain.backends import topk\n"
    )
    assert device_imports(source) == [
        (3, "numba.cuda"),
        (4, "prunetrain.backends.cupy"),
        (5, "prunetrain.backends.numba.workers"),
        (6, "cupy"),
    ]


@pytest.mark.parametrize("part", DEVICE_FREE)
def test_part_imports_neither_numba_nor_cupy(part):
    path = PACKAGE / part
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    assert files
    found = [
        f"{f.relative_to(PACKAGE)}:{line} imports {name}"
        for f in files
        for line, name in device_imports(f.read_text(encoding="utf-8"))
    ]
    assert not found, "\n".join(found)
