"""Deterministic convergence (docs/design.md §7.1, docs/semantics.md): any delivery order of the
same records gives identical documents, indexes and lost writes on every replica.

A property test drives three simulated writers (separate in-process peers holding replicas
of one database) through random transactions and partial exchanges, then delivers every
writer's records to fresh replicas in random orders — shuffled across logs, out of order
within a log, chunked, duplicated, with gaps re-delivered later as a network would — and
compares everything. Deterministic scenarios pin down the exact outcome of each conflict.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import pytest
import replicas
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from replicas import know_log, log_records, replica, snapshot, sync

from threadkit.core.clock import HLC
from threadkit.core.identity import peer_id_bytes
from threadkit.core.records import Record
from threadkit.db.config import Index
from threadkit.db.database import Database
from threadkit.db.query import Op, where
from threadkit.db.txn import CollectionInTxn
from threadkit.errors import WriteRejected
from threadkit.peer import Peer

COLL = "Items"
INDEXES = [Index("code", unique=True), Index("n"), Index("meta.tag")]
IDS = ["a", "b", "c", "d"]
CODES = ["x", "y"]
TAGS = ["red", "blue"]
INDEXED = ["code", "n", "meta.tag"]


# ----------------------------------------------------------------------- helpers


class World:
    """Peers and their replicas of one database; closes everything at the end."""

    def __init__(self, stack: ExitStack) -> None:
        self.stack = stack

    def peer(self) -> Peer:
        return self.stack.enter_context(Peer(memory=True))

    def writers(self, n: int = 3, indexes: Any = INDEXES) -> list[Database]:
        origin = self.peer().new_db("conv")
        origin.new_collection(COLL, indexes=indexes)
        dbs = [origin] + [replica(self.peer(), origin) for _ in range(n - 1)]
        sync(*dbs)
        return dbs

    def fresh(self, origin: Database, writers: list[Database]) -> Database:
        db = replica(self.peer(), origin)
        for w in writers:
            know_log(db, w)
        return db


@pytest.fixture
def world() -> Iterator[World]:
    with ExitStack() as stack:
        yield World(stack)


def push(src: Database, dst: Database) -> None:
    """Deliver ``src``'s own new records to ``dst``, in order (a direct push)."""
    know_log(dst, src)
    have = dst._repo.get_head(dst.id, src.log_id).counter
    records = log_records(src, after=have)
    if records:
        result = dst.apply_records(src.log_id, records)
        assert result.gap is None


def deliver_shuffled(
    target: Database, writers: list[Database], rng: random.Random, first: int = 0
) -> int:
    """Deliver every writer's records to ``target`` in a random order, with duplicates,
    in random chunks; records beyond a gap are delivered again later. ``first`` records of
    the first writer's log are delivered up front, in order. Returns the deliveries made."""
    items: list[tuple[Database, Record]] = [(w, r) for w in writers for r in log_records(w)]
    if first:
        head = [item for item in items if item[0] is writers[0]][:first]
        target.apply_records(writers[0].log_id, [r for _, r in head])
    items += rng.sample(items, k=rng.randint(0, len(items)))  # duplicates
    rng.shuffle(items)
    queue = list(items)
    calls = 0
    while queue:
        calls += 1
        assert calls < 10_000, "delivery does not converge"
        size = rng.randint(1, 6)
        chunk, queue = queue[:size], queue[size:]
        by_log: dict[str, tuple[Database, list[Record]]] = {}
        for w, r in chunk:
            by_log.setdefault(w.log_id, (w, []))[1].append(r)
        for w, recs in by_log.values():
            result = target.apply_records(w.log_id, recs)
            if result.pending:
                assert result.gap is not None
                # the network re-delivers later, after other records
                queue.extend((w, r) for r in result.pending)
    for w in writers:
        want = w._repo.get_head(w.id, w.log_id)
        assert target._repo.get_head(target.id, w.log_id) == want
    return calls


def dump(db: Database, table: str) -> list[tuple[bytes, bytes]]:
    """Raw entries of one of the document store's tables for this DB (prefix removed)."""
    handle = getattr(db._tables, table)
    out = []
    with db._repo.transaction() as txn:
        cursor = txn.cursor(handle)
        if cursor.set_range(db.prefix):
            for key, value in cursor:
                if not bytes(key).startswith(db.prefix):
                    break
                out.append((bytes(key)[len(db.prefix) :], bytes(value)))
    return out


def index_ids(db: Database, path: str, op: Op, value: Any) -> list[str]:
    with db._repo.transaction() as txn:
        return list(CollectionInTxn(db[COLL], txn).index_ids(path, op, value))


