"""ThreadDB's Net API on the peer: threads without a database, raw records, Subscribe."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import threadkit as tk
from tests.e2e.waits import wait_for_records
from threadkit.core import dagcbor
from threadkit.core.records import create_record
from threadkit.errors import InvalidInput, ThreadNotFound


@pytest.fixture
def peers() -> Iterator[tuple[tk.Peer, tk.Peer]]:
    with tk.Peer(memory=True, network=True) as a, tk.Peer(memory=True, network=True) as b:
        yield a, b


def wait_counter(peer: tk.Peer, thread: str, log_id: str, n: int, timeout: float = 10) -> int:
    """``log_id``'s counter on ``peer`` once it reaches ``n`` (woken by each stored record)."""

    def counter() -> int:
        logs = {log["id"]: log for log in peer.get_thread(thread)["logs"]}
        return int(logs.get(log_id, {}).get("counter", 0))

    wait_for_records(peer, thread, lambda: counter() >= n, timeout)
    return counter()


def test_create_thread_records_and_add_thread(peers: tuple[tk.Peer, tk.Peer]) -> None:
    a, b = peers
    thread = a.create_thread()
    tid = thread["id"]
    key = tk.ThreadKey.from_string(thread["key"])
    (own,) = [log for log in thread["logs"] if log["own"]]
    first = a.create_record(tid, dagcbor.encode({"n": 1}))
    a.create_record(tid, dagcbor.encode({"n": 2}))
    assert a.get_thread(tid)["logs"][0]["counter"] == 2
    joined = b.add_thread(thread["addrs"][0], key)
    assert joined["id"] == tid
    assert wait_counter(b, tid, own["id"], 2) == 2
    record = b.get_record(tid, first.cid)
    assert dagcbor.decode(record.read_body(key)) == {"n": 1}

    feed = b.subscribe([tk.ThreadID.from_string(tid)])
    a.create_record(tid, dagcbor.encode({"n": 3}))
    _, log_id, pushed = feed.get(timeout=10)
    assert log_id == own["id"] and dagcbor.decode(pushed.read_body(key)) == {"n": 3}
    feed.close()


def test_add_record_made_elsewhere_reaches_the_other_peer(peers: tuple[tk.Peer, tk.Peer]) -> None:
    a, b = peers
    thread = a.create_thread()
    tid, key = thread["id"], tk.ThreadKey.from_string(thread["key"])
    b.add_thread(thread["addrs"][0], key)
    outside = tk.Identity.generate()  # a log key no peer holds
    record = create_record(dagcbor.encode({"from": "outside"}), log_key=outside, key=key)
    a.add_record(tid, outside.public.peer_id, record)
    assert wait_counter(b, tid, outside.public.peer_id, 1) == 1
    forged = create_record(dagcbor.encode({"x": 1}), log_key=tk.Identity.generate(), key=key)
    with pytest.raises(tk.errors.ThreadkitError):
        a.add_record(tid, outside.public.peer_id, forged)  # signed by another key


def test_database_threads_refuse_raw_records_and_delete_thread(
    peers: tuple[tk.Peer, tk.Peer],
) -> None:
    a, _ = peers
    db = a.new_db("db")
    with pytest.raises(InvalidInput):
        a.create_record(db.id, dagcbor.encode({"x": 1}))
    bare = a.create_thread()
    a.delete_thread(bare["id"])
    with pytest.raises(ThreadNotFound):
        a.get_thread(bare["id"])
    a.delete_thread(db.id)
    assert a.list_dbs() == []
