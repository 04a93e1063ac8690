"""The value model of documents: JSON values, and the limits every document, id and name obey.

threadkit stores documents as CBOR, but what ThreadDB and its clients (Go, JavaScript,
the gRPC API) speak is JSON. A document is therefore a JSON object, and only values
every one of those readers can carry are accepted:

=============== =======================================================================
Python type     accepted as
=============== =======================================================================
``dict``        a JSON object; every key a ``str``
``list``        a JSON array
``str``         a JSON string; valid Unicode (a lone surrogate such as ``"\\ud800"`` is
                refused: it has no UTF-8 form)
``int``         a JSON number, in the signed 64-bit range ``[-2**63, 2**63 - 1]``
``float``       a JSON number, finite (NaN and ±infinity are refused)
``bool``        ``true`` / ``false``
``None``        ``null``
=============== =======================================================================

Anything else (``set``, ``tuple``, ``bytes``, ``Decimal``, ``complex``, ``datetime``, NumPy
scalars, arbitrary objects) is refused with :class:`~threadkit.errors.InvalidDocument`
naming the path of the value, before anything is written.

Integers: ThreadDB's own ``_mod`` is a 64-bit count of nanoseconds, Go and protobuf carry
64-bit integers, and pandas and Arrow columns are 64-bit, so the 64-bit signed range is
what every typed reader holds exactly. JavaScript's ``JSON.parse`` (and Go decoding into
``interface{}``) reads numbers as doubles, exact only up to ``2**53``: a larger integer
reaches such a client rounded, never as an error. Beyond 64 bits CBOR needs a bignum tag
that no ThreadDB peer reads, so those are refused.

Examples
--------
>>> check_document({"a": [1, 2.5, "x", None, {"b": True}]})
>>> check_document({"a": {"b": [1, float("nan")]}})
Traceback (most recent call last):
...
threadkit.errors.InvalidDocument: document holds NaN at a.b[1], which JSON cannot carry
>>> value_problem({"tags": {"x", "y"}})
'a Python set at tags, which is not a JSON value (use a list)'
"""

from __future__ import annotations

import math
from typing import Any, Final

from threadkit.errors import InvalidDocument, InvalidInput

__all__ = [
    "MAX_DEPTH",
    "MAX_ID_BYTES",
    "MAX_INT",
    "MIN_INT",
    "check_document",
    "check_id",
    "check_value",
    "value_problem",
]

MAX_DEPTH: Final = 100
"""Deepest nesting of objects and arrays in a document (the document itself is level 1)."""

MIN_INT: Final = -(2**63)
MAX_INT: Final = 2**63 - 1
"""The integer range of documents: signed 64-bit."""

MAX_ID_BYTES: Final = 128
"""Longest instance ``_id``, in bytes of UTF-8 (ULIDs take 26, UUIDs 36)."""

_HINTS: Final = {
    "set": "use a list",
    "frozenset": "use a list",
    "tuple": "use a list",
    "bytes": "encode it as text, e.g. base64",
    "bytearray": "encode it as text, e.g. base64",
    "memoryview": "encode it as text, e.g. base64",
    "Decimal": "use a float or a string",
    "datetime": "use an ISO 8601 string",
    "date": "use an ISO 8601 string",
    "time": "use an ISO 8601 string",
    "Timestamp": "use an ISO 8601 string",
    "complex": "store its real and imaginary parts",
}


class _Bad(Exception):
    """A value outside the model: what was found and why it is refused; ``path`` is filled
    in, innermost part first, on the way out."""

    def __init__(self, found: str, why: str = "") -> None:
        super().__init__(found)
        self.found = found
        self.why = why
        self.path: list[str | int] = []


def _scalar_problem(value: Any) -> _Bad | None:
    """Why a non-container value is outside the model, or None when it is a JSON scalar."""
    kind = type(value)
    if kind is str:
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return _Bad("text with a lone surrogate", "which is not valid Unicode")
        return None
    if kind is bool or value is None:
        return None
    if kind is int:
        if MIN_INT <= value <= MAX_INT:
            return None
        return _Bad(f"the integer {value}", "outside the signed 64-bit range")
    if kind is float:
        if math.isfinite(value):
            return None
        found = "NaN" if math.isnan(value) else ("infinity" if value > 0 else "-infinity")
        return _Bad(found, "which JSON cannot carry")
    # a subclass of a JSON type (a StrEnum, an IntEnum, numpy.float64) is that value
    if isinstance(value, str):
        return _scalar_problem(str.__str__(value))
    if isinstance(value, int):
        return _scalar_problem(int.__int__(value))
    if isinstance(value, float):
        return _scalar_problem(float.__float__(value))
    name = kind.__name__
    hint = _HINTS.get(name)
    if hint is None and callable(getattr(value, "item", None)):
        hint = "convert a NumPy scalar with .item()"
    return _Bad(f"a Python {name}", "which is not a JSON value" + (f" ({hint})" if hint else ""))


def _bad_key(key: Any) -> _Bad | None:
    """Why a map key is refused, or None for text (called for anything but ASCII text)."""
    if not isinstance(key, str):
        return _Bad(f"the key {key!r}", "which is not a string")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return _Bad(f"the key {key!r}", "which is not valid Unicode")
    return None


