"""What a collection's transactions need of it: reads as a reader sees them, documents to write.

:class:`CollectionAccess` is the internal interface between a collection
(:mod:`.collection`) and its read and write transactions (:mod:`.txn`): both
use it, so neither reaches into the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from threadkit.db import dockeys
from threadkit.db.config import CollectionConfig
from threadkit.db.docpath import get_path
from threadkit.db.names import new_instance_id, new_instance_ids
from threadkit.db.planner import Source, execute
from threadkit.db.query import Query
from threadkit.db.values import check_id, check_value
from threadkit.errors import InstanceNotFound, InvalidDocument

if TYPE_CHECKING:
    from threadkit.db.database import Database

__all__ = ["CollectionAccess", "DocSource", "update_fields"]


class DocSource(Protocol):
    """Where a read finds documents by id (a snapshot, or one with pending writes on it)."""

    def get(self, instance_id: str) -> dict[str, Any] | None:
        """One document, or None."""


class CollectionAccess:
    """Reads and write preparation of one collection, for its transactions.

    Parameters
    ----------
    db : Database
        The collection's database.
    name : str
        The collection's name.
    """

    def __init__(self, db: Database, name: str) -> None:
        self.db = db
        self.name = name

    @property
    def config(self) -> CollectionConfig:
        """The collection's current config."""
        return self.db.engine.config(self.name)

    # ------------------------------------------------------------------ reads

    def find(self, source: Source, query: Query | None, reader: str | None) -> list[dict[str, Any]]:
        """Documents of ``source`` matching ``query`` (all when None), read filter applied."""
        read_filter = self.config.filter
        hook = None
        if read_filter is not None:

            def hook(docs: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
                return read_filter.filter_many(reader, docs)  # one round trip for all

        return execute(query or Query(), source, filter_many=hook)

    def find_by_id(self, source: DocSource, instance_id: str, reader: str | None) -> dict[str, Any]:
        """One document of ``source``; InstanceNotFound when absent or hidden from ``reader``."""
        doc = self.visible(source.get(instance_id), reader)
        if doc is None:
            raise InstanceNotFound(f"instance {instance_id!r} not found in {self.name!r}")
        return doc

    def visible(self, doc: dict[str, Any] | None, reader: str | None) -> dict[str, Any] | None:
        """``doc`` as the read filter shows it to ``reader`` (None: hidden or absent)."""
        if doc is None:
            return None
        read_filter = self.config.filter
        return doc if read_filter is None else read_filter(reader, doc)

    def get_committed(self, instance_id: str) -> dict[str, Any] | None:
        """The committed document (no read filter), or None."""
        with self.db._repo.transaction() as txn:
            return self.db.engine.get_doc(txn, self.name, instance_id)

    # ----------------------------------------------------------------- writes

    def prepare(self, doc: dict[str, Any], *, generate_id: bool) -> dict[str, Any]:
        """A copy of ``doc`` to write: ``_id`` first (generated when allowed), ``_mod`` dropped."""
        instance_id = doc.get("_id")
        if _lacks_id(instance_id):
            if not generate_id:
                raise InvalidDocument("save needs each document's _id")
            return _with_id(doc, new_instance_id(), generated=True)
        return _with_id(doc, instance_id)

    def prepare_creates(
        self, docs: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[bool]]:
        """Documents to create, prepared as by :meth:`prepare`, and for each whether its id
        was generated here (ids for all of them are made in one batch)."""
        generated = [_lacks_id(doc.get("_id")) for doc in docs]
        new_ids = iter(new_instance_ids(sum(generated)))
        prepared = [
            _with_id(doc, next(new_ids) if new else doc["_id"], generated=new)
            for doc, new in zip(docs, generated, strict=True)
        ]
        return prepared, generated

    def check_index_keys(self, config: CollectionConfig, doc: dict[str, Any]) -> None:
        """Raise InvalidDocument when an indexed text value is too long for its index entry.

        An index entry's key holds the collection name, the path, the value and the
        ``_id``, and LMDB keys take at most :data:`~threadkit.db.dockeys.MAX_KEY` bytes.
        """
        if not config.index_paths:
            return
        coll = dockeys.coll_key(self.db.engine.prefix, self.name)
        instance_id = doc["_id"]
        for path in config.index_paths:
            value = get_path(doc, path)
            # a short text always fits: 12 characters take at most 50 bytes encoded
            if (
                type(value) is str
                and len(value) > 12
                and not dockeys.index_key_fits(coll, path, value, instance_id)
            ):
                raise InvalidDocument(
                    f"document {instance_id!r}: the text at indexed path {path!r} is too "
                    f"long to index ({len(value.encode())} bytes); an index entry holds "
                    f"the collection name, the path, the value and the _id in at most "
                    f"{dockeys.MAX_KEY} bytes"
                )


def update_fields(
    instance_id: object, changes: object, fields: Mapping[str, Any]
) -> dict[str, Any]:
    """The fields an ``update(instance_id, changes, **fields)`` sets, checked.

    Raises
    ------
    InvalidDocument
        For an id that is not a non-empty string, ``changes`` that is not a mapping
        with string keys, or a change of ``_id`` or ``_mod``.

    Examples
    --------
    >>> update_fields("a", {"odd name": 1}, {"n": 2})
    {'odd name': 1, 'n': 2}
    >>> update_fields("a", None, {"_mod": 5})
    Traceback (most recent call last):
    ...
    threadkit.errors.InvalidDocument: _mod is set by threadkit on every write; update cannot set it
    """
    if not isinstance(instance_id, str) or not instance_id:
        raise InvalidDocument(
            f"update needs a document's _id (a non-empty string), got {instance_id!r}"
        )
    if changes is not None and not isinstance(changes, Mapping):
        raise InvalidDocument(
            f"update's changes must be a dict of fields, got {type(changes).__name__}"
        )
    merged = {**(changes or {}), **fields}
    for key in merged:
        if not isinstance(key, str):
            raise InvalidDocument(f"a field name must be a string, got {key!r}")
    if "_id" in merged and merged.pop("_id") != instance_id:
        raise InvalidDocument("update cannot change a document's _id")
    if "_mod" in merged:
        raise InvalidDocument("_mod is set by threadkit on every write; update cannot set it")
    return merged


def _lacks_id(instance_id: Any) -> bool:
    """True for an ``_id`` that asks for a generated one: absent (None) or empty."""
    return instance_id is None or instance_id == ""


def _with_id(doc: dict[str, Any], instance_id: Any, *, generated: bool = False) -> dict[str, Any]:
    """A deep copy of ``doc`` with ``instance_id`` as its first field, ``_id``; no ``_mod``.

    The id and every value are checked against the value model (:mod:`.values`) first.
    """
    check_id(instance_id)
    prepared: dict[str, Any] = {"_id": instance_id}
    for key, value in doc.items():
        if key != "_id" and key != "_mod":
            prepared[key] = value
    check_value(prepared, "document" if generated else f"document {instance_id!r}")
    for key, value in prepared.items():
        if isinstance(value, dict | list):
            prepared[key] = _copy_json(value)
    return prepared


def _copy_json(value: Any) -> Any:
    """A deep copy of a JSON-like value (dicts and lists copied, scalars shared)."""
    if isinstance(value, dict):
        return {k: _copy_json(v) if isinstance(v, dict | list) else v for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) if isinstance(v, dict | list) else v for v in value]
    return value
