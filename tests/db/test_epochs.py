"""Read revocation by key rotation, wired into the document store (docs/access.md).

A revoke of a member who could read starts a new key epoch sealed to the remaining
members; records written after it are encrypted under the new epoch; a record whose
epoch key a peer does not hold is kept locked and applied when the key arrives.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from members_helpers import assert_settled, forge, handoff_all, state
from replicas import know_log, log_records, replica

import threadkit as tk
from threadkit.core.records import Record, open_record
from threadkit.core.sealing import SealedKey
from threadkit.core.symmetric import SymmetricKey
from threadkit.db import epochs, members
from threadkit.db.database import Database
from threadkit.db.events import decode_record_body
from threadkit.db.gate import Attested
from threadkit.db.members import member_node
from threadkit.errors import DecryptionError, PermissionDenied, ScriptRejected


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as s:
        yield s


def club(stack: ExitStack, roles: list[str]) -> list[Database]:
    """The owner's database and one replica per role, each granted it, all synced."""
    ps = [stack.enter_context(tk.Peer(memory=True)) for _ in range(len(roles) + 1)]
    owner = ps[0].new_db("club", open=False)
    owner.new_collection("Notes")
    dbs = [owner] + [replica(p, owner) for p in ps[1:]]
    for db, role in zip(dbs[1:], roles, strict=True):
        owner.grant(db.identity.public, role)
    for db in dbs[1:]:
        handoff_all(db, owner)
    return dbs


def ids(db: Database) -> list[str]:
    return [d["_id"] for d in db["Notes"].find()]


def entry_kinds(db: Database) -> list[str]:
    with db._repo.transaction() as txn:
        return [e.kind for e in members.iter_entries(txn, db._tables.access, db.prefix)]


def test_a_revoke_rotates_the_read_key_for_the_remaining_members(stack: ExitStack) -> None:
    owner, b, c = club(stack, ["writer", "reader"])
    b["Notes"].create({"_id": "before"})
    handoff_all(owner, b)
    handoff_all(c, b)
    revoke = owner.revoke(b.identity.public)
    assert revoke.epoch == 0  # membership records stay readable with the thread key
    body = owner.gate.read_body(revoke)
    assert body == revoke.read_body(owner.key)
    owner["Notes"].create({"_id": "after"})
    after = log_records(owner)[-1]
    assert after.epoch == 1
    for db in (b, c):
        handoff_all(db, owner)
    assert ids(owner) == ids(c) == ["after", "before"]
    assert ids(b) == ["before"]  # it keeps what it had, and nothing written after
    assert state(owner) == state(c)
    assert "locked" in entry_kinds(b) and b.rejected().empty  # locked is not rejected
    assert [r.epoch for r in on_disk(b, owner.log_id)][-2:] == [0, 1]


def on_disk(db: Database, log_id: str) -> list[Record]:
    """The records of ``log_id`` as ``db``'s peer stored them."""
    public = db._repo.get_log(db.id, log_id).public
    return [
        open_record(s.blocks, service_key=db.key, log_key=public, cid=s.cid)
        for s in db._repo.read_log(db.id, log_id)
    ]


def test_the_revoked_peer_reads_nothing_after_the_rotation_on_its_disk(stack: ExitStack) -> None:
    owner, b, c = club(stack, ["writer", "writer"])
    owner.revoke(b.identity.public)
    handoff_all(c, owner)
    c["Notes"].create({"_id": "c-after"})
    owner["Notes"].create({"_id": "o-after"})
    handoff_all(b, owner, c)
    opened, locked = 0, 0
    for log_id in (owner.log_id, c.log_id):
        for record in on_disk(b, log_id):  # with the read key it held
            try:
                record.read_body(b.key)
                opened += 1
            except DecryptionError:
                locked += 1
                assert record.epoch == 1
    assert locked == 2 and opened == len(on_disk(b, owner.log_id)) - 1 and ids(b) == []
    with pytest.raises(DecryptionError):
        b.gate.read_body(log_records(c)[-1])


