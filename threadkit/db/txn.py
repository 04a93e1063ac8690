"""Read and write transactions over one collection.

A :class:`ReadTxn` holds an LMDB read transaction: everything it reads comes
from one consistent snapshot. A :class:`WriteTxn` buffers writes, checks what it
can at once (existence, schema), and commits them as one record on exit: all of
them or none. Reads inside a write transaction see its own pending writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from threadkit.db import reads
from threadkit.db.access import CollectionAccess, update_fields
from threadkit.db.dockeys import encode_id
from threadkit.db.events import Action
from threadkit.db.gate import author_of, resolve_writer
from threadkit.db.indexkeys import JSON_TYPES, encode_value, json_type, type_range
from threadkit.db.query import Op as QueryOp
from threadkit.db.query import Query
from threadkit.db.schema import schema_paths
from threadkit.db.values import check_id
from threadkit.db.writeop import WriteOp
from threadkit.errors import (
    InstanceExists,
    InstanceNotFound,
    InvalidDocument,
    ReadOnlyTransaction,
    TransactionClosed,
)
from threadkit.store.txntypes import StoreTxn

if TYPE_CHECKING:
    from threadkit.core.records import Record
    from threadkit.db.collection import Collection
    from threadkit.db.gate import WriteAs, Writer

__all__ = ["CollectionInTxn", "ReadTxn", "WriteTxn", "normalise_docs"]

_AFTER = b"\xff"  # sorts after any encode_id() continuation: UTF-8 never holds 0xFF


class CollectionInTxn:
    """The query executor's view of a collection inside one LMDB transaction."""

    def __init__(self, coll: Collection, txn: StoreTxn) -> None:
        self._engine = coll.db.engine
        self._name = coll.name
        self._txn = txn
        self._config = self._engine.config_in(txn, self._name)

    def scan(self) -> Iterator[dict[str, Any]]:
        """Every document in ``_id`` order (read and decoded a chunk at a time)."""
        return iter(reads.scan(self._engine, self._txn, self._name))

    def scan_batches(self) -> Iterator[list[dict[str, Any]]]:
        """Every document in ``_id`` order, a decoded chunk at a time."""
        return reads.scan_batches(self._engine, self._txn, self._name)

    def get(self, instance_id: str) -> dict[str, Any] | None:
        """One document, or None."""
        return self._engine.get_doc(self._txn, self._name, instance_id)

    def indexed_paths(self) -> Sequence[str]:
        """Paths that have an index."""
        return self._config.index_paths

    def index_ids(self, path: str, op: QueryOp, value: Any) -> Iterator[str]:
        """Ids whose indexed value satisfies ``op value``."""
        if op is QueryOp.IN:
            for item in value:
                yield from self.index_ids(path, QueryOp.EQ, item)
            return
        lo, hi = _bounds(op, value)
        yield from self._engine.index_ids(self._txn, self._name, path, lo, hi)

    def index_refs(self, path: str, op: QueryOp, value: Any) -> list[bytes]:
        """As :meth:`index_ids`, the ids encoded (``encode_id``), in index key order."""
        if op is QueryOp.IN:
            return [ref for item in value for ref in self.index_refs(path, QueryOp.EQ, item)]
        lo, hi = _bounds(op, value)
        size = len(lo) if op is QueryOp.EQ else None
        return reads.index_refs(self._engine, self._txn, self._name, path, lo, hi, size)

    def load_batches(self, refs: Sequence[bytes]) -> Iterator[list[dict[str, Any]]]:
        """The documents with these encoded ids, in that order (absent ones left out), a
        decoded chunk at a time."""
        return reads.load_batches(self._engine, self._txn, self._name, refs)

    def schema_allows(self, path: str) -> bool:
        """Whether a sort path is known: any for a schema-less collection, else a schema path."""
        paths = schema_paths(self._config.schema)
        return path in paths or not (paths - {"_id", "_mod"})

    def index_types(self, path: str) -> set[str]:
        """JSON types present in an index."""
        found = set()
        for kind in JSON_TYPES:
            lo, hi = type_range(kind)
            if self._engine.index_has(self._txn, self._name, path, lo, hi):
                found.add(kind)
        return found


def _bounds(op: QueryOp, value: Any) -> tuple[bytes, bytes]:
    """The ``[lo, hi)`` range of ``value ‖ id`` index bytes where ``op value`` holds."""
    encoded = encode_value(value)
    low, high = type_range(json_type(value))
    ranges = {
        QueryOp.EQ: (encoded, encoded + _AFTER),
        QueryOp.GT: (encoded + _AFTER, high),
        QueryOp.GE: (encoded, high),
        QueryOp.LT: (low, encoded),
        QueryOp.LE: (low, encoded + _AFTER),
    }
    return ranges[op]


