"""Applying events to a database's documents, inside one LMDB write transaction.

The engine is the single place where documents, indexes, conflicts and the
per-instance event index change. Local writes and records received from other
peers go through the same code: local writes with ``strict=True`` (a rejected
event raises and the whole transaction is abandoned), received events with
``strict=False`` (a rejected event is recorded and skipped, the same way on
every peer).

Fast path: an event newer than everything its instance has seen, whose writer
had seen the instance's latest event, is applied on top of the stored
document. Anything else (late, concurrent, or touching a unique value another
instance holds) re-folds only the instances involved (:mod:`.reducer`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import cbor2

from threadkit.core.clock import Timestamp, order_key
from threadkit.db import indexkeys, layout
from threadkit.db.colls import CollHistory
from threadkit.db.config import CollectionConfig
from threadkit.db.events import Action, Event, array_header
from threadkit.db.indexkeys import decode_id, decode_value, encode_value
from threadkit.db.layout import encode_id
from threadkit.db.reducer import Conflict, FoldResult, Rejection, StoredEvent, fold, step
from threadkit.db.scriptcalls import ScriptCalls
from threadkit.errors import (
    CollectionNotFound,
    ScriptError,
    StoreError,
    UniqueViolation,
    UnreadableDocument,
    WriteRejected,
)
from threadkit.store.txntypes import StoreTxn

if TYPE_CHECKING:
    from threadkit.store.repo import Repo

__all__ = ["Change", "Engine", "Tables", "open_db_tables"]

log = logging.getLogger("threadkit.db")

_MAX_REFOLD_ROUNDS = 10_000
_ORDER_KEY_SIZE = 12 + 38  # stamp ‖ Ed25519 peer id bytes
_MAX_PATH_PART = 64  # longest field path written as itself in a lost-write key
_ID_INDEX = "_id"
_CREATE_EVENT_HEAD = array_header(5) + cbor2.dumps(Action.CREATE.code)
"""How the event index value of a create starts: an array of five, the action code."""


class Change(NamedTuple):
    """A change to an instance, as listeners see it."""

    collection: str
    instance_id: str
    action: Action
    document: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Tables:
    """Handles of the document store's sub-databases (see :mod:`.layout`)."""

    dbs: Any
    colls: Any
    docs: Any
    inst: Any
    events: Any
    index: Any
    lost: Any
    losers: Any
    applied: Any
    order: Any


def open_db_tables(repo: Any) -> Tables:
    """Open (creating when missing) the document store's tables in a repo."""
    return Tables(*(repo.open_table(name.decode()) for name in layout.TABLES))


def get_path(doc: dict[str, Any] | None, path: str) -> Any:
    """The value at a dot path, or ``_MISSING``."""
    if "." not in path:  # a top-level field, the common case
        return doc.get(path, _MISSING) if isinstance(doc, dict) else _MISSING
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


def threaddb_event(
    event: Event | StoredEvent, collection: str, instance_id: str, key: bytes
) -> dict[str, Any]:
    """The event as ThreadDB's validators see it."""
    action = event.action
    kind = {Action.CREATE: "create", Action.SAVE: "save", Action.DELETE: "delete"}[action]
    stamp = int.from_bytes(key[:8], "big")
    return {
        "timestamp": stamp,
        "_id": key.hex(),
        "collection_name": collection,
        "patch": {"type": kind, "instance_id": instance_id, "json_patch": event.data},
    }