def test_a_record_before_its_key_waits_then_is_applied(stack: ExitStack) -> None:
    owner, b, c, d = club(stack, ["writer", "writer", "reader"])
    owner.revoke(b.identity.public)
    handoff_all(c, owner)
    c["Notes"].create({"_id": "sealed"})
    handoff_all(d, c)  # before the revoke that carries d's key
    assert ids(d) == [] and "locked" in entry_kinds(d)
    assert d.rejected().empty
    feed = d.listen("Notes")
    handoff_all(d, owner)
    assert ids(d) == ["sealed"]
    got = feed.get_nowait()
    assert got is not None and got.instance_id == "sealed"
    assert "locked" not in entry_kinds(d)
    assert state(d) == state(c)


def test_a_member_granted_after_a_rotation_gets_every_epoch(stack: ExitStack) -> None:
    owner, b = club(stack, ["writer"])
    owner.revoke(b.identity.public)
    owner["Notes"].create({"_id": "e1"})
    late_peer = stack.enter_context(tk.Peer(memory=True))
    late = replica(late_peer, owner)
    handoff_all(late, owner)
    assert ids(late) == []  # joined with the address and key only: epoch 0
    owner.grant(late.identity.public, "reader")
    handoff_all(late, owner)
    assert ids(late) == ["e1"]
    assert late.history()["rejected"].tolist().count(True) == 0


def test_a_grant_concurrent_with_a_rotation_is_sealed_the_next_time(stack: ExitStack) -> None:
    owner, a, b = club(stack, ["admin", "writer"])
    x_peer = stack.enter_context(tk.Peer(memory=True))
    x = replica(x_peer, owner)
    a.grant(x.identity.public, "reader")  # a has not seen the revoke
    owner.revoke(b.identity.public)  # sealed to owner and a, not to x
    owner["Notes"].create({"_id": "n"})
    handoff_all(x, owner, a)
    assert ids(x) == []
    handoff_all(owner, a)
    owner.set_open(False)  # any membership record by an admin seals what is owed
    handoff_all(x, owner)
    assert ids(x) == ["n"] and state(x)[0] == state(owner)[0]


def test_rotations_from_a_non_admin_count_for_nothing(stack: ExitStack) -> None:
    _, b, c = club(stack, ["writer", "reader"])
    with b._repo.transaction() as txn:
        heads = b.gate.heads(txn)
    keys = epochs.rotation(b.identity, b.id, 1, SymmetricKey.new(), [c.identity.public])
    stranger = tk.Identity.generate().public
    node = member_node("revoke", b.hlc.now(), heads, target=stranger, keys=keys)
    forge(b, [], member=node)
    handoff_all(c, b)
    with c._repo.transaction() as txn:
        assert c.gate.ring(txn).keys == {}
    assert "not admin" in c.rejected()["reason"].iloc[0]
    with pytest.raises(PermissionDenied):
        b.revoke(c.identity.public)  # and unmodified code does not even write it


def test_keys_survive_a_reopen(tmp_path: object, stack: ExitStack) -> None:
    path = str(tmp_path)
    other = stack.enter_context(tk.Peer(memory=True))
    with tk.Peer(path=path) as a:
        db = a.new_db("club", open=False)
        db.new_collection("Notes")
        b = replica(other, db)
        db.grant(b.identity.public, "reader")
        db.revoke(b.identity.public)
        thread_id = db.id
    with tk.Peer(path=path) as a:
        db = a.get_db(thread_id)
        db["Notes"].create({"_id": "x"})
        assert log_records(db)[-1].epoch == 1
        assert ids(db) == ["x"] and len(db.history()) == 2  # the epoch-1 record read too