class _OverlaySource:
    """A collection source with a write transaction's pending documents laid over it."""

    def __init__(self, base: CollectionInTxn, pending: dict[str, dict[str, Any] | None]) -> None:
        self._base = base
        self._pending = pending

    def scan(self) -> Iterator[dict[str, Any]]:
        merged = {d["_id"]: d for d in self._base.scan()}
        for instance_id, doc in self._pending.items():
            if doc is None:
                merged.pop(instance_id, None)
            else:
                merged[instance_id] = doc
        for instance_id in sorted(merged, key=encode_id):
            yield merged[instance_id]

    def get(self, instance_id: str) -> dict[str, Any] | None:
        if instance_id in self._pending:
            return self._pending[instance_id]
        return self._base.get(instance_id)

    def indexed_paths(self) -> Sequence[str]:
        return ()

    def index_ids(self, path: str, op: QueryOp, value: Any) -> Iterator[str]:
        return iter(())  # indexed_paths() is empty, so the planner never asks

    def index_types(self, path: str) -> set[str]:
        return set()


def normalise_docs(docs: tuple[Any, ...]) -> list[dict[str, Any]]:
    """Accept ``f(d1, d2)`` and ``f([d1, d2])``; every item must be a dict."""
    if len(docs) == 1 and isinstance(docs[0], list | tuple):
        docs = tuple(docs[0])
    out = []
    for doc in docs:
        if not isinstance(doc, dict):
            raise InvalidDocument(f"a document must be a dict, got {type(doc).__name__}")
        out.append(doc)
    return out


class ReadTxn:
    """A consistent snapshot of one collection; use as a context manager.

    Examples
    --------
    >>> with people.read_txn() as txn:  # doctest: +SKIP
    ...     txn.find(tk.where("age").gt(30))
    """

    def __init__(self, coll: Collection, reader: str | None = None) -> None:
        self.collection = coll
        self.reader = reader
        self._access = CollectionAccess(coll.db, coll.name)
        self._cm: Any = None
        self._txn: StoreTxn | None = None
        self.closed = False

    def __enter__(self) -> ReadTxn:
        self._cm = self.collection.db._repo.transaction()
        self._txn = self._cm.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed = True
        if self._cm is not None:
            self._cm.__exit__(None, None, None)
            self._cm = None

    def _source(self) -> CollectionInTxn:
        if self.closed or self._txn is None:
            raise TransactionClosed("this read transaction is not open")
        return CollectionInTxn(self.collection, self._txn)

    def find(self, query: Query | None = None) -> list[dict[str, Any]]:
        """Documents matching ``query`` (all when None), read filter applied."""
        return self._access.find(self._source(), query, self.reader)

    def find_by_id(self, instance_id: str) -> dict[str, Any]:
        """One document; InstanceNotFound when absent or hidden by the read filter."""
        return self._access.find_by_id(self._source(), check_id(instance_id), self.reader)

    def has(self, *instance_ids: str) -> bool:
        """True when every id exists (and is visible)."""
        source = self._source()
        return all(
            self._access.visible(source.get(check_id(i)), self.reader) is not None
            for i in instance_ids
        )

    def count(self, query: Query | None = None) -> int:
        """Number of matching documents."""
        return len(self.find(query))

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise ReadOnlyTransaction("this is a read transaction: open a write_txn() to write")

    create = save = delete = verify = _refuse