def _walk(value: Any, depth: int, max_depth: int) -> None:
    """Raise _Bad for the first value outside the model (depth first, keys in order).

    Common scalars are checked inline: this runs on every document written or received.
    """
    if isinstance(value, dict):
        if depth > max_depth:
            raise _Bad("an object or array", f"nested more than {max_depth} levels deep")
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                refused = _bad_key(key)
                if refused is not None:
                    raise refused
            kind = type(item)
            if kind is str:
                if item.isascii():
                    continue
            elif kind is int:
                if MIN_INT <= item <= MAX_INT:
                    continue
            elif kind is float:
                if item - item == 0.0:  # finite: inf - inf and NaN - NaN are NaN
                    continue
            elif kind is bool or item is None:
                continue
            try:
                _walk(item, depth + 1, max_depth)
            except _Bad as bad:
                bad.path.append(key)
                raise
        return
    if isinstance(value, list):
        if depth > max_depth:
            raise _Bad("an object or array", f"nested more than {max_depth} levels deep")
        for index, item in enumerate(value):
            try:
                _walk(item, depth + 1, max_depth)
            except _Bad as bad:
                bad.path.append(index)
                raise
        return
    problem = _scalar_problem(value)
    if problem is not None:
        raise problem


def _path_text(parts: list[str | int]) -> str:
    """``[1, "b", "a"]`` (innermost first) as ``a.b[1]``; long paths keep their two ends."""
    text = ""
    for part in reversed(parts):
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    if len(text) > 80:
        text = text[:40] + "…" + text[-30:]
    return text or "the top level"


def _describe(bad: _Bad) -> str:
    where = _path_text(bad.path)
    return f"{bad.found} at {where}" + (f", {bad.why}" if bad.why else "")


def value_problem(value: Any, max_depth: int = MAX_DEPTH) -> str | None:
    """Why ``value`` is outside the model (naming the path), or None when it is inside.

    Parameters
    ----------
    value : Any
        A document or any value in one.
    max_depth : int, optional
        Deepest nesting allowed (:data:`MAX_DEPTH`).

    Returns
    -------
    str or None

    Examples
    --------
    >>> value_problem({"n": 2**64})
    'the integer 18446744073709551616 at n, outside the signed 64-bit range'
    >>> value_problem([1, 2]) is None
    True
    """
    try:
        _walk(value, 1, max_depth)
    except _Bad as bad:
        return _describe(bad)
    return None


def check_value(
    value: Any,
    what: str = "document",
    error: type[InvalidInput] = InvalidDocument,
    max_depth: int = MAX_DEPTH,
) -> None:
    """Raise ``error`` unless ``value`` is a JSON value within the limits.

    Parameters
    ----------
    value : Any
        The value to check.
    what : str, optional
        What it is, for the message (``"document"``, ``"schema"``…).
    error : type, optional
        The error class to raise (:class:`~threadkit.errors.InvalidDocument`).
    max_depth : int, optional
        Deepest nesting allowed.

    Raises
    ------
    InvalidInput
        ``error``, naming the path of the first value outside the model.
    """
    problem = value_problem(value, max_depth)
    if problem is not None:
        raise error(f"{what} holds {problem}")


def check_document(doc: Any, what: str = "document") -> None:
    """Raise InvalidDocument unless ``doc`` is a JSON object within the limits.

    Parameters
    ----------
    doc : Any
        The document.
    what : str, optional
        What it is, for the message.

    Raises
    ------
    InvalidDocument
        When ``doc`` is not a dict, or holds a value outside the model (the message
        names its path), or is nested deeper than :data:`MAX_DEPTH`.
    """
    if not isinstance(doc, dict):
        raise InvalidDocument(f"a {what} must be a dict, got {type(doc).__name__}")
    check_value(doc, what)


def check_id(instance_id: object) -> str:
    """Return ``instance_id`` if it is a valid ``_id``, else raise InvalidDocument.

    An ``_id`` is a non-empty string of valid Unicode, at most :data:`MAX_ID_BYTES`
    bytes long in UTF-8.

    Examples
    --------
    >>> check_id("01hx2k3m4n5p6q7r8s9t0vwxyz")
    '01hx2k3m4n5p6q7r8s9t0vwxyz'
    >>> check_id("x" * 200)
    Traceback (most recent call last):
    ...
    threadkit.errors.InvalidDocument: an _id is at most 128 bytes of UTF-8, got 200
    """
    if type(instance_id) is not str:
        if not isinstance(instance_id, str):
            raise InvalidDocument(f"an _id must be a string, got {type(instance_id).__name__}")
        instance_id = str(instance_id)
    if not instance_id:
        raise InvalidDocument("an _id must be a non-empty string")
    if instance_id.isascii():
        size = len(instance_id)
    else:
        try:
            size = len(instance_id.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidDocument(
                f"an _id must be valid Unicode, got {instance_id!r} (a lone surrogate)"
            ) from None
    if size > MAX_ID_BYTES:
        raise InvalidDocument(f"an _id is at most {MAX_ID_BYTES} bytes of UTF-8, got {size}")
    return instance_id
