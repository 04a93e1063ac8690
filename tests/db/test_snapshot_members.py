"""Snapshots of databases with members (threadkit.db.snapmembers, threadkit.db.basestate).

A joiner that bootstraps from a members snapshot must end exactly where a peer that
replayed every record ends: the same members, verdicts and documents, byte for byte in
every table a snapshot holds; it reads the key epochs sealed to it and nothing else; and
a snapshot whose membership state does not follow from its records is refused before
anything is written.
"""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from members_helpers import NO_PROOF, assert_settled, forge
from members_helpers import state as member_state
from snapshot_helpers import exchange, members_cast, state

import threadkit as tk
from threadkit import errors
from threadkit.core import dagcbor
from threadkit.core.cid import cid_of
from threadkit.core.identity import Identity, peer_id_bytes
from threadkit.core.records import create_record
from threadkit.core.symmetric import SymmetricKey
from threadkit.db import basestate, bootstrap, members, snapmembers, snapshots
from threadkit.db.bootstrap import Offer
from threadkit.db.events import encode_body
from threadkit.db.handoff import replica
from threadkit.db.members import member_node


def _join(peer: Any, source: Any, snap: Any = None, trust: Any = None) -> Any:
    item = bootstrap.offer(source, snap)
    assert item is not None
    trusted = trust if trust is not None else [source.identity]
    return bootstrap.install(peer.manager, item, source.key, source.id, source.name, trusted)


def _ids(db: Any) -> list[str]:
    return sorted(d["_id"] for d in db["c"].find())


def test_a_joiner_from_a_members_snapshot_judges_later_records_as_a_full_replay() -> None:
    """Owner, writer, reader; the writer is revoked (the read key rotates), a snapshot is
    taken; the joiner (the reader) bootstraps from it. A write the revoked member makes
    afterwards, and a grant and writes after the snapshot, come out the same on the joiner
    as on a peer that replayed every record."""
    with members_cast("c") as (_o, w, j, f, db, wdb):
        wdb["c"].create({"_id": "w-before", "v": 1})
        exchange(db, wdb)
        db.revoke(w.identity.public)
        db["c"].create({"_id": "rotated", "v": 2})
        snap = db.snapshot()
        assert snapshots.chunks_of(snapshots.get_blocks(db, snap.cid)[0][1])["epoch"] == 1
        joined = _join(j, db)
        assert _ids(joined) == ["rotated", "w-before"]  # read under epoch 1, sealed to it
        full = replica(f, db)
        wdb["c"].create({"_id": "w-after", "v": 3})  # the revoked writer had not heard
        db.grant(w.identity.public, "reader")
        db["c"].save({"_id": "rotated", "v": 4})
        exchange(db, wdb, joined, full)
        assert _ids(joined) == _ids(full) == ["rotated", "w-before"]
        assert state(joined) == state(full)  # every table, byte for byte
        assert member_state(joined) == member_state(full)
        assert joined.role_of(w.identity.public) == "reader" == full.role_of(w.identity.public)
        rejected = joined.rejected()
        assert list(rejected["writer"]) == [str(w.identity.public)]
        assert "may not write" in rejected["reason"][0]
        assert_settled(joined)
        assert basestate.stale(joined) == []
        assert db.verify_snapshot(snap) is True  # the replay reads epoch 1 too
        with pytest.raises(errors.PermissionDenied):  # a reader may not write a snapshot
            joined.snapshot()


def test_a_bootstrapped_writer_snapshots_again_from_its_base_records() -> None:
    """A joiner holds no record before its snapshot: its own snapshot takes the membership
    records from its base's members blocks, and a third peer bootstraps from that."""
    with tk.Peer(memory=True) as o, tk.Peer(memory=True) as b, tk.Peer(memory=True) as c:
        db = o.new_db("m", open=False)
        db.new_collection("c")
        db.grant(b.identity.public, "writer")
        db.grant(c.identity.public, "reader")
        db["c"].create({"_id": "x"})
        first = _join(b, db, db.snapshot())
        first["c"].create({"_id": "from-b"})
        exchange(db, first)
        second = _join(c, first, first.snapshot(), trust=[b.identity])
        exchange(db, first, second)
        assert state(second) == state(db)
        assert member_state(second) == member_state(db)