class Engine:
    """The document state of one database.

    Parameters
    ----------
    tables : Tables
        The document store's tables.
    prefix : bytes
        The database's key prefix.
    """

    def __init__(self, tables: Tables, prefix: bytes) -> None:
        self.tables = tables
        self.prefix = prefix
        self.colls: dict[str, CollHistory] = {}
        """The committed config histories. Replaced whole once a transaction that changed
        them commits (:meth:`write`), never changed in place: readers see committed state."""
        self._staged: tuple[Any, dict[str, CollHistory]] | None = None
        self.scripts: ScriptCalls | None = None
        """Set by the database while it applies a write in rounds (see :mod:`.scriptcalls`):
        script calls then go through it. None runs them in place."""

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
    def write(self, repo: Repo) -> Iterator[StoreTxn]:
        """A write transaction of ``repo`` in which :meth:`apply` may take collection events.

        The config histories its collection events change are seen through this
        transaction only, and become :attr:`colls` once it has committed. When the block
        raises or the commit fails (a full disk), they are dropped with the transaction,
        so memory never holds a collection, index or config that is not on disk. Writes
        are not nested; the caller serializes them (the database's write lock).

        Yields
        ------
        lmdb.Transaction
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
        raw = txn.get(layout.coll_key(self.prefix, name), db=self.tables.colls)
        history = self._history(txn, name)
        if raw is not None and (history is None or history.stored != raw):
            history = CollHistory.decode(name, bytes(raw))  # older or newer than memory
        config = history.current if raw is not None and history is not None else None
        return config if config is not None else self.config(name)

    def collection_names(self) -> list[str]:
        """Names of the live collections, sorted."""
        return sorted(n for n, h in self.colls.items() if h.current is not None)

    def _history(self, txn: StoreTxn, name: str) -> CollHistory | None:
        """A collection's config history as ``txn`` sees it (with its own config events)."""
        staged = self._staged
        if staged is not None and staged[0] is txn:
            history = staged[1].get(name)
            if history is not None:
                return history
        return self.colls.get(name)

    # ----------------------------------------------------------------- reading

    def get_doc(self, txn: StoreTxn, collection: str, instance_id: str) -> dict[str, Any] | None:
        """The stored document, or None."""
        data = txn.get(layout.doc_key(self._coll(collection), instance_id), db=self.tables.docs)
        return None if data is None else _loads(data)

    def scan_docs(self, txn: StoreTxn, collection: str) -> Iterator[dict[str, Any]]:
        """Every live document of a collection, in ``_id`` order."""
        prefix = self._coll(collection)
        cursor = txn.cursor(self.tables.docs)
        if not cursor.set_range(prefix):
            return
        for key, value in cursor:
            if not key.startswith(prefix):
                return
            try:
                yield _loads(value)
            except UnreadableDocument as exc:
                log.warning("%s; left out of the scan of %r", exc, collection)

    def count_docs(self, txn: StoreTxn, collection: str) -> int:
        """Number of live documents."""
        prefix = self._coll(collection)
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
        base = layout.index_prefix(self._coll(collection), path)
        cursor = txn.cursor(self.tables.index)
        if not cursor.set_range(base + lo):
            return
        end = base + hi
        for key in cursor.iternext(keys=True, values=False):
            if key >= end or not key.startswith(base):
                return
            rest = bytes(key[len(base) :])
            yield decode_id(rest, decode_value(rest)[1])[0]

    def index_has(self, txn: StoreTxn, collection: str, path: str, lo: bytes, hi: bytes) -> bool:
        """True when some index entry lies in ``[lo, hi)``."""
        return next(self.index_ids(txn, collection, path, lo, hi), None) is not None

    def last_key(self, txn: StoreTxn, collection: str, instance_id: str) -> bytes | None:
        """Key of the latest event of an instance."""
        value = txn.get(layout.doc_key(self._coll(collection), instance_id), db=self.tables.inst)
        return None if value is None else bytes(value)

    def events_of(self, txn: StoreTxn, collection: str, instance_id: str) -> list[StoredEvent]:
        """All events of an instance, in order."""
        prefix = layout.event_prefix(self._coll(collection), instance_id)
        history = self._history(txn, collection)
        cursor = txn.cursor(self.tables.events)
        events: list[StoredEvent] = []
        if not cursor.set_range(prefix):
            return events
        for key, value in cursor:
            if not key.startswith(prefix):
                break
            okey = bytes(key[len(prefix) :])
            action, data, base, author, record = cbor2.loads(value)
            epoch = history.at(okey)[1] if history else None
            events.append(
                StoredEvent(
                    okey, Action.from_code(action), data, base, author, record, epoch or b""
                )
            )
        return events

    def lost_writes(self, txn: StoreTxn, collection: str | None = None) -> list[dict[str, Any]]:
        """Every recorded lost write (see ``Database.lost_writes``), in key order."""
        prefix = self._coll(collection) if collection else self.prefix
        cursor = txn.cursor(self.tables.lost)
        out: list[dict[str, Any]] = []
        if not cursor.set_range(prefix):
            return out
        for key, value in cursor:
            if not key.startswith(prefix):
                break
            key = bytes(key)
            name_end = key.index(b"\x00", len(self.prefix))
            name = key[len(self.prefix) : name_end].decode()
            instance_id, end = decode_id(key, name_end + 1)
            entry = cbor2.loads(value)
            loser = key[end : end + _ORDER_KEY_SIZE]
            out.append(
                {
                    "collection": name,
                    "instance_id": instance_id,
                    "kind": entry["kind"],
                    "loser": loser,
                    "winner": entry.get("winner"),
                    "path": entry.get("path"),
                    "reason": entry.get("reason"),
                }
            )
        return out

    # ----------------------------------------------------------------- writing

    def apply(
        self,
        txn: StoreTxn,
        events: list[Event],
        log_id: bytes,
        author: str,
        record: bytes,
        *,
        strict: bool,
        fresh: frozenset[str] = frozenset(),
    ) -> list[Change]:
        """Apply one record's events; returns the changes, in order.

        ``fresh`` names instances a local transaction creates under ids it just generated
        and whose documents it already checked against the schema: they cannot exist yet,
        so their creates skip the lookups and the second schema check (the bulk-insert path).

        With ``strict`` (local writes), a rejected event raises its error; the
        caller then abandons the transaction, so nothing is written.
        """
        changes: list[Change] = []
        refold: dict[tuple[str, str], None] = {}
        for event in events:
            key = order_key(event.stamp, log_id)
            if event.action.is_collection:
                self._apply_collection_event(txn, event, key, changes, refold)
                continue
            self._store_event(txn, event, key, author, record)
            if (event.collection, event.instance_id) in refold:
                continue
            if not self._fast_apply(
                txn, event, key, author, record, strict, changes, event.instance_id in fresh
            ):
                refold[(event.collection, event.instance_id)] = None
        self._refold_all(txn, list(refold), changes)
        return changes

    def apply_creates(
        self,
        txn: StoreTxn,
        collection: str,
        creates: Sequence[tuple[Timestamp, str, dict[str, Any]]],
        encoded: Sequence[bytes],
        log_id: bytes,
        author: str,
        record: bytes,
    ) -> list[Change]:
        """Apply a local record of creates of new instances in one batch (the bulk path).

        ``creates`` holds ``(stamp, id, document)`` for each create event (no base: the
        ids were just generated, so the instances cannot exist), ``encoded`` each
        document's CBOR, ``_id`` first as the store keeps it; the documents were checked
        against the collection's current schema. The stored state and the changes are
        those of :meth:`apply` of the same events (``strict``, the ids ``fresh``), which
        is what runs when the batch does not fit: a write validator or a unique index to
        judge, or a config event at or after the first stamp.
        """
        keys = [order_key(stamp, log_id) for stamp, _, _ in creates]
        history = self._history(txn, collection)
        config = history.current if history else None
        if (
            history is None
            or config is None
            or config.validator is not None
            or config.unique_paths
            or not creates
            or history.keys[-1] >= keys[0]
        ):
            events = [Event(stamp, Action.CREATE, collection, i, doc) for stamp, i, doc in creates]
            fresh = frozenset(i for _, i, _ in creates)
            return self.apply(txn, events, log_id, author, record, strict=True, fresh=fresh)
        return self._put_creates(txn, collection, config, creates, encoded, keys, author, record)

    def _put_creates(
        self,
        txn: StoreTxn,
        collection: str,
        config: CollectionConfig,
        creates: Sequence[tuple[Timestamp, str, dict[str, Any]]],
        encoded: Sequence[bytes],
        keys: list[bytes],
        author: str,
        record: bytes,
    ) -> list[Change]:
        """Write the entries of new instances, table by table (see :meth:`apply_creates`).

        The entries are generated as LMDB takes them, so they never pile up as garbage.
        """
        coll = self._coll(collection)
        ids = [instance_id for _, instance_id, _ in creates]
        docs = [doc for _, _, doc in creates]
        id_parts = [indexkeys.encode_id(i) for i in ids]  # not the cached encode_id: ids are new
        doc_keys = [coll + part for part in id_parts]
        # an event index value is CBOR [action, data, base, author, record]: splice the data in
        tail = cbor2.dumps([None, author, record])[1:]  # base, author, record without the head
        head, prefix, tables = _CREATE_EVENT_HEAD, self.prefix, self.tables
        puts: list[tuple[Any, Iterable[tuple[bytes, bytes]]]] = [
            (
                tables.events,
                (
                    (d + k, head + raw + tail)
                    for d, k, raw in zip(doc_keys, keys, encoded, strict=True)
                ),
            ),
            (tables.order, ((prefix + k, d) for k, d in zip(keys, doc_keys, strict=True))),
            (tables.docs, zip(doc_keys, encoded, strict=True)),
            (tables.inst, zip(doc_keys, keys, strict=True)),
        ]
        indexes = [(path, layout.index_prefix(coll, path)) for path in config.index_paths]
        if indexes:
            puts.append((tables.index, _index_entries(indexes, docs, id_parts)))
        for table, items in puts:
            txn.cursor(table).putmulti(items)
        return [Change(collection, i, Action.CREATE, d) for i, d in zip(ids, docs, strict=True)]

    def _store_event(
        self, txn: StoreTxn, event: Event, key: bytes, author: str, record: bytes
    ) -> None:
        coll = self._coll(event.collection)
        value = cbor2.dumps([event.action.code, event.data, event.base, author, record])
        txn.put(layout.event_prefix(coll, event.instance_id) + key, value, db=self.tables.events)
        txn.put(self.prefix + key, coll + encode_id(event.instance_id), db=self.tables.order)

    def _fast_apply(
        self,
        txn: StoreTxn,
        event: Event,
        key: bytes,
        author: str,
        record: bytes,
        strict: bool,
        changes: list[Change],
        fresh: bool = False,
    ) -> bool:
        """Apply on top of the stored state when that is exact; False means re-fold."""
        coll = self._coll(event.collection)
        doc_key = layout.doc_key(coll, event.instance_id)
        fresh = fresh and strict and event.action is Action.CREATE
        last = None if fresh else txn.get(doc_key, db=self.tables.inst)
        if last is not None:
            last = bytes(last)
            if key <= last or event.base is None or event.base < last:
                if strict:
                    raise WriteRejected("a local write raced a concurrent change; retry it")
                return False
            if self._has_losses(txn, coll, event.instance_id):
                # earlier verdicts (a unique value lost) may change with this event: a local
                # write is still judged strictly first, then the instance is re-folded
                if strict:
                    self._strict_check(txn, event, key, author, record)
                return False
        history = self._history(txn, event.collection)
        config, epoch = history.at(key) if history else (None, None)
        stored = StoredEvent(
            key, event.action, event.data, event.base, author, record, epoch or b""
        )
        raw = None if fresh else txn.get(doc_key, db=self.tables.docs)
        before = None if raw is None else _loads(raw)
        if event.action is Action.DELETE and before is None:
            txn.put(doc_key, key, db=self.tables.inst)
            return True
        after = step(event.instance_id, before, stored)
        steals: list[tuple[str, str]] = []
        try:
            self._judge(
                txn,
                stored,
                event.collection,
                event.instance_id,
                config,
                before,
                after,
                steals,
                checked=fresh,
            )
        except UniqueViolation:
            if strict:
                raise
            # unique values are judged on final states: a re-fold decides
            return False
        except (WriteRejected, ScriptError, CollectionNotFound) as exc:
            if strict:
                raise
            self._record_rejection(txn, coll, event.instance_id, Rejection(key, str(exc)))
            txn.put(doc_key, key, db=self.tables.inst)
            return True
        current = history.current if history else None
        claims = {
            p: key
            for p in (current.unique_paths if current else ())
            if not _same(get_path(before, p), get_path(after, p))
        }
        woken = self._write_state(txn, event.collection, event.instance_id, before, after, claims)
        txn.put(doc_key, key, db=self.tables.inst)
        changes.append(_change(event.collection, event.instance_id, before, after))
        if steals or woken:
            self._refold_all(txn, [*steals, *woken], changes)
        return True

    def _strict_check(
        self, txn: StoreTxn, event: Event, key: bytes, author: str, record: bytes
    ) -> None:
        """Judge a local event on top of the stored state; raise when it is refused."""
        history = self._history(txn, event.collection)
        config, epoch = history.at(key) if history else (None, None)
        stored = StoredEvent(
            key, event.action, event.data, event.base, author, record, epoch or b""
        )
        before = self.get_doc(txn, event.collection, event.instance_id)
        if event.action is Action.DELETE and before is None:
            return
        after = step(event.instance_id, before, stored)
        self._judge(txn, stored, event.collection, event.instance_id, config, before, after, [])

    def _judge(
        self,
        txn: StoreTxn,
        event: StoredEvent,
        collection: str,
        instance_id: str,
        config: CollectionConfig | None,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        steals: list[tuple[str, str]],
        *,
        unique: bool = True,
        checked: bool = False,
    ) -> None:
        """Raise the reason an event is refused where it stands; note unique values it takes.

        ``checked`` skips the schema for a document the caller already validated.

        With ``unique=False`` (re-folds) unique indexes are left to :meth:`_resolve_unique`,
        which judges them on the instance's final state: whether a value was taken while
        an instance held it in between would depend on which records arrived first.
        """
        if config is None:
            raise CollectionNotFound(f"collection {collection!r} does not exist at this point")
        if after is not None and not checked:
            # _mod is the store's, not the user's: schemas (additionalProperties: false) omit it
            config.schema_validator.validate(
                {k: v for k, v in after.items() if k != "_mod"} if "_mod" in after else after
            )
        validator = config.validator
        if validator is not None:
            view = threaddb_event(event, collection, instance_id, event.key)
            if self.scripts is None:
                validator(event.author, view, before)
            else:
                self.scripts.validate(validator, event.author, view, before)
        if after is None or not unique:
            return
        # unique indexes hold for the current state, so the current config's decide: an
        # index added later in the order still separates values written before it
        history = self._history(txn, collection)
        current = history.current if history else None
        for path in current.unique_paths if current else ():
            value = get_path(after, path)
            if _indexable(value) and not _same(get_path(before, path), value):
                self._claim(txn, collection, instance_id, path, value, event.key, steals)

    def _claim(
        self,
        txn: StoreTxn,
        collection: str,
        instance_id: str,
        path: str,
        value: Any,
        claim: bytes,
        steals: list[tuple[str, str]],
    ) -> None:
        """Take a unique value: the earliest claim (in the total order) keeps it.

        Raises UniqueViolation when another instance claimed it earlier; notes instances
        that claimed it later, which must be re-folded without their claim.
        """
        coll = self._coll(collection)
        for holder, held_since in self._holders(txn, coll, path, value):
            if holder == instance_id:
                continue
            if held_since < claim:
                self._note_loser(txn, coll, path, value, instance_id)
                raise UniqueViolation(
                    f"unique index {path!r} of {collection!r} already holds {value!r} "
                    f"(instance {holder!r})"
                )
            steals.append((collection, holder))

    def _holders(
        self, txn: StoreTxn, coll: bytes, path: str, value: Any
    ) -> Iterator[tuple[str, bytes]]:
        prefix = layout.index_prefix(coll, path) + encode_value(value)
        cursor = txn.cursor(self.tables.index)
        if not cursor.set_range(prefix):
            return
        for key, claim in cursor:
            if not key.startswith(prefix):
                return
            yield decode_id(bytes(key), len(prefix))[0], bytes(claim)

    def _note_loser(
        self, txn: StoreTxn, coll: bytes, path: str, value: Any, instance_id: str
    ) -> None:
        key = layout.index_prefix(coll, path) + encode_value(value) + encode_id(instance_id)
        _put_entry(txn, key, b"", self.tables.losers)

    def _write_state(
        self,
        txn: StoreTxn,
        collection: str,
        instance_id: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        claims: dict[str, bytes],
    ) -> list[tuple[str, str]]:
        """Store a document and update its index entries; returns instances to re-fold."""
        coll = self._coll(collection)
        doc_key = layout.doc_key(coll, instance_id)
        if after is None:
            txn.delete(doc_key, db=self.tables.docs)
        else:
            txn.put(doc_key, cbor2.dumps(after), db=self.tables.docs)
        history = self._history(txn, collection)
        config = history.current if history else None
        if config is None:
            return []
        woken: list[tuple[str, str]] = []
        id_bytes = encode_id(instance_id)
        unique = set(config.unique_paths)
        for path in config.index_paths:
            old = get_path(before, path)
            new = get_path(after, path)
            if path not in claims and _same(old, new):
                continue
            base = layout.index_prefix(coll, path)
            if old is not _MISSING:
                txn.delete(base + encode_value(old) + id_bytes, db=self.tables.index)
                if path in unique:
                    woken.extend((collection, i) for i in self._losers_of(txn, coll, path, old))
            if new is not _MISSING:
                claim = claims.get(path, b"")
                _put_entry(txn, base + encode_value(new) + id_bytes, claim, self.tables.index)
        return [item for item in woken if item[1] != instance_id]

    def _losers_of(self, txn: StoreTxn, coll: bytes, path: str, value: Any) -> list[str]:
        prefix = layout.index_prefix(coll, path) + encode_value(value)
        return _ids_under(txn, self.tables.losers, prefix)

    def _record_rejection(
        self, txn: StoreTxn, coll: bytes, instance_id: str, rejection: Rejection
    ) -> None:
        key = layout.event_prefix(coll, instance_id) + rejection.key
        value = {"kind": "rejected", "reason": rejection.reason, "winner": rejection.lost_to}
        txn.put(key, cbor2.dumps(value), db=self.tables.lost)

    # ---------------------------------------------------------------- re-folds

    def _refold_all(
        self, txn: StoreTxn, pending: list[tuple[str, str]], changes: list[Change]
    ) -> None:
        """Re-fold instances; collections where unique values are contested are resolved whole."""
        queue = list(dict.fromkeys(pending))
        contested: dict[str, None] = {}
        rounds = 0
        while queue:
            rounds += 1
            if rounds > _MAX_REFOLD_ROUNDS:
                raise StoreError(f"re-folding did not settle after {rounds} rounds (a bug)")
            collection, instance_id = queue.pop(0)
            if collection in contested:
                continue
            woken = self._refold(txn, collection, instance_id, changes)
            if woken is None:
                contested[collection] = None
                continue
            for item in woken:
                if item not in queue and item != (collection, instance_id):
                    queue.append(item)
        for collection in contested:
            self._resolve_unique(txn, collection, changes)

    def _judge_without_unique(
        self, txn: StoreTxn, collection: str, instance_id: str
    ) -> Callable[[StoredEvent, dict[str, Any] | None, dict[str, Any] | None], str | None]:
        history = self._history(txn, collection)

        def judge(
            event: StoredEvent, before: dict[str, Any] | None, after: dict[str, Any] | None
        ) -> str | None:
            config = history.at(event.key)[0] if history else None
            try:
                self._judge(
                    txn, event, collection, instance_id, config, before, after, [], unique=False
                )
            except (WriteRejected, ScriptError, CollectionNotFound) as exc:
                return str(exc)
            return None

        return judge

    def _fold_instance(
        self,
        txn: StoreTxn,
        collection: str,
        instance_id: str,
        events: list[StoredEvent],
        banned: dict[tuple[str, bytes], str],
    ) -> tuple[FoldResult, dict[str, Any] | None, dict[bytes, str]]:
        """Fold an instance without the events that set any banned unique value."""
        history = self._history(txn, collection)
        rejected: dict[bytes, str] = {}
        if banned:
            for event in events:
                for (path, encoded), reason in banned.items():
                    if _sets_encoded(event, path, encoded):
                        rejected[event.key] = reason
        kept = [e for e in events if e.key not in rejected] if rejected else events
        result = fold(instance_id, kept, self._judge_without_unique(txn, collection, instance_id))
        current_epoch = history.current_epoch if history else None
        doc = result.doc if result.epoch == current_epoch else None
        if events:
            result.last_key = events[-1].key
        return result, doc, rejected

    def _refold(
        self, txn: StoreTxn, collection: str, instance_id: str, changes: list[Change]
    ) -> list[tuple[str, str]] | None:
        """Re-fold one instance; None when its unique values are contested (resolve globally)."""
        coll = self._coll(collection)
        history = self._history(txn, collection)
        config = history.current if history else None
        events = self.events_of(txn, collection, instance_id)
        result, doc, _ = self._fold_instance(txn, collection, instance_id, events, {})
        if config is not None and config.unique_paths:
            if self._has_loser_entries(txn, coll, instance_id):
                return None
            for path in config.unique_paths:
                value = get_path(doc, path)
                if _indexable(value) and any(
                    holder != instance_id for holder, _ in self._holders(txn, coll, path, value)
                ):
                    return None
        self._clear_losses(txn, coll, instance_id)
        return self._store_fold(txn, collection, instance_id, result, doc, {}, changes)

    def _store_fold(
        self,
        txn: StoreTxn,
        collection: str,
        instance_id: str,
        result: FoldResult,
        doc: dict[str, Any] | None,
        rejected: dict[bytes, str],
        changes: list[Change],
    ) -> list[tuple[str, str]]:
        """Write a folded instance: document, index entries with claims, lost writes."""
        coll = self._coll(collection)
        history = self._history(txn, collection)
        config = history.current if history else None
        before = self.get_doc(txn, collection, instance_id)
        claims = {
            p: result.value_since.get(p, b"") for p in (config.unique_paths if config else ())
        }
        woken = self._write_state(txn, collection, instance_id, before, doc, claims)
        if result.last_key is not None:
            txn.put(layout.doc_key(coll, instance_id), result.last_key, db=self.tables.inst)
        for rejection in [*result.rejections, *(Rejection(k, r) for k, r in rejected.items())]:
            self._record_rejection(txn, coll, instance_id, rejection)
        for conflict in result.conflicts:
            self._record_conflict(txn, coll, instance_id, conflict)
        if before != doc:
            changes.append(_change(collection, instance_id, before, doc))
        return woken

    def _resolve_unique(self, txn: StoreTxn, collection: str, changes: list[Change]) -> None:
        """Settle a collection's unique values from its events alone (order-independent).

        Every instance is folded; claims (the key since which an instance has held a value)
        are taken in key order, and the first value already taken makes the later claimant
        lose it: all its events that set that value are rejected and it is folded again.
        Bans only grow, so this ends; it depends on nothing but the events.
        """
        coll = self._coll(collection)
        history = self._history(txn, collection)
        config = history.current if history else None
        unique = config.unique_paths if config else ()
        ids = [instance_id for instance_id, _ in self._instance_heads(txn, collection)]
        events = {i: self.events_of(txn, collection, i) for i in ids}
        bans: dict[str, dict[tuple[str, bytes], str]] = {i: {} for i in ids}
        states = {i: self._fold_instance(txn, collection, i, events[i], {}) for i in ids}
        for _ in range(_MAX_REFOLD_ROUNDS):
            claims: list[tuple[bytes, str, str, Any]] = []
            for i, (result, doc, _) in states.items():
                for path in unique:
                    value = get_path(doc, path)
                    if _indexable(value):
                        since = result.value_since.get(path, result.last_key or b"")
                        claims.append((since, i, path, value))
            claims.sort(key=lambda c: (c[0], c[1]))
            taken: dict[tuple[str, bytes], str] = {}
            loser = None
            for _since, i, path, value in claims:
                slot = (path, encode_value(value))
                holder = taken.setdefault(slot, i)
                if holder != i:
                    loser = (i, slot, value, holder)
                    break
            if loser is None:
                break
            i, slot, value, holder = loser
            bans[i][slot] = (
                f"unique index {slot[0]!r} of {collection!r} already holds {value!r} "
                f"(instance {holder!r})"
            )
            states[i] = self._fold_instance(txn, collection, i, events[i], bans[i])
        else:
            raise StoreError("unique values did not settle (a bug)")
        for i in ids:
            self._clear_losses(txn, coll, i)
        for i in ids:
            result, doc, rejected = states[i]
            self._store_fold(txn, collection, i, result, doc, rejected, changes)
            for path, encoded in bans[i]:
                key = layout.index_prefix(coll, path) + encoded + encode_id(i)
                _put_entry(txn, key, b"", self.tables.losers)

    def _has_loser_entries(self, txn: StoreTxn, coll: bytes, instance_id: str) -> bool:
        suffix = encode_id(instance_id)
        cursor = txn.cursor(self.tables.losers)
        if not cursor.set_range(coll):
            return False
        for key in cursor.iternext(keys=True, values=False):
            if not key.startswith(coll):
                return False
            if bytes(key).endswith(suffix):
                return True
        return False

    def _has_losses(self, txn: StoreTxn, coll: bytes, instance_id: str) -> bool:
        prefix = layout.event_prefix(coll, instance_id)
        cursor = txn.cursor(self.tables.lost)
        return bool(cursor.set_range(prefix)) and bytes(cursor.key()).startswith(prefix)

    def _record_conflict(
        self, txn: StoreTxn, coll: bytes, instance_id: str, conflict: Conflict
    ) -> None:
        key = layout.event_prefix(coll, instance_id) + conflict.loser + _path_part(conflict.path)
        value = {"kind": "overwritten", "path": conflict.path, "winner": conflict.winner}
        txn.put(key, cbor2.dumps(value), db=self.tables.lost)

    def _clear_losses(self, txn: StoreTxn, coll: bytes, instance_id: str) -> None:
        prefix = layout.event_prefix(coll, instance_id)
        cursor = txn.cursor(self.tables.lost)
        if cursor.set_range(prefix):
            while cursor.key().startswith(prefix):
                if not cursor.delete():
                    break
        self._clear_loser_entries(txn, coll, instance_id)

    def _clear_loser_entries(self, txn: StoreTxn, coll: bytes, instance_id: str) -> None:
        history_id = encode_id(instance_id)
        cursor = txn.cursor(self.tables.losers)
        if not cursor.set_range(coll):
            return
        while True:
            key = cursor.key()
            if not key.startswith(coll):
                return
            if bytes(key).endswith(history_id):
                if not cursor.delete():
                    return
                continue
            if not cursor.next():
                return

    # ------------------------------------------------------------- collections

    def _apply_collection_event(
        self,
        txn: StoreTxn,
        event: Event,
        key: bytes,
        changes: list[Change],
        refold: dict[tuple[str, str], None],
    ) -> None:
        name = event.collection
        staged = self._staged
        if staged is None or staged[0] is not txn:
            raise StoreError("a collection event applied outside Engine.write (a bug)")
        history = staged[1].get(name)
        if history is None:
            committed = self.colls.get(name)
            history = CollHistory(name)
            if committed is not None:  # a copy: the committed one changes only on commit
                history.keys, history.configs = list(committed.keys), list(committed.configs)
        before = history.current
        config = (
            None
            if event.action is Action.DELETE_COLLECTION
            else CollectionConfig.from_node(event.data or {})
        )
        if key in history.keys:
            return  # already applied (and committed: staged histories are dropped on failure)
        latest = history.insert(key, config)
        staged[1][name] = history
        history.stored = history.encode()
        txn.put(layout.coll_key(self.prefix, name), history.stored, db=self.tables.colls)
        if latest and config is None:
            self._clear_collection(txn, name)
        elif (
            latest
            and config is not None
            and before is not None
            and before.indexes != config.indexes
        ):
            self._rebuild_indexes(txn, name, before, config, changes)
        # instance events were judged under the configs known when they were applied: any
        # that this config event now precedes must be judged again (a late config event,
        # or records that arrived before the collection did)
        reepoch = not latest or config is None or before is None
        for instance_id, last in self._instance_heads(txn, name):
            if reepoch or last > key:
                refold[(name, instance_id)] = None

    def _instance_heads(self, txn: StoreTxn, name: str) -> Iterator[tuple[str, bytes]]:
        """``(instance id, key of its latest event)`` for every instance with events."""
        prefix = self._coll(name)
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

    def _clear_collection(self, txn: StoreTxn, name: str) -> None:
        coll = self._coll(name)
        for db in (self.tables.docs, self.tables.index, self.tables.inst, self.tables.losers):
            _delete_prefix(txn, db, coll)

    def _rebuild_indexes(
        self,
        txn: StoreTxn,
        name: str,
        before: CollectionConfig,
        config: CollectionConfig,
        changes: list[Change],
    ) -> None:
        coll = self._coll(name)
        kept = set(before.indexes) & set(config.indexes)
        for index in before.indexes:
            if index not in kept:
                _delete_prefix(txn, self.tables.index, layout.index_prefix(coll, index.path))
        added = [i for i in config.indexes if i not in kept]
        if not added:
            return
        plain = [i for i in added if not i.unique]
        for doc in list(self.scan_docs(txn, name)) if plain else ():
            instance_id = doc["_id"]
            for index in plain:
                value = get_path(doc, index.path)
                if value is not _MISSING:
                    key = layout.index_prefix(coll, index.path) + encode_value(value)
                    _put_entry(txn, key + encode_id(instance_id), b"", self.tables.index)
        if any(i.unique for i in added):
            # a unique index is filled by re-folding every instance: each entry then carries
            # its claim, and values held twice (written concurrently with the index) go to
            # the earliest claim, the same on every peer
            instances = [(name, instance_id) for instance_id, _ in self._instance_heads(txn, name)]
            self._refold_all(txn, instances, changes)

    def unique_duplicates(self, txn: StoreTxn, name: str, path: str) -> list[Any]:
        """Values that more than one live document holds at ``path``."""
        seen: dict[bytes, Any] = {}
        dupes: list[Any] = []
        for doc in self.scan_docs(txn, name):
            value = get_path(doc, path)
            if value is _MISSING or value is None or isinstance(value, dict | list):
                continue
            enc = encode_value(value)
            if enc in seen and len(dupes) < 5:
                dupes.append(value)
            seen[enc] = value
        return dupes

    # ------------------------------------------------------------------ misc

    def _coll(self, name: str) -> bytes:
        return layout.coll_key(self.prefix, name)