def test_sealed_keys_go_to_the_remaining_members_only(stack: ExitStack) -> None:
    owner, b, c, d = club(stack, ["writer", "reader", "admin"])
    revoke = owner.revoke(b.identity.public)
    node = owner.gate.read_body(revoke)
    member = decode_record_body(node).member
    assert member is not None and member["epoch"] == 1
    recipients = {str(SealedKey.from_bytes(k).recipient) for k in member["keys"]}
    assert recipients == {str(x.identity.public) for x in (owner, c, d)}
    # a demotion leaves read access: no new epoch
    demote = owner.grant(d.identity.public, "reader")
    assert "epoch" not in (decode_record_body(owner.gate.read_body(demote)).member or {})


def test_a_revoke_a_daemon_attests_rotates_with_keys_the_daemon_sealed(
    stack: ExitStack,
) -> None:
    """A daemon (here an admin's peer) attests the owner's revoke: it seals the new epoch
    with its own key, the only one it holds, and every other peer accepts the rotation."""
    owner, daemon, gone, stays = club(stack, ["admin", "reader", "writer"])
    daemon.revoke(gone.identity.public, identity=Attested(owner.identity.public))
    daemon["Notes"].create({"_id": "after"})
    assert log_records(daemon)[-1].epoch == 1
    for db in (owner, stays, gone):
        handoff_all(db, daemon)
    for db in (owner, stays):
        assert db.role_of(gone.identity.public) == "none"
        assert 1 in _keys(db) and "after" in ids(db)
    assert 1 not in _keys(gone) and "after" not in ids(gone)


def test_an_open_database_never_rotates(stack: ExitStack) -> None:
    owner, b = club(stack, ["writer"])
    owner.set_open(True)
    owner.revoke(b.identity.public)
    owner["Notes"].create({"_id": "o"})
    assert log_records(owner)[-1].epoch == 0


# ------------------------------------------------------------- any delivery order

ACTORS = 4  # the owner, an admin, two members
ROLES = ["writer", "reader", "admin"]
_grant = st.tuples(st.just("grant"), st.integers(2, ACTORS - 1), st.sampled_from(ROLES))
_revoke = st.tuples(st.just("revoke"), st.integers(1, ACTORS - 1), st.sampled_from([0, 1]))
_sync = st.tuples(st.just("sync"), st.integers(0, ACTORS - 1), st.integers(0, ACTORS - 1))
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(0, ACTORS - 1), st.sampled_from("abc")),
        _grant, _grant, _revoke, _revoke, _sync, _sync, _sync,
    ),
    min_size=1,
    max_size=20,
)  # fmt: skip


