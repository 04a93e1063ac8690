"""Instances of a collection: ThreadDB's instance tests (collection_test.go) rewritten, plus
transactions: atomicity, unique indexes on every write path, no trace of a failed write,
reads inside write transactions, and everything surviving a reopen."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import replicas
from ulid import ULID

from threadkit.core.clock import HLC
from threadkit.db.config import Index
from threadkit.db.database import Database
from threadkit.db.events import Action
from threadkit.db.planner import explain
from threadkit.db.query import Op, where
from threadkit.db.txn import CollectionInTxn
from threadkit.errors import (
    InstanceExists,
    InstanceNotFound,
    InvalidDocument,
    ReadOnlyTransaction,
    SchemaViolation,
    ScriptRejected,
    Timeout,
    TransactionClosed,
    UniqueViolation,
    WriteRejected,
)
from threadkit.peer import Peer

PERSON = {
    "type": "object",
    "required": ["_id", "Name", "Age"],
    "properties": {
        "_id": {"type": "string"},
        "Name": {"type": "string"},
        "Age": {"type": "integer", "minimum": 0},
        "Email": {"type": "string"},
    },
}

ULID_RE = re.compile(r"[0-9a-hjkmnp-tv-z]{26}")


@pytest.fixture
def peer() -> Iterator[Peer]:
    with Peer(memory=True) as p:
        yield p


@pytest.fixture
def db(peer: Peer) -> Database:
    return peer.new_db("instances")


@pytest.fixture
def people(db: Database) -> Any:
    return db.new_collection("Person", schema=PERSON, indexes=[Index("Email", unique=True), "Age"])


def head_counter(db: Database) -> int:
    return db._repo.get_head(db.id, db.log_id).counter


def strip_mod(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "_mod"}


def index_ids(db: Database, coll: str, path: str, op: Op, value: Any) -> list[str]:
    with db._repo.transaction() as txn:
        return list(CollectionInTxn(db[coll], txn).index_ids(path, op, value))


class Trace:
    """Everything a write could leave behind: log counter, documents, index, feed."""

    def __init__(self, db: Database, coll: str) -> None:
        self.db = db
        self.coll = coll
        self.feed = db.listen()
        self.counter = head_counter(db)
        self.docs = db[coll].find()
        self.email_index = index_ids(db, coll, "Email", Op.GE, "")
        self.lost = db.lost_writes()

    def assert_untouched(self) -> None:
        db = self.db
        assert head_counter(db) == self.counter
        assert db[self.coll].find() == self.docs
        assert index_ids(db, self.coll, "Email", Op.GE, "") == self.email_index
        assert db.lost_writes() == self.lost
        with pytest.raises(Timeout):
            self.feed.get(timeout=0.05)
        self.feed.close()


ANN = {"Name": "Ann", "Age": 30, "Email": "ann@x"}
BOB = {"Name": "Bob", "Age": 40, "Email": "bob@x"}


# --------------------------------------------------------------------- create


class TestCreateInstance:
    def test_given_id_is_kept(self, people: Any) -> None:
        assert people.create(dict(ANN, _id="my-id")) == ["my-id"]
        assert strip_mod(people.find_by_id("my-id")) == dict(ANN, _id="my-id")

    @pytest.mark.parametrize("given", [{}, {"_id": ""}])
    def test_generated_id_is_a_lower_case_ulid(self, people: Any, given: dict[str, Any]) -> None:
        before_ms = int(time.time() * 1000)
        (iid,) = people.create(dict(ANN, **given))
        assert len(iid) == 26 and ULID_RE.fullmatch(iid), iid
        ms = ULID.from_str(iid.upper()).milliseconds
        assert before_ms - 1000 <= ms <= int(time.time() * 1000) + 1000
        assert people.find_by_id(iid)["_id"] == iid

    def test_generated_ids_are_distinct_and_increasing(self, people: Any) -> None:
        ids = people.create([dict(ANN, Email=f"{i}@x") for i in range(50)])
        assert len(set(ids)) == 50
        assert ids == sorted(ids)

    def test_create_does_not_change_the_input(self, people: Any) -> None:
        doc = dict(ANN)
        people.create(doc)
        assert doc == ANN

    def test_recreate_given_id_is_instance_exists(self, db: Database, people: Any) -> None:
        people.create(dict(ANN, _id="given"))
        trace = Trace(db, "Person")
        with pytest.raises(InstanceExists):
            people.create(dict(BOB, _id="given"))
        trace.assert_untouched()

    def test_recreate_is_instance_exists(self, db: Database, people: Any) -> None:
        """Re-creating an id that create() generated earlier (passed back explicitly)."""
        (iid,) = people.create(ANN)
        trace = Trace(db, "Person")
        with pytest.raises(InstanceExists):
            people.create(dict(BOB, _id=iid))
        trace.assert_untouched()

    def test_same_id_twice_in_one_call(self, db: Database, people: Any) -> None:
        trace = Trace(db, "Person")
        with pytest.raises(InstanceExists):
            people.create(dict(ANN, _id="x"), dict(BOB, _id="x"))
        trace.assert_untouched()

    @pytest.mark.parametrize("bad_id", [5, 1.5, True, ["a"], {"a": 1}])
    def test_non_string_id(self, people: Any, bad_id: Any) -> None:
        with pytest.raises(InvalidDocument):
            people.create(dict(ANN, _id=bad_id))
        assert people.count() == 0

    @pytest.mark.parametrize("bad", ["text", 5, None, [1]])
    def test_non_dict_document(self, people: Any, bad: Any) -> None:
        with pytest.raises(InvalidDocument):
            people.create(bad)

    def test_mod_is_set_and_user_mod_ignored(self, people: Any) -> None:
        before = time.time_ns()
        (iid,) = people.create(dict(ANN, _mod=5))
        mod = people.find_by_id(iid)["_mod"]
        assert isinstance(mod, int) and before <= mod <= time.time_ns()


class TestReadTxnValidation:
    def test_writes_in_read_txn(self, db: Database, people: Any) -> None:
        (iid,) = people.create(ANN)
        trace = Trace(db, "Person")
        with people.read_txn() as txn:
            with pytest.raises(ReadOnlyTransaction):
                txn.create(BOB)
            with pytest.raises(ReadOnlyTransaction):
                txn.save(dict(ANN, _id=iid, Age=1))
            with pytest.raises(ReadOnlyTransaction):
                txn.delete(iid)
            with pytest.raises(ReadOnlyTransaction):
                txn.verify(BOB)
            assert txn.has(iid)
        trace.assert_untouched()

    def test_read_txn_after_exit(self, people: Any) -> None:
        with people.read_txn() as txn:
            pass
        with pytest.raises(TransactionClosed):
            txn.find()

    def test_read_txn_is_a_snapshot(self, people: Any) -> None:
        (iid,) = people.create(ANN)
        with people.read_txn() as txn:
            people.save(dict(ANN, _id=iid, Age=99))
            people.create(BOB)
            assert txn.find_by_id(iid)["Age"] == 30
            assert txn.count() == 1
        assert people.find_by_id(iid)["Age"] == 99


class TestVariadic:
    def test_create_many_ways(self, people: Any) -> None:
        a = people.create(dict(ANN, Email="1"), dict(ANN, Email="2"))
        b = people.create([dict(ANN, Email="3"), dict(ANN, Email="4")])
        c = people.create((dict(ANN, Email="5"),))
        assert len(a) == len(b) == 2 and len(c) == 1
        assert people.count() == 5
        assert people.has(*a, *b, *c)

    def test_save_and_delete_many_ways(self, people: Any) -> None:
        docs = [dict(ANN, Email=str(i)) for i in range(4)]
        ids = people.create(docs)
        people.save(dict(docs[0], _id=ids[0], Age=1), dict(docs[1], _id=ids[1], Age=1))
        people.save([dict(docs[2], _id=ids[2], Age=1)])
        assert sorted(d["_id"] for d in people.find(where("Age").eq(1))) == sorted(ids[:3])
        people.delete(ids[0], ids[1])
        people.delete([ids[2]])
        assert [d["_id"] for d in people.find()] == [ids[3]]
        assert not people.has(ids[0]) and people.has(ids[3])
        assert not people.has(ids[3], ids[0])


class TestVerifyInstance:
    VALIDATOR = """
        var patch = event.patch.json_patch
        if (event.patch.type === "delete") return true
        return patch.Age === undefined || patch.Age <= 50
    """

    def test_validator_rejects_and_nothing_is_written(self, db: Database) -> None:
        coll = db.new_collection("Person", schema=PERSON, write_validator=self.VALIDATOR)
        (iid,) = coll.create(dict(ANN, _id="a"))
        trace = Trace(db, "Person")
        with pytest.raises(ScriptRejected):
            coll.verify(dict(ANN, _id="a", Age=51))
        with pytest.raises(ScriptRejected):
            coll.verify(dict(BOB, Age=60))
        with pytest.raises(SchemaViolation):
            coll.verify(dict(BOB, Age="old"))
        assert coll.verify(dict(ANN, _id="a", Age=50)) is None
        assert coll.verify(dict(BOB, Age=20)) is None
        with coll.write_txn() as txn, pytest.raises(ScriptRejected):
            txn.verify(dict(BOB, Age=51))
        trace.assert_untouched()
        assert coll.find_by_id(iid)["Age"] == 30
        with pytest.raises(ScriptRejected):
            coll.save(dict(ANN, _id="a", Age=51))
        with pytest.raises(ScriptRejected):
            coll.create(dict(BOB, Age=51))
        assert coll.count() == 1


class TestSaveInstance:
    def test_save_updates(self, people: Any) -> None:
        (iid,) = people.create(ANN)
        people.save(dict(ANN, _id=iid, Name="Annie"))
        assert strip_mod(people.find_by_id(iid)) == dict(ANN, _id=iid, Name="Annie")

    def test_save_removes_missing_fields(self, people: Any) -> None:
        (iid,) = people.create(ANN)
        people.save({"_id": iid, "Name": "Ann", "Age": 30})
        assert "Email" not in people.find_by_id(iid)
        assert index_ids(people.db, "Person", "Email", Op.EQ, "ann@x") == []

    def test_save_of_missing_doc_is_upsert(self, db: Database, people: Any) -> None:
        feed = db.listen()
        people.save(dict(ANN, _id="new"))
        assert strip_mod(people.find_by_id("new")) == dict(ANN, _id="new")
        event = feed.get(timeout=1)
        assert (event.instance_id, event.action) == ("new", Action.CREATE)
        assert index_ids(db, "Person", "Email", Op.EQ, "ann@x") == ["new"]

    def test_save_without_id(self, people: Any) -> None:
        for doc in (ANN, dict(ANN, _id="")):
            with pytest.raises(InvalidDocument):
                people.save(doc)
        assert people.count() == 0

    def test_two_saves_in_one_txn_last_wins(self, db: Database, people: Any) -> None:
        (iid,) = people.create(ANN)
        counter = head_counter(db)
        with people.write_txn() as txn:
            txn.save(dict(ANN, _id=iid, Name="First", Age=1))
            txn.save(dict(ANN, _id=iid, Name="Second"))
        assert strip_mod(people.find_by_id(iid)) == dict(ANN, _id=iid, Name="Second")
        assert head_counter(db) == counter + 1  # one transaction, one record

    def test_schema_checked_on_save(self, people: Any) -> None:
        (iid,) = people.create(ANN)
        with pytest.raises(SchemaViolation):
            people.save({"_id": iid, "Name": "Ann"})  # Age is required
        assert people.find_by_id(iid)["Age"] == 30


class TestModTag:
    def test_mod_increases_on_every_write(self, people: Any) -> None:
        (iid,) = people.create(ANN)
        mods = [people.find_by_id(iid)["_mod"]]
        for age in range(5):
            people.save(dict(ANN, _id=iid, Age=age))
            mods.append(people.find_by_id(iid)["_mod"])
        with people.write_txn() as txn:
            txn.save(dict(ANN, _id=iid, Age=10))
            txn.save(dict(ANN, _id=iid, Age=11))
        mods.append(people.find_by_id(iid)["_mod"])
        assert mods == sorted(set(mods)), mods

    def test_mod_increases_after_seeing_a_peer_whose_clock_runs_ahead(self, db: Database) -> None:
        """Once a remote stamp from a clock that runs ahead has been merged, the HLC's wall
        part stalls (only its logical part moves); `_mod` must still increase on every
        write, as ThreadDB's TestModTagIncrement expects."""
        coll = db.new_collection("Items")
        with Peer(memory=True) as other_peer:
            other = replicas.replica(other_peer, db)
            replicas.sync(db, other)
            other.hlc = HLC(physical=lambda: time.time_ns() + 3600 * 10**9)  # an hour ahead
            other["Items"].create({"_id": "theirs"})
            replicas.sync(db, other)
        coll.create({"_id": "mine", "v": 0})
        mods = [coll.find_by_id("mine")["_mod"]]
        for v in range(1, 4):
            coll.save({"_id": "mine", "v": v})
            mods.append(coll.find_by_id("mine")["_mod"])
        assert mods == sorted(set(mods)), f"_mod did not increase: {mods}"


