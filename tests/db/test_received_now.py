"""``Database.apply_records_now`` (threadkit.db.received): received records applied by a
caller that must not wait. What it applies is what ``apply_records`` applies; it declines,
writing nothing, while another thread holds a write lock or when a record needs a script."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import replicas

from threadkit.db.database import Database
from threadkit.db.timeline import event_rows
from threadkit.peer import Peer

VALIDATOR = "return event.patch.type !== 'delete'"


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    """Three peers: the origin's and two replicas' (a repo holds a thread once)."""
    with Peer(memory=True) as a, Peer(memory=True) as b, Peer(memory=True) as c:
        yield [a, b, c]


def _written(peer: Peer, name: str = "origin") -> Database:
    """A database whose own log holds single-document commits, saves and a delete."""
    db = peer.new_db(name)
    coll = db.new_collection("Items")
    for i in range(6):
        coll.create({"_id": f"i{i}", "n": i})
    coll.save({"_id": "i1", "n": 10})
    coll.delete("i2")
    with coll.write_txn() as txn:  # two events in one record
        txn.save({"_id": "i3", "n": 30})
        txn.create({"_id": "i9", "n": 9})
    return db


def _drain(feed: Any) -> list[tuple[Any, ...]]:
    events = []
    while (event := feed.get_nowait()) is not None:
        events.append(
            (event.collection, event.instance_id, event.action, event.document, event.log)
        )
    return events


def test_applied_now_is_what_apply_records_applies(peers: list[Peer]) -> None:
    origin = _written(peers[0])
    records = replicas.log_records(origin)
    threaded, now = replicas.replica(peers[1], origin), replicas.replica(peers[2], origin)
    for target in (threaded, now):
        replicas.know_log(target, origin)
    feeds = [threaded.listen(), now.listen()]
    for start in range(0, len(records), 3):  # pushes of up to three records
        batch = records[start : start + 3]
        expected = threaded.apply_records(origin.log_id, batch)
        got = now.apply_records_now(origin.log_id, batch)
        assert got is not None
        assert [a.counter for a in got.added] == [a.counter for a in expected.added]
        assert got.gap == expected.gap
    assert replicas.snapshot(now) == replicas.snapshot(threaded) == replicas.snapshot(origin)
    assert event_rows(now) == event_rows(threaded)
    events = [_drain(feed) for feed in feeds]
    assert events[0] == events[1]
    assert len(events[0]) == 10


def test_it_declines_while_another_thread_holds_the_write_lock(peers: list[Peer]) -> None:
    origin = _written(peers[0])
    records = replicas.log_records(origin)
    target = replicas.replica(peers[1], origin)
    replicas.know_log(target, origin)
    for lock in (target._write_lock, target._repo._write_lock):
        held, release = threading.Event(), threading.Event()

        def hold(
            lock: Any = lock, held: threading.Event = held, release: threading.Event = release
        ) -> None:
            with lock:
                held.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        held.wait(10)
        try:
            assert target.apply_records_now(origin.log_id, records[:2]) is None
            assert target._repo.get_head(target.id, origin.log_id).counter == 0
        finally:
            release.set()
            holder.join(10)
    result = target.apply_records_now(origin.log_id, records[:2])
    assert result is not None and [a.counter for a in result.added] == [1, 2]


def test_it_declines_a_script_call_and_writes_nothing(peers: list[Peer]) -> None:
    origin = peers[0].new_db("scripted")
    origin.new_collection("Items", write_validator=VALIDATOR)
    origin["Items"].create({"_id": "a", "n": 1})
    records = replicas.log_records(origin)
    target = replicas.replica(peers[1], origin)
    replicas.know_log(target, origin)
    feed = target.listen()
    assert target.apply_records_now(origin.log_id, records) is None
    assert target._repo.get_head(target.id, origin.log_id).counter == 0
    assert [c.name for c in target.list_collections()] == []
    assert _drain(feed) == []
    # the same records applied where waiting is fine: the validator runs, all is applied
    result = target.apply_records(origin.log_id, records)
    assert len(result.added) == len(records)
    assert replicas.snapshot(target) == replicas.snapshot(origin)