def _change(
    collection: str, instance_id: str, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> Change:
    if after is None:
        return Change(collection, instance_id, Action.DELETE, None)
    action = Action.CREATE if before is None else Action.SAVE
    return Change(collection, instance_id, action, after)


def _index_entries(
    indexes: list[tuple[str, bytes]], docs: list[dict[str, Any]], id_parts: list[bytes]
) -> Iterator[tuple[bytes, bytes]]:
    """Entries ``prefix ‖ value ‖ id`` → ``b""`` of new documents in (non-unique) indexes.

    ``indexes`` holds each index's path and key prefix. Document by document, path by
    path, as the one-event path writes them, so an unindexable value fails the same way.
    """
    return (
        (prefix + encode_value(value) + part, b"")
        for doc, part in zip(docs, id_parts, strict=True)
        for path, prefix in indexes
        if (value := get_path(doc, path)) is not _MISSING
    )


def _sets_encoded(event: StoredEvent, path: str, encoded: bytes) -> bool:
    """True when an event writes the value ``encoded`` at ``path`` (create document or patch)."""
    if event.action is Action.DELETE or event.data is None:
        return False
    value = get_path(event.data, path)
    return _indexable(value) and encode_value(value) == encoded


def _indexable(value: Any) -> bool:
    """True for a value a unique index holds (a string, number or boolean)."""
    return value is not _MISSING and value is not None and not isinstance(value, dict | list)


def _same(a: Any, b: Any) -> bool:
    return a is b or (a == b and type(a) is type(b))


def _loads(data: Any) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError, RecursionError) as exc:
        # only a repository written before documents were held to the value model
        raise UnreadableDocument(f"a stored document does not decode: {exc}") from None
    return doc


