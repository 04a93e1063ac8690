"""Sending to peers: records as they are committed, logs, and replicators' keys.

- **Records**: a commit queues its record for every peer of the thread
  (:meth:`Pusher.enqueue`); one sender task per (peer, thread, log) drains the queue in
  batches of up to ``MAX_RECORDS`` records and ``MAX_PUSH_BYTES`` bytes (one record
  alone may be larger), so records that queue up while a push is in flight travel
  together and no push exceeds the frame limit. A failed push drops the queue: the peer
  pulls what it missed when it is back (the periodic pull).
- **A slow peer**: a queue holds at most :data:`MAX_QUEUED_RECORDS` records and
  :data:`MAX_QUEUED_BYTES` bytes, and all queues together :data:`MAX_QUEUED_TOTAL` bytes.
  Records beyond that are not queued: the queue is dropped, and once the push in flight
  is done the peer is sent the log (``push_log``), on which it pulls everything it lacks.
  Nothing is lost: every record stays in its author's log.
- **Logs**: ``push_log`` tells a peer of a log (and its addresses); a push of records
  the peer refuses as an ``unknown_log`` sends the log first and tries again.
- **Replicators**: :meth:`Pusher.add_replicator` gives a peer the service key (never the
  read key) with each of the thread's logs.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from threadkit.core.identity import peer_id_bytes
from threadkit.errors import NetworkError, ProtocolError, ThreadkitError
from threadkit.net import protocol as p
from threadkit.net.client import Requester
from threadkit.net.context import ServiceContext

if TYPE_CHECKING:
    from collections.abc import Sequence

    from threadkit.core.ids import ThreadID
    from threadkit.core.records import Record
    from threadkit.store.models import StoredRecord

__all__ = ["MAX_QUEUED_BYTES", "MAX_QUEUED_RECORDS", "MAX_QUEUED_TOTAL", "Pusher", "batch"]

Slot = tuple[str, bytes, str]  # (peer id, thread id bytes, log id)

MAX_QUEUED_RECORDS = 4 * p.MAX_RECORDS
"""Records queued for one (peer, thread, log) while a push to it is in flight."""

MAX_QUEUED_BYTES = 64 * 1024 * 1024
"""Bytes of records queued for one (peer, thread, log) while a push to it is in flight."""

MAX_QUEUED_TOTAL = 128 * 1024 * 1024
"""Bytes of records queued for all peers together (a record queued for two peers counts twice)."""


def batch(records: Sequence[Record | StoredRecord]) -> int:
    """How many of ``records`` (at least one) the next ``push_records`` carries.

    At most ``MAX_RECORDS`` records and ``MAX_PUSH_BYTES`` bytes, unless the first record
    alone is larger.
    """
    size = 0
    for count, record in enumerate(records[: p.MAX_RECORDS]):
        size += record.blocks.total_size()
        if size > p.MAX_PUSH_BYTES and count:
            return count
    return min(len(records), p.MAX_RECORDS)


class Pusher:
    """Pushes records and logs to peers.

    Parameters
    ----------
    ctx : ServiceContext
        The service's shared state.
    client : Requester
        Sends the requests.
    """

    def __init__(self, ctx: ServiceContext, client: Requester) -> None:
        self.ctx = ctx
        self.client = client
        self._outbox: dict[Slot, list[Record]] = defaultdict(list)
        self._bytes: dict[Slot, int] = defaultdict(int)  # bytes queued per slot
        self._total = 0  # bytes queued in all slots
        self._behind: set[Slot] = set()  # slots whose peer is sent the log instead
        self._sending: set[Slot] = ctx.stats.sending  # read as ``stats.pushing``
        self._outbox_lock = threading.Lock()
        self.overflows = 0
        """Times a queue overflowed and its peer was left to pull (for tests and stats)."""

    def enqueue(
        self, peer_id: str, thread_id: ThreadID, log_id: str, records: list[Record]
    ) -> None:
        """Queue records for a peer; start its sender unless one is already draining.

        Callable from any thread.
        """
        slot = (peer_id, thread_id.to_bytes(), log_id)
        size = sum(r.blocks.total_size() for r in records)
        with self._outbox_lock:
            if slot not in self._behind:
                queued = self._outbox[slot]
                if (
                    len(queued) + len(records) > MAX_QUEUED_RECORDS
                    or self._bytes[slot] + size > MAX_QUEUED_BYTES
                    or self._total + size > MAX_QUEUED_TOTAL
                ):  # the peer is slower than the writer: it will pull instead
                    self._drop(slot)
                    self._behind.add(slot)
                    self.overflows += 1
                else:
                    queued.extend(records)
                    self._bytes[slot] += size
                    self._total += size
            if slot in self._sending:
                return
            self._sending.add(slot)
        self.ctx.node.spawn(self._drain, slot, thread_id)

    def queued_bytes(self) -> int:
        """Bytes of records queued for all peers (a record queued for two counts twice)."""
        return self._total

    def _drop(self, slot: Slot) -> None:
        """Forget a slot's queue (the caller holds the lock)."""
        self._outbox.pop(slot, None)
        self._total -= self._bytes.pop(slot, 0)

    def send_to_peers(self, thread_id: ThreadID, log_id: str, records: list[Record]) -> None:
        """Queue records for every peer of the thread."""
        for peer_id in self.ctx.peers_of(thread_id):
            self.enqueue(peer_id, thread_id, log_id, records)

    async def _drain(self, slot: Slot, thread_id: ThreadID) -> None:
        peer_id, _, log_id = slot
        while True:
            behind = False
            with self._outbox_lock:
                queued = self._outbox.get(slot)
                if not queued:
                    self._drop(slot)
                    if slot not in self._behind:
                        self._sending.discard(slot)
                        return
                    self._behind.discard(slot)
                    behind = True
                else:
                    records = queued[: batch(queued)]
                    del queued[: len(records)]
                    size = sum(r.blocks.total_size() for r in records)
                    self._bytes[slot] -= size
                    self._total -= size
            try:
                if behind:  # the peer pulls what was not queued for it
                    await self.push_log(peer_id, thread_id, log_id)
                else:
                    await self.push_records(peer_id, thread_id, log_id, records)
                    self.ctx.stats.pushed += len(records)
            except (NetworkError, ThreadkitError, OSError) as exc:
                # the peer pulls what it missed when it is back (periodic pull)
                self.ctx.stats.error(f"push to {peer_id}: {exc}")
                with self._outbox_lock:
                    self._drop(slot)
                    self._behind.discard(slot)
                    self._sending.discard(slot)
                return

    async def push_records(
        self,
        peer_id: str,
        thread_id: ThreadID,
        log_id: str,
        records: Sequence[Record | StoredRecord],
    ) -> None:
        """One ``push_records`` call; an ``unknown_log`` refusal sends the log, then retries.

        Raises
        ------
        NetworkError
            The push failed (``ProtocolError`` when the peer refused it).
        """
        key = self.ctx.key(thread_id)
        request = {
            "t": "push_records",
            "thread": thread_id.to_bytes(),
            "auth": p.auth_token(key.service, thread_id.to_bytes(), peer_id_bytes(peer_id)),
            "log": peer_id_bytes(log_id),
            "records": [p.blocks_to_node(r.blocks) for r in records],
        }
        try:
            await self.client.request(peer_id, request)
        except ProtocolError as exc:
            if exc.code != "unknown_log":
                raise
            await self.push_log(peer_id, thread_id, log_id)
            await self.client.request(peer_id, request)

    async def push_log(
        self, peer_id: str, thread_id: ThreadID, log_id: str, with_key: bool = False
    ) -> None:
        """Tell a peer of a log; ``with_key`` sends the service key (to a replicator).

        Raises
        ------
        NetworkError
            The call failed or the peer refused it.
        """
        key = self.ctx.key(thread_id)
        entry = self.ctx.log_entry(thread_id, log_id)
        request: dict[str, Any] = {
            "t": "push_log",
            "thread": thread_id.to_bytes(),
            "log": entry.to_node(),
        }
        if with_key:
            request["skey"] = key.service
        else:
            request["auth"] = p.auth_token(
                key.service, thread_id.to_bytes(), peer_id_bytes(peer_id)
            )
        await self.client.request(peer_id, request)

    async def announce(self, thread_id: ThreadID, log_id: str) -> None:
        """Tell the thread's peers this peer's (maybe new) addresses; they pull from it."""
        for peer_id in self.ctx.peers_of(thread_id):
            try:
                await self.push_log(peer_id, thread_id, log_id)
            except (NetworkError, ThreadkitError, OSError) as exc:
                self.ctx.stats.error(f"announce to {peer_id}: {exc}")

    async def add_replicator(self, thread_id: ThreadID, addr: str) -> str:
        """Connect to ``addr`` and push it every log of the thread with the service key.

        Returns
        -------
        str
            The replicator's peer id.
        """
        ctx = self.ctx
        await ctx.node.connect(addr)
        peer_id = addr.rsplit("/p2p/", 1)[1]
        db = ctx.manager.get_db(thread_id)
        ctx.repo.add_addrs(thread_id, db.log_id, [addr])
        ctx.forget_peers(thread_id)
        for info in ctx.repo.list_logs(thread_id):
            await self.push_log(peer_id, thread_id, info.id, with_key=True)
        return peer_id