class WriteTxn:
    """Buffered writes to one collection, committed as one record; use as a context manager.

    Leaving the block normally commits; an exception discards everything.

    Examples
    --------
    >>> with people.write_txn() as txn:  # doctest: +SKIP
    ...     ids = txn.create({"name": "Bob"})
    ...     txn.save({"_id": ids[0], "name": "Bobby"})
    """

    def __init__(self, coll: Collection, author: WriteAs = None) -> None:
        self.collection = coll
        self.author: Writer = resolve_writer(author, coll.db.identity)
        self._access = CollectionAccess(coll.db, coll.name)
        self.reader = str(author_of(self.author))
        self._ops: list[WriteOp] = []
        self._pending: dict[str, dict[str, Any] | None] = {}
        self.closed = False
        self.record: Record | None = None

    def __enter__(self) -> WriteTxn:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None and not self.closed:
            self.commit()
        else:
            self.discard()

    def _check_open(self) -> None:
        if self.closed:
            raise TransactionClosed("this write transaction was already committed or discarded")

    def _read(self) -> Any:
        return self.collection.db._repo.transaction()

    def _get(self, instance_id: str) -> dict[str, Any] | None:
        if instance_id in self._pending:
            return self._pending[instance_id]
        return self._access.get_committed(instance_id)

    def create(self, *docs: Any) -> list[str]:
        """Queue new documents; returns their ids (generated when ``_id`` is absent or empty)."""
        self._check_open()
        access = self._access
        config = access.config
        validate = config.schema_validator.validate
        prepared_docs, generated = access.prepare_creates(normalise_docs(docs))
        # a fresh ULID cannot exist yet: only ids the caller gave need looking up
        given = [d["_id"] for d, fresh in zip(prepared_docs, generated, strict=True) if not fresh]
        existing = set(self._existing(given)) if given else set()
        ids = []
        name, reader, pending, queue = access.name, self.reader, self._pending, self._ops.append
        for prepared, is_fresh in zip(prepared_docs, generated, strict=True):
            instance_id = prepared["_id"]
            if instance_id in existing or pending.get(instance_id) is not None:
                raise InstanceExists(f"instance {instance_id!r} already exists in {name!r}")
            validate(prepared)
            access.check_index_keys(config, prepared)
            queue(WriteOp(Action.CREATE, name, instance_id, prepared, reader, is_fresh, config))
            pending[instance_id] = prepared
            ids.append(instance_id)
        return ids

    def _existing(self, instance_ids: list[str]) -> list[str]:
        """Which of the ids exist (pending writes first, then committed state)."""
        found = [i for i in instance_ids if self._pending.get(i) is not None]
        rest = [i for i in instance_ids if i not in self._pending]
        if rest:
            engine, name = self.collection.db.engine, self.collection.name
            with self._read() as txn:
                found.extend(i for i in rest if engine.get_doc(txn, name, i) is not None)
        return found

    def save(self, *docs: Any) -> None:
        """Queue saves (upserts) of whole documents, each with its ``_id``."""
        self._check_open()
        access = self._access
        for doc in normalise_docs(docs):
            prepared = access.prepare(doc, generate_id=False)
            access.config.schema_validator.validate(prepared)
            access.check_index_keys(access.config, prepared)
            instance_id = prepared["_id"]
            self._ops.append(WriteOp(Action.SAVE, access.name, instance_id, prepared, self.reader))
            self._pending[instance_id] = prepared

    def update(
        self, instance_id: str, changes: Mapping[str, Any] | None = None, /, **fields: Any
    ) -> None:
        """Queue a partial save: set some fields of one document, keep the others.

        The fields are merged into the document as it stands when the transaction
        commits, so a field another write changed in the meantime is kept; fields a
        read filter hides from the writer are kept too. The whole merged document is
        checked (schema, validator, unique indexes) as a save is.

        Raises
        ------
        InstanceNotFound
            No such document (or the read filter hides it from the writer).
        InvalidDocument
            A bad id, changes that are not a mapping, or an attempt to set ``_id`` or ``_mod``.
        SchemaViolation
            The merged document does not satisfy the schema; nothing is queued.
        """
        self._check_open()
        merged = update_fields(instance_id, changes, fields)
        access = self._access
        current = self._get(instance_id)
        if current is None or access.visible(current, self.reader) is None:
            raise InstanceNotFound(f"instance {instance_id!r} not found in {access.name!r}")
        if not merged:
            return
        prepared = access.prepare({**current, **merged}, generate_id=False)
        access.config.schema_validator.validate(prepared)
        access.check_index_keys(access.config, prepared)
        part = {key: prepared[key] for key in merged}
        self._ops.append(
            WriteOp(Action.SAVE, access.name, instance_id, part, self.reader, merge=True)
        )
        self._pending[instance_id] = prepared

    def delete(self, *instance_ids: str) -> None:
        """Queue deletes; deleting a missing id does nothing."""
        self._check_open()
        for instance_id in _flatten_ids(instance_ids):
            if self._get(instance_id) is None:
                continue
            self._ops.append(WriteOp(Action.DELETE, self.collection.name, instance_id, None))
            self._pending[instance_id] = None

    def verify(self, *docs: Any) -> None:
        """Check documents against the schema and the write validator without writing."""
        self._check_open()
        self.collection.verify(*docs)

    def find(self, query: Query | None = None) -> list[dict[str, Any]]:
        """Like :meth:`Collection.find`, seeing this transaction's pending writes."""
        self._check_open()
        with self._read() as txn:
            source = _OverlaySource(CollectionInTxn(self.collection, txn), self._pending)
            return self._access.find(source, query, self.reader)

    def find_by_id(self, instance_id: str) -> dict[str, Any]:
        """One document, seeing this transaction's pending writes."""
        self._check_open()
        doc = self._access.visible(self._get(check_id(instance_id)), self.reader)
        if doc is None:
            raise InstanceNotFound(
                f"instance {instance_id!r} not found in {self.collection.name!r}"
            )
        return doc

    def has(self, *instance_ids: str) -> bool:
        """True when every id exists, seeing pending writes."""
        self._check_open()
        return all(
            self._access.visible(self._get(check_id(i)), self.reader) is not None
            for i in instance_ids
        )

    def commit(self) -> Record | None:
        """Write everything as one record (or nothing, on any error)."""
        self._check_open()
        self.closed = True
        self.record = self.collection.db.commit(self._ops, self.author)
        return self.record

    def discard(self) -> None:
        """Drop every pending write."""
        self.closed = True
        self._ops.clear()
        self._pending.clear()


def _flatten_ids(ids: Iterable[Any]) -> list[str]:
    out: list[str] = []
    for item in ids:
        if isinstance(item, list | tuple):
            out.extend(_flatten_ids(item))
        elif isinstance(item, str) and item:
            out.append(check_id(item))
        else:
            raise InvalidDocument(f"an instance id must be a non-empty string, got {item!r:.80}")
    return out
