"""``peer.reclaim()`` in one process: the network paused and restarted, the databases
reopened (objects taken before are closed), the clock carried over."""

from __future__ import annotations

from pathlib import Path

import pytest

import threadkit as tk
from threadkit.errors import RepoClosed


@pytest.mark.slow
def test_reclaim_reopens_the_databases_and_restarts_the_network(tmp_path: Path) -> None:
    with tk.Peer(tmp_path / "p", network=True) as peer:
        db = peer.new_db("k")
        coll = db.new_collection("c")
        coll.create(*({"_id": f"d{i}", "p": "x" * 1000} for i in range(1000)))
        coll.delete(*(f"d{i}" for i in range(1000)))
        coll.create({"_id": "kept", "n": 1})
        stamp = coll.find_by_id("kept")["_mod"]
        port = peer.addrs[0].split("/tcp/")[1].split("/")[0]
        done = peer.reclaim()
        assert done.after < done.before
        assert peer.online and f"/tcp/{port}/" in peer.addrs[0]  # the same port, free again
        with pytest.raises(RepoClosed, match=r"peer\.get_db"):
            coll.find_by_id("kept")
        again = peer.get_db(db.id)
        assert again["c"].find() == [{"_id": "kept", "n": 1, "_mod": stamp}]
        again["c"].save({"_id": "kept", "n": 2})
        assert again["c"].find_by_id("kept")["_mod"] > stamp
