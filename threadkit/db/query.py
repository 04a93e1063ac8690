"""Queries: ThreadDB's query model and its JSON form.

What a query matches is :mod:`.matching`; the operations and value checks are
:mod:`.queryops`. This module re-exports both for ``from threadkit.db.query import``.

A :class:`Query` is ThreadDB's: ``ands`` (criteria that must all hold), ``ors``
(sub-queries, any of which suffices), a sort, ``seek``, ``skip``, ``limit`` and an
index hint. Build one fluently, each call returning a new query::

    where("age").gt(30).and_("name").eq("Alice").order_by("age").limit(10)
    where("a").eq(1).or_(where("b").in_([2, 3]))
    Query()                                         # every document

Operations carry ThreadDB's codes (:class:`Op`: ``EQ`` 0 … ``LE`` 5); ``IN`` 6,
``CONTAINS`` 7 and ``EXISTS`` 8 are threadkit's own extensions.

Semantics (:func:`matches`), deliberately stricter than ThreadDB's (docs/design.md §6-7):

- A document matches when its ``ands`` are non-empty and all hold, or when any
  of its ``ors`` matches, or when both are empty. (ThreadDB matched everything
  for empty ``ands`` plus ``ors``.)
- Dot paths walk nested objects. A missing field, a null, or a path through a
  non-object does not match any criterion (and is no error) — except
  ``exists(False)``, which matches a missing field; null counts as present.
- Numbers compare by exact value, ints and floats alike (``3 == 3.0``).
  Strings compare by code point (= UTF-8 byte order, as in Go). Booleans only
  compare for (in)equality.
- Comparing a field with a value of another JSON type is an **error**, never a
  silently dropped document — but only when the mismatch could change whether
  the document matches. Each criterion is true, false or *unknown* (a type
  mismatch, or ``contains`` on a field that is neither array nor string), and
  the ands/ors combine by three-valued (Kleene) logic: false wins an AND, true
  wins an OR. A document whose result is unknown raises
  :class:`~threadkit.errors.InvalidQuery` naming the path, the document ``_id``
  and both types. So ``where("a").eq(1).and_("b").eq("x")`` on ``{"a": 2,
  "b": 5}`` is simply false (the document is out whatever ``b`` holds), while on
  ``{"a": 1, "b": 5}`` it raises. This is what lets an index narrow the
  documents without ever changing the result or the error (see
  :mod:`threadkit.db.planner`).

JSON (:meth:`Query.to_json`, :meth:`Query.from_json`) is ThreadDB's wire form::

    {"ands": [{"fieldPath": "age", "operation": 2, "value": {"float": 30}}],
     "ors": [], "sort": {"fieldPath": "age", "desc": false},
     "seek": "", "limit": 0, "skip": 0, "index": ""}

Keys are read case-insensitively (Go sends ``Ands``/``FieldPath``, JS sends
``ands``/``fieldPath``); a ``null`` member counts as absent (Go writes nil
pointers as ``null``). A value is exactly one of ``{"string": s}``,
``{"float": n}``, ``{"bool": b}``; threadkit's extensions use ``{"list": [...]}``
(raw JSON scalars of one type) for ``IN`` and ``{"bool": flag}`` for ``EXISTS``;
``CONTAINS`` takes an ordinary value.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NoReturn, TypeVar

from threadkit.db.indexkeys import json_type
from threadkit.db.matching import matches, resolve
from threadkit.db.queryops import (
    INDEXABLE_OPS,
    MAX_QUERY_DEPTH,
    METHOD_NAMES,
    ORDERING_OPS,
    Op,
    Scalar,
    Value,
    check_count,
    check_path,
    check_value,
    typed,
)
from threadkit.errors import InvalidQuery

__all__ = [
    "INDEXABLE_OPS",
    "MAX_QUERY_DEPTH",
    "ORDERING_OPS",
    "Criterion",
    "CriterionBuilder",
    "Op",
    "Query",
    "Scalar",
    "Sort",
    "Value",
    "matches",
    "resolve",
    "where",
]

# --- the model -----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Criterion:
    """One condition on the value at a dot path.

    Parameters
    ----------
    path : str
        Dot path into the document, e.g. ``"Meta.TotalReads"``.
    op : Op
        The operation (an int code is accepted).
    value : Value
        A string, number or boolean; for ``IN`` a non-empty list or tuple of
        scalars of one JSON type (stored as a tuple); for ``EXISTS`` the flag.

    Raises
    ------
    InvalidQuery
        For an empty path, an unknown operation or a value the operation does
        not take (null, containers, NaN/infinity, ordering booleans, …).

    Notes
    -----
    Equality follows JSON: ``3`` equals ``3.0``, ``True`` does not equal ``1``.
    """

    path: str
    op: Op
    value: Value

    def __post_init__(self) -> None:
        path = check_path(self.path, "a criterion's field path")
        if isinstance(self.op, bool) or not isinstance(self.op, int):
            raise InvalidQuery(f"operation must be an Op or its int code, not {self.op!r}")
        try:
            op = Op(self.op)
        except ValueError:
            codes = ", ".join(f"{o.value} ({o.name})" for o in Op)
            raise InvalidQuery(f"unknown operation {self.op!r}; expected one of {codes}") from None
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "value", check_value(op, self.value, path))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Criterion):
            return NotImplemented
        return (self.path, self.op, typed(self.value)) == (
            other.path,
            other.op,
            typed(other.value),
        )

    def __hash__(self) -> int:
        return hash((self.path, self.op, typed(self.value)))

    def __repr__(self) -> str:
        return f"Criterion({self.path!r}, Op.{self.op.name}, {self.value!r})"

    @property
    def value_type(self) -> str:
        """The JSON type the criterion compares with (``"boolean"`` for ``EXISTS``)."""
        value = self.value
        return json_type(value[0] if isinstance(value, tuple) else value)

    def to_dict(self) -> dict[str, Any]:
        """ThreadDB's JSON object for this criterion (JS-style keys)."""
        return {"fieldPath": self.path, "operation": int(self.op), "value": _value_json(self)}

    def _call(self) -> str:
        """The builder call that adds this criterion, e.g. ``gt(30)``."""
        value = self.value
        if self.op is Op.IN:
            return f"in_({list(value) if isinstance(value, tuple) else value!r})"
        if self.op is Op.EXISTS:
            return "exists()" if value is True else "exists(False)"
        return f"{METHOD_NAMES[self.op]}({value!r})"


