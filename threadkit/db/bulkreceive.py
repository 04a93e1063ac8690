"""Received records of creates of new instances, applied in one batch (a joiner's backlog).

A peer that joins a database receives its records as they were written: most hold
creates of documents it has never seen. Applying them event by event
(:meth:`threadkit.db.applying.Applier.apply`) looks each instance up, judges it and
writes its rows one put at a time. :func:`apply_received_creates` takes a record whose
events all fit the bulk path of local creates (:meth:`.Applier.apply_creates`) and
writes its rows table by table with LMDB ``putmulti``; anything else returns None and
goes the event-by-event way, so the stored state is the same either way.

A record fits when every event creates an instance of one collection, with no base,
no migration seen and no purge; the collection exists with no write validator and no
migration, and no config event at or after the record's first stamp; no instance of the
record was ever seen and none repeats; every document passes the schema; and every
unique value it takes is taken once and held by no stored instance. Then no event can
be refused or race another, which is what the event-by-event path would find too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cbor2

from threadkit.core.clock import order_key
from threadkit.db.bulkcheck import new_instances, unique_values_free
from threadkit.db.events import Action, RecordEvent
from threadkit.db.judging import REFUSALS
from threadkit.db.schema import DEFAULT_SCHEMA

if TYPE_CHECKING:
    from threadkit.db.applying import Applier, RecordContext
    from threadkit.db.change import Change

__all__ = ["apply_received_creates", "enabled"]

enabled = True
"""False sends every received record the event-by-event way (the path before this
module): the equivalence tests and the join benchmark compare the two."""


def apply_received_creates(
    applier: Applier, ctx: RecordContext, events: list[RecordEvent]
) -> list[Change] | None:
    """Apply a received record of creates in one batch; None when it does not fit.

    Nothing is written when None is returned (module docstring).
    """
    if not enabled or len(events) < 2:
        return None
    collection = events[0].collection
    for event in events:
        if (
            event.action is not Action.CREATE
            or event.collection != collection
            or event.base is not None
            or event.seen is not None
            or event.purged is not None
        ):
            return None
    engine = applier.engine
    history = engine.history(ctx.txn, collection)
    config = history.current if history else None
    if history is None or config is None or config.validator is not None or history.transforms:
        return None
    keys = [order_key(e.stamp, ctx.log_id) for e in events]
    if history.keys and history.keys[-1] >= min(keys):
        return None
    ids = [e.instance_id for e in events]
    coll = engine.coll_key(collection)
    if not new_instances(ctx.txn, engine.tables, coll, ids, ids):
        return None
    afters: list[dict[str, Any]] = []
    for event in events:
        after = {"_id": event.instance_id}
        after.update(event.data or {})
        after["_id"] = event.instance_id  # step()'s document of a create
        afters.append(after)
    if config.schema != DEFAULT_SCHEMA:  # (the default holds any object with a string _id)
        validate = config.schema_validator.validate
        try:
            for after in afters:
                validate({k: v for k, v in after.items() if k != "_mod"})
        except REFUSALS:
            return None
    if not unique_values_free(ctx.txn, engine.tables, coll, config, afters):
        return None
    raws = [cbor2.dumps(e.data) for e in events]
    # the store keeps step()'s document: the same bytes when the data holds its _id first
    docs = [
        raw if _id_first(e) else cbor2.dumps(after)
        for e, raw, after in zip(events, raws, afters, strict=True)
    ]
    creates = [(e.stamp, e.instance_id, a) for e, a in zip(events, afters, strict=True)]
    return applier.put_creates(ctx, collection, config, creates, raws, keys, docs)


def _id_first(event: RecordEvent) -> bool:
    data = event.data or {}
    return bool(data) and next(iter(data)) == "_id" and data["_id"] == event.instance_id
