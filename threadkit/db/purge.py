"""Purging a deleted document: its contents erased from the store's tables and views.

``coll.purge(id)`` commits one *purge* event (:class:`~threadkit.db.events.Action`
``PURGE``) for a deleted instance. It replicates like any write, and wherever it is
applied — here, on every peer that receives it, in any order — the store keeps the
instance's events before it as markers only: :func:`erase_purged` overwrites their data
(documents, merge patches) in the event index, and the fold
(:func:`threadkit.db.reducer.fold`) lets them count for nothing, so no lost write,
document or index entry holds them either. Their versions in ``db.history()``, ``at()``
and the record DAG show ``{"_id": ..., "_purged": True}``, never the data. An event
of the instance that arrives later but sorts before the purge is erased when it arrives.

What a purge cannot do is set down in docs/lifecycle.md: the encrypted record bodies that
carried the events stay in the logs (they are signed, and serve other peers and joiners),
and peers that do not run this code, backups and exports keep what they hold.

Examples
--------
>>> import threadkit as tk
>>> with tk.Peer(memory=True) as peer:
...     db = peer.new_db("notes")
...     notes = db.new_collection("Notes")
...     _ = notes.create({"_id": "n", "secret": "s3cret"})
...     notes.delete("n")
...     notes.purge("n")
...     rows = [(str(r.action), r.data) for r in db.timeline.events("Notes") if r.instance]
>>> rows
[('create', {'_purged': True}), ('delete', {'_purged': True}), ('purge', None)]
"""

from __future__ import annotations

import bisect
import dataclasses
from typing import TYPE_CHECKING, Any

import cbor2

from threadkit.db import dockeys
from threadkit.db.events import Action, RecordEvent
from threadkit.db.reducer import PURGED, StoredEvent
from threadkit.db.values import check_id
from threadkit.db.writeop import WriteOp
from threadkit.errors import InstanceNotFound

if TYPE_CHECKING:
    from threadkit.db.collection import Collection
    from threadkit.db.engine import Engine
    from threadkit.db.gate import WriteAs
    from threadkit.store.txntypes import StoreTxn, StoreWriteTxn

__all__ = ["MARKER", "erase_purged", "mask_events", "purge"]

MARKER = {PURGED: True}
"""What a purged event shows in place of its data."""


def purge(coll: Collection, instance_id: str, identity: WriteAs = None) -> None:
    """Erase a deleted instance's contents for good from this repo, and replicate the purge.

    Parameters
    ----------
    coll : Collection
        The collection.
    instance_id : str
        A deleted instance (it must have existed).
    identity : Identity, optional
        The writer (as for ``delete``).

    Raises
    ------
    InstanceNotFound
        If the instance never existed here.
    WriteRejected
        If the instance is live: delete it first.
    InvalidDocument
        If ``instance_id`` is not a valid ``_id``.
    """
    check_id(instance_id)
    db = coll.db
    with db.read_txn() as txn:
        last = db.engine.last_key(txn, coll.name, instance_id)
    if last is None:
        raise InstanceNotFound(f"instance {instance_id!r} not found in {coll.name!r}")
    db.commit([WriteOp(Action.PURGE, coll.name, instance_id)], identity)


def erase_purged(
    engine: Engine, txn: StoreWriteTxn, collection: str, instance_id: str
) -> list[StoredEvent]:
    """An instance's events, in order, with the data of every event before a purge erased
    from the event index (and in what is returned)."""
    events = engine.events_of(txn, collection, instance_id)
    purges = [e.key for e in events if e.action is Action.PURGE]
    if not purges:
        return events
    prefix = dockeys.event_prefix(engine.coll_key(collection), instance_id)
    out = []
    for event in events:
        at = bisect.bisect_right(purges, event.key)
        # the first purge after an event marks it, whichever purge arrived first
        if event.action is not Action.PURGE and at < len(purges) and event.purged != purges[at]:
            event = dataclasses.replace(event, data=None, purged=purges[at])
            entry = [event.action.code, None, event.base, event.author, event.record]
            txn.put(
                prefix + event.key,
                cbor2.dumps([*entry, event.seen, event.purged]),
                db=engine.tables.events,
            )
        out.append(event)
    return out


def mask_events(
    engine: Engine, txn: StoreTxn, events: tuple[RecordEvent, ...], keys: tuple[bytes, ...]
) -> tuple[RecordEvent, ...]:
    """A record's decoded events with the data of purged ones replaced by :data:`MARKER`
    (what the record DAG and ``records()`` show)."""
    out = []
    for event, key in zip(events, keys, strict=True):
        if not event.action.is_collection and event.data is not None:
            coll = engine.coll_key(event.collection)
            value = txn.get(
                dockeys.event_prefix(coll, event.instance_id) + key, db=engine.tables.events
            )
            entry: list[Any] = cbor2.loads(value) if value is not None else []
            if len(entry) > 6 and entry[6] is not None:
                event = dataclasses.replace(event, data=dict(MARKER), purged=entry[6])
        out.append(event)
    return tuple(out)