def _put_entry(txn: StoreTxn, key: bytes, value: bytes, table: Any) -> None:
    """Put an index (or losers) entry; one too long for an LMDB key is left out, with a warning.

    Local writes refuse such values before they get here; a value received from a peer is
    kept in its document, but cannot be found through the index.
    """
    if len(key) > layout.MAX_KEY:
        log.warning("a value too long for an index entry is not indexed (%d bytes)", len(key))
        return
    txn.put(key, value, db=table)


def _path_part(path: str) -> bytes:
    """A field path in a lost-write key; a path that could overflow the key goes as its hash
    (the entry's value holds the path itself)."""
    raw = path.encode("utf-8", "surrogatepass")
    if len(raw) <= _MAX_PATH_PART:
        return raw
    import hashlib

    return b"\xff" + hashlib.sha256(raw).digest()


def _ids_under(txn: StoreTxn, table: Any, prefix: bytes) -> list[str]:
    """The instance ids encoded right after ``prefix`` in a table's keys."""
    cursor = txn.cursor(table)
    ids: list[str] = []
    if cursor.set_range(prefix):
        for key in cursor.iternext(keys=True, values=False):
            if not key.startswith(prefix):
                break
            ids.append(decode_id(bytes(key), len(prefix))[0])
    return ids


def _delete_prefix(txn: StoreTxn, db: Any, prefix: bytes) -> None:
    cursor = txn.cursor(db)
    if not cursor.set_range(prefix):
        return
    while cursor.key().startswith(prefix):
        if not cursor.delete():
            break
