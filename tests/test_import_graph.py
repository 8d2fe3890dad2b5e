"""The modules of prunetrain import one another without a cycle (issue 30).

The graph is read from the source, not from ``sys.modules``: every ``import``
statement counts, the ones inside functions too, since a lazy import hides a
cycle without removing it, and so do those under ``if TYPE_CHECKING:``.
Package ``__init__`` modules are faces: what they re-export is followed to the
module that defines it, and their own imports are not edges.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "prunetrain"


def module_files(root: Path = PACKAGE) -> dict[str, Path]:
    """``{"prunetrain.experiments.config": path, ...}``; a package is named by its folder."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def is_package(name: str, files: dict[str, Path]) -> bool:
    return files[name].name == "__init__.py"


def imports_of(
    name: str, files: dict[str, Path], type_checking: bool = True
) -> list[tuple[str, str | None, int]]:
    """Each import in a module's source as ``(module, imported name or None, line)``.

    ``type_checking=False`` leaves out the imports under ``if TYPE_CHECKING:``.
    """
    tree = ast.parse(files[name].read_text(), filename=str(files[name]))
    if not type_checking:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
                node.body = [ast.Pass()]
    package = name if is_package(name, files) else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out += [(base, alias.name, node.lineno) for alias in node.names]
    return out


def reexports(package: str, files: dict[str, Path]) -> dict[str, tuple[str, str]]:
    """What a package's ``__init__`` imports from elsewhere: ``{name: (module, original name)}``."""
    tree = ast.parse(files[package].read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                out[alias.asname or alias.name] = (node.module, alias.name)
    return out


def resolve(module: str, name: str | None, files: dict[str, Path], seen=()) -> str | None:
    """The prunetrain module that defines what ``from module import name`` binds, or None."""
    if module not in files:
        return None
    if name is None or name == "*":
        return module
    if f"{module}.{name}" in files:
        return f"{module}.{name}"
    if is_package(module, files) and (module, name) not in seen:
        found = reexports(module, files).get(name)
        if found is not None:
            return resolve(*found, files, (*seen, (module, name)))
    return module


def import_graph(files: dict[str, Path] | None = None) -> dict[str, dict[str, int]]:
    """``{module: {imported module: line}}`` over prunetrain, package faces aside."""
    files = module_files() if files is None else files
    graph: dict[str, dict[str, int]] = {}
    for name in files:
        edges = graph.setdefault(name, {})
        if is_package(name, files):
            continue  # a face: its imports re-export, they are no dependency of its own
        for module, imported, line in imports_of(name, files):
            target = resolve(module, imported, files)
            if target is not None and target != name:
                edges.setdefault(target, line)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, {}):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def describe(component: list[str], graph: dict[str, dict[str, int]]) -> str:
    members = set(component)
    return "; ".join(
        f"{a} -> {b} (line {line})"
        for a in component
        for b, line in sorted(graph[a].items())
        if b in members
    )


def test_the_scan_sees_lazy_imports_and_follows_package_faces(tmp_path):
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("from pkg.a import A\n")
    (root / "sub" / "__init__.py").write_text("from pkg.sub.b import B\n")
    (root / "a.py").write_text("A = 1\n\ndef f():\n    from pkg.sub import B\n")
    (root / "sub" / "b.py").write_text("from pkg import A\nB = 2\n")
    (root / "c.py").write_text("from . import a\nfrom .sub import b\n")
    files = module_files(root)
    graph = import_graph(files)
    assert graph["pkg.a"] == {"pkg.sub.b": 4}  # lazy, and through the face of pkg.sub
    assert graph["pkg.sub.b"] == {"pkg.a": 1}  # through the face of pkg
    assert graph["pkg.c"] == {"pkg.a": 1, "pkg.sub.b": 2}  # relative imports
    assert graph["pkg"] == graph["pkg.sub"] == {}  # faces have no edges of their own
    assert cycles(graph) == [["pkg.a", "pkg.sub.b"]]


def test_no_import_cycle_among_prunetrain_modules():
    graph = import_graph()
    assert "prunetrain.experiments.config" in graph and "prunetrain.api" in graph
    found = [describe(component, graph) for component in cycles(graph)]
    assert not found, "import cycles:\n" + "\n".join(found)


def test_api_reads_a_model_without_importing_the_baselines():
    # Issue 30: loading a ticket or weights lives in prunetrain.models, so the search's face
    # does not import baselines/ (annotations under TYPE_CHECKING aside).
    files = module_files()
    imported = {
        resolve(module, name, files)
        for module, name, _ in imports_of("prunetrain.api", files, type_checking=False)
    }
    assert "prunetrain.models" in imported
    assert not [m for m in imported if m and m.startswith("prunetrain.baselines")]


def test_no_module_reaches_back_up_to_the_package_root():
    # The root imports nearly every module; a module that imports it (ticket.py and
    # provenance.py once did, for __version__) depends on all of them. prunetrain._version
    # holds the version instead.
    graph = import_graph()
    assert [name for name, edges in graph.items() if "prunetrain" in edges] == []
    assert "prunetrain._version" in graph["prunetrain.ticket"]
    assert "prunetrain._version" in graph["prunetrain.provenance"]
