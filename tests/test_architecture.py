"""Imports go downward only: every ``threadkit`` import, module-level, function-local or
under ``TYPE_CHECKING``, points at a lower layer (docs/architecture.md draws them).

The check reads the source with ``ast`` (nothing is imported), so an upward import hidden
inside a function fails here as surely as one at the top of a file.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "threadkit"

LAYERS: dict[str, int] = {
    "errors": 0,
    "core": 1,
    "store": 2,
    "db": 3,
    "frames": 4,
    "graph": 4,
    "dagfigure": 4,
    "datasets": 4,
    "net": 4,
    "views": 5,
    "peer": 6,
    "widgets": 7,
    "api": 7,
    "__init__": 8,
    "demo": 9,
    "cli": 10,
    "cli_compact": 9,
    "__main__": 11,
}
"""Each top-level part of the package and its layer: a part may import only lower layers,
and itself. ``__init__`` is the public facade (``import threadkit as tk``); the demo and the
command line are written against it, as a user's program would be."""

SIDEWAYS: frozenset[tuple[str, str]] = frozenset(
    {
        ("graph", "dagfigure"),  # the DAG's data and its picture, one view split in two files
        ("graph", "frames"),  # the DAG's tables are frames
    }
)
"""Imports between two parts of one layer that are allowed."""

EXCEPTIONS: frozenset[tuple[str, str]] = frozenset()
"""Deliberate upward imports, as (importing module, imported module). Empty by design."""


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, *, typing_only: bool = True) -> list[tuple[str, int]]:
    """Every threadkit module ``path`` imports, with the line, resolving relative imports
    (with ``typing_only=False``, not those under ``if TYPE_CHECKING:``)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return _imports_in(path.read_text(encoding="utf-8"), package, typing_only=typing_only)


def _imports_in(source: str, package: str, *, typing_only: bool = True) -> list[tuple[str, int]]:
    tree = ast.parse(source)
    skip: set[int] = set()
    if not typing_only:
        for block in ast.walk(tree):
            if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test):
                skip |= {id(n) for stmt in block.body for n in ast.walk(stmt)}
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found += [(_submodule_or(target, alias.name), node.lineno) for alias in node.names]
    return [(name, line) for name, line in found if name.split(".")[0] == "threadkit"]


def _submodule_or(package: str, name: str) -> str:
    """``package.name`` where ``from package import name`` imports a module, else ``package``."""
    folder = PACKAGE.parent.joinpath(*package.split("."))
    if (folder / f"{name}.py").exists() or (folder / name).is_dir():
        return f"{package}.{name}"
    return package


def _edges(*, typing_only: bool = True) -> list[tuple[str, str, int]]:
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "proto" in path.relative_to(PACKAGE).parts:
            continue  # generated protobuf modules
        module = _module_name(path)
        edges += [
            (module, target, line) for target, line in _imports(path, typing_only=typing_only)
        ]
    return edges


def _upward(source: str, target: str) -> bool:
    a, b = _part(source), _part(target)
    if a == b or (a, b) in SIDEWAYS:
        return False
    if b == "__init__" and target != "threadkit":
        return False
    return LAYERS[b] >= LAYERS[a]


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()}
    parts = {p for p in parts if not p.startswith((".", "_")) or p in {"__init__", "__main__"}}
    parts -= {"data", "py"}
    assert parts <= set(LAYERS), f"give these a layer: {sorted(parts - set(LAYERS))}"


def test_imports_point_downward() -> None:
    wrong = [
        f"{source} imports {target} (line {line})"
        for source, target, line in _edges()
        if _upward(source, target) and (source, target) not in EXCEPTIONS
    ]
    assert not wrong, "upward imports:\n" + "\n".join(wrong)


def test_every_exception_is_still_needed() -> None:
    used = {(s, t) for s, t, _ in _edges() if _upward(s, t)}
    assert used >= EXCEPTIONS, f"no longer needed: {sorted(EXCEPTIONS - used)}"


def test_no_import_circle() -> None:
    import networkx as nx

    modules = {_module_name(path) for path in PACKAGE.rglob("*.py")}
    graph = nx.DiGraph()
    for source, target, _ in _edges(typing_only=False):
        while target not in modules and "." in target:
            target = target.rpartition(".")[0]  # `from threadkit.x import Name` -> threadkit.x
        if source != target:
            graph.add_edge(source, target)
    circles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert not circles, f"modules that import each other, directly or around a circle: {circles}"


@pytest.mark.parametrize(
    ("source", "target", "upward"),
    [
        ("threadkit.db.collection", "threadkit.frames.frame", True),
        ("threadkit.db.collection", "threadkit.peer", True),
        ("threadkit.frames.frame", "threadkit.db.collection", False),
        ("threadkit.graph", "threadkit.frames.frame", False),
        ("threadkit.net.node", "threadkit.frames.frame", True),
        ("threadkit.core.ids", "threadkit.errors", False),
        ("threadkit.errors", "threadkit.core.ids", True),
        ("threadkit.db.collection", "threadkit", True),
    ],
)
def test_the_check_itself(source: str, target: str, upward: bool) -> None:
    assert _upward(source, target) is upward


def test_function_local_typing_and_relative_imports_are_seen() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from threadkit.peer import Peer\n"
        "def f():\n"
        "    from ..frames.frame import to_pandas\n"
        "    from . import query\n"
        "    import pandas\n"
    )
    assert _imports_in(source, "threadkit.db") == [
        ("threadkit.peer", 3),
        ("threadkit.frames.frame", 5),
        ("threadkit.db.query", 6),
    ]


MAX_LINES = 800
"""The most lines a module may have (docs/architecture.md: one job per module)."""


def _modules() -> list[Path]:
    """Every hand-written module (the generated protobuf modules under api/proto excluded)."""
    return [
        path
        for path in sorted(PACKAGE.rglob("*.py"))
        if "proto" not in path.relative_to(PACKAGE).parts
    ]


def test_no_module_is_over_the_line_limit() -> None:
    long = [
        f"{path.relative_to(PACKAGE.parent)}: {lines} lines"
        for path in _modules()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    ]
    assert not long, f"modules over {MAX_LINES} lines (split them by job):\n" + "\n".join(long)


def _bindings(nodes: list[ast.stmt], package: str) -> set[tuple[str, str, str]]:
    """What the import statements among ``nodes`` bind: (module, name, bound as)."""
    bound: set[tuple[str, str, str]] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            bound |= {(a.name, "", a.asname or a.name) for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            bound |= {(module, a.name, a.asname or a.name) for a in node.names}
    return bound


def _reimports(source: str, package: str) -> list[tuple[str, int]]:
    """Imports inside functions that bind what the module's top level already imported."""
    tree = ast.parse(source)
    top = _bindings(tree.body, package)
    found = []
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(function):
                if (
                    isinstance(node, ast.Import | ast.ImportFrom)
                    and _bindings([node], package) & top
                ):
                    found.append((ast.unparse(node), node.lineno))
    return sorted(set(found), key=lambda item: item[1])