class TestDeleteInstance:
    def test_delete(self, db: Database, people: Any) -> None:
        a, b = people.create(ANN, BOB)
        people.delete(a)
        assert not people.has(a) and people.has(b)
        with pytest.raises(InstanceNotFound):
            people.find_by_id(a)
        assert index_ids(db, "Person", "Email", Op.EQ, "ann@x") == []
        assert index_ids(db, "Person", "Age", Op.EQ, 30) == []

    def test_repeat_delete_and_missing_id_are_fine(self, db: Database, people: Any) -> None:
        a, b = people.create(ANN, BOB)
        people.delete(a)
        counter = head_counter(db)
        people.delete(a)
        people.delete("never-existed")
        assert head_counter(db) == counter  # nothing to do, nothing written
        # a missing id does not stop later ids (ThreadDB returned early)
        people.delete("never-existed", b)
        assert people.count() == 0

    def test_bad_ids(self, people: Any) -> None:
        for bad in ("", 5, None):
            with pytest.raises(InvalidDocument):
                people.delete(bad)

    def test_unique_value_is_freed(self, people: Any) -> None:
        (a,) = people.create(ANN)
        people.delete(a)
        (again,) = people.create(ANN)
        assert people.find(where("Email").eq("ann@x"))[0]["_id"] == again