def _keys(db: Database) -> dict[int, set[bytes]]:
    with db._repo.transaction() as txn:
        return {e: set(k) for e, k in db.gate.ring(txn).keys.items()}


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=_ops, seeds=st.lists(st.integers(0, 2**32), min_size=2, max_size=2))
@example(
    ops=[("revoke", 1, 0), ("revoke", 1, 1), ("sync", 2, 1), ("write", 2, "a")], seeds=[0, 0]
)  # an admin's self-revoke, cut by the owner's revoke: its epoch-1 key is never held
def test_any_delivery_order_gives_remaining_members_the_same_state(
    ops: list[tuple[str, int, object]], seeds: list[int]
) -> None:
    with ExitStack() as stack:
        dbs = club(stack, ["admin", "writer", "writer"])
        owner = dbs[0]
        for op, who, arg in ops:
            db = dbs[who]
            try:
                if op == "write":
                    db["Notes"].save({"_id": str(arg), "by": str(db.identity.public)})
                elif op == "grant":
                    dbs[1].grant(db.identity.public, str(arg))
                elif op == "revoke":
                    dbs[int(str(arg))].revoke(db.identity.public)
                elif who != arg:
                    handoff_all(db, dbs[int(str(arg))])
            except (PermissionDenied, ScriptRejected):
                pass
        # fresh replicas of the owner's identity, fed every log in random orders
        states = []
        for seed in seeds:
            peer = stack.enter_context(tk.Peer(memory=True, identity=owner.identity))
            fresh = replica(peer, owner)
            for db in dbs:
                know_log(fresh, db)
            queues = {db.log_id: log_records(db) for db in dbs}
            rng = random.Random(seed)
            while any(queues.values()):
                log_id = rng.choice([k for k, v in queues.items() if v])
                take = rng.randint(1, len(queues[log_id]))
                batch, queues[log_id] = queues[log_id][:take], queues[log_id][take:]
                assert fresh.apply_records(log_id, batch).gap is None
            held = _keys(fresh)
            with fresh._repo.transaction() as txn:
                entries = list(members.iter_entries(txn, fresh._tables.access, fresh.prefix))
                ring = fresh.gate.ring(txn)
            waiting = [e for e in entries if e.kind == "locked"]
            # a record waits only while no key held opens it (an epoch may have several
            # keys: one of a rotation that a concurrent revoke cut is never held)
            by_place = {
                (db.log_id, n): record
                for db in dbs
                for n, record in enumerate(log_records(db), start=1)
            }
            for entry in waiting:
                with pytest.raises(DecryptionError):
                    ring.read(by_place[(entry.log, entry.counter)])
            event(f"locked records left: {min(len(waiting), 1)}")
            assert_settled(fresh)
            states.append((state(fresh), held))
        assert states[0] == states[1]
        epochs_seen = max(states[0][1], default=0)
        event(f"epochs: {min(epochs_seen, 2)}")
        for db in dbs:  # every member holding the owner's keys agrees once it has everything
            handoff_all(db, *[d for d in dbs if d is not db])
            assert_settled(db)
        remaining = [db for db in dbs if owner.role_of(db.identity.public) != "none"]
        for db in remaining:
            if _keys(db) == states[0][1]:
                assert state(db)[:3] == states[0][0][:3]
            else:
                event("a member granted concurrently with a rotation lacks a key")


def test_a_rotation_a_late_revoke_cuts_stops_counting_everywhere(stack: ExitStack) -> None:
    owner, a, b, c = club(stack, ["admin", "writer", "writer"])
    a.revoke(b.identity.public)  # a rotates to its epoch 1 ...
    owner.revoke(a.identity.public)  # ... while the owner, not having seen it, revokes a
    handoff_all(c, a)
    c["Notes"].create({"_id": "under-a"})  # c writes under a's key
    assert log_records(c)[-1].epoch == 1 and ids(c) == ["under-a"]
    handoff_all(owner, a, c)
    handoff_all(c, owner)
    # a's revoke is void (cut by the owner's), so its key counts for nothing on any peer:
    # the record written under it is locked again, on its own writer too
    assert ids(owner) == ids(c) == []
    assert "locked" in entry_kinds(c) and "locked" in entry_kinds(owner)
    assert owner.role_of(b.identity.public) == "writer"
    c["Notes"].create({"_id": "under-owner"})  # now under the owner's epoch 1
    handoff_all(owner, c)
    handoff_all(b, owner, c)
    assert ids(owner) == ids(c) == ids(b) == ["under-owner"]


def test_concurrent_rotations_of_one_epoch_shut_out_both_revoked(stack: ExitStack) -> None:
    owner, a, x, y, w = club(stack, ["admin", "writer", "writer", "writer"])
    owner.revoke(x.identity.public)  # epoch 1, sealed to a, y and w (not x) ...
    a.revoke(y.identity.public)  # ... and concurrently epoch 1 by a, sealed to x (not y)
    handoff_all(w, owner, a)
    w["Notes"].create({"_id": "both"})  # w holds both keys of epoch 1: their combination
    assert log_records(w)[-1].epoch == 1
    for db in (owner, a, x, y):
        handoff_all(db, *[d for d in (owner, a, w) if d is not db])
    assert ids(owner) == ids(a) == ["both"]
    assert ids(x) == ids(y) == []  # each holds one of the two keys: neither reads it
    owner.grant(w.identity.public, "writer")  # a later rotation number goes past both
    owner.revoke(w.identity.public)
    assert decode_record_body(owner.gate.read_body(log_records(owner)[-1])).member["epoch"] == 2
