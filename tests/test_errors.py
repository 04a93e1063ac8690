"""The error tree: its shape, its documentation, and that threadkit raises nothing off it."""

from __future__ import annotations

import ast
import functools
import inspect
import re
from pathlib import Path

import pytest

import threadkit
from threadkit import errors

PACKAGE = Path(threadkit.__file__).resolve().parent
ALL = [getattr(errors, name) for name in errors.__all__]

INVALID_INPUT = [
    "InvalidThreadID",
    "InvalidThreadKey",
    "InvalidKey",
    "InvalidAddress",
    "TooManyLogs",
    "InvalidToken",
    "InvalidTimestamp",
    "RecordError",
    "MalformedRecord",
    "OversizedRecord",
    "IntegrityError",
    "DecryptionError",
    "SignatureError",
    "ChainError",
]
NOT_FOUND = ["ThreadNotFound", "LogNotFound", "BlockNotFound"]


def test_all_is_sorted_and_unique() -> None:
    assert sorted(set(errors.__all__)) == errors.__all__


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_class_is_a_threadkit_error(cls: type) -> None:
    assert isinstance(cls, type)
    assert issubclass(cls, errors.ThreadkitError)
    assert issubclass(cls, Exception)
    assert cls.__module__ == "threadkit.errors"
    assert cls.__doc__, f"{cls.__name__} has no docstring"


def test_every_error_class_in_the_module_is_exported() -> None:
    defined = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__ == "threadkit.errors"
    }
    assert defined == set(errors.__all__)


@pytest.mark.parametrize("name", INVALID_INPUT)
def test_invalid_input_is_value_error(name: str) -> None:
    cls = getattr(errors, name)
    assert issubclass(cls, errors.InvalidInput)
    assert issubclass(cls, ValueError)


@pytest.mark.parametrize("name", NOT_FOUND)
def test_not_found_is_lookup_error(name: str) -> None:
    cls = getattr(errors, name)
    assert issubclass(cls, errors.NotFound)
    assert issubclass(cls, LookupError)


def test_value_error_exactly_for_invalid_input() -> None:
    for cls in ALL:
        assert issubclass(cls, ValueError) == issubclass(cls, errors.InvalidInput)
        assert issubclass(cls, LookupError) == issubclass(cls, errors.NotFound)


def test_store_errors_are_not_value_errors() -> None:
    for cls in ALL:
        if issubclass(cls, errors.StoreError):
            assert not issubclass(cls, errors.InvalidInput)


def _docstring_tree() -> dict[str, str | None]:
    """``{class name: parent name}`` from the box-drawing tree in the module docstring.

    A class's depth is the column of its ``├──``/``└──`` branch relative to the root.
    """
    doc = errors.__doc__ or ""
    tree: dict[str, str | None] = {}
    stack: list[str] = []
    root_column: int | None = None
    for line in doc.splitlines():
        branch = re.search(r"[├└]── ([A-Z]\w+)", line)
        if branch:
            if root_column is None:
                continue
            name = branch.group(1)
            depth = (branch.start() - root_column) // 4 + 1
        else:
            match = re.match(r"^(\s*)(ThreadkitError)\s*$", line)
            if not match:
                continue
            name, depth, root_column = match.group(2), 0, len(match.group(1))
        if name not in errors.__all__:
            continue
        del stack[depth:]
        tree[name] = stack[-1] if stack else None
        stack.append(name)
    return tree


def test_every_class_appears_in_the_docstring_tree() -> None:
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        assert re.search(rf"\b{name}\b", doc), f"{name} missing from the errors docstring"
    assert set(_docstring_tree()) == set(errors.__all__)


@pytest.mark.parametrize("name", errors.__all__)
def test_docstring_tree_matches_the_classes(name: str) -> None:
    parent = _docstring_tree()[name]
    cls = getattr(errors, name)
    if parent is None:
        assert cls is errors.ThreadkitError
    else:
        assert getattr(errors, parent) in cls.__bases__, f"{name} should subclass {parent}"


def test_log_gap_carries_missing() -> None:
    err = errors.LogGap("gap", missing=b"\x01\x71")
    assert err.missing == b"\x01\x71"
    assert str(err) == "gap"
    assert errors.LogGap("gap").missing is None


def test_catching_builtin_kinds_still_works() -> None:
    with pytest.raises(ValueError):
        raise errors.SignatureError("x")
    with pytest.raises(LookupError):
        raise errors.BlockNotFound("x")
    with pytest.raises(errors.RecordError):
        raise errors.OversizedRecord("x")