class TestInvalidActions:
    @pytest.mark.parametrize(
        "doc",
        [
            {"Name": "Ann"},
            {"Name": 5, "Age": 1},
            {"Name": "Ann", "Age": -1},
            {"Name": "Ann", "Age": 1.5},
            {"Name": "Ann", "Age": 1, "Email": 7},
        ],
    )
    def test_schema_violation_writes_nothing(
        self, db: Database, people: Any, doc: dict[str, Any]
    ) -> None:
        (iid,) = people.create(ANN)
        trace = Trace(db, "Person")
        with pytest.raises(SchemaViolation):
            people.create(doc)
        with pytest.raises(SchemaViolation):
            people.save(dict(doc, _id=iid))
        with pytest.raises(SchemaViolation), people.write_txn() as txn:
            txn.create(BOB)
            txn.create(doc)
        trace.assert_untouched()


# ------------------------------------------------------------------ unique indexes


class TestUniqueEverywhere:
    def test_create(self, db: Database, people: Any) -> None:
        people.create(ANN)
        trace = Trace(db, "Person")
        with pytest.raises(UniqueViolation):
            people.create(dict(BOB, Email="ann@x"))
        trace.assert_untouched()

    def test_save(self, db: Database, people: Any) -> None:
        _, b = people.create(ANN, BOB)
        trace = Trace(db, "Person")
        with pytest.raises(UniqueViolation):
            people.save(dict(BOB, _id=b, Email="ann@x"))
        trace.assert_untouched()

    def test_upsert(self, db: Database, people: Any) -> None:
        people.create(ANN)
        trace = Trace(db, "Person")
        with pytest.raises(UniqueViolation):
            people.save(dict(BOB, _id="fresh", Email="ann@x"))
        trace.assert_untouched()

    def test_two_creates_in_one_txn(self, db: Database, people: Any) -> None:
        trace = Trace(db, "Person")
        with pytest.raises(UniqueViolation), people.write_txn() as txn:
            txn.create(ANN)
            txn.create(dict(BOB, Email="ann@x"))
        trace.assert_untouched()

    def test_two_creates_in_one_call(self, db: Database, people: Any) -> None:
        trace = Trace(db, "Person")
        with pytest.raises(UniqueViolation):
            people.create(ANN, dict(BOB, Email="ann@x"))
        trace.assert_untouched()

    def test_create_then_save_in_one_txn(self, db: Database, people: Any) -> None:
        people.create(ANN)
        trace = Trace(db, "Person")
        with pytest.raises(UniqueViolation), people.write_txn() as txn:
            (b,) = txn.create(BOB)
            txn.save(dict(BOB, _id=b, Email="ann@x"))
        trace.assert_untouched()

    def test_across_txns(self, db: Database, people: Any) -> None:
        with people.write_txn() as txn:
            txn.create(ANN)
        trace = Trace(db, "Person")
        with pytest.raises(UniqueViolation), people.write_txn() as txn:
            txn.create(dict(BOB, Email="ann@x"))
        trace.assert_untouched()

    def test_value_freed_within_one_txn_can_be_taken(self, db: Database, people: Any) -> None:
        a, b = people.create(ANN, BOB)
        with people.write_txn() as txn:
            txn.delete(a)
            (c,) = txn.create(dict(BOB, Name="Cy", Email="ann@x"))
        with people.write_txn() as txn:
            txn.save(dict(BOB, _id=b, Email="bob2@x"))
            (d,) = txn.create(dict(BOB, Name="Di"))
        assert index_ids(db, "Person", "Email", Op.EQ, "ann@x") == [c]
        assert index_ids(db, "Person", "Email", Op.EQ, "bob@x") == [d]
        assert index_ids(db, "Person", "Email", Op.EQ, "bob2@x") == [b]
        assert db.lost_writes() == []

    def test_same_doc_keeps_its_value(self, people: Any) -> None:
        (a,) = people.create(ANN)
        people.save(dict(ANN, _id=a, Age=31))  # Email unchanged: no self-conflict
        assert people.find_by_id(a)["Age"] == 31

    def test_nested_unique_path(self, db: Database) -> None:
        coll = db.new_collection("Things", indexes=[Index("meta.code", unique=True)])
        coll.create({"meta": {"code": 1}})
        with pytest.raises(UniqueViolation):
            coll.create({"meta": {"code": 1}, "other": True})
        coll.create({"meta": {"code": "1"}})  # a string is another value
        assert coll.count() == 2


