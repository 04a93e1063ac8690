"""A database's life cycle through a daemon: threadkit's ``Lifecycle`` service for tk.Client
(migrate, purge, snapshots, verify, compact; docs/daemon.md "Life cycle"), against a real
``threadkit daemon`` process, with embedded peers on the other end of the thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_procs import Daemon

import threadkit as tk
from tests.e2e.waits import wait_for_docs
from threadkit import errors
from threadkit.api.proto import lifecycle_pb2 as lpb
from threadkit.core.identity import PublicKey
from threadkit.db import snapshots

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def closed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon whose NewDB makes databases with members (``--membersOnly``)."""
    child = Daemon(Path(tmp_path_factory.mktemp("closed")) / "repo", "--membersOnly")
    child.wait_ready()
    yield child
    assert child.stop() == 0, child.log()


def client(daemon: Daemon, identity: tk.Identity | None = None) -> tk.Client:
    c = tk.Client(daemon.target, timeout=30)
    if identity is not None:
        c.get_token(identity)
    return c


def plain(doc: dict[str, object]) -> dict[str, object]:
    """A document without its ``_mod``."""
    return {k: v for k, v in doc.items() if k != "_mod"}


def raw(c: tk.Client, method: str, request: object) -> object:
    """A Lifecycle call as any gRPC client sends it (no checks on the client side)."""
    return c.call(method, request, api=c.lifecycle_api)


def test_a_migration_through_the_daemon_reaches_an_embedded_peer(daemon: Daemon) -> None:
    owner = tk.Identity.generate()
    with client(daemon, owner) as mine, tk.Peer(memory=True, network=True) as peer:
        db = mine.new_db("shop")
        items = db.new_collection("Items", indexes=["name"])
        items.create({"_id": "a", "name": "pen", "price": "3"}, {"_id": "b", "name": "ink"})
        info = db.info()
        joined = peer.new_db_from_addr(info.addrs[0], info.key, timeout=30)
        assert joined["Items"].find_by_id("a")["name"] == "pen"

        db.migrate(
            "Items", [{"rename": "name", "to": "title"}, {"retype": "price", "to": "integer"}]
        )
        # the daemon's documents and config, as the embedded migrate leaves them
        assert plain(items.find_by_id("a")) == {"_id": "a", "title": "pen", "price": 3}
        assert [i["path"] for i in db.collection_info("Items")["indexes"]] == ["title"]
        joined.sync(timeout=30)
        assert plain(joined["Items"].find_by_id("a")) == {"_id": "a", "title": "pen", "price": 3}
        assert plain(joined["Items"].find_by_id("b")) == {"_id": "b", "title": "ink"}
        assert joined.rejected().empty  # the daemon's attestation for `owner` counted
        migrations = joined.history("Items")
        assert "migrate_collection" in set(migrations["action"].astype(str))

        # a migration with a new schema and explicit indexes; later writes are judged by it
        schema = {
            "type": "object",
            "properties": {"title": {"type": "string"}, "price": {"type": "integer"}},
            "required": ["title"],
        }
        db.migrate("Items", [{"default": "price", "value": 0}], schema=schema, indexes=[])
        assert db.collection_info("Items")["indexes"] == []
        with pytest.raises(errors.SchemaViolation):
            items.create({"price": 1})
        joined.sync(timeout=30)
        assert joined["Items"].find_by_id("b")["price"] == 0
        assert joined.collection_info("Items")["schema"]["required"] == ["title"]


