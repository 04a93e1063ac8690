"""Collections of a database: ThreadDB's collection_test.go scenarios, rewritten for threadkit.

Covers new/update/delete collection, indexes (nested, bad paths, unique over duplicates,
backfill, drop), write validators and read filters (incl. runaway scripts), the empty
schema, the getters, and collections surviving a reopen of the repo.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from threadkit.core.identity import Identity
from threadkit.db.config import Index
from threadkit.db.database import Database
from threadkit.db.planner import explain
from threadkit.db.query import Op, Query, where
from threadkit.db.txn import CollectionInTxn
from threadkit.errors import (
    CollectionExists,
    CollectionNotFound,
    InstanceNotFound,
    InvalidIndex,
    InvalidName,
    InvalidSchema,
    SchemaViolation,
    ScriptRejected,
    ScriptTimeout,
    UniqueViolation,
)
from threadkit.peer import Peer

PERSON = {
    "$id": "https://example.com/person.schema.json",
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Person",
    "type": "object",
    "required": ["_id", "Name"],
    "properties": {
        "_id": {"type": "string"},
        "Name": {"type": "string"},
        "Age": {"type": "integer", "minimum": 0},
    },
}

# ThreadDB's person2: FullName replaces Name
PERSON2 = {
    "type": "object",
    "required": ["_id", "FullName"],
    "properties": {
        "_id": {"type": "string"},
        "FullName": {"type": "string"},
        "Age": {"type": "integer", "minimum": 0},
    },
}

BOOK = {
    "type": "object",
    "properties": {
        "_id": {"type": "string"},
        "Title": {"type": "string"},
        "Banned": {"type": "boolean"},
        "Tags": {"type": "array", "items": {"type": "string"}},
        "Meta": {
            "type": "object",
            "properties": {
                "TotalReads": {"type": "integer"},
                "Rating": {"type": "number"},
                "Author": {"type": "object", "properties": {"Name": {"type": "string"}}},
            },
        },
    },
}

# ThreadDB's TestNewCollection/WithWriteValidator body, verbatim.
DOG_VALIDATOR = """
    var type = event.patch.type
    var patch = event.patch.json_patch
    switch (type) {
      case "delete":
        return false
      default:
        if (patch.Name !== "Fido" && patch.Name != "Clyde") {
          return false
        }
        return true
    }
"""

# ThreadDB's WithReadFilter body: everyone is Clyde to readers.
CLYDE_FILTER = """
    instance.Name = "Clyde"
    return instance
