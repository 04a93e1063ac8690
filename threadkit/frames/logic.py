"""Boolean conditions on fields, with pandas' missing-value semantics, compiled to a Query.

Both the text compiler (:mod:`.expr`) and column expressions (:mod:`.columns`)
build the same small tree — :class:`Cmp` leaves under :class:`And`, :class:`Or`,
:class:`Not` and :class:`Const` — and :func:`to_query` turns it into a
:class:`~threadkit.db.query.Query`.

Missing values
--------------
pandas (on NumPy-backed columns, where a missing value is NaN or None) makes
every comparison with a missing value False — except ``!=``, which is True —
and ``~``/``not`` simply flips the result. So ``~(a > 1)`` is True where ``a``
is missing. The Query model has no NOT, and its criteria never match a missing
field (only ``exists(False)`` does), so ``not`` is pushed down to the leaves
(De Morgan) and each leaf says explicitly whether a missing field matches:

====================== ================================================
condition              Query
====================== ================================================
``a == v``             ``where(a).eq(v)``
``a != v``             ``eq``'s complement: ``ne(v)`` OR ``exists(False)``
``a < v`` (``<=``…)    ``where(a).lt(v)``
``not (a < v)``        ``ge(v)`` OR ``exists(False)`` (likewise ``<=``, ``>``, ``>=``)
``a in [x, y]``        ``in_([x, y])`` (``eq`` for one value; never for none)
``a not in [x, y]``    ``ne(x) AND ne(y)`` OR ``exists(False)``
``a.isna()``           ``exists(False)``;  ``a.notna()``: ``exists(True)``
bare ``flag``          ``flag == True``
``x == NaN``/``None``  nothing matches (``!=``: everything), as in pandas
``a in [x, None]``     also matches a missing ``a`` (pandas' ``isin`` does)
====================== ================================================

``not``/``~`` of ``and``/``or`` swaps them; the result is put in disjunctive
normal form (an OR of ANDs — a Query's ``ands`` plus ``ors`` branches),
dropping branches that cannot match (``exists(False)`` next to another
criterion on the same field) and branches another one already covers.
Nothing-matches is ``where("_id").exists(False)``.

One gap: the Query model treats a stored JSON **null** as present for
``exists`` but as no value for comparisons, so no criterion matches a null
alone; ``not (a > 1)`` and ``a != 1`` miss documents whose ``a`` is null
(pandas would include them). Documents written by ``from_pandas`` never hold
nulls (missing values are left out).

Comparing a field with a value of another JSON type raises
:class:`~threadkit.errors.InvalidQuery` — here when the schema says so, else
when a document decides it (as ``coll.find`` does); pandas would mostly raise
too.

Examples
--------
>>> to_query(Not(Cmp("a", ">", 1)))
where('a').le(1).or_(where('a').exists(False))
>>> to_query(And((Cmp("a", "in", [1, 2]), Cmp("b", "==", "x"))))
where('a').in_([1, 2]).and_('b').eq('x')
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from threadkit.db.indexkeys import json_type
from threadkit.db.query import Criterion, Op, Query, where
from threadkit.errors import InvalidQuery
from threadkit.frames.dtypes import datetime_text, schema_targets

__all__ = [
    "MAX_BRANCHES",
    "OPS",
    "And",
    "Cmp",
    "Const",
    "Node",
    "Not",
    "Or",
    "describe",
    "to_query",
]

MAX_BRANCHES = 256
"""Most OR branches an expression may expand to (``and`` of ``or`` s multiplies them)."""

OPS = ("==", "!=", "<", "<=", ">", ">=", "in", "not in", "isna", "notna")
"""Leaf operations."""

_NEGATED = {
    "==": "!=",
    "!=": "==",
    "<": "!<",
    "<=": "!<=",
    ">": "!>",
    ">=": "!>=",
    "!<": "<",
    "!<=": "<=",
    "!>": ">",
    "!>=": ">=",
    "in": "not in",
    "not in": "in",
    "isna": "notna",
    "notna": "isna",
}
_ORDER = {"<": Op.LT, "<=": Op.LE, ">": Op.GT, ">=": Op.GE}
_COMPLEMENT = {"!<": Op.GE, "!<=": Op.GT, "!>": Op.LE, "!>=": Op.LT}


@dataclass(frozen=True)
class Cmp:
    """A condition on one field: ``path op value`` (``value`` unused for isna/notna)."""

    path: str
    op: str
    value: Any = None

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise InvalidQuery(f"unknown comparison {self.op!r}")


@dataclass(frozen=True)
class And:
    """All of ``parts``."""

    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """Any of ``parts``."""

    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    """The negation of ``part`` (pandas' ``~``)."""

    part: Node


@dataclass(frozen=True)
class Const:
    """Always true or always false."""

    value: bool


Node: TypeAlias = Cmp | And | Or | Not | Const
Term: TypeAlias = tuple[Criterion, ...]


def describe(node: Node) -> str:
    """A pandas-style rendering of a condition, for messages and reprs.

    Examples
    --------
    >>> describe(Or((Cmp("a", ">", 1), Not(Cmp("b", "in", ["x"])))))
    "(a > 1) | (~(b in ['x']))"
    """
    if isinstance(node, Cmp):
        name = (
            node.path
            if node.path.replace(".", "").replace("_", "").isalnum()
            else (f"`{node.path}`")
        )
        if node.op in ("isna", "notna"):
            return f"{name}.{node.op}()"
        return f"{name} {node.op} {node.value!r}"
    if isinstance(node, Const):
        return repr(node.value)
    if isinstance(node, Not):
        return f"~({describe(node.part)})"
    joiner = " & " if isinstance(node, And) else " | "
    return joiner.join(f"({describe(p)})" for p in node.parts)


# --- values --------------------------------------------------------------------------


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return type(value).__name__ in ("NAType", "NaTType")


def _scalar(value: Any, path: str, target: str | None) -> Any:
    """A comparison value as the store holds it (NumPy unwrapped, date-times as text)."""
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy" and getattr(value, "ndim", 1) == 0:
        value = item()
    if _is_missing(value):
        return None
    if isinstance(value, dt.date) or "datetime64" in type(value).__name__:
        value = _datetime_value(value, path, target)
    if isinstance(value, str) and target in ("date-time", "date") and value:
        value = _date_text(value, target)
    if target is not None and not isinstance(value, dt.date):
        _check_type(value, path, target)
    return value


def _datetime_value(value: Any, path: str, target: str | None) -> Any:
    import pandas as pd

    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    stamp = stamp.tz_convert("UTC")
    if path == "_mod":
        return int(stamp.value)
    if target == "date" and stamp == stamp.normalize():
        return stamp.date().isoformat()

    try:
        return datetime_text(stamp.floor("us")) if stamp.nanosecond else datetime_text(stamp)
    except ValueError as exc:
        raise InvalidQuery(str(exc)) from None


def _date_text(text: str, target: str) -> str:
    """Text compared with a date-time field, in the stored form (when it parses)."""
    import pandas as pd

    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError):
        return text
    value = _datetime_value(stamp, "", target)
    return str(value)