def test_a_late_revoke_cutting_a_write_inside_the_snapshot_is_listed_as_stale() -> None:
    """O revokes writer B without having seen B's write; admin A had seen it and snapshots.
    The revoke reaches the joiner after its bootstrap: the verdicts are a full replay's,
    and the write, whose events the joiner never held, is listed as stale."""
    joiner = Identity.generate()
    with (
        tk.Peer(memory=True) as o,
        tk.Peer(memory=True) as a,
        tk.Peer(memory=True) as b,
        tk.Peer(memory=True, identity=joiner) as j,
        tk.Peer(memory=True, identity=joiner) as f,
    ):
        db = o.new_db("m", open=False)
        db.new_collection("c")
        db.grant(a.identity.public, "admin")
        db.grant(b.identity.public, "writer")
        db.grant(joiner.public, "reader")
        adb, bdb = replica(a, db), replica(b, db)
        exchange(db, adb, bdb)
        bdb["c"].create({"_id": "cut"})
        exchange(adb, bdb)
        db.revoke(b.identity.public)  # O has not seen "cut"
        joined = _join(j, adb, adb.snapshot(), trust=[a.identity])
        assert _ids(joined) == ["cut"]
        full = replica(f, db)
        exchange(db, adb, bdb, joined, full)
        assert _ids(full) == []
        assert state(joined)["access"] == state(full)["access"]
        assert member_state(joined)[1:] == member_state(full)[1:]
        assert basestate.stale(joined) == [(bdb.log_id, 1)]


def test_a_revoked_member_cannot_bootstrap_the_rotated_state() -> None:
    with tk.Peer(memory=True) as o, tk.Peer(memory=True) as m:
        db = o.new_db("m", open=False)
        db.new_collection("c")
        db.grant(m.identity.public, "writer")
        db["c"].create({"_id": "secret-before"})
        db.revoke(m.identity.public)
        db["c"].create({"_id": "secret-after"})
        db.snapshot()
        with pytest.raises(errors.InvalidSnapshot, match="key epoch 1"):
            _join(m, db, trust=[o.identity])
        assert m.list_dbs() == [] and not m.repo.has_thread(db.id)
        # the chunks are ciphertext under epoch 1: the thread key does not open them
        _manifest, *rest = snapshots.get_blocks(db, db.snapshots()[-1].cid) or []
        chunk = rest[0][1]
        assert b"secret-after" not in chunk
        key = SymmetricKey(db.key.read or b"")
        with pytest.raises(errors.InvalidSnapshot, match="does not open"):
            snapshots.read_chunk(chunk, key)


def test_a_members_snapshot_before_any_rotation_is_sealed_under_the_read_key() -> None:
    with tk.Peer(memory=True) as o, tk.Peer(memory=True) as b:
        db = o.new_db("m", open=False)
        db.new_collection("c")
        db["c"].create({"_id": "x"})
        db.grant(b.identity.public, "reader")
        snap = db.snapshot()
        manifest = snapshots.chunks_of(snapshots.get_blocks(db, snap.cid)[0][1])
        assert (manifest["epoch"], manifest["commits"], len(manifest["members"])) == (0, b"", 1)
        assert _ids(_join(b, db)) == ["x"]


# ------------------------------------------------------------------ forged


def _refused(peer: Any, db: Any, match: str, item: Offer | None = None) -> None:
    with pytest.raises(errors.InvalidSnapshot, match=match):
        bootstrap.install(
            peer.manager, item or bootstrap.offer(db), db.key, db.id, "m", [db.identity]
        )
    assert peer.list_dbs() == [] and not peer.repo.has_thread(db.id)


