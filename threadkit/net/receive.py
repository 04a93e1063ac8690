"""Records received from peers: checked, then applied to the database (or just kept).

Every received record, whether pushed, pulled or gossiped, goes through
:meth:`Receiver.receive`: ``open_record`` checks it (CIDs, decryption under the service
key, the signature by the log's key), then ``Database.apply_records`` chains and applies
it — or, on a replicator (a thread without a database), the repo just chains it into its
log. A gap (records beyond this peer's head) asks for a pull from the sender; a
replicator passes what it added on to the thread's other peers.

A batch of at most :data:`INLINE_RECORDS` records (and :data:`INLINE_BYTES`) is applied
on the event loop itself when that needs no waiting (``Database.apply_records_now``);
larger ones, and any that would wait for a lock or a script call, in a worker thread.
Handing a push to a thread and back cost more CPU than applying one record (~0.1 ms:
the hand-off, the worker's wake-up, the loop's wake-up), and writers that commit one
document at a time make pushes of one to a few records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from threadkit.core.records import open_record
from threadkit.errors import DBNotFound, ProtocolError, RecordError
from threadkit.net.context import ServiceContext

if TYPE_CHECKING:
    from threadkit.core.ids import ThreadID
    from threadkit.core.records import Record

__all__ = ["INLINE_BYTES", "INLINE_RECORDS", "GapHandler", "Receiver", "Relay"]

log = logging.getLogger("threadkit.net")

INLINE_RECORDS = 8
"""Received batches of at most this many records may be applied on the event loop.

Applying one costs ~0.1–0.2 ms of CPU, so the loop waits ~1–2 ms at most for a batch."""

INLINE_BYTES = 64 * 1024
"""... and of at most this many bytes of blocks."""

GapHandler = Callable[[str, "ThreadID"], None]
"""``on_gap(sender, thread_id)``: records beyond this peer's head came from ``sender``."""

Relay = Callable[[str, "ThreadID", str, list["Record"]], None]
"""``relay(peer_id, thread_id, log_id, records)``: queue records for a peer."""


class Receiver:
    """Checks and applies received records.

    Parameters
    ----------
    ctx : ServiceContext
        The service's shared state.
    relay : callable
        Queues records for another peer (a replicator passes records on).
    on_gap : callable
        Called when received records do not reach this peer's head (pull from the sender).
    """

    def __init__(self, ctx: ServiceContext, relay: Relay, on_gap: GapHandler) -> None:
        self.ctx = ctx
        self.relay = relay
        self.on_gap = on_gap

    async def receive(
        self, sender: str, thread_id: ThreadID, log_id: str, blocks: list[Any]
    ) -> int:
        """Check received records and hand them to the database (or the log, on a replicator).

        Returns
        -------
        int
            How many records were new.

        Raises
        ------
        ProtocolError
            A record fails a check (``code="invalid_record"``); nothing of the batch is kept.
        """
        self.ctx.stats.receiving += 1
        try:
            return await self._receive(sender, thread_id, log_id, blocks)
        finally:
            self.ctx.stats.receiving -= 1

    async def _receive(
        self, sender: str, thread_id: ThreadID, log_id: str, blocks: list[Any]
    ) -> int:
        import trio

        ctx = self.ctx
        key = ctx.key(thread_id)
        public = ctx.repo.get_log(thread_id, log_id).public
        try:
            records = [open_record(b, service_key=key, log_key=public) for b in blocks]
        except RecordError as exc:
            ctx.stats.rejected += len(blocks)
            log.warning("rejected records of log %s from %s: %s", log_id, sender, exc)
            raise ProtocolError(f"invalid record: {exc}", code="invalid_record") from None

        def apply() -> Any:
            try:
                db = ctx.manager.get_db(thread_id)
            except DBNotFound:
                return ctx.repo.accept(thread_id, log_id, records)
            return db.apply_records(log_id, records)

        result = self._apply_now(thread_id, log_id, records)
        if result is None:
            result = await trio.to_thread.run_sync(apply)
        ctx.stats.received += len(result.added)
        ctx.notify(thread_id, log_id, [appended.record for appended in result.added])
        if result.gap is not None:
            self.on_gap(sender, thread_id)
        if result.added and not key.can_read:
            # a replicator passes records on to the thread's other peers
            added = [a.record for a in result.added]
            for peer_id in ctx.peers_of(thread_id):
                if peer_id != sender:
                    self.relay(peer_id, thread_id, log_id, added)
        return len(result.added)

    def _apply_now(self, thread_id: ThreadID, log_id: str, records: list[Record]) -> Any:
        """The result of applying a small batch here on the loop, or None (not applied)."""
        if len(records) > INLINE_RECORDS:
            return None
        if sum(r.blocks.total_size() for r in records) > INLINE_BYTES:
            return None
        try:
            db = self.ctx.manager.get_db(thread_id)
        except DBNotFound:  # a replicator: the repo chains them, in a worker thread
            return None
        return db.apply_records_now(log_id, records)
