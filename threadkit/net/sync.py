"""``db.sync()``: pull from and push to every peer of a thread, and wait until done.

With each of the thread's peers at once (peers known from its logs' addresses, replicators
included): dial it (its backoff does not apply: this is an explicit request), pull what
it has and this peer lacks (waiting for a pull already under way first), then ask for its
logs' counters (``get_logs``) and push each record it lacks, oldest first, in batches.
When that is done with every peer, both sides hold the same heads for every log the two
of them know — unless someone wrote meanwhile. The result is a
:class:`~threadkit.db.sync.SyncSummary`; peers that did not answer within the timeout, or
could not be reached, make it raise :class:`~threadkit.errors.SyncTimeout` naming them
(with the summary of the others).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from threadkit.db.sync import PeerSync, SyncSummary
from threadkit.errors import NetworkError, SyncTimeout, ThreadkitError
from threadkit.net import protocol as p
from threadkit.net.client import Requester
from threadkit.net.context import ServiceContext, peer_id_str
from threadkit.net.pull import Puller
from threadkit.net.push import Pusher, batch

if TYPE_CHECKING:
    from threadkit.core.ids import ThreadID

__all__ = ["Syncer"]


class Syncer:
    """Runs ``db.sync`` on the node's loop.

    Parameters
    ----------
    ctx : ServiceContext
        The service's shared state.
    client : Requester
        Sends the requests.
    puller : Puller
        Pulls from each peer.
    pusher : Pusher
        Sends logs a peer does not know yet.
    """

    def __init__(
        self, ctx: ServiceContext, client: Requester, puller: Puller, pusher: Pusher
    ) -> None:
        self.ctx = ctx
        self.client = client
        self.puller = puller
        self.pusher = pusher

    async def sync(self, thread_id: ThreadID, timeout: float) -> SyncSummary:
        """Sync with every peer of the thread at once; wait at most ``timeout`` seconds.

        Raises
        ------
        SyncTimeout
            Some peers did not answer in time or could not be reached (their ids and
            reasons in ``unanswered``; what moved with the others in ``summary``).
        """
        import trio

        done: dict[str, PeerSync] = {}
        failed: dict[str, str] = {}

        async def one(peer_id: str) -> None:
            try:
                done[peer_id] = await self.sync_peer(peer_id, thread_id)
            except (NetworkError, ThreadkitError, OSError) as exc:
                failed[peer_id] = str(exc)
                self.ctx.stats.error(f"sync with {peer_id}: {exc}")

        peers = list(self.ctx.peers_of(thread_id))
        with trio.move_on_after(timeout):
            async with trio.open_nursery() as nursery:
                for peer_id in peers:
                    nursery.start_soon(one, peer_id)
        for peer_id in peers:
            if peer_id not in done and peer_id not in failed:
                failed[peer_id] = f"no answer within {timeout:g} s"
        summary = SyncSummary({peer: done[peer] for peer in peers if peer in done})
        if failed:
            names = "; ".join(f"{peer}: {why}" for peer, why in failed.items())
            raise SyncTimeout(
                f"{len(failed)} of {len(peers)} peers did not answer: {names}", failed, summary
            )
        return summary

    async def sync_peer(self, peer_id: str, thread_id: ThreadID) -> PeerSync:
        """Pull from one peer, then push it every record it lacks."""
        ctx = self.ctx
        await ctx.dial(peer_id, ctx.addrs_of(thread_id, peer_id), force=True)
        pulled = await self.puller.pull_after_current(peer_id, thread_id)
        reply = await self.puller.get_logs(peer_id, thread_id, ctx.key(thread_id))
        theirs: dict[str, int] = {}
        for item in p._list(reply.get("logs", []), "logs"):
            entry = p.LogEntry.from_node(item)
            theirs[peer_id_str(entry.id)] = entry.counter
        pushed = 0
        for info in ctx.repo.list_logs(thread_id):
            after = theirs.get(info.id, 0)
            if info.counter > after:
                pushed += await self._push_log(peer_id, thread_id, info.id, after)
        ctx.stats.pushed += pushed
        ctx.stats.last_sync = time.time()
        return PeerSync(peer_id, pulled=pulled, pushed=pushed)

    async def _push_log(self, peer_id: str, thread_id: ThreadID, log_id: str, after: int) -> int:
        """Push the records of one log after counter ``after``; returns how many."""
        sent = 0
        while True:
            stored = self.ctx.repo.read_log(thread_id, log_id, after=after, limit=p.MAX_RECORDS)
            if not stored:
                return sent
            records = stored[: batch(stored)]
            await self.pusher.push_records(peer_id, thread_id, log_id, records)
            sent += len(records)
            after += len(records)
