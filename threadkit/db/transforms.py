"""The transform of a schema migration: a small declarative spec, or a JavaScript function.

A migration (:mod:`.migrations`) rewrites a collection's documents where it stands in the
total order. What it does to each document is its **transform**, one of:

- a **declarative spec**: a list of steps, applied in order, each a dict of one kind::

      {"rename": "name", "to": "title"}      # move a field (dot paths)
      {"retype": "age", "to": "integer"}     # convert a value: string, integer, number, boolean
      {"default": "tags", "value": []}       # set a field that is missing
      {"drop": "legacy"}                     # remove a field

- a **JavaScript function body** of ``_migrate(doc)`` (a ``str``, or ``{"js": body}``),
  run in the script engine's workers under the limits of a read filter
  (docs/scripts.md); it returns the new document.

Declarative transforms are pure Python and apply to a whole document and to a merge patch
(a save written against the schema before the migration, see docs/semantics.md), so they
give the same bytes on every peer. A retype converts what converts exactly and leaves any
other value as it was (the new schema then judges it).

Examples
--------
>>> t = parse_transform([{"rename": "name", "to": "title"}, {"retype": "age", "to": "integer"},
...                      {"default": "tags", "value": []}, {"drop": "old"}])
>>> t.apply_doc({"_id": "a", "name": "Ada", "age": "36", "old": 1})
{'_id': 'a', 'age': 36, 'title': 'Ada', 'tags': []}
>>> t.apply_patch({"name": "Bob", "old": None})
{'title': 'Bob'}
>>> parse_transform([{"rename": "_id", "to": "x"}])
Traceback (most recent call last):
...
threadkit.errors.InvalidMigration: transform step 0: a migration cannot touch '_id'
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from typing import Any

from threadkit.db.config import CollectionConfig
from threadkit.db.docpath import MISSING, get_path
from threadkit.db.scripts import ReadFilter
from threadkit.db.values import value_problem
from threadkit.errors import InvalidMigration, InvalidScript, MalformedRecord

__all__ = [
    "MAX_STEPS",
    "RETYPES",
    "MigrationScript",
    "Transform",
    "convert",
    "parse_migration",
    "parse_transform",
]

MAX_STEPS = 100
"""Most steps a declarative transform may hold."""

RETYPES = ("string", "integer", "number", "boolean")
"""The types a ``retype`` step converts to."""

_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)\Z")
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?\Z")
_INT_RANGE = (-(2**63), 2**63 - 1)
_KEYS = {"rename": {"rename", "to"}, "retype": {"retype", "to"}, "default": {"default", "value"}}
_RESERVED = ("_id", "_mod")


class MigrationScript(ReadFilter):
    """A JavaScript migration: the body of ``function _migrate(doc){…}``, returning a document.

    It runs as a read filter does (worker processes, time and memory limits); ``doc`` is a
    copy of the stored document.

    Examples
    --------
    >>> MigrationScript("doc.n = doc.n * 2; return doc")(None, {"_id": "a", "n": 2})
    {'_id': 'a', 'n': 4}
    """

    _WHAT = "migration"

    def __init__(self, body: str) -> None:
        if not isinstance(body, str):
            raise InvalidScript(f"a migration must be a string, not {type(body).__name__}")
        self.source_body = body
        super().__init__(f"return (function _migrate(doc){{{body}\n}})(instance);")


@dataclass(frozen=True)
class Transform:
    """A parsed transform (see the module).

    Attributes
    ----------
    steps : tuple of dict
        The declarative steps (empty for a JavaScript transform).
    js : str or None
        The JavaScript function body of ``_migrate(doc)``.
    """

    steps: tuple[dict[str, Any], ...] = ()
    js: str | None = None

    def to_node(self) -> dict[str, Any]:
        """The transform as carried in a migration event."""
        return {"js": self.js} if self.js is not None else {"steps": [dict(s) for s in self.steps]}

    @property
    def script(self) -> MigrationScript | None:
        """The compiled JavaScript (None for a declarative transform)."""
        return None if self.js is None else _script(self.js)

    def renames(self) -> dict[str, str | None]:
        """Where each top-level or dotted path ends up (None: dropped), for index paths."""
        out: dict[str, str | None] = {}
        for step in self.steps:
            if "rename" in step:
                out[step["rename"]] = step["to"]
            elif "drop" in step:
                out[step["drop"]] = None
        return out

    def apply_doc(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The document after the declarative steps (a new dict; ``doc`` is not changed)."""
        out = copy.deepcopy(doc)
        for step in self.steps:
            if "rename" in step:
                value = _pop(out, step["rename"])
                if value is not MISSING:
                    _put(out, step["to"], value)
            elif "retype" in step:
                value = get_path(out, step["retype"])
                if value is not MISSING:
                    _put(out, step["retype"], convert(value, step["to"]))
            elif "default" in step:
                if get_path(out, step["default"]) is MISSING:
                    _put(out, step["default"], copy.deepcopy(step["value"]))
            else:
                _pop(out, step["drop"])
        return out

    def apply_patch(self, patch: dict[str, Any]) -> dict[str, Any]:
        """A merge patch written against the schema before the migration, rewritten.

        Renames move what the patch sets or removes, retypes convert what it sets, drops
        remove it; defaults do not apply (the document already had the field).
        """
        out = copy.deepcopy(patch)
        for step in self.steps:
            if "rename" in step:
                value = _pop(out, step["rename"], prune=True)
                if value is not MISSING:
                    _put(out, step["to"], value)
            elif "retype" in step:
                value = get_path(out, step["retype"])
                if value is not MISSING and value is not None:
                    _put(out, step["retype"], convert(value, step["to"]))
            elif "drop" in step:
                _pop(out, step["drop"], prune=True)
        return out


