"""pandas ``DataFrame.query`` syntax compiled to a :class:`~threadkit.db.query.Query`.

Supported, as in pandas:

- comparisons ``==  !=  <  <=  >  >=``, chained (``18 <= age < 65``), with the
  field on either side;
- ``and``/``or``/``not`` and ``&``/``|``/``~`` (``&`` and ``|`` bind like
  ``and``/``or``, as pandas makes them);
- ``in``/``not in`` with a list, and ``==``/``!=`` with a list (pandas reads
  those as ``in``/``not in``);
- ``@name`` for a local variable (``local_vars``), with attribute and index
  access (``@cfg.limit``, ``@bounds[0]``);
- ```odd name``` for a field whose name is not an identifier, and dotted paths
  (``meta.reads`` or ```meta.reads```) for nested fields;
- the methods ``isin``, ``between``, ``isna``/``isnull``, ``notna``/``notnull``;
- a bare boolean field (``active``, ``not active``).

Anything else — arithmetic, other calls, comparing two fields, subscripts of
fields — raises :class:`~threadkit.errors.InvalidQuery` naming the part.
Missing values follow pandas; see :mod:`threadkit.frames.logic` for the exact
mapping of ``not`` and missing fields.

Examples
--------
>>> compile_query("age > 30 and city in ['Oslo', 'Lima']")
where('age').gt(30).and_('city').in_(['Oslo', 'Lima'])
>>> limit = 5
>>> compile_query("not (`meta.reads` >= @limit)", local_vars={"limit": limit})
where('meta.reads').lt(5).or_(where('meta.reads').exists(False))
"""

from __future__ import annotations

import ast
import io
import keyword
import operator
import re
import tokenize
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from threadkit.db.query import Query
from threadkit.errors import InvalidQuery
from threadkit.frames.dtypes import schema_targets
from threadkit.frames.logic import And, Cmp, Const, Node, Not, Or, to_query

__all__ = ["compile_parsed", "compile_query", "parse"]

_QUERY_KEYWORDS = {"and", "or", "not", "in", "is", "True", "False", "None"}
_LOCAL = "__tk_local_"
_QUOTED = "__tk_name_"
_MAX_LENGTH = 100_000

_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_CMP_OPS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}
_PY_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
}
_ARITHMETIC = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.MatMult: "@",
    ast.BitXor: "^",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitAnd: "&",
    ast.BitOr: "|",
}


@dataclass(frozen=True)
class _Field:
    path: str


@dataclass(frozen=True)
class _Value:
    value: Any


# --- preprocessing -------------------------------------------------------------------


def _quote_names(text: str) -> tuple[str, list[str]]:
    """Replace ```names``` with placeholders (outside string literals)."""
    out: list[str] = []
    names: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "'\"":
            quote = text[i : i + 3] if text[i : i + 3] in ("'''", '"""') else ch
            end = i + len(quote)
            while end < n and not text.startswith(quote, end):
                end += 2 if text[end] == "\\" else 1
            out.append(text[i : end + len(quote)])
            i = end + len(quote)
        elif ch == "`":
            end = text.find("`", i + 1)
            if end < 0:
                raise InvalidQuery(f"unclosed backtick in {text!r} (at position {i})")
            name = text[i + 1 : end]
            if not name:
                raise InvalidQuery(f"empty backticked name in {text!r}")
            out.append(f" {_QUOTED}{len(names)} ")
            names.append(name)
            i = end + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out), names