@dataclass(frozen=True)
class Sort:
    """A sort order: by the value at ``path``, ascending unless ``desc``.

    Parameters
    ----------
    path : str
        Dot path; ``"_id"`` orders by instance id.
    desc : bool, optional
        Descending order.
    """

    path: str
    desc: bool = False

    def __post_init__(self) -> None:
        check_path(self.path, "a sort path")
        if not isinstance(self.desc, bool):
            raise InvalidQuery(f"sort desc must be a boolean, not {self.desc!r}")


class _NoFieldSelected:
    """Criterion methods on a :class:`Query`: always an error, with a hint."""

    def _no_field(self, name: str) -> NoReturn:
        raise InvalidQuery(
            f"{name}() needs a field first: this query has no field selected "
            f"(a criterion method was called twice?); use .and_('path').{name}(...)"
        )

    def eq(self, value: object) -> NoReturn:
        """Always raises InvalidQuery: select a field with :meth:`Query.and_` first."""
        self._no_field("eq")

    def ne(self, value: object) -> NoReturn:
        """Always raises InvalidQuery: select a field with :meth:`Query.and_` first."""
        self._no_field("ne")

    def gt(self, value: object) -> NoReturn:
        """Always raises InvalidQuery: select a field with :meth:`Query.and_` first."""
        self._no_field("gt")

    def lt(self, value: object) -> NoReturn:
        """Always raises InvalidQuery: select a field with :meth:`Query.and_` first."""
        self._no_field("lt")

    def ge(self, value: object) -> NoReturn:
        """Always raises InvalidQuery: select a field with :meth:`Query.and_` first."""
        self._no_field("ge")

    def le(self, value: object) -> NoReturn:
        """Always raises InvalidQuery: select a field with :meth:`Query.and_` first."""
        self._no_field("le")

    def in_(self, values: object) -> NoReturn:
        """Always raises InvalidQuery: select a field with :meth:`Query.and_` first."""
        self._no_field("in_")

    def contains(self, value: object) -> NoReturn:
        """Always raises InvalidQuery: select a field with :meth:`Query.and_` first."""
        self._no_field("contains")

    def exists(self, flag: object = True) -> NoReturn:
        """Always raises InvalidQuery: select a field with :meth:`Query.and_` first."""
        self._no_field("exists")


