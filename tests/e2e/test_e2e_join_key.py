"""Joining with the right service key and a wrong read key fails, leaving nothing behind.

The service key is enough to be answered (``auth``), so a joiner with a wrong read key
used to get the logs, store them with records it could not open, announce its own log to
the other peer, and return an empty database. Now the read key is checked first: with
the answering peer's ``rcheck`` when it holds the read key, else by opening the first
record of each log (a replicator only holds the service key).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import threadkit as tk
from tests.e2e.waits import wait_for_docs, wait_for_records
from threadkit.core import dagcbor


def _wrong_read(key: tk.ThreadKey) -> tk.ThreadKey:
    return tk.ThreadKey.from_bytes(key.service + os.urandom(32))


@pytest.fixture
def peers() -> Iterator[tuple[tk.Peer, tk.Peer]]:
    with (
        tk.Peer(memory=True, network=True, pull_interval=0, timeout=5) as a,
        tk.Peer(memory=True, network=True, pull_interval=0, timeout=5) as b,
    ):
        yield a, b


def _left_nothing(joiner: tk.Peer, origin: tk.Peer, thread_id: tk.ThreadID, logs: int) -> None:
    assert joiner.list_dbs() == []
    with pytest.raises(tk.errors.ThreadNotFound):
        joiner.get_thread(thread_id)
    assert len(origin.get_thread(thread_id)["logs"]) == logs


@pytest.mark.parametrize("records", [True, False], ids=["with-records", "empty"])
def test_join_with_a_wrong_read_key_fails_and_leaves_nothing(
    peers: tuple[tk.Peer, tk.Peer], records: bool
) -> None:
    a, b = peers
    db = a.new_db("guarded")
    if records:
        db.new_collection("Notes").create({"text": "secret"})
    addr = db.info().addrs[0]
    with pytest.raises(tk.errors.InvalidThreadKey, match="read key"):
        b.new_db_from_addr(addr, _wrong_read(db.key))
    _left_nothing(b, a, db.id, logs=1)
    # the right key still joins, and the two peers replicate
    joined = b.new_db_from_addr(addr, db.key)
    assert len(a.get_thread(db.id)["logs"]) == 2
    if records:
        assert joined["Notes"].find()[0]["text"] == "secret"
        joined["Notes"].create({"text": "from b"})
        assert wait_for_docs(db, lambda: db["Notes"].count() == 2, 10)


def test_join_through_a_replicator_checks_the_first_records() -> None:
    """A replicator cannot vouch for the read key: the records it holds do."""
    with (
        tk.Peer(memory=True, network=True, pull_interval=0, timeout=5) as a,
        tk.Peer(memory=True, network=True, pull_interval=0, timeout=5, replicator=True) as r,
        tk.Peer(memory=True, network=True, pull_interval=0, timeout=5) as b,
    ):
        db = a.new_db("replicated")
        db.new_collection("Notes").create({"text": "kept by r"})
        a.add_replicator(db, r.addrs[0])
        assert wait_for_records(
            r, db.id, lambda: r.get_thread(db.id)["logs"][0]["counter"] >= 1, 10
        )
        via_r = f"{r.addrs[0]}/thread/{db.id}"
        with pytest.raises(tk.errors.InvalidThreadKey, match="read key"):
            b.new_db_from_addr(via_r, _wrong_read(db.key))
        _left_nothing(b, r, db.id, logs=1)
        assert b.new_db_from_addr(via_r, db.key)["Notes"].find()[0]["text"] == "kept by r"


def test_add_thread_with_a_wrong_read_key_fails_and_leaves_nothing(
    peers: tuple[tk.Peer, tk.Peer],
) -> None:
    a, b = peers
    thread = a.create_thread()
    key = tk.ThreadKey.from_string(thread["key"])
    a.create_record(thread["id"], dagcbor.encode({"n": 1}))
    with pytest.raises(tk.errors.InvalidThreadKey, match="read key"):
        b.add_thread(thread["addrs"][0], _wrong_read(key))
    with pytest.raises(tk.errors.ThreadNotFound):
        b.get_thread(thread["id"])
    assert len(a.get_thread(thread["id"])["logs"]) == 1
    # a service key alone (a replicator-like member) is not a read key to check
    assert b.add_thread(thread["addrs"][0], key.service_only())["id"] == thread["id"]