def test_purge_through_the_daemon_reaches_an_embedded_peer(daemon: Daemon) -> None:
    with client(daemon, tk.Identity.generate()) as mine, tk.Peer(memory=True) as peer:
        db = mine.new_db("notes")
        notes = db.new_collection("Notes")
        notes.create({"_id": "n", "secret": "s3cret"}, {"_id": "k", "keep": True})
        info = db.info()
        joined = peer.new_db_from_addr(info.addrs[0], info.key, timeout=30)
        with pytest.raises(errors.WriteRejected, match="is not deleted"):
            notes.purge("n")  # live: refused, nothing written
        notes.delete("n")
        notes.purge("n")
        joined.sync(timeout=30)
        rows = [
            (str(r.action), r.data) for r in joined.timeline.events("Notes") if r.instance == "n"
        ]
        assert rows == [("create", {"_purged": True}), ("delete", {"_purged": True}),
                        ("purge", None)]  # fmt: skip
        assert plain(joined["Notes"].find_by_id("k")) == {"_id": "k", "keep": True}
        with pytest.raises(errors.InstanceNotFound):
            notes.purge("never")
        with pytest.raises(errors.InvalidDocument):
            notes.purge("")  # refused by the client, before sending
        with pytest.raises(errors.InvalidDocument):
            raw(mine, "Purge", lpb.PurgeRequest(dbID=db.id.to_bytes(), collectionName="Notes"))
        with pytest.raises(errors.CollectionNotFound):
            raw(
                mine,
                "Purge",
                lpb.PurgeRequest(dbID=db.id.to_bytes(), collectionName="No", instanceID="n"),
            )


def test_a_daemons_snapshot_bootstraps_a_joiner_that_trusts_it(daemon: Daemon) -> None:
    host = str(PublicKey.from_peer_id(daemon.peer_id))
    with tk.Peer(memory=True, network=True) as origin, client(daemon) as operator:
        made = origin.new_db("log")  # an embedded database without members
        rows = made.new_collection("Rows", indexes=["n"])
        rows.create([{"_id": f"r{i}", "n": i} for i in range(40)])
        for i in range(5):
            rows.save({"_id": "r1", "n": 100 + i})
        info = made.info()
        db = operator.new_db_from_addr(info.addrs[0], info.key, timeout=30)
        assert len(db["Rows"].find()) == 40

        snap = db.snapshot()
        assert snap.author == host and snap.status == "made" and snap.held
        assert snap.heads[made.log_id] == 7  # the collection, the create, five saves
        assert [s.cid for s in db.snapshots()] == [snap.cid]
        assert db.verify_snapshot(snap) is True
        assert db.verify_snapshot(str(snap)) is True
        assert db.snapshots()[0].status == "verified"

        # a joiner naming the daemon in trust= starts from its snapshot
        with tk.Peer(memory=True, network=True) as joiner:
            served = operator.get_db(db.id).info()
            copy = joiner.new_db_from_addr(served.addrs[0], served.key, timeout=30, trust=[host])
            assert snapshots.mark(copy, "base") is not None, "the joiner did not use the snapshot"
            assert copy["Rows"].find_by_id("r1")["n"] == 104
            assert sorted(d["_id"] for d in copy["Rows"].find()) == sorted(
                d["_id"] for d in rows.find()
            )

        # compaction: not while the origin has not written since the snapshot
        with pytest.raises(errors.InvalidInput, match="have not written since it"):
            db.compact(snap)
        rows.create({"_id": "after", "n": -1})
        assert wait_for_docs(db, lambda: db["Rows"].has("after"), 30), "no push to the daemon"
        # only the owner, an admin or the daemon itself may compact: this database has no
        # members, so only the daemon (a call without a token)
        with (
            client(daemon, tk.Identity.generate()) as stranger,
            pytest.raises(errors.PermissionDenied, match="may not compact"),
        ):
            stranger.get_db(db.id).compact(snap)
        done = db.compact(snap)
        assert done.snapshot == str(snap) and done.records == sum(snap.heads.values())
        assert done.events > 0
        with pytest.raises(errors.InvalidSnapshot):
            db.compact("not a cid")
        # after the compaction later writes still replicate through the daemon
        db["Rows"].create({"_id": "late", "n": 7})
        assert wait_for_docs(made, lambda: rows.has("late"), 30), "no push from the daemon"
        assert plain(rows.find_by_id("late")) == {"_id": "late", "n": 7}


