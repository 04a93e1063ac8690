"""Reading a collection schema: local pointers, the subschema of a property, types and paths.

These answer questions about a prepared schema (:func:`.schema.prepare_schema`)
without validating anything: which JSON type a field has, whether a path can be
indexed, which paths a schema names.

Examples
--------
>>> schema = {"type": "object", "properties": {"a": {"type": "object",
...     "properties": {"b": {"type": "integer"}}}}}
>>> index_path_type(schema, "a.b")
'integer'
>>> sorted(schema_paths(schema))
['a', 'a.b']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import unquote

from threadkit.errors import InvalidIndex, InvalidSchema

__all__ = [
    "ID_FIELD",
    "INDEXABLE_TYPES",
    "MAX_DEPTH",
    "MAX_SCHEMA_PATHS",
    "check_index_path",
    "child_schema",
    "deref",
    "describe_type",
    "index_path_type",
    "nullable",
    "resolve_pointer",
    "schema_paths",
    "type_of",
]


ID_FIELD: Final = "_id"


INDEXABLE_TYPES: Final = frozenset({"string", "number", "integer", "boolean"})
"""JSON types an index path may lead to."""


MAX_SCHEMA_PATHS: Final = 10_000
"""The most dot paths :func:`schema_paths` lists before it refuses the schema."""


MAX_DEPTH: Final = 200


_MAX_REF_HOPS: Final = 64


_COMBINATORS: Final = ("allOf", "anyOf", "oneOf", "if", "then", "else")


def resolve_pointer(root: Mapping[str, Any], ref: str) -> Any:
    """Resolve the local JSON pointer ``ref`` (``#`` or ``#/…``) against ``root``."""
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        raise InvalidSchema(
            f"$ref {ref!r} is not a local JSON pointer ('#' or '#/…'); "
            "remote references are never fetched"
        )
    node: Any = root
    for raw in ref[2:].split("/"):
        part = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise InvalidSchema(f"$ref {ref!r} does not resolve in the schema")
    if not isinstance(node, Mapping | bool):
        raise InvalidSchema(f"$ref {ref!r} does not point at a schema")
    return node


def deref(root: Mapping[str, Any], node: Any) -> Any:
    """Follow ``$ref`` from ``node`` until a schema without one (or a cycle) is reached."""
    hops = 0
    while isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
        hops += 1
        if hops > _MAX_REF_HOPS:
            raise InvalidSchema("$ref chain does not end (a $ref cycle)")
        node = resolve_pointer(root, node["$ref"])
    return node


def child_schema(root: Mapping[str, Any], node: Any, name: str, depth: int = 0) -> Any:
    """The subschema ``node`` gives property ``name`` (via ``$ref`` and ``allOf``), or None."""
    if depth > MAX_DEPTH or not isinstance(node, Mapping):
        return None
    properties = node.get("properties")
    if isinstance(properties, Mapping) and name in properties:
        return properties[name]
    ref = node.get("$ref")
    if isinstance(ref, str):
        found = child_schema(root, resolve_pointer(root, ref), name, depth + 1)
        if found is not None:
            return found
    branches = node.get("allOf")
    for branch in branches if isinstance(branches, list) else []:
        found = child_schema(root, branch, name, depth + 1)
        if found is not None:
            return found
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def type_of(root: Mapping[str, Any], node: Any) -> str:
    """The JSON type a subschema gives, following ``$ref``; ``"any"`` when it names none."""
    hops = 0
    while True:
        if node is True or node == {}:
            return "any"
        if not isinstance(node, Mapping):
            return "none"
        declared = node.get("type")
        if isinstance(declared, str):
            return declared
        if isinstance(declared, list):
            types = [t for t in declared if t != "null"]
            if len(types) == 1 and isinstance(types[0], str):
                return types[0]
            return "|".join(str(t) for t in declared)
        ref = node.get("$ref")
        if isinstance(ref, str):
            hops += 1
            if hops > _MAX_REF_HOPS:
                raise InvalidSchema("$ref chain does not end (a $ref cycle)")
            node = resolve_pointer(root, ref)
            continue
        if "const" in node:
            return _json_type(node["const"])
        enum = node.get("enum")
        if isinstance(enum, list) and enum:
            kinds = {_json_type(v) for v in enum} - {"null"}
            if kinds == {"integer", "number"}:
                return "number"
            if len(kinds) == 1:
                return kinds.pop()
        if "properties" in node:
            return "object"
        if "items" in node or "prefixItems" in node:
            return "array"
        return "any"


def _split_path(path: str) -> list[str]:
    if not isinstance(path, str) or not path:
        raise InvalidIndex(f"an index path must be a non-empty dot path, not {path!r}")
    parts = path.split(".")
    if any(part == "" for part in parts):
        raise InvalidIndex(f"index path {path!r} has an empty segment")
    return parts


def nullable(root: Mapping[str, Any], node: Any) -> bool:
    """True when a subschema's ``type`` is a list that allows null."""
    node = deref(root, node)
    declared = node.get("type") if isinstance(node, Mapping) else None
    return isinstance(declared, list) and "null" in declared


def describe_type(json_type: str) -> str:
    """A :func:`type_of` answer as an error message names it."""
    if json_type == "any":
        return "any type (no `type` given)"
    return json_type


def index_path_type(schema: Mapping[str, Any], path: str) -> str:
    """The JSON type the schema gives the field at a dot path.

    Parameters
    ----------
    schema : Mapping
        A prepared collection schema.
    path : str
        A dot path through ``properties``, e.g. ``"Toys.Favorite"``. ``$ref`` into
        ``definitions``/``$defs`` (any local pointer) and ``allOf`` branches are followed.

    Returns
    -------
    str
        The JSON type: ``"string"``, ``"number"``, ``"integer"``, ``"boolean"``,
        ``"object"``, ``"array"``, ``"null"``; ``"any"`` when the schema does not say;
        ``"a|b"`` when it allows several (a nullable type like ``["string", "null"]``
        counts as its one non-null type).

    Raises
    ------
    InvalidIndex
        If the path is malformed or the schema has no field at it.

    Examples
    --------
    >>> schema = {"properties": {"Toys": {"$ref": "#/definitions/Toys"}},
    ...           "definitions": {"Toys": {"type": "object",
    ...                                    "properties": {"Favorite": {"type": "string"}}}}}
    >>> index_path_type(schema, "Toys.Favorite")
    'string'
    >>> index_path_type(schema, "Toys")
    'object'
    """
    parts = _split_path(path)
    node: Any = schema
    for depth, part in enumerate(parts):
        child = child_schema(schema, node, part)
        if child is None:
            where = ".".join(parts[:depth]) or "the root"
            raise InvalidIndex(
                f"the schema has no field {path!r}: {where} has no property {part!r}"
            )
        node = child
    return type_of(schema, node)


def check_index_path(schema: Mapping[str, Any], path: str) -> str:
    """Check that ``path`` may carry an index; return the field's JSON type.

    Parameters
    ----------
    schema : Mapping
        A prepared collection schema.
    path : str
        The dot path to index.

    Returns
    -------
    str
        ``"string"``, ``"number"``, ``"integer"`` or ``"boolean"``.

    Raises
    ------
    InvalidIndex
        If the path is ``_id`` (always uniquely indexed), missing from the schema, or
        leads to an object, an array, or a field without one scalar type.

    Examples
    --------
    >>> schema = {"properties": {"Tags": {"type": "array"}}}
    >>> check_index_path(schema, "Tags")
    Traceback (most recent call last):
    ...
    threadkit.errors.InvalidIndex: cannot index 'Tags': it is an array; an index needs a \
string, number, integer or boolean field
    """
    if path == ID_FIELD:
        raise InvalidIndex(f"cannot index {ID_FIELD!r}: it is always uniquely indexed")
    json_type = index_path_type(schema, path)
    if json_type in INDEXABLE_TYPES:
        return json_type
    if json_type in ("object", "array"):
        what = f"an {json_type}"
    elif json_type == "any":
        what = "a field with no type in the schema"
    elif "|" in json_type:
        what = f"a field of several types ({json_type})"
    else:
        what = f"of type {json_type}"
    raise InvalidIndex(
        f"cannot index {path!r}: it is {what}; an index needs a string, number, integer "
        "or boolean field"
    )


def schema_paths(schema: Mapping[str, Any]) -> set[str]:
    """Every dot path the schema names, for checking query and sort paths.

    Parameters
    ----------
    schema : Mapping
        A prepared collection schema.

    Returns
    -------
    set of str
        The paths of all properties, nested ones included (``"Toys"`` and
        ``"Toys.Favorite"``), found through ``properties``, local ``$ref``, and the
        branches of ``allOf``/``anyOf``/``oneOf``/``if``/``then``/``else``. Array items
        are not descended into (a dot path cannot address them). A recursive ``$ref`` is
        followed once per path.

    Raises
    ------
    InvalidSchema
        If the schema names more than :data:`MAX_SCHEMA_PATHS` paths.

    Examples
    --------
    >>> sorted(schema_paths({"properties": {"_id": {"type": "string"},
    ...                                     "Meta": {"properties": {"Reads": {}}}}}))
    ['Meta', 'Meta.Reads', '_id']
    """
    found: set[str] = set()

    def walk(node: Any, prefix: str, refs: frozenset[str], depth: int) -> None:
        if not isinstance(node, Mapping) or depth > MAX_DEPTH:
            return
        ref = node.get("$ref")
        if isinstance(ref, str) and ref not in refs:
            walk(resolve_pointer(schema, ref), prefix, refs | {ref}, depth + 1)
        properties = node.get("properties")
        if isinstance(properties, Mapping):
            for name, sub in properties.items():
                path = f"{prefix}{name}"
                if path not in found:
                    found.add(path)
                    if len(found) > MAX_SCHEMA_PATHS:
                        raise InvalidSchema(f"the schema names more than {MAX_SCHEMA_PATHS} paths")
                walk(sub, f"{path}.", refs, depth + 1)
        for key in _COMBINATORS:
            value = node.get(key)
            branches = value if isinstance(value, list) else [value]
            for branch in branches:
                walk(branch, prefix, refs, depth + 1)

    walk(schema, "", frozenset(), 0)
    return found