_TYPES = {
    "integer": ("number",),
    "number": ("number",),
    "boolean": ("boolean",),
    "string": ("string",),
    "date-time": ("string",),
    "date": ("string",),
}


def _check_type(value: Any, path: str, target: str) -> None:

    allowed = _TYPES.get(target)
    found = json_type(value)
    if allowed is not None and found not in allowed:
        raise InvalidQuery(
            f"cannot compare {path!r} ({target} in the schema) with {value!r} (a {found})"
        )


# --- DNF -----------------------------------------------------------------------------


def _contradicts(term: Term) -> bool:
    """True when a term holds exists(False) on a path and another criterion under it."""
    missing = [c.path for c in term if c.op is Op.EXISTS and c.value is False]
    for path in missing:
        for c in term:
            under = c.path == path or c.path.startswith(path + ".")
            if under and not (c.op is Op.EXISTS and c.value is False):
                return True
    return False


def _simplify(terms: list[Term]) -> list[Term]:
    unique: dict[frozenset[Criterion], Term] = {}
    for term in terms:
        if not _contradicts(term):
            unique.setdefault(frozenset(term), term)
    sets = list(unique)
    kept = [unique[s] for s in sets if not any(other < s for other in sets if other is not s)]
    if len(kept) > MAX_BRANCHES:
        raise InvalidQuery(
            f"the expression expands to {len(kept)} alternatives (more than {MAX_BRANCHES}); "
            "a Query is an OR of ANDs, so 'and' of several 'or's multiplies them — simplify it"
        )
    return kept


