"""Fetching the records before a snapshot, to check the snapshot a joiner started from.

A joiner that bootstrapped from a trusted snapshot (``new_db_from_addr(..., trust=)``)
checks it in the background once it has joined, and ``db.verify_snapshot`` does it on
demand (:mod:`threadkit.db.backfill`). Both fetch the records up to the snapshot's heads
from the thread's peers with ``get_records``: every log in one request, up to
:data:`~threadkit.net.protocol.MAX_RECORDS` records each and
:data:`~threadkit.net.protocol.MAX_REPLY_BYTES` per reply, again until each log reaches
its head. Each record is opened (CID, decryption, signature) and chained as it arrives;
a peer whose log does not start at the first record (it compacted, or bootstrapped too)
or does not reach the head is passed over for the next. When the peers that answer cannot
serve them, the snapshot is marked ``unverifiable`` and a warning logged; when no peer
answers at all, it stays ``received`` (unchecked), and ``db.verify_snapshot`` tries again.

A peer stopped before the check finished finds its snapshot still ``received`` when it
opens the database again with the network on: :meth:`Backfill.resume` checks it then,
and again after :data:`RETRY` seconds (doubling up to :data:`RETRY_MAX`) while no peer
answers, until the service stops.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from threadkit.core.identity import peer_id_bytes
from threadkit.db import backfill
from threadkit.errors import NetworkError, ThreadkitError
from threadkit.net import protocol as p
from threadkit.net.context import peer_id_str

if TYPE_CHECKING:
    from threadkit.core.records import Record
    from threadkit.db.database import Database
    from threadkit.db.snapshots import Snapshot
    from threadkit.net.client import Requester
    from threadkit.net.context import ServiceContext

__all__ = ["Backfill"]

log = logging.getLogger("threadkit.net")

SOURCE_TIMEOUT = 600.0
"""Seconds ``db.verify_snapshot`` waits for the records before a snapshot."""

RETRY = 2.0
"""Seconds :meth:`Backfill.resume` waits before asking again when no peer answered."""
RETRY_MAX = 300.0
"""The longest wait between two tries of :meth:`Backfill.resume`."""


class Backfill:
    """Fetches the records before a snapshot from peers, and checks the snapshot.

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

    def source(self, db: Database, snap: Snapshot) -> dict[str, list[Record]] | None:
        """``db.history_source``: :meth:`fetch` run on the node's loop (any other thread)."""
        return self.ctx.node.call(self.fetch, db, snap, timeout=SOURCE_TIMEOUT)

    async def fetch(self, db: Database, snap: Snapshot) -> dict[str, list[Record]] | None:
        """The records before ``snap``, per log, from the first peer that has them all;
        None when the peers that answered do not hold them.

        Raises
        ------
        NetworkError
            No peer could be asked (none known, or none answered): nothing is known yet.
        """
        answered = False
        failures = []
        for peer_id in self.ctx.peers_of(db.id):
            try:
                got = await self._fetch_from(peer_id, db, snap)
            except (NetworkError, OSError) as exc:
                failures.append(f"{peer_id}: {exc}")
                continue
            except ThreadkitError as exc:  # it answered, with records that do not check
                log.info("records before snapshot %s from %s: %s", snap, peer_id, exc)
                answered = True
                continue
            answered = True
            if got is not None:
                return got
        if not answered:
            raise NetworkError(
                f"no peer could be asked for the records before snapshot {snap}: "
                + ("; ".join(failures) or "no peer known")
            )
        return None

    async def _fetch_from(
        self, peer_id: str, db: Database, snap: Snapshot
    ) -> dict[str, list[Record]] | None:
        import trio

        want = backfill.wanted(db, snap)
        tid = db.id.to_bytes()
        auth = p.auth_token(db.key.service, tid, peer_id_bytes(peer_id))
        await self.ctx.dial(peer_id, self.ctx.addrs_of(db.id, peer_id))
        got: dict[str, list[Record]] = {log_id: [] for log_id in want}
        while True:
            asks = [
                {
                    "id": peer_id_bytes(log_id),
                    "after": len(got[log_id]),
                    "limit": min(p.MAX_RECORDS, counter - len(got[log_id])),
                }
                for log_id, (_, counter, _) in want.items()
                if len(got[log_id]) < counter
            ]
            if not asks:
                return got
            reply = await self.client.request(
                peer_id, {"t": "get_records", "thread": tid, "auth": auth, "logs": asks}
            )
            blocks: dict[str, list[Any]] = {}
            for item in p._list(reply.get("logs", []), "log records"):
                entry = p._map(item, "log records")
                log_id = peer_id_str(p._bytes(entry.get("id"), "log id", 64))
                if log_id in want:
                    records = p._list(entry.get("records", []), "records")
                    blocks[log_id] = [p.blocks_from_node(r) for r in records]

            if not await trio.to_thread.run_sync(_take, db, want, got, blocks):
                return None

    async def verify_quietly(self, db: Database) -> bool:
        """Check the snapshot ``db`` bootstrapped from, in the background (logs the verdict).

        Returns False when no peer could be asked (the snapshot stays ``received``), True
        otherwise.
        """
        import trio

        snap = backfill.base_snapshot(db)
        if snap is None or snap.status in ("verified", "bad"):
            return True
        try:
            gathered = await self.fetch(db, snap)
            if gathered is None:
                why = "no peer serves the records before it (all compacted or bootstrapped)"
                await trio.to_thread.run_sync(backfill.mark_unverifiable, db, snap, why)
                self.ctx.stats.error(f"snapshot {snap} unverifiable: {why}")
                return True
            good = await trio.to_thread.run_sync(backfill.check_bootstrap, db, snap, gathered)
        except (NetworkError, ThreadkitError, OSError) as exc:  # checked on the next call
            log.warning("snapshot %s could not be checked yet: %s", snap, exc)
            self.ctx.stats.error(f"checking snapshot {snap}: {exc}")
            return not isinstance(exc, (NetworkError, OSError))
        if not good:
            self.ctx.stats.error(f"snapshot {snap} was wrong: the state was rebuilt")
        return True

    async def resume(self, db: Database) -> None:
        """Check the snapshot of a database opened before its check finished (its status
        still ``received``); try again while no peer answers (module docstring)."""
        import trio

        try:
            snap = backfill.base_snapshot(db)
        except ThreadkitError as exc:  # the base names a snapshot not indexed: nothing to check
            log.warning("database %s: its base snapshot cannot be checked: %s", db.name, exc)
            return
        if snap is None or snap.status != "received":
            return
        delay = RETRY
        while not self.ctx.stopped and not await self.verify_quietly(db):
            await trio.sleep(delay)
            delay = min(2 * delay, RETRY_MAX)


def _take(
    db: Database,
    want: dict[str, backfill.LogWanted],
    got: dict[str, list[Record]],
    blocks: dict[str, list[Any]],
) -> bool:
    """Open and chain one reply's records into ``got``; False when a log does not chain
    from its first record (the peer's log starts later) or nothing came."""
    progress = False
    for log_id, items in blocks.items():
        public, counter, _ = want[log_id]
        opened = backfill.open_fetched(db, items[: counter - len(got[log_id])], public)
        got[log_id].extend(opened)
        if not backfill.check_chain(got[log_id], want[log_id], complete=False):
            return False
        progress = progress or bool(opened)
    return progress
