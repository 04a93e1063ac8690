"""What a query matches: the semantics of :mod:`threadkit.db.query`'s criteria on a document.

See the module docstring of :mod:`threadkit.db.query` for the rules (three-valued
logic, type mismatches that raise).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from threadkit.db.indexkeys import json_type
from threadkit.db.queryops import Op
from threadkit.errors import InvalidQuery

if TYPE_CHECKING:
    from threadkit.db.query import Criterion, Query

__all__ = ["matches", "resolve"]


class _Unknown(NamedTuple):
    """Why a criterion could not be decided on a document (a type mismatch)."""

    criterion: Criterion
    found: str
    reason: str

    def error(self, doc: Mapping[str, Any]) -> InvalidQuery:
        c = self.criterion
        return InvalidQuery(
            f"cannot evaluate where({c.path!r}).{c._call()} on document {doc.get('_id')!r}: "
            f"the field holds a {self.found}, {self.reason}"
        )


def resolve(doc: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    """The value at a dot path, walking nested objects.

    Parameters
    ----------
    doc : Mapping[str, Any]
        A JSON object.
    path : str
        Dot path.

    Returns
    -------
    tuple[bool, Any]
        ``(True, value)`` when present (the value may be ``None`` for a JSON
        null), ``(False, None)`` when a key is missing or the path runs through
        a value that is not an object.

    Examples
    --------
    >>> resolve({"a": {"b": 1}}, "a.b"), resolve({"a": 5}, "a.b")
    ((True, 1), (False, None))
    """
    current: Any = doc
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return False, None
        current = current[part]
    return True, current


def _check(c: Criterion, doc: Mapping[str, Any]) -> bool | _Unknown:
    present, field = resolve(doc, c.path)
    if c.op is Op.EXISTS:
        return present is c.value
    if not present or field is None:
        return False
    found = json_type(field)
    if c.op is Op.CONTAINS:
        if found == "array":
            wanted = c.value_type
            return any(json_type(item) == wanted and item == c.value for item in field)
        if found == "string":
            if isinstance(c.value, str):
                return c.value in field
            return _Unknown(c, found, f"and substring search needs a string, not a {c.value_type}")
        return _Unknown(c, found, "but contains() needs an array or a string field")
    wanted = c.value_type
    if found != wanted:
        return _Unknown(c, found, f"the criterion a {wanted}")
    value = c.value
    op = c.op
    if op is Op.EQ:
        return bool(field == value)
    if op is Op.NE:
        return bool(field != value)
    if op is Op.IN:
        assert isinstance(value, tuple)
        return any(field == item for item in value)
    if op is Op.GT:
        return bool(field > value)
    if op is Op.LT:
        return bool(field < value)
    if op is Op.GE:
        return bool(field >= value)
    return bool(field <= value)  # Op.LE


def _evaluate(query: Query, doc: Mapping[str, Any]) -> bool | _Unknown:
    """Kleene three-valued evaluation: False beats unknown in an AND, True in an OR."""
    if not query.ands and not query.ors:
        return True
    unknown: _Unknown | None = None
    if query.ands:
        result: bool | _Unknown = True
        for criterion in query.ands:
            outcome = _check(criterion, doc)
            if outcome is False:
                result = False
                break
            if result is True and outcome is not True:
                result = outcome
        if result is True:
            return True
        if not isinstance(result, bool):
            unknown = result
    for branch in query.ors:
        outcome = _evaluate(branch, doc)
        if outcome is True:
            return True
        if unknown is None and not isinstance(outcome, bool):
            unknown = outcome
    return False if unknown is None else unknown


def matches(query: Query, doc: Mapping[str, Any]) -> bool:
    """Whether a document satisfies a query's criteria (sort, seek, skip, limit aside).

    Parameters
    ----------
    query : Query
        The query.
    doc : Mapping[str, Any]
        A JSON object (its ``_id`` is only used in error messages).

    Returns
    -------
    bool

    Raises
    ------
    InvalidQuery
        When a type mismatch decides the outcome (see the module docstring):
        the message names the path, the document ``_id`` and both types.

    Examples
    --------
    >>> from threadkit.db.query import where
    >>> matches(where("meta.reads").ge(100), {"_id": "x", "meta": {"reads": 120.0}})
    True
    >>> matches(where("tags").contains("go"), {"_id": "x", "tags": ["go", 1]})
    True
    >>> matches(where("age").gt(30), {"_id": "x", "age": "31"})
    Traceback (most recent call last):
    ...
    threadkit.errors.InvalidQuery: cannot evaluate where('age').gt(30) on document 'x': \
the field holds a string, the criterion a number
    """
    outcome = _evaluate(query, doc)
    if isinstance(outcome, bool):
        return outcome
    raise outcome.error(doc)
