"""What the parts of the thread service share: the node, the repo, keys, peers, counters.

:class:`ServiceContext` is handed to every part of :class:`~threadkit.net.service.ThreadService`
(serving, pushing, pulling, gossip, threads without a database). It holds no network
logic of its own: thread keys, the peers of a thread (from its logs' addresses, cached),
merging log entries received from peers, the edge digests of ``exchange_edges``, the
listeners of new records, and the counters in :class:`SyncStats`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from threadkit.core.addr import addr_from_bytes, addr_to_bytes
from threadkit.core.identity import PublicKey, peer_id_bytes
from threadkit.core.ids import ThreadID
from threadkit.errors import (
    DBNotFound,
    NotFound,
    PeerUnreachable,
    ProtocolError,
    ThreadkitError,
    TooManyLogs,
)
from threadkit.net import protocol as p
from threadkit.net.addrs import is_loopback
from threadkit.net.budget import FrameBudget
from threadkit.net.reach import Reachability

if TYPE_CHECKING:
    from threadkit.core.keys import ThreadKey
    from threadkit.core.records import Record
    from threadkit.db.manager import Manager
    from threadkit.net.node import Node
    from threadkit.store.repo import Repo

__all__ = [
    "RecordListener",
    "ServiceContext",
    "SyncStats",
    "peer_id_str",
    "text_or_none",
    "thread_id_from",
]

RecordListener = Callable[["ThreadID", str, "Record"], None]
"""``listener(thread_id, log_id, record)``, called for every new record, local or received."""


@dataclass
class SyncStats:
    """Counters of what the service did (for the peer-status widget and tests)."""

    pushed: int = 0
    received: int = 0
    rejected: int = 0
    pulls: int = 0
    receiving: int = 0
    """Batches of received records being checked and applied right now."""
    sending: set[Any] = field(default_factory=set)
    """The queues (peer, thread, log) being pushed right now: the pusher's own set."""
    errors: list[str] = field(default_factory=list)
    last_sync: float | None = None

    @property
    def pushing(self) -> int:
        """Queues of committed records (one per peer and log) being pushed right now; a push
        that fails ends its queue, so 0 means no commit waits to reach any peer."""
        return len(self.sending)

    def error(self, text: str) -> None:
        """Remember an error (the last 50)."""
        self.errors.append(text)
        del self.errors[:-50]


