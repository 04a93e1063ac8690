"""Snapshots between repos where the database has different local prefixes.

A repo numbers its databases (``prefix``) in the order it made or joined them, so a daemon
holding many databases and a fresh joiner give the same database different prefixes. The
``db_order`` values are instance keys under the prefix: a snapshot must carry them without
it, or its own author finds it bad and a joiner's history points into another database.
"""

from __future__ import annotations

from typing import Any

from snapshot_helpers import exchange, state

import threadkit as tk
from threadkit.core.identity import Identity
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


def test_a_bootstrapped_rebuild_puts_its_own_prefix_back() -> None:
    """A late revoke cuts a write the joiner had applied: the joiner rebuilds from its
    snapshot's rows (basestate.restore), which must carry the joiner's prefix in the
    ``order`` values as the bootstrap did."""
    joiner = Identity.generate()
    with (
        tk.Peer(memory=True) as o,
        tk.Peer(memory=True) as b,
        tk.Peer(memory=True, identity=joiner) as j,
        tk.Peer(memory=True, identity=joiner) as f,
    ):
        j.new_db("j1")  # the joiner's next prefix is 2, the owner's 1
        db = o.new_db("m", open=False)
        db.new_collection("c")
        db.grant(b.identity.public, "writer")
        db.grant(joiner.public, "reader")
        bdb = replica(b, db)
        exchange(db, bdb)
        db["c"].create([{"_id": f"o{i}", "n": i} for i in range(3)])
        joined = _join(j, db)
        assert joined.prefix != db.prefix
        bdb["c"].create({"_id": "cut"})
        exchange(bdb, joined)
        assert "cut" in [d["_id"] for d in joined["c"].find()]
        db.revoke(b.identity.public)  # the owner has not seen "cut": the revoke cuts it
        full = replica(f, db)
        exchange(db, bdb, joined, full)
        assert sorted(d["_id"] for d in joined["c"].find()) == ["o0", "o1", "o2"]
        assert _unprefixed(joined) == _unprefixed(full)
        with joined.read_txn() as txn:
            cursor = txn.cursor(db=joined._tables.order)
            assert cursor.set_range(joined.prefix)
            for key, value in cursor:
                if not bytes(key).startswith(joined.prefix):
                    break
                assert bytes(value).startswith(joined.prefix)


def _join(peer: Any, source: Any) -> Any:
    item = bootstrap.offer(source, source.snapshot())
    assert item is not None
    return bootstrap.install(
        peer.manager, item, source.key, source.id, source.name, [source.identity]
    )