def _and(left: list[Term], right: list[Term]) -> list[Term]:
    if len(left) * len(right) > MAX_BRANCHES * 16:
        raise InvalidQuery(
            f"the expression expands to more than {MAX_BRANCHES} alternatives; simplify it"
        )
    return _simplify([tuple(dict.fromkeys([*a, *b])) for a in left for b in right])


def _criterion(path: str, op: Op, value: Any) -> Criterion:
    return Criterion(path, op, value)


def _leaf(cmp: Cmp, negate: bool, targets: Mapping[str, str]) -> list[Term]:
    op = _NEGATED[cmp.op] if negate else cmp.op
    path = cmp.path
    target = targets.get(path)
    missing: list[Term] = [(_criterion(path, Op.EXISTS, False),)]
    if op == "isna":
        return missing
    if op == "notna":
        return [(_criterion(path, Op.EXISTS, True),)]
    if op in ("in", "not in"):
        values = _values(cmp.value, path, target)
        has_na = any(v is None for v in values)
        present = list(dict.fromkeys(v for v in values if v is not None))
        if op == "in":
            out: list[Term] = []
            if len(present) == 1:
                out.append((_criterion(path, Op.EQ, present[0]),))
            elif present:
                out.append((_criterion(path, Op.IN, present),))
            return out + (missing if has_na else [])
        if not present:
            return [(_criterion(path, Op.EXISTS, True),)] if has_na else [()]
        term = tuple(_criterion(path, Op.NE, v) for v in present)
        return [term] if has_na else [term, *missing]
    value = _scalar(cmp.value, path, target)
    if value is None:  # comparing with NaN/None: only "not equal"-like forms hold
        return [()] if op in ("!=", "!<", "!<=", "!>", "!>=") else []
    if op == "==":
        return [(_criterion(path, Op.EQ, value),)]
    if op == "!=":
        return [(_criterion(path, Op.NE, value),), *missing]
    if op in _ORDER:
        return [(_criterion(path, _ORDER[op], value),)]
    return [(_criterion(path, _COMPLEMENT[op], value),), *missing]


def _values(value: Any, path: str, target: str | None) -> list[Any]:
    if isinstance(value, str | bytes | Mapping) or not _listlike(value):
        raise InvalidQuery(
            f"'in' on {path!r} needs a list of values, not {type(value).__name__} {value!r:.60}"
        )
    return [_scalar(v, path, target) for v in list(value)]


def _listlike(value: Any) -> bool:
    if isinstance(value, list | tuple | set | frozenset | range):
        return True
    return hasattr(value, "__iter__") and hasattr(value, "__len__") and hasattr(value, "dtype")


def _dnf(node: Node, negate: bool, targets: Mapping[str, str]) -> list[Term]:
    if isinstance(node, Cmp):
        return _simplify(_leaf(node, negate, targets))
    if isinstance(node, Const):
        return [()] if node.value != negate else []
    if isinstance(node, Not):
        return _dnf(node.part, not negate, targets)
    conjunctive = isinstance(node, And) != negate
    parts = [_dnf(p, negate, targets) for p in node.parts]
    if conjunctive:
        result: list[Term] = [()]
        for part in parts:
            result = _and(result, part)
        return result
    return _simplify([term for part in parts for term in part])


def to_query(node: Node, schema: Mapping[str, Any] | None = None) -> Query:
    """Compile a condition tree to a Query (see the module docstring for the mapping).

    Parameters
    ----------
    node : Node
        The condition.
    schema : Mapping, optional
        The collection's JSON Schema: values are checked against the declared
        types, and date-times turned into the stored text (``_mod``: nanoseconds).

    Raises
    ------
    InvalidQuery
        For a value of the wrong type, an ``in`` without a list, or an
        expression too large to expand.
    """

    targets = schema_targets(schema)[0] if schema else {}
    terms = _dnf(node, False, targets)
    if not terms:
        return where("_id").exists(False)
    if any(not term for term in terms):
        return Query()
    first, *rest = terms
    return Query(ands=first, ors=tuple(Query(ands=term) for term in rest))


def conjunction(parts: Sequence[Node]) -> Node:
    """``And`` of the parts (the part itself when there is one)."""
    return parts[0] if len(parts) == 1 else And(tuple(parts))