def test_a_database_the_daemon_made_snapshots_and_a_member_bootstraps(daemon: Daemon) -> None:
    """NewDB gives a database with members (the token's identity owns it, the daemon is
    admin): its snapshot carries the membership records, and a joiner trusting the
    daemon starts from it with the same members and documents."""
    host = str(PublicKey.from_peer_id(daemon.peer_id))
    owner = tk.Identity.generate()
    with client(daemon, owner) as mine:
        db = mine.new_db("owned")
        notes = db.new_collection("Notes")
        notes.create([{"_id": f"n{i}", "v": i} for i in range(20)])
        snap = db.snapshot()
        assert snap.author == host and db.verify_snapshot(snap) is True
        notes.save({"_id": "n1", "v": 100})  # after the snapshot
        info = db.info()
        with tk.Peer(memory=True, network=True) as joiner:
            copy = joiner.new_db_from_addr(info.addrs[0], info.key, timeout=30, trust=[host])
            assert snapshots.mark(copy, "base") is not None, "the joiner did not use the snapshot"
            assert wait_for_docs(copy, lambda: copy["Notes"].find_by_id("n1")["v"] == 100, 30)
            ids = sorted(d["_id"] for d in copy["Notes"].find())
            assert ids == sorted(f"n{i}" for i in range(20))
            assert copy.role_of(owner.public) == "owner"
            assert copy.role_of(host) == "admin"


def test_bad_lifecycle_requests_change_nothing(daemon: Daemon) -> None:
    with client(daemon, tk.Identity.generate()) as mine:
        db = mine.new_db("bad")
        items = db.new_collection(
            "Items",
            schema={"type": "object", "properties": {"n": {"type": "string"}}},
        )
        items.create({"_id": "a", "n": "x"}, {"_id": "b", "n": "7"})
        before = db.collection_info("Items")
        raw_id = db.id.to_bytes()

        with pytest.raises(errors.InvalidMigration):
            db.migrate("Items", [{"rename": "n"}])  # refused by the client
        with pytest.raises(errors.InvalidMigration):
            db.migrate("Items", 42)
        with pytest.raises(errors.InvalidMigration, match="would not satisfy the new schema"):
            db.migrate(
                "Items",
                [{"retype": "n", "to": "integer"}],
                schema={"type": "object", "properties": {"n": {"type": "integer"}}},
            )
        with pytest.raises(errors.CollectionNotFound):
            db.migrate("Nope", [{"drop": "n"}])
        with pytest.raises(errors.InvalidSchema):
            db.migrate("Items", [{"drop": "n"}], schema="{}")  # type: ignore[arg-type]
        with pytest.raises(errors.InvalidIndex):
            db.migrate("Items", [{"drop": "n"}], indexes=[{"paths": "n"}])
        # the same refused by the daemon when a client sends them unchecked
        for request, kind in [
            (lpb.MigrateRequest(dbID=raw_id, collectionName="Items"), errors.InvalidMigration),
            (
                lpb.MigrateRequest(dbID=raw_id, collectionName="Items", transformJSON=b"[{"),
                errors.InvalidMigration,
            ),
            (
                lpb.MigrateRequest(
                    dbID=raw_id, collectionName="Items", transformJSON=b'[{"rename": "n"}]'
                ),
                errors.InvalidMigration,
            ),
            (
                lpb.MigrateRequest(
                    dbID=raw_id,
                    collectionName="Items",
                    transformJSON=b'[{"drop": "n"}]',
                    schemaJSON=b"[1]",
                ),
                errors.InvalidSchema,
            ),
            (
                lpb.MigrateRequest(
                    dbID=raw_id,
                    collectionName="Items",
                    transformJSON=b'[{"drop": "n"}]',
                    indexesJSON=b'{"path": "n"}',
                ),
                errors.InvalidIndex,
            ),
            (lpb.MigrateRequest(collectionName="Items"), errors.InvalidThreadID),
            (lpb.SnapshotRequest(dbID=tk.ThreadID.new().to_bytes()), errors.DBNotFound),
            (lpb.VerifySnapshotRequest(dbID=raw_id), errors.InvalidSnapshot),
            (lpb.VerifySnapshotRequest(dbID=raw_id, cid=b"\x01junk"), errors.InvalidSnapshot),
            (lpb.CompactRequest(dbID=raw_id), errors.InvalidSnapshot),
        ]:
            method = type(request).__name__.removesuffix("Request")
            with pytest.raises(kind):
                raw(mine, method, request)
        assert db.collection_info("Items") == before
        assert sorted((d["_id"], d["n"]) for d in items.find()) == [("a", "x"), ("b", "7")]

        with pytest.raises(errors.InvalidSnapshot):
            db.verify_snapshot("bafy-not-a-cid")  # refused by the client
        with pytest.raises(errors.InvalidSnapshot):
            db.verify_snapshot(12)  # type: ignore[arg-type]
        with pytest.raises(errors.InvalidInput):
            db.compact(b"\x01x", force="yes")  # type: ignore[arg-type]
        with pytest.raises(errors.InvalidToken):
            tk.Client(daemon.target, token="forged").get_db(db.id).snapshots()


