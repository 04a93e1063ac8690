"""Writer proofs and members, wired into the document store (docs/access.md).

Records built by hand (:mod:`members_helpers`) stand for a peer running modified code:
each rule is checked on the receiving replica, which must reject the record, never apply
it, and show it in ``db.rejected()``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import ExitStack

import cbor2
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from members_helpers import (
    NO_PROOF,
    assert_settled,
    forged_create,
    forged_grant,
    forged_strip,
    handoff_all,
    state,
)
from replicas import know_log, log_records, replica

import threadkit as tk
from threadkit.core.writerproof import delegate
from threadkit.db.database import Database
from threadkit.db.events import decode_record_body
from threadkit.db.gate import Attested
from threadkit.errors import PermissionDenied, ScriptRejected

ONLY_OWNER = "return !instance || instance.owner === writer;"


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as s:
        yield s


def peers(stack: ExitStack, n: int) -> list[tk.Peer]:
    return [stack.enter_context(tk.Peer(memory=True)) for _ in range(n)]


def members_db(stack: ExitStack, n: int = 3) -> list[Database]:
    """A database with members owned by the first peer, replicas in the others, synced."""
    ps = peers(stack, n)
    owner = ps[0].new_db("club", open=False)
    owner.new_collection("Notes", write_validator=ONLY_OWNER)
    dbs = [owner] + [replica(p, owner) for p in ps[1:]]
    for db in dbs[1:]:
        handoff_all(db, owner)
    return dbs


def rejected_reasons(db: Database) -> list[str]:
    return list(db.rejected()["reason"])


# ------------------------------------------------------------------ writer proofs


def test_every_record_carries_a_delegation_checked_on_receipt(stack: ExitStack) -> None:
    a, b = peers(stack, 2)
    db = a.new_db("open")
    db.new_collection("Notes").create({"n": 1})
    (record,) = log_records(db)[1:]
    body = decode_record_body(record.read_body(db.key))
    assert body.proof == delegate(a.identity, thread_id=db.id, log=db.log_key.public).to_node()
    other = replica(b, db)
    handoff_all(other, db)
    assert other["Notes"].count() == 1 and other.rejected().empty and other.access == "open"


def test_a_record_claiming_another_identity_is_rejected(stack: ExitStack) -> None:
    a, b = peers(stack, 2)
    origin = a.new_db("open")
    origin.new_collection("Notes", write_validator=ONLY_OWNER)
    mallory = replica(b, origin)
    handoff_all(mallory, origin)
    # the log key vouches for writer = a's identity, with mallory's own delegation
    forged_create(mallory, "Notes", "x", signer=b.identity, author=a.identity.public)
    # a proof made for another log
    other_log = tk.Identity.generate()
    proof = delegate(b.identity, thread_id=origin.id, log=other_log.public).to_node()
    forged_create(mallory, "Notes", "y", proof=proof)
    # a signature that is not b's
    bad = dict(proof, sig=bytes(64))
    forged_create(mallory, "Notes", "z", proof=bad)
    handoff_all(origin, mallory)
    assert origin["Notes"].count() == 0
    reasons = rejected_reasons(origin)
    assert len(reasons) == 3
    assert "names writer" in reasons[0] and "does not verify" in reasons[1]
    assert all(r.startswith("writer proof") for r in reasons)


def test_a_bare_public_key_cannot_be_written_as(stack: ExitStack) -> None:
    (a,) = peers(stack, 1)
    db = a.new_db("open")
    notes = db.new_collection("Notes", write_validator=ONLY_OWNER)
    alice = tk.Identity.generate()
    before = log_records(db)
    for call in (
        lambda: notes.create({"owner": str(alice.public)}, identity=alice.public),
        lambda: notes.save({"_id": "x"}, identity=str(alice.public)),
        lambda: notes.delete("x", identity=alice.public),
        lambda: notes.write_txn(identity=alice.public),
    ):
        with pytest.raises(PermissionDenied, match="not a proof"):
            call()
    assert log_records(db) == before
    # the identity itself (its private key held here) writes, and validators see it
    (doc_id,) = notes.create({"owner": str(alice.public)}, identity=alice)
    with pytest.raises(ScriptRejected):
        notes.update(doc_id, n=1)  # the peer's own identity is not the owner
    notes.update(doc_id, n=2, identity=alice)
    assert notes.find_by_id(doc_id)["n"] == 2
    # its own public key is its own identity
    notes.create({"owner": "x"}, identity=a.identity.public)


def test_attested_writes_name_the_daemon(stack: ExitStack) -> None:
    a, b = peers(stack, 2)
    db = a.new_db("open")
    notes = db.new_collection("Notes", write_validator=ONLY_OWNER)
    client = tk.Identity.generate().public
    notes.create({"_id": "c", "owner": str(client)}, identity=Attested(client))
    plain = db.new_collection("Plain")
    plain.create({"n": 1}, {"n": 2}, identity=Attested(client))  # the bulk path
    other = replica(b, db)
    handoff_all(other, db)
    assert other["Notes"].find_by_id("c")["owner"] == str(client)
    assert other["Plain"].count() == 2
    assert other.rejected().empty
    body = decode_record_body(log_records(db)[-1].read_body(db.key))
    assert isinstance(body.proof, dict) and body.proof["kind"] == "attested"


def test_a_record_without_proof_never_counts(stack: ExitStack) -> None:
    a, b, c = peers(stack, 3)
    opened = a.new_db("open")
    opened.new_collection("Notes")
    writer = replica(b, opened)
    handoff_all(writer, opened)
    # without a proof, pubKey would be the log key's word alone: anyone could be named
    forged_create(writer, "Notes", "legacy", proof=NO_PROOF, author=a.identity.public)
    handoff_all(opened, writer)
    assert opened["Notes"].count() == 0
    assert rejected_reasons(opened) == ["no writer proof: every record must show its writer"]

    owner, member = members_db(stack, 2)
    owner.grant(member.identity.public, "writer")
    handoff_all(member, owner)
    forged_create(member, "Notes", "legacy", proof=NO_PROOF)
    handoff_all(owner, member)
    assert owner["Notes"].count() == 0
    assert rejected_reasons(owner) == ["no writer proof: every record must show its writer"]
    del c


# ------------------------------------------------------------------------- roles


def test_the_owner_and_members_table(stack: ExitStack) -> None:
    owner, b, c = members_db(stack)
    assert owner.access == "members" == b.access
    owner.grant(b.identity.public, "writer")
    owner.grant(c.identity, "reader")
    handoff_all(b, owner)
    table = b.members().set_index("identity")
    assert list(b.members().columns) == ["identity", "role", "granted_by", "when"]
    assert table.loc[str(owner.identity.public), "role"] == "owner"
    assert table.loc[str(b.identity.public), "role"] == "writer"
    assert table.loc[str(c.identity.public), "granted_by"] == str(owner.identity.public)
    assert b.role_of(c.identity.public) == "reader"
    owner.revoke(c.identity.public)
    assert owner.role_of(c.identity.public) == "none"
    with pytest.raises(tk.errors.InvalidInput):
        owner.grant(b.identity.public, "superuser")


def test_an_open_database_has_no_members_to_change(stack: ExitStack) -> None:
    (a,) = peers(stack, 1)
    db = a.new_db("open")
    with pytest.raises(PermissionDenied, match="open"):
        db.grant(tk.Identity.generate().public, "writer")
    assert db.members().empty and db.role_of(a.identity.public) == "none"


def test_local_writes_without_the_role_raise_before_writing(stack: ExitStack) -> None:
    owner, b, _ = members_db(stack)
    before = log_records(b)
    with pytest.raises(PermissionDenied, match="may not write documents"):
        b["Notes"].create({"owner": "b"})
    with pytest.raises(PermissionDenied, match="may not change collections"):
        b.new_collection("Mine")
    with pytest.raises(PermissionDenied, match="not admin"):
        b.grant(b.identity.public, "admin")
    assert log_records(b) == before
    owner.grant(b.identity.public, "writer")
    handoff_all(b, owner)
    b["Notes"].create({"owner": str(b.identity.public)})
    with pytest.raises(PermissionDenied, match="may not change collections"):
        b.update_collection("Notes")
    with pytest.raises(PermissionDenied, match="may not change collections"):
        b.delete_collection("Notes")
    assert b["Notes"].config.write_validator == ONLY_OWNER


def test_a_non_admins_collection_change_is_rejected_by_receivers(stack: ExitStack) -> None:
    owner, b, c = members_db(stack)
    owner.grant(b.identity.public, "writer")
    handoff_all(b, owner)
    forged_strip(b, "Notes")  # the attack: strip the validator
    forged_create(b, "Notes", "x")  # then write as before
    for peer in (owner, c):
        handoff_all(peer, owner, b)
        assert peer["Notes"].config.write_validator == ONLY_OWNER
        assert peer["Notes"].count() == 1  # the create stands, judged by the validator ...
    assert state(owner) == state(c)
    (reason,) = rejected_reasons(owner)
    assert "writer, not admin" in reason or "may not change collections" in reason


def test_a_readers_write_is_rejected_by_receivers(stack: ExitStack) -> None:
    owner, b, c = members_db(stack)
    owner.grant(b.identity.public, "reader")
    handoff_all(b, owner)
    forged_create(b, "Notes", "x")
    forged_grant(b, b.identity.public, "admin")
    for peer in (owner, c):
        handoff_all(peer, owner, b)
        assert peer["Notes"].count() == 0
    reasons = rejected_reasons(c)
    assert "reader: may not write documents" in reasons[0] and "not admin" in reasons[1]
    assert state(owner) == state(c)


def test_a_revoke_cuts_writes_the_revoker_had_not_seen(stack: ExitStack) -> None:
    owner, b, c = members_db(stack)
    owner.grant(b.identity.public, "writer")
    handoff_all(b, owner)
    handoff_all(c, owner)
    notes = b["Notes"]
    notes.create({"_id": "seen", "owner": str(b.identity.public)})
    handoff_all(owner, b)
    owner.revoke(b.identity.public)  # had seen "seen"
    notes.create({"_id": "late", "owner": str(b.identity.public)})  # b has not heard yet
    # c gets b's late write first (applies it), then the revoke: it rebuilds without it
    handoff_all(c, b)
    assert c["Notes"].has("late")
    feed = c.listen("Notes")
    handoff_all(c, owner)
    event = feed.get_nowait()  # the rebuild tells listeners what changed, nothing more
    assert event is not None and (event.instance_id, event.action) == ("late", "delete")
    assert feed.get_nowait() is None
    handoff_all(owner, b)
    for peer in (owner, c):
        assert [d["_id"] for d in peer["Notes"].find()] == ["seen"]
    assert state(owner) == state(c)
    assert any(w in rejected_reasons(owner)[0] for w in ("revoked by", "is none"))
    handoff_all(b, owner, c)
    assert state(b) == state(owner)
    with pytest.raises(PermissionDenied):
        notes.create({"owner": "b"})


def test_a_write_before_its_grant_arrives_is_applied_once_it_does(stack: ExitStack) -> None:
    owner, b, c = members_db(stack)
    owner.grant(b.identity.public, "writer")
    handoff_all(b, owner)
    b["Notes"].create({"_id": "w", "owner": str(b.identity.public)})
    handoff_all(c, b)  # the write, before the grant
    assert not c["Notes"].has("w") and len(c.rejected()) == 1
    handoff_all(c, owner)
    assert c["Notes"].has("w") and c.rejected().empty


def test_entries_survive_a_reopen(tmp_path: object, stack: ExitStack) -> None:
    path = str(tmp_path)
    with tk.Peer(path=path) as a:
        db = a.new_db("club", open=False)
        db.new_collection("Notes").create({"n": 1})
        thread_id = db.id
    with tk.Peer(path=path) as a:
        db = a.get_db(thread_id)
        assert db.access == "members" and db["Notes"].count() == 1
        assert db.role_of(a.identity.public) == "owner"


def test_entries_are_cbor_in_their_own_table(stack: ExitStack) -> None:
    owner, _, _ = members_db(stack)
    with owner._repo.transaction() as txn:
        raw = [bytes(v) for k, v in txn.cursor(owner._tables.access) if k.startswith(owner.prefix)]
    kinds = [cbor2.loads(v)["k"] for v in raw]
    assert kinds == ["genesis", "config"]


# ------------------------------------------------------------- any delivery order

ACTORS = 3
ROLES = ["writer", "reader", "admin"]
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(0, ACTORS - 1), st.sampled_from("abc")),
        st.tuples(st.just("grant"), st.integers(1, ACTORS - 1), st.sampled_from(ROLES)),
        st.tuples(st.just("revoke"), st.integers(1, ACTORS - 1), st.just("")),
        st.tuples(st.just("mode"), st.just(0), st.booleans()),
        st.tuples(st.just("sync"), st.integers(0, ACTORS - 1), st.integers(0, ACTORS - 1)),
    ),
    min_size=1,
    max_size=14,
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=_ops, seeds=st.lists(st.integers(0, 2**32), min_size=2, max_size=2))
def test_any_delivery_order_gives_the_same_state_and_rejections(
    ops: list[tuple[str, int, object]], seeds: list[int]
) -> None:
    with ExitStack() as stack:
        dbs = members_db(stack, ACTORS)
        owner = dbs[0]
        for op, who, arg in ops:
            db = dbs[who]
            try:
                if op == "write":
                    db["Notes"].save({"_id": str(arg), "owner": str(db.identity.public)})
                elif op == "grant":
                    dbs[1].grant(db.identity.public, str(arg))
                elif op == "revoke":
                    owner.revoke(db.identity.public)
                elif op == "mode":
                    owner.set_open(bool(arg))
                elif who != arg:
                    handoff_all(db, dbs[int(str(arg))])
            except ScriptRejected:
                pass
            except PermissionDenied:
                # refused here: modified code writes it anyway, the others must reject it
                if op == "write":
                    forged_create(db, "Notes", f"{arg}-{len(log_records(db))}")
                elif op == "grant":
                    forged_grant(dbs[1], db.identity.public, str(arg))
        states = []
        for seed in seeds:
            fresh = replica(stack.enter_context(tk.Peer(memory=True)), owner)
            for db in dbs:
                know_log(fresh, db)
            queues = {db.log_id: log_records(db) for db in dbs}
            rng = random.Random(seed)
            while any(queues.values()):
                log_id = rng.choice([k for k, v in queues.items() if v])
                take = rng.randint(1, len(queues[log_id]))
                batch, queues[log_id] = queues[log_id][:take], queues[log_id][take:]
                assert fresh.apply_records(log_id, batch).gap is None
            assert_settled(fresh)
            states.append(state(fresh))
        assert states[0] == states[1]
        event(f"rejected records: {min(len(states[0][1]), 3)}")
        for db in dbs:  # every actor, once it has everything, agrees too
            handoff_all(db, *[d for d in dbs if d is not db])
            assert state(db)[:3] == states[0][:3]
            assert_settled(db)


def test_a_peer_writes_as_the_identity_it_is_given(stack: ExitStack) -> None:
    alice = tk.Identity.generate()
    laptop = stack.enter_context(tk.Peer(memory=True, identity=alice))
    (phone,) = peers(stack, 1)
    db = laptop.new_db("mine", open=False)
    assert db.role_of(alice.public) == "owner"
    notes = db.new_collection("Notes", write_validator=ONLY_OWNER)
    notes.create({"_id": "n", "owner": str(alice.public)})
    other = replica(phone, db)
    handoff_all(other, db)
    assert other["Notes"].find_by_id("n")["owner"] == str(alice.public)
    assert other.members()["identity"].tolist() == [str(alice.public)]
    with pytest.raises(tk.errors.InvalidInput, match=r"tk\.Identity"):
        tk.Peer(memory=True, identity=alice.public)  # type: ignore[arg-type]


def test_an_admin_opens_and_closes_the_database(stack: ExitStack) -> None:
    owner, b, c = members_db(stack)
    with pytest.raises(PermissionDenied, match="not admin"):
        b.set_open(True)
    owner.set_open(True)
    handoff_all(b, owner)
    b["Notes"].create({"_id": "while-open", "owner": str(b.identity.public)})
    with pytest.raises(PermissionDenied, match="not admin"):
        b.grant(c.identity.public, "writer")  # open mode lets anyone write, not grant
    handoff_all(owner, b)
    owner.set_open(False)
    handoff_all(b, owner)
    with pytest.raises(PermissionDenied, match="may not write documents"):
        b["Notes"].create({"owner": str(b.identity.public)})
    handoff_all(c, owner, b)
    assert [d["_id"] for d in c["Notes"].find()] == ["while-open"]
    assert state(c) == state(owner)
    with pytest.raises(tk.errors.InvalidInput):
        owner.set_open("yes")  # type: ignore[arg-type]
