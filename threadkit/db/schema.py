"""Collection schemas: preparing them and validating documents.

Reading a prepared schema (types, index paths, the paths it names) is
:mod:`.schemareading`; its public names are re-exported here.

A collection's schema is a JSON Schema whose root describes an object with a string
``_id`` (ThreadDB's rule). threadkit adds ``_id`` when a schema lacks it (ThreadDB refuses
such a schema, even ``{}``), and refuses an ``_id`` that is not a string.

Dialect
-------
The dialect is the one ``$schema`` names (draft 3, 4, 6, 7, 2019-09 or 2020-12); a schema
without ``$schema`` is read as **draft 7**, the dialect of ThreadDB-era schemas (Go's
``gojsonschema``, ``definitions``, array-form ``items``). Validation runs on code compiled
by ``fastjsonschema`` for drafts 4, 6 and 7 and falls back to ``jsonschema`` for the other
drafts and for any schema ``fastjsonschema`` cannot compile; both give the same verdicts
and the error message always comes from ``jsonschema`` (JSON path and reason).

Decisions
---------
- ``format`` is an annotation, not an assertion (as in JSON Schema 2019-09 and later, and
  ``jsonschema``'s default): every peer must reach the same verdict, and format checkers
  differ between libraries and versions. ThreadDB's ``gojsonschema`` does check formats.
- ``default`` values are never filled in: validating a document does not change it.
- ``$ref`` must be a local JSON pointer (``#`` or ``#/…``) that resolves in the schema.
  Schemas arrive from peers, so nothing is ever fetched (``fastjsonschema`` and older
  ``jsonschema`` would fetch remote references over the network).
- ``_id`` is required by the default schema. A supplied schema that lacks ``_id`` gets
  the property added but its ``required`` list is left alone (the definition holding the
  root may be reused for nested objects); the collection layer always sets ``_id``
  before validating, so the difference is never seen.

Examples
--------
>>> schema = prepare_schema({"type": "object", "properties": {"Name": {"type": "string"}}})
>>> schema["properties"]["_id"]
{'type': 'string'}
>>> validator = SchemaValidator(schema)
>>> validator.is_valid({"_id": "a", "Name": 5})
False
>>> check_index_path(schema, "Name")
'string'
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import Any, Final

import fastjsonschema

from threadkit.db.schemareading import (
    ID_FIELD,
    INDEXABLE_TYPES,
    MAX_DEPTH,
    MAX_SCHEMA_PATHS,
    check_index_path,
    child_schema,
    deref,
    describe_type,
    index_path_type,
    nullable,
    resolve_pointer,
    schema_paths,
    type_of,
)
from threadkit.errors import InvalidSchema, SchemaViolation

__all__ = [
    "DEFAULT_SCHEMA",
    "INDEXABLE_TYPES",
    "MAX_SCHEMA_PATHS",
    "SchemaValidator",
    "check_index_path",
    "index_path_type",
    "prepare_schema",
    "schema_paths",
]

DEFAULT_SCHEMA: Final[Mapping[str, Any]] = {
    "type": "object",
    "properties": {ID_FIELD: {"type": "string"}},
    "required": [ID_FIELD],
}
"""The schema of a collection created without one: any object with a string ``_id``."""


_DRAFT7: Final = "http://json-schema.org/draft-07/schema#"

# ``$schema`` (without scheme, trailing "#" or slash) → the name of its jsonschema
# validator class. ``jsonschema`` is imported where it is used, not here: importing it
# costs 0.05–3 s (its format checkers import ``rfc3987_syntax`` when installed, which
# compiles a grammar), and a collection without a schema, or a document that passes the
# compiled checks, never needs it.
_DIALECTS: Final[Mapping[str, str]] = {
    "json-schema.org/draft-03/schema": "Draft3Validator",
    "json-schema.org/draft-04/schema": "Draft4Validator",
    "json-schema.org/draft-06/schema": "Draft6Validator",
    "json-schema.org/draft-07/schema": "Draft7Validator",
    "json-schema.org/draft/2019-09/schema": "Draft201909Validator",
    "json-schema.org/draft/2020-12/schema": "Draft202012Validator",
}

# Dialects fastjsonschema implements faithfully, and the ``$schema`` that selects each.
_FAST_DIALECTS: Final[Mapping[str, str]] = {
    "Draft4Validator": "http://json-schema.org/draft-04/schema#",
    "Draft6Validator": "http://json-schema.org/draft-06/schema#",
    "Draft7Validator": _DRAFT7,
}

# Keywords whose value is one subschema, a list of them, or a name → subschema map.
_ONE_SCHEMA: Final = (
    "additionalProperties",
    "additionalItems",
    "contains",
    "not",
    "if",
    "then",
    "else",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contentSchema",
)
_SCHEMA_LIST: Final = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_MAP: Final = ("properties", "patternProperties", "definitions", "$defs", "dependentSchemas")

_MAX_MESSAGE: Final = 300
_TOO_DEEP: Final = "document is nested too deeply to be checked against the schema"


def _refuse_fetch(uri: str) -> Any:
    raise fastjsonschema.JsonSchemaDefinitionException(f"remote reference {uri} is not fetched")


# Handlers that stop fastjsonschema from fetching anything (a second guard: prepare_schema
# already refuses every non-local $ref).
_NO_FETCH: Final = {
    scheme: _refuse_fetch for scheme in ("http", "https", "file", "ftp", "data", "urn", "")
}


def _dialect(schema: Mapping[str, Any]) -> str:
    """The jsonschema validator class name for the dialect ``schema`` names (draft 7 if none)."""
    uri = schema.get("$schema")
    if uri is None:
        return "Draft7Validator"
    if not isinstance(uri, str):
        raise InvalidSchema(f"$schema must be a URI string, not {uri!r}")
    key = uri.split("://", 1)[-1].split("#", 1)[0].rstrip("/")
    cls = _DIALECTS.get(key)
    if cls is None:
        raise InvalidSchema(
            f"unknown $schema {uri!r}: use draft-04, draft-06, draft-07, 2019-09 or 2020-12"
        )
    return cls


def _subschemas(node: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """Yield ``(keyword, subschema)`` for every subschema directly under ``node``."""
    for key in _ONE_SCHEMA:
        if key in node:
            yield key, node[key]
    items = node.get("items")
    if isinstance(items, list):
        for item in items:
            yield "items", item
    elif items is not None:
        yield "items", items
    for key in _SCHEMA_LIST:
        value = node.get(key)
        if isinstance(value, list):
            for item in value:
                yield key, item
    for key in _SCHEMA_MAP:
        value = node.get(key)
        if isinstance(value, Mapping):
            for item in value.values():
                yield key, item
    dependencies = node.get("dependencies")
    if isinstance(dependencies, Mapping):
        for item in dependencies.values():
            if isinstance(item, Mapping | bool):
                yield "dependencies", item


def _check_refs(root: Mapping[str, Any], id_key: str) -> None:
    """Refuse remote or dangling ``$ref`` and nested resource ids anywhere in ``root``."""

    def walk(node: Any, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise InvalidSchema(f"the schema is nested deeper than {MAX_DEPTH} levels")
        if not isinstance(node, Mapping):
            return
        ref = node.get("$ref")
        if ref is not None:
            if not isinstance(ref, str):
                raise InvalidSchema(f"$ref must be a string, not {ref!r}")
            resolve_pointer(root, ref)
        for key in ("$recursiveRef", "$dynamicRef"):
            value = node.get(key)
            if isinstance(value, str) and not value.startswith("#"):
                raise InvalidSchema(
                    f"{key} {value!r} is not local; remote schemas are never fetched"
                )
        if depth > 0:
            nested_id = node.get(id_key)
            if isinstance(nested_id, str) and not nested_id.startswith("#"):
                raise InvalidSchema(
                    f"a nested {id_key} ({nested_id!r}) is not supported: "
                    "references resolve against the schema root"
                )
        for _, sub in _subschemas(node):
            walk(sub, depth + 1)

    walk(root, 0)


# Keywords that apply their subschemas to the same instance (not to a child value): a
# cycle through these and $ref never ends, whatever the document.
_SAME_INSTANCE_ONE: Final = ("not", "if", "then", "else")
_SAME_INSTANCE_LIST: Final = ("allOf", "anyOf", "oneOf")
_SAME_INSTANCE_MAP: Final = ("dependentSchemas", "dependencies")


def _same_instance(root: Mapping[str, Any], node: Mapping[str, Any]) -> Iterator[Any]:
    ref = node.get("$ref")
    if isinstance(ref, str):
        yield resolve_pointer(root, ref)
    for key in _SAME_INSTANCE_ONE:
        if key in node:
            yield node[key]
    for key in _SAME_INSTANCE_LIST:
        value = node.get(key)
        if isinstance(value, list):
            yield from value
    for key in _SAME_INSTANCE_MAP:
        value = node.get(key)
        if isinstance(value, Mapping):
            yield from (v for v in value.values() if isinstance(v, Mapping))


def _check_loops(root: Mapping[str, Any]) -> None:
    """Refuse a ``$ref`` loop that never moves to a child value (it would never end)."""
    done: set[int] = set()

    def visit(node: Any, stack: set[int], depth: int) -> None:
        if not isinstance(node, Mapping) or id(node) in done:
            return
        if id(node) in stack:
            raise InvalidSchema(
                "the schema has a $ref loop that never reaches a nested value "
                "(it would never finish validating)"
            )
        if depth > MAX_DEPTH:
            raise InvalidSchema(f"the schema is nested deeper than {MAX_DEPTH} levels")
        stack.add(id(node))
        for sub in _same_instance(root, node):
            visit(sub, stack, depth + 1)
        stack.discard(id(node))
        done.add(id(node))

    def every(node: Any, depth: int) -> Iterator[Any]:
        if isinstance(node, Mapping) and depth <= MAX_DEPTH:
            yield node
            for _, sub in _subschemas(node):
                yield from every(sub, depth + 1)

    for node in list(every(root, 0)):
        visit(node, set(), 0)


_DATA_KEYWORDS: Final = ("enum", "const", "default", "examples")
_REFERENCE_KEYS: Final = ("$ref", "$id", "id")


def _has_data_references(root: Mapping[str, Any]) -> bool:
    """Whether a value inside ``enum``/``const``/``default``/``examples`` looks like a reference.

    fastjsonschema treats any ``{"$ref": …}`` it meets as a reference, data or not (it
    then rewrites or tries to fetch it), so such schemas are left to jsonschema.
    """

    def looks(value: Any, depth: int) -> bool:
        if depth > MAX_DEPTH:
            return True
        if isinstance(value, Mapping):
            if any(isinstance(value.get(key), str) for key in _REFERENCE_KEYS):
                return True
            return any(looks(v, depth + 1) for v in value.values())
        if isinstance(value, list):
            return any(looks(v, depth + 1) for v in value)
        return False

    def walk(node: Any, depth: int) -> bool:
        if not isinstance(node, Mapping) or depth > MAX_DEPTH:
            return False
        if any(key in node and looks(node[key], 0) for key in _DATA_KEYWORDS):
            return True
        return any(walk(sub, depth + 1) for _, sub in _subschemas(node))

    return walk(root, 0)


def prepare_schema(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check a collection schema and return a copy with a string ``_id`` at its root.

    Parameters
    ----------
    schema : Mapping or None
        A JSON Schema, or None for :data:`DEFAULT_SCHEMA` (any object with a string
        ``_id``). The mapping is not changed.

    Returns
    -------
    dict
        A new schema (pure JSON types): the input, with ``_id: {"type": "string"}`` added
        to the root's ``properties`` when missing. When the root is a ``$ref`` (as in
        schemas generated from Go structs), ``_id`` is added to the definition it names.

    Raises
    ------
    InvalidSchema
        If the schema is not a JSON object, not valid for its dialect's metaschema (the
        message names the failing part), names an unknown ``$schema``, has a remote or
        dangling ``$ref``, does not describe objects at its root, or has an ``_id`` that
        is not a string.

    Examples
    --------
    >>> prepare_schema(None)["required"]
    ['_id']
    >>> prepare_schema({"properties": {"_id": {"type": "integer"}}})
    Traceback (most recent call last):
    ...
    threadkit.errors.InvalidSchema: _id must be of type string, not integer
    """
    if schema is None:
        return json.loads(json.dumps(DEFAULT_SCHEMA))  # type: ignore[no-any-return]
    if not isinstance(schema, Mapping):
        raise InvalidSchema(
            f"a collection schema must be a JSON object, not {type(schema).__name__}"
        )
    try:
        prepared: dict[str, Any] = json.loads(json.dumps(schema, allow_nan=False))
    except (TypeError, ValueError, RecursionError) as err:
        raise InvalidSchema(f"the schema is not JSON: {err}") from None
    dialect = _dialect(prepared)
    if prepared != DEFAULT_SCHEMA:  # the default is valid: no need to import jsonschema
        _check_metaschema(dialect, prepared)
    id_key = "id" if dialect in ("Draft3Validator", "Draft4Validator") else "$id"
    _check_refs(prepared, id_key)
    _check_loops(prepared)

    root = deref(prepared, prepared)
    if root is False:
        raise InvalidSchema("the schema's root is false: it allows no document")
    if isinstance(root, Mapping):
        root_type = root.get("type")
        if (
            root_type is not None
            and root_type != "object"
            and not (isinstance(root_type, list) and "object" in root_type)
        ):
            raise InvalidSchema(
                f"the schema's root must describe an object (type 'object'), not {root_type!r}"
            )
    id_schema = child_schema(prepared, prepared, ID_FIELD)
    if id_schema is None:
        if root is True:
            raise InvalidSchema("the schema's root $ref points at `true`: add an object schema")
        properties = root.setdefault("properties", {})
        properties[ID_FIELD] = {"type": "string"}
    else:
        id_type = type_of(prepared, id_schema)
        if id_type == "string" and nullable(prepared, id_schema):
            id_type = "string or null"
        if id_type != "string":
            raise InvalidSchema(f"{ID_FIELD} must be of type string, not {describe_type(id_type)}")
    return prepared