# -- static check: every raise in threadkit/ is on the tree -----------------------------

# (path relative to threadkit/, enclosing function, raised expression): raises that are
# deliberately off the tree. Keep this list short and explain each entry.
ALLOWED = {
    # the web proxy ends a request whose body stalls as aiohttp ends a lost connection:
    # aiohttp's server treats ConnectionResetError as the peer gone (no reply is sent)
    ("api/proxy.py", "_chunk", "ConnectionResetError"),
    # the cached-frame selector's internal signal that a query needs the store; caught in
    # select() which then leaves the query to the store (tests/frames/test_select.py)
    ("frames/select.py", "exact_floats", "_Unanswerable"),
    ("frames/select.py", "_criterion", "_Unanswerable"),
    # module __getattr__ must raise AttributeError for unknown names
    ("__init__.py", "__getattr__", "AttributeError"),
    # cbor2 semantic-decoder hooks: a ValueError refuses a tag (cbor2 wraps it, decode()
    # turns it into MalformedRecord); KeyError hands tag 42 on to the tag hook
    ("core/dagcbor.py", "_refuse_tag", "ValueError"),
    ("core/dagcbor.py", "__missing__", "KeyError"),
    # multiformats value codecs report MultiaddrValueError; parse_addr turns it into
    # InvalidAddress (tested in tests/core/test_addr.py)
    ("core/addr.py", "_p2p_encoder", "multiaddr.err.MultiaddrValueError"),
    ("core/addr.py", "_thread_encoder", "multiaddr.err.MultiaddrValueError"),
    ("core/addr.py", "_thread_decoder", "multiaddr.err.MultiaddrValueError"),
    ("core/addr.py", "_text_encoder", "multiaddr.err.MultiaddrValueError"),
    ("core/addr.py", "_text_decoder", "multiaddr.err.MultiaddrValueError"),
    # the query evaluator builds its InvalidQuery in a method of the undecided outcome
    ("db/matching.py", "matches", "outcome.error"),
    # the refusal policy of local writes re-raises the refusal it is handed (a ThreadkitError)
    ("db/judging.py", "refused", "exc"),
    # the columnar decoder's internal signal to fall back to cbor2; caught in decode()
    ("frames/cbor_columns.py", "head", "_Irregular"),
    ("frames/cbor_columns.py", "skip", "_Irregular"),
    ("frames/cbor_columns.py", "walk_map", "_Irregular"),
    ("frames/cbor_columns.py", "_key_bytes", "_Irregular"),
    ("frames/cbor_columns.py", "_walk", "_Irregular"),
    # attribute lookups must raise AttributeError (column namespaces, lazy module attributes)
    ("frames/columns.py", "__getattr__", "AttributeError"),
    ("widgets/__init__.py", "__getattr__", "AttributeError"),
    # an abstract method
    ("widgets/base.py", "render", "NotImplementedError"),
    # fastjsonschema's handler hook for remote $refs; schema.py turns it into InvalidSchema
    ("db/schema.py", "_refuse_fetch", "fastjsonschema.JsonSchemaDefinitionException"),
    # script rounds and workers: internal signals, caught by their callers (database._rounds,
    # scriptpool._Pool, the worker's request loop)
    ("db/database.py", "_prejudge", "_Again"),
    ("db/scriptcalls.py", "filter", "Deferred"),
    # an apply that may not wait refuses its script calls; caught in apply_records_now
    ("db/received.py", "run_missing", "_WouldWait"),
    ("db/scriptpool.py", "__init__", "_Dead"),
    ("db/scriptpool.py", "send", "_Dead"),
    ("db/scriptpool.py", "_fill", "_Dead"),
    ("db/scriptpool.py", "_fill", "_Late"),
    ("db/scriptworker.py", "build", "CompileError"),
    # decode_any raises the threadkit class its caller passes (checked below)
    ("core/_multibase.py", "decode_any", "error"),
    # the value model's walker signals the first bad value; value_problem() catches it
    ("db/values.py", "_walk", "_Bad"),
    ("db/values.py", "_walk", "problem"),
    ("db/values.py", "_walk", "refused"),
    # check_value raises the threadkit class its caller passes (InvalidDocument by default)
    ("db/values.py", "check_value", "error"),
}


