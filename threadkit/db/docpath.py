"""Reading a value at a dot path of a document, and what a unique index holds.

Examples
--------
>>> get_path({"a": {"b": 1}}, "a.b")
1
>>> get_path({"a": 1}, "a.b") is MISSING
True
>>> indexable("x"), indexable(None), indexable([1])
(True, False, False)
"""

from __future__ import annotations

from typing import Any

__all__ = ["MISSING", "get_path", "indexable", "same_value"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()
"""What :func:`get_path` returns for a path the document does not have."""


def get_path(doc: dict[str, Any] | None, path: str) -> Any:
    """The value at a dot path, or :data:`MISSING`."""
    if "." not in path:  # a top-level field, the common case
        return doc.get(path, MISSING) if isinstance(doc, dict) else MISSING
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def indexable(value: Any) -> bool:
    """True for a value a unique index holds (a string, number or boolean)."""
    return value is not MISSING and value is not None and not isinstance(value, dict | list)


def same_value(a: Any, b: Any) -> bool:
    """True when ``a`` and ``b`` are equal values of the same type (``1`` is not ``True``)."""
    return a is b or (a == b and type(a) is type(b))