def get_path(doc: dict[str, Any], path: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return KeyError
        node = node[part]
    return node


def queries() -> list[Any]:
    qs: list[Any] = [where("code").eq(c) for c in CODES]
    qs += [where("n").eq(n) for n in range(4)] + [where("n").ge(2), where("n").lt(2)]
    qs += [where("meta.tag").eq(t) for t in TAGS]
    qs += [where("code").in_(["x", "z"]).and_("n").ge(1)]
    return qs


def state(db: Database) -> dict[str, Any]:
    """Everything that must be identical on every replica."""
    return {
        "docs": snapshot(db),
        "queries": [[d["_id"] for d in db[COLL].find(q)] for q in queries()],
        "index": dump(db, "index"),
        "lost": db.lost_writes(),
    }


def check_indexes_match_documents(db: Database) -> None:
    """Index entries are exactly the documents' values; a unique value has one holder."""
    docs = db[COLL].find()
    for path in INDEXED:
        for value in {repr(get_path(d, path)): get_path(d, path) for d in docs}.values():
            if value is KeyError:
                continue
            want = sorted(
                d["_id"]
                for d in docs
                if get_path(d, path) == value and type(get_path(d, path)) is type(value)
            )
            assert sorted(index_ids(db, path, Op.EQ, value)) == want, (path, value)
    codes = [d["code"] for d in docs if isinstance(d.get("code"), str)]
    assert len(codes) == len(set(codes)), f"unique index violated: {codes}"


def lost(db: Database, **match: Any) -> list[dict[str, Any]]:
    return [e for e in db.lost_writes() if all(e.get(k) == v for k, v in match.items())]


def log_bytes(db: Database) -> bytes:
    return peer_id_bytes(db.log_id)


def strip_mod(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if doc is None else {k: v for k, v in doc.items() if k != "_mod"}


def docs_of(db: Database) -> dict[str, dict[str, Any] | None]:
    return {d["_id"]: strip_mod(d) for d in db[COLL].find()}


def converge(world: World, writers: list[Database], seeds: range = range(3)) -> dict[str, Any]:
    """Fully sync the writers, deliver to fresh replicas in shuffled orders; all must agree.

    The collection's creation record goes first (a late one is its own bug, tested apart).
    """
    sync(*writers)
    expected = state(writers[0])
    for w in writers:
        assert state(w) == expected
        check_indexes_match_documents(w)
    for seed in seeds:
        fresh = world.fresh(writers[0], writers)
        deliver_shuffled(fresh, writers, random.Random(seed), first=1)
        assert state(fresh) == expected, f"replica with delivery seed {seed} diverged"
    return expected


# ------------------------------------------------------------- the property test

# Shrinking a failure of these tests takes minutes; set THREADKIT_SHRINK=1 to shrink.
PHASES = tuple(Phase) if os.environ.get("THREADKIT_SHRINK") else tuple(set(Phase) - {Phase.shrink})

FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "code": st.sampled_from(CODES),
        "n": st.integers(0, 3),
        "name": st.sampled_from(["p", "q"]),
        "meta": st.fixed_dictionaries(
            {}, optional={"tag": st.sampled_from(TAGS), "x": st.integers(0, 2)}
        ),
    },
)
# each field keeps one JSON type (a query comparing types is an error, by design)
CHANGE = st.one_of(
    st.tuples(st.just("set"), st.just("code"), st.sampled_from(CODES)),
    st.tuples(st.just("set"), st.sampled_from(["n", "meta.x"]), st.integers(0, 3)),
    st.tuples(st.just("set"), st.sampled_from(["meta.tag", "name"]), st.sampled_from(TAGS)),
    st.tuples(
        st.just("drop"), st.sampled_from(["code", "n", "name", "meta", "meta.tag"]), st.none()
    ),
)
OP = st.one_of(
    st.tuples(st.just("create"), st.sampled_from([*IDS, None]), FIELDS),
    st.tuples(st.just("save"), st.sampled_from(IDS), st.lists(CHANGE, min_size=1, max_size=3)),
    st.tuples(st.just("delete"), st.sampled_from(IDS), st.none()),
)
STEP = st.one_of(
    st.tuples(st.just("txn"), st.integers(0, 2), st.lists(OP, min_size=1, max_size=3)),
    st.tuples(st.just("push"), st.integers(0, 2), st.integers(0, 2)),
)


def edit(doc: dict[str, Any], change: tuple[str, str, Any]) -> None:
    kind, path, value = change
    parts = path.split(".")
    node = doc
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            if kind == "drop":
                return
            child = node[part] = {}
        node = child
    if kind == "drop":
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value


