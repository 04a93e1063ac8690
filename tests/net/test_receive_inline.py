"""Pushed records applied on the event loop (small batches) or in a worker thread
(threadkit.net.receive): the receiving peer ends with the same documents and its
listeners see the same events, in the same order, as the writer's own.

Real peers (``tk.Peer`` with the network on, in this process) over libp2p on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import threadkit as tk
from tests.e2e.waits import poll_until
from threadkit.net import receive


@pytest.fixture
def peers() -> Iterator[tuple[tk.Peer, tk.Peer]]:
    with (
        tk.Peer(memory=True, network=True, pull_interval=0, timeout=10) as a,
        tk.Peer(memory=True, network=True, pull_interval=0, timeout=10) as b,
    ):
        yield a, b


def _events(feed: Any) -> list[tuple[Any, ...]]:
    out = []
    while (event := feed.get_nowait()) is not None:
        out.append((event.collection, event.instance_id, event.action, event.document, event.log))
    return out


def _one(coll: Any, n: int) -> bool:
    """Write one document; True (for use in a wait)."""
    coll.create({"_id": f"first{n}", "n": -n})
    return True


def _write(coll: Any) -> None:
    """Single-document commits (pushes of one to a few records), saves, a delete, a batch."""
    for i in range(12):
        coll.create({"_id": f"d{i}", "n": i})
    coll.save({"_id": "d1", "n": 100})
    coll.delete("d2")
    with coll.write_txn() as txn:
        txn.save({"_id": "d3", "n": 300})
        txn.create({"_id": "d99", "n": 99})
    coll.create(*({"_id": f"bulk{i}", "n": i} for i in range(20)))


@pytest.mark.parametrize("inline", [0, receive.INLINE_RECORDS], ids=["thread", "loop"])
def test_pushes_apply_alike_on_the_loop_and_in_a_thread(
    peers: tuple[tk.Peer, tk.Peer], inline: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(receive, "INLINE_RECORDS", inline)
    a, b = peers
    db = a.new_db("inline")
    coll = db.new_collection("Items")
    joined = b.new_db_from_addr(db.info().addrs[0], db.key)
    applied_on_loop: list[bool] = []
    apply_now = joined.apply_records_now

    def observed(log_id: str, records: Any) -> Any:
        result = apply_now(log_id, records)
        applied_on_loop.append(result is not None)
        return result

    joined.apply_records_now = observed  # type: ignore[method-assign]
    mine, theirs = db.listen(collection="Items"), joined.listen(collection="Items")
    if inline:
        # A pushes to B once it knows B as a peer of the thread; until then B may get the
        # records by pulling. Single writes until one was pushed and applied on the loop
        # (a bounded wait: with the inline path broken it fails here).
        written = iter(range(1000))
        assert poll_until(lambda: _one(coll, next(written)) and any(applied_on_loop), 30)
    _write(coll)
    expected = _events(mine)
    got: list[tuple[Any, ...]] = []

    def arrived() -> bool:
        got.extend(_events(theirs))
        return len(got) >= len(expected)

    poll_until(arrived, timeout=30)
    assert got == expected
    assert joined["Items"].find() == coll.find()
    if inline:
        assert any(applied_on_loop)  # some pushes were applied on the loop
    else:
        assert applied_on_loop == []
