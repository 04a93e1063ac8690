"""The document store imports nothing above it: no views, widgets, network, API or peer.

Checked on the source (every ``import``, function-local ones too), so a view
method slipped back into ``threadkit.db`` fails here, not in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import threadkit.db

ALLOWED = ("threadkit.core", "threadkit.store", "threadkit.db", "threadkit.errors")
"""What ``threadkit.db`` may import from the package: the layers below it and the error tree."""


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def test_db_imports_only_downward() -> None:
    root = Path(threadkit.db.__file__).parent
    upward = [
        f"{path.name}:{line} imports {module}"
        for path in sorted(root.glob("*.py"))
        for line, module in _imports(path)
        if (module == "threadkit" or module.startswith("threadkit."))
        and not module.startswith(ALLOWED)
    ]
    assert upward == []


def test_the_check_sees_a_function_local_import(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from threadkit.frames.frame import to_pandas\n")
    assert _imports(source) == [(2, "threadkit.frames.frame")]
