"""The thread service: replicating logs between peers (docs/design.md §5, docs/protocol.md).

It runs on the node's trio loop. Database work (LMDB, decryption, the reducer) runs in
worker threads (``trio.to_thread``) so the loop keeps serving while records apply; a
received batch of a few records that can apply without waiting is applied on the loop
(:mod:`threadkit.net.receive`).
:class:`ThreadService` is the facade the peer uses; each job lives in its own module:

- :mod:`threadkit.net.serve` — **handlers** answer the five calls of ``/threadkit/1.1.0``
  (many per stream) and ``/threadkit/1.0.0`` (one per stream, for older peers);
- :mod:`threadkit.net.receive` — every received record is checked with ``open_record``
  (CIDs, decryption under the service key, signature by the log's key) and then chained
  and applied through ``Database.apply_records``, or, on a replicator (service key
  only), just chained into its log;
- :mod:`threadkit.net.push` — **push**: a local commit queues its record for every peer
  of the thread; one sender task per (peer, thread, log) drains the queue in batches;
- :mod:`threadkit.net.pull` — **pull**: joining, a gap seen in a push, and a periodic
  timer pull missing records (``get_logs`` then ``get_records`` from the counters this
  peer holds), one pull per (peer, thread) at a time;
- :mod:`threadkit.net.gossip` — records also published on the thread's GossipSub topic;
- :mod:`threadkit.net.bare` — threads without a database (ThreadDB's Net API);
- :mod:`threadkit.net.client` — outbound requests, on the long-lived streams of
  :mod:`threadkit.net.streams`; :mod:`threadkit.net.context` — the state the parts share
  (keys, peers, counters).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from threadkit.core.addr import ThreadAddr, parse_addr
from threadkit.errors import NodeClosed
from threadkit.net import protocol as p
from threadkit.net.bare import BareThreads
from threadkit.net.client import Requester
from threadkit.net.context import RecordListener, ServiceContext, SyncStats, peer_id_str
from threadkit.net.gossip import Gossip
from threadkit.net.gossip import topic as _topic
from threadkit.net.pull import Puller, PullSettings
from threadkit.net.push import Pusher
from threadkit.net.receive import Receiver
from threadkit.net.serve import Server
from threadkit.net.streams import StreamPool, idle_timeout_for
from threadkit.net.sync import Syncer

if TYPE_CHECKING:
    from threadkit.core.ids import ThreadID
    from threadkit.core.keys import ThreadKey
    from threadkit.core.records import Record
    from threadkit.db.database import Database
    from threadkit.db.manager import Manager
    from threadkit.db.sync import SyncSummary
    from threadkit.net.lan import LanDiscovery
    from threadkit.net.node import Node
    from threadkit.store.repo import Repo

__all__ = ["DEFAULT_PULL_INTERVAL", "DEFAULT_TIMEOUT", "SyncStats", "ThreadService"]

DEFAULT_PULL_INTERVAL = 10.0
"""Seconds between periodic pulls."""

DEFAULT_TIMEOUT = 10.0
"""Seconds a single request may take."""

_peer_id_str = peer_id_str  # kept under its old name: threadkit.api.server imports it


class ThreadService:
    """Replicates the threads of one repo over a node.

    Parameters
    ----------
    node : Node
        The started libp2p node.
    repo : Repo
        The peer's repo.
    manager : Manager
        The peer's databases.
    pulling : PullSettings, optional
        The periodic pull and the size of each ``get_records`` (default threadsd's:
        :class:`threadkit.net.pull.PullSettings`).
    timeout : float
        Seconds a single request may take.
    accept_replication : bool or frozenset of str
        Which peers may make this peer a replicator of their threads (``push_log``
        with the service key): True any, False none, a set of peer ids only those.
    stream_idle_timeout : float, optional
        Seconds an unused stream to a peer stays open (default: from the node's
        connection limits, :func:`threadkit.net.streams.idle_timeout_for`). Inbound
        streams are closed after twice as long without a request.
    """

    def __init__(
        self,
        node: Node,
        repo: Repo,
        manager: Manager,
        *,
        pulling: PullSettings | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        accept_replication: bool | frozenset[str] = True,
        stream_idle_timeout: float | None = None,
    ) -> None:
        self.node = node
        self.repo = repo
        self.manager = manager
        self.pulling = pulling or PullSettings()
        self.timeout = timeout
        self.accept_replication = accept_replication
        ctx = self._ctx = ServiceContext(node, repo, manager, timeout=timeout)
        self.stats: SyncStats = ctx.stats
        if stream_idle_timeout is None:
            stream_idle_timeout = idle_timeout_for(node.conn_limits)
        self.stream_idle_timeout = stream_idle_timeout
        self._client = Requester(ctx, idle_timeout=stream_idle_timeout)
        self._pusher = Pusher(ctx, self._client)
        self._receiver = Receiver(ctx, self._pusher.enqueue, self._pull_later)
        self._puller = Puller(
            ctx, self._client, self._receiver, self._pusher, self.attach, self.pulling
        )
        self._gossip = Gossip(ctx, self._receiver)
        self._syncer = Syncer(ctx, self._client, self._puller, self._pusher)
        self._bare = BareThreads(ctx, self._receiver, self._pusher, self._puller)
        self._server = Server(
            ctx,
            self._receiver,
            self._pull_later,
            accept_replication=accept_replication,
            idle_timeout=2 * stream_idle_timeout,
        )
        self._unsubscribe: list[Callable[[], None]] = []
        self._attached: set[ThreadID] = set()
        """Databases whose commits are pushed (each attached once)."""

    @property
    def streams(self) -> StreamPool:
        """The long-lived streams to other peers (``open_streams()``, ``stats``)."""
        return self._client.pool

    def _pull_later(self, peer_id: str, thread_id: ThreadID) -> None:
        self._puller.pull_later(peer_id, thread_id)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Serve the protocol, watch every database's commits, start the periodic pull."""
        self.node.set_handler(p.PROTOCOL_ID_PERSISTENT, self._server.handle_persistent)
        self.node.set_handler(p.PROTOCOL_ID, self._server.handle)
        for db in self.manager.list_dbs():
            self.attach(db)
            self.node.spawn(self._pusher.announce, db.id, db.log_id)
            self.node.spawn(self._puller.backfill.resume, db)  # a check cut short by a stop
        self.manager.on_new_db(self.attach)
        if self.pulling.enabled:
            self.node.spawn(self._puller.pull_loop)

    def stop(self) -> None:
        """Stop watching commits (the node is stopped by its owner)."""
        self._ctx.stopped = True
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        self._attached.clear()
        if self.node.running:  # close idle streams politely before the node goes
            with contextlib.suppress(NodeClosed):
                self.node.spawn(self._client.pool.close)

    def attach(self, db: Database) -> None:
        """Push every future commit of ``db`` to its peers; advertise this peer's address."""
        if self._ctx.stopped or db.id in self._attached:
            return
        self._attached.add(db.id)
        db.history_source = self._puller.backfill.source  # snapshot checks (net/backfill.py)
        self._unsubscribe.append(db.on_record(self._on_local_record))
        self._set_own_addrs(db)
        if self.node.pubsub_enabled:
            self.node.spawn(self._gossip.subscribe, db.id)

    def _set_own_addrs(self, db: Database) -> None:
        # this peer's old addresses (another port before a restart) go; replicators stay
        self._ctx.refresh_own_addrs(db.id)

    def thread_addrs(self, thread_id: ThreadID) -> list[str]:
        """Addresses other peers can join the thread at (``…/p2p/<me>/thread/<id>``).

        Only dialable ones: wildcard binds expanded (or the announce addresses), and no
        loopback once the thread is shared beyond this host (docs/networking.md).
        """
        return [f"{addr}/thread/{thread_id}" for addr in self._ctx.own_addrs(thread_id)]

    # ------------------------------------------------------------- the sync API

    def join(
        self,
        addr: str,
        key: ThreadKey,
        name: str | None = None,
        timeout: float | None = None,
        pull: bool = True,
        trust: frozenset[str] | None = None,
    ) -> Database:
        """Join a database at a thread address: pull its logs and records; returns it ready.

        With ``pull`` False, returns once the database exists here; its records are
        pulled in the background. ``trust``: start from a snapshot by one of these keys.
        """
        target = ThreadAddr.parse(addr)
        result: Database = self.node.call(
            self._puller.join, target, key, name, pull, trust, timeout=timeout or self.timeout * 3
        )
        return result

    def join_lan(
        self,
        lan: LanDiscovery | None,
        thread_id: ThreadID,
        key: ThreadKey,
        name: str | None = None,
        timeout: float | None = None,
        pull: bool = True,
    ) -> Database:
        """Join a database by thread id alone, through a LAN peer mDNS found (:mod:`.lan`)."""
        from threadkit.net.lan import join_on_lan

        limit = timeout or self.timeout * 3

        async def join(target: ThreadAddr) -> Database:
            return await self._puller.join(target, key, name, pull)

        result: Database = self.node.call(
            join_on_lan, lan, thread_id, join, limit, timeout=limit + 5.0
        )
        return result

    def sync(self, thread_id: ThreadID, timeout: float | None = None) -> SyncSummary:
        """Pull from and push to every peer of the thread; see :mod:`threadkit.net.sync`."""
        limit = timeout or self.timeout * 3
        # the sync stops itself at ``limit``; the 5 s more let it report who was late
        result: SyncSummary = self.node.call(
            self._syncer.sync, thread_id, limit, timeout=limit + 5.0
        )
        return result

    def unreachable(self) -> list[dict[str, object]]:
        """Peers whose last dial failed (:meth:`threadkit.net.reach.Reachability.unreachable`)."""
        return self._ctx.reach.unreachable()

    def pull_thread(self, thread_id: ThreadID, timeout: float | None = None) -> int:
        """Pull from every peer of the thread now; returns how many records came in."""
        count: int = self.node.call(
            self._puller.pull_all, thread_id, timeout=timeout or self.timeout * 3
        )
        return count

    def add_replicator(self, db: Database, addr: str, timeout: float | None = None) -> str:
        """Give a peer the thread's service key (never the read key) and its logs to keep."""
        peer_addr = str(parse_addr(addr))
        result: str = self.node.call(
            self._pusher.add_replicator, db.id, peer_addr, timeout=timeout or self.timeout * 3
        )
        return result

    def on_record(self, listener: RecordListener) -> Callable[[], None]:
        """Call ``listener(thread_id, log_id, record)`` for every new record, local or received."""
        listeners = self._ctx.record_listeners
        listeners.append(listener)

        def remove() -> None:
            if listener in listeners:
                listeners.remove(listener)

        return remove

    def edges(self, thread_id: ThreadID) -> tuple[bytes, bytes]:
        """8-byte digests of the thread's log addresses and of its heads (docs/protocol.md)."""
        return self._ctx.edges(thread_id)

    @staticmethod
    def topic(thread_id: ThreadID) -> str:
        """The GossipSub topic of a thread."""
        return _topic(thread_id)

    # ---------------------------------------------------------------- pushing

    def _on_local_record(self, db: Database, record: Record) -> None:
        if self._ctx.stopped:
            return
        self._pusher.send_to_peers(db.id, db.log_id, [record])
        if self.node.pubsub_enabled:
            self.node.spawn(self._gossip.publish, db.id, db.log_id, [record])
        self._ctx.notify(db.id, db.log_id, [record])

    # ------------------------------------------------- threads without a database

    def add_thread(self, addr: str, key: ThreadKey, timeout: float | None = None) -> ThreadID:
        """ThreadDB's AddThread: keep a thread (no database) served at ``addr``; pull its logs."""
        return self._bare.add_thread(addr, key, timeout)

    def new_thread(self, thread_id: ThreadID, key: ThreadKey) -> str | None:
        """Store a thread without a database, with this peer's own log when it can read."""
        return self._bare.new_thread(thread_id, key)

    def own_log(self, thread_id: ThreadID) -> str | None:
        """The id of this peer's own log in a thread (the one it holds the private key of)."""
        return self._bare.own_log(thread_id)

    def create_record(self, thread_id: ThreadID, body: bytes) -> Record:
        """ThreadDB's CreateRecord: append ``body`` (a DAG-CBOR node) to this peer's own log."""
        return self._bare.create_record(thread_id, body)

    def add_record(self, thread_id: ThreadID, log_id: str, record: Record) -> None:
        """ThreadDB's AddRecord: a record made elsewhere with its log's own keys."""
        self._bare.add_record(thread_id, log_id, record)