def _rewrite_access(db: Any, position: tuple[str, int], change: Any) -> None:
    """Change a stored access entry behind the gate (what a forger's code would do)."""
    with db._repo.transaction(write=True) as txn:
        entries = {
            (e.log, e.counter): e for e in members.iter_entries(txn, db._tables.access, db.prefix)
        }
        members.put_entry(txn, db._tables.access, db.prefix, change(entries[position]))
        members.new_mark(txn, db._tables.applied, db.prefix)


def test_a_membership_entry_that_does_not_match_its_record_is_refused() -> None:
    with tk.Peer(memory=True) as o, tk.Peer(memory=True) as b:
        db = o.new_db("m", open=False)
        db.new_collection("c")
        grant = db.grant(b.identity.public, "reader")
        assert grant is not None

        def promote(e: members.Entry) -> members.Entry:
            fields = {**e.fields, "role": int(members.ROLE_NAMES["admin"])}
            return members.Entry(e.log, e.counter, e.kind, e.stamp, e.author, fields, e.ok)

        _rewrite_access(db, (db.log_id, 3), promote)
        assert db.role_of(b.identity.public) == "admin"
        db.snapshot()
        _refused(b, db, "does not match its membership record")


def test_an_unsigned_grant_is_refused() -> None:
    """A forger's code counts a grant written without a writer proof; the snapshot then
    carries that record, and the joiner finds it does not count."""
    with tk.Peer(memory=True) as o, tk.Peer(memory=True) as b:
        db = o.new_db("m", open=False)
        db.new_collection("c")
        with db._repo.transaction() as txn:
            heads = db.gate.heads(txn)
        node = member_node("grant", db.hlc.now(), heads, target=b.identity.public, role="admin")
        forge(db, [], member=node, proof=NO_PROOF)
        counter = db._repo.get_head(db.id, db.log_id).counter
        assert db.role_of(b.identity.public) == "none"  # the gate does not count it

        def count(e: members.Entry) -> members.Entry:
            assert e.kind == "unproven"
            fields = {"heads": heads, "target": str(b.identity.public), "role": 3}
            return members.Entry(e.log, e.counter, "grant", e.stamp, e.author, fields, True)

        _rewrite_access(db, (db.log_id, counter), count)
        db.snapshot()
        _refused(b, db, "does not count: unproven")


def test_a_verdict_the_records_do_not_give_is_refused() -> None:
    with tk.Peer(memory=True) as o, tk.Peer(memory=True) as b:
        db = o.new_db("m", open=False)
        db.new_collection("c")
        db.grant(b.identity.public, "reader")
        db["c"].create({"_id": "x"})
        position = (db.log_id, db._repo.get_head(db.id, db.log_id).counter)

        def reject(e: members.Entry) -> members.Entry:
            return members.Entry(e.log, e.counter, e.kind, e.stamp, e.author, e.fields, False)

        _rewrite_access(db, position, reject)
        db.snapshot()
        _refused(b, db, "verdict of record")


def test_tampered_members_blocks_and_manifests_are_refused() -> None:
    with tk.Peer(memory=True) as o, tk.Peer(memory=True) as b:
        db = o.new_db("m", open=False)
        db.new_collection("c")
        db.grant(b.identity.public, "reader")
        db.snapshot()
        item = bootstrap.offer(db)
        assert item is not None
        _root, manifest = item.blocks[0]
        node = snapshots.chunks_of(manifest)
        listed = bytes(node["members"][0])
        blocks = dict(item.blocks)
        # a members block that does not hash to its CID
        flipped = blocks[listed][:-1] + bytes([blocks[listed][-1] ^ 1])
        bad = [(c, flipped if c == listed else blk) for c, blk in item.blocks]
        _refused(b, db, "forged snapshot", Offer(bad, item.record, item.log_key))
        # a members block left out
        short = [(c, blk) for c, blk in item.blocks if c != listed]
        _refused(b, db, "lacks members block", Offer(short, item.record, item.log_key))
        # a malformed one
        for junk in (b"\xff", cbor2.dumps({"t": "members", "r": [[b"x", 0]]})):
            with pytest.raises(errors.InvalidSnapshot, match="members block"):
                snapmembers.read_members(junk)
        # a malformed manifest
        node["epoch"] = -1
        with pytest.raises(errors.InvalidSnapshot, match="malformed members"):
            snapshots.chunks_of(dagcbor.encode(node))


