"""Pulling from peers: joining, repairing gaps, and the periodic anti-entropy pull.

A pull asks one peer for the thread's logs (``get_logs``), then for the records after
the counters this peer holds (``get_records``), again while the peer is ahead. At most
one pull per (peer, thread) runs at a time; a pull asked for while one runs makes that
one go round again. The periodic pull first compares edge digests with each peer in one
small ``exchange_edges`` call and pulls only the threads whose heads differ.

The periodic pull follows threadsd's ``netPulling*`` settings (:class:`PullSettings`): it
starts ``start_after`` seconds after the service, goes round again ``initial_interval``
later, then every ``interval``; each ``get_records`` asks for at most ``limit`` records
in all (split evenly over the thread's logs, as go-threads does).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from threadkit.core.identity import PublicKey, peer_id_bytes
from threadkit.core.records import open_record
from threadkit.errors import (
    DBNotFound,
    InvalidInput,
    InvalidThreadKey,
    NetworkError,
    RecordError,
    ThreadkitError,
)
from threadkit.net import protocol as p
from threadkit.net.backfill import Backfill
from threadkit.net.bootstrap import join_from_snapshot
from threadkit.net.client import Requester
from threadkit.net.context import ServiceContext, peer_id_str, text_or_none
from threadkit.net.push import Pusher
from threadkit.net.receive import Receiver

if TYPE_CHECKING:
    from threadkit.core.addr import ThreadAddr
    from threadkit.core.ids import ThreadID
    from threadkit.core.keys import ThreadKey
    from threadkit.db.database import Database

__all__ = ["DEFAULT_PULLING_LIMIT", "PullSettings", "Puller"]

DEFAULT_PULLING_LIMIT = 10_000
"""Records one ``get_records`` asks for at most, over all logs (threadsd's ``netPullingLimit``)."""


@dataclass(frozen=True)
class PullSettings:
    """The periodic pull: threadsd's ``netPulling*`` settings. Defaults are threadsd's.

    Attributes
    ----------
    enabled : bool
        False: no periodic pull at all (``--disableNetPulling``); joining, ``db.sync``,
        ``peer.pull`` and the pulls a push with a gap triggers still run.
    limit : int
        Records one ``get_records`` request asks for, over all the thread's logs
        (``--netPullingLimit``, 10000). Each log gets ``limit // logs`` (at least 1, at
        most the protocol's 1000 per log); a pull repeats while a peer is ahead.
    start_after : float
        Seconds from the start of the service to the first round (``--netPullingStartAfter``, 1 s).
    initial_interval : float
        Seconds from the first round to the second (``--netPullingInitialInterval``, 1 s).
    interval : float
        Seconds between later rounds (``--netPullingInterval``, 10 s).

    Raises
    ------
    InvalidInput
        ``limit`` is not a whole number ≥ 1, or a duration is not a number > 0.

    Examples
    --------
    >>> PullSettings().interval
    10.0
    >>> PullSettings.every(0).enabled
    False
    """

    enabled: bool = True
    limit: int = DEFAULT_PULLING_LIMIT
    start_after: float = 1.0
    initial_interval: float = 1.0
    interval: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise InvalidInput(f"enabled must be True or False, got {self.enabled!r}")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise InvalidInput(f"netPullingLimit must be a whole number >= 1, got {self.limit!r}")
        for name in ("start_after", "initial_interval", "interval"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not value > 0
                or value == float("inf")
            ):
                raise InvalidInput(f"{name} must be a number of seconds > 0, got {value!r}")
            object.__setattr__(self, name, float(value))

    @classmethod
    def every(cls, interval: float) -> PullSettings:
        """Rounds every ``interval`` seconds, the first one ``interval`` after the start.

        ``interval`` 0 (or less) turns the periodic pull off (``tk.Peer(pull_interval=)``).
        """
        if interval <= 0:
            return cls(enabled=False)
        return cls(start_after=interval, initial_interval=interval, interval=interval)

    def per_log(self, logs: int) -> int:
        """Records asked of each of ``logs`` logs in one ``get_records`` request."""
        return max(1, min(p.MAX_RECORDS, self.limit // max(1, logs)))


class Puller:
    """Pulls logs and records from peers.

    Parameters
    ----------
    ctx : ServiceContext
        The service's shared state.
    client : Requester
        Sends the requests.
    receiver : Receiver
        Checks and applies the records pulled.
    pusher : Pusher
        Announces this peer's own log when joining.
    attach : callable
        Starts replicating a database this peer just joined.
    settings : PullSettings, optional
        The periodic pull and the size of each ``get_records`` (default threadsd's).
    """

    def __init__(
        self,
        ctx: ServiceContext,
        client: Requester,
        receiver: Receiver,
        pusher: Pusher,
        attach: Callable[[Database], None],
        settings: PullSettings | None = None,
    ) -> None:
        self.settings = settings or PullSettings()
        self.ctx = ctx
        self.client = client
        self.receiver = receiver
        self.pusher = pusher
        self.attach = attach
        self._pulling: set[tuple[str, bytes]] = set()
        self._pull_again: set[tuple[str, bytes]] = set()
        self._last_total: dict[tuple[str, bytes], int] = {}
        self.backfill = Backfill(ctx, client)

    async def get_logs(self, peer_id: str, thread_id: ThreadID, key: ThreadKey) -> dict[str, Any]:
        """The ``get_logs`` reply of ``peer_id`` for a thread."""
        return await self.client.request(
            peer_id,
            {
                "t": "get_logs",
                "thread": thread_id.to_bytes(),
                "auth": p.auth_token(key.service, thread_id.to_bytes(), peer_id_bytes(peer_id)),
            },
        )

    async def join(
        self,
        target: ThreadAddr,
        key: ThreadKey,
        name: str | None,
        pull: bool = True,
        trust: frozenset[str] | None = None,
    ) -> Database:
        """Join the database at ``target``: its logs, this peer's log, then its records.

        With ``pull`` False the records are pulled in the background (the database is
        returned at once, empty; ``db.sync()`` waits for them). With ``trust`` (public key
        strings), a snapshot by one of them starts the database when the peer has one
        (:mod:`.bootstrap`); the records after it are pulled, and the snapshot is then
        checked in the background against the records before it (:mod:`.backfill`).
        """
        import trio

        ctx = self.ctx
        await ctx.node.connect(target.peer_addr)
        thread_id = target.thread_id
        reply = await self.get_logs(target.peer_id, thread_id, key)
        if not ctx.repo.has_thread(thread_id):
            ctx.check_log_count(thread_id, reply)
            await self.check_read_key(target.peer_id, thread_id, key, reply)
        db_name = name or text_or_none(reply.get("name")) or None

        def create() -> Database:
            try:
                return ctx.manager.get_db(thread_id)
            except DBNotFound:
                return ctx.manager.new_db(db_name, thread_id=thread_id, key=key, adopt=True)

        db = None
        if trust is not None and not ctx.repo.has_thread(thread_id):
            db = await join_from_snapshot(
                ctx, self.client, target.peer_id, thread_id, key, db_name, trust
            )
        bootstrapped = db is not None
        if db is None:
            db = await trio.to_thread.run_sync(create)
        self.attach(db)
        ctx.store_logs(thread_id, reply)
        await self.pusher.push_log(target.peer_id, thread_id, db.log_id)
        if pull:
            await self.pull(target.peer_id, thread_id)
        else:
            self.pull_later(target.peer_id, thread_id)
        if bootstrapped:  # check the snapshot against the records before it (net/backfill.py)
            ctx.node.spawn(self.backfill.verify_quietly, db)
        return db

    async def check_read_key(
        self, peer_id: str, thread_id: ThreadID, key: ThreadKey, logs_reply: dict[str, Any]
    ) -> None:
        """Make sure ``key``'s read key is the thread's, before anything of it is kept.

        The peer's ``get_logs`` reply carries ``rcheck`` when that peer holds the read key;
        otherwise (a replicator, an older peer) the first record of each log is fetched
        and its body decrypted: one that opens proves the key. A thread with no record
        and no ``rcheck`` cannot be checked.

        Raises
        ------
        InvalidThreadKey
            The read key is not the thread's (nothing has been stored).
        """
        tid = thread_id.to_bytes()
        wrong = (
            f"the read key does not open thread {thread_id}: the service key is right, "
            "the read key is not"
        )
        check = logs_reply.get("rcheck")
        if isinstance(check, bytes) and key.read is not None:
            if check != p.read_key_check(key.read, tid):
                raise InvalidThreadKey(wrong)
            return
        entries = [
            p.LogEntry.from_node(item) for item in p._list(logs_reply.get("logs", []), "logs")
        ]
        publics = {e.id: e.pub for e in entries if e.counter > 0}
        if not publics:
            return
        reply = await self.client.request(
            peer_id,
            {
                "t": "get_records",
                "thread": tid,
                "auth": p.auth_token(key.service, tid, peer_id_bytes(peer_id)),
                "logs": [{"id": i, "after": 0, "limit": 1} for i in publics],
            },
        )
        tried = 0
        for item in p._list(reply.get("logs", []), "log records"):
            entry = p._map(item, "log records")
            public = publics.get(p._bytes(entry.get("id"), "log id", 64))
            for node in p._list(entry.get("records", []), "records")[:1]:
                if public is None:
                    continue
                try:
                    record = open_record(
                        p.blocks_from_node(node),
                        service_key=key,
                        log_key=PublicKey.from_bytes(public),
                    )
                    if record.epoch:  # a later key epoch: the thread key does not open it
                        continue
                    tried += 1
                    record.read_body(key)
                except RecordError:  # the wrong key, or a record its writer spoiled
                    continue
                return
        if tried:
            raise InvalidThreadKey(wrong)

    async def pull_all(self, thread_id: ThreadID) -> int:
        """Pull from every peer of the thread; failures go to ``stats.errors``.

        A pull from a peer already under way (a join's, the periodic one) is waited for
        and followed by one more, so that what every peer held when this was called is
        here when it returns.
        """
        total = 0
        for peer_id in self.ctx.peers_of(thread_id):
            try:
                total += await self.pull_after_current(peer_id, thread_id)
            except (NetworkError, ThreadkitError, OSError) as exc:
                self.ctx.stats.error(f"pull from {peer_id}: {exc}")
        return total

    async def pull(self, peer_id: str, thread_id: ThreadID) -> int:
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
            self._last_total[slot] = total
        self.ctx.stats.pulls += 1
        self.ctx.stats.last_sync = time.time()
        return total

    async def pull_after_current(self, peer_id: str, thread_id: ThreadID) -> int:
        """Wait for a pull from ``peer_id`` under way, then pull once more.

        Returns the records both brought in (the one under way may have started earlier).
        """
        import trio

        slot = (peer_id, thread_id.to_bytes())
        earlier = 0
        if slot in self._pulling:
            while slot in self._pulling:
                await trio.sleep(0.01)
            earlier = self._last_total.pop(slot, 0)
        return earlier + await self.pull(peer_id, thread_id)

    async def pull_quietly(self, peer_id: str, thread_id: ThreadID) -> None:
        """A background pull: failures go to ``stats.errors``, the periodic pull retries."""
        try:
            await self.pull(peer_id, thread_id)
        except (NetworkError, ThreadkitError, OSError) as exc:
            self.ctx.stats.error(f"pull from {peer_id}: {exc}")

    def pull_later(self, peer_id: str, thread_id: ThreadID) -> None:
        """Start :meth:`pull_quietly` as a background task (any thread)."""
        self.ctx.node.spawn(self.pull_quietly, peer_id, thread_id)

    async def _pull_once(self, peer_id: str, thread_id: ThreadID) -> int:
        ctx = self.ctx
        key = ctx.key(thread_id)
        tid = thread_id.to_bytes()
        auth = p.auth_token(key.service, tid, peer_id_bytes(peer_id))
        reply = await self.client.request(peer_id, {"t": "get_logs", "thread": tid, "auth": auth})
        ctx.store_logs(thread_id, reply)
        total = 0
        while True:
            logs = ctx.repo.list_logs(thread_id)
            per_log = self.settings.per_log(len(logs))
            wanted = [
                {"id": peer_id_bytes(info.id), "after": info.counter, "limit": per_log}
                for info in logs
            ]
            reply = await self.client.request(
                peer_id, {"t": "get_records", "thread": tid, "auth": auth, "logs": wanted}
            )
            got = 0
            more = False
            for item in reply.get("logs", []):
                entry = p._map(item, "log records")
                log_id = peer_id_str(p._bytes(entry.get("id"), "log id", 64))
                blocks = [
                    p.blocks_from_node(r) for r in p._list(entry.get("records", []), "records")
                ]
                if blocks:
                    got += await self.receiver.receive(peer_id, thread_id, log_id, blocks)
                remote = p._count(entry.get("counter", 0), "counter")
                if remote > ctx.repo.get_head(thread_id, log_id).counter:
                    more = True
            total += got
            if not more or got == 0:
                return total

    async def pull_loop(self) -> None:
        """Pull the threads whose heads differ from a peer's, on the settings' schedule."""
        import trio

        ctx = self.ctx
        settings = self.settings
        waits = [settings.start_after, settings.initial_interval]
        while not ctx.stopped:
            await trio.sleep(waits.pop(0) if waits else settings.interval)
            shared: dict[str, list[ThreadID]] = defaultdict(list)
            for info in ctx.repo.list_threads():
                for peer_id in ctx.peers_of(info.id):
                    shared[peer_id].append(info.id)
            for peer_id, thread_ids in shared.items():
                if ctx.stopped:
                    return
                try:
                    behind = await self.compare_edges(peer_id, thread_ids)
                    for thread_id in behind:
                        await self.pull(peer_id, thread_id)
                except (NetworkError, ThreadkitError, OSError) as exc:
                    ctx.stats.error(f"periodic pull from {peer_id}: {exc}")

    async def compare_edges(self, peer_id: str, thread_ids: list[ThreadID]) -> list[ThreadID]:
        """Threads whose heads differ between this peer and ``peer_id`` (one small call)."""
        ctx = self.ctx
        receiver = peer_id_bytes(peer_id)
        entries = []
        mine: dict[bytes, bytes] = {}
        for thread_id in thread_ids:
            tid = thread_id.to_bytes()
            addrs, heads = ctx.edges(thread_id)
            mine[tid] = heads
            auth = p.auth_token(ctx.key(thread_id).service, tid, receiver)
            entries.append({"thread": tid, "auth": auth, "addrs": addrs, "heads": heads})
        if thread_ids:
            await ctx.dial(peer_id, ctx.addrs_of(thread_ids[0], peer_id))
        reply = await self.client.request(peer_id, {"t": "exchange_edges", "threads": entries})
        theirs = {}
        for item in p._list(reply.get("edges", []), "edges"):
            entry = p._map(item, "edge")
            theirs[p._bytes(entry.get("thread"), "thread id", 128)] = entry.get("heads")
        return [t for t in thread_ids if theirs.get(t.to_bytes()) != mine[t.to_bytes()]]
