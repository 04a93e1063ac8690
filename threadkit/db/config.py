"""Collection configs: name, schema, indexes, write validator and read filter.

A config travels in collection events (so collections replicate) and is
compiled once per version: the schema into a fast validator, the scripts into
JavaScript functions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from threadkit.db.names import check_name
from threadkit.db.schema import SchemaValidator, check_index_path, prepare_schema, schema_paths
from threadkit.db.scripts import ReadFilter, WriteValidator
from threadkit.errors import InvalidIndex, InvalidScript, MalformedRecord

__all__ = ["MAX_INDEX_PATH_BYTES", "CollectionConfig", "Index"]

MAX_INDEX_PATH_BYTES = 128
"""Longest index path, in bytes of UTF-8: the path is part of every key of its index."""


@dataclass(frozen=True, slots=True)
class Index:
    """An index on a dot path of a collection.

    Examples
    --------
    >>> Index("name", unique=True)
    Index(path='name', unique=True)
    """

    path: str
    unique: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path or self.path.strip(".") != self.path:
            raise InvalidIndex(f"index path must be a non-empty dot path, got {self.path!r}")
        if ".." in self.path:
            raise InvalidIndex(f"index path {self.path!r} has an empty part")
        try:
            size = len(self.path.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidIndex(f"index path {self.path!r} is not valid Unicode") from None
        if size > MAX_INDEX_PATH_BYTES:
            raise InvalidIndex(
                f"an index path is at most {MAX_INDEX_PATH_BYTES} bytes of UTF-8, got {size}"
            )
        if not isinstance(self.unique, bool):
            raise InvalidIndex(f"index 'unique' must be a bool, got {self.unique!r}")

    @classmethod
    def coerce(cls, value: Index | str | dict[str, Any]) -> Index:
        """An Index from an Index, a path string, or ``{"path": ..., "unique": ...}``."""
        if isinstance(value, Index):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, dict) and set(value) <= {"path", "unique"} and "path" in value:
            return cls(value["path"], bool(value.get("unique", False)))
        raise InvalidIndex(f"an index is an Index, a path or {{path, unique}}, got {value!r}")


@dataclass(frozen=True)
class CollectionConfig:
    """Everything that defines a collection (compiled parts are built once, on first use).

    Attributes
    ----------
    name : str
        The collection's name.
    schema : dict
        Its JSON Schema (with ``_id`` at the root).
    indexes : tuple[Index, ...]
        Its indexes (``_id`` is always uniquely indexed and is not listed).
    write_validator, read_filter : str | None
        JavaScript function bodies (ThreadDB's ``_validate`` and ``_filter``).
    """

    name: str
    schema: dict[str, Any]
    indexes: tuple[Index, ...] = ()
    write_validator: str | None = None
    read_filter: str | None = None

    @classmethod
    def build(
        cls,
        name: str,
        schema: dict[str, Any] | None = None,
        indexes: Any = (),
        write_validator: str | None = None,
        read_filter: str | None = None,
    ) -> CollectionConfig:
        """Check and normalise user input into a config (schema prepared, indexes checked)."""
        check_name(name, "collection")
        prepared = prepare_schema(schema)
        parsed = tuple(Index.coerce(i) for i in (indexes or ()))
        # a schema that names no fields (schema-less) indexes whatever documents hold
        schemaless = not (schema_paths(prepared) - {"_id", "_mod"})
        seen: set[str] = set()
        for index in parsed:
            if index.path in seen:
                raise InvalidIndex(f"index {index.path!r} is listed twice")
            seen.add(index.path)
            if index.path == "_id" or not schemaless:
                check_index_path(prepared, index.path)
        for what, body in (("write_validator", write_validator), ("read_filter", read_filter)):
            if body is not None and not isinstance(body, str):
                raise InvalidScript(f"{what} must be a JavaScript function body (str)")
            if body is not None and not body.isascii():
                try:
                    body.encode("utf-8")
                except UnicodeEncodeError:
                    raise InvalidScript(f"{what} is not valid Unicode (a lone surrogate)") from None
        config = cls(name, prepared, parsed, write_validator or None, read_filter or None)
        config.validator  # noqa: B018 - compile now so a bad script fails here
        config.filter  # noqa: B018
        return config

    def to_node(self) -> dict[str, Any]:
        """The config as carried in a collection event (the schema as JSON text)."""
        node: dict[str, Any] = {
            "name": self.name,
            "schema": json.dumps(self.schema, sort_keys=True, separators=(",", ":")),
            "indexes": [{"path": i.path, "unique": i.unique} for i in self.indexes],
        }
        if self.write_validator:
            node["writeValidator"] = self.write_validator
        if self.read_filter:
            node["readFilter"] = self.read_filter
        return node

    @classmethod
    def from_node(cls, node: dict[str, Any]) -> CollectionConfig:
        """Parse a config from a collection event (trusting nothing)."""
        try:
            schema = json.loads(node["schema"])
            indexes = tuple(Index.coerce(i) for i in node.get("indexes", ()))
            return cls(
                node["name"],
                schema,
                indexes,
                node.get("writeValidator") or None,
                node.get("readFilter") or None,
            )
        except (KeyError, TypeError, ValueError, RecursionError) as exc:
            raise MalformedRecord(f"collection config is malformed: {exc}") from None

    @cached_property
    def unique_paths(self) -> tuple[str, ...]:
        """Paths of the unique indexes."""
        return tuple(i.path for i in self.indexes if i.unique)

    @cached_property
    def index_paths(self) -> tuple[str, ...]:
        """Paths of all indexes (``_id`` excluded)."""
        return tuple(i.path for i in self.indexes)

    @cached_property
    def schema_validator(self) -> SchemaValidator:
        """The compiled schema (compiled on first use)."""
        return SchemaValidator(self.schema)

    @cached_property
    def validator(self) -> WriteValidator | None:
        """The compiled write validator, or None."""
        return WriteValidator(self.write_validator) if self.write_validator else None

    @cached_property
    def filter(self) -> ReadFilter | None:
        """The compiled read filter, or None."""
        return ReadFilter(self.read_filter) if self.read_filter else None

    def info(self) -> dict[str, Any]:
        """A plain-dict view (what ``collection_info`` returns)."""
        return {
            "name": self.name,
            "schema": self.schema,
            "indexes": [{"path": i.path, "unique": i.unique} for i in self.indexes],
            "write_validator": self.write_validator,
            "read_filter": self.read_filter,
        }