@dataclass(frozen=True)
class Query(_NoFieldSelected):
    """A ThreadDB query; ``Query()`` matches every document.

    Build queries with :func:`where` and the methods below; each returns a new
    query and leaves the original unchanged. Field names differ from the
    builder methods so both can exist (``limit_count`` vs :meth:`limit`).

    Parameters
    ----------
    ands : tuple[Criterion, ...]
        Criteria that must all hold.
    ors : tuple[Query, ...]
        Sub-queries, any of which suffices. A branch may carry its own index
        hint but no sort, seek, skip or limit.
    sort : Sort | None
        Result order; ``None`` is ``_id`` ascending.
    seek_id : str
        Start at the first ``_id`` >= this (<= when ``_id`` descending); ``""``
        for none. Only with ``_id`` order.
    skip_count : int
        Results to skip after sorting and seeking.
    limit_count : int
        Most results to return; 0 for no limit.
    index_hint : str
        Path of an index the planner should prefer (a hint: results never
        depend on it); ``""`` for none.

    Raises
    ------
    InvalidQuery
        For any malformed part.

    Examples
    --------
    >>> q = where("age").gt(30).and_("name").eq("Alice").order_by("age").limit(10)
    >>> q
    where('age').gt(30).and_('name').eq('Alice').order_by('age').limit(10)
    >>> Query.from_json(q.to_json()) == q
    True
    >>> q.matches({"_id": "1", "age": 31, "name": "Alice"})
    True
    """

    ands: tuple[Criterion, ...] = ()
    ors: tuple[Query, ...] = ()
    sort: Sort | None = None
    seek_id: str = ""
    skip_count: int = 0
    limit_count: int = 0
    index_hint: str = ""

    def __post_init__(self) -> None:
        ands = tuple(self.ands)
        for criterion in ands:
            if not isinstance(criterion, Criterion):
                raise InvalidQuery(f"ands must hold Criterion objects, not {criterion!r}")
        ors = tuple(self.ors)
        for branch in ors:
            _check_branch(branch)
        object.__setattr__(self, "ands", ands)
        object.__setattr__(self, "ors", ors)
        if self.sort is not None and not isinstance(self.sort, Sort):
            raise InvalidQuery(f"sort must be a Sort or None, not {self.sort!r}")
        if not isinstance(self.seek_id, str):
            raise InvalidQuery(f"seek id must be a string, not {self.seek_id!r}")
        if self.seek_id and self.sort is not None and self.sort.path != "_id":
            raise InvalidQuery(
                f"seek() works only in _id order, but the query sorts by {self.sort.path!r}"
            )
        check_count(self.skip_count, "skip")
        check_count(self.limit_count, "limit")
        if not isinstance(self.index_hint, str):
            raise InvalidQuery(f"index hint must be a string, not {self.index_hint!r}")
        if self.index_hint:
            check_path(self.index_hint, "an index hint")

    # -- builder ------------------------------------------------------------------

    def and_(self, path: str) -> CriterionBuilder:
        """Select a field for another criterion that must also hold.

        Parameters
        ----------
        path : str
            Dot path of the field.

        Returns
        -------
        CriterionBuilder
            Call one of its operation methods to get the extended query.
        """
        return CriterionBuilder(path, self)

    def or_(self, query: Query) -> Query:
        """Add a sub-query that is sufficient on its own.

        Parameters
        ----------
        query : Query
            The alternative, e.g. ``where("b").in_([2, 3])``.

        Returns
        -------
        Query
            ``self`` with ``query`` appended to its ``ors``.
        """
        _check_branch(query)
        return replace(self, ors=(*self.ors, query))

    def order_by(self, path: str) -> Query:
        """Sort ascending by the value at ``path`` (the last order call wins)."""
        return replace(self, sort=Sort(check_path(path, "order_by() path")))

    def order_by_desc(self, path: str) -> Query:
        """Sort descending by the value at ``path`` (the last order call wins)."""
        return replace(self, sort=Sort(check_path(path, "order_by_desc() path"), True))

    def skip(self, n: int) -> Query:
        """Skip the first ``n`` results (after sorting and seeking)."""
        return replace(self, skip_count=check_count(n, f"skip({n!r})"))

    def limit(self, n: int) -> Query:
        """Return at most ``n`` results; ``0`` means no limit."""
        return replace(self, limit_count=check_count(n, f"limit({n!r})"))

    def seek(self, instance_id: str) -> Query:
        """Start at the first ``_id`` >= ``instance_id`` (<= in ``_id`` descending order)."""
        if not isinstance(instance_id, str) or not instance_id:
            raise InvalidQuery(f"seek() needs a non-empty instance id string, not {instance_id!r}")
        return replace(self, seek_id=instance_id)

    def use_index(self, path: str) -> Query:
        """Prefer the index on ``path`` (a hint; ignored when it cannot be used)."""
        return replace(self, index_hint=check_path(path, "use_index() path"))

    # -- semantics ----------------------------------------------------------------

    def matches(self, doc: Mapping[str, Any]) -> bool:
        """Whether ``doc`` satisfies this query's criteria; see :func:`matches`."""
        return matches(self, doc)

    # -- JSON ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """ThreadDB's query JSON as a dict, with JS-style keys (Go reads them too)."""
        sort = self.sort
        return {
            "ands": [criterion.to_dict() for criterion in self.ands],
            "ors": [branch.to_dict() for branch in self.ors],
            "sort": {
                "fieldPath": sort.path if sort is not None else "",
                "desc": sort.desc if sort is not None else False,
            },
            "seek": self.seek_id,
            "limit": self.limit_count,
            "skip": self.skip_count,
            "index": self.index_hint,
        }

    def to_json(self) -> str:
        """ThreadDB's query JSON text (what the ``Find`` RPC carries as ``queryJSON``)."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, data: str | bytes | bytearray | Mapping[str, Any]) -> Query:
        """Read ThreadDB's query JSON, as sent by Go (``Ands``) or JS (``ands``) clients.

        Parameters
        ----------
        data : str | bytes | bytearray | Mapping[str, Any]
            JSON text (UTF-8 bytes) or the already-decoded object.

        Returns
        -------
        Query

        Raises
        ------
        InvalidQuery
            For text that is not JSON or any malformed part; the message names
            the part, e.g. ``query.ors[0].ands[1].value``.
        """
        obj: object = data
        if isinstance(data, str | bytes | bytearray):
            try:
                obj = json.loads(data)
            except ValueError as exc:
                raise InvalidQuery(f"query JSON does not parse: {exc}") from None
            except RecursionError:
                raise InvalidQuery("query JSON is nested too deeply to parse") from None
        return _decode_query(obj, "query")

    # -- display ------------------------------------------------------------------

    def __repr__(self) -> str:
        if self.ands:
            first, *rest = self.ands
            text = f"where({first.path!r}).{first._call()}"
            text += "".join(f".and_({c.path!r}).{c._call()}" for c in rest)
        else:
            text = "Query()"
        text += "".join(f".or_({branch!r})" for branch in self.ors)
        if self.sort is not None:
            method = "order_by_desc" if self.sort.desc else "order_by"
            text += f".{method}({self.sort.path!r})"
        if self.seek_id:
            text += f".seek({self.seek_id!r})"
        if self.skip_count:
            text += f".skip({self.skip_count})"
        if self.limit_count:
            text += f".limit({self.limit_count})"
        if self.index_hint:
            text += f".use_index({self.index_hint!r})"
        return text


def _check_branch(branch: object) -> None:
    if isinstance(branch, CriterionBuilder):
        raise InvalidQuery(
            f"or_() takes a Query, but {branch!r} has no operation yet (add .eq(...) or similar)"
        )
    if not isinstance(branch, Query):
        raise InvalidQuery(f"or_() takes a Query, not {type(branch).__name__}")
    if branch.sort is not None or branch.seek_id or branch.skip_count or branch.limit_count:
        raise InvalidQuery(
            "an or_() branch cannot sort, seek, skip or limit; put those on the outer query"
        )
    if _depth(branch) >= MAX_QUERY_DEPTH:
        raise InvalidQuery(f"or_() branches are nested more than {MAX_QUERY_DEPTH} levels deep")


def _depth(query: Query) -> int:
    """Levels of ``or_`` nesting in a query (1 without branches), walked without recursion."""
    deepest = 0
    stack = [(query, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((branch, level + 1) for branch in node.ors)
    return deepest


class CriterionBuilder:
    """A field selected by :func:`where` or :meth:`Query.and_`, waiting for its operation.

    Each operation method returns a new :class:`Query` with the criterion added
    to the ``ands`` of the query the field was selected on.

    Parameters
    ----------
    path : str
        Dot path of the field.
    query : Query | None, optional
        The query to extend; a new empty one by default.
    """

    __slots__ = ("_path", "_query")

    def __init__(self, path: str, query: Query | None = None) -> None:
        self._path = check_path(path, "a field path")
        self._query = query if query is not None else Query()

    @property
    def path(self) -> str:
        """The selected dot path."""
        return self._path

    def __repr__(self) -> str:
        if self._query == Query():
            return f"where({self._path!r})"
        return f"{self._query!r}.and_({self._path!r})"

    def _add(self, op: Op, value: object) -> Query:
        criterion = Criterion(self._path, op, value)  # type: ignore[arg-type]
        return replace(self._query, ands=(*self._query.ands, criterion))

    def eq(self, value: Scalar) -> Query:
        """The field equals ``value`` (a string, number or boolean)."""
        return self._add(Op.EQ, value)

    def ne(self, value: Scalar) -> Query:
        """The field is present, not null, and not equal to ``value``."""
        return self._add(Op.NE, value)

    def gt(self, value: str | int | float) -> Query:
        """The field is greater than ``value`` (a string or number)."""
        return self._add(Op.GT, value)

    def lt(self, value: str | int | float) -> Query:
        """The field is less than ``value`` (a string or number)."""
        return self._add(Op.LT, value)

    def ge(self, value: str | int | float) -> Query:
        """The field is greater than or equal to ``value`` (a string or number)."""
        return self._add(Op.GE, value)

    def le(self, value: str | int | float) -> Query:
        """The field is less than or equal to ``value`` (a string or number)."""
        return self._add(Op.LE, value)

    def in_(self, values: Sequence[Scalar]) -> Query:
        """The field equals one of ``values`` (a non-empty list of one JSON type)."""
        return self._add(Op.IN, values)

    def contains(self, value: Scalar) -> Query:
        """The array field has an element equal to ``value``, or the string field the substring."""
        return self._add(Op.CONTAINS, value)

    def exists(self, flag: bool = True) -> Query:
        """The field is present (``flag``) or missing (``not flag``); null counts as present."""
        return self._add(Op.EXISTS, flag)


def where(path: str) -> CriterionBuilder:
    """Start a query with a criterion on the field at ``path``.

    Parameters
    ----------
    path : str
        Dot path, e.g. ``"Meta.TotalReads"``.

    Returns
    -------
    CriterionBuilder
        Call ``eq``, ``ne``, ``gt``, ``lt``, ``ge``, ``le``, ``in_``,
        ``contains`` or ``exists`` on it to get a :class:`Query`.

    Examples
    --------
    >>> where("a").eq(1).or_(where("b").in_([2, 3]))
    where('a').eq(1).or_(where('b').in_([2, 3]))
    """
    return CriterionBuilder(path)


# --- JSON decoding -------------------------------------------------------------------

_QUERY_KEYS = ("ands", "ors", "sort", "seek", "limit", "skip", "index")
_CRITERION_KEYS = ("fieldPath", "operation", "value")
_SORT_KEYS = ("fieldPath", "desc")
_VALUE_KEYS = ("string", "float", "bool", "list")


def _members(obj: object, where: str, keys: Sequence[str]) -> dict[str, Any]:
    """The non-null members of a JSON object, keyed by canonical name (case-insensitive)."""
    if not isinstance(obj, Mapping):
        raise InvalidQuery(f"{where} must be a JSON object, not {json_type(obj)}")
    canonical = {key.lower(): key for key in keys}
    seen: dict[str, str] = {}
    out: dict[str, Any] = {}
    for raw_key, value in obj.items():
        if not isinstance(raw_key, str) or raw_key.lower() not in canonical:
            raise InvalidQuery(
                f"{where} has an unknown member {raw_key!r}; expected {', '.join(keys)}"
            )
        key = canonical[raw_key.lower()]
        if key in seen:
            raise InvalidQuery(f"{where} has both {seen[key]!r} and {raw_key!r}")
        seen[key] = raw_key
        if value is not None:
            out[key] = value
    return out


def _json_list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidQuery(f"{where} must be a JSON array, not {json_type(value)}")
    return value


def _json_str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidQuery(f"{where} must be a string, not {json_type(value)}")
    return value


def _decode_query(obj: object, where: str, depth: int = 1) -> Query:
    if depth > MAX_QUERY_DEPTH:
        raise InvalidQuery(f"{where}: ors are nested more than {MAX_QUERY_DEPTH} levels deep")
    members = _members(obj, where, _QUERY_KEYS)
    ands = tuple(
        _decode_criterion(item, f"{where}.ands[{i}]")
        for i, item in enumerate(_json_list(members.get("ands", []), f"{where}.ands"))
    )
    ors = tuple(
        _decode_query(item, f"{where}.ors[{i}]", depth + 1)
        for i, item in enumerate(_json_list(members.get("ors", []), f"{where}.ors"))
    )
    sort: Sort | None = None
    if "sort" in members:
        sort_members = _members(members["sort"], f"{where}.sort", _SORT_KEYS)
        path = _json_str(sort_members.get("fieldPath", ""), f"{where}.sort.fieldPath")
        desc = sort_members.get("desc", False)
        if not isinstance(desc, bool):
            raise InvalidQuery(f"{where}.sort.desc must be a boolean, not {json_type(desc)}")
        if path:
            sort = _rewrap(lambda: Sort(path, desc), f"{where}.sort")
    seek = _json_str(members.get("seek", ""), f"{where}.seek")
    index = _json_str(members.get("index", ""), f"{where}.index")
    skip = _rewrap(lambda: check_count(members.get("skip", 0), "it"), f"{where}.skip")
    limit = _rewrap(lambda: check_count(members.get("limit", 0), "it"), f"{where}.limit")
    return _rewrap(
        lambda: Query(ands, ors, sort, seek, skip, limit, index),
        where,
    )


_T = TypeVar("_T")


def _rewrap(build: Callable[[], _T], where: str) -> _T:
    try:
        return build()
    except InvalidQuery as exc:
        raise InvalidQuery(f"{where}: {exc}") from None


def _decode_criterion(obj: object, where: str) -> Criterion:
    members = _members(obj, where, _CRITERION_KEYS)
    for key in _CRITERION_KEYS:
        if key not in members:
            raise InvalidQuery(f"{where} has no {key!r}")
    path = _json_str(members["fieldPath"], f"{where}.fieldPath")
    code = members["operation"]
    if isinstance(code, bool) or not isinstance(code, int) or code not in Op._value2member_map_:
        codes = ", ".join(f"{o.value} ({o.name})" for o in Op)
        raise InvalidQuery(f"{where}.operation must be one of {codes}, not {code!r}")
    op = Op(code)
    value = _decode_value(op, members["value"], f"{where}.value")
    return _rewrap(lambda: Criterion(path, op, value), where)  # type: ignore[arg-type]


def _decode_value(op: Op, obj: object, where: str) -> object:
    members = _members(obj, where, _VALUE_KEYS)
    if len(members) != 1:
        found = ", ".join(repr(k) for k in members) or "none"
        raise InvalidQuery(
            f"{where} must have exactly one of 'string', 'float', 'bool' (or 'list' for in); "
            f"found {found}"
        )
    ((kind, value),) = members.items()
    if kind == "string" and not isinstance(value, str):
        raise InvalidQuery(f"{where}.string must be a string, not {json_type(value)}")
    if kind == "float" and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise InvalidQuery(f"{where}.float must be a number, not {json_type(value)}")
    if kind == "bool" and not isinstance(value, bool):
        raise InvalidQuery(f"{where}.bool must be a boolean, not {json_type(value)}")
    if kind == "list" and not isinstance(value, list):
        raise InvalidQuery(f"{where}.list must be an array, not {json_type(value)}")
    if op is Op.IN and kind != "list":
        raise InvalidQuery(f"{where}: operation {op.value} (in) takes {{'list': [...]}}")
    if op is not Op.IN and kind == "list":
        raise InvalidQuery(f"{where}: 'list' is only for operation {Op.IN.value} (in)")
    if op is Op.EXISTS and kind != "bool":
        raise InvalidQuery(f"{where}: operation {op.value} (exists) takes {{'bool': flag}}")
    return value


def _value_json(criterion: Criterion) -> dict[str, Any]:
    value = criterion.value
    if isinstance(value, tuple):
        return {"list": list(value)}
    if isinstance(value, bool):
        return {"bool": value}
    if isinstance(value, str):
        return {"string": value}
    return {"float": value}


# --- matching ------------------------------------------------------------------------