def _forged_offer(db: Any, change: Any, chunks: Any = None) -> Offer:
    """An offer whose manifest ``change(node, blocks)`` rewrote, signed anew by the
    author's own keys (what its modified code could publish): only the joiner's
    membership checks stand between it and the install."""
    item = bootstrap.offer(db)
    assert item is not None
    node = snapshots.chunks_of(item.blocks[0][1])
    blocks = dict(item.blocks[1:])
    if chunks is not None:
        node["chunks"] = [c for c, _ in chunks]
        blocks.update(dict(chunks))
    change(node, blocks)
    node["heads"] = [
        {**h, "head": dagcbor.Link(h["head"]) if h["head"] else None} for h in node["heads"]
    ]
    for part in ("chunks", "members"):
        if part in node:
            node[part] = [dagcbor.Link(bytes(c)) for c in node[part]]
    manifest = dagcbor.encode(node)
    root = cid_of(manifest)
    head = next(h for h in snapshots.chunks_of(manifest)["heads"] if h["pub"] == item.log_key)
    body = encode_body([], db.gate.proof(db.identity, []), snapshot={"root": root, "t": [1, 0]})
    record = create_record(
        body, log_key=db.log_key, key=db.key, prev=bytes(head["head"]), author=db.identity.public
    )
    listed = snapshots.block_cids(snapshots.chunks_of(manifest))
    return Offer([(root, manifest), *[(c, blocks[c]) for c in listed]], record.blocks, item.log_key)


def test_forged_members_parts_signed_by_a_trusted_author_are_refused() -> None:
    with tk.Peer(memory=True) as o, tk.Peer(memory=True) as b, tk.Peer(memory=True) as c:
        db = o.new_db("m", open=False)
        db.new_collection("c")
        db.grant(b.identity.public, "reader")
        db.grant(c.identity.public, "reader")
        db["c"].create({"_id": "x"})
        db.snapshot()
        # the forging itself works: an unchanged manifest, signed anew, installs
        unchanged = _forged_offer(db, lambda node, blocks: None)
        assert _ids(bootstrap.install(c.manager, unchanged, db.key, db.id, "m", [o.identity])) == [
            "x"
        ]

        def drop_grant(node: Any, blocks: Any) -> None:
            cid = bytes(node["members"][0])
            rows = cbor2.loads(blocks[cid])["r"]
            kept = cbor2.dumps({"t": "members", "r": rows[:1]}, canonical=True)
            node["members"] = [cid_of(kept)]
            blocks[cid_of(kept)] = kept

        _refused(b, db, "membership entry without its record", _forged_offer(db, drop_grant))

        def foreign(node: Any, blocks: Any) -> None:
            cid = bytes(node["members"][0])
            rows = cbor2.loads(blocks[cid])["r"]
            rows[1][0] = peer_id_bytes(Identity.generate().public.peer_id)
            moved = cbor2.dumps({"t": "members", "r": rows}, canonical=True)
            node["members"] = [cid_of(moved)]
            blocks[cid_of(moved)] = moved

        _refused(b, db, "not one of the snapshot's records", _forged_offer(db, foreign))

        def no_members(node: Any, blocks: Any) -> None:
            for part in ("members", "epoch", "commits"):
                node.pop(part)

        with db.read_txn() as txn:
            plain, _ = snapshots.state_blocks(txn, db)  # the rows, not sealed
        _refused(b, db, "holds members but not their records", _forged_offer(db, no_members, plain))


# ------------------------------------------------------------------ property

