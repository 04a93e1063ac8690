"""A write whose transaction fails (a full map or disk) leaves nothing behind, in memory too.

The failures are real: a repo opened with a small ``map_size`` and partly taken by a
filler value, and writes too big for the room left (LMDB's MapFullError); and a full
disk, a tmpfs the test mounts (root only; see also tests/e2e/test_e2e_disk_full.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from replicas import snapshot

from threadkit.core.clock import Timestamp
from threadkit.core.identity import Identity
from threadkit.db.config import CollectionConfig
from threadkit.db.database import Database
from threadkit.db.engine import Engine, open_db_tables
from threadkit.db.events import Action, RecordEvent
from threadkit.db.handoff import handoff
from threadkit.db.manager import Manager
from threadkit.db.query import where
from threadkit.errors import CollectionNotFound, DiskFull, StoreError
from threadkit.peer import Peer
from threadkit.store.repo import Repo

MiB = 1024**2
MAP_SIZE = 16 * MiB
FILLER = 10 * MiB
BIG = {"description": "x" * (3 * MiB)}
"""A schema whose config event (record and stored config, over 6 MiB) does not fit beside
the filler, and fits once the filler is gone."""
DOCS = 175


class SmallRepo:
    """A database in a repo with a 16 MiB map, 10 MiB of it taken by a filler value."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.repo = Repo(path, map_size=MAP_SIZE, durable=False)
        self.manager = Manager(self.repo, Identity.generate())

    def fill(self) -> None:
        self.repo.put_meta("filler", bytes(FILLER))

    def make_room(self) -> None:
        self.repo.delete_meta("filler")
        for tick in range(2):  # LMDB reuses freed pages two commits later
            self.repo.put_meta("tick", bytes([tick]))

    def reopen(self) -> None:
        self.repo.close()
        self.repo = Repo(self.path, map_size=MAP_SIZE, durable=False)
        self.manager = Manager(self.repo, Identity.generate())

    def close(self) -> None:
        self.repo.close()


@pytest.fixture
def small(tmp_path: Path) -> Iterator[SmallRepo]:
    side = SmallRepo(tmp_path / "repo")
    try:
        yield side
    finally:
        side.close()


def test_config_events_take_effect_when_their_transaction_commits(tmp_path: Path) -> None:
    log, author, record = b"\x00\x24" + bytes(36), "author", bytes(36)
    node = CollectionConfig.build("Extra", indexes=["n"]).to_node()
    create = RecordEvent(Timestamp(1_000, 0), Action.NEW_COLLECTION, "Extra", "", node)
    doc = RecordEvent(Timestamp(1_001, 0), Action.CREATE, "Extra", "a", {"n": 1})
    with Repo(tmp_path / "repo", durable=False) as repo:
        engine = Engine(open_db_tables(repo), b"\x00\x00\x00\x01")
        outside = repo.transaction(write=True)
        with pytest.raises(StoreError, match="outside Engine"), outside as txn:
            engine.apply_local(txn, [create], log, author, record)
        with pytest.raises(RuntimeError), engine.write(repo) as txn:
            engine.apply_local(txn, [create], log, author, record)
            raise RuntimeError("abandoned")
        assert engine.collection_names() == []
        with engine.write(repo) as txn:
            # applied again, not taken as already applied; seen by its own transaction only
            engine.apply_local(txn, [create, doc], log, author, record)
            assert engine.collection_names() == []
            with repo.transaction() as reader:
                assert list(engine.scan_docs(reader, "Extra")) == []
        assert engine.collection_names() == ["Extra"]
        assert [i.path for i in engine.config("Extra").indexes] == ["n"]
        with repo.transaction() as reader:
            assert [d["n"] for d in engine.scan_docs(reader, "Extra")] == [1]


def test_a_read_transaction_plans_with_the_config_of_its_snapshot(tmp_path: Path) -> None:
    with Peer(tmp_path / "peer", network=False) as peer:
        db = peer.new_db("x")
        _items(db)
        items = db["Items"]
        with items.read_txn() as before_index:
            db.update_collection("Items", indexes=["n"])  # its entries are not in the snapshot
            assert len(before_index.find(where("n").ge(0))) == DOCS
        with items.read_txn() as before_drop:
            db.update_collection("Items", indexes=[])
            items.create({"n": DOCS})
            assert len(before_drop.find(where("n").ge(0))) == DOCS


def _items(db: Database) -> None:
    db.new_collection("Items").create([{"n": i} for i in range(DOCS)])


def _n_values(db: Database, name: str) -> list[Any]:
    return sorted(doc["n"] for doc in db[name].find(where("n").ge(0)))


