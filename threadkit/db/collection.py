"""A collection of JSON documents in a database: writes, reads, queries, transactions.

Every single call (``create``, ``save``, ``delete``) is its own write
transaction: one record. Reads apply the collection's read filter for the
reader: the peer's own identity, or a ``tk.Identity`` whose private key the process
holds (a bare public key of another identity is refused, :func:`.gate.reader_of`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from threadkit.core.clock import order_key
from threadkit.db import dockeys, purge
from threadkit.db.access import CollectionAccess, update_fields
from threadkit.db.config import CollectionConfig
from threadkit.db.events import Action, RecordEvent
from threadkit.db.gate import reader_of
from threadkit.db.judging import threaddb_event
from threadkit.db.patch import create_patch
from threadkit.db.reads import scan_raw, scan_raw_batches
from threadkit.db.txn import ReadTxn, WriteTxn, normalise_docs
from threadkit.errors import RepoClosed

if TYPE_CHECKING:
    from threadkit.db.database import Database
    from threadkit.db.gate import WriteAs
    from threadkit.db.query import Query

__all__ = ["Collection", "update_fields"]


class Collection:
    """A collection; get one with ``db.new_collection(...)``, ``db[name]`` or ``db.get_collection``.

    The store's class: ``tk.Collection`` is this class with the notebook views
    attached (``coll.df``, ``coll.query``, ``coll.at``…; ``threadkit.views``).

    Examples
    --------
    >>> ids = people.create({"name": "Alice", "age": 30})  # doctest: +SKIP
    >>> people.find(tk.where("age").gt(20))  # doctest: +SKIP
    [{'_id': '01j…', 'name': 'Alice', 'age': 30, '_mod': …}]
    """

    def __init__(self, db: Database, name: str) -> None:
        self.db = db
        self.name = name
        self._access = CollectionAccess(db, name)

    @property
    def config(self) -> CollectionConfig:
        """The collection's current config."""
        return self.db.engine.config(self.name)

    def db_reader(self, identity: object = None) -> str:
        """The reader identity string for ``identity=`` of a read (None: the peer's own);
        PermissionDenied for a bare public key of another identity."""
        return reader_of(identity, self.db.identity)

    def __repr__(self) -> str:
        return f"Collection({self.name!r}, db={self.db.name!r})"

    # ---------------------------------------------------------------- writes

    def write_txn(self, identity: WriteAs = None) -> WriteTxn:
        """A write transaction (commit on exit, discard on exception)."""
        _check_open(self.db)
        return WriteTxn(self, identity)

    def read_txn(self, identity: WriteAs = None) -> ReadTxn:
        """A read transaction over one consistent snapshot."""
        _check_open(self.db)
        return ReadTxn(self, self._reader(identity))

    def create(self, *docs: Any, identity: WriteAs = None) -> list[str]:
        """Create documents in one transaction; returns their ``_id`` s.

        A document without ``_id`` (or with an empty one) gets a lower-case ULID.
        Creating an ``_id`` that exists fails with InstanceExists.
        """
        with self.write_txn(identity) as txn:
            return txn.create(*docs)

    def save(self, *docs: Any, identity: WriteAs = None) -> None:
        """Save whole documents (upsert), each with its ``_id``, in one transaction."""
        with self.write_txn(identity) as txn:
            txn.save(*docs)

    def update(
        self,
        instance_id: str,
        changes: Mapping[str, Any] | None = None,
        /,
        *,
        identity: WriteAs = None,
        **fields: Any,
    ) -> None:
        """Change some fields of one document: a partial :meth:`save`.

        ``coll.update(id, weight=16.0)`` is ``save`` of the stored document with
        those fields replaced (or added): one transaction, one record, the same
        schema and validator checks, the same listen event (a save). Fields not
        named stay as they are, including any a read filter hides from the writer.
        Values replace whole: ``update(id, meta={"reads": 3})`` replaces ``meta``.

        Parameters
        ----------
        instance_id : str
            The document's ``_id``; it must exist.
        changes : Mapping, optional
            Fields to set, for names that are not Python identifiers (or ``identity``).
        identity : Identity, optional
            The writer: a ``tk.Identity`` whose private key this peer holds (its own by
            default); a bare public key of another identity raises PermissionDenied.
            Validators see it; the read filter decides visibility for it.
        **fields
            Fields to set (they win over ``changes``).

        Raises
        ------
        InstanceNotFound
            No such document (or the read filter hides it from the writer).
        InvalidDocument
            A bad id, changes that are not a mapping, or an attempt to set ``_id`` or ``_mod``.
        SchemaViolation, ScriptRejected, UniqueViolation
            As :meth:`save`; nothing is written.

        Examples
        --------
        >>> people.update(ids[0], age=31, city="Oslo")  # doctest: +SKIP
        """
        merged = update_fields(instance_id, changes, fields)
        with self.write_txn(identity) as txn:
            txn.update(instance_id, merged)

    def delete(self, *instance_ids: str, identity: WriteAs = None) -> None:
        """Delete documents by id in one transaction; a missing id is not an error."""
        with self.write_txn(identity) as txn:
            txn.delete(*instance_ids)

    def purge(self, instance_id: str, identity: WriteAs = None) -> None:
        """Erase a deleted document's contents for good here, and on peers (:mod:`.purge`)."""
        purge.purge(self, instance_id, identity)

    def verify(self, *docs: Any, identity: WriteAs = None) -> None:
        """Run the schema and write validator on documents as saves, without writing."""
        config = self.config
        writer = self._reader(identity)
        for doc in normalise_docs(docs):
            prepared = self._access.prepare(doc, generate_id=True)
            config.schema_validator.validate(prepared)
            if config.validator is not None:
                before = self._get_committed(prepared["_id"])
                stamp = self.db.hlc.last
                action = Action.SAVE if before is not None else Action.CREATE
                data = create_patch(before, prepared) if before is not None else prepared
                event = RecordEvent(stamp, action, self.name, prepared["_id"], data)
                key = order_key(stamp, b"")
                config.validator(
                    writer, threaddb_event(event, self.name, prepared["_id"], key), before
                )

    # ----------------------------------------------------------------- reads

    def find(self, query: Query | None = None, identity: WriteAs = None) -> list[dict[str, Any]]:
        """Documents matching ``query`` (every document when None), read filter applied."""
        with self.read_txn(identity) as txn:
            return txn.find(query)

    def find_by_id(self, instance_id: str, identity: WriteAs = None) -> dict[str, Any]:
        """One document; InstanceNotFound when absent or hidden by the read filter."""
        with self.read_txn(identity) as txn:
            return txn.find_by_id(instance_id)

    def has(self, *instance_ids: str, identity: WriteAs = None) -> bool:
        """True when every given id exists (and the read filter shows it)."""
        with self.read_txn(identity) as txn:
            return txn.has(*instance_ids)

    def count(self, query: Query | None = None) -> int:
        """Number of documents (matching ``query``, when given), read filter applied."""
        if query is None and self.config.filter is None:
            with self.db._repo.transaction() as txn:
                return self.db.engine.count_docs(txn, self.name)
        return len(self.find(query))

    def __len__(self) -> int:
        return self.count()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """``for doc in coll``: every document (as ``find()`` gives them, read filter applied).

        The documents are read in one snapshot before the first is returned, so
        writing to the collection inside the loop is safe. For rows as pandas
        gives them, iterate ``coll.df`` (``coll.df.itertuples()``).
        """
        return iter(self.find())

    def __contains__(self, instance_id: object) -> bool:
        """``"some-id" in coll``: True when a document has that ``_id`` (and is visible)."""
        return isinstance(instance_id, str) and bool(instance_id) and self.has(instance_id)

    # ------------------------------------------------------------ raw reads

    def raw_documents(self) -> list[bytes]:
        """Every stored document, CBOR-encoded, in ``_id`` order (one snapshot; no read
        filter: for readers that decode whole batches at once, such as the frame builder)."""
        with self.db.read_txn() as txn:
            return scan_raw(self.db.engine, txn, self.name)

    @contextmanager
    def raw_batches(self, size: int) -> Iterator[Callable[[], Iterator[list[bytes]]]]:
        """One snapshot of the stored documents, readable ``size`` at a time, as often as needed.

        Yields a function; each call of it iterates the snapshot's documents, CBOR-encoded,
        in ``_id`` order, ``size`` per list (no read filter). The snapshot is held until
        the ``with`` block ends, so several passes read the same documents.
        """
        with self.db.read_txn() as txn:
            engine = self.db.engine
            yield lambda: scan_raw_batches(engine, txn, self.name, size)

    def raw_documents_by_id(self, instance_ids: Sequence[str]) -> list[bytes | None]:
        """The stored documents with these ids, CBOR-encoded (None where absent; one
        snapshot; no read filter)."""
        engine = self.db.engine
        prefix = dockeys.coll_key(engine.prefix, self.name)
        with self.db.read_txn() as txn:
            return [
                txn.get(dockeys.doc_key(prefix, i), db=engine.tables.docs) for i in instance_ids
            ]

    def stored_documents(self, instance_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """The stored documents with these ids (None where absent; one snapshot; no read
        filter: apply :meth:`visible` for a reader)."""
        engine = self.db.engine
        with self.db.read_txn() as txn:
            return [engine.get_doc(txn, self.name, i) for i in instance_ids]

    def visible_documents(self, reader: str | None) -> Iterator[dict[str, Any]]:
        """The documents ``reader`` sees, one at a time, in ``_id`` order (one snapshot,
        held while the iterator is open: close it when stopping early)."""
        with self.db.read_txn() as txn:
            for doc in self.db.engine.scan_docs(txn, self.name):
                shown = self._visible(doc, reader)
                if shown is not None:
                    yield shown

    def visible(self, doc: dict[str, Any] | None, reader: str | None) -> dict[str, Any] | None:
        """``doc`` as ``reader`` sees it through the read filter (None: hidden or absent)."""
        return self._visible(doc, reader)

    # ------------------------------------------------------------- internals

    def _reader(self, identity: object) -> str:
        return reader_of(identity, self.db.identity)

    def _visible(self, doc: dict[str, Any] | None, reader: str | None) -> dict[str, Any] | None:
        """``doc`` as the read filter shows it to ``reader`` (None: hidden or absent)."""
        return self._access.visible(doc, reader)

    def _get_committed(self, instance_id: str) -> dict[str, Any] | None:
        """The committed document (no read filter), or None."""
        return self._access.get_committed(instance_id)


def _check_open(db: Database) -> None:
    """RepoClosed for a database its peer closed (``peer.close``, or ``peer.reclaim``)."""
    if db.closed:
        raise RepoClosed(
            f"database {db.name!r} was closed with its peer's repo (peer.close or "
            "peer.reclaim): get it again with peer.get_db"
        )
