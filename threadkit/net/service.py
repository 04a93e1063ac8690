"""The thread service: replicating threads' logs between peers (DESIGN.md §5, docs/protocol.md).

It runs on the node's trio loop. Database work (LMDB, decryption, the reducer) runs in
worker threads (``trio.to_thread``) so the loop keeps serving while records apply.

- **Handlers** answer the five calls of ``/threadkit/1.0.0``; every received record is
  checked with ``open_record`` (CIDs, decryption under the service key, signature by
  the log's key) and then chained and applied through ``Database.apply_records``, or,
  on a replicator (service key only), just chained into its log.
- **Push**: a local commit queues its record for every peer of the thread; one sender
  task per (peer, thread) drains the queue in batches.
- **Pull**: joining, a gap seen in a push, and a periodic timer pull missing records
  (``get_logs`` then ``get_records`` from the counters this peer holds), one pull per
  (peer, thread) at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from threadkit.core.addr import ThreadAddr, addr_from_bytes, addr_to_bytes, parse_addr
from threadkit.core.identity import PublicKey, peer_id_bytes
from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.core.records import Record, open_record
from threadkit.errors import (
    DBNotFound,
    InvalidInput,
    NetworkError,
    NotFound,
    ProtocolError,
    RecordError,
    ThreadkitError,
)
from threadkit.net import protocol as p

if TYPE_CHECKING:
    from threadkit.db.database import Database
    from threadkit.db.manager import Manager
    from threadkit.net.node import Node
    from threadkit.store.repo import Repo

__all__ = ["SyncStats", "ThreadService"]

log = logging.getLogger("threadkit.net")

DEFAULT_PULL_INTERVAL = 10.0
DEFAULT_TIMEOUT = 10.0


@dataclass
class SyncStats:
    """Counters of what the service did (for the peer-status widget and tests)."""

    pushed: int = 0
    received: int = 0
    rejected: int = 0
    pulls: int = 0
    errors: list[str] = field(default_factory=list)
    last_sync: float | None = None

    def error(self, text: str) -> None:
        """Remember an error (the last 50)."""
        self.errors.append(text)
        del self.errors[:-50]


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
    pull_interval : float
        Seconds between periodic pulls (0 disables them).
    timeout : float
        Seconds a single request may take.
    """

    def __init__(
        self,
        node: Node,
        repo: Repo,
        manager: Manager,
        *,
        pull_interval: float = DEFAULT_PULL_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
        accept_replication: bool = True,
    ) -> None:
        self.node = node
        self.repo = repo
        self.manager = manager
        self.pull_interval = pull_interval
        self.timeout = timeout
        self.accept_replication = accept_replication
        self.stats = SyncStats()
        self._me = peer_id_bytes(node.peer_id)
        self._outbox: dict[tuple[str, bytes, str], list[Record]] = defaultdict(list)
        self._sending: set[tuple[str, bytes, str]] = set()
        self._outbox_lock = threading.Lock()
        self._pulling: set[tuple[str, bytes]] = set()
        self._pull_again: set[tuple[str, bytes]] = set()
        self._unsubscribe: list[Callable[[], None]] = []
        self._peer_cache: dict[ThreadID, list[str]] = {}
        self._topics: set[ThreadID] = set()
        self._record_listeners: list[Callable[[ThreadID, str, Record], None]] = []
        self._stopped = False

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Serve the protocol, watch every database's commits, start the periodic pull."""
        self.node.set_handler(p.PROTOCOL_ID, self._handle)
        for db in self.manager.list_dbs():
            self.attach(db)
            self.node.spawn(self._announce, db.id, db.log_id)
        self.manager.on_new_db(self.attach)
        if self.pull_interval > 0:
            self.node.spawn(self._pull_loop)

    def stop(self) -> None:
        """Stop watching commits (the node is stopped by its owner)."""
        self._stopped = True
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        for db in self.manager.list_dbs():
            db.addrs_provider = None

    def attach(self, db: Database) -> None:
        """Push every future commit of ``db`` to its peers; advertise this peer's address."""
        if self._stopped or db.addrs_provider is not None:
            return
        self._unsubscribe.append(db.on_record(self._on_local_record))
        db.addrs_provider = lambda: self.thread_addrs(db.id)
        self._set_own_addrs(db)
        if self.node.pubsub_enabled:
            self.node.spawn(self._subscribe_thread, db.id)

    def _set_own_addrs(self, db: Database) -> None:
        info = self.repo.get_log(db.id, db.log_id)
        suffix = "/p2p/" + self.node.peer_id
        # this peer's old addresses (another port before a restart) go; replicators stay
        others = [a for a in info.addrs if not a.endswith(suffix)]
        wanted = others + list(self.node.addrs)
        if wanted != list(info.addrs):
            self.repo.set_addrs(db.id, db.log_id, wanted)
            self._peer_cache.pop(db.id, None)

    def thread_addrs(self, thread_id: ThreadID) -> list[str]:
        """Addresses other peers can join the thread at (``…/p2p/<me>/thread/<id>``)."""
        return [f"{addr}/thread/{thread_id}" for addr in self.node.addrs]

    # ------------------------------------------------------------- the sync API

    def join(
        self, addr: str, key: ThreadKey, name: str | None = None, timeout: float | None = None
    ) -> Database:
        """Join a database at a thread address: pull its logs and records; returns it ready."""
        target = ThreadAddr.parse(addr)
        result: Database = self.node.call(
            self._join, target, key, name, timeout=timeout or self.timeout * 3
        )
        return result

    def pull_thread(self, thread_id: ThreadID, timeout: float | None = None) -> int:
        """Pull from every peer of the thread now; returns how many records came in."""
        count: int = self.node.call(self._pull_all, thread_id, timeout=timeout or self.timeout * 3)
        return count

    def add_replicator(self, db: Database, addr: str, timeout: float | None = None) -> str:
        """Give a peer the thread's service key (never the read key) and its logs to keep."""
        peer_addr = str(parse_addr(addr))
        result: str = self.node.call(
            self._add_replicator, db.id, peer_addr, timeout=timeout or self.timeout * 3
        )
        return result

    def on_record(self, listener: Callable[[ThreadID, str, Record], None]) -> Callable[[], None]:
        """Call ``listener(thread_id, log_id, record)`` for every new record, local or received."""
        self._record_listeners.append(listener)

        def remove() -> None:
            if listener in self._record_listeners:
                self._record_listeners.remove(listener)

        return remove

    # ---------------------------------------------------------------- pushing

    def _on_local_record(self, db: Database, record: Record) -> None:
        if self._stopped:
            return
        for peer_id in self._peers_of(db.id):
            self._enqueue(peer_id, db.id, db.log_id, [record])
        if self.node.pubsub_enabled:
            self.node.spawn(self._gossip, db.id, db.log_id, [record])
        for listener in list(self._record_listeners):
            listener(db.id, db.log_id, record)

    # ---------------------------------------------------------------- gossip

    @staticmethod
    def topic(thread_id: ThreadID) -> str:
        """The GossipSub topic of a thread."""
        return f"/threadkit/thread/{thread_id}"

    async def _gossip(self, thread_id: ThreadID, log_id: str, records: list[Record]) -> None:
        key = self._key(thread_id)
        message = {
            "v": p.VERSION,
            "t": "push_records",
            "thread": thread_id.to_bytes(),
            "auth": p.auth_token(key.service, thread_id.to_bytes(), b"gossip"),
            "log": peer_id_bytes(log_id),
            "records": [p.blocks_to_node(r.blocks) for r in records],
        }
        await self.node.publish(self.topic(thread_id), p.encode(message))

    async def _subscribe_thread(self, thread_id: ThreadID) -> None:
        if not self.node.pubsub_enabled or thread_id in self._topics:
            return
        self._topics.add(thread_id)

        async def on_message(data: bytes, sender: str) -> None:
            if sender == self.node.peer_id:
                return
            try:
                request = p.decode_request(data)
                tid = _thread_id(request["thread"])
                key = self._known_key(tid)
                if not p.check_auth(request.get("auth"), key.service, tid.to_bytes(), b"gossip"):
                    raise ProtocolError("not authorised for this thread", code="auth")
                if request["t"] != "push_records":
                    raise ProtocolError("only pushes travel by gossip", code="malformed")
                log_id = _peer_id_str(request["log"])
                self.repo.get_log(tid, log_id)
                await self._receive(sender, tid, log_id, request["records"])
            except (ThreadkitError, OSError) as exc:
                log.info("ignored a gossip message from %s: %s", sender, exc)

        await self.node.subscribe(self.topic(thread_id), on_message)

    def _enqueue(
        self, peer_id: str, thread_id: ThreadID, log_id: str, records: list[Record]
    ) -> None:
        """Queue records for a peer; start its sender unless one is already draining."""
        slot = (peer_id, thread_id.to_bytes(), log_id)
        with self._outbox_lock:
            self._outbox[slot].extend(records)
            if slot in self._sending:
                return
            self._sending.add(slot)
        self.node.spawn(self._drain, slot, thread_id)

    async def _drain(self, slot: tuple[str, bytes, str], thread_id: ThreadID) -> None:
        peer_id, _, log_id = slot
        while True:
            with self._outbox_lock:
                queued = self._outbox.get(slot)
                if not queued:
                    self._outbox.pop(slot, None)
                    self._sending.discard(slot)
                    return
                batch = queued[: p.MAX_RECORDS]
                del queued[: len(batch)]
            try:
                await self._push_records(peer_id, thread_id, log_id, batch)
                self.stats.pushed += len(batch)
            except (NetworkError, ThreadkitError, OSError) as exc:
                # the peer pulls what it missed when it is back (periodic pull)
                self.stats.error(f"push to {peer_id}: {exc}")
                with self._outbox_lock:
                    self._outbox.pop(slot, None)
                    self._sending.discard(slot)
                return

    async def _push_records(
        self, peer_id: str, thread_id: ThreadID, log_id: str, records: list[Record]
    ) -> None:
        key = self._key(thread_id)
        request = {
            "t": "push_records",
            "thread": thread_id.to_bytes(),
            "auth": p.auth_token(key.service, thread_id.to_bytes(), peer_id_bytes(peer_id)),
            "log": peer_id_bytes(log_id),
            "records": [p.blocks_to_node(r.blocks) for r in records],
        }
        try:
            await self._request(peer_id, request)
        except ProtocolError as exc:
            if exc.code != "unknown_log":
                raise
            await self._push_log(peer_id, thread_id, log_id)
            await self._request(peer_id, request)

    async def _push_log(
        self, peer_id: str, thread_id: ThreadID, log_id: str, with_key: bool = False
    ) -> None:
        key = self._key(thread_id)
        info = self.repo.get_log(thread_id, log_id)
        entry = p.LogEntry(
            peer_id_bytes(log_id),
            info.public.to_bytes(),
            tuple(addr_to_bytes(a) for a in info.addrs),
            info.counter,
        )
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
        await self._request(peer_id, request)

    async def _announce(self, thread_id: ThreadID, log_id: str) -> None:
        """Tell the thread's peers this peer's (maybe new) addresses; they pull from it."""
        for peer_id in self._peers_of(thread_id):
            try:
                await self._push_log(peer_id, thread_id, log_id)
            except (NetworkError, ThreadkitError, OSError) as exc:
                self.stats.error(f"announce to {peer_id}: {exc}")

    # ---------------------------------------------------------------- pulling

    async def _join(self, target: ThreadAddr, key: ThreadKey, name: str | None) -> Database:
        import trio

        await self.node.connect(target.peer_addr)
        thread_id = target.thread_id
        reply = await self._request(
            target.peer_id,
            {
                "t": "get_logs",
                "thread": thread_id.to_bytes(),
                "auth": p.auth_token(
                    key.service, thread_id.to_bytes(), peer_id_bytes(target.peer_id)
                ),
            },
        )
        db_name = name or _text(reply.get("name")) or None

        def create() -> Database:
            try:
                return self.manager.get_db(thread_id)
            except DBNotFound:
                return self.manager.new_db(db_name, thread_id=thread_id, key=key, adopt=True)

        db = await trio.to_thread.run_sync(create)
        self.attach(db)
        await self._store_logs(thread_id, reply)
        await self._push_log(target.peer_id, thread_id, db.log_id)
        await self._pull(target.peer_id, thread_id)
        return db

    # ------------------------------------------------- threads without a database

    def add_thread(self, addr: str, key: ThreadKey, timeout: float | None = None) -> ThreadID:
        """ThreadDB's AddThread: keep a thread (no database) served at ``addr``; pull its logs."""
        target = ThreadAddr.parse(addr)
        result: ThreadID = self.node.call(
            self._add_thread, target, key, timeout=timeout or self.timeout * 3
        )
        return result

    async def _add_thread(self, target: ThreadAddr, key: ThreadKey) -> ThreadID:
        await self.node.connect(target.peer_addr)
        thread_id = target.thread_id
        reply = await self._request(
            target.peer_id,
            {
                "t": "get_logs",
                "thread": thread_id.to_bytes(),
                "auth": p.auth_token(
                    key.service, thread_id.to_bytes(), peer_id_bytes(target.peer_id)
                ),
            },
        )
        if not self.repo.has_thread(thread_id):
            self.new_thread(thread_id, key)
        await self._store_logs(thread_id, reply)
        own = self.own_log(thread_id)
        if own is not None:
            await self._push_log(target.peer_id, thread_id, own)
        await self._pull(target.peer_id, thread_id)
        return thread_id

    def new_thread(self, thread_id: ThreadID, key: ThreadKey) -> str | None:
        """Store a thread without a database, with this peer's own log when it can read."""
        from threadkit.core.identity import Identity

        self.repo.add_thread(thread_id, key)
        if not key.can_read:
            return None
        log_key = Identity.generate()
        self.repo.add_log(thread_id, log_key.public, log_key, self.node.addrs)
        self._peer_cache.pop(thread_id, None)
        return log_key.public.peer_id

    def own_log(self, thread_id: ThreadID) -> str | None:
        """The id of this peer's own log in a thread (the one it holds the private key of)."""
        for info in self.repo.list_logs(thread_id):
            if info.private is not None:
                return info.id
        return None

    def create_record(self, thread_id: ThreadID, body: bytes) -> Record:
        """ThreadDB's CreateRecord: append ``body`` (a DAG-CBOR node) to this peer's own log."""
        from threadkit.core.records import create_record

        log_id = self.own_log(thread_id)
        if log_id is None:
            raise NotFound(f"this peer has no log of its own in thread {thread_id}")
        info = self.repo.get_log(thread_id, log_id)
        assert info.private is not None
        record = create_record(body, log_key=info.private, key=self._key(thread_id), prev=info.head)
        self.repo.append(thread_id, log_id, record)
        self._sent_out(thread_id, log_id, [record])
        return record

    def add_record(self, thread_id: ThreadID, log_id: str, record: Record) -> None:
        """ThreadDB's AddRecord: a record made elsewhere with its log's own keys."""
        from threadkit.core.records import RecordBlocks

        try:
            self.repo.get_log(thread_id, log_id)
        except NotFound:
            self.repo.add_log(thread_id, PublicKey.from_peer_id(log_id))
            self._peer_cache.pop(thread_id, None)
        blocks: RecordBlocks = record.blocks
        self.node.call(
            self._receive, self.node.peer_id, thread_id, log_id, [blocks], timeout=self.timeout
        )
        for peer_id in self._peers_of(thread_id):
            self._enqueue(peer_id, thread_id, log_id, [record])

    def _sent_out(self, thread_id: ThreadID, log_id: str, records: list[Record]) -> None:
        for peer_id in self._peers_of(thread_id):
            self._enqueue(peer_id, thread_id, log_id, records)
        for listener in list(self._record_listeners):
            for record in records:
                listener(thread_id, log_id, record)

    async def _pull_all(self, thread_id: ThreadID) -> int:
        total = 0
        for peer_id in self._peers_of(thread_id):
            try:
                total += await self._pull(peer_id, thread_id)
            except (NetworkError, ThreadkitError, OSError) as exc:
                self.stats.error(f"pull from {peer_id}: {exc}")
        return total

    async def _pull(self, peer_id: str, thread_id: ThreadID) -> int:
        """Fetch logs and records this peer lacks from one peer (one pull at a time)."""
        slot = (peer_id, thread_id.to_bytes())
        if slot in self._pulling:
            self._pull_again.add(slot)
            return 0
        self._pulling.add(slot)
        total = 0
        try:
            while True:
                self._pull_again.discard(slot)
                total += await self._pull_once(peer_id, thread_id)
                if slot not in self._pull_again:
                    break
        finally:
            self._pulling.discard(slot)
        self.stats.pulls += 1
        self.stats.last_sync = time.time()
        return total

    async def _pull_quietly(self, peer_id: str, thread_id: ThreadID) -> None:
        """A background pull: failures go to ``stats.errors``, the periodic pull retries."""
        try:
            await self._pull(peer_id, thread_id)
        except (NetworkError, ThreadkitError, OSError) as exc:
            self.stats.error(f"pull from {peer_id}: {exc}")

    async def _pull_once(self, peer_id: str, thread_id: ThreadID) -> int:
        key = self._key(thread_id)
        tid = thread_id.to_bytes()
        auth = p.auth_token(key.service, tid, peer_id_bytes(peer_id))
        reply = await self._request(peer_id, {"t": "get_logs", "thread": tid, "auth": auth})
        await self._store_logs(thread_id, reply)
        total = 0
        while True:
            wanted = [
                {"id": peer_id_bytes(info.id), "after": info.counter, "limit": p.MAX_RECORDS}
                for info in self.repo.list_logs(thread_id)
            ]
            reply = await self._request(
                peer_id, {"t": "get_records", "thread": tid, "auth": auth, "logs": wanted}
            )
            got = 0
            more = False
            for item in reply.get("logs", []):
                entry = p._map(item, "log records")
                log_id = _peer_id_str(p._bytes(entry.get("id"), "log id", 64))
                blocks = [
                    p.blocks_from_node(r) for r in p._list(entry.get("records", []), "records")
                ]
                if blocks:
                    got += await self._receive(peer_id, thread_id, log_id, blocks)
                remote = p._count(entry.get("counter", 0), "counter")
                if remote > self.repo.get_head(thread_id, log_id).counter:
                    more = True
            total += got
            if not more or got == 0:
                return total

    async def _store_logs(self, thread_id: ThreadID, reply: dict[str, Any]) -> None:
        for item in p._list(reply.get("logs", []), "logs"):
            entry = p.LogEntry.from_node(item)
            self._merge_log(thread_id, entry)

    def _merge_log(self, thread_id: ThreadID, entry: p.LogEntry) -> None:
        log_id = _peer_id_str(entry.id)
        public = PublicKey.from_bytes(entry.pub)
        if public.peer_id != log_id:
            raise ProtocolError(f"log {log_id} comes with another log's key", code="malformed")
        addrs = [addr_from_bytes(a) for a in entry.addrs]
        self._peer_cache.pop(thread_id, None)
        try:
            self.repo.get_log(thread_id, log_id)
        except NotFound:
            self.repo.add_log(thread_id, public, None, addrs)
            return
        if addrs:
            self.repo.add_addrs(thread_id, log_id, addrs)

    async def _receive(
        self, sender: str, thread_id: ThreadID, log_id: str, blocks: list[Any]
    ) -> int:
        """Check received records and hand them to the database (or the log, on a replicator)."""
        import trio

        key = self._key(thread_id)
        public = self.repo.get_log(thread_id, log_id).public
        try:
            records = [open_record(b, service_key=key, log_key=public) for b in blocks]
        except RecordError as exc:
            self.stats.rejected += len(blocks)
            log.warning("rejected records of log %s from %s: %s", log_id, sender, exc)
            raise ProtocolError(f"invalid record: {exc}", code="invalid_record") from None

        def apply() -> Any:
            try:
                db = self.manager.get_db(thread_id)
            except DBNotFound:
                return self.repo.accept(thread_id, log_id, records)
            return db.apply_records(log_id, records)

        result = await trio.to_thread.run_sync(apply)
        self.stats.received += len(result.added)
        for appended in result.added:
            for listener in list(self._record_listeners):
                listener(thread_id, log_id, appended.record)
        if result.gap is not None:
            self.node.spawn(self._pull_quietly, sender, thread_id)
        if result.added and not key.can_read:
            # a replicator passes records on to the thread's other peers
            added = [a.record for a in result.added]
            for peer_id in self._peers_of(thread_id):
                if peer_id != sender:
                    self._enqueue(peer_id, thread_id, log_id, added)
        return len(result.added)

    async def _pull_loop(self) -> None:
        import trio

        while not self._stopped:
            await trio.sleep(self.pull_interval)
            shared: dict[str, list[ThreadID]] = defaultdict(list)
            for info in self.repo.list_threads():
                for peer_id in self._peers_of(info.id):
                    shared[peer_id].append(info.id)
            for peer_id, thread_ids in shared.items():
                if self._stopped:
                    return
                try:
                    behind = await self._compare_edges(peer_id, thread_ids)
                    for thread_id in behind:
                        await self._pull(peer_id, thread_id)
                except (NetworkError, ThreadkitError, OSError) as exc:
                    self.stats.error(f"periodic pull from {peer_id}: {exc}")

    async def _compare_edges(self, peer_id: str, thread_ids: list[ThreadID]) -> list[ThreadID]:
        """Threads whose heads differ between this peer and ``peer_id`` (one small call)."""
        receiver = peer_id_bytes(peer_id)
        entries = []
        mine: dict[bytes, bytes] = {}
        for thread_id in thread_ids:
            tid = thread_id.to_bytes()
            addrs, heads = self.edges(thread_id)
            mine[tid] = heads
            auth = p.auth_token(self._key(thread_id).service, tid, receiver)
            entries.append({"thread": tid, "auth": auth, "addrs": addrs, "heads": heads})
        if thread_ids:
            await self.node.connect_peer(peer_id, self._addrs_of(thread_ids[0], peer_id))
        reply = await self._request(peer_id, {"t": "exchange_edges", "threads": entries})
        theirs = {}
        for item in p._list(reply.get("edges", []), "edges"):
            entry = p._map(item, "edge")
            theirs[p._bytes(entry.get("thread"), "thread id", 128)] = entry.get("heads")
        return [t for t in thread_ids if theirs.get(t.to_bytes()) != mine[t.to_bytes()]]

    async def _add_replicator(self, thread_id: ThreadID, addr: str) -> str:
        await self.node.connect(addr)
        peer_id = addr.rsplit("/p2p/", 1)[1]
        db = self.manager.get_db(thread_id)
        self.repo.add_addrs(thread_id, db.log_id, [addr])
        self._peer_cache.pop(thread_id, None)
        for info in self.repo.list_logs(thread_id):
            await self._push_log(peer_id, thread_id, info.id, with_key=True)
        return peer_id

    # --------------------------------------------------------------- serving

    async def _handle(self, stream: Any, remote: str) -> None:
        from threadkit.net.framing import FrameReader, write_frame

        reader = FrameReader(stream)
        try:
            data = await reader.read_frame(p.MAX_FRAME)
            if data is None:
                return
            try:
                request = p.decode_request(data)
                reply = await self._serve(request, remote)
            except ProtocolError as exc:
                log.info("refused a request from %s: %s", remote, exc)
                reply = p.error_reply(exc.code, str(exc))
            except NotFound as exc:
                reply = p.error_reply("not_found", str(exc))
            except InvalidInput as exc:
                log.info("refused a malformed request from %s: %s", remote, exc)
                reply = p.error_reply("malformed", str(exc))
            await write_frame(stream, reply)
        except (NetworkError, OSError) as exc:
            log.info("stream from %s failed: %s", remote, exc)
        finally:
            await _close(stream)

    async def _serve(self, request: dict[str, Any], remote: str) -> bytes:
        kind = request["t"]
        if kind == "exchange_edges":
            return self._serve_edges(request, remote)
        thread_id = _thread_id(request["thread"])
        if kind == "push_log" and "skey" in request:
            return await self._serve_replication(thread_id, request, remote)
        key = self._known_key(thread_id)
        if not p.check_auth(request.get("auth"), key.service, thread_id.to_bytes(), self._me):
            raise ProtocolError("not authorised for this thread", code="auth")
        if kind == "get_logs":
            return p.ok_reply(logs=self._log_entries(thread_id), name=self._db_name(thread_id))
        if kind == "push_log":
            entry: p.LogEntry = request["log"]
            self._merge_log(thread_id, entry)
            self.node.spawn(self._pull_quietly, remote, thread_id)
            return p.ok_reply()
        if kind == "get_records":
            return p.ok_reply(logs=self._records_for(thread_id, request["logs"]))
        # push_records
        log_id = _peer_id_str(request["log"])
        try:
            self.repo.get_log(thread_id, log_id)
        except NotFound:
            raise ProtocolError(f"unknown log {log_id}", code="unknown_log") from None
        await self._receive(remote, thread_id, log_id, request["records"])
        head = self.repo.get_head(thread_id, log_id).counter
        return p.ok_reply(head=head)

    async def _serve_replication(
        self, thread_id: ThreadID, request: dict[str, Any], remote: str
    ) -> bytes:
        service = request.get("skey")
        if not self.accept_replication:
            raise ProtocolError("this peer does not replicate threads", code="refused")
        if not isinstance(service, bytes) or len(service) != 32:
            raise ProtocolError("skey must be a 32-byte service key", code="malformed")
        if not self.repo.has_thread(thread_id):
            self.repo.add_thread(thread_id, ThreadKey.from_bytes(service))
        elif self._known_key(thread_id).service != service:
            raise ProtocolError("not authorised for this thread", code="auth")
        self._merge_log(thread_id, request["log"])
        self.node.spawn(self._pull_quietly, remote, thread_id)
        return p.ok_reply()

    def _serve_edges(self, request: dict[str, Any], remote: str) -> bytes:
        # only threads the caller proves it holds the key of: edges reveal membership
        edges = []
        for tid_bytes, auth, _addrs, _heads in request["threads"]:
            thread_id = _thread_id(tid_bytes)
            if not self.repo.has_thread(thread_id):
                continue
            if not p.check_auth(auth, self._key(thread_id).service, tid_bytes, self._me):
                continue
            addrs, heads = self.edges(thread_id)
            edges.append({"thread": tid_bytes, "addrs": addrs, "heads": heads})
        return p.ok_reply(edges=edges)

    def edges(self, thread_id: ThreadID) -> tuple[bytes, bytes]:
        """8-byte digests of the thread's log addresses and of its heads (docs/protocol.md)."""
        heads = hashlib.sha256()
        addrs = hashlib.sha256()
        for info in sorted(self.repo.list_logs(thread_id), key=lambda i: peer_id_bytes(i.id)):
            raw = peer_id_bytes(info.id)
            heads.update(raw + info.counter.to_bytes(8, "big"))
            addrs.update(raw + b"".join(sorted(a.encode() for a in info.addrs)))
        return addrs.digest()[:8], heads.digest()[:8]

    def _log_entries(self, thread_id: ThreadID) -> list[dict[str, Any]]:
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

    def _records_for(
        self, thread_id: ThreadID, wanted: list[tuple[bytes, int, int]]
    ) -> list[dict[str, Any]]:
        out = []
        budget = p.MAX_REPLY_BYTES
        for log_bytes, after, limit in wanted:
            log_id = _peer_id_str(log_bytes)
            try:
                head = self.repo.get_head(thread_id, log_id).counter
            except NotFound:
                continue
            records: list[list[bytes]] = []
            if head > after and budget > 0:
                for stored in self.repo.read_log(thread_id, log_id, after=after, limit=limit):
                    size = stored.blocks.total_size()
                    if records and size > budget:
                        break
                    budget -= size
                    records.append(p.blocks_to_node(stored.blocks))
            out.append({"id": log_bytes, "counter": head, "records": records})
        return out

    # ---------------------------------------------------------------- helpers

    async def _request(self, peer_id: str, message: dict[str, Any]) -> dict[str, Any]:
        import trio

        from threadkit.net.framing import FrameReader, write_frame

        message = {"v": p.VERSION, **message}
        with trio.fail_after(self.timeout):
            thread = message.get("thread")
            if isinstance(thread, bytes) and peer_id not in self.node.connected_peers():
                known = self._addrs_of(ThreadID.from_bytes(thread), peer_id)
                await self.node.connect_peer(peer_id, known)
            stream = await self.node.open_stream(peer_id, p.PROTOCOL_ID)
            try:
                await write_frame(stream, p.encode(message))
                data = await FrameReader(stream).read_frame(p.MAX_FRAME)
            finally:
                await _close(stream)
        if data is None:
            raise ProtocolError(f"{peer_id} closed the stream without replying", code="eof")
        return p.decode_reply(data)

    def _key(self, thread_id: ThreadID) -> ThreadKey:
        return self.repo.get_thread(thread_id).key

    def _known_key(self, thread_id: ThreadID) -> ThreadKey:
        try:
            return self._key(thread_id)
        except NotFound:
            raise ProtocolError(f"unknown thread {thread_id}", code="unknown_thread") from None

    def _db_name(self, thread_id: ThreadID) -> str | None:
        try:
            return self.manager.get_db(thread_id).name
        except DBNotFound:
            return None

    def _peers_of(self, thread_id: ThreadID) -> list[str]:
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

    def _addrs_of(self, thread_id: ThreadID, peer_id: str) -> list[str]:
        return [
            addr
            for info in self.repo.list_logs(thread_id)
            for addr in info.addrs
            if addr.endswith("/p2p/" + peer_id)
        ]


def _peer_id_str(raw: bytes) -> str:
    import base58

    return str(base58.b58encode(raw).decode())


def _thread_id(raw: bytes) -> ThreadID:
    try:
        return ThreadID.from_bytes(raw)
    except ThreadkitError as exc:
        raise ProtocolError(f"bad thread id: {exc}", code="malformed") from None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


async def _close(stream: Any) -> None:
    with contextlib.suppress(Exception):
        await stream.close()
