"""The issue's scenario with ``tk.Client`` against a real ``threadkit daemon`` subprocess."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from api_procs import Daemon

import threadkit as tk
from threadkit import errors

pytestmark = pytest.mark.slow

SCHEMA = {
    "type": "object",
    "properties": {
        "_id": {"type": "string"},
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "city": {"type": "string"},
    },
    "required": ["name"],
}
PEOPLE = [
    {"name": "Alice", "age": 30, "city": "Oslo"},
    {"name": "Bob", "age": 25, "city": "Lima"},
    {"name": "Carol", "age": 41, "city": "Oslo"},
    {"name": "Dan", "age": 35, "city": "Rome"},
]


@pytest.fixture
def client(daemon: Daemon) -> Iterator[tk.Client]:
    with tk.Client(daemon.target, timeout=20) as c:
        yield c


def _names(docs: list[dict[str, Any]]) -> list[str]:
    return [d["name"] for d in docs]


def _strip(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "_mod"}


def test_full_scenario(client: tk.Client) -> None:
    identity = tk.Identity.generate()
    token = client.get_token(identity)
    assert token and client.token == token

    db = client.new_db("scenario")
    assert db.info().name == "scenario"
    with pytest.raises(errors.ThreadExists, match=r"^db already exists$"):
        client.new_db("again", thread_id=db.id)

    people = db.new_collection("Persons", schema=SCHEMA, indexes=[{"path": "name", "unique": True}])
    with pytest.raises(errors.CollectionExists, match=r"^collection already registered$"):
        db.new_collection("Persons")

    feed = db.listen(collection="Persons")
    ids = people.create(*PEOPLE[:3])
    given = people.create(dict(PEOPLE[3], _id="dan"))
    assert given == ["dan"] and len(ids) == 3

    # find: {} / eq / or / sort / skip / limit
    assert sorted(_names(people.find())) == ["Alice", "Bob", "Carol", "Dan"]
    assert sorted(_names(people.find(tk.where("city").eq("Oslo")))) == ["Alice", "Carol"]
    either = tk.where("city").eq("Lima").or_(tk.where("name").eq("Dan"))
    assert sorted(_names(people.find(either))) == ["Bob", "Dan"]
    by_age = tk.Query().order_by("age")
    assert _names(people.find(by_age)) == ["Bob", "Alice", "Dan", "Carol"]
    assert _names(people.find(tk.Query().order_by_desc("age").skip(1).limit(2))) == ["Dan", "Alice"]

    alice = people.find_by_id(ids[0])
    assert _strip(alice) == {"_id": ids[0], **PEOPLE[0]}
    people.save(dict(alice, age=31))
    assert people.find_by_id(ids[0])["age"] == 31
    assert people.has(ids[0], "dan") and not people.has("nobody")
    people.delete("dan")
    assert not people.has("dan")
    with pytest.raises(errors.InstanceNotFound, match=r"^instance not found"):
        people.find_by_id("dan")

    seen = [feed.get(timeout=10) for _ in range(6)]
    feed.close()
    actions = [(e.action, e.instance_id) for e in seen if isinstance(e, tk.Event)]
    assert actions[:4] == [(tk.Action.CREATE, i) for i in [*ids, "dan"]]
    assert actions[4:] == [(tk.Action.SAVE, ids[0]), (tk.Action.DELETE, "dan")]
    assert seen[5].document is None and seen[4].document["age"] == 31

    # transactions
    with people.write_txn() as txn:
        new = txn.create({"name": "Erin", "age": 22})
        assert txn.has(new[0]) and not people.has(new[0])  # not committed yet
        txn.save({"_id": ids[1], "name": "Bob", "age": 26})
    assert people.find_by_id(new[0])["name"] == "Erin"
    assert people.find_by_id(ids[1])["age"] == 26
    with people.read_txn() as rtxn:
        assert rtxn.has(new[0])
        assert rtxn.find_by_id(ids[1])["name"] == "Bob"
        assert len(rtxn.find(tk.where("age").lt(30))) == 2
        with pytest.raises(errors.InstanceNotFound):
            rtxn.find_by_id("nobody")

    # a commit that breaks a unique index fails as a whole
    with pytest.raises(errors.UniqueViolation), people.write_txn() as txn:
        txn.create({"name": "Frank"})
        txn.create({"name": "Carol"})
    assert not people.find(tk.where("name").eq("Frank"))
    # an error inside the transaction comes back in its reply; the transaction goes on
    with people.write_txn() as txn:
        with pytest.raises(errors.SchemaViolation):
            txn.create({"name": 5})
        txn.create({"name": "Gina"})
    assert len(people.find(tk.where("name").eq("Gina"))) == 1

    # a transaction that fails in the block is discarded
    with pytest.raises(RuntimeError), people.write_txn() as txn:
        txn.create({"name": "Ghost"})
        raise RuntimeError("abandon")
    assert not people.find(tk.where("name").eq("Ghost"))

    # verify and rejected writes
    people.verify({"name": "Fine", "age": 3})
    with pytest.raises(errors.SchemaViolation, match=r"^instance doesn't correspond to schema"):
        people.verify({"name": "Bad", "age": "old"})
    with pytest.raises(errors.SchemaViolation):
        people.create({"age": 3})
    with pytest.raises(errors.UniqueViolation, match=r"^unique constraint violation"):
        people.create({"name": "Alice"})
    with pytest.raises(errors.InstanceExists, match=r"^can't create already existing instance"):
        people.create({"_id": ids[0], "name": "Zed"})

    # collections
    db.update_collection(
        "Persons", schema=SCHEMA, indexes=[{"path": "name", "unique": True}, "city"]
    )
    info = db.collection_info("Persons")
    assert info["name"] == "Persons"
    assert info["indexes"] == [{"path": "name", "unique": True}, {"path": "city", "unique": False}]
    assert info["schema"]["properties"]["age"] == {"type": "integer"}
    db.new_collection("Notes")
    assert sorted(c.name for c in db.list_collections()) == ["Notes", "Persons"]
    assert "Notes" in db
    db.delete_collection("Notes")
    assert [c.name for c in db.list_collections()] == ["Persons"]
    with pytest.raises(errors.CollectionNotFound, match=r"^collection not found"):
        db.get_collection("Notes")

    # databases
    dbinfo = db.info()
    assert dbinfo.key.can_read and dbinfo.addrs
    assert all(a.endswith(f"/thread/{db.id}") for a in dbinfo.addrs)
    assert db.id in [d.id for d in client.list_dbs()]
    client.delete_db(db.id)
    assert db.id not in [d.id for d in client.list_dbs()]
    with pytest.raises(errors.DBNotFound, match=r"^db not found"):
        client.get_db(db.id)


def test_writer_is_the_token_identity(client: tk.Client) -> None:
    db = client.new_db("writers")
    alice = tk.Identity.generate()
    validator = f"return writer === {str(alice.public)!r}"
    coll = db.new_collection("Guarded", write_validator=validator.replace("'", '"'))
    with pytest.raises(errors.InvalidInput):
        coll.create({"x": 1})  # no token: the host's identity, refused
    client.get_token(alice)
    assert len(coll.create({"x": 2})) == 1
    client.delete_db(db.id)


def test_frames_and_count(client: tk.Client) -> None:
    db = client.new_db("frames")
    coll = db.new_collection("Rows")
    coll.create({"a": 1, "b": {"c": "x"}}, {"a": 2, "b": {"c": "y"}})
    frame = coll.to_pandas(tk.where("a").gt(1))
    assert list(frame["b.c"]) == ["y"]
    assert len(coll.df) == 2 == coll.count() == len(coll)
    assert str(coll.df["_mod"].dtype) == "datetime64[ns, UTC]"
    client.delete_db(db.id)


def test_listen_filters_on_actions(client: tk.Client) -> None:
    db = client.new_db("listen")
    coll = db.new_collection("Items")
    with db.listen(collection="Items", actions=["delete"]) as feed:
        ids = coll.create({"v": 1})
        coll.save({"_id": ids[0], "v": 2})
        coll.delete(ids[0])
        event = feed.get(timeout=10)
        assert (event.action, event.instance_id) == (tk.Action.DELETE, ids[0])
        with pytest.raises(errors.Timeout):
            feed.get(timeout=0.3)
    time.sleep(0.1)
    client.delete_db(db.id)
