"""The manager of a peer's databases: ThreadDB's manager_test.go rewritten (bad names, keys
without a read key, many DBs reloading, hydration after a restart, deletes that stick),
plus repo ownership (RepoInUse) and the temporary repo of ``Peer(memory=True)``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import replicas

from threadkit.core.clock import HLC
from threadkit.core.ids import ThreadID, Variant
from threadkit.core.keys import ThreadKey
from threadkit.db.config import Index
from threadkit.errors import (
    CollectionNotFound,
    DBNotFound,
    InstanceNotFound,
    InvalidName,
    InvalidThreadID,
    InvalidThreadKey,
    RepoClosed,
    RepoInUse,
    ThreadExists,
)
from threadkit.peer import Peer

SCHEMA = {
    "type": "object",
    "properties": {"_id": {"type": "string"}, "name": {"type": "string"}, "n": {"type": "integer"}},
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return tmp_path / "repo"


@pytest.mark.parametrize("name", ["", "my db", "db!", "-db", "db-", "a--b", "über", "a_b", 5])
def test_bad_db_name(repo: Path, name: object) -> None:
    with Peer(repo) as peer:
        with pytest.raises(InvalidName):
            peer.new_db(name)  # type: ignore[arg-type]
        assert peer.list_dbs() == []


def test_default_name_and_given_id_and_key(repo: Path) -> None:
    with Peer(repo) as peer:
        thread_id = ThreadID.new(Variant.ACCESS_CONTROLLED)
        key = ThreadKey.new()
        db = peer.new_db(thread_id=thread_id, key=key)
        assert db.name == "unnamed" and db.id == thread_id and db.key == key
        assert peer.get_db(str(thread_id)) is db
        with pytest.raises(ThreadExists):
            peer.new_db("again", thread_id=thread_id)
        with pytest.raises(InvalidThreadID):
            peer.new_db("bad", thread_id=str(thread_id))  # type: ignore[arg-type]


def test_key_without_read_key(repo: Path) -> None:
    with Peer(repo) as peer:
        with pytest.raises(InvalidThreadKey):
            peer.new_db("noread", key=ThreadKey.new(read=False))
        with pytest.raises(InvalidThreadKey):
            peer.new_db("notakey", key="b" + "a" * 103)  # type: ignore[arg-type]
        assert peer.list_dbs() == []


def test_get_unknown_db(repo: Path) -> None:
    with Peer(repo) as peer:
        peer.new_db("known")
        unknown = ThreadID.new(Variant.RAW)
        with pytest.raises(DBNotFound):
            peer.get_db(unknown)
        with pytest.raises(DBNotFound):
            peer.get_db(str(unknown))
        with pytest.raises(DBNotFound):
            peer.delete_db(unknown)
        with pytest.raises(InvalidThreadID):
            peer.get_db("not a thread id")


def test_fifty_dbs_reload_after_reopen(repo: Path) -> None:
    with Peer(repo) as peer:
        made = [peer.new_db(f"db-{i}") for i in range(50)]
        for db in made[::10]:
            db.new_collection("Things").create({"n": 1})
        ids = [db.id for db in made]
        keys = [db.key for db in made]
        logs = [db.log_id for db in made]
    with Peer(repo) as peer:
        dbs = peer.list_dbs()
        assert [db.id for db in dbs] == ids  # creation order
        assert [db.name for db in dbs] == [f"db-{i}" for i in range(50)]
        assert [db.key for db in dbs] == keys
        assert [db.log_id for db in dbs] == logs
        for i, db in enumerate(dbs):
            if i % 10 == 0:
                assert db["Things"].count() == 1
            else:
                assert db.list_collections() == []


def test_db_and_collection_hydrate_after_restart(repo: Path) -> None:
    with Peer(repo) as peer:
        identity = str(peer.identity.public)
        db = peer.new_db("hydrate")
        things = db.new_collection(
            "Things",
            schema=SCHEMA,
            indexes=[Index("name", unique=True), "n"],
            write_validator="return event.patch.type !== 'delete'",
        )
        ids = things.create({"name": "a", "n": 1}, {"name": "b", "n": 2})
        info = db.collection_info("Things")
        docs = things.find()
        counter = db._repo.get_head(db.id, db.log_id).counter
        db_id, log_id = db.id, db.log_id
    with Peer(repo) as peer:
        assert str(peer.identity.public) == identity  # the same peer
        db = peer.get_db(db_id)
        assert db.name == "hydrate" and db.log_id == log_id
        assert db.collection_info("Things") == info
        things = db["Things"]
        assert things.find() == docs
        assert db._repo.get_head(db.id, db.log_id).counter == counter
        # and it keeps working: validator, unique index, the log
        with pytest.raises(Exception, match="validator"):
            things.delete(ids[0])
        with pytest.raises(Exception, match="unique"):
            things.create({"name": "a"})
        things.create({"name": "c", "n": 3})
        assert db._repo.get_head(db.id, db.log_id).counter == counter + 1
        assert things.count() == 3


def test_deleted_db_stays_gone_after_restart(repo: Path) -> None:
    with Peer(repo) as peer:
        keep = peer.new_db("keep")
        gone = peer.new_db("gone")
        last = peer.new_db("last")
        for db in (keep, gone, last):
            db.new_collection("Things", indexes=["n"]).create({"_id": "x", "n": 1})
        feed = gone.listen()
        peer.delete_db(gone.id)
        assert feed.closed
        with pytest.raises(DBNotFound):
            peer.get_db(gone.id)
        assert [db.name for db in peer.list_dbs()] == ["keep", "last"]
        gone_id, keep_id, last_id = gone.id, keep.id, last.id
    with Peer(repo) as peer:
        with pytest.raises(DBNotFound):
            peer.get_db(gone_id)
        assert [db.id for db in peer.list_dbs()] == [keep_id, last_id]
        # the neighbours' documents are intact
        for db_id in (keep_id, last_id):
            assert peer.get_db(db_id)["Things"].find_by_id("x")["n"] == 1
        # the id can be used again, for an empty database
        again = peer.new_db("again", thread_id=gone_id)
        assert again.list_collections() == []
        with pytest.raises(CollectionNotFound):
            again["Things"]
    with Peer(repo) as peer:
        assert [db.name for db in peer.list_dbs()] == ["keep", "last", "again"]


def test_deleted_db_documents_do_not_leak_into_a_new_db(repo: Path) -> None:
    with Peer(repo) as peer:
        old = peer.new_db("old")
        old.new_collection("Things").create({"_id": "x"})
        peer.delete_db(old.id)
        new = peer.new_db("new")
        things = new.new_collection("Things")
        assert things.count() == 0
        with pytest.raises(InstanceNotFound):
            things.find_by_id("x")


def test_second_peer_on_the_same_path(repo: Path) -> None:
    with Peer(repo) as peer:
        peer.new_db("mine")
        with pytest.raises(RepoInUse):
            Peer(repo)
        assert [db.name for db in peer.list_dbs()] == ["mine"]  # the first is unharmed
    with Peer(repo) as peer:  # released on close
        assert [db.name for db in peer.list_dbs()] == ["mine"]


def test_closed_peer(repo: Path) -> None:
    peer = Peer(repo)
    peer.close()
    peer.close()  # twice is fine
    assert peer.closed
    with pytest.raises(RepoClosed):
        peer.new_db("late")
    with pytest.raises(RepoClosed):
        peer.list_dbs()


def test_memory_peer_leaves_nothing_behind() -> None:
    peer = Peer(memory=True)
    path = Path(peer.repo.path)
    db = peer.new_db("temp")
    db.new_collection("Things").create({"n": 1})
    assert path.exists()
    peer.close()
    assert not path.exists()
    with Peer(memory=True) as other:
        other_path = Path(other.repo.path)
        assert other_path != path
    assert not other_path.exists()


def test_memory_peers_are_independent() -> None:
    with Peer(memory=True) as a, Peer(memory=True) as b:
        a.new_db("only-in-a")
        assert b.list_dbs() == []
        assert a.identity.public != b.identity.public


def test_clock_survives_restart_after_future_events(repo: Path) -> None:
    """Stamps stay monotonic across a restart after merging a peer's clock that runs ahead."""
    with Peer(memory=True) as ahead_peer:
        local = Peer(repo)
        db = local.new_db("skew")
        ahead = replicas.replica(ahead_peer, db)
        ahead.hlc = HLC(physical=lambda: time.time_ns() + 60 * 10**9)  # a minute ahead
        ahead.new_collection("Things")
        ahead["Things"].create({"_id": "theirs", "v": 1})
        replicas.sync(db, ahead)
        local.close()
    with Peer(repo) as local:
        db = local.get_db(db.id)
        db["Things"].save({"_id": "theirs", "v": 2})  # must sort after their create
        db["Things"].create({"_id": "mine"})
        assert db["Things"].find_by_id("theirs")["v"] == 2
        assert db.lost_writes() == []


def test_clock_survives_restart_with_only_a_collection_event(repo: Path) -> None:
    """BUG (manager.py Manager._latest_stamp): on open, the clock is restored only from
    instance events (the ``order`` table), not from collection events. A peer that received
    a collection created by a peer whose clock runs ahead, and restarts before any instance
    event of it, stamps its next write BEFORE the collection's creation: the write fails
    with CollectionNotFound ("does not exist at this point") until its clock catches up."""
    with Peer(memory=True) as ahead_peer:
        local = Peer(repo)
        db = local.new_db("skew")
        ahead = replicas.replica(ahead_peer, db)
        ahead.hlc = HLC(physical=lambda: time.time_ns() + 60 * 10**9)
        ahead.new_collection("Things")
        replicas.sync(db, ahead)
        local.close()
    with Peer(repo) as local:
        db = local.get_db(db.id)
        db["Things"].create({"_id": "after-restart"})
        assert db["Things"].has("after-restart")