# ---------------------------------------------------------------- transactions


class TestTransactions:
    def test_failed_txn_leaves_no_trace(self, db: Database, people: Any) -> None:
        people.create(ANN)
        trace = Trace(db, "Person")
        with pytest.raises(UniqueViolation), people.write_txn() as txn:
            txn.create(dict(BOB, _id="b1"))
            txn.save(dict(BOB, _id="b2", Email="b2@x"))
            txn.create(dict(BOB, _id="b3", Email="ann@x"))  # violates: all of it goes
        trace.assert_untouched()
        assert not people.has("b1") and not people.has("b2")
        # and the ids and values are still free
        people.create(dict(BOB, _id="b1"), dict(BOB, _id="b2", Email="b2@x"))

    def test_one_record_per_txn(self, db: Database, people: Any) -> None:
        counter = head_counter(db)
        with people.write_txn() as txn:
            a, b = txn.create(ANN, BOB)
            txn.save(dict(ANN, _id=a, Age=1))
            txn.delete(b)
        assert head_counter(db) == counter + 1
        assert txn.record is not None
        assert [d["_id"] for d in people.find()] == [a]

    def test_empty_txn_writes_nothing(self, db: Database, people: Any) -> None:
        counter = head_counter(db)
        with people.write_txn() as txn:
            txn.delete("missing")
        assert head_counter(db) == counter and txn.record is None

    def test_reads_see_pending_writes(self, people: Any) -> None:
        (a,) = people.create(ANN)
        with people.write_txn() as txn:
            (b,) = txn.create(BOB)
            txn.save(dict(ANN, _id=a, Age=31))
            assert txn.has(a, b)
            assert txn.find_by_id(b)["Name"] == "Bob"
            assert txn.find_by_id(a)["Age"] == 31
            assert sorted(d["_id"] for d in txn.find()) == sorted([a, b])
            assert [d["_id"] for d in txn.find(where("Age").eq(31))] == [a]
            assert [d["_id"] for d in txn.find(where("Email").eq("bob@x"))] == [b]
            txn.delete(a)
            assert not txn.has(a)
            with pytest.raises(InstanceNotFound):
                txn.find_by_id(a)
            assert [d["_id"] for d in txn.find()] == [b]
            with pytest.raises(InstanceExists):
                txn.create(dict(BOB, _id=b))
            (c,) = txn.create(dict(ANN, _id=a))  # deleted in this txn: may be created again
            # committed state is untouched until the end
            assert people.find_by_id(a)["Age"] == 30 and not people.has(b)
        assert people.has(a, b) and c == a
        assert people.find_by_id(a)["Age"] == 30

    def test_transaction_closed_after_commit(self, people: Any) -> None:
        with people.write_txn() as txn:
            txn.create(ANN)
        for call in (
            lambda: txn.create(BOB),
            lambda: txn.save(dict(BOB, _id="x")),
            lambda: txn.delete("x"),
            lambda: txn.find(),
            lambda: txn.find_by_id("x"),
            lambda: txn.has("x"),
            lambda: txn.verify(BOB),
            txn.commit,
        ):
            with pytest.raises(TransactionClosed):
                call()
        assert people.count() == 1

    def test_transaction_closed_after_discard(self, people: Any) -> None:
        txn = people.write_txn()
        txn.create(ANN)
        txn.discard()
        with pytest.raises(TransactionClosed):
            txn.commit()
        with pytest.raises(TransactionClosed):
            txn.create(BOB)
        assert people.count() == 0

    def test_exception_discards(self, db: Database, people: Any) -> None:
        trace = Trace(db, "Person")
        with pytest.raises(KeyError), people.write_txn() as txn:
            txn.create(ANN)
            raise KeyError("oops")
        trace.assert_untouched()
        assert txn.closed

    def test_local_write_refused_by_a_validator_inside_a_txn(self, db: Database) -> None:
        coll = db.new_collection("Dog", write_validator="return event.patch.type !== 'delete'")
        (a,) = coll.create({"Name": "Fido"})
        trace = Trace(db, "Dog")
        with pytest.raises(WriteRejected), coll.write_txn() as txn:
            txn.create({"Name": "Rex"})
            txn.delete(a)
        assert coll.count() == 1
        assert head_counter(db) == trace.counter
        trace.feed.close()


