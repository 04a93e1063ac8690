"""Applying one record's events to the stored state, inside a write transaction.

Fast path: an event newer than everything its instance has seen, whose writer
had seen the instance's latest event, is applied on top of the stored
document. Anything else (late, concurrent, or touching a unique value another
instance holds) re-folds only the instances involved (:mod:`.refold`). A record
of creates of new instances goes in one batch when nothing needs judging one by
one: no write validator, and unique values checked in batch (:meth:`Applier.apply_creates`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cbor2

from threadkit.core.clock import Timestamp, order_key
from threadkit.db import dockeys, indexkeys
from threadkit.db.bulkcheck import unique_values_free
from threadkit.db.change import Change, Transition
from threadkit.db.colls import CollHistory
from threadkit.db.config import CollectionConfig
from threadkit.db.dockeys import encode_id
from threadkit.db.docpath import get_path, same_value
from threadkit.db.doctables import load_doc
from threadkit.db.events import Action, RecordEvent, array_header
from threadkit.db.indexing import index_entries
from threadkit.db.judging import REFUSALS, RefusalPolicy
from threadkit.db.migrations import fast_path_fits
from threadkit.db.reducer import Rejection, StoredEvent, step
from threadkit.db.transforms import parse_migration
from threadkit.errors import StoreError, UniqueViolation
from threadkit.store.txntypes import StoreWriteTxn

if TYPE_CHECKING:
    from threadkit.db.engine import Engine

__all__ = ["Applier", "RecordContext"]

_CREATE_EVENT_HEAD = array_header(5) + cbor2.dumps(Action.CREATE.code)
"""How the event index value of a create starts: an array of five, the action code."""


@dataclass(slots=True)
class RecordContext:
    """What every event of one record is applied with.

    Attributes
    ----------
    txn : StoreWriteTxn
        The write transaction.
    log_id : bytes
        The bytes of the log the record is in (the tail of its events' order keys).
    author : str
        The record's author (a public key string).
    record : bytes
        The record's CID.
    policy : RefusalPolicy
        What a refused event does (:data:`.judging.LOCAL` or :data:`.judging.RECEIVED`).
    fresh : frozenset of str
        Instances a local transaction creates under ids it just generated, whose
        documents it already checked against the schema: they cannot exist yet, so their
        creates skip the lookups and the second schema check.
    changes : list of Change
        The changes made so far, in order.
    """

    txn: StoreWriteTxn
    log_id: bytes
    author: str
    record: bytes
    policy: RefusalPolicy
    fresh: frozenset[str] = frozenset()
    changes: list[Change] = field(default_factory=list)

    def stored(self, event: RecordEvent, key: bytes, epoch: bytes | None) -> StoredEvent:
        """``event`` as the event index holds it."""
        return StoredEvent(
            key,
            event.action,
            event.data,
            event.base,
            self.author,
            self.record,
            epoch or b"",
            event.seen,
            event.purged,
            event.folded,
        )


class Applier:
    """Applies records' events to one database's state.

    Parameters
    ----------
    engine : Engine
        The database's engine.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def apply(self, ctx: RecordContext, events: list[RecordEvent]) -> list[Change]:
        """Apply one record's events; returns the changes, in order."""
        refold: dict[tuple[str, str], None] = {}
        for event in events:
            key = order_key(event.stamp, ctx.log_id)
            if event.action.is_collection:
                self._apply_collection_event(ctx, event, key, refold)
                continue
            self._store_event(ctx, event, key)
            if (event.collection, event.instance_id) in refold:
                continue
            if event.action is Action.PURGE or event.purged is not None:
                # a purge erases the events before it; a re-fold does that (:mod:`.purge`)
                refold[(event.collection, event.instance_id)] = None
                continue
            if not self._fast_apply(ctx, event, key):
                refold[(event.collection, event.instance_id)] = None
        self.engine.refolds.refold_all(ctx.txn, list(refold), ctx.changes)
        return ctx.changes

    def apply_creates(
        self,
        ctx: RecordContext,
        collection: str,
        creates: Sequence[tuple[Timestamp, str, dict[str, Any]]],
        encoded: Sequence[bytes],
    ) -> list[Change]:
        """Apply a local record of creates of new instances (see :meth:`.Engine.apply_creates`)."""
        keys = [order_key(stamp, ctx.log_id) for stamp, _, _ in creates]
        history = self.engine.history(ctx.txn, collection)
        config = history.current if history else None
        if (
            history is None
            or config is None
            or config.validator is not None
            or not creates
            or history.keys[-1] >= keys[0]
            or not unique_values_free(
                ctx.txn,
                self.engine.tables,
                self.engine.coll_key(collection),
                config,
                [doc for _, _, doc in creates],
            )
        ):
            events = [
                RecordEvent(stamp, Action.CREATE, collection, i, doc) for stamp, i, doc in creates
            ]
            ctx.fresh = frozenset(i for _, i, _ in creates)
            return self.apply(ctx, events)
        return self.put_creates(ctx, collection, config, creates, encoded, keys)

    def put_creates(
        self,
        ctx: RecordContext,
        collection: str,
        config: CollectionConfig,
        creates: Sequence[tuple[Timestamp, str, dict[str, Any]]],
        encoded: Sequence[bytes],
        keys: list[bytes],
        stored: Sequence[bytes] | None = None,
    ) -> list[Change]:
        """Write the entries of new instances, table by table (see :meth:`apply_creates`).

        ``encoded`` is each event's data as CBOR, ``stored`` each stored document's when
        they differ (:mod:`.bulkreceive`). The entries are generated as LMDB takes them,
        so they never pile up as garbage.
        """
        coll = self.engine.coll_key(collection)
        ids = [instance_id for _, instance_id, _ in creates]
        docs = [doc for _, _, doc in creates]
        id_parts = [indexkeys.encode_id(i) for i in ids]  # not the cached encode_id: ids are new
        doc_keys = [coll + part for part in id_parts]
        # an event index value is CBOR [action, data, base, author, record]: splice the data in
        tail = cbor2.dumps([None, ctx.author, ctx.record])[1:]  # base, author, record: no head
        head, prefix, tables = _CREATE_EVENT_HEAD, self.engine.prefix, self.engine.tables
        puts: list[tuple[Any, Iterable[tuple[bytes, bytes]]]] = [
            (
                tables.events,
                (
                    (d + k, head + raw + tail)
                    for d, k, raw in zip(doc_keys, keys, encoded, strict=True)
                ),
            ),
            (tables.order, ((prefix + k, d) for k, d in zip(keys, doc_keys, strict=True))),
            (tables.docs, zip(doc_keys, encoded if stored is None else stored, strict=True)),
            (tables.inst, zip(doc_keys, keys, strict=True)),
        ]
        indexes = [(path, dockeys.index_prefix(coll, path)) for path in config.index_paths]
        if indexes:
            # a unique index's entry holds its claim, the event's key (:mod:`.claims`)
            claims = keys if config.unique_paths else None
            unique = frozenset(config.unique_paths)
            puts.append((tables.index, index_entries(indexes, docs, id_parts, claims, unique)))
        for table, items in puts:
            ctx.txn.cursor(table).putmulti(items)
        changes = [Change(collection, i, Action.CREATE, d) for i, d in zip(ids, docs, strict=True)]
        ctx.changes.extend(changes)
        return ctx.changes

    def _store_event(self, ctx: RecordContext, event: RecordEvent, key: bytes) -> None:
        engine = self.engine
        coll = engine.coll_key(event.collection)
        entry: list[Any] = [event.action.code, event.data, event.base, ctx.author, ctx.record]
        if event.seen is not None or event.purged is not None or event.folded is not None:
            entry.append(event.seen)  # the event index value holds what it was written against
        if event.purged is not None or event.folded is not None:
            entry.append(event.purged)
        if event.folded is not None:  # only a replay of a compacted database's events
            entry.append(event.folded.to_node())
        value = cbor2.dumps(entry)
        ctx.txn.put(
            dockeys.event_prefix(coll, event.instance_id) + key, value, db=engine.tables.events
        )
        ctx.txn.put(
            engine.prefix + key, coll + encode_id(event.instance_id), db=engine.tables.order
        )

    def _fast_apply(self, ctx: RecordContext, event: RecordEvent, key: bytes) -> bool:
        """Apply on top of the stored state when that is exact; False means re-fold."""
        engine, txn, tables = self.engine, ctx.txn, self.engine.tables
        if event.folded is not None:
            return False  # a compacted create (replayed): only the fold knows its rules
        coll = engine.coll_key(event.collection)
        doc_key = dockeys.doc_key(coll, event.instance_id)
        fresh = event.action is Action.CREATE and event.instance_id in ctx.fresh
        last = None if fresh else txn.get(doc_key, db=tables.inst)
        if last is not None:
            last = bytes(last)
            if key <= last or event.base is None or event.base < last:
                ctx.policy.raced()
                return False
            if engine.claims.has_losses(txn, coll, event.instance_id):
                # earlier verdicts (a unique value lost) may change with this event: a local
                # write is still judged first, then the instance is re-folded
                ctx.policy.check_before_refold(lambda: self._check(ctx, event, key))
                return False
        history = engine.history(txn, event.collection)
        if history is not None and history.transforms and not fast_path_fits(history, event, key):
            ctx.policy.raced()
            return False  # a migration after it, or one its writer had not seen: re-fold
        config, epoch = history.at(key) if history else (None, None)
        stored = ctx.stored(event, key, epoch)
        raw = None if fresh else txn.get(doc_key, db=tables.docs)
        before = None if raw is None else load_doc(raw)
        if event.action is Action.DELETE and before is None:
            txn.put(doc_key, key, db=tables.inst)
            return True
        change = Transition(
            event.collection, event.instance_id, before, step(event.instance_id, before, stored)
        )
        steals: list[tuple[str, str]] = []
        try:
            engine.judge.judge(txn, stored, change, config, steals, checked=fresh)
        except UniqueViolation as exc:
            ctx.policy.refused(exc)
            # unique values are judged on final states: a re-fold decides
            return False
        except REFUSALS as exc:
            ctx.policy.refused(exc)
            engine.claims.record_rejection(txn, coll, event.instance_id, Rejection(key, str(exc)))
            txn.put(doc_key, key, db=tables.inst)
            return True
        current = history.current if history else None
        claims = {
            p: key
            for p in (current.unique_paths if current else ())
            if not same_value(get_path(before, p), get_path(change.after, p))
        }
        woken = engine.indexes.write_state(txn, coll, change, current, claims)
        txn.put(doc_key, key, db=tables.inst)
        ctx.changes.append(change.change())
        if steals or woken:
            engine.refolds.refold_all(txn, [*steals, *woken], ctx.changes)
        return True

    def _check(self, ctx: RecordContext, event: RecordEvent, key: bytes) -> None:
        """Judge an event on top of the stored state; raise when it is refused."""
        engine = self.engine
        history = engine.history(ctx.txn, event.collection)
        config, epoch = history.at(key) if history else (None, None)
        stored = ctx.stored(event, key, epoch)
        before = engine.get_doc(ctx.txn, event.collection, event.instance_id)
        if event.action is Action.DELETE and before is None:
            return
        after = step(event.instance_id, before, stored)
        change = Transition(event.collection, event.instance_id, before, after)
        engine.judge.judge(ctx.txn, stored, change, config, [])

    def _apply_collection_event(
        self,
        ctx: RecordContext,
        event: RecordEvent,
        key: bytes,
        refold: dict[tuple[str, str], None],
    ) -> None:
        engine, txn, name = self.engine, ctx.txn, event.collection
        staged = engine.staged_for(txn)
        if staged is None:
            raise StoreError("a collection event applied outside Engine.write (a bug)")
        history = staged.get(name)
        if history is None:
            committed = engine.colls.get(name)
            # a copy: the committed one changes only on commit
            history = CollHistory(name) if committed is None else committed.copy()
        before = history.current
        transform = None
        if event.action is Action.MIGRATE_COLLECTION:
            config, transform = parse_migration(event.data)
        elif event.action is Action.DELETE_COLLECTION:
            config = None
        else:
            config = CollectionConfig.from_node(event.data or {})
        if key in history.keys:
            return  # already applied (and committed: staged histories are dropped on failure)
        latest = history.insert(key, config, transform)
        staged[name] = history
        history.stored = history.encode()
        txn.put(dockeys.coll_key(engine.prefix, name), history.stored, db=engine.tables.colls)
        if latest and config is None:
            engine.indexes.clear_collection(txn, engine.coll_key(name))
        elif (
            latest
            and config is not None
            and before is not None
            and before.indexes != config.indexes
        ):
            self._rebuild_indexes(ctx, name, before, config)
        # instance events were judged under the configs known when they were applied: any
        # that this config event now precedes must be judged again (a late config event,
        # or records that arrived before the collection did)
        # a migration rewrites every instance of its epoch where it stands
        reepoch = not latest or config is None or before is None or transform is not None
        for instance_id, last in engine.instance_heads(txn, name):
            if reepoch or last > key:
                refold[(name, instance_id)] = None

    def _rebuild_indexes(
        self, ctx: RecordContext, name: str, before: CollectionConfig, config: CollectionConfig
    ) -> None:
        engine, txn = self.engine, ctx.txn
        coll = engine.coll_key(name)
        kept = set(before.indexes) & set(config.indexes)
        for index in before.indexes:
            if index not in kept:
                engine.indexes.drop(txn, coll, index.path)
        added = [i for i in config.indexes if i not in kept]
        if not added:
            return
        plain = [i.path for i in added if not i.unique]
        if plain:
            engine.indexes.fill(txn, coll, plain, list(engine.scan_docs(txn, name)))
        if any(i.unique for i in added):
            # a unique index is filled by re-folding every instance: each entry then carries
            # its claim, and values held twice (written concurrently with the index) go to
            # the earliest claim, the same on every peer
            instances = [(name, instance_id) for instance_id, _ in engine.instance_heads(txn, name)]
            engine.refolds.refold_all(txn, instances, ctx.changes)