"""


@pytest.fixture
def peer() -> Iterator[Peer]:
    with Peer(memory=True) as p:
        yield p


@pytest.fixture
def db(peer: Peer) -> Database:
    return peer.new_db("collections")


def index_ids(db: Database, coll: str, path: str, op: Op, value: Any) -> list[str]:
    """Ids found through the index itself (not a scan)."""
    with db._repo.transaction() as txn:
        return list(CollectionInTxn(db[coll], txn).index_ids(path, op, value))


def plan_of(db: Database, coll: str, query: Query) -> Any:
    with db._repo.transaction() as txn:
        return explain(query, CollectionInTxn(db[coll], txn))


def head_counter(db: Database) -> int:
    return db._repo.get_head(db.id, db.log_id).counter


def ids_of(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(d["_id"] for d in docs)


# --------------------------------------------------------------------- new collection


class TestNewCollection:
    def test_single_schema(self, db: Database) -> None:
        coll = db.new_collection("Person", schema=PERSON)
        assert coll.name == "Person"
        assert db.collection_info("Person")["schema"]["properties"]["Name"] == {"type": "string"}

    def test_with_indexes(self, db: Database) -> None:
        db.new_collection("Person", schema=PERSON, indexes=[Index("Name", unique=True), "Age"])
        info = db.collection_info("Person")
        assert info["indexes"] == [
            {"path": "Name", "unique": True},
            {"path": "Age", "unique": False},
        ]
        people = db["Person"]
        ids = people.create({"Name": "Ann", "Age": 3}, {"Name": "Bob", "Age": 3})
        assert sorted(index_ids(db, "Person", "Age", Op.EQ, 3)) == sorted(ids)
        assert index_ids(db, "Person", "Name", Op.EQ, "Bob") == [ids[1]]
        with pytest.raises(UniqueViolation):
            people.create({"Name": "Ann", "Age": 4})

    def test_with_nested_indexes(self, db: Database) -> None:
        db.new_collection(
            "Book",
            schema=BOOK,
            indexes=["Meta.TotalReads", {"path": "Meta.Author.Name", "unique": True}],
        )
        books = db["Book"]
        ids = books.create(
            {"Title": "A", "Meta": {"TotalReads": 100, "Author": {"Name": "X"}}},
            {"Title": "B", "Meta": {"TotalReads": 150, "Author": {"Name": "Y"}}},
        )
        assert index_ids(db, "Book", "Meta.TotalReads", Op.GT, 120) == [ids[1]]
        assert index_ids(db, "Book", "Meta.Author.Name", Op.EQ, "X") == [ids[0]]
        assert not plan_of(db, "Book", where("Meta.TotalReads").gt(120)).full_scan
        assert ids_of(books.find(where("Meta.TotalReads").gt(120))) == [ids[1]]
        with pytest.raises(UniqueViolation):
            books.create({"Title": "C", "Meta": {"Author": {"Name": "Y"}}})

    def test_write_validator(self, db: Database) -> None:
        dogs = db.new_collection("Dog", write_validator=DOG_VALIDATOR)
        (fido,) = dogs.create({"Name": "Fido"})
        (clyde,) = dogs.create({"Name": "Clyde"})
        with pytest.raises(ScriptRejected):
            dogs.create({"Name": "Bob"})
        with pytest.raises(ScriptRejected):
            dogs.save({"_id": fido, "Name": "Bob"})
        with pytest.raises(ScriptRejected):
            dogs.delete(clyde)
        assert sorted(d["Name"] for d in dogs.find()) == ["Clyde", "Fido"]
        dogs.save({"_id": fido, "Name": "Clyde"})
        assert dogs.find_by_id(fido)["Name"] == "Clyde"

    def test_write_validator_sees_writer_and_instance(self, peer: Peer, db: Database) -> None:
        writer = str(peer.identity.public)
        body = f"""
            if (writer !== "{writer}") return false
            if (event.patch.type === "save") return instance !== null && instance.n === 1
            return true
        """
        coll = db.new_collection("Things", write_validator=body)
        (tid,) = coll.create({"n": 1})
        coll.save({"_id": tid, "n": 2})  # the instance before was n == 1
        with pytest.raises(ScriptRejected):
            coll.save({"_id": tid, "n": 3})  # now it is n == 2
        assert coll.find_by_id(tid)["n"] == 2

    def test_runaway_validator_times_out_and_the_next_call_works(self, db: Database) -> None:
        body = 'if (event.patch.json_patch.Name === "loop") { while (true) {} } return true'
        coll = db.new_collection("Dog", write_validator=body)
        before = head_counter(db)
        started = time.monotonic()
        with pytest.raises(ScriptTimeout):
            coll.create({"Name": "loop"})
        assert time.monotonic() - started < 10  # the default 1 s limit, with slack for load
        assert coll.count() == 0 and head_counter(db) == before
        (ok,) = coll.create({"Name": "Fido"})
        assert coll.find_by_id(ok)["Name"] == "Fido"

    def test_runaway_filter_times_out_and_the_next_call_works(self, db: Database) -> None:
        body = 'if (instance.Name === "loop") { while (true) {} } return instance'
        coll = db.new_collection("Dog", read_filter=body)
        loop, fido = coll.create({"Name": "loop"}, {"Name": "Fido"})
        with pytest.raises(ScriptTimeout):
            coll.find_by_id(loop)
        assert coll.find_by_id(fido)["Name"] == "Fido"
        assert coll.has(fido)

    def test_read_filter_rewrites_what_readers_see(self, db: Database) -> None:
        dogs = db.new_collection("Dog", read_filter=CLYDE_FILTER)
        (fido,) = dogs.create({"Name": "Fido"})
        assert dogs.find_by_id(fido)["Name"] == "Clyde"
        assert [d["Name"] for d in dogs.find()] == ["Clyde"]
        with dogs.read_txn() as txn:
            assert txn.find_by_id(fido)["Name"] == "Clyde"
        # the stored document is unchanged
        assert dogs._get_committed(fido)["Name"] == "Fido"

    def test_save_is_a_patch_against_what_the_writer_saw(self, db: Database) -> None:
        """As in ThreadDB, a save's previous state is the instance through the read filter:
        saving back what was read (a rewritten Name) changes only what the writer changed."""
        dogs = db.new_collection("Dog", read_filter=CLYDE_FILTER)
        (fido,) = dogs.create({"Name": "Fido", "Age": 3})
        seen = dogs.find_by_id(fido)
        assert seen["Name"] == "Clyde"
        dogs.save(dict(seen, Age=4))
        stored = dogs._get_committed(fido)
        assert (stored["Name"], stored["Age"]) == ("Fido", 4)

    def test_read_filter_hides_and_sees_the_reader(self, db: Database) -> None:
        body = "if (instance.owner !== reader) { return null } return instance"
        notes = db.new_collection("Notes", read_filter=body)
        me, them = Identity.generate(), Identity.generate()  # held here: reads may act as them
        mine, theirs = notes.create({"owner": str(me.public)}, {"owner": str(them.public)})
        assert ids_of(notes.find(identity=me)) == [mine]
        assert ids_of(notes.find(identity=them)) == [theirs]
        assert notes.has(mine, identity=me) and not notes.has(theirs, identity=me)
        with pytest.raises(InstanceNotFound):
            notes.find_by_id(theirs, identity=me)
        assert notes.count() == 0  # the peer's own identity owns nothing

    @pytest.mark.parametrize("name", ["", "my collection", "Dog!", "-Dog", "Dog-", "a--b", "Dög"])
    def test_bad_name(self, db: Database, name: str) -> None:
        with pytest.raises(InvalidName):
            db.new_collection(name)
        assert db.list_collections() == []

    @pytest.mark.parametrize("path", ["Missing", "Meta", "Tags", "Meta.Nope", "Title.Sub"])
    def test_bad_index_path(self, db: Database, path: str) -> None:
        with pytest.raises(InvalidIndex):
            db.new_collection("Book", schema=BOOK, indexes=[path])
        assert "Book" not in db

    def test_id_cannot_be_a_number(self, db: Database) -> None:
        with pytest.raises(InvalidSchema):
            db.new_collection("Bad", schema={"properties": {"_id": {"type": "integer"}}})

    def test_schema_without_id_gets_one(self, db: Database) -> None:
        coll = db.new_collection("Loose", schema={"properties": {"n": {"type": "number"}}})
        (iid,) = coll.create({"n": 1})
        assert coll.find_by_id(iid)["_id"] == iid
        assert db.collection_info("Loose")["schema"]["properties"]["_id"] == {"type": "string"}

    def test_twice_is_collection_exists(self, db: Database) -> None:
        db.new_collection("Dog")
        with pytest.raises(CollectionExists):
            db.new_collection("Dog")


# ------------------------------------------------------------------- update collection


class TestUpdateCollection:
    def test_new_schema_applies_to_new_writes_only(self, db: Database) -> None:
        people = db.new_collection("Person", schema=PERSON)
        (old,) = people.create({"Name": "Ann", "Age": 30})
        db.update_collection("Person", schema=PERSON2)
        with pytest.raises(SchemaViolation):
            people.create({"Name": "Bob", "Age": 4})
        (new,) = people.create({"FullName": "Bob Smith", "Age": 4})
        assert people.find_by_id(old)["Name"] == "Ann"
        assert ids_of(people.find()) == sorted([old, new])
        # a save of the old document must now satisfy the new schema
        with pytest.raises(SchemaViolation):
            people.save({"_id": old, "Name": "Ann", "Age": 31})
        people.save({"_id": old, "FullName": "Ann Lee", "Age": 31})
        assert "Name" not in people.find_by_id(old)

    def test_indexes_are_added_and_dropped(self, db: Database) -> None:
        db.new_collection("Person", schema=PERSON, indexes=["Name"])
        assert len(db.collection_info("Person")["indexes"]) == 1
        db.update_collection("Person", schema=PERSON2, indexes=["FullName", "Age"])
        assert [i["path"] for i in db.collection_info("Person")["indexes"]] == ["FullName", "Age"]
        db.update_collection("Person", schema=PERSON2)
        assert db.collection_info("Person")["indexes"] == []

    def test_update_replaces_scripts(self, db: Database) -> None:
        dogs = db.new_collection("Dog", write_validator=DOG_VALIDATOR, read_filter=CLYDE_FILTER)
        db.update_collection("Dog")
        info = db.collection_info("Dog")
        assert info["write_validator"] is None and info["read_filter"] is None
        (bob,) = dogs.create({"Name": "Bob"})
        assert dogs.find_by_id(bob)["Name"] == "Bob"

    def test_backfill_new_index(self, db: Database) -> None:
        people = db.new_collection("Person", schema=PERSON)
        ids = people.create(
            {"Name": "Ann", "Age": 30}, {"Name": "Bob", "Age": 40}, {"Name": "Cy", "Age": 30}
        )
        assert plan_of(db, "Person", where("Age").eq(30)).full_scan
        db.update_collection("Person", schema=PERSON, indexes=["Age"])
        # the index holds the documents written before it existed
        assert sorted(index_ids(db, "Person", "Age", Op.EQ, 30)) == sorted([ids[0], ids[2]])
        assert index_ids(db, "Person", "Age", Op.GT, 30) == [ids[1]]
        plan = plan_of(db, "Person", where("Age").eq(30))
        assert not plan.full_scan
        assert [lk.path for lk in plan.lookups] == ["Age"]
        assert ids_of(people.find(where("Age").eq(30))) == sorted([ids[0], ids[2]])
        # later writes keep it up to date
        people.save({"_id": ids[1], "Name": "Bob", "Age": 30})
        assert sorted(index_ids(db, "Person", "Age", Op.EQ, 30)) == sorted(ids)

    def test_unknown_collection(self, db: Database) -> None:
        with pytest.raises(CollectionNotFound):
            db.update_collection("Nope")

    def test_bad_config_changes_nothing(self, db: Database) -> None:
        db.new_collection("Person", schema=PERSON, indexes=["Name"])
        before = db.collection_info("Person")
        counter = head_counter(db)
        with pytest.raises(InvalidIndex):
            db.update_collection("Person", schema=PERSON, indexes=["Nope"])
        assert db.collection_info("Person") == before
        assert head_counter(db) == counter


# ------------------------------------------------------------------- delete collection


class TestDeleteCollection:
    def test_delete(self, db: Database) -> None:
        people = db.new_collection("Person", schema=PERSON, indexes=["Name"])
        people.create({"Name": "Ann"})
        db.new_collection("Dog")
        db.delete_collection("Person")
        assert "Person" not in db
        assert [c.name for c in db.list_collections()] == ["Dog"]
        with pytest.raises(CollectionNotFound):
            db.get_collection("Person")
        with pytest.raises(CollectionNotFound):
            db["Person"]
        with pytest.raises(CollectionNotFound):
            db.collection_info("Person")
        with pytest.raises(CollectionNotFound):
            people.find()
        with pytest.raises(CollectionNotFound):
            people.create({"Name": "Bob"})

    def test_delete_twice_and_unknown(self, db: Database) -> None:
        db.new_collection("Person")
        db.delete_collection("Person")
        with pytest.raises(CollectionNotFound):
            db.delete_collection("Person")
        with pytest.raises(CollectionNotFound):
            db.delete_collection("Never")

    def test_recreate_starts_empty(self, db: Database) -> None:
        people = db.new_collection("Person", schema=PERSON, indexes=[Index("Name", unique=True)])
        (ann,) = people.create({"_id": "ann", "Name": "Ann"})
        db.delete_collection("Person")
        again = db.new_collection("Person", schema=PERSON, indexes=[Index("Name", unique=True)])
        assert again.count() == 0 and again.find() == []
        assert not again.has(ann)
        assert index_ids(db, "Person", "Name", Op.EQ, "Ann") == []
        # neither the id nor the unique value is still taken
        again.create({"_id": "ann", "Name": "Ann"})
        assert again.find_by_id("ann")["Name"] == "Ann"


# ------------------------------------------------------------------------- add index


class TestAddIndex:
    def test_nested_ok(self, db: Database) -> None:
        books = db.new_collection("Book", schema=BOOK)
        (bid,) = books.create({"Title": "T", "Meta": {"TotalReads": 3, "Rating": 4.5}})
        db.update_collection("Book", schema=BOOK, indexes=["Meta.TotalReads", "Meta.Rating"])
        assert index_ids(db, "Book", "Meta.Rating", Op.GE, 4.5) == [bid]
        assert index_ids(db, "Book", "Meta.TotalReads", Op.EQ, 3) == [bid]

    @pytest.mark.parametrize(
        "path", ["Meta", "Meta.Author", "Tags", "Missing", "Meta.Missing", "_id", "Meta..Rating"]
    )
    def test_object_array_missing_and_bad_paths_fail(self, db: Database, path: str) -> None:
        db.new_collection("Book", schema=BOOK, indexes=["Title"])
        before = db.collection_info("Book")
        with pytest.raises(InvalidIndex):
            db.update_collection("Book", schema=BOOK, indexes=["Title", path])
        assert db.collection_info("Book") == before

    def test_unique_over_duplicates_fails_and_changes_nothing(self, db: Database) -> None:
        books = db.new_collection("Book", schema=BOOK, indexes=["Meta.TotalReads"])
        books.create({"Title": "Same"}, {"Title": "Same"}, {"Title": "Other"})
        before_info = db.collection_info("Book")
        before_docs = books.find()
        counter = head_counter(db)
        with pytest.raises(UniqueViolation):
            db.update_collection("Book", schema=BOOK, indexes=[Index("Title", unique=True)])
        assert db.collection_info("Book") == before_info
        assert books.find() == before_docs
        assert head_counter(db) == counter
        assert index_ids(db, "Book", "Title", Op.EQ, "Same") == []
        # the untouched index still works, and duplicates may still be written
        books.create({"Title": "Same"})
        assert books.count() == 4

    def test_unique_over_distinct_values_works(self, db: Database) -> None:
        books = db.new_collection("Book", schema=BOOK)
        a, b = books.create({"Title": "A"}, {"Title": "B"})
        db.update_collection("Book", schema=BOOK, indexes=[Index("Title", unique=True)])
        assert index_ids(db, "Book", "Title", Op.EQ, "B") == [b]
        with pytest.raises(UniqueViolation):
            books.create({"Title": "A"})
        with pytest.raises(UniqueViolation):
            books.save({"_id": b, "Title": "A"})
        assert books.find_by_id(a)["Title"] == "A"

    def test_unique_over_deleted_duplicates_works(self, db: Database) -> None:
        books = db.new_collection("Book", schema=BOOK)
        a, b = books.create({"Title": "A"}, {"Title": "A"})
        books.delete(b)
        db.update_collection("Book", schema=BOOK, indexes=[Index("Title", unique=True)])
        assert index_ids(db, "Book", "Title", Op.EQ, "A") == [a]


# ------------------------------------------------------------------------ drop index


class TestDropIndex:
    def test_drop(self, db: Database) -> None:
        people = db.new_collection("Person", schema=PERSON, indexes=["Name", "Age"])
        ids = people.create({"Name": "Ann", "Age": 1}, {"Name": "Bob", "Age": 2})
        db.update_collection("Person", schema=PERSON, indexes=["Age"])
        assert db.collection_info("Person")["indexes"] == [{"path": "Age", "unique": False}]
        with db._repo.transaction() as txn:
            left = list(db.engine.index_ids(txn, "Person", "Name", b"", b"\xff" * 8))
        assert left == []
        assert plan_of(db, "Person", where("Name").eq("Bob")).full_scan
        assert ids_of(people.find(where("Name").eq("Bob"))) == [ids[1]]
        assert index_ids(db, "Person", "Age", Op.EQ, 2) == [ids[1]]

    def test_drop_unique_allows_duplicates(self, db: Database) -> None:
        people = db.new_collection("Person", schema=PERSON, indexes=[Index("Name", unique=True)])
        people.create({"Name": "Ann"})
        db.update_collection("Person", schema=PERSON)
        people.create({"Name": "Ann"})
        assert len(people.find(where("Name").eq("Ann"))) == 2


# ----------------------------------------------------------------------- empty schema


class TestEmptySchema:
    @pytest.mark.parametrize("schema", [None, {}])
    def test_any_document_goes(self, db: Database, schema: dict[str, Any] | None) -> None:
        coll = db.new_collection("Anything", schema=schema)
        ids = coll.create({"a": 1}, {"b": {"c": [1, "x"]}}, {})
        assert coll.count() == 3
        assert coll.find_by_id(ids[1])["b"] == {"c": [1, "x"]}

    def test_any_path_may_be_indexed(self, db: Database) -> None:
        coll = db.new_collection("Anything", schema={}, indexes=["a.b", "n"])
        x, y = coll.create({"a": {"b": "x"}, "n": 1}, {"n": "text"})
        assert index_ids(db, "Anything", "a.b", Op.EQ, "x") == [x]
        assert index_ids(db, "Anything", "n", Op.EQ, "text") == [y]


# --------------------------------------------------------------------------- getters


class TestGetters:
    def test_get_collection(self, db: Database) -> None:
        made = db.new_collection(
            "Person", schema=PERSON, indexes=["Name"], write_validator="return true"
        )
        assert db.get_collection("Person").name == "Person"
        assert db["Person"].name == "Person"
        assert db.get_collection("Person") is made
        assert "Person" in db and "Nope" not in db
        info = db.collection_info("Person")
        assert info["name"] == "Person"
        assert info["indexes"] == [{"path": "Name", "unique": False}]
        assert info["write_validator"] == "return true"
        assert info["read_filter"] is None
        assert info["schema"]["required"] == ["_id", "Name"]

    def test_list_collections(self, db: Database) -> None:
        assert db.list_collections() == []
        for name in ("Zebra", "Apple", "Mango"):
            db.new_collection(name)
        assert [c.name for c in db.list_collections()] == ["Apple", "Mango", "Zebra"]

    def test_unknown(self, db: Database) -> None:
        with pytest.raises(CollectionNotFound):
            db.get_collection("Nope")
        with pytest.raises(CollectionNotFound):
            db.collection_info("Nope")
        with pytest.raises(CollectionNotFound):
            db["Nope"]


# ---------------------------------------------------------------------------- reopen


def test_collections_survive_reopen(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    with Peer(repo) as peer:
        db = peer.new_db("survivor")
        people = db.new_collection(
            "Person", schema=PERSON, indexes=[Index("Name", unique=True), "Age"]
        )
        dogs = db.new_collection("Dog", write_validator=DOG_VALIDATOR, read_filter=CLYDE_FILTER)
        db.new_collection("Gone")
        db.delete_collection("Gone")
        ann, bob = people.create({"Name": "Ann", "Age": 30}, {"Name": "Bob", "Age": 40})
        (fido,) = dogs.create({"Name": "Fido"})
        infos = {n: db.collection_info(n) for n in ("Person", "Dog")}
        db_id = db.id
    with Peer(repo) as peer:
        db = peer.get_db(db_id)
        assert [c.name for c in db.list_collections()] == ["Dog", "Person"]
        assert {n: db.collection_info(n) for n in ("Person", "Dog")} == infos
        people, dogs = db["Person"], db["Dog"]
        assert index_ids(db, "Person", "Age", Op.GE, 35) == [bob]
        assert not plan_of(db, "Person", where("Age").ge(35)).full_scan
        with pytest.raises(UniqueViolation):
            people.create({"Name": "Ann"})
        with pytest.raises(ScriptRejected):
            dogs.create({"Name": "Rex"})
        assert dogs.find_by_id(fido)["Name"] == "Clyde"
        assert people.find_by_id(ann)["Age"] == 30
        with pytest.raises(CollectionNotFound):
            db["Gone"]