def _check_metaschema(dialect: str, schema: dict[str, Any]) -> None:
    """Raise InvalidSchema unless ``schema`` is valid against its dialect's metaschema."""
    import jsonschema
    from jsonschema.exceptions import SchemaError

    try:
        getattr(jsonschema, dialect).check_schema(schema)
    except SchemaError as err:
        where = err.json_path if err.path else "the root"
        raise InvalidSchema(f"not a valid JSON Schema at {where}: {_clip(err.message)}") from None
    except RecursionError:
        raise InvalidSchema(f"the schema is nested deeper than {MAX_DEPTH} levels") from None


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


class SchemaValidator:
    """A compiled collection schema: validates documents fast, explains failures well.

    Parameters
    ----------
    schema : Mapping or None
        A collection schema; it goes through :func:`prepare_schema` (None gives
        :data:`DEFAULT_SCHEMA`).

    Raises
    ------
    InvalidSchema
        As :func:`prepare_schema`.

    Notes
    -----
    Drafts 4, 6 and 7 are compiled to Python by ``fastjsonschema`` once, here; other
    dialects, and schemas ``fastjsonschema`` cannot compile, are checked by
    ``jsonschema`` (:attr:`compiled` tells which). A failing document is re-checked by
    ``jsonschema`` for its best error: the JSON path of the failing part and the reason.
    ``jsonschema`` is imported only then (and by :func:`prepare_schema` for a supplied
    schema). Instances are safe to share between threads.

    Examples
    --------
    >>> v = SchemaValidator({"properties": {"Age": {"type": "integer", "minimum": 0}}})
    >>> v.validate({"_id": "a", "Age": -1})
    Traceback (most recent call last):
    ...
    threadkit.errors.SchemaViolation: document does not match the schema at $.Age: -1 is \
less than the minimum of 0
    """

    def __init__(self, schema: Mapping[str, Any] | None) -> None:
        self._schema = prepare_schema(schema)
        self._dialect = _dialect(self._schema)
        self._fast: Any = None
        fast_dialect = _FAST_DIALECTS.get(self._dialect)
        if fast_dialect is not None and not _has_data_references(self._schema):
            # fastjsonschema rewrites $ref in place and picks its dialect from $schema
            # (2019-09 when absent), so it gets its own copy with the dialect spelled out.
            definition = json.loads(json.dumps(self._schema))
            definition["$schema"] = fast_dialect
            try:
                self._fast = fastjsonschema.compile(
                    definition,
                    handlers=_NO_FETCH,
                    use_default=False,
                    use_formats=False,
                )
            except Exception:  # any failure to compile: use jsonschema
                self._fast = None

    @cached_property
    def _jsonschema(self) -> Any:
        """The ``jsonschema`` validator, built on first use (two threads may both build it)."""
        import jsonschema
        import referencing

        cls = getattr(jsonschema, self._dialect)
        return cls(self._schema, registry=referencing.Registry())

    @property
    def schema(self) -> dict[str, Any]:
        """The prepared schema (a copy you may change freely)."""
        copy: dict[str, Any] = json.loads(json.dumps(self._schema))
        return copy

    @property
    def compiled(self) -> bool:
        """True when documents are checked by code compiled with ``fastjsonschema``."""
        return self._fast is not None

    def is_valid(self, doc: Any) -> bool:
        """Whether ``doc`` satisfies the schema.

        Parameters
        ----------
        doc : Any
            A JSON document (normally a dict).

        Returns
        -------
        bool
            False also for a document nested too deeply to check.
        """
        if self._fast is not None:
            try:
                self._fast(doc)
            except fastjsonschema.JsonSchemaValueException:
                return False
            except RecursionError:
                return False
            except Exception:  # a non-JSON value the compiled code trips on: ask jsonschema
                pass
            else:
                return True
        try:
            return bool(self._jsonschema.is_valid(doc))
        except RecursionError:
            return False

    def validate(self, doc: Any) -> None:
        """Raise :class:`~threadkit.errors.SchemaViolation` unless ``doc`` satisfies the schema.

        Parameters
        ----------
        doc : Any
            A JSON document (normally a dict).

        Raises
        ------
        SchemaViolation
            With the JSON path of the failing part (``$`` is the document, ``$.a.b[0]``
            a nested value) and the reason, e.g. ``document does not match the schema
            at $.Age: 'x' is not of type 'integer'``.
        """
        fast_error: str | None = None
        if self._fast is not None:
            try:
                self._fast(doc)
            except fastjsonschema.JsonSchemaValueException as err:
                fast_error = f"{_fast_path(err.name or 'data')}: {_clip(err.message)}"
            except RecursionError:
                raise SchemaViolation(_TOO_DEEP) from None
            except Exception:  # a non-JSON value the compiled code trips on: ask jsonschema
                pass
            else:
                return
        from jsonschema.exceptions import best_match

        try:
            error = best_match(self._jsonschema.iter_errors(doc))
        except RecursionError:
            raise SchemaViolation(_TOO_DEEP) from None
        if error is not None:
            raise SchemaViolation(
                f"document does not match the schema at {error.json_path}: {_clip(error.message)}"
            )
        if fast_error is not None:
            raise SchemaViolation(f"document does not match the schema at {fast_error}")

    def __repr__(self) -> str:
        engine = "fastjsonschema" if self._fast is not None else "jsonschema"
        return f"SchemaValidator({self._schema!r}) [{engine}]"


def _fast_path(name: str) -> str:
    """fastjsonschema's ``data.a.b[0]`` as a JSON path ``$.a.b[0]``."""
    return "$" + name[4:] if name.startswith("data") else name
