"""``Peer.pull()`` while a background pull from the same peer is under way: it returns
only once what that peer had when it was called is here (threadkit.net.pull).

Real peers (``tk.Peer`` with the network on, in this process) over libp2p on 127.0.0.1.
"""

from __future__ import annotations

import threadkit as tk


def test_pull_during_a_background_pull_returns_with_every_record_here() -> None:
    with (
        tk.Peer(memory=True, network=True, pull_interval=0, timeout=30) as a,
        tk.Peer(memory=True, network=True, pull_interval=0, timeout=30) as b,
    ):
        db = a.new_db("pulled")
        coll = db.new_collection("Items")
        for start in range(0, 3000, 100):  # 30 records: a pull of them takes a while
            coll.create(*({"_id": f"d{i:05}", "n": i} for i in range(start, start + 100)))
        # the join pulls in the background; the pull asked for next meets it under way
        joined = b.new_db_from_addr(db.info().addrs[0], db.key, pull=False)
        b.pull(joined)
        assert joined["Items"].count() == 3000
        assert joined["Items"].find() == coll.find()