def _python_files() -> list[Path]:
    # code generated by protoc is not ours to hold to the tree
    return sorted(
        p
        for p in PACKAGE.rglob("*.py")
        if "__pycache__" not in p.parts and not p.name.endswith(("_pb2.py", "_pb2_grpc.py"))
    )


def _error_bindings(tree: ast.Module) -> tuple[set[str], set[str]]:
    """Names bound to threadkit.errors classes, and names bound to the errors module."""
    classes: set[str] = set()
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "threadkit.errors":
            for alias in node.names:
                if alias.name in errors.__all__:
                    classes.add(alias.asname or alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module == "threadkit":
            for alias in node.names:
                if alias.name == "errors":
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "threadkit.errors" and alias.asname:
                    modules.add(alias.asname)
    return classes, modules


def _is_tree_class(expr: ast.expr | None, names: set[str], modules: set[str]) -> bool:
    if isinstance(expr, ast.Name):
        return expr.id in names
    if isinstance(expr, ast.Attribute) and expr.attr in errors.__all__:
        text = ast.unparse(expr.value)
        return text in modules or text in {"threadkit.errors", "tk.errors"}
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.BitOr):  # A | B
        return _is_tree_class(expr.left, names, modules) and _is_tree_class(
            expr.right, names, modules
        )
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):  # "A" annotation
        try:
            inner = ast.parse(expr.value, mode="eval").body
        except SyntaxError:
            return False
        return _is_tree_class(inner, names, modules)
    return False


def _local_subclasses(tree: ast.Module, known: set[str], modules: set[str]) -> set[str]:
    """Classes defined in the file that subclass a threadkit error (directly or not)."""
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ClassDef)
                and node.name not in found
                and any(_is_tree_class(b, known | found, modules) for b in node.bases)
            ):
                found.add(node.name)
                changed = True
    return found


