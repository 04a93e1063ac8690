"""Purge (threadkit.db.purge): a deleted document's contents erased from the store's tables
and from every view, replicated as an event, in any delivery order."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from replicas import sync
from test_db_convergence import (
    COLL,
    World,
    deliver_shuffled,
    dump,
    push,
)

from threadkit.db.database import Database
from threadkit.errors import InstanceNotFound, InvalidDocument, WriteRejected
from threadkit.peer import Peer


@pytest.fixture
def world() -> Iterator[World]:
    with ExitStack() as stack:
        yield World(stack)


SECRET = "s3cr3t-value-0042"


def raw_tables(db: Database) -> bytes:
    """Every entry of the document store's tables for this database, concatenated."""
    out = b""
    for table in ("docs", "events", "index", "lost", "losers", "inst", "order", "colls"):
        for key, value in dump(db, table):
            out += key + value
    return out


def test_purge_erases_the_contents_from_every_table_and_view() -> None:
    with Peer(memory=True) as peer:
        db = peer.new_db("notes")
        notes = db.new_collection("Notes", indexes=["secret"])
        notes.create({"_id": "n", "secret": SECRET})
        notes.save({"_id": "n", "secret": SECRET + "-2"})
        notes.create({"_id": "keep", "secret": "public"})
        then = db.timeline.heads()
        notes.delete("n")
        assert SECRET.encode() in raw_tables(db)
        notes.purge("n")
        assert SECRET.encode() not in raw_tables(db)
        rows = [r for r in db.timeline.events("Notes") if r.instance == "n"]
        assert [str(r.action) for r in rows] == ["create", "save", "delete", "purge"]
        assert [r.data for r in rows[:3]] == [{"_purged": True}] * 3
        assert SECRET not in repr(db.history(full=True).to_dict())
        old, _ = db.timeline.documents_at("Notes", then, None)
        assert {"_id": "n", "_purged": True} in old
        assert {"_id": "keep", "secret": "public"} in [
            {k: v for k, v in d.items() if k != "_mod"} for d in old
        ]
        assert SECRET not in repr([n.events for n in db.timeline.records()])
        graph = db.dag()
        assert SECRET not in repr(list(graph.nodes(data=True)))
        assert notes.find_by_id("keep")["secret"] == "public"
        assert "n" not in notes


def test_purge_bad_input_writes_nothing() -> None:
    with Peer(memory=True) as peer:
        db = peer.new_db("notes")
        notes = db.new_collection("Notes")
        notes.create({"_id": "live", "x": 1})
        heads = db.timeline.heads()
        with pytest.raises(WriteRejected, match="not deleted"):
            notes.purge("live")
        with pytest.raises(InstanceNotFound):
            notes.purge("never")
        with pytest.raises(InvalidDocument):
            notes.purge("x" * 200)
        assert db.timeline.heads() == heads
        assert notes.find_by_id("live")["x"] == 1


def test_create_after_a_purge_is_a_new_instance() -> None:
    with Peer(memory=True) as peer:
        db = peer.new_db("notes")
        notes = db.new_collection("Notes")
        notes.create({"_id": "n", "x": SECRET})
        notes.delete("n")
        notes.purge("n")
        notes.create({"_id": "n", "x": "again"})
        assert notes.find_by_id("n")["x"] == "again"
        assert SECRET.encode() not in raw_tables(db)


def test_a_purge_reaches_other_peers_and_erases_there(world: World) -> None:
    w0, w1, w2 = world.writers()
    w0[COLL].create({"_id": "a", "name": SECRET})
    w0[COLL].delete("a")
    sync(w0, w1)
    assert SECRET.encode() in raw_tables(w1)
    w0[COLL].purge("a")
    push(w0, w1)
    assert SECRET.encode() not in raw_tables(w1)
    # a replica that gets the records in any order erases them too, even those that arrive
    # after the purge
    for seed in range(4):
        fresh = world.fresh(w0, [w0, w1, w2])
        deliver_shuffled(fresh, [w0, w1, w2], random.Random(seed))
        assert SECRET.encode() not in raw_tables(fresh)
        assert dump(fresh, "events") == dump(w0, "events")


def test_a_concurrent_save_after_the_purge_loses_to_it(world: World) -> None:
    w0, w1, _ = world.writers()
    w0[COLL].create({"_id": "a", "name": "x"})
    sync(w0, w1)
    w0[COLL].delete("a")
    w0[COLL].purge("a")
    w1[COLL].save({"_id": "a", "name": SECRET})  # had not seen the delete or the purge
    sync(w0, w1)
    assert "a" not in w0[COLL] and "a" not in w1[COLL]
    assert dump(w0, "events") == dump(w1, "events")
    assert w0.lost_writes() == w1.lost_writes()


def test_export_and_import_keep_migrations_and_purges(tmp_path: Path) -> None:
    with Peer(memory=True) as a, Peer(memory=True) as b:
        db = a.new_db("notes")
        notes = db.new_collection("Notes", indexes=["name"])
        notes.create({"_id": "gone", "name": SECRET}, {"_id": "kept", "name": "k", "n": "4"})
        db.migrate("Notes", [{"rename": "name", "to": "title"}, {"retype": "n", "to": "integer"}])
        notes.delete("gone")
        notes.purge("gone")
        path = tmp_path / "notes.car"
        db.export(path, keys="full")
        restored = b.import_db(path)
        assert SECRET.encode() not in raw_tables(restored)
        for table in ("docs", "events", "index", "lost", "colls"):
            assert dump(restored, table) == dump(db, table), table
        assert restored["Notes"].find_by_id("kept")["n"] == 4
