"""The mapping between a collection's JSON Schema and DataFrame dtypes, both ways.

Reading (schema → dtype), for the field at each dot path:

================================ ==========================================================
JSON Schema                      DataFrame column
================================ ==========================================================
``integer``                      ``Int64`` (pandas' nullable integer)
``number``                       ``float64`` (missing = NaN)
``boolean``                      ``boolean`` (nullable)
``string``                       ``string`` (``pd.StringDtype()``, missing = ``<NA>``)
``string`` + ``format: date-time`` ``datetime64[ns, UTC]`` (parsed; naive text is read as UTC)
or ``format: date``
``object`` with ``properties``   flattened: one column per leaf, named by its dot path
                                 (``meta.reads``), the way ``pd.json_normalize`` names them
``array``                        ``object`` (Python lists)
no type / several types          inferred from the values, as below
================================ ==========================================================

Fields the schema does not name get their dtype from the values stored there:
only integers → ``Int64``; numbers with a fraction → ``float64``; booleans →
``boolean``; text → ``string``; nested objects are flattened like declared ones;
anything else (mixed types, arrays) → ``object``. A value that does not fit its
schema type (possible for documents written before a schema change) turns that
column into ``object`` rather than being dropped; text in a date-time column
that does not parse as ISO 8601 turns it into ``string``. A JSON null reads as
missing. ``_id`` is the index (named ``"_id"``, dtype ``string``); ``_mod`` (the
write time, nanoseconds) is a ``datetime64[ns, UTC]`` column, always last.

Writing (dtype → schema), used by ``from_pandas``:

=========================================== ============================================
DataFrame dtype                             JSON Schema
=========================================== ============================================
``bool``, ``boolean``                       ``{"type": "boolean"}``
``int*``, ``uint*``, ``Int*``, ``UInt*``    ``{"type": "integer"}``
``float*``, ``Float*``                      ``{"type": "number"}``
``string``, ``str``                         ``{"type": "string"}``
``datetime64[*]`` (naive or with a zone)    ``{"type": "string", "format": "date-time"}``
``object``, ``category``                    from the values: all text → string, all
                                            booleans → boolean, all integers → integer,
                                            numbers → number, lists → array, dicts →
                                            object, ``datetime`` → date-time, ``date`` →
                                            ``{"type": "string", "format": "date"}``,
                                            mixed → no type
=========================================== ============================================

Column names with dots (``meta.reads``) become nested objects, so they read
back under the same names. The frame's column order is kept in the schema
under :data:`COLUMN_ORDER_KEY` (an annotation validators ignore), because
schemas travel as JSON with sorted keys.

Date-times are stored as fixed-width UTC text with microseconds,
``2024-05-01T12:00:00.000000Z``, so that text order is time order and range
queries on the stored strings are exact.

Examples
--------
>>> schema = {"properties": {"age": {"type": "integer"},
...                          "meta": {"type": "object",
...                                   "properties": {"at": {"type": "string",
...                                                         "format": "date-time"}}}}}
>>> schema_targets(schema)
({'age': 'integer', 'meta.at': 'date-time'}, ['age', 'meta.at'])
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from threadkit.errors import InvalidDocument

__all__ = [
    "COLUMN_ORDER_KEY",
    "TARGET_DTYPES",
    "datetime_text",
    "schema_from_frame",
    "schema_targets",
    "value_schema",
]

COLUMN_ORDER_KEY = "x-threadkit-columns"
"""Schema annotation holding a frame's column order (a list of dot paths)."""

TARGET_DTYPES = {
    "integer": "Int64",
    "number": "float64",
    "boolean": "boolean",
    "string": "string",
    "date-time": "datetime64[ns, UTC]",
    "date": "datetime64[ns, UTC]",
    "array": "object",
}
"""The dtype each schema target reads as (when every stored value fits)."""

_SPECIAL = ("_id", "_mod")
_MAX_DEPTH = 64
DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


# --- schema → targets ----------------------------------------------------------------