def _script(body: str) -> MigrationScript:
    cached = _SCRIPTS.get(body)
    if cached is None:
        cached = _SCRIPTS[body] = MigrationScript(body)
    return cached


_SCRIPTS: dict[str, MigrationScript] = {}


def parse_transform(spec: object, *, compile_js: bool = True) -> Transform:
    """Check a transform given by a user or carried in an event; InvalidMigration if bad.

    Parameters
    ----------
    spec : list of dict, str, or {"steps": [...]} / {"js": str}
        Declarative steps or a JavaScript function body (see the module).

    compile_js : bool, optional
        Compile a JavaScript body now (False for a transform read back from the store,
        compiled on first use).

    Returns
    -------
    Transform
    """
    if isinstance(spec, str):
        spec = {"js": spec}
    if isinstance(spec, list | tuple):
        spec = {"steps": list(spec)}
    if not isinstance(spec, dict) or len(spec) != 1 or not spec.keys() <= {"steps", "js"}:
        raise InvalidMigration(
            "a transform is a list of steps, a JavaScript body (str), {'steps': [...]} "
            f"or {{'js': body}}, got {_show(spec)}"
        )
    if "js" in spec:
        body = spec["js"]
        if not isinstance(body, str) or not body.strip():
            raise InvalidMigration("a JavaScript transform is a non-empty function body")
        try:
            if compile_js:
                _script(body)
        except InvalidScript as exc:
            raise InvalidMigration(f"the JavaScript transform does not compile: {exc}") from None
        return Transform(js=body)
    steps = spec["steps"]
    if not isinstance(steps, list) or not steps:
        raise InvalidMigration("a declarative transform holds at least one step")
    if len(steps) > MAX_STEPS:
        raise InvalidMigration(f"a transform holds at most {MAX_STEPS} steps, got {len(steps)}")
    return Transform(steps=tuple(_check_step(i, s) for i, s in enumerate(steps)))


def parse_migration(data: object) -> tuple[CollectionConfig, Transform]:
    """The new config and the transform a migration event carries; InvalidMigration if bad.

    ``data`` is ``{"config": <config node>, "transform": <transform node>}``.
    """
    if not isinstance(data, dict) or set(data) != {"config", "transform"}:
        raise InvalidMigration("a migration event holds exactly {config, transform}")
    node = data["config"]
    if not isinstance(node, dict):
        raise InvalidMigration("a migration's config must be a map")
    try:
        config = CollectionConfig.from_node(node)
    except MalformedRecord as exc:
        raise InvalidMigration(str(exc)) from None
    return config, parse_transform(data["transform"])