class _FileInfo:
    """What one file binds: tree classes, the errors module, and error factories."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rel = path.relative_to(PACKAGE).as_posix()
        self.tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        self.classes, self.modules = _error_bindings(self.tree)
        self.names = self.classes | _local_subclasses(self.tree, self.classes, self.modules)
        # functions and methods annotated to return a tree class, e.g.
        # ``def thread_not_found(tid) -> ThreadNotFound`` used as ``raise thread_not_found(t)``
        self.factories = {
            node.name
            for node in ast.walk(self.tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and _is_tree_class(node.returns, self.names, self.modules)
        }


@functools.cache
def _scan() -> tuple[list[_FileInfo], frozenset[str]]:
    infos = [_FileInfo(p) for p in _python_files()]
    factories = frozenset(name for info in infos for name in info.factories)
    return infos, factories


def _imported_or_defined(info: _FileInfo, name: str) -> bool:
    if name in info.factories:
        return True
    for node in ast.walk(info.tree):
        if (
            isinstance(node, ast.ImportFrom)
            and (node.module or "").startswith("threadkit")
            and any((a.asname or a.name) == name for a in node.names)
        ):
            return True
    return False


class _RaiseVisitor(ast.NodeVisitor):
    """Every ``raise`` with its enclosing function and the handlers of enclosing ``try`` bodies."""

    def __init__(self) -> None:
        self.function: list[str] = ["<module>"]
        self.caught: list[list[str]] = [[]]
        self.raises: list[tuple[str, ast.Raise, frozenset[str]]] = []

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.function.append(node.name)
        self.caught.append([])  # handlers outside a function do not catch inside it
        self.generic_visit(node)
        self.caught.pop()
        self.function.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Try(self, node: ast.Try) -> None:
        names: list[str] = []
        for handler in node.handlers:
            kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
            names.extend(ast.unparse(k) for k in kinds if k is not None)
        self.caught[-1].extend(names)
        for stmt in node.body:
            self.visit(stmt)
        del self.caught[-1][len(self.caught[-1]) - len(names) :]
        for part in (*node.handlers, *node.orelse, *node.finalbody):
            self.visit(part)

    visit_TryStar = visit_Try  # type: ignore[assignment]

    def visit_Raise(self, node: ast.Raise) -> None:
        self.raises.append((self.function[-1], node, frozenset(self.caught[-1])))
        self.generic_visit(node)


def _raise_is_on_tree(info: _FileInfo, factories: frozenset[str], exc: ast.expr) -> bool:
    if isinstance(exc, ast.Call):
        func = exc.func
        if _is_tree_class(func, info.names, info.modules):
            return True
        # raise factory(...) / raise self.factory(...)
        if isinstance(func, ast.Name) and func.id in factories:
            return _imported_or_defined(info, func.id)
        return (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id in {"self", "cls"}
            and func.attr in info.factories
        )
    return _is_tree_class(exc, info.names, info.modules)


def _off_tree_raises(info: _FileInfo, factories: frozenset[str]) -> list[str]:
    if info.rel == "errors.py":
        return []
    visitor = _RaiseVisitor()
    visitor.visit(info.tree)
    bad = []
    for function, node, caught in visitor.raises:
        if node.exc is None:
            continue  # bare re-raise inside an except block
        if _raise_is_on_tree(info, factories, node.exc):
            continue
        exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        name = ast.unparse(exc)
        if name in caught:
            continue  # raised and caught by the same function (control flow)
        if function == "__next__" and name == "StopIteration":
            continue  # the iterator protocol
        if (info.rel, function, name) in ALLOWED:
            continue
        line = f"{info.rel}:{node.lineno} in {function}(): raise {ast.unparse(node.exc)[:80]}"
        bad.append(line)
    return bad


def test_static_every_raise_is_on_the_tree() -> None:
    infos, factories = _scan()
    assert any(info.rel == "core/records.py" for info in infos)
    bad = [line for info in infos for line in _off_tree_raises(info, factories)]
    assert not bad, "raises outside threadkit.errors:\n" + "\n".join(bad)


def test_static_allowlist_entries_still_exist() -> None:
    """A stale allowlist entry would silently permit a future off-tree raise."""
    seen = set()
    for info in _scan()[0]:
        visitor = _RaiseVisitor()
        visitor.visit(info.tree)
        for function, node, _caught in visitor.raises:
            if node.exc is not None:
                exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                seen.add((info.rel, function, ast.unparse(exc)))
    assert seen >= ALLOWED, f"stale entries: {ALLOWED - seen}"


def test_static_decode_any_is_given_tree_classes() -> None:
    """Every call of ``decode_any(text, error, what)`` passes a threadkit.errors class."""
    calls = 0
    for info in _scan()[0]:
        for node in ast.walk(info.tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "decode_any"
            ):
                calls += 1
                arg = node.args[1] if len(node.args) > 1 else None
                if arg is None:
                    arg = next(k.value for k in node.keywords if k.arg == "error")
                assert _is_tree_class(arg, info.names, info.modules), (
                    f"{info.rel}:{node.lineno} passes {ast.unparse(arg)}"
                )
    assert calls > 0


def test_static_checker_catches_an_off_tree_raise(tmp_path: Path) -> None:
    """The checker itself: off-tree raises are reported, tree raises are not."""
    source = inspect.cleandoc(
        """
        from threadkit.errors import InvalidKey as IK, NotFound
        from threadkit import errors

        class Local(IK):
            pass

        def missing(name) -> NotFound:
            return NotFound(name)

        def ok(x):
            if x == 1:
                raise IK("a")
            if x == 2:
                raise errors.SignatureError("b") from None
            if x == 3:
                raise Local("c")
            if x == 4:
                raise missing("d")
            try:
                pass
            except ValueError:
                raise

        def bad():
            raise ValueError("off the tree")

        def bad_too():
            raise KeyError

        def bad_factory():
            raise make_error()

        def local_control_flow(q):
            try:
                if q:
                    raise queue.Full
            except (queue.Full, KeyError):
                pass

        def handler_raise():
            try:
                pass
            except KeyError:
                raise KeyError("not caught here")

        class It:
            def __next__(self):
                raise StopIteration

            def get(self):
                raise StopIteration
        """
    )
    target = tmp_path / "probe.py"
    target.write_text(source)
    info = _FileInfo.__new__(_FileInfo)
    info.path, info.rel = target, "probe.py"
    info.tree = ast.parse(source)
    info.classes, info.modules = _error_bindings(info.tree)
    assert info.classes == {"IK", "NotFound"}
    assert info.modules == {"errors"}
    info.names = info.classes | _local_subclasses(info.tree, info.classes, info.modules)
    assert info.names == {"IK", "NotFound", "Local"}
    info.factories = {"missing"}
    bad = _off_tree_raises(info, frozenset({"missing"}))
    assert [line.split(" in ")[1] for line in bad] == [
        "bad(): raise ValueError('off the tree')",
        "bad_too(): raise KeyError",
        "bad_factory(): raise make_error()",
        "handler_raise(): raise KeyError('not caught here')",
        "get(): raise StopIteration",
    ]
