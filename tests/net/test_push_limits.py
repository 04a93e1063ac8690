"""Limits of what members send and queue: logs per thread, push batches, the push queue.

Real peers (``tk.Peer`` with the network on, in this process) over libp2p on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import threadkit as tk
from tests.e2e.waits import poll_until, wait_for_docs
from threadkit.core.identity import Identity, peer_id_bytes
from threadkit.core.records import MAX_BODY_SIZE
from threadkit.net import protocol as p
from threadkit.net.push import MAX_QUEUED_BYTES, batch
from threadkit.store.logs import MAX_LOGS

MiB = 1024 * 1024


@pytest.fixture
def peers() -> Iterator[tuple[tk.Peer, tk.Peer]]:
    with (
        tk.Peer(memory=True, network=True, pull_interval=0, timeout=10) as a,
        tk.Peer(memory=True, network=True, pull_interval=0, timeout=10) as b,
    ):
        yield a, b


def _service(peer: tk.Peer) -> Any:
    return peer._online_service()


# ------------------------------------------------------------------ logs per thread


def _push_logs(member: tk.Peer, target: tk.Peer, db: Any, count: int) -> list[Any]:
    """``member`` tells ``target`` of ``count`` new logs (valid keys, its service key)."""
    service = _service(member)
    tid = db.id.to_bytes()

    async def run() -> list[Any]:
        client = service._pusher.client
        auth = p.auth_token(db.key.service, tid, peer_id_bytes(target.id))
        replies = []
        for _ in range(count):
            log = Identity.generate().public
            entry = p.LogEntry(peer_id_bytes(log.peer_id), log.to_bytes(), (), 0)
            request = {"t": "push_log", "thread": tid, "auth": auth, "log": entry.to_node()}
            try:
                replies.append(await client.request(target.id, request))
            except tk.errors.ProtocolError as exc:
                replies.append(exc)
        return replies

    result: list[Any] = service.node.call(run, timeout=120)
    return result


def test_a_member_cannot_add_logs_beyond_the_limit(peers: tuple[tk.Peer, tk.Peer]) -> None:
    a, b = peers
    db = a.new_db("crowded")
    addr = db.info().addrs[0]
    b.new_db_from_addr(addr, db.key)  # b, a member, floods a with logs
    replies = _push_logs(b, a, db, MAX_LOGS - 2 + 3)
    refused = [r for r in replies if isinstance(r, tk.errors.ProtocolError)]
    assert len(refused) == 3 and {r.code for r in refused} == {"too_many_logs"}
    assert len(a.get_thread(db.id)["logs"]) == MAX_LOGS
    # a full thread cannot be joined: refused before anything is kept, on either side
    with tk.Peer(memory=True, network=True, pull_interval=0, timeout=10) as c:
        with pytest.raises(tk.errors.TooManyLogs, match="no room"):
            c.new_db_from_addr(addr, db.key)
        assert c.list_dbs() == []
        with pytest.raises(tk.errors.ThreadNotFound):
            c.get_thread(db.id)
    assert len(a.get_thread(db.id)["logs"]) == MAX_LOGS
    # its members still replicate
    db.new_collection("Items").create({"name": "still"})
    theirs = b.get_db(db.id)
    assert wait_for_docs(theirs, lambda: "Items" in theirs and theirs["Items"].count() == 1, 20)


# ------------------------------------------------------------------ push batches


def _big_docs(db: Any, count: int, size: int) -> None:
    notes = db.new_collection("Big")
    for n in range(count):
        notes.create({"blob": str(n) * size})


def test_batches_are_split_by_bytes(peers: tuple[tk.Peer, tk.Peer]) -> None:
    """Records near the size limit are pushed in batches that each fit in a frame."""
    a, b = peers
    db = a.new_db("big")
    size = MAX_BODY_SIZE * 3 // 4  # three of them are over the frame limit
    _big_docs(db, 3, size)
    records = a.repo.read_log(db.id, db.log_id)
    big = [r for r in records if r.blocks.total_size() > size]
    assert len(big) == 3 and sum(r.blocks.total_size() for r in big) > p.MAX_FRAME
    assert batch(big) == batch(records[:1] + big) == 1
    small = records[:1] * (p.MAX_RECORDS + 5)
    assert batch(small) == p.MAX_RECORDS

    b.new_db_from_addr(db.info().addrs[0], db.key)
    service = _service(a)
    before = service.stats.pushed
    # a slow push's queue: every record of a's log, pushed again (b has them: harmless)
    service._pusher.enqueue(b.id, db.id, db.log_id, records)
    pushed = poll_until(lambda: service.stats.pushed >= before + len(records), 20)
    assert pushed, service.stats.errors
    assert not [e for e in service.stats.errors if "exceeds" in e or "too large" in e]


# ------------------------------------------------------------------ the push queue


def test_a_slow_peers_queue_is_bounded_and_nothing_is_lost(
    peers: tuple[tk.Peer, tk.Peer],
) -> None:
    a, b = peers
    db = a.new_db("slow")
    notes = db.new_collection("Notes")
    b.new_db_from_addr(db.info().addrs[0], db.key)
    pusher = _service(a)._pusher
    seen: list[int] = []
    real_push = pusher.push_records

    async def slow_push(*args: Any) -> None:  # b answers, but slowly
        import trio

        seen.append(pusher.queued_bytes())
        await trio.sleep(0.5)
        await real_push(*args)

    pusher.push_records = slow_push
    blob = "x" * (2 * MiB)
    count = MAX_QUEUED_BYTES // len(blob) + 8
    for n in range(count):
        notes.create({"n": n, "blob": blob})
    assert pusher.queued_bytes() <= MAX_QUEUED_BYTES
    assert max(seen, default=0) <= MAX_QUEUED_BYTES
    assert pusher.overflows >= 1
    # b is sent the log once the push in flight is done, and pulls the rest
    theirs = b.get_db(db.id)
    assert wait_for_docs(theirs, lambda: theirs["Notes"].count() == count, 60)
    assert poll_until(lambda: pusher.queued_bytes() == 0, 20)
