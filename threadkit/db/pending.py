"""The events of a local transaction as they are built, before they are committed.

:class:`Pending` holds them and what they were built on (heads, configs, the instances
before each write); :func:`event_for` turns one write into its event. The commit path of
:class:`threadkit.db.database.Database` uses both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from threadkit.core.clock import order_key
from threadkit.db.config import CollectionConfig
from threadkit.db.events import Action, RecordEvent
from threadkit.db.patch import apply_patch, create_patch
from threadkit.db.writeop import WriteOp
from threadkit.errors import InstanceExists, InstanceNotFound, WriteRejected
from threadkit.store.txntypes import StoreTxn

if TYPE_CHECKING:
    from threadkit.db.database import Database

__all__ = ["Pending", "event_for", "next_mod"]


@dataclass
class Pending:
    """The events of a transaction being built, and what they were built on."""

    events: list[RecordEvent] = field(default_factory=list)
    state: dict[tuple[str, str], tuple[dict[str, Any] | None, bytes | None]] = field(
        default_factory=dict
    )
    head: bytes | None = None
    """This peer's log head when the events were built (their stamps follow it)."""
    seen: dict[tuple[str, str], bytes | None] = field(default_factory=dict)
    """The latest event key of each instance the events were built on."""
    configs: dict[str, CollectionConfig | None] = field(default_factory=dict)
    """The config of each collection the events were built under."""
    befores: list[dict[str, Any] | None] = field(default_factory=list)
    """The instance before each event, as the writer saw it."""
    prejudged: bool = False
    """True once the events' validator calls were noted (see ``Database._prejudge``)."""


def event_for(db: Database, txn: StoreTxn, pending: Pending, op: WriteOp) -> RecordEvent:
    """The event of one write of a transaction, built on what ``pending`` already holds.

    Records the instance before it in ``pending.befores`` and after it in
    ``pending.state``, so later writes of the same transaction build on this one.
    """
    ident = (op.collection, op.instance_id)
    if ident in pending.state:
        before, base = pending.state[ident]
    elif op.fresh:
        before, base = None, None
    else:
        before = db.engine.get_doc(txn, op.collection, op.instance_id)
        base = db.engine.last_key(txn, op.collection, op.instance_id)
    pending.befores.append(before)
    stamp = db._stamp_after(base, f"instance {op.instance_id!r} of {op.collection!r}")
    key = order_key(stamp, db._log_bytes)
    history = db.engine.colls.get(op.collection)
    seen = history.latest_migration() if history is not None and history.transforms else None
    if op.action is Action.CREATE:
        if before is not None:
            raise InstanceExists(f"instance {op.instance_id!r} already exists in {op.collection!r}")
        doc = dict(op.doc or {})
        doc["_mod"] = next_mod(stamp.wall, before)
        event = RecordEvent(stamp, Action.CREATE, op.collection, op.instance_id, doc, base, seen)
        after: dict[str, Any] | None = dict(doc, _id=op.instance_id)
    elif op.action is Action.SAVE:
        view = before
        config = db.engine.config(op.collection)
        if before is not None and config.filter is not None:
            view = db.engine.run_filter(config, op.reader, before)
        if op.merge and view is None:
            raise InstanceNotFound(f"instance {op.instance_id!r} not found in {op.collection!r}")
        new = {**view, **(op.doc or {})} if op.merge and view else dict(op.doc or {})
        new.pop("_mod", None)
        new["_mod"] = next_mod(stamp.wall, before)
        patch = create_patch(view or {}, new)
        patch.pop("_id", None)
        event = RecordEvent(stamp, Action.SAVE, op.collection, op.instance_id, patch, base, seen)
        after = apply_patch(before, patch)
        after["_id"] = op.instance_id
    else:  # a delete, or a purge of a deleted instance (:mod:`.purge`)
        if op.action is Action.PURGE and before is not None:
            raise WriteRejected(
                f"instance {op.instance_id!r} of {op.collection!r} is not deleted: delete it "
                "before purging it"
            )
        event = RecordEvent(stamp, op.action, op.collection, op.instance_id, None, base, seen)
        after = None
    pending.state[ident] = (after, key)
    return event


def next_mod(wall: int, before: dict[str, Any] | None) -> int:
    """``_mod`` of a write: its wall time, but always above the instance's previous ``_mod``.

    The HLC's wall part stands still after merging a stamp from a clock that runs
    ahead (only its logical part moves), and ``_mod`` must still grow on every write.
    """
    previous = before.get("_mod") if before else None
    if type(previous) is int and previous >= wall:
        return previous + 1
    return wall