def _pointer(root: Mapping[str, Any], ref: str) -> Any:
    if not ref.startswith("#"):
        return None
    node: Any = root
    for part in [p for p in ref[1:].split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _deref(root: Mapping[str, Any], node: Any) -> Any:
    for _ in range(_MAX_DEPTH):
        if not (isinstance(node, Mapping) and isinstance(node.get("$ref"), str)):
            return node
        node = _pointer(root, node["$ref"])
    return None


def _properties(root: Mapping[str, Any], node: Any, depth: int = 0) -> list[tuple[str, Any]]:
    """The (name, subschema) pairs an object schema declares, through ``$ref`` and ``allOf``."""
    node = _deref(root, node)
    if not isinstance(node, Mapping) or depth > _MAX_DEPTH:
        return []
    found: list[tuple[str, Any]] = []
    props = node.get("properties")
    if isinstance(props, Mapping):
        found.extend((str(k), v) for k, v in props.items())
    branches = node.get("allOf")
    for branch in branches if isinstance(branches, list) else []:
        found.extend(_properties(root, branch, depth + 1))
    return found


def _target(root: Mapping[str, Any], node: Any) -> str | None:
    """The read target of a leaf subschema, ``"object"`` for a container, or None."""
    node = _deref(root, node)
    if not isinstance(node, Mapping):
        return None
    declared = node.get("type")
    if isinstance(declared, list):
        kinds = [t for t in declared if t != "null"]
        declared = kinds[0] if len(kinds) == 1 else None
    if declared is None and _properties(root, node):
        declared = "object"
    if declared == "string":
        fmt = node.get("format")
        return fmt if fmt in ("date-time", "date") else "string"
    if declared in ("integer", "number", "boolean", "array", "object"):
        return str(declared)
    return None


def schema_targets(schema: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The read target of every leaf path a schema declares, and the preferred column order.

    Parameters
    ----------
    schema : Mapping
        A collection schema.

    Returns
    -------
    targets : dict[str, str]
        Dot path → ``"integer"``, ``"number"``, ``"boolean"``, ``"string"``,
        ``"date-time"``, ``"date"`` or ``"array"``. Objects with properties are
        descended into; paths without a usable type are left out (their dtype
        is inferred). ``_id`` and ``_mod`` are never listed.
    order : list[str]
        The :data:`COLUMN_ORDER_KEY` annotation's paths first, then the
        declared leaves in schema order.
    """
    targets: dict[str, str] = {}

    def walk(node: Any, prefix: str, depth: int) -> None:
        if depth > _MAX_DEPTH:
            return
        for name, sub in _properties(schema, node):
            path = prefix + name
            if path in _SPECIAL or path in targets:
                continue
            target = _target(schema, sub)
            if target == "object":
                walk(sub, path + ".", depth + 1)
            elif target is not None:
                targets[path] = target

    walk(schema, "", 0)
    annotated = schema.get(COLUMN_ORDER_KEY)
    order = [p for p in annotated if isinstance(p, str)] if isinstance(annotated, list) else []
    order = list(dict.fromkeys([*order, *targets]))
    return targets, order


# --- frame → schema ------------------------------------------------------------------


def value_schema(values: Any) -> dict[str, Any]:
    """The schema of an ``object`` column, from its (non-missing) Python values.

    Examples
    --------
    >>> value_schema(["a", None, "b"]), value_schema([1, 2.5]), value_schema([1, "a"])
    ({'type': 'string'}, {'type': 'number'}, {})
    """
    kinds: set[str] = set()
    for value in values:
        if _is_missing(value):
            continue
        kinds.add(_value_kind(value))
        if len(kinds) > 2:
            break
    if kinds == {"integer", "number"}:
        return {"type": "number"}
    if len(kinds) != 1:
        return {}
    kind = kinds.pop()
    if kind in ("date-time", "date"):
        return {"type": "string", "format": kind}
    return {"type": kind}


def _value_kind(value: Any) -> str:
    value = _unwrap(value)
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dt.datetime):
        return "date-time"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    if hasattr(value, "tolist"):  # a NumPy array
        return "array"
    return type(value).__name__


def _unwrap(value: Any) -> Any:
    """A NumPy scalar as its Python value; anything else unchanged."""
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy" and getattr(value, "ndim", 1) == 0:
        return item()
    return value


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    name = type(value).__name__
    if name in ("NAType", "NaTType"):
        return True
    if type(value).__module__ == "numpy" and getattr(value, "ndim", 1) == 0:
        try:
            return bool(value != value)
        except (TypeError, ValueError):
            return False
    return False


def column_schema(column: Any) -> dict[str, Any]:
    """The JSON Schema of one DataFrame column (a pandas Series), from its dtype."""
    import pandas as pd
    from pandas.api import types

    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return value_schema(column.astype(object))
    if types.is_bool_dtype(dtype):
        return {"type": "boolean"}
    if types.is_integer_dtype(dtype):
        return {"type": "integer"}
    if types.is_float_dtype(dtype):
        return {"type": "number"}
    if types.is_datetime64_any_dtype(dtype):
        return {"type": "string", "format": "date-time"}
    if types.is_string_dtype(dtype) and not types.is_object_dtype(dtype):
        return {"type": "string"}
    if types.is_object_dtype(dtype):
        return value_schema(column)
    raise InvalidDocument(
        f"column {column.name!r} has dtype {dtype}, which has no JSON form; "
        "convert it first (e.g. .astype(str) or .dt.total_seconds())"
    )


def schema_from_frame(frame: Any) -> dict[str, Any]:
    """A collection schema for a DataFrame's columns (dotted names become nested objects).

    Parameters
    ----------
    frame : pandas.DataFrame
        Column names must be non-empty strings; ``_id`` and ``_mod`` are skipped.

    Returns
    -------
    dict
        ``{"type": "object", "properties": {...}, COLUMN_ORDER_KEY: [...]}``.

    Raises
    ------
    InvalidDocument
        For a non-string or malformed column name, a name that is both a field
        and the parent of a dotted one, or a dtype with no JSON form.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"n": [1], "meta.ok": [True]})
    >>> schema_from_frame(frame)["properties"]["meta"]
    {'type': 'object', 'properties': {'ok': {'type': 'boolean'}}}
    """
    root: dict[str, Any] = {}
    order: list[str] = []
    for name in frame.columns:
        parts = check_column_name(name)
        if name in _SPECIAL:
            continue
        _place(root, parts, column_schema(frame[name]), name)
        order.append(name)
    return {"type": "object", "properties": root, COLUMN_ORDER_KEY: order}


def check_column_name(name: object) -> list[str]:
    """A column name's dot-path parts; InvalidDocument for names that cannot be paths."""
    if not isinstance(name, str):
        raise InvalidDocument(
            f"column names must be strings, got {name!r} ({type(name).__name__}); "
            "rename the columns (e.g. frame.columns = frame.columns.astype(str))"
        )
    parts = name.split(".")
    if not name or "" in parts:
        raise InvalidDocument(f"column name {name!r} is not a dot path (empty part)")
    return parts


