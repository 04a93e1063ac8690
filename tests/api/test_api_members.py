"""Members through a daemon: NewDB's owner is the token's identity, threadkit's Members
service for tk.Client, roles enforced on API reads and writes (PERMISSION_DENIED), and
databases requiring direct proof (docs/access.md, docs/daemon.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_procs import Daemon

import threadkit as tk
from threadkit import errors
from threadkit.api.proto import members_pb2 as mpb
from threadkit.core.identity import PublicKey

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def closed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon whose NewDB makes databases with members (``--membersOnly``)."""
    child = Daemon(Path(tmp_path_factory.mktemp("closed")) / "repo", "--membersOnly")
    child.wait_ready()
    yield child
    assert child.stop() == 0, child.log()


def client(daemon: Daemon, identity: tk.Identity | None = None) -> tk.Client:
    c = tk.Client(daemon.target, timeout=20)
    if identity is not None:
        c.get_token(identity)
    return c


def test_members_only_newdb_is_owned_by_the_token_identity(closed: Daemon) -> None:
    owner, writer, reader, stranger = (tk.Identity.generate() for _ in range(4))
    host = str(PublicKey.from_peer_id(closed.peer_id))
    with client(closed, owner) as mine:
        db = mine.new_db("club")
        assert db.access == "members"
        roles = dict(zip(db.members()["identity"], db.members()["role"], strict=True))
        assert roles == {str(owner.public): "owner", host: "admin"}  # the hosting daemon
        notes = db.new_collection("Notes")
        notes.create({"_id": "o", "by": "owner"})
        db.grant(writer.public, "writer")
        db.grant(str(reader.public), "reader")
        assert db.role_of(writer.public) == "writer" and db.role_of(stranger.public) == "none"
        granted = db.members().set_index("identity")["granted_by"]
        assert granted[str(writer.public)] == str(owner.public)

    with client(closed, writer) as w:
        w.get_db(db.id)["Notes"].create({"_id": "w", "by": "writer"})
        with pytest.raises(errors.PermissionDenied, match="not admin: may not grant"):
            w.get_db(db.id).grant(stranger.public, "reader")
        with pytest.raises(errors.PermissionDenied, match="may not change collections"):
            w.get_db(db.id).new_collection("Mine")

    with client(closed, reader) as r:
        coll = r.get_db(db.id)["Notes"]
        assert sorted(d["_id"] for d in coll.find()) == ["o", "w"]
        with pytest.raises(errors.PermissionDenied, match="reader: may not write"):
            coll.create({"by": "reader"})
        with pytest.raises(errors.PermissionDenied):
            coll.save({"_id": "o", "by": "reader"})

    with client(closed, stranger) as s:
        coll = s.get_db(db.id)["Notes"]
        for read in (coll.find, lambda: coll.find_by_id("o"), lambda: coll.has("o")):
            with pytest.raises(errors.PermissionDenied, match="none: may not read"):
                read()
        with pytest.raises(errors.PermissionDenied):
            coll.create({"by": "stranger"})
        with pytest.raises(errors.PermissionDenied):
            s.get_db(db.id).delete_collection("Notes")

    with client(closed, owner) as mine:
        db = mine.get_db(db.id)
        db.revoke(writer.public)
        assert db.role_of(writer.public) == "none"
    with client(closed, writer) as w, pytest.raises(errors.PermissionDenied):
        w.get_db(db.id)["Notes"].create({"by": "revoked"})
    with client(closed, writer) as w, pytest.raises(errors.PermissionDenied, match="may not read"):
        w.get_db(db.id)["Notes"].find()


def test_direct_proof_refuses_the_daemons_attested_writes(closed: Daemon) -> None:
    owner = tk.Identity.generate()
    with client(closed, owner) as mine:
        db = mine.new_db("direct")
        notes = db.new_collection("Notes")
        notes.create({"n": 1})
        db.set_direct(True)  # attested, accepted: direct proof was not required yet
        with pytest.raises(errors.PermissionDenied, match="requires direct proof"):
            notes.create({"n": 2})
        with pytest.raises(errors.PermissionDenied, match="requires direct proof"):
            db.set_direct(False)  # the daemon cannot lift it for its clients
        assert [d["n"] for d in notes.find()] == [1]


def test_open_newdb_has_an_owner_and_lets_anyone_write(daemon: Daemon) -> None:
    owner, stranger = tk.Identity.generate(), tk.Identity.generate()
    with client(daemon, owner) as mine:
        db = mine.new_db("open")
        assert db.access == "open"
        assert db.role_of(owner.public) == "owner"
        db.new_collection("Notes").create({"by": "owner"})
    with client(daemon, stranger) as s:
        theirs = s.get_db(db.id)
        theirs["Notes"].create({"by": "stranger"})  # open: anyone with access writes
        assert len(theirs["Notes"].find()) == 2
        with pytest.raises(errors.PermissionDenied, match="not admin: may not grant"):
            theirs.grant(stranger.public, "admin")
    with client(daemon) as host:  # without a token: the daemon's own identity, an admin
        host.get_db(db.id).grant(stranger.public, "writer")
        assert host.get_db(db.id).role_of(stranger.public) == "writer"


def test_an_embedded_peer_sees_the_daemons_owner_and_accepts_its_attestations(
    closed: Daemon,
) -> None:
    owner, writer = tk.Identity.generate(), tk.Identity.generate()
    with client(closed, owner) as mine:
        db = mine.new_db("shared")
        db.new_collection("Notes").create({"_id": "x"})
        db.grant(writer.public, "writer")
        info = db.info()
    with tk.Peer(memory=True, network=True, identity=writer) as peer:
        joined = peer.new_db_from_addr(info.addrs[0], info.key)
        assert joined.role_of(owner.public) == "owner"
        assert joined.role_of(writer.public) == "writer"
        assert joined.rejected().empty and joined["Notes"].count() == 1
        # with its own key the writer writes directly; a bare public key reads nothing
        joined["Notes"].create({"_id": "y"})
        with pytest.raises(errors.PermissionDenied, match="cannot read as"):
            joined["Notes"].find(identity=owner.public)


def test_bad_members_requests(closed: Daemon) -> None:
    owner = tk.Identity.generate()
    with client(closed, owner) as mine:
        db = mine.new_db("bad")
        with pytest.raises(errors.InvalidInput, match="role must be one of"):
            db.grant(owner.public, "superuser")
        with pytest.raises(errors.InvalidInput):
            db.grant("not a key", "reader")
        with pytest.raises(errors.InvalidInput):
            db.set_open("yes")  # type: ignore[arg-type]
        with pytest.raises(errors.InvalidInput, match="sets open, direct or both"):
            mine.call("SetMode", mpb.SetModeRequest(dbID=db.id.to_bytes()), api=mine.members_api)
        with pytest.raises(errors.PermissionDenied, match="owner's role cannot be changed"):
            db.revoke(owner.public)
        with pytest.raises(errors.DBNotFound):
            mine.get_db(tk.ThreadID.new()).members()
        with pytest.raises(errors.InvalidToken):
            tk.Client(closed.target, token="forged").get_db(db.id).members()
