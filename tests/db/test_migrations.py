"""Schema migrations (threadkit.db.migrations): db.migrate, its place in the total order,
writes that had not seen it, and convergence in any delivery order (a property test)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from replicas import sync
from test_db_convergence import (
    COLL,
    OP,
    PHASES,
    World,
    deliver_shuffled,
    dump,
    push,
    run_txn,
)

from threadkit.db.database import Database
from threadkit.db.query import where
from threadkit.errors import (
    CollectionNotFound,
    InstanceNotFound,
    InvalidMigration,
    InvalidSchema,
    WriteRejected,
)
from threadkit.peer import Peer


@pytest.fixture
def world() -> Iterator[World]:
    with ExitStack() as stack:
        yield World(stack)


MIGRATION = [
    {"rename": "name", "to": "label"},
    {"retype": "n", "to": "string"},
    {"default": "kind", "value": "item"},
    {"drop": "meta.x"},
]


def docs(db: Database) -> dict[str, dict[str, Any]]:
    return {d["_id"]: {k: v for k, v in d.items() if k != "_mod"} for d in db[COLL].find()}


def full_state(db: Database) -> dict[str, Any]:
    return {
        "docs": db[COLL].find(),
        "index": dump(db, "index"),
        "events": dump(db, "events"),
        "lost": db.lost_writes(),
        "config": db.collection_info(COLL),
    }


# ----------------------------------------------------------------- on one peer


def test_migrate_transforms_existing_documents_and_renames_indexes() -> None:
    with Peer(memory=True) as peer:
        db = peer.new_db("shop")
        items = db.new_collection("Items", indexes=["name", "old"])
        items.create({"_id": "a", "name": "pen", "n": 3, "old": 1})
        db.migrate("Items", MIGRATION)
        assert items.find_by_id("a") | {"_mod": 0} == {
            "_id": "a",
            "label": "pen",
            "n": "3",
            "kind": "item",
            "old": 1,
            "_mod": 0,
        }
        assert [i["path"] for i in db.collection_info("Items")["indexes"]] == ["label", "old"]
        assert [d["_id"] for d in items.find(where("label").eq("pen"))] == ["a"]
        history = db.history(full=True)
        assert list(history["action"]) == ["new_collection", "create", "migrate_collection"]


def test_later_writes_are_judged_by_the_new_schema() -> None:
    schema = {"properties": {"label": {"type": "string"}}, "additionalProperties": False}
    with Peer(memory=True) as peer:
        db = peer.new_db("shop")
        items = db.new_collection("Items")
        items.create({"_id": "a", "name": "pen"})
        db.migrate("Items", [{"rename": "name", "to": "label"}], schema=schema)
        with pytest.raises(WriteRejected):
            items.create({"_id": "b", "name": "cup"})
        items.create({"_id": "b", "label": "cup"})
        assert sorted(d["label"] for d in items.find()) == ["cup", "pen"]


def test_javascript_transform() -> None:
    with Peer(memory=True) as peer:
        db = peer.new_db("shop")
        items = db.new_collection("Items")
        items.create({"_id": "a", "cents": 250})
        db.migrate("Items", "doc.euros = doc.cents / 100; delete doc.cents; return doc")
        assert items.find_by_id("a")["euros"] == 2.5
        assert "cents" not in items.find_by_id("a")


def test_time_travel_before_and_after_a_migration() -> None:
    with Peer(memory=True) as peer:
        db = peer.new_db("shop")
        items = db.new_collection("Items")
        items.create({"_id": "a", "name": "pen"})
        before = db.timeline.heads()
        db.migrate("Items", [{"rename": "name", "to": "label"}])
        after = db.timeline.heads()
        then, _ = db.timeline.documents_at("Items", before, None)
        now, _ = db.timeline.documents_at("Items", after, None)
        assert "name" in then[0] and "label" in now[0]


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "spec",
    [
        [],
        {},
        42,
        None,
        [{"rename": "a"}],
        [{"rename": "a", "to": "a"}],
        [{"rename": "a", "to": "a.b"}],
        [{"rename": "_id", "to": "x"}],
        [{"drop": "_mod"}],
        [{"drop": ""}],
        [{"drop": "a..b"}],
        [{"drop": 3}],
        [{"retype": "a", "to": "date"}],
        [{"default": "a", "value": None}],
        [{"default": "a", "value": float("nan")}],
        [{"default": "a", "value": {1, 2}}],
        [{"drop": "a", "rename": "b", "to": "c"}],
        [{"drop": "a", "extra": 1}],
        ["drop a"],
        [{"drop": "a"}] * 101,
        {"js": ""},
        {"js": 5},
        {"steps": [], "js": "return doc"},
        "return doc +",
    ],
)
def test_a_bad_transform_raises_before_anything_is_written(spec: Any) -> None:
    with Peer(memory=True) as peer:
        db = peer.new_db("shop")
        items = db.new_collection("Items")
        items.create({"_id": "a", "name": "pen"})
        heads = db.timeline.heads()
        with pytest.raises(InvalidMigration):
            db.migrate("Items", spec)
        assert db.timeline.heads() == heads


def test_a_document_the_new_schema_refuses_stops_the_migration() -> None:
    schema = {"properties": {"n": {"type": "integer"}}, "required": ["n"]}
    with Peer(memory=True) as peer:
        db = peer.new_db("shop")
        items = db.new_collection("Items")
        items.create({"_id": "a", "n": "7"}, {"_id": "b", "n": "x"})
        heads = db.timeline.heads()
        with pytest.raises(InvalidMigration, match="'b'"):
            db.migrate("Items", [{"retype": "n", "to": "integer"}], schema=schema)
        assert db.timeline.heads() == heads
        assert items.find_by_id("a")["n"] == "7"


def test_a_unique_value_shared_after_the_transform_stops_the_migration() -> None:
    with Peer(memory=True) as peer:
        db = peer.new_db("shop")
        items = db.new_collection("Items", indexes=[{"path": "code", "unique": True}])
        items.create({"_id": "a", "code": 1}, {"_id": "b", "code": "1"})
        with pytest.raises(InvalidMigration, match="share"):
            db.migrate("Items", [{"retype": "code", "to": "string"}])


def test_a_javascript_transform_that_throws_stops_the_migration() -> None:
    with Peer(memory=True) as peer:
        db = peer.new_db("shop")
        db.new_collection("Items").create({"_id": "a"})
        with pytest.raises(InvalidMigration, match="threw"):
            db.migrate("Items", "throw new Error('no')")
        with pytest.raises(InvalidMigration, match="null"):
            db.migrate("Items", "return null")


def test_other_bad_input() -> None:
    with Peer(memory=True) as peer:
        db = peer.new_db("shop")
        db.new_collection("Items")
        with pytest.raises(CollectionNotFound):
            db.migrate("Nope", [{"drop": "a"}])
        with pytest.raises(InvalidSchema):
            db.migrate("Items", [{"drop": "a"}], schema={"type": "array"})
        with pytest.raises(InstanceNotFound):
            db["Items"].purge("ghost")


# ------------------------------------------------------- peers that had not seen it


def test_writes_of_a_peer_that_had_not_seen_the_migration_are_rewritten(world: World) -> None:
    w0, w1, _ = world.writers()
    w0[COLL].create({"_id": "a", "name": "pen", "n": 1, "meta": {"x": 1, "tag": "red"}})
    sync(w0, w1)
    w0.migrate(COLL, MIGRATION)
    # w1 has not seen it: its writes are against the old schema, and sort after it
    w1[COLL].save({"_id": "a", "name": "pencil", "n": 2, "meta": {"x": 2, "tag": "blue"}})
    w1[COLL].create({"_id": "b", "name": "cup", "n": 5, "meta": {"x": 0}})
    w1[COLL].create({"_id": "c", "name": "mug", "n": 6})
    w1[COLL].delete("c")
    push(w0, w1)
    push(w1, w0)
    assert docs(w0) == docs(w1)
    assert docs(w0) == {
        "a": {"_id": "a", "label": "pencil", "n": "2", "kind": "item", "meta": {"tag": "blue"}},
        "b": {"_id": "b", "label": "cup", "n": "5", "kind": "item", "meta": {}},
    }
    assert full_state(w0) == full_state(w1)


def test_writes_before_the_migration_arriving_late_are_transformed(world: World) -> None:
    w0, w1, w2 = world.writers()
    w1[COLL].create({"_id": "z", "name": "early", "n": 9})  # before the migration, unseen
    w0.migrate(COLL, MIGRATION)
    push(w0, w2)
    push(w1, w2)  # arrives after the migration it precedes
    sync(w0, w1, w2)
    assert docs(w2)["z"] == {"_id": "z", "label": "early", "n": "9", "kind": "item"}
    assert full_state(w0) == full_state(w1) == full_state(w2)


def test_a_save_under_a_javascript_migration_it_had_not_seen_is_rejected(world: World) -> None:
    w0, w1, _ = world.writers()
    w0[COLL].create({"_id": "a", "cents": 100})
    sync(w0, w1)
    w0.migrate(COLL, "doc.euros = doc.cents / 100; delete doc.cents; return doc")
    w1[COLL].save({"_id": "a", "cents": 300})
    w1[COLL].create({"_id": "b", "cents": 50})
    sync(w0, w1)
    assert docs(w0) == docs(w1)
    assert docs(w0)["a"] == {"_id": "a", "euros": 1}
    assert docs(w0)["b"] == {"_id": "b", "euros": 0.5}
    reasons = [e["reason"] for e in w0.lost_writes() if e["instance_id"] == "a"]
    assert any("JavaScript migration" in (r or "") for r in reasons)
    assert w0.lost_writes() == w1.lost_writes()
    for seed in range(3):  # a JavaScript migration in any delivery order
        fresh = world.fresh(w0, [w0, w1])
        deliver_shuffled(fresh, [w0, w1], random.Random(seed))
        assert full_state(fresh) == full_state(w0)


def test_a_bulk_create_after_a_migration_carries_what_it_saw() -> None:
    with Peer(memory=True) as peer:
        db = peer.new_db("shop")
        items = db.new_collection("Items")
        db.migrate("Items", [{"default": "kind", "value": "x"}])
        items.create(*({"name": str(i)} for i in range(5)))
        rows = [r for r in db.timeline.events("Items") if str(r.action) == "create"]
        assert len(rows) == 5 and all(r.seen is not None for r in rows)
        assert all("kind" not in d for d in items.find())  # written after it: not rewritten


# ------------------------------------------------------------- the property test

STEP = st.one_of(
    st.tuples(st.just("txn"), st.integers(0, 2), st.lists(OP, min_size=1, max_size=3)),
    st.tuples(st.just("push"), st.integers(0, 2), st.integers(0, 2)),
    st.tuples(st.just("migrate"), st.integers(0, 2), st.integers(0, 1)),
    st.tuples(st.just("purge"), st.integers(0, 2), st.sampled_from(["a", "b", "c", "d"])),
)
TRANSFORMS: list[Any] = [MIGRATION, [{"rename": "label", "to": "title"}, {"drop": "kind"}]]


def play(world: World, steps: list[Any]) -> list[Database]:
    writers = world.writers()
    for step in steps:
        db = writers[step[1]]
        if step[0] == "txn":
            run_txn(db, step[2])
        elif step[0] == "migrate":
            db.migrate(COLL, TRANSFORMS[step[2]])
        elif step[0] == "purge":
            with suppress(WriteRejected, InstanceNotFound):
                db[COLL].purge(step[2])
        elif step[1] != step[2]:
            push(db, writers[step[2]])
    return writers


@pytest.mark.slow
@settings(
    max_examples=60,
    phases=PHASES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(steps=st.lists(STEP, min_size=1, max_size=14), seed=st.integers(0, 2**32))
def test_migrations_and_purges_converge_in_any_delivery_order(steps: list[Any], seed: int) -> None:
    """Writes, migrations and purges on three writers with partial exchanges; then every
    record to fresh replicas in random orders: documents, indexes, the event index and
    lost writes are identical everywhere."""
    with ExitStack() as stack:
        world = World(stack)
        writers = play(world, steps)
        sync(*writers)
        expected = full_state(writers[0])
        for w in writers[1:]:
            assert full_state(w) == expected
        rng = random.Random(seed)
        for first in (0, 1):
            fresh = world.fresh(writers[0], writers)
            deliver_shuffled(fresh, writers, rng, first=first)
            assert full_state(fresh) == expected