def run_txn(db: Database, ops: list[Any]) -> None:
    coll = db[COLL]
    try:
        with coll.write_txn() as txn:
            for kind, instance_id, arg in ops:
                if kind == "create":
                    doc = dict(arg) if instance_id is None else dict(arg, _id=instance_id)
                    txn.create(doc)
                elif kind == "save":
                    try:
                        doc = txn.find_by_id(instance_id)
                    except LookupError:
                        doc = {"_id": instance_id}  # an upsert
                    doc = {k: v for k, v in doc.items() if k != "_mod"}
                    doc = _deep_copy(doc)
                    for change in arg:
                        edit(doc, change)
                    txn.save(doc)
                else:
                    txn.delete(instance_id)
    except WriteRejected:
        pass  # refused locally: nothing was written or sent


def _deep_copy(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in doc.items()}


def play(world: World, steps: list[Any]) -> list[Database]:
    writers = world.writers()
    for step in steps:
        if step[0] == "txn":
            run_txn(writers[step[1]], step[2])
        elif step[1] != step[2]:
            push(writers[step[1]], writers[step[2]])
    return writers


def check_property(steps: list[Any], seed: int, first: int) -> None:
    with ExitStack() as stack:
        world = World(stack)
        writers = play(world, steps)
        sync(*writers)
        expected = state(writers[0])
        for w in writers[1:]:
            assert state(w) == expected
        for w in writers:
            check_indexes_match_documents(w)
        rng = random.Random(seed)
        for _ in range(2):
            fresh = world.fresh(writers[0], writers)
            deliver_shuffled(fresh, writers, rng, first=first)
            check_indexes_match_documents(fresh)
            assert state(fresh) == expected


