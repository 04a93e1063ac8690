"""The document state of one database: its configs, its reads, and the entry points of writes.

The engine is the single place where documents, indexes, conflicts and the
per-instance event index change. Local writes and records received from other
peers go through the same code, which is split by job:

- :mod:`.applying`: applying one record's events (:class:`.RecordContext`);
- :mod:`.judging`: the rules an event is judged by, and what a refusal does: a local
  write raises and the whole transaction is abandoned (:meth:`Engine.apply_local`), a
  received event is recorded and skipped, the same way on every peer
  (:meth:`Engine.apply_received`);
- :mod:`.refold`: re-folding instances and settling contested unique values;
- :mod:`.claims`: unique claims and the bookkeeping of lost writes;
- :mod:`.indexing`: documents and index entries.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import cbor2

from threadkit.core.clock import Timestamp
from threadkit.db import dockeys
from threadkit.db.applying import Applier, RecordContext
from threadkit.db.bulkreceive import apply_received_creates
from threadkit.db.change import Change
from threadkit.db.claims import Claims
from threadkit.db.colls import CollHistory
from threadkit.db.config import CollectionConfig
from threadkit.db.doctables import DocTables, delete_prefix, load_doc, open_db_tables
from threadkit.db.events import Action, Folded, RecordEvent
from threadkit.db.indexing import Indexes, duplicates
from threadkit.db.indexkeys import decode_id
from threadkit.db.judging import LOCAL, RECEIVED, Judge
from threadkit.db.reducer import StoredEvent
from threadkit.db.refold import Refolds
from threadkit.db.scriptcalls import ScriptCalls
from threadkit.errors import CollectionNotFound, StoreError, UnreadableDocument
from threadkit.store.txntypes import StoreTxn, StoreWriteTxn

if TYPE_CHECKING:
    from threadkit.store.repo import Repo

__all__ = ["Change", "DocTables", "Engine", "open_db_tables"]

log = logging.getLogger("threadkit.db")


class Engine:
    """The document state of one database.

    Parameters
    ----------
    tables : DocTables
        The document store's tables.
    prefix : bytes
        The database's key prefix.
    """

    def __init__(self, tables: DocTables, prefix: bytes) -> None:
        self.tables = tables
        self.prefix = prefix
        self.colls: dict[str, CollHistory] = {}
        """The committed config histories. Replaced whole once a transaction that changed
        them commits (:meth:`write`), never changed in place: readers see committed state."""
        self._staged: tuple[StoreWriteTxn, dict[str, CollHistory]] | None = None
        self.scripts: ScriptCalls | None = None
        """Set by the database while it applies a write in rounds (see :mod:`.scriptcalls`):
        script calls then go through it. None runs them in place."""
        self.claims = Claims(tables, prefix)
        self.indexes = Indexes(tables, self.claims)
        self.judge = Judge(self)
        self.refolds = Refolds(self)
        self.applier = Applier(self)

    # ---------------------------------------------------------------- loading

    def load(self, txn: StoreTxn) -> None:
        """Read the collections' config histories."""
        colls: dict[str, CollHistory] = {}
        cursor = txn.cursor(self.tables.colls)
        if cursor.set_range(self.prefix):
            for key, value in cursor:
                if not key.startswith(self.prefix):
                    break
                name = bytes(key[len(self.prefix) : -1]).decode()
                colls[name] = CollHistory.decode(name, bytes(value))
        self.colls = colls

    @contextlib.contextmanager
    def write(self, repo: Repo) -> Iterator[StoreWriteTxn]:
        """A write transaction of ``repo`` in which the ``apply_*`` methods may take
        collection events.

        The config histories its collection events change are seen through this
        transaction only, and become :attr:`colls` once it has committed. When the block
        raises or the commit fails (a full disk), they are dropped with the transaction,
        so memory never holds a collection, index or config that is not on disk. Writes
        are not nested; the caller serializes them (the database's write lock).

        Yields
        ------
        StoreWriteTxn
        """
        staged: dict[str, CollHistory] = {}
        with repo.transaction(write=True) as txn:
            self._staged = (txn, staged)
            try:
                yield txn
            finally:
                self._staged = None
        if staged:
            self.colls = {**self.colls, **staged}

    def reset(self, txn: StoreWriteTxn) -> None:
        """Drop every document, event, index entry and config of the database (inside
        :meth:`write`), to apply its records again (:mod:`.gate`)."""
        staged = self.staged_for(txn)
        if staged is None:
            raise StoreError("Engine.reset outside Engine.write (a bug)")
        t = self.tables
        for table in (t.colls, t.docs, t.inst, t.events, t.index, t.lost, t.losers, t.order):
            delete_prefix(txn, table, self.prefix)
        for name in {*self.colls, *staged}:
            staged[name] = CollHistory(name)

    def staged_for(self, txn: StoreTxn) -> dict[str, CollHistory] | None:
        """The config histories ``txn`` changed so far; None outside :meth:`write`."""
        staged = self._staged
        return staged[1] if staged is not None and staged[0] is txn else None

    def run_filter(
        self, config: CollectionConfig, reader: str | None, doc: dict[str, Any]
    ) -> dict[str, Any] | None:
        """``doc`` as the collection's read filter shows it to ``reader`` (it must have one)."""
        read_filter = config.filter
        assert read_filter is not None
        if self.scripts is None:
            return read_filter(reader, doc)
        return self.scripts.filter(read_filter, reader, doc)

    def config(self, name: str) -> CollectionConfig:
        """The current config of a collection; CollectionNotFound when absent."""
        history = self.colls.get(name)
        config = history.current if history else None
        if config is None:
            raise CollectionNotFound(f"collection {name!r} does not exist")
        return config

    def config_in(self, txn: StoreTxn, name: str) -> CollectionConfig:
        """A collection's config as ``txn``'s snapshot holds it.

        A read transaction opened before a config change committed must plan its queries
        with the config its documents and index entries were written under (an index
        added since has no entries in it). Falls back to :meth:`config` when the snapshot
        has no live collection of that name. CollectionNotFound when neither has one.
        """
        raw = txn.get(dockeys.coll_key(self.prefix, name), db=self.tables.colls)
        history = self.history(txn, name)
        if raw is not None and (history is None or history.stored != raw):
            history = CollHistory.decode(name, bytes(raw))  # older or newer than memory
        config = history.current if raw is not None and history is not None else None
        return config if config is not None else self.config(name)

    def collection_names(self) -> list[str]:
        """Names of the live collections, sorted."""
        return sorted(n for n, h in self.colls.items() if h.current is not None)

    def history(self, txn: StoreTxn, name: str) -> CollHistory | None:
        """A collection's config history as ``txn`` sees it (with its own config events)."""
        staged = self.staged_for(txn)
        if staged is not None:
            history = staged.get(name)
            if history is not None:
                return history
        return self.colls.get(name)

    def coll_key(self, name: str) -> bytes:
        """``prefix ‖ name ‖ 00``: the key prefix of a collection's entries."""
        return dockeys.coll_key(self.prefix, name)

    # ----------------------------------------------------------------- reading

    def get_doc(self, txn: StoreTxn, collection: str, instance_id: str) -> dict[str, Any] | None:
        """The stored document, or None."""
        key = dockeys.doc_key(self.coll_key(collection), instance_id)
        data = txn.get(key, db=self.tables.docs)
        return None if data is None else load_doc(data)

    def scan_docs(self, txn: StoreTxn, collection: str) -> Iterator[dict[str, Any]]:
        """Every live document of a collection, in ``_id`` order."""
        prefix = self.coll_key(collection)
        cursor = txn.cursor(self.tables.docs)
        if not cursor.set_range(prefix):
            return
        for key, value in cursor:
            if not key.startswith(prefix):
                return
            try:
                yield load_doc(value)
            except UnreadableDocument as exc:
                log.warning("%s; left out of the scan of %r", exc, collection)

    def count_docs(self, txn: StoreTxn, collection: str) -> int:
        """Number of live documents."""
        prefix = self.coll_key(collection)
        cursor = txn.cursor(self.tables.docs)
        count = 0
        if cursor.set_range(prefix):
            for key in cursor.iternext(keys=True, values=False):
                if not key.startswith(prefix):
                    break
                count += 1
        return count

    def index_ids(
        self, txn: StoreTxn, collection: str, path: str, lo: bytes, hi: bytes
    ) -> Iterator[str]:
        """Ids of index entries whose ``value ‖ id`` bytes lie in ``[lo, hi)``."""
        return self.indexes.ids(txn, self.coll_key(collection), path, lo, hi)

    def index_has(self, txn: StoreTxn, collection: str, path: str, lo: bytes, hi: bytes) -> bool:
        """True when some index entry lies in ``[lo, hi)``."""
        return next(self.index_ids(txn, collection, path, lo, hi), None) is not None

    def unique_duplicates(self, txn: StoreTxn, name: str, path: str) -> list[Any]:
        """Values that more than one live document holds at ``path``."""
        return duplicates(self.scan_docs(txn, name), path)

    def last_key(self, txn: StoreTxn, collection: str, instance_id: str) -> bytes | None:
        """Key of the latest event of an instance."""
        key = dockeys.doc_key(self.coll_key(collection), instance_id)
        value = txn.get(key, db=self.tables.inst)
        return None if value is None else bytes(value)

    def events_of(self, txn: StoreTxn, collection: str, instance_id: str) -> list[StoredEvent]:
        """All events of an instance, in order."""
        prefix = dockeys.event_prefix(self.coll_key(collection), instance_id)
        history = self.history(txn, collection)
        cursor = txn.cursor(self.tables.events)
        events: list[StoredEvent] = []
        if not cursor.set_range(prefix):
            return events
        for key, value in cursor:
            if not key.startswith(prefix):
                break
            okey = bytes(key[len(prefix) :])
            action, data, base, author, record, *more = cbor2.loads(value)
            epoch = history.at(okey)[1] if history else None
            # newer entries hold them (:mod:`.applying`, :mod:`.compaction`)
            seen, purged, folded = (*more, None, None, None)[:3]
            if folded is not None:
                folded = Folded.from_node(folded)
            events.append(
                StoredEvent(
                    okey,
                    Action.from_code(action),
                    data,
                    base,
                    author,
                    record,
                    epoch or b"",
                    seen,
                    purged,
                    folded,
                )
            )
        return events

    def instance_heads(self, txn: StoreTxn, name: str) -> Iterator[tuple[str, bytes]]:
        """``(instance id, key of its latest event)`` for every instance with events."""
        prefix = self.coll_key(name)
        cursor = txn.cursor(self.tables.events)
        if not cursor.set_range(prefix):
            return
        current: str | None = None
        last = b""
        for key in cursor.iternext(keys=True, values=False):
            if not key.startswith(prefix):
                break
            instance_id, end = decode_id(bytes(key), len(prefix))
            if instance_id != current:
                if current is not None:
                    yield current, last
                current = instance_id
            last = bytes(key[end:])
        if current is not None:
            yield current, last

    def lost_writes(self, txn: StoreTxn, collection: str | None = None) -> list[dict[str, Any]]:
        """Every recorded lost write (see ``Database.lost_writes``), in key order."""
        prefix = self.coll_key(collection) if collection else self.prefix
        return self.claims.lost_writes(txn, prefix)

    # ----------------------------------------------------------------- writing

    def apply_local(
        self,
        txn: StoreWriteTxn,
        events: list[RecordEvent],
        log_id: bytes,
        author: str,
        record: bytes,
        *,
        fresh: frozenset[str] = frozenset(),
    ) -> list[Change]:
        """Apply a local record's events; returns the changes, in order.

        A refused event raises its error; the caller then abandons the transaction, so
        nothing is written.

        ``fresh`` names instances a local transaction creates under ids it just generated
        and whose documents it already checked against the schema: they cannot exist yet,
        so their creates skip the lookups and the second schema check (the bulk-insert path).
        """
        ctx = RecordContext(txn, log_id, author, record, LOCAL, fresh)
        return self.applier.apply(ctx, events)

    def apply_received(
        self,
        txn: StoreWriteTxn,
        events: list[RecordEvent],
        log_id: bytes,
        author: str,
        record: bytes,
    ) -> list[Change]:
        """Apply a received record's events; returns the changes, in order.

        A refused event is recorded as a lost write and skipped, the same way on every peer.
        """
        ctx = RecordContext(txn, log_id, author, record, RECEIVED)
        bulk = apply_received_creates(self.applier, ctx, events)
        return self.applier.apply(ctx, events) if bulk is None else bulk

    def apply_creates(
        self,
        txn: StoreWriteTxn,
        collection: str,
        creates: Sequence[tuple[Timestamp, str, dict[str, Any]]],
        encoded: Sequence[bytes],
        log_id: bytes,
        author: str,
        record: bytes,
    ) -> list[Change]:
        """Apply a local record of creates of new instances in one batch (the bulk path).

        ``creates`` holds ``(stamp, id, document)`` for each create event (no base: the
        instances were never seen, :func:`threadkit.db.bulkcheck.new_instances`),
        ``encoded`` each document's CBOR, ``_id`` first as the store keeps it; the
        documents were checked against the collection's current schema. The stored state
        and the changes are those of :meth:`apply_local` of the same events (the ids
        ``fresh``), which is what runs when the batch does not fit: a write validator to
        judge, a unique value taken twice or already held, or a config event at or after
        the first stamp.
        """
        ctx = RecordContext(txn, log_id, author, record, LOCAL)
        return self.applier.apply_creates(ctx, collection, creates, encoded)
