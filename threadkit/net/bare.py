"""Threads without a database: ThreadDB's Net API (AddThread, CreateRecord, AddRecord).

A bare thread is a set of logs this peer replicates without reading them as documents:
a replicator's threads (service key only), and threads made through the Net API, where
records carry any DAG-CBOR body. They replicate like a database's logs: pushed to the
thread's peers, pulled on join, on gaps and periodically.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from threadkit.core.addr import ThreadAddr
from threadkit.core.identity import PublicKey
from threadkit.errors import NotFound
from threadkit.net.context import ServiceContext
from threadkit.net.pull import Puller
from threadkit.net.push import Pusher
from threadkit.net.receive import Receiver

if TYPE_CHECKING:
    from threadkit.core.ids import ThreadID
    from threadkit.core.keys import ThreadKey
    from threadkit.core.records import Record

__all__ = ["BareThreads"]


class BareThreads:
    """Keeps threads without a database and appends records to them.

    Parameters
    ----------
    ctx : ServiceContext
        The service's shared state.
    receiver : Receiver
        Checks and keeps records added from elsewhere.
    pusher : Pusher
        Sends new records and this peer's log to the thread's peers.
    puller : Puller
        Pulls a thread's logs and records when it is added.
    """

    def __init__(
        self, ctx: ServiceContext, receiver: Receiver, pusher: Pusher, puller: Puller
    ) -> None:
        self.ctx = ctx
        self.receiver = receiver
        self.pusher = pusher
        self.puller = puller

    def add_thread(self, addr: str, key: ThreadKey, timeout: float | None = None) -> ThreadID:
        """ThreadDB's AddThread: keep a thread (no database) served at ``addr``; pull its logs."""
        target = ThreadAddr.parse(addr)
        result: ThreadID = self.ctx.node.call(
            self._add_thread, target, key, timeout=timeout or self.ctx.timeout * 3
        )
        return result

    async def _add_thread(self, target: ThreadAddr, key: ThreadKey) -> ThreadID:
        ctx = self.ctx
        await ctx.node.connect(target.peer_addr)
        thread_id = target.thread_id
        reply = await self.puller.get_logs(target.peer_id, thread_id, key)
        if not ctx.repo.has_thread(thread_id):
            if key.can_read:
                ctx.check_log_count(thread_id, reply)
                await self.puller.check_read_key(target.peer_id, thread_id, key, reply)
            self.new_thread(thread_id, key)
        ctx.store_logs(thread_id, reply)
        own = self.own_log(thread_id)
        if own is not None:
            await self.pusher.push_log(target.peer_id, thread_id, own)
        await self.puller.pull(target.peer_id, thread_id)
        return thread_id

    def new_thread(self, thread_id: ThreadID, key: ThreadKey) -> str | None:
        """Store a thread without a database, with this peer's own log when it can read."""
        from threadkit.core.identity import Identity

        ctx = self.ctx
        ctx.repo.add_thread(thread_id, key)
        if not key.can_read:
            return None
        log_key = Identity.generate()
        ctx.repo.add_log(thread_id, log_key.public, log_key, ctx.node.addrs)
        ctx.forget_peers(thread_id)
        return log_key.public.peer_id

    def own_log(self, thread_id: ThreadID) -> str | None:
        """The id of this peer's own log in a thread (the one it holds the private key of)."""
        for info in self.ctx.repo.list_logs(thread_id):
            if info.private is not None:
                return info.id
        return None

    def create_record(self, thread_id: ThreadID, body: bytes) -> Record:
        """ThreadDB's CreateRecord: append ``body`` (a DAG-CBOR node) to this peer's own log."""
        from threadkit.core.records import create_record

        ctx = self.ctx
        log_id = self.own_log(thread_id)
        if log_id is None:
            raise NotFound(f"this peer has no log of its own in thread {thread_id}")
        info = ctx.repo.get_log(thread_id, log_id)
        assert info.private is not None
        record = create_record(body, log_key=info.private, key=ctx.key(thread_id), prev=info.head)
        ctx.repo.append(thread_id, log_id, record)
        self.pusher.send_to_peers(thread_id, log_id, [record])
        ctx.notify(thread_id, log_id, [record])
        return record

    def add_record(self, thread_id: ThreadID, log_id: str, record: Record) -> None:
        """ThreadDB's AddRecord: a record made elsewhere with its log's own keys."""
        from threadkit.core.records import RecordBlocks

        ctx = self.ctx
        try:
            ctx.repo.get_log(thread_id, log_id)
        except NotFound:
            ctx.repo.add_log(thread_id, PublicKey.from_peer_id(log_id))
            ctx.forget_peers(thread_id)
        blocks: RecordBlocks = record.blocks
        ctx.node.call(
            self.receiver.receive,
            ctx.node.peer_id,
            thread_id,
            log_id,
            [blocks],
            timeout=ctx.timeout,
        )
        self.pusher.send_to_peers(thread_id, log_id, [record])
