"""JSON merge patches (RFC 7386): how a save is carried in an event.

A patch is computed from the instance the writer saw to the instance it saved;
applying it to the instance as it stands elsewhere changes only the fields the
writer changed, so concurrent saves of different fields both survive. As in
RFC 7386 (and ThreadDB), ``None`` in a patch removes a field, so a field cannot
be set to ``null`` by a save: it is removed instead.

Examples
--------
>>> p = create_patch({"a": 1, "b": {"c": 2, "d": 3}}, {"a": 1, "b": {"c": 5}, "e": 6})
>>> p
{'b': {'c': 5, 'd': None}, 'e': 6}
>>> apply_patch({"a": 1, "b": {"c": 2, "d": 3}}, p)
{'a': 1, 'b': {'c': 5}, 'e': 6}
>>> sorted(patch_paths(p))
['b.c', 'b.d', 'e']
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["apply_patch", "create_patch", "leaf_paths", "patch_paths"]


def create_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that turns ``old`` into ``new``."""
    patch: dict[str, Any] = {}
    for name, value in new.items():
        if name not in old:
            patch[name] = value
            continue
        before = old[name]
        if before == value and type(before) is type(value):
            continue
        if isinstance(value, dict) and isinstance(before, dict):
            inner = create_patch(before, value)
            if inner:
                patch[name] = inner
        else:
            patch[name] = value
    for name in old:
        if name not in new:
            patch[name] = None
    return patch


def apply_patch(target: dict[str, Any] | None, patch: dict[str, Any]) -> dict[str, Any]:
    """``target`` with ``patch`` merged in (a new dict; the inputs are not changed)."""
    result = dict(target) if target else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        elif isinstance(value, dict):
            current = result.get(name)
            result[name] = apply_patch(current if isinstance(current, dict) else None, value)
        else:
            result[name] = value
    return result


def patch_paths(patch: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """The dot paths of the leaves a patch writes (set or remove)."""
    for name, value in patch.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict) and value:
            yield from patch_paths(value, path + ".")
        else:
            yield path


def leaf_paths(doc: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """The dot paths of a document's leaves (non-empty objects are walked into)."""
    yield from patch_paths(doc, prefix)