class ServiceContext:
    """The state the service's parts share.

    Parameters
    ----------
    node : Node
        The started libp2p node.
    repo : Repo
        The peer's repo.
    manager : Manager
        The peer's databases.
    timeout : float
        Seconds a single request may take.
    """

    def __init__(self, node: Node, repo: Repo, manager: Manager, *, timeout: float) -> None:
        self.node = node
        self.repo = repo
        self.manager = manager
        self.timeout = timeout
        self.stats = SyncStats()
        self.frames = FrameBudget()
        """Bytes of frames under way, inbound requests and replies alike (per peer, total)."""
        self.reach = Reachability()
        """Dial failures and backoff per peer (:mod:`threadkit.net.reach`)."""
        self.me = peer_id_bytes(node.peer_id)
        """This peer's id as bytes: the receiver that ``auth`` proofs are checked against."""
        self.stopped = False
        self.record_listeners: list[RecordListener] = []
        self._peer_cache: dict[ThreadID, list[str]] = {}

    # ------------------------------------------------------------------ keys

    def key(self, thread_id: ThreadID) -> ThreadKey:
        """The thread's key (``NotFound`` for an unknown thread)."""
        return self.repo.get_thread(thread_id).key

    def known_key(self, thread_id: ThreadID) -> ThreadKey:
        """The thread's key; ``ProtocolError("unknown_thread")`` for a thread not kept here."""
        try:
            return self.key(thread_id)
        except NotFound:
            raise ProtocolError(f"unknown thread {thread_id}", code="unknown_thread") from None

    def db_name(self, thread_id: ThreadID) -> str | None:
        """The name of the thread's database, or None for a thread without one."""
        try:
            return self.manager.get_db(thread_id).name
        except DBNotFound:
            return None

    # ----------------------------------------------------------------- peers

    def peers_of(self, thread_id: ThreadID) -> list[str]:
        """Peer ids of the thread's other peers, from its logs' addresses (cached)."""
        cached = self._peer_cache.get(thread_id)
        if cached is not None:
            return cached
        peers: dict[str, None] = {}
        for info in self.repo.list_logs(thread_id):
            for addr in info.addrs:
                peer = addr.rsplit("/p2p/", 1)[-1]
                if peer and peer != self.node.peer_id:
                    peers[peer] = None
        result = self._peer_cache[thread_id] = list(peers)
        return result

    def forget_peers(self, thread_id: ThreadID) -> None:
        """Drop the cached peers of a thread (its logs' addresses changed)."""
        self._peer_cache.pop(thread_id, None)

    def own_addrs(self, thread_id: ThreadID) -> list[str]:
        """This peer's addresses as it advertises them for one thread.

        The node's addresses, without the loopback ones once the thread is shared beyond
        this host (:func:`threadkit.net.addrs.scoped`).
        """
        from threadkit.net.addrs import scoped

        suffix = "/p2p/" + self.node.peer_id
        others = [
            addr
            for info in self.repo.list_logs(thread_id)
            for addr in info.addrs
            if not addr.endswith(suffix)
        ]
        return scoped(self.node.addrs, others)

    def refresh_own_addrs(self, thread_id: ThreadID) -> None:
        """Put :meth:`own_addrs` on each of this peer's own logs of the thread.

        Other addresses on those logs (replicators') stay; this peer's old ones go.
        """
        suffix = "/p2p/" + self.node.peer_id
        mine = self.own_addrs(thread_id)
        for info in self.repo.list_logs(thread_id):
            if info.private is None:
                continue
            wanted = [a for a in info.addrs if not a.endswith(suffix)] + mine
            if wanted != list(info.addrs):
                self.repo.set_addrs(thread_id, info.id, wanted)
                self.forget_peers(thread_id)

    async def dial(self, peer_id: str, addrs: list[str], *, force: bool = False) -> None:
        """Make sure there is a connection to ``peer_id``, minding its backoff.

        Runs on the node's loop. A peer whose dials failed lately is not dialled again
        before its backoff ends (unless ``force``): :class:`PeerUnreachable` at once.

        Raises
        ------
        PeerUnreachable
            No connection could be made, or the peer is in its backoff.
        """
        if peer_id in self.node.connected_peers():
            return
        wait = 0.0 if force else self.reach.wait_left(peer_id)
        if wait > 0:
            raise PeerUnreachable(
                f"peer {peer_id} is unreachable ({self.reach.last_error(peer_id)}); "
                f"next try in {wait:.0f} s"
            )
        try:
            await self.node.connect_peer(peer_id, addrs)
        except PeerUnreachable as exc:
            self.reach.failed(peer_id, str(exc))
            raise
        self.reach.succeeded(peer_id)

    def addrs_of(self, thread_id: ThreadID, peer_id: str) -> list[str]:
        """The addresses of ``peer_id`` that the thread's logs know."""
        return [
            addr
            for info in self.repo.list_logs(thread_id)
            for addr in info.addrs
            if addr.endswith("/p2p/" + peer_id)
        ]

    # ------------------------------------------------------------------ logs

    def notify(self, thread_id: ThreadID, log_id: str, records: Iterable[Record]) -> None:
        """Call the record listeners for each of ``records``."""
        for record in records:
            for listener in list(self.record_listeners):
                listener(thread_id, log_id, record)

    def log_entry(self, thread_id: ThreadID, log_id: str) -> p.LogEntry:
        """A log as this peer describes it to others."""
        info = self.repo.get_log(thread_id, log_id)
        return p.LogEntry(
            peer_id_bytes(log_id),
            info.public.to_bytes(),
            tuple(addr_to_bytes(a) for a in info.addrs),
            info.counter,
        )

    def log_entries(self, thread_id: ThreadID) -> list[dict[str, Any]]:
        """Every log of a thread, as ``get_logs`` replies with them."""
        entries = []
        for info in self.repo.list_logs(thread_id):
            entry = p.LogEntry(
                peer_id_bytes(info.id),
                info.public.to_bytes(),
                tuple(addr_to_bytes(a) for a in info.addrs),
                info.counter,
            )
            entries.append(entry.to_node())
        return entries

    def merge_log(self, thread_id: ThreadID, entry: p.LogEntry) -> None:
        """Add a log a peer told of, or the addresses it gave for a known one."""
        log_id = peer_id_str(entry.id)
        public = PublicKey.from_bytes(entry.pub)
        if public.peer_id != log_id:
            raise ProtocolError(f"log {log_id} comes with another log's key", code="malformed")
        addrs = [addr_from_bytes(a) for a in entry.addrs]
        self.forget_peers(thread_id)
        try:
            known = set(self.repo.get_log(thread_id, log_id).addrs)
        except NotFound:
            known = set()
            self.repo.add_log(thread_id, public, None, addrs)
        else:
            if addrs:
                self.repo.add_addrs(thread_id, log_id, addrs)
        new = [a for a in addrs if a not in known]
        if any(not is_loopback(a) for a in new):
            self.refresh_own_addrs(thread_id)  # maybe now shared beyond this host
        for addr in new:  # a peer at a new address is worth a dial at once
            self.reach.retry_now(addr.rsplit("/p2p/", 1)[-1])

    def store_logs(self, thread_id: ThreadID, reply: dict[str, Any]) -> None:
        """Merge every log entry of a ``get_logs`` reply.

        Logs beyond the most a thread may have (``MAX_LOGS``) are left out, and said so in
        ``stats.errors``; the others are merged.
        """
        refused = 0
        for item in p._list(reply.get("logs", []), "logs"):
            try:
                self.merge_log(thread_id, p.LogEntry.from_node(item))
            except TooManyLogs:
                refused += 1
        if refused:
            self.stats.error(f"thread {thread_id}: {refused} logs left out, the thread is full")

    @staticmethod
    def check_log_count(thread_id: ThreadID, reply: dict[str, Any]) -> None:
        """Refuse to join a thread whose ``get_logs`` reply leaves no room for a log of ours.

        Raises
        ------
        TooManyLogs
            The thread already has ``MAX_LOGS`` logs (nothing has been stored).
        """
        from threadkit.store.logs import MAX_LOGS

        count = len(p._list(reply.get("logs", []), "logs"))
        if count >= MAX_LOGS:
            raise TooManyLogs(
                f"thread {thread_id} has {count} logs, and a thread may have {MAX_LOGS}: "
                "there is no room for this peer's log"
            )

    def edges(self, thread_id: ThreadID) -> tuple[bytes, bytes]:
        """8-byte digests of the thread's log addresses and of its heads (docs/protocol.md)."""
        heads = hashlib.sha256()
        addrs = hashlib.sha256()
        for info in sorted(self.repo.list_logs(thread_id), key=lambda i: peer_id_bytes(i.id)):
            raw = peer_id_bytes(info.id)
            heads.update(raw + info.counter.to_bytes(8, "big"))
            addrs.update(raw + b"".join(sorted(a.encode() for a in info.addrs)))
        return addrs.digest()[:8], heads.digest()[:8]


def peer_id_str(raw: bytes) -> str:
    """A peer id (or log id) from its multihash bytes to its base58 string."""
    import base58

    return str(base58.b58encode(raw).decode())


def thread_id_from(raw: bytes) -> ThreadID:
    """A thread id from bytes received; ``ProtocolError("malformed")`` when invalid."""
    try:
        return ThreadID.from_bytes(raw)
    except ThreadkitError as exc:
        raise ProtocolError(f"bad thread id: {exc}", code="malformed") from None


def text_or_none(value: object) -> str | None:
    """``value`` when it is a string, else None."""
    return value if isinstance(value, str) else None
