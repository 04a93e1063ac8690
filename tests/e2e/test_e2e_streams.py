"""Long-lived streams between peer processes, and peers from before them.

A peer opened with ``older_protocol=True`` (tests/e2e/peer_child.py) behaves as threadkit
did before ``/threadkit/1.1.0``: it serves only ``/threadkit/1.0.0`` and calls others with
one new stream per request. Current peers negotiate down to that protocol with it and
keep long-lived streams among themselves.
"""

from __future__ import annotations

from e2e_helpers import Cluster, assert_converged, new_shared_db, seqs
from waits import poll_until


def test_an_older_peer_process_and_current_ones_replicate_every_way() -> None:
    with Cluster() as cluster:
        old, new, other = cluster.start_each([{"older_protocol": True}, {}, {}])
        db = new_shared_db(old, "mixed")
        old.call("create", db=db["id"], coll="Items", docs=[{"name": "first", "seq": 0}])
        for proc in (new, other):
            proc.call("join", addr=db["addrs"][0], key=db["key"])
        for n, proc in enumerate((old, new, other)):
            proc.call(
                "create_each",
                db=db["id"],
                coll="Items",
                docs=[{"name": f"p{n}-{i}", "seq": 1 + n * 10 + i} for i in range(10)],
            )
        state = assert_converged([old, new, other], db["id"])
        assert seqs(state) == list(range(31))

        # a database of a current peer, joined by the older one
        mine = new_shared_db(new, "current")
        new.call("create", db=mine["id"], coll="Items", docs=[{"name": "n", "seq": 1}])
        old.call("join", addr=mine["addrs"][0], key=mine["key"])
        old.call("create", db=mine["id"], coll="Items", docs=[{"name": "o", "seq": 2}])
        assert seqs(assert_converged([old, new], mine["id"])) == [1, 2]

        stats = {name: proc.call("stats") for name, proc in [("old", old), ("new", new)]}
        assert stats["old"]["streams_reused"] == 0  # one stream per request, always
        assert stats["new"]["streams_reused"] > 0  # with the other current peer
        for proc in (old, new, other):
            assert proc.call("stats")["errors"] == []


def test_a_burst_of_writes_arrives_over_one_long_lived_stream() -> None:
    with Cluster() as cluster:
        a, b = cluster.start(2, pull_interval=0)
        db = new_shared_db(a, "burst")
        b.call("join", addr=db["addrs"][0], key=db["key"])
        # B's join tells A of B's log, on which A pulls from B in the background: let that
        # pull end first, else its requests may hold A's stream when the burst begins
        poll_until(lambda: a.call("stats")["pulls"] >= 1, 10)
        opened = a.call("stats")["streams_opened"]
        a.call(
            "create_each",
            db=db["id"],
            coll="Items",
            docs=[{"name": f"w-{i}", "seq": i} for i in range(300)],
        )

        reply = b.call("wait_count", db=db["id"], coll="Items", n=300, timeout=30)
        assert reply["reached"]
        # B applies the last batch before A has read B's reply to it: A counts a push once
        # that reply is in, so wait for the count (a bounded wait, not a timing assertion)
        poll_until(lambda: a.call("stats")["pushed"] >= 300, 10)
        stats = a.call("stats")
        assert stats["pushed"] == 300 and stats["errors"] == []
        assert stats["streams_opened"] - opened <= 1
        assert stats["streams_reused"] >= 1
