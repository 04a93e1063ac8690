"""A query criterion's operations, and the checks of the paths and values criteria hold.

Examples
--------
>>> Op.GT in ORDERING_OPS, METHOD_NAMES[Op.IN]
(True, 'in_')
>>> check_value(Op.IN, [1, 2.5], "age")
(1, 2.5)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import IntEnum
from typing import TypeAlias

from threadkit.db.indexkeys import json_type
from threadkit.errors import InvalidQuery

__all__ = [
    "INDEXABLE_OPS",
    "MAX_QUERY_DEPTH",
    "METHOD_NAMES",
    "ORDERING_OPS",
    "Op",
    "Scalar",
    "Value",
    "check_count",
    "check_path",
    "check_scalar",
    "check_value",
    "typed",
    "unwrap",
]

MAX_QUERY_DEPTH = 32
"""Deepest nesting of ``or_`` branches in a query (the query itself is level 1)."""

Scalar: TypeAlias = str | int | float | bool
"""A criterion value: a JSON string, number or boolean."""

Value: TypeAlias = Scalar | tuple[Scalar, ...]
"""What a :class:`Criterion` holds: a scalar, or for ``IN`` a tuple of scalars of one type."""


class Op(IntEnum):
    """A criterion's operation.

    ``EQ`` … ``LE`` carry ThreadDB's codes (``db/query.go``); ``IN``,
    ``CONTAINS`` and ``EXISTS`` are threadkit extensions that ThreadDB peers and
    clients do not know.
    """

    EQ = 0
    """Equal (ThreadDB ``Eq``)."""
    NE = 1
    """Not equal (ThreadDB ``Ne``); a missing field does not match."""
    GT = 2
    """Greater than (ThreadDB ``Gt``); strings and numbers only."""
    LT = 3
    """Less than (ThreadDB ``Lt``); strings and numbers only."""
    GE = 4
    """Greater than or equal (ThreadDB ``Ge``); strings and numbers only."""
    LE = 5
    """Less than or equal (ThreadDB ``Le``); strings and numbers only."""
    IN = 6
    """threadkit: equal to any value of a non-empty list of one JSON type."""
    CONTAINS = 7
    """threadkit: an array field holding the value, or a string field holding the substring."""
    EXISTS = 8
    """threadkit: the field is present (``True``) or missing (``False``); null is present."""


ORDERING_OPS = frozenset({Op.GT, Op.LT, Op.GE, Op.LE})
"""Operations that order values (undefined on booleans)."""

INDEXABLE_OPS = frozenset({Op.EQ, Op.IN, Op.GT, Op.LT, Op.GE, Op.LE})
"""Operations an index lookup can answer."""

METHOD_NAMES = {
    Op.EQ: "eq",
    Op.NE: "ne",
    Op.GT: "gt",
    Op.LT: "lt",
    Op.GE: "ge",
    Op.LE: "le",
    Op.IN: "in_",
    Op.CONTAINS: "contains",
    Op.EXISTS: "exists",
}


def check_path(path: object, what: str) -> str:
    """``path`` when it is a non-empty dot path without empty segments; else InvalidQuery."""
    if not isinstance(path, str):
        raise InvalidQuery(f"{what} must be a string, not {type(path).__name__}")
    if not path:
        raise InvalidQuery(f"{what} is empty")
    if "" in path.split("."):
        raise InvalidQuery(
            f"{what} {path!r} has an empty segment (leading, trailing or double dot)"
        )
    return path


def check_count(value: object, what: str) -> int:
    """``value`` when it is a non-negative integer (a skip or limit); else InvalidQuery."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidQuery(f"{what} must be a non-negative integer, not {value!r}")
    return int(value)


def unwrap(value: object) -> object:
    """Turn a NumPy-style scalar (anything with ``.item()``) into the Python value."""
    if isinstance(value, str | int | float | list | tuple | Mapping) or value is None:
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            return value
    return value


def check_scalar(value: object, what: str) -> Scalar:
    """``value`` as a criterion scalar (a JSON string, finite number or boolean)."""
    value = unwrap(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidQuery(f"{what}: {value!r} is not a JSON number (no NaN or infinity)")
        return float(value)
    raise InvalidQuery(
        f"{what}: a {json_type(value)} cannot be compared; use a string, number or boolean"
    )


def check_value(op: Op, value: object, path: str) -> Value:
    """The value a criterion ``op`` on ``path`` holds; InvalidQuery when it cannot hold it."""
    what = f"where({path!r}).{METHOD_NAMES[op]}({value!r})"
    if op is Op.EXISTS:
        flag = unwrap(value)
        if not isinstance(flag, bool):
            raise InvalidQuery(f"{what} takes a boolean flag, not {flag!r}")
        return flag
    if op is Op.IN:
        if not isinstance(value, list | tuple):
            raise InvalidQuery(f"{what} takes a list of values, not a {json_type(value)}")
        if not value:
            raise InvalidQuery(f"{what} needs at least one value")
        items = tuple(check_scalar(item, what) for item in value)
        kinds = sorted({json_type(item) for item in items})
        if len(kinds) > 1:
            raise InvalidQuery(f"{what} values must share one JSON type, got {' and '.join(kinds)}")
        return items
    found = check_scalar(value, what)
    if op in ORDERING_OPS and isinstance(found, bool):
        raise InvalidQuery(f"{what}: booleans have no order; use eq() or ne()")
    return found


def typed(value: Value) -> object:
    """A comparison key that keeps JSON types apart (``True`` is not ``1``)."""
    if isinstance(value, tuple):
        return ("list", tuple((json_type(item), item) for item in value))
    return (json_type(value), value)