def test_who_may_do_what_in_a_members_only_database(closed: Daemon) -> None:
    owner, admin, writer, reader, stranger = (tk.Identity.generate() for _ in range(5))
    with client(closed, owner) as mine:
        db = mine.new_db("club")
        notes = db.new_collection("Notes")
        notes.create({"_id": "o", "t": "owner's"}, {"_id": "w", "t": "writer's"})
        db.grant(admin.public, "admin")
        db.grant(writer.public, "writer")
        db.grant(reader.public, "reader")
        notes.delete("w")

    with client(closed, writer) as w:
        theirs = w.get_db(db.id)
        with pytest.raises(errors.PermissionDenied, match="may not change collections"):
            theirs.migrate("Notes", [{"rename": "t", "to": "text"}])
        with pytest.raises(errors.PermissionDenied, match="may not compact"):
            theirs.compact(b"\x01x")
        theirs["Notes"].purge("w")  # a writer purges a document it may delete
        assert theirs.snapshots() == []

    with client(closed, reader) as r:
        theirs = r.get_db(db.id)
        with pytest.raises(errors.PermissionDenied, match="may not write"):
            theirs["Notes"].purge("w")
        with pytest.raises(errors.PermissionDenied, match="may not write"):
            theirs.snapshot()
        assert theirs.snapshots() == []  # a reader may list them

    with client(closed, stranger) as s:
        theirs = s.get_db(db.id)
        for call in (
            theirs.snapshots,
            lambda: theirs.verify_snapshot(b"\x01x"),
            theirs.snapshot,
            lambda: theirs.compact(b"\x01x"),
            lambda: theirs.migrate("Notes", [{"drop": "t"}]),
            lambda: tk.api.client.RemoteCollection(theirs, "Notes").purge("w"),
        ):
            with pytest.raises(errors.PermissionDenied):
                call()

    with client(closed, admin) as a:
        theirs = a.get_db(db.id)
        theirs.migrate("Notes", [{"rename": "t", "to": "text"}])
        assert plain(theirs["Notes"].find_by_id("o")) == {"_id": "o", "text": "owner's"}
        with pytest.raises(errors.InvalidSnapshot):
            theirs.compact(b"\x01x")  # an admin gets past the role check to the snapshot's


def test_the_proxy_serves_the_lifecycle_service(daemon: Daemon) -> None:
    """grpc-web clients reach ``threadkit.pb.Lifecycle`` through the proxy port too."""
    from test_api_proxy import GrpcWebError, _run, http_call

    service = "/threadkit.pb.Lifecycle/"
    with client(daemon) as mine:
        db = mine.new_db("web")
        db.new_collection("Items").create({"_id": "a", "name": "pen"})

    async def scenario() -> None:
        request = lpb.MigrateRequest(
            dbID=db.id.to_bytes(),
            collectionName="Items",
            transformJSON=b'[{"rename": "name", "to": "title"}]',
        )
        await http_call(daemon.proxy, service + "Migrate", request, lpb.LifecycleReply)
        listed = await http_call(
            daemon.proxy,
            service + "ListSnapshots",
            lpb.ListSnapshotsRequest(dbID=db.id.to_bytes()),
            lpb.ListSnapshotsReply,
        )
        assert list(listed.snapshots) == []
        bad = lpb.VerifySnapshotRequest(dbID=db.id.to_bytes())
        with pytest.raises(GrpcWebError, match="a snapshot CID is required") as caught:
            await http_call(daemon.proxy, service + "VerifySnapshot", bad, lpb.VerifySnapshotReply)
        assert caught.value.code == 3  # INVALID_ARGUMENT

    _run(scenario())
    with client(daemon) as mine:
        items = mine.get_db(db.id)["Items"]
        assert plain(items.find_by_id("a")) == {"_id": "a", "title": "pen"}