NAMES = ("o", "a", "b", "j")
ROLES = ("reader", "writer", "admin")
steps = st.lists(
    st.one_of(
        st.tuples(st.just("grant"), st.integers(0, 2), st.integers(1, 3), st.sampled_from(ROLES)),
        st.tuples(st.just("revoke"), st.integers(0, 2), st.integers(1, 3), st.none()),
        st.tuples(st.just("write"), st.integers(0, 2), st.integers(0, 3), st.integers(-3, 3)),
        st.tuples(st.just("snap"), st.integers(0, 2), st.none(), st.none()),
        st.tuples(st.just("sync"), st.integers(0, 2), st.integers(0, 2), st.none()),
        st.tuples(st.just("syncall"), st.none(), st.none(), st.none()),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_property_bootstrap_from_a_members_snapshot_equals_full_replay(ops: list[Any]) -> None:
    """Owner O and peers A, B grant, revoke (rotating keys), write and snapshot, syncing
    pairwise (so membership changes are concurrent) or all at once. The joiner J boots
    from the newest snapshot made; a peer F with J's identity replays every record. After
    everything is exchanged:

    - always: the ``access`` table (every record's entry and verdict) is byte-identical,
      and so are members(), rejected() and the roles;
    - unless a record before the snapshot changed verdict after it (``basestate.stale``,
      which then lists it): every other table a snapshot holds (colls, docs, inst,
      events, index, lost, losers, order) is byte-identical too.
    """
    joiner = Identity.generate()
    with (
        tk.Peer(memory=True) as p0,
        tk.Peer(memory=True) as p1,
        tk.Peer(memory=True) as p2,
        tk.Peer(memory=True, identity=joiner) as pj,
        tk.Peer(memory=True, identity=joiner) as pf,
    ):
        first = p0.new_db("prop", open=False)
        first.new_collection("c")
        peers = [p0, p1, p2]
        keys = [p.identity.public for p in peers] + [joiner.public]
        for target in (1, 2):
            first.grant(keys[target], "admin")
        dbs = [first, replica(p1, first), replica(p2, first)]
        exchange(*dbs)
        made: list[tuple[int, Any]] = []
        for op, who, n, value in ops:
            db = dbs[who] if who is not None else first
            try:
                if op == "grant":
                    db.grant(keys[n], value)
                elif op == "revoke":
                    db.revoke(keys[n])
                elif op == "write":
                    db["c"].save({"_id": f"d{n}", "v": value, "by": who})
                elif op == "snap":
                    made.append((who, db.snapshot()))
                elif op == "sync":
                    exchange(dbs[who], dbs[n])
                else:
                    exchange(*dbs)
            except (errors.PermissionDenied, errors.InvalidInput):
                continue  # refused locally, nothing written
        if not made:
            exchange(*dbs)
            try:
                made.append((0, first.snapshot()))
            except errors.InvalidInput:  # it holds a record it cannot read (a lost key)
                event("no snapshot: a locked record")
                return
        who, snap = made[-1]
        try:
            joined = _join(pj, dbs[who], snap, trust=[peers[who].identity])
        except errors.InvalidSnapshot as exc:
            # J holds no key of the epoch the snapshot is sealed under: it is not a reader
            assert "key epoch" in str(exc)
            event("joiner not a reader at the snapshot")
            return
        full = replica(pf, first)
        exchange(*dbs, joined, full)
        mine, theirs = state(joined), state(full)
        assert mine["access"] == theirs["access"]
        assert member_state(joined)[1:] == member_state(full)[1:]
        for key in keys:
            assert joined.role_of(key) == full.role_of(key)
        assert_settled(joined)
        stale = basestate.stale(joined)
        event(f"stale: {bool(stale)}")
        if not stale:
            assert mine == theirs
            assert member_state(joined) == member_state(full)


def test_a_snapshot_with_attested_membership_records_verifies() -> None:
    """A daemon writes membership records for a client (attested): the author's own entry
    and a replay's must be the same bytes, or its own snapshot checks as bad."""
    from threadkit.db.gate import Attested
    from threadkit.db.membership import start_members

    owner = Identity.generate()
    for open_ in (True, False):
        with tk.Peer(memory=True) as o:
            db = o.new_db("m")
            start_members(db, open=open_, owner=Attested(owner.public))
            db.new_collection("c", identity=Attested(owner.public))
            db["c"].create({"_id": "x"}, identity=Attested(owner.public))
            assert db.verify_snapshot(db.snapshot()) is True