def test_no_function_re_imports_what_its_module_imports() -> None:
    wrong = []
    for path in _modules():
        module = _module_name(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        wrong += [
            f"{path.relative_to(PACKAGE.parent)}:{line}: {text}"
            for text, line in _reimports(path.read_text(encoding="utf-8"), package)
        ]
    assert not wrong, "function-local imports of what the module already imports:\n" + "\n".join(
        wrong
    )


def test_the_re_import_check_itself() -> None:
    source = (
        "import json\n"
        "from threadkit.db import dockeys\n"
        "from .events import decode_body\n"
        "def f():\n"
        "    import json\n"
        "    from threadkit.db.events import decode_body\n"
        "    from threadkit.db import dockeys as keys\n"
        "    from threadkit.db.events import encode_body\n"
    )
    assert _reimports(source, "threadkit.db") == [
        ("import json", 5),
        ("from threadkit.db.events import decode_body", 6),
    ]


COMPOSED = frozenset({"Collection", "Database"})
"""Names given twice on purpose: ``threadkit.views`` composes the user-facing class from the
store's class of the same name and the views."""


def test_one_meaning_per_class_name() -> None:
    where: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "proto" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                where.setdefault(node.name, []).append(_module_name(path))
    twice = {name: mods for name, mods in where.items() if len(mods) > 1 and name not in COMPOSED}
    assert not twice, f"one class name, two meanings: {twice}"
