"""coll.update(id, **fields): a partial save with save's checks, event and transaction."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

import threadkit as tk
from threadkit.db.events import Action
from threadkit.errors import (
    InstanceNotFound,
    InvalidDocument,
    SchemaViolation,
    ScriptRejected,
    UniqueViolation,
)

SCHEMA = {
    "type": "object",
    "properties": {
        "_id": {"type": "string"},
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "odd name": {"type": "string"},
    },
    "required": ["name"],
}


@pytest.fixture
def db() -> Iterator[tk.Database]:
    with tk.Peer(memory=True) as peer:
        yield peer.new_db("update")


def own_records(db: tk.Database) -> int:
    return db.heads()[db.log_id]


def test_update_sets_the_given_fields_and_keeps_the_rest(db: tk.Database) -> None:
    people = db.new_collection("People", schema=SCHEMA)
    people.create({"_id": "a", "name": "Ada", "age": 36})
    before = people.find_by_id("a")
    records = own_records(db)
    with db.listen(collection="People") as feed:
        people.update("a", {"odd name": "x"}, age=37)
        event = feed.get(timeout=5)
    after = people.find_by_id("a")
    assert {k: v for k, v in after.items() if k != "_mod"} == {
        "_id": "a",
        "name": "Ada",
        "age": 37,
        "odd name": "x",
    }
    assert after["_mod"] > before["_mod"]
    assert own_records(db) == records + 1  # one transaction, one record
    assert event.action is Action.SAVE and event.instance_id == "a"
    assert event.document == after
    people.update("a")  # nothing to change: nothing written
    assert own_records(db) == records + 1


def test_update_is_checked_like_save_and_writes_nothing_when_refused(db: tk.Database) -> None:
    people = db.new_collection("People", schema=SCHEMA, indexes=[tk.Index("name", unique=True)])
    people.create({"_id": "a", "name": "Ada", "age": 36}, {"_id": "b", "name": "Bob"})
    stored, records = people.find(), own_records(db)
    refused = [
        (lambda: people.update("a", age="old"), SchemaViolation),
        (lambda: people.update("a", name="Bob"), UniqueViolation),
        (lambda: people.update("zz", age=1), InstanceNotFound),
        (lambda: people.update("", age=1), InvalidDocument),
        (lambda: people.update(3, age=1), InvalidDocument),  # type: ignore[arg-type]
        (lambda: people.update("a", ["age", 1]), InvalidDocument),  # type: ignore[arg-type]
        (lambda: people.update("a", _id="b"), InvalidDocument),
        (lambda: people.update("a", _mod=1), InvalidDocument),
        (lambda: people.update("a", {1: "x"}), InvalidDocument),  # type: ignore[dict-item]
    ]
    for call, error in refused:
        with pytest.raises(error):
            call()
    assert people.find() == stored and own_records(db) == records
    people.update("a", _id="a", age=40)  # naming its own _id is fine
    assert people.find_by_id("a")["age"] == 40


def test_update_runs_the_validator_for_the_writer(db: tk.Database) -> None:
    owner, other = tk.Identity.generate(), tk.Identity.generate()
    diaries = db.new_collection(
        "Diaries", write_validator="return !instance || instance.owner === writer;"
    )
    diaries.create({"_id": "d", "owner": str(owner.public), "text": "mine"}, identity=owner)
    with pytest.raises(ScriptRejected):
        diaries.update("d", text="defaced", identity=other)
    diaries.update("d", text="edited", identity=owner)
    assert diaries.find_by_id("d")["text"] == "edited"


def test_update_keeps_fields_the_read_filter_hides(db: tk.Database) -> None:
    hide = "delete instance.secret; return instance;"
    notes = db.new_collection("Notes", read_filter=hide)
    notes.create({"_id": "n", "text": "a", "secret": "kept"})
    notes.update("n", text="b")
    assert "secret" not in notes.find_by_id("n")
    with db._repo.transaction() as txn:
        assert db.engine.get_doc(txn, "Notes", "n")["secret"] == "kept"
    hidden = db.new_collection("Hidden", read_filter="return null;")
    hidden.create({"_id": "h", "x": 1})
    with pytest.raises(InstanceNotFound):
        hidden.update("h", x=2)


def test_concurrent_updates_of_different_fields_lose_nothing(db: tk.Database) -> None:
    counters = db.new_collection("Counters")
    counters.create({"_id": "c", "a": 0, "b": 0})
    rounds = 40

    def bump(field: str) -> None:
        for i in range(1, rounds + 1):
            counters.update("c", {field: i})

    threads = [threading.Thread(target=bump, args=(f,)) for f in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    doc = counters.find_by_id("c")
    assert (doc["a"], doc["b"]) == (rounds, rounds)