@pytest.mark.slow
@settings(
    max_examples=100,
    phases=PHASES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(steps=st.lists(STEP, min_size=1, max_size=14), seed=st.integers(0, 2**32))
def test_any_delivery_order_converges_once_the_collection_is_known(
    steps: list[Any], seed: int
) -> None:
    """Fresh replicas get the collection's creation record first; the rest in any order."""
    check_property(steps, seed, first=1)


@pytest.mark.slow
@settings(
    max_examples=100,
    phases=PHASES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(steps=st.lists(STEP, min_size=1, max_size=14), seed=st.integers(0, 2**32))
def test_any_delivery_order_converges(steps: list[Any], seed: int) -> None:
    """Every record in any order, the collection's creation record included."""
    check_property(steps, seed, first=0)


# ------------------------------------------------------------ deterministic cases


class TestDeterministic:
    def test_concurrent_saves_of_different_fields_both_survive(self, world: World) -> None:
        w0, w1, w2 = world.writers()
        w0[COLL].create({"_id": "x", "a": 1, "b": 1})
        sync(w0, w1, w2)
        w1[COLL].save({"_id": "x", "a": 2, "b": 1})
        w2[COLL].save({"_id": "x", "a": 1, "b": 2})
        converge(world, [w0, w1, w2])
        for w in (w0, w1, w2):
            assert docs_of(w) == {"x": {"_id": "x", "a": 2, "b": 2}}
            assert w.lost_writes() == []

    def test_concurrent_saves_of_one_field_later_wins(self, world: World) -> None:
        w0, w1, w2 = world.writers()
        w0[COLL].create({"_id": "x", "a": 1})
        sync(w0, w1, w2)
        w1[COLL].save({"_id": "x", "a": 2})
        time.sleep(0.002)
        w2[COLL].save({"_id": "x", "a": 3})  # later in time, not having seen w1's save
        converge(world, [w0, w1, w2])
        for w in (w0, w1, w2):
            assert docs_of(w) == {"x": {"_id": "x", "a": 3}}
            (entry,) = w.lost_writes()
            assert entry["kind"] == "overwritten" and entry["path"] == "a"
            assert entry["collection"] == COLL and entry["instance_id"] == "x"
            assert entry["loser"][12:] == log_bytes(w1)
            assert entry["winner"][12:] == log_bytes(w2)
            assert entry["loser"] < entry["winner"]

    def test_equal_stamps_are_broken_by_log_id(self, world: World) -> None:
        w0, w1, w2 = world.writers()
        w0[COLL].create({"_id": "x", "a": 1})
        sync(w0, w1, w2)
        frozen = time.time_ns() + 10**9
        w1.hlc = HLC(physical=lambda: frozen)
        w2.hlc = HLC(physical=lambda: frozen)
        w1[COLL].save({"_id": "x", "a": "one"})
        w2[COLL].save({"_id": "x", "a": "two"})
        winner, loser = (w1, w2) if log_bytes(w1) > log_bytes(w2) else (w2, w1)
        want = "one" if winner is w1 else "two"
        converge(world, [w0, w1, w2])
        for w in (w0, w1, w2):
            assert docs_of(w) == {"x": {"_id": "x", "a": want}}
            (entry,) = w.lost_writes()
            assert entry["loser"][:12] == entry["winner"][:12]  # the same stamp
            assert entry["loser"][12:] == log_bytes(loser)
            assert entry["winner"][12:] == log_bytes(winner)

    def test_sequential_saves_are_not_conflicts(self, world: World) -> None:
        w0, w1, w2 = world.writers()
        w0[COLL].create({"_id": "x", "a": 1})
        sync(w0, w1)
        w1[COLL].save({"_id": "x", "a": 2})
        sync(w1, w2)
        w2[COLL].save({"_id": "x", "a": 3})
        converge(world, [w0, w1, w2])
        assert docs_of(w0) == {"x": {"_id": "x", "a": 3}}
        assert w0.lost_writes() == []

    def test_save_before_create_in_delivery(self, world: World) -> None:
        """The save (made after seeing the create) reaches a replica before the create."""
        w0, w1, w2 = world.writers()
        w0[COLL].create({"_id": "x", "a": 1})
        push(w0, w1)
        w1[COLL].save({"_id": "x", "a": 1, "b": 2})
        fresh = world.fresh(w0, [w0, w1])
        fresh.apply_records(w0.log_id, log_records(w0)[:1])  # the collection
        replicas.deliver(fresh, w1, log_records(w1))
        assert docs_of(fresh) == {"x": {"_id": "x", "b": 2}}  # an upsert, for now
        push(w0, fresh)
        assert docs_of(fresh) == {"x": {"_id": "x", "a": 1, "b": 2}}
        assert fresh.lost_writes() == []
        converge(world, [w0, w1, w2])
        assert state(fresh) == state(w0)

    def test_concurrent_upsert_then_later_create_replaces_whole(self, world: World) -> None:
        w0, w1, w2 = world.writers()
        w1[COLL].save({"_id": "x", "b": 2})  # upsert, never saw a create
        time.sleep(0.002)
        w0[COLL].create({"_id": "x", "a": 1})  # later, never saw the save
        converge(world, [w0, w1, w2])
        for w in (w0, w1, w2):
            assert docs_of(w) == {"x": {"_id": "x", "a": 1}}
            (entry,) = w.lost_writes()
            assert (entry["kind"], entry["path"]) == ("overwritten", "b")
            assert entry["loser"][12:] == log_bytes(w1)
            assert entry["winner"][12:] == log_bytes(w0)

    def test_create_then_concurrent_later_upsert_merges(self, world: World) -> None:
        w0, w1, w2 = world.writers()
        w0[COLL].create({"_id": "x", "a": 1})
        time.sleep(0.002)
        w1[COLL].save({"_id": "x", "b": 2})  # later, never saw the create
        converge(world, [w0, w1, w2])
        assert docs_of(w0) == {"x": {"_id": "x", "a": 1, "b": 2}}
        assert w0.lost_writes() == []

    def test_create_after_delete(self, world: World) -> None:
        w0, w1, w2 = world.writers()
        coll = w0[COLL]
        coll.create({"_id": "x", "v": 1, "code": "x"})
        coll.delete("x")
        coll.create({"_id": "x", "v": 2})
        coll.create({"_id": "y", "code": "x"})  # the freed unique value
        assert docs_of(w0) == {"x": {"_id": "x", "v": 2}, "y": {"_id": "y", "code": "x"}}
        # a replica that receives the records newest-first, one at a time
        fresh = world.fresh(w0, [w0])
        records = log_records(w0)
        for record in reversed(records):
            fresh.apply_records(w0.log_id, [record])
        result = fresh.apply_records(w0.log_id, records)
        assert result.gap is None and not result.pending
        assert docs_of(fresh) == docs_of(w0)
        converge(world, [w0, w1, w2])
        assert fresh.lost_writes() == w0.lost_writes() == []

    def test_concurrent_delete_beats_a_later_save(self, world: World) -> None:
        w0, w1, w2 = world.writers()
        w0[COLL].create({"_id": "x", "a": 1})
        sync(w0, w1, w2)
        w1[COLL].delete("x")
        time.sleep(0.002)
        w2[COLL].save({"_id": "x", "a": 9})  # later, never saw the delete
        converge(world, [w0, w1, w2])
        for w in (w0, w1, w2):
            assert docs_of(w) == {}
            entries = w.lost_writes()
            assert len(entries) == 1, entries
            (entry,) = entries
            assert entry["instance_id"] == "x"
            assert entry["loser"][12:] == log_bytes(w2)
            assert entry["winner"][12:] == log_bytes(w1)

    def test_concurrent_delete_beats_an_earlier_save(self, world: World) -> None:
        w0, w1, w2 = world.writers()
        w0[COLL].create({"_id": "x", "a": 1})
        sync(w0, w1, w2)
        w2[COLL].save({"_id": "x", "a": 9})
        time.sleep(0.002)
        w1[COLL].delete("x")  # later, never saw the save
        converge(world, [w0, w1, w2])
        for w in (w0, w1, w2):
            assert docs_of(w) == {}
            (entry,) = w.lost_writes()
            assert (entry["kind"], entry["path"]) == ("overwritten", "a")
            assert entry["loser"][12:] == log_bytes(w2)
            assert entry["winner"][12:] == log_bytes(w1)

    def test_save_after_seeing_the_delete_recreates(self, world: World) -> None:
        w0, w1, w2 = world.writers()
        w0[COLL].create({"_id": "x", "a": 1})
        w0[COLL].delete("x")
        push(w0, w1)
        w1[COLL].save({"_id": "x", "a": 5})
        converge(world, [w0, w1, w2])
        assert docs_of(w0) == {"x": {"_id": "x", "a": 5}}
        assert w0.lost_writes() == []

    def test_concurrent_creates_of_one_unique_value(self, world: World) -> None:
        w0, w1, w2 = world.writers()
        w1[COLL].create({"_id": "p", "code": "dup"})
        time.sleep(0.002)
        w2[COLL].create({"_id": "q", "code": "dup"})
        converge(world, [w0, w1, w2], seeds=range(4))
        for w in (w0, w1, w2):
            assert docs_of(w) == {"p": {"_id": "p", "code": "dup"}}
            assert [d["_id"] for d in w[COLL].find(where("code").eq("dup"))] == ["p"]
            (entry,) = w.lost_writes()
            assert (entry["kind"], entry["instance_id"]) == ("rejected", "q")
            assert entry["loser"][12:] == log_bytes(w2)
        # both delivery orders, explicitly
        for order in ((w1, w2), (w2, w1)):
            fresh = world.fresh(w0, [w0, w1, w2])
            push(w0, fresh)
            for src in order:
                push(src, fresh)
            assert state(fresh) == state(w0)

    def test_unique_value_given_up_goes_to_the_next_claim(self, world: World) -> None:
        w0, w1, w2 = world.writers()
        w1[COLL].create({"_id": "p", "code": "dup"})
        time.sleep(0.002)
        w2[COLL].create({"_id": "q", "code": "dup", "n": 1})
        sync(w0, w1, w2)
        w1[COLL].save({"_id": "p", "code": "other"})
        converge(world, [w0, w1, w2])
        for w in (w0, w1, w2):
            assert docs_of(w) == {
                "p": {"_id": "p", "code": "other"},
                "q": {"_id": "q", "code": "dup", "n": 1},
            }
            assert w.lost_writes() == []
            assert index_ids(w, "code", Op.EQ, "dup") == ["q"]

    def test_late_record_refolds_only_its_instances(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        w0, w1, _ = world.writers()
        w0[COLL].create({"_id": "x", "v": 0}, {"_id": "y", "v": 0}, {"_id": "z", "v": 0})
        push(w0, w1)
        w1[COLL].save({"_id": "x", "v": 1, "w": 1})  # earlier than w0's next writes
        time.sleep(0.002)
        w0[COLL].save({"_id": "x", "v": 2})
        w0[COLL].save({"_id": "y", "v": 2})
        fresh = world.fresh(w0, [w0, w1])
        push(w0, fresh)
        before = {d["_id"]: d for d in fresh[COLL].find()}
        refolded: list[tuple[str, str]] = []
        original = fresh.engine.refolds.refold

        def spy(txn: Any, collection: str, instance_id: str, changes: Any) -> Any:
            refolded.append((collection, instance_id))
            return original(txn, collection, instance_id, changes)

        monkeypatch.setattr(fresh.engine.refolds, "refold", spy)
        feed = fresh.listen()
        push(w1, fresh)  # late: its save sorts before w0's save of x
        assert refolded == [(COLL, "x")]
        after = {d["_id"]: d for d in fresh[COLL].find()}
        assert after["y"] == before["y"] and after["z"] == before["z"]  # _mod untouched
        assert strip_mod(after["x"]) == {"_id": "x", "v": 2, "w": 1}
        assert [(e.instance_id, e.action) for e in iter(feed.get_nowait, None)] == [("x", "save")]
        feed.close()
        sync(w0, w1)
        assert state(fresh) == state(w0)

    def test_instances_written_before_the_collection_record_arrives(self, world: World) -> None:
        """BUG (engine.py Engine._apply_collection_event): a collection event that is the
        latest of its collection's config history is applied without re-folding instance
        events that sort AFTER it but arrived before it. Here: when a collection's creation
        record reaches a replica AFTER records holding instance events of that collection,
        those events were rejected ("collection does not exist at this point") and the
        creation does not re-fold them: the instances never appear on that replica, and a
        spurious "rejected" lost write stays. The writers and the replica diverge for good."""
        w0, w1, _ = world.writers()
        w1[COLL].create({"_id": "x", "v": 1})
        fresh = world.fresh(w0, [w0, w1])
        replicas.deliver(fresh, w1, log_records(w1))  # before w0's collection record
        replicas.deliver(fresh, w0, log_records(w0))
        assert docs_of(fresh) == {"x": {"_id": "x", "v": 1}}
        assert fresh.lost_writes() == []

    def test_unique_value_released_before_the_earlier_claim_arrives(self, world: World) -> None:
        """BUG (engine.py, unique claims): w1 creates q with code "z" and then gives "z" up,
        concurrently with w0's EARLIER create of p with code "z". On replicas that see p
        first, q's create is rejected (p holds "z") and q's later save upserts only its
        patch. On w1, q's index entry was already gone when p arrived, so p took "z"
        without q ever being re-judged: q keeps its create's fields and no lost write is
        recorded. Documents and lost writes differ between peers holding the same records."""
        w0, w1, w2 = world.writers()
        w0[COLL].create({"_id": "p", "code": "z"})
        time.sleep(0.002)
        w1[COLL].create({"_id": "q", "code": "z", "n": 1})  # never saw p
        w1[COLL].save({"_id": "q", "code": "w", "n": 1})
        sync(w0, w1, w2)
        assert docs_of(w1) == docs_of(w0) == docs_of(w2)
        assert w1.lost_writes() == w0.lost_writes() == w2.lost_writes()

    def test_unique_value_released_in_the_same_txn(self, world: World) -> None:
        """BUG (same cause): create-and-delete of q in one transaction on w1, concurrent
        with w0's earlier create of p holding the same unique value. Documents agree, but
        w0 and w2 record q's create as a "rejected" lost write and w1 records nothing."""
        w0, w1, w2 = world.writers()
        w0[COLL].create({"_id": "p", "code": "z"})
        time.sleep(0.002)
        with w1[COLL].write_txn() as txn:
            txn.create({"_id": "q", "code": "z"})
            txn.delete("q")
        sync(w0, w1, w2)
        assert docs_of(w0) == docs_of(w1) == {"p": {"_id": "p", "code": "z"}}
        assert w1.lost_writes() == w0.lost_writes() == w2.lost_writes()

    def test_same_id_created_twice_around_another_claim_settles(self, world: World) -> None:
        """BUG (engine.py Engine._refold_all / claims): w0 creates d with code "x"; w2 then
        creates c with code "x"; w1 then creates d (the same id, concurrently) with code "x".
        d's claim on "x" is keyed by its LATER create (the fold's field key), c's by its
        own: each re-fold of one steals "x" from the other, forever. apply_records raises
        StoreError("re-folding did not settle after 10001 rounds") and the records can never
        be applied: replication of this database is stuck."""
        w0, w1, w2 = world.writers()
        w0[COLL].create({"_id": "d", "code": "x"})
        time.sleep(0.002)
        w2[COLL].create({"_id": "c", "code": "x"})
        time.sleep(0.002)
        w1[COLL].create({"_id": "d", "code": "x"})
        push(w1, w2)
        expected = converge(world, [w0, w1, w2], seeds=range(1))
        assert [d["_id"] for d in expected["docs"][COLL]] == ["d"]

    def test_local_delete_after_a_unique_rejection(self, world: World) -> None:
        """BUG (engine.py: a local write takes the fast path and never re-judges an instance's
        recorded losses): w0 creates a and b (b holds code "y"); w1 concurrently creates a
        with code "y" (rejected where it stands: b holds "y"); w2 sees both, then deletes a.
        Peers that receive the delete re-fold a and end with no lost write; w2, which made
        the delete locally, keeps the "rejected" entry. lost_writes() differs between peers
        holding the same records."""
        w0, w1, w2 = world.writers()
        with w0[COLL].write_txn() as txn:
            txn.create({"_id": "a"})
            txn.create({"_id": "b", "code": "y"})
        push(w0, w2)
        time.sleep(0.002)
        w1[COLL].create({"_id": "a", "code": "y"})
        push(w1, w2)
        w2[COLL].delete("a")
        sync(w0, w1, w2)
        assert docs_of(w0) == docs_of(w1) == docs_of(w2) == {"b": {"_id": "b", "code": "y"}}
        assert w2.lost_writes() == w0.lost_writes() == w1.lost_writes()

    def test_write_after_a_recreation_it_had_not_seen(self, world: World) -> None:
        """BUG (engine.py Engine._apply_collection_event, same cause as above): w0 deletes and
        re-creates the collection; w2, not having seen that, creates y LATER in the order,
        so y belongs to the new epoch (w0 and w1 keep it). On w2 the delete arrives after y
        was applied, is the latest *collection* event, and wipes every document — y
        included — and the re-creation does not re-fold it: w2 ends without y."""
        w0, w1, w2 = world.writers()
        w0.delete_collection(COLL)
        w0.new_collection(COLL, indexes=INDEXES)
        time.sleep(0.002)
        w2[COLL].create({"_id": "y", "v": 1})
        sync(w0, w1, w2)
        assert docs_of(w0) == docs_of(w1) == {"y": {"_id": "y", "v": 1}}
        assert docs_of(w2) == docs_of(w0)

    def test_write_after_a_validator_update_it_had_not_seen(self, world: World) -> None:
        """BUG (same cause): w0 adds a write validator refusing v == 2; w2, not having seen
        the update, creates y with v == 2 LATER in the order. w0 and w1 reject y (the
        validator in effect at y's place); on w2 the update arrives as the latest collection
        event and y is never re-judged: w2 keeps y and records no lost write."""
        w0, w1, w2 = world.writers()
        w0.update_collection(
            COLL, indexes=INDEXES, write_validator="return event.patch.json_patch.v !== 2"
        )
        time.sleep(0.002)
        w2[COLL].create({"_id": "y", "v": 2})
        sync(w0, w1, w2)
        assert docs_of(w0) == docs_of(w1) == {}
        assert [e["instance_id"] for e in w0.lost_writes()] == ["y"]
        assert docs_of(w2) == docs_of(w0)
        assert w2.lost_writes() == w0.lost_writes()

    def test_unique_index_added_concurrently_with_duplicates(self, world: World) -> None:
        """BUG (engine.py, unique index added by update_collection): p and q get code "x"
        on w1 and w2, both BEFORE (in the order) w0 adds a unique index on code. The writers
        keep both (a unique index with two holders) while fresh replicas, depending only on
        delivery order, keep both or reject q. No single outcome."""
        w0, w1, w2 = world.writers(indexes=[])
        w1[COLL].create({"_id": "p", "code": "x"})
        time.sleep(0.002)
        w2[COLL].create({"_id": "q", "code": "x"})
        time.sleep(0.002)
        w0.update_collection(COLL, indexes=[Index("code", unique=True)])
        converge(world, [w0, w1, w2], seeds=range(6))

    def test_write_after_a_unique_index_it_had_not_seen(self, world: World) -> None:
        """BUG (same area): p has code "x"; w0 then adds a unique index on code; w2, not
        having seen the index, creates q with code "x" LATER in the order. w0 and w1 reject
        q (the index is in effect at q's place); w2 keeps both, and fresh replicas differ
        by delivery order."""
        w0, w1, w2 = world.writers(indexes=[])
        w1[COLL].create({"_id": "p", "code": "x"})
        time.sleep(0.002)
        w0.update_collection(COLL, indexes=[Index("code", unique=True)])
        time.sleep(0.002)
        w2[COLL].create({"_id": "q", "code": "x"})
        expected = converge(world, [w0, w1, w2], seeds=range(6))
        assert [d["_id"] for d in expected["docs"][COLL]] == ["p"]
        assert [e["instance_id"] for e in expected["lost"]] == ["q"]

    def test_index_added_concurrently_with_writes(self, world: World) -> None:
        w0, w1, w2 = world.writers(indexes=[Index("code", unique=True)])
        w1[COLL].create({"_id": "p", "n": 1}, {"_id": "q", "n": 2})
        w0.update_collection(COLL, indexes=[Index("code", unique=True), Index("n")])
        time.sleep(0.002)
        w2[COLL].create({"_id": "r", "n": 1})
        converge(world, [w0, w1, w2])
        for w in (w0, w1, w2):
            assert sorted(index_ids(w, "n", Op.EQ, 1)) == ["p", "r"]
            assert index_ids(w, "n", Op.EQ, 2) == ["q"]


def test_lost_writes_and_state_survive_reopen(world: World, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    local = Peer(repo)
    w0 = local.new_db("conv")
    w0.new_collection(COLL, indexes=INDEXES)
    w1 = replica(world.peer(), w0)
    sync(w0, w1)
    w0[COLL].create({"_id": "x", "a": 1})
    sync(w0, w1)
    w0[COLL].save({"_id": "x", "a": 2})
    w1[COLL].save({"_id": "x", "a": 3})
    w0[COLL].create({"_id": "p", "code": "x"})
    w1[COLL].create({"_id": "q", "code": "x"})
    sync(w0, w1)
    before = state(w0)
    assert state(w1) == before
    assert {e["kind"] for e in before["lost"]} == {"overwritten", "rejected"}
    db_id = w0.id
    local.close()
    with Peer(repo) as local:
        w0 = local.get_db(db_id)
        assert state(w0) == before
        w1[COLL].save({"_id": "x", "a": 4})
        w0[COLL].save({"_id": "p", "code": "y"})  # frees "x": q's create now stands
        sync(w0, w1)
        assert state(w0) == state(w1)
        assert docs_of(w0)["q"] == {"_id": "q", "code": "x"}
        assert docs_of(w0)["x"] == {"_id": "x", "a": 4}


def test_records_stored_outside_apply_records_are_applied_on_open(
    world: World, tmp_path: Path
) -> None:
    """docs/seam.md, Recovery: records stored in a log but never applied are applied when
    the database opens."""
    w0, w1, _ = world.writers()
    w1[COLL].create({"_id": "a", "n": 1}, {"_id": "b", "n": 2})
    w1[COLL].save({"_id": "a", "n": 3})
    repo = tmp_path / "repo"
    with Peer(repo) as local:
        target = replica(local, w0)
        know_log(target, w0)
        know_log(target, w1)
        for w in (w0, w1):
            result = target._repo.accept(target.id, w.log_id, log_records(w))
            assert result.gap is None
        assert target.list_collections() == []  # stored, not applied
        db_id = target.id
    with Peer(repo) as local:
        target = local.get_db(db_id)
        assert docs_of(target) == {"a": {"_id": "a", "n": 3}, "b": {"_id": "b", "n": 2}}
        assert sorted(index_ids(target, "n", Op.GE, 0)) == ["a", "b"]
        sync(w0, w1)
        assert state(target) == state(w0)


def test_writers_agree_after_interleaved_pushes(world: World) -> None:
    """A fixed multi-writer history with partial exchanges (a smoke test of the property)."""
    writers = world.writers()
    script: list[tuple[int, Callable[[Database], Any]]] = [
        (0, lambda w: w[COLL].create({"_id": "a", "code": "x", "n": 1})),
        (1, lambda w: w[COLL].create({"_id": "a", "code": "y", "n": 2})),
        (2, lambda w: w[COLL].create({"_id": "b", "code": "x", "meta": {"tag": "red"}})),
        (0, lambda w: w[COLL].save({"_id": "a", "code": "z", "n": 3})),
        (1, lambda w: w[COLL].delete("a")),
        (2, lambda w: w[COLL].save({"_id": "c", "meta": {"tag": "blue", "x": 1}})),
    ]
    for i, (who, action) in enumerate(script):
        with suppress(WriteRejected):
            action(writers[who])
        if i % 2:
            push(writers[who], writers[(who + 1) % 3])
    converge(world, writers, seeds=range(5))


def test_fixed_form_record_reading_gives_the_same_replica(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """open_record reads threadkit's own record, event and header nodes by slicing
    (threadkit.core.records fast paths): a replica fed records opened that way ends up
    identical, table for table, to one fed records opened by the general decode."""
    from threadkit.core import records as records_mod

    writers = world.writers()
    w0, w1, _ = writers
    w0[COLL].create({"_id": "a", "code": "x", "n": 1}, {"_id": "b", "n": 2})
    w1[COLL].create({"_id": "c", "code": "y", "meta": {"tag": "red"}})
    w0[COLL].save({"_id": "a", "code": "y", "n": 3})
    w1[COLL].delete("b")
    fast = world.fresh(w0, writers)
    for w in writers:
        fast.apply_records(w.log_id, log_records(w))
    general = world.fresh(w0, writers)
    monkeypatch.setattr(records_mod, "_fast_record_node", lambda plain: None)
    monkeypatch.setattr(records_mod, "_fast_event_node", lambda block: None)
    monkeypatch.setattr(records_mod, "_HEADER_LEN", -1)
    for w in writers:
        general.apply_records(w.log_id, log_records(w))
    assert state(fast) == state(general)
    for table in ("docs", "inst", "events", "order", "index"):
        assert dump(fast, table) == dump(general, table), table