# ---------------------------------------------------------------------- reopen


def test_everything_survives_reopen(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    with Peer(repo) as peer:
        db = peer.new_db("durable")
        people = db.new_collection(
            "Person", schema=PERSON, indexes=[Index("Email", unique=True), "Age"]
        )
        ids = people.create([dict(ANN, Email=f"{i}@x", Age=i % 7) for i in range(30)])
        people.save(dict(ANN, _id=ids[0], Email="0@x", Age=99))
        people.delete(*ids[20:])
        with pytest.raises(UniqueViolation):
            people.create(dict(ANN, Email="1@x"))
        docs = people.find()
        counter = head_counter(db)
        db_id = db.id
    with Peer(repo) as peer:
        db = peer.get_db(db_id)
        people = db["Person"]
        assert people.find() == docs
        assert people.count() == 20
        assert head_counter(db) == counter
        assert index_ids(db, "Person", "Age", Op.EQ, 99) == [ids[0]]
        assert index_ids(db, "Person", "Email", Op.EQ, "5@x") == [ids[5]]
        assert index_ids(db, "Person", "Email", Op.EQ, "25@x") == []
        with db._repo.transaction() as txn:
            plan = explain(where("Age").eq(3), CollectionInTxn(people, txn))
        assert not plan.full_scan
        assert [d["_id"] for d in people.find(where("Age").eq(3))] == [ids[3], ids[10], ids[17]]
        with pytest.raises(UniqueViolation):
            people.create(dict(ANN, Email="1@x"))
        with pytest.raises(InstanceExists):
            people.create(dict(ANN, _id=ids[1], Email="new@x"))
        # writing goes on after the reopen, and the stamps keep increasing
        old_mod = people.find_by_id(ids[1])["_mod"]
        people.save(dict(ANN, _id=ids[1], Email="1@x", Age=1))
        assert people.find_by_id(ids[1])["_mod"] > old_mod
        assert head_counter(db) == counter + 1