def _place(root: dict[str, Any], parts: list[str], schema: dict[str, Any], name: str) -> None:
    node = root
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {"type": "object", "properties": {}})
        if "properties" not in child:
            parent = ".".join(parts[: i + 1])
            raise InvalidDocument(f"column {parent!r} is a value, so {name!r} cannot nest under it")
        node = child["properties"]
    if parts[-1] in node:
        raise InvalidDocument(f"column {name!r} is a value and the parent of dotted columns")
    node[parts[-1]] = schema


# --- date-times ----------------------------------------------------------------------


def datetime_text(value: Any) -> str:
    """A date-time as stored: fixed-width UTC text with microseconds (naive means UTC).

    Raises
    ------
    InvalidDocument
        When the value has nanoseconds that microseconds cannot hold.

    Examples
    --------
    >>> datetime_text(dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone.utc))
    '2024-05-01T12:00:00.000000Z'
    >>> datetime_text(dt.date(2024, 5, 1))
    '2024-05-01'
    """
    nanos = getattr(value, "nanosecond", 0)
    if nanos:
        raise InvalidDocument(
            f"{value!r} has nanoseconds; threadkit stores date-times to the microsecond "
            "(round with .dt.floor('us'))"
        )
    if isinstance(value, dt.datetime):
        stamp = value if value.tzinfo is None else value.astimezone(dt.UTC)
        return stamp.strftime(DATETIME_FORMAT)
    if isinstance(value, dt.date):
        return value.isoformat()
    if hasattr(value, "astype") and "datetime64" in str(getattr(value, "dtype", "")):
        import pandas as pd

        return datetime_text(pd.Timestamp(value))
    raise InvalidDocument(f"{value!r} is not a date or date-time")
