"""Column expressions: ``coll.c.age > 30`` and friends, compiled to a Query.

``coll.c`` is a :class:`ColumnNamespace`; its attributes and items are
:class:`Column` objects naming dot paths (``coll.c.meta.reads`` is the field
``meta.reads``; ``coll.c["odd name"]`` any name). Comparing a column with a
value gives an :class:`Expr`; combine them with ``&``, ``|`` and ``~`` (not
``and``/``or``/``not``, which Python cannot overload), as with pandas Series.
Semantics, missing values included, are those of
:mod:`threadkit.frames.logic`.

Examples
--------
>>> c = ColumnNamespace()
>>> ((c.age > 30) & (c.city == "Oslo")).to_query()
where('age').gt(30).and_('city').eq('Oslo')
>>> (~c["odd name"].isin(["a", "b"])).to_query()
where('odd name').ne('a').and_('odd name').ne('b').or_(where('odd name').exists(False))
>>> (c.meta.reads >= 5).to_query()
where('meta.reads').ge(5)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from threadkit.db.query import Query
from threadkit.errors import InvalidQuery
from threadkit.frames.expr import between
from threadkit.frames.logic import And, Cmp, Node, Not, Or, describe, to_query

__all__ = ["Column", "ColumnNamespace", "Expr", "as_condition"]

_AMBIGUOUS = (
    "a column expression has no truth value: combine conditions with & | ~ "
    "(not and/or/not) and parenthesise each comparison, e.g. (c.a > 1) & (c.b < 2)"
)


def as_condition(value: object) -> Node:
    """The condition tree of an Expr, or of a Column used as a boolean (``== True``)."""
    if isinstance(value, Expr):
        return value.node
    if isinstance(value, Column):
        return Cmp(value.path, "==", True)
    raise InvalidQuery(
        f"expected a column expression (e.g. coll.c.age > 30), not {type(value).__name__}"
    )


class Expr:
    """A condition on fields; combine with ``&``, ``|``, ``~``; compile with :meth:`to_query`.

    Examples
    --------
    >>> c = ColumnNamespace()
    >>> (c.a > 1) | (c.b == "x")
    Expr((a > 1) | (b == 'x'))
    """

    __slots__ = ("node",)

    def __init__(self, node: Node) -> None:
        self.node = node

    def __and__(self, other: object) -> Expr:
        return Expr(And((self.node, as_condition(other))))

    def __rand__(self, other: object) -> Expr:
        return Expr(And((as_condition(other), self.node)))

    def __or__(self, other: object) -> Expr:
        return Expr(Or((self.node, as_condition(other))))

    def __ror__(self, other: object) -> Expr:
        return Expr(Or((as_condition(other), self.node)))

    def __invert__(self) -> Expr:
        return Expr(Not(self.node))

    def __bool__(self) -> NoReturn:
        raise InvalidQuery(_AMBIGUOUS)

    def to_query(self, schema: Mapping[str, Any] | None = None) -> Query:
        """The Query (``schema``: the collection's, to check values and convert date-times)."""
        return to_query(self.node, schema)

    def __repr__(self) -> str:
        return f"Expr({describe(self.node)})"


class Column:
    """A field, by dot path; compare it with values to get an :class:`Expr`.

    Attribute access goes one level down (``c.meta.reads``); use ``c["name"]``
    for names that are not identifiers or that clash with a method.
    """

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        if not isinstance(path, str) or not path or "" in path.split("."):
            raise InvalidQuery(f"a column name must be a non-empty dot path, not {path!r}")
        self.path = path

    def __getattr__(self, name: str) -> Column:
        if name.startswith("__"):
            raise AttributeError(name)
        return Column(f"{self.path}.{name}")

    def __getitem__(self, name: str) -> Column:
        return Column(f"{self.path}.{name}")

    def _cmp(self, op: str, value: object) -> Expr:
        if isinstance(value, Column | Expr):
            other = value.path if isinstance(value, Column) else describe(value.node)
            raise InvalidQuery(
                f"comparing two fields ({self.path} and {other}) is not supported in a query"
            )
        if op in ("==", "!=") and isinstance(value, list | tuple | set | frozenset):
            return Expr(Cmp(self.path, "in" if op == "==" else "not in", value))
        return Expr(Cmp(self.path, op, value))

    def __eq__(self, value: object) -> Expr:  # type: ignore[override]
        return self._cmp("==", value)

    def __ne__(self, value: object) -> Expr:  # type: ignore[override]
        return self._cmp("!=", value)

    def __lt__(self, value: object) -> Expr:
        return self._cmp("<", value)

    def __le__(self, value: object) -> Expr:
        return self._cmp("<=", value)

    def __gt__(self, value: object) -> Expr:
        return self._cmp(">", value)

    def __ge__(self, value: object) -> Expr:
        return self._cmp(">=", value)

    __hash__ = None  # type: ignore[assignment]

    def isin(self, values: Iterable[Any]) -> Expr:
        """The field equals one of ``values`` (pandas' ``Series.isin``)."""
        return Expr(Cmp(self.path, "in", values))

    def between(self, left: Any, right: Any, inclusive: str = "both") -> Expr:
        """``left <= field <= right`` (``inclusive``: "both", "neither", "left", "right")."""

        return Expr(between(self.path, left, right, inclusive))

    def isna(self) -> Expr:
        """The field is missing."""
        return Expr(Cmp(self.path, "isna"))

    def notna(self) -> Expr:
        """The field is present."""
        return Expr(Cmp(self.path, "notna"))

    isnull = isna
    notnull = notna

    def __invert__(self) -> Expr:
        return Expr(Not(Cmp(self.path, "==", True)))

    def __and__(self, other: object) -> Expr:
        return Expr(And((as_condition(self), as_condition(other))))

    def __or__(self, other: object) -> Expr:
        return Expr(Or((as_condition(self), as_condition(other))))

    def __bool__(self) -> NoReturn:
        raise InvalidQuery(_AMBIGUOUS)

    def to_query(self, schema: Mapping[str, Any] | None = None) -> Query:
        """The field used as a condition: ``field == True``."""
        return to_query(as_condition(self), schema)

    def __repr__(self) -> str:
        return f"Column({self.path!r})"


class ColumnNamespace:
    """``coll.c``: attribute or item access gives a :class:`Column`.

    Parameters
    ----------
    paths : Iterable[str], optional
        Known field paths, offered for tab completion.
    """

    __slots__ = ("_paths",)

    def __init__(self, paths: Iterable[str] = ()) -> None:
        self._paths = tuple(paths)

    def __getattr__(self, name: str) -> Column:
        if name.startswith("__"):
            raise AttributeError(name)
        return Column(name)

    def __getitem__(self, name: str) -> Column:
        return Column(name)

    def __dir__(self) -> list[str]:
        return sorted({p.split(".")[0] for p in self._paths if p.split(".")[0].isidentifier()})

    def __repr__(self) -> str:
        return f"ColumnNamespace({list(self._paths)!r})"