def _check_step(i: int, step: object) -> dict[str, Any]:
    where = f"transform step {i}"
    if not isinstance(step, dict):
        raise InvalidMigration(f"{where} must be a dict, got {_show(step)}")
    kinds = [k for k in ("rename", "retype", "default", "drop") if k in step]
    if len(kinds) != 1:
        raise InvalidMigration(
            f"{where} must have exactly one of rename, retype, default, drop: {_show(step)}"
        )
    kind = kinds[0]
    allowed = _KEYS.get(kind, {kind})
    if set(step) != allowed:
        raise InvalidMigration(f"{where} ({kind}) takes exactly the keys {sorted(allowed)}")
    path = _check_path(where, step[kind])
    if kind == "rename":
        to = _check_path(where, step["to"])
        if to == path or to.startswith(path + ".") or path.startswith(to + "."):
            raise InvalidMigration(f"{where} renames {path!r} into itself ({to!r})")
        return {"rename": path, "to": to}
    if kind == "retype":
        if step["to"] not in RETYPES:
            raise InvalidMigration(f"{where}: retype to one of {list(RETYPES)}, got {step['to']!r}")
        return {"retype": path, "to": step["to"]}
    if kind == "default":
        problem = value_problem(step["value"])
        if problem is not None or step["value"] is None:
            raise InvalidMigration(f"{where}: a default is a JSON value other than null")
        return {"default": path, "value": copy.deepcopy(step["value"])}
    return {"drop": path}


def _check_path(where: str, path: object) -> str:
    if not isinstance(path, str) or not path or any(not p for p in path.split(".")):
        raise InvalidMigration(f"{where}: a path is a non-empty dot path, got {_show(path)}")
    if path.split(".")[0] in _RESERVED:
        raise InvalidMigration(f"{where}: a migration cannot touch {path.split('.')[0]!r}")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidMigration(f"{where}: path {path!r} is not valid Unicode") from None
    return path


def convert(value: Any, to: str) -> Any:
    """``value`` converted to a JSON type when it converts exactly; else ``value`` itself.

    Examples
    --------
    >>> convert("12", "integer"), convert(3.0, "integer"), convert("x", "integer")
    (12, 3, 'x')
    >>> convert(1.5, "string"), convert(True, "string"), convert("2.5", "number")
    ('1.5', 'true', 2.5)
    >>> convert("false", "boolean"), convert(1, "boolean"), convert(None, "string")
    (False, True, None)
    """
    if value is None or isinstance(value, dict | list):
        return value
    if to == "string":
        if isinstance(value, bool):
            return "true" if value else "false"
        return value if isinstance(value, str) else repr(value)
    if to == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value in ("true", "false"):
            return value == "true"
        if type(value) is int and value in (0, 1):
            return value == 1
        return value
    original = value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        if _INTEGER.match(value):
            value = int(value)
        elif to == "number" and _NUMBER.match(value):
            value = float(value)
        else:
            return original
    if isinstance(value, float):
        if to == "integer" and math.isfinite(value) and value.is_integer():
            value = int(value)
        elif not math.isfinite(value):
            return original
        else:
            return value
    return value if _INT_RANGE[0] <= value <= _INT_RANGE[1] else original


def _pop(doc: dict[str, Any], path: str, *, prune: bool = False) -> Any:
    """Remove and return the value at ``path``; with ``prune``, objects it leaves empty go
    too (in a merge patch an empty object would create the field)."""
    *parents, last = path.split(".")
    nodes: list[dict[str, Any]] = [doc]
    for part in parents:
        child = nodes[-1].get(part)
        if not isinstance(child, dict):
            return MISSING
        nodes.append(child)
    if last not in nodes[-1]:
        return MISSING
    value = nodes[-1].pop(last)
    if prune:
        for parent, part in zip(reversed(nodes[:-1]), reversed(parents), strict=True):
            if parent[part]:
                break
            del parent[part]
    return value


def _put(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = doc
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[last] = value


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