def test_failed_new_collection_leaves_no_collection(small: SmallRepo) -> None:
    db = small.manager.new_db("x")
    feed = db.listen()
    small.fill()
    with pytest.raises(StoreError, match="full"):
        db.new_collection("Extra", schema=BIG)
    assert "Extra" not in db
    assert [c.name for c in db.list_collections()] == []
    with pytest.raises(CollectionNotFound):
        db.get_collection("Extra")
    db.new_collection("Small")  # there is room for a small one
    with pytest.raises(CollectionNotFound):
        db["Extra"].create({"n": 1})
    assert feed.get_nowait() is None
    small.make_room()
    extra = db.new_collection("Extra", schema=BIG)  # not CollectionExists
    extra.create({"n": 1})
    small.reopen()
    db = small.manager.get_db(db.id)
    assert [c.name for c in db.list_collections()] == ["Extra", "Small"]
    assert _n_values(db, "Extra") == [1]


def test_failed_update_collection_keeps_the_old_config_and_index(small: SmallRepo) -> None:
    db = small.manager.new_db("x")
    _items(db)
    small.fill()
    with pytest.raises(StoreError, match="full"):
        db.update_collection("Items", schema=BIG, indexes=["n"])
    assert db["Items"].config.indexes == ()
    assert db["Items"].config.schema.get("description") is None
    assert _n_values(db, "Items") == list(range(DOCS))  # no empty index to plan over
    small.make_room()
    db.update_collection("Items", schema=BIG, indexes=["n"])
    assert [i.path for i in db["Items"].config.indexes] == ["n"]
    assert _n_values(db, "Items") == list(range(DOCS))


def test_failed_delete_collection_keeps_the_collection(small: SmallRepo) -> None:
    db = small.manager.new_db("x")
    _items(db)
    db.new_collection("Other")
    # a delete is a small record: take all the room but a little, then delete a collection
    # whose removal needs more pages than that
    big_docs = db.new_collection("Big")
    big_docs.create([{"n": i, "pad": "p" * 2000} for i in range(1000)])
    _fill_up(small.repo)
    with pytest.raises(StoreError, match="full"):
        db.delete_collection("Big")
    assert "Big" in db
    assert big_docs.count() == 1000
    small.reopen()
    db = small.manager.get_db(db.id)
    assert db["Big"].count() == 1000


def _fill_up(repo: Repo) -> None:
    """Put filler values, halving their size, until not even 1 KiB fits."""
    size, index = MAP_SIZE // 2, 0
    while size >= 1024:
        try:
            repo.put_meta(f"fill-{index}", bytes(size))
            index += 1
        except StoreError:
            size //= 2


def test_failed_receive_is_received_again_once_there_is_room(small: SmallRepo) -> None:
    with Peer(memory=True) as writer_peer:
        writer = writer_peer.new_db("shared")
        writer.new_collection("Big", schema=BIG, indexes=["n"])
        writer["Big"].create([{"n": i} for i in range(DOCS)])
        db = small.manager.new_db(writer.name, thread_id=writer.id, key=writer.key)
        feed = db.listen()
        small.fill()
        with pytest.raises(StoreError, match="full"):
            handoff(writer, db)
        assert "Big" not in db
        assert feed.get_nowait() is None
        assert small.repo.get_head(db.id, writer.log_id).counter == 0
        small.make_room()
        assert handoff(writer, db) == 2  # the records are wanted again, all of them
        assert _n_values(db, "Big") == list(range(DOCS))
        assert len([feed.get_nowait() for _ in range(DOCS)]) == DOCS
        small.reopen()
        db = small.manager.get_db(writer.id)
        assert snapshot(db) == snapshot(writer)
        assert [i.path for i in db["Big"].config.indexes] == ["n"]


def test_full_disk_leaves_the_database_as_it_was(small_disk: Callable[[int], Any]) -> None:
    disk = small_disk(32 * MiB)
    path = disk.path / "peer"
    with Peer(path, network=False) as peer:
        db = peer.new_db("x")
        _items(db)
        feed = db.listen()
        disk.fill()
        with pytest.raises(DiskFull, match="disk is full"):
            db.new_collection("Extra", schema=BIG)
        with pytest.raises(DiskFull, match="disk is full"):
            db.update_collection("Items", schema=BIG, indexes=["n"])
        with pytest.raises(DiskFull, match="disk is full"):
            db["Items"].create([{"n": DOCS + i, "pad": "p" * 1000} for i in range(2000)])
        assert "Extra" not in db
        assert db["Items"].config.indexes == ()
        assert _n_values(db, "Items") == list(range(DOCS))
        assert feed.get_nowait() is None
        disk.make_room()
        db.new_collection("Extra", schema=BIG).create({"n": 1})
        db.update_collection("Items", schema=BIG, indexes=["n"])
        db["Items"].create({"n": DOCS})
        before = snapshot(db)
    with Peer(path, network=False) as peer:
        db = peer.get_db(db.id)
        assert snapshot(db) == before
        assert _n_values(db, "Items") == list(range(DOCS + 1))
