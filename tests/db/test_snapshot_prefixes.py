"""Snapshots between repos where the database has different local prefixes.

A repo numbers its databases (``prefix``) in the order it made or joined them, so a daemon
holding many databases and a fresh joiner give the same database different prefixes. The
``db_order`` values are instance keys under the prefix: a snapshot must carry them without
it, or its own author finds it bad and a joiner's history points into another database.
"""

from __future__ import annotations

from typing import Any

from snapshot_helpers import state

import threadkit as tk
from threadkit.db import bootstrap
from threadkit.db.handoff import handoff, replica


def _unprefixed(db: Any) -> dict[str, dict[bytes, bytes]]:
    """:func:`state`, with the prefix also taken off the ``order`` values."""
    out = state(db)
    out["order"] = {k: v.removeprefix(db.prefix) for k, v in out["order"].items()}
    return out


def test_a_snapshot_is_the_same_whatever_prefix_the_database_has() -> None:
    with tk.Peer(memory=True) as a, tk.Peer(memory=True) as b, tk.Peer(memory=True) as c:
        a.new_db("first").new_collection("X").create({"_id": "x"})  # a's next prefix is 2
        c.new_db("c1")
        c.new_db("c2")  # c's next prefix is 3; b's is 1
        db = a.new_db("s")
        items = db.new_collection("Items", indexes=["n"])
        items.create([{"_id": f"i{i}", "n": i} for i in range(5)])
        items.save({"_id": "i1", "n": 10})
        items.delete("i2")
        snap = db.snapshot()
        assert db.verify_snapshot(snap) is True  # replayed under prefix 1
        joined = bootstrap.install(b.manager, bootstrap.offer(db), db.key, db.id, "s", [a.identity])
        full = replica(c, db)
        handoff(db, full)
        assert len({db.prefix, joined.prefix, full.prefix}) == 3
        assert _unprefixed(joined) == _unprefixed(full) == _unprefixed(db)
        cols = ["collection", "instance", "action"]
        assert joined.history("Items")[cols].equals(db.history("Items")[cols])
