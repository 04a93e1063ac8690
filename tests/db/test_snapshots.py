"""Snapshots (threadkit.db.snapshots, threadkit.db.bootstrap): db.snapshot → bootstrap.

A database bootstrapped from a snapshot plus the records after it must be byte-identical,
in every table the records fold into, to a replica that applied every record; a forged,
wrong or untrusted snapshot must be refused or found out, never installed silently.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snapshot_helpers import exchange, state

import threadkit as tk
from threadkit import errors
from threadkit.core.cid import cid_of
from threadkit.core.identity import Identity
from threadkit.db import bootstrap, snapshots
from threadkit.db.bootstrap import Offer
from threadkit.db.handoff import handoff, replica


def _write(db: Any) -> None:
    people = db.new_collection(
        "people", indexes=[{"path": "age"}, {"path": "mail", "unique": True}]
    )
    for i in range(6):
        people.create({"_id": f"p{i}", "age": i, "mail": f"{i}@x"})
    people.save({"_id": "p1", "age": 41})
    people.delete("p2")
    db.new_collection("notes").create({"_id": "n", "text": "é"})


def test_bootstrap_equals_full_replay() -> None:
    with tk.Peer(memory=True) as a, tk.Peer(memory=True) as b, tk.Peer(memory=True) as c:
        db = a.new_db("s")
        _write(db)
        snap = db.snapshot()
        assert snap.status == "made" and snap.heads == {db.log_id: snap.counter - 1}
        db["people"].save({"_id": "p3", "age": 77})
        joined = bootstrap.install(b.manager, bootstrap.offer(db), db.key, db.id, "s", [a.identity])
        handoff(db, joined)
        full = replica(c, db)
        handoff(db, full)
        assert state(joined) == state(full) == state(db)
        assert joined["people"].find_by_id("p3")["age"] == 77
        # the joiner's own writes replicate back as usual
        joined["people"].save({"_id": "p4", "age": 5})
        handoff(joined, db)
        assert state(db) == state(joined)
        # it holds the blocks, so it can hand the snapshot on
        assert [s.cid for s in joined.snapshots() if s.held] == [snap.cid]
        assert db.verify_snapshot(snap) is True
        assert db.snapshots()[-1].status == "verified"


ops = st.lists(
    st.tuples(
        st.sampled_from(["create", "save", "delete", "snap", "sync"]),
        st.integers(0, 2),
        st.integers(0, 3),
        st.one_of(st.integers(-3, 3), st.text(max_size=3), st.none()),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops, st.integers(0, 2))
def test_property_bootstrap_is_byte_identical_to_full_replay(steps: list[Any], who: int) -> None:
    """Three writers, concurrent edits, snapshots anywhere: a joiner from the newest
    snapshot some writer made, plus every record, equals a joiner that replayed all."""
    with (
        tk.Peer(memory=True) as p0,
        tk.Peer(memory=True) as p1,
        tk.Peer(memory=True) as p2,
        tk.Peer(memory=True) as pj,
        tk.Peer(memory=True) as pf,
    ):
        peers = [p0, p1, p2]
        first = p0.new_db("prop")
        first.new_collection("c", indexes=[{"path": "v", "unique": False}])
        dbs = [first, replica(p1, first), replica(p2, first)]
        exchange(*dbs)
        made: list[tuple[int, Any]] = []
        for op, writer, n, value in steps:
            db = dbs[writer]
            coll, doc_id = db["c"], f"d{n}"
            if op == "create" and not coll.has(doc_id):
                coll.create({"_id": doc_id, "v": value})
            elif op == "save" and coll.has(doc_id):
                coll.save({"_id": doc_id, "v": value, "w": [value]})
            elif op == "delete" and coll.has(doc_id):
                coll.delete(doc_id)
            elif op == "snap":
                made.append((writer, db.snapshot()))
            elif op == "sync":
                exchange(*dbs)
        if not made:
            made.append((who, dbs[who].snapshot()))
        writer, snap = made[-1]
        source = dbs[writer]
        joined = bootstrap.install(
            pj.manager,
            bootstrap.offer(source, snap),
            source.key,
            source.id,
            "j",
            [peers[writer].identity],
        )
        full = replica(pf, first)
        exchange(*dbs, joined, full)
        assert state(joined) == state(full)
        assert state(full) == state(dbs[0])


# ------------------------------------------------------------- bad snapshots


@pytest.fixture
def made() -> Any:
    with tk.Peer(memory=True) as a, tk.Peer(memory=True) as b:
        db = a.new_db("s")
        _write(db)
        snap = db.snapshot()
        yield a, b, db, snap


def _flip(block: bytes) -> bytes:
    return block[:-1] + bytes([block[-1] ^ 1])


def _refused(b: Any, db: Any, item: Offer, trust: Any, match: str) -> None:
    with pytest.raises(errors.InvalidSnapshot, match=match):
        bootstrap.install(b.manager, item, db.key, db.id, "s", trust)
    assert b.list_dbs() == [] and not b.repo.has_thread(db.id)


def test_a_tampered_chunk_is_refused(made: Any) -> None:
    a, b, db, _ = made
    item = bootstrap.offer(db)
    cid, block = item.blocks[1]
    bad = Offer(
        [item.blocks[0], (cid, _flip(block)), *item.blocks[2:]],
        item.record,
        item.log_key,
    )
    _refused(b, db, bad, [a.identity], "forged snapshot")


def test_a_rehashed_forged_chunk_does_not_match_the_signed_manifest(made: Any) -> None:
    a, b, db, _ = made
    item = bootstrap.offer(db)
    _cid, block = item.blocks[1]
    forged = _flip(block)
    bad = Offer(
        [item.blocks[0], (cid_of(forged), forged), *item.blocks[2:]], item.record, item.log_key
    )
    _refused(b, db, bad, [a.identity], "lacks chunk")


def test_a_manifest_the_record_does_not_carry_is_refused(made: Any) -> None:
    a, b, db, _ = made
    item = bootstrap.offer(db)
    _root, manifest = item.blocks[0]
    node = snapshots.chunks_of(manifest)
    node["chunks"] = node["chunks"][:1]
    from threadkit.core import dagcbor

    other = dagcbor.encode(node)
    bad = Offer([(cid_of(other), other), *item.blocks[1:]], item.record, item.log_key)
    _refused(b, db, bad, [a.identity], "does not carry this manifest")


def test_an_untrusted_author_is_refused(made: Any) -> None:
    _, b, db, _ = made
    _refused(b, db, bootstrap.offer(db), [Identity.generate()], "does not trust")
    _refused(b, db, bootstrap.offer(db), None, "does not trust")


def test_a_record_under_another_log_key_is_refused(made: Any) -> None:
    a, b, db, _ = made
    item = bootstrap.offer(db)
    bad = Offer(item.blocks, item.record, Identity.generate().public.to_bytes())
    _refused(b, db, bad, [a.identity], "record does not check")


def test_a_wrong_snapshot_by_a_trusted_author_is_found_bad_and_never_offered() -> None:
    """A validly signed snapshot whose state is not the records' (a forger's modified
    code, simulated by changing a stored document before the snapshot is taken)."""
    with tk.Peer(memory=True) as a, tk.Peer(memory=True) as c:
        db = a.new_db("s")
        _write(db)
        with db._repo.transaction(write=True) as txn:
            key = db.engine.coll_key("people") + __import__(
                "threadkit.db.dockeys", fromlist=["encode_id"]
            ).encode_id("p1")
            txn.put(key, b"\xa1a_id\x62p1", db=db._tables.docs)
        snap = db.snapshot()
        # any peer holding the records and the blocks finds it out
        other = replica(c, db)
        handoff(db, other)
        with other._repo.transaction(write=True) as txn:
            snapshots.put_blocks(
                txn, other._tables, other.prefix, snapshots.get_blocks(db, snap.cid) or []
            )
        assert other.verify_snapshot(snap) is False
        assert other.snapshots()[-1].status == "bad"
        assert bootstrap.offer(other) is None
        with pytest.raises(errors.InvalidSnapshot, match="bad"):
            other.compact(snap)
        assert db.verify_snapshot(snap) is False


def test_snapshot_arguments() -> None:
    with tk.Peer(memory=True) as a:
        db = a.new_db("s")
        db.new_collection("c")
        with pytest.raises(errors.InvalidSnapshot, match="no snapshot"):
            db.compact(b"\x01" * 36)
        with pytest.raises(errors.InvalidSnapshot, match="not a snapshot CID"):
            db.verify_snapshot("nope")
        with pytest.raises(errors.InvalidInput, match="trust"):
            bootstrap.trusted_keys([42])
        closed = a.new_db("m", open=False)
        snap = closed.snapshot()  # databases with members have snapshots (test_snapshot_members)
        closed.compact(snap)  # and compact on it (test_compaction_members)
        assert snapshots.mark(closed, "base")["root"] == snap.cid


def test_chunks_that_do_not_decompress_or_expand_too_far_are_refused() -> None:
    import zlib

    import cbor2

    bomb = zlib.compress(b"\0" * (snapshots.MAX_CHUNK_ROWS + 10), 9)
    with pytest.raises(errors.InvalidSnapshot, match="over its size limit"):
        snapshots.read_chunk(cbor2.dumps({"t": "docs", "z": bomb}, canonical=True))
    with pytest.raises(errors.InvalidSnapshot, match="does not decompress"):
        snapshots.read_chunk(cbor2.dumps({"t": "docs", "z": b"not zlib"}, canonical=True))
    rows = zlib.compress(cbor2.dumps([b"k"]), 1)
    with pytest.raises(errors.InvalidSnapshot, match="not a table's rows"):
        snapshots.read_chunk(cbor2.dumps({"t": "docs", "z": rows}, canonical=True))
    with pytest.raises(errors.InvalidSnapshot, match="truncated"):
        snapshots.read_chunk(cbor2.dumps({"t": "docs", "z": b""}, canonical=True))
    with pytest.raises(errors.InvalidSnapshot, match="not a table's rows"):
        snapshots.read_chunk(cbor2.dumps({"t": "db_dbs", "z": zlib.compress(b"\x80")}))