def _rewrite_tokens(text: str) -> str:
    """pandas' token rewrites: ``&``/``|`` → ``and``/``or``; ``@name`` → a local placeholder."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError) as exc:
        raise InvalidQuery(f"cannot parse {text.strip()!r}: {exc}") from None
    out: list[tuple[int, str]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == tokenize.OP and tok.string in ("&", "|"):
            out.append((tokenize.NAME, "and" if tok.string == "&" else "or"))
        elif tok.type == tokenize.OP and tok.string == "@":
            following = tokens[i + 1] if i + 1 < len(tokens) else None
            if following is None or following.type != tokenize.NAME:
                raise InvalidQuery("'@' must be followed by a local variable name")
            out.append((tokenize.NAME, _LOCAL + following.string))
            i += 1
        elif tok.type in (tokenize.NL, tokenize.NEWLINE):
            out.append((tokenize.NAME, " "))
        else:
            out.append((tok.type, tok.string))
        i += 1
    return tokenize.untokenize(out)


def _display(source: str, names: list[str]) -> str:
    """Source text with placeholders turned back into ``@name`` and ```name```."""
    source = re.sub(_LOCAL + r"(\w+)", r"@\1", source)
    return re.sub(_QUOTED + r"(\d+)", lambda m: f"`{names[int(m.group(1))]}`", source)


# --- AST → condition tree ------------------------------------------------------------


class _Converter:
    def __init__(self, names: list[str], local_vars: Mapping[str, Any]) -> None:
        self.names = names
        self.local_vars = local_vars

    def show(self, node: ast.AST) -> str:
        return _display(ast.unparse(node), self.names)

    def unsupported(self, node: ast.AST, what: str) -> InvalidQuery:
        return InvalidQuery(f"{what} is not supported in a query: {self.show(node)}")

    def condition(self, node: ast.AST) -> Node:
        if isinstance(node, ast.BoolOp):
            parts = tuple(self.condition(v) for v in node.values)
            return And(parts) if isinstance(node.op, ast.And) else Or(parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.Invert):
            return Not(self.condition(node.operand))
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        operand = self.operand(node)
        if isinstance(operand, _Field):
            return Cmp(operand.path, "==", True)
        if isinstance(operand.value, bool):
            return Const(operand.value)
        raise InvalidQuery(f"{self.show(node)} is a value, not a condition")

    def compare(self, node: ast.Compare) -> Node:
        parts: list[Node] = []
        left = self.operand(node.left)
        left_node = node.left
        for op_node, right_node in zip(node.ops, node.comparators, strict=True):
            right = self.operand(right_node)
            op = _CMP_OPS.get(type(op_node), "")
            if not op:
                raise self.unsupported(node, "'is' (use == or .isna())")
            parts.append(self.pair(left, op, right, node, left_node, right_node))
            left, left_node = right, right_node
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def pair(
        self,
        left: _Field | _Value,
        op: str,
        right: _Field | _Value,
        node: ast.AST,
        left_node: ast.AST,
        right_node: ast.AST,
    ) -> Node:
        if isinstance(left, _Field) and isinstance(right, _Field):
            raise InvalidQuery(
                f"comparing two fields ({self.show(left_node)} and {self.show(right_node)}) "
                f"is not supported in a query: {self.show(node)}"
            )
        if isinstance(left, _Value) and isinstance(right, _Value):
            try:
                return Const(bool(_PY_OPS[op](left.value, right.value)))
            except TypeError as exc:
                raise InvalidQuery(f"cannot evaluate {self.show(node)}: {exc}") from None
        if isinstance(right, _Field):
            if op in ("in", "not in"):
                raise InvalidQuery(
                    f"'{op}' needs the field on the left and a list on the right: {self.show(node)}"
                )
            assert isinstance(left, _Value)
            return self.pair(right, _FLIP[op], left, node, right_node, left_node)
        assert isinstance(left, _Field) and isinstance(right, _Value)
        value = right.value
        if op in ("==", "!=") and isinstance(value, list | tuple | set | frozenset):
            op = "in" if op == "==" else "not in"
        return Cmp(left.path, op, value)

    def call(self, node: ast.Call) -> Node:
        func = node.func
        if not isinstance(func, ast.Attribute) or (node.keywords and func.attr != "between"):
            raise self.unsupported(node, "a function call")
        target = self.operand(func.value)
        if not isinstance(target, _Field):
            raise self.unsupported(node, "a function call")
        args = [self.value(a) for a in node.args]
        method = func.attr
        path = target.path
        if method in ("isna", "isnull", "notna", "notnull") and not args:
            return Cmp(path, "isna" if method in ("isna", "isnull") else "notna")
        if method == "isin" and len(args) == 1 and not node.keywords:
            return Cmp(path, "in", args[0])
        if method == "between" and len(args) == 2:
            inclusive = "both"
            for kw in node.keywords:
                if kw.arg != "inclusive":
                    raise self.unsupported(node, f"the keyword {kw.arg!r}")
                inclusive = self.value(kw.value)
            return between(path, args[0], args[1], inclusive)
        raise self.unsupported(node, f"the method call .{method}()")

    def value(self, node: ast.AST) -> Any:
        operand = self.operand(node)
        if isinstance(operand, _Field):
            raise InvalidQuery(f"expected a value, found the field {self.show(node)}")
        return operand.value

    def operand(self, node: ast.AST) -> _Field | _Value:
        if isinstance(node, ast.Constant):
            return _Value(node.value)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.Attribute):
            base = self.operand(node.value)
            if isinstance(base, _Field):
                return _Field(f"{base.path}.{node.attr}")
            try:
                return _Value(getattr(base.value, node.attr))
            except AttributeError:
                raise InvalidQuery(f"{self.show(node)}: no such attribute") from None
        if isinstance(node, ast.Subscript):
            base = self.operand(node.value)
            if isinstance(base, _Field):
                raise self.unsupported(node, "indexing a field")
            index = self.value(node.slice)
            try:
                return _Value(base.value[index])
            except (LookupError, TypeError) as exc:
                raise InvalidQuery(f"{self.show(node)}: {exc!r}") from None
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            return _Value([self.value(e) for e in node.elts])
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            inner = self.operand(node.operand)
            if isinstance(inner, _Value) and isinstance(inner.value, int | float):
                if isinstance(inner.value, bool):
                    raise self.unsupported(node, "arithmetic")
                return _Value(-inner.value if isinstance(node.op, ast.USub) else inner.value)
            raise self.unsupported(node, "arithmetic")
        if isinstance(node, ast.BinOp):
            symbol = _ARITHMETIC.get(type(node.op), "an operator")
            raise self.unsupported(node, f"arithmetic ({symbol})")
        if isinstance(node, ast.Call):
            raise self.unsupported(node, "a function call")
        if isinstance(node, ast.BoolOp | ast.Compare | ast.UnaryOp):
            raise InvalidQuery(f"a condition cannot be used as a value: {self.show(node)}")
        raise self.unsupported(node, f"the expression ({type(node).__name__})")

    def name(self, node: ast.Name) -> _Field | _Value:
        ident = node.id
        if ident.startswith(_LOCAL):
            local = ident[len(_LOCAL) :]
            if local not in self.local_vars:
                raise InvalidQuery(f"local variable {local!r} is not defined (used as @{local})")
            return _Value(self.local_vars[local])
        if ident.startswith(_QUOTED):
            return _Field(self.names[int(ident[len(_QUOTED) :])])
        return _Field(ident)


def between(path: str, low: Any, high: Any, inclusive: Any = "both") -> Node:
    """``low <= path <= high`` (``inclusive``: "both", "neither", "left" or "right")."""
    sides = {"both": ("<=", "<="), "neither": ("<", "<"), "left": ("<=", "<"), "right": ("<", "<=")}
    if inclusive not in sides:
        raise InvalidQuery(
            f"between(inclusive=...) takes 'both', 'neither', 'left' or 'right', not {inclusive!r}"
        )
    low_op, high_op = sides[inclusive]
    return And((Cmp(path, _FLIP[low_op], low), Cmp(path, high_op, high)))


def parse(text: str, local_vars: Mapping[str, Any] | None = None) -> Node:
    """Parse pandas query text into a condition tree (:mod:`threadkit.frames.logic`).

    Raises
    ------
    InvalidQuery
        For text that does not parse or uses anything unsupported (named in the message).
    """
    if not isinstance(text, str):
        raise InvalidQuery(f"a query expression must be a string, not {type(text).__name__}")
    if not text.strip():
        raise InvalidQuery("the query expression is empty")
    if len(text) > _MAX_LENGTH:
        raise InvalidQuery(f"the query expression is longer than {_MAX_LENGTH} characters")
    if local_vars is not None and not isinstance(local_vars, Mapping):
        raise InvalidQuery(f"local_vars must be a mapping, not {type(local_vars).__name__}")
    quoted, names = _quote_names(text)
    source = _rewrite_tokens(quoted)
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        shown = _display(source.strip(), names)
        words = [w for w in re.findall(r"[A-Za-z_]\w*", quoted) if keyword.iskeyword(w)]
        clash = [w for w in words if w not in _QUERY_KEYWORDS]
        hint = f"; {clash[0]!r} is a Python keyword: write `{clash[0]}`" if clash else ""
        raise InvalidQuery(f"cannot parse {text!r}: {exc.msg} (read as {shown!r}){hint}") from None
    return _Converter(names, local_vars or {}).condition(tree.body)


def compile_query(
    text: str,
    *,
    local_vars: Mapping[str, Any] | None = None,
    schema: Mapping[str, Any] | None = None,
) -> Query:
    """Compile pandas ``DataFrame.query`` text to a Query.

    Parameters
    ----------
    text : str
        The expression, e.g. ``"age > 30 and city in ['Oslo', 'Lima']"``.
    local_vars : Mapping[str, Any], optional
        What ``@name`` refers to (the caller's locals, usually).
    schema : Mapping, optional
        The collection's JSON Schema: values are checked against field types,
        date-times converted to their stored form, bare fields must be boolean.

    Returns
    -------
    Query
        A query the planner can answer with indexes.

    Raises
    ------
    InvalidQuery
        Naming the unsupported or invalid part.

    Examples
    --------
    >>> compile_query("18 <= age < 65 | name == 'root'")
    where('age').ge(18).and_('age').lt(65).or_(where('name').eq('root'))
    >>> compile_query("age * 2 > 10")
    Traceback (most recent call last):
    ...
    threadkit.errors.InvalidQuery: arithmetic (*) is not supported in a query: age * 2
    """
    return compile_parsed(parse(text, local_vars), schema)


def compile_parsed(node: Node, schema: Mapping[str, Any] | None = None) -> Query:
    """The Query of a condition :func:`parse` gave (as :func:`compile_query` finishes).

    Raises
    ------
    InvalidQuery
        For a bare non-boolean field or a value of the wrong type for the schema.
    """
    if schema:
        _check_bare_fields(node, schema)
    return to_query(node, schema)


def _check_bare_fields(node: Node, schema: Mapping[str, Any]) -> None:
    """A bare field used as a condition must be boolean (when the schema says what it is)."""

    targets = schema_targets(schema)[0]
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Cmp):
            target = targets.get(item.path)
            if item.op == "==" and item.value is True and target not in (None, "boolean"):
                raise InvalidQuery(
                    f"{item.path!r} is not a boolean field ({target}); compare it, "
                    f"e.g. {item.path} > 0"
                )
        elif isinstance(item, Not):
            stack.append(item.part)
        elif isinstance(item, And | Or):
            stack.extend(item.parts)
