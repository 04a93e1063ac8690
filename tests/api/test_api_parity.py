"""The same DB operations on an embedded peer and, through tk.Client, on a daemon agree."""

from __future__ import annotations

from collections.abc import Callable
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
        "age": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "address": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
    "required": ["name"],
}
DOCS = [
    {"_id": "a", "name": "Ann", "age": 31, "tags": ["x"], "address": {"city": "Oslo"}},
    {"_id": "b", "name": "Ben", "age": 22.5, "tags": [], "address": {"city": "Lima"}},
    {"_id": "c", "name": "Cid", "age": 47, "tags": ["x", "y"], "address": {"city": "Oslo"}},
    {"_id": "d", "name": "Dee", "age": 22.5, "tags": ["y"], "address": {"city": "Rome"}},
]


def _generated(instance_id: str) -> str:
    return "<ulid>" if len(instance_id) == 26 else instance_id


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _generated(v) if k == "_id" else _clean(v) for k, v in value.items() if k != "_mod"
        }
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _outcome(fn: Callable[[], Any]) -> Any:
    try:
        return ("ok", _clean(fn()))
    except errors.ThreadkitError as exc:
        return ("error", type(exc).__name__)


def run_operations(peer: Any) -> list[Any]:
    """The operations; every result (or error class) in order."""
    out: list[Any] = []
    db = peer.new_db("parity")
    people = db.new_collection("People", schema=SCHEMA, indexes=[{"path": "name", "unique": True}])
    feed = db.listen(collection="People")
    out.append(_outcome(lambda: people.create(*DOCS)))
    out.append(_outcome(lambda: len(people.create({"name": "Eve", "age": 60}))))
    queries = [
        None,
        tk.where("age").eq(22.5),
        tk.where("age").gt(30).and_("address.city").eq("Oslo"),
        tk.where("name").eq("Ann").or_(tk.where("name").eq("Dee")),
        tk.Query().order_by("age"),
        tk.Query().order_by_desc("name").skip(1).limit(2),
        tk.where("address.city").ne("Oslo").order_by("name"),
        tk.where("age").ge(31).order_by("age"),
        tk.where("age").le(22.5),
        tk.where("name").lt("C"),
        tk.where("age").eq("old"),  # a type mismatch: an error, as in go-threads
    ]
    for query in queries:
        out.append(_outcome(lambda q=query: people.find(q)))
    out.append(_outcome(lambda: people.find_by_id("c")))
    out.append(_outcome(lambda: people.find_by_id("zzz")))
    out.append(_outcome(lambda: people.has("a", "b")))
    out.append(_outcome(lambda: people.has("a", "zzz")))
    out.append(_outcome(lambda: people.save(dict(DOCS[0], age=32))))
    out.append(_outcome(lambda: people.find_by_id("a")))
    out.append(_outcome(lambda: people.save({"name": "NoId"})))
    out.append(_outcome(lambda: people.delete("b")))
    out.append(_outcome(lambda: people.delete("never-was")))
    out.append(_outcome(lambda: people.has("b")))
    out.append(_outcome(lambda: people.verify({"name": "Ok", "age": 1})))
    out.append(_outcome(lambda: people.verify({"name": 5})))
    out.append(_outcome(lambda: people.create({"_id": "x", "age": 3})))
    out.append(_outcome(lambda: people.create({"name": "Ann"})))
    out.append(_outcome(lambda: people.create({"_id": "a", "name": "Other"})))
    out.append(_outcome(lambda: people.count()))

    with people.write_txn() as txn:
        out.append(_outcome(lambda: txn.create({"_id": "t1", "name": "Tia"})))
        out.append(_outcome(lambda: txn.has("t1")))
        out.append(_outcome(lambda: txn.find_by_id("t1")))
        out.append(_outcome(lambda: txn.save({"_id": "c", "name": "Cid", "age": 48})))
        out.append(_outcome(lambda: txn.find(tk.where("age").gt(40))))
        out.append(_outcome(lambda: txn.create({"name": 1})))
        out.append(_outcome(lambda: txn.find_by_id("nope")))
    out.append(_outcome(lambda: people.find(tk.Query().order_by("name"))))
    with people.read_txn() as rtxn:
        out.append(_outcome(lambda: rtxn.find(tk.where("age").lt(40))))
        out.append(_outcome(lambda: rtxn.has("t1", "c")))
        out.append(_outcome(lambda: rtxn.find_by_id("t1")))
    try:
        with people.write_txn() as txn:
            txn.create({"_id": "t2", "name": "Ann"})
        out.append("committed")
    except errors.ThreadkitError as exc:
        out.append(type(exc).__name__)
    out.append(_outcome(lambda: people.has("t2")))

    events = []
    while True:
        try:
            event = feed.get(timeout=1.0)
        except errors.Timeout:
            break
        events.append((str(event.action), _generated(event.instance_id), _clean(event.document)))
    feed.close()
    out.append(sorted(events, key=lambda e: (e[0], e[1])))

    out.append(_outcome(lambda: db.collection_info("People")))
    unique_age = [{"path": "age", "unique": True}]  # two people share 22.5
    out.append(_outcome(lambda: db.update_collection("People", SCHEMA, unique_age) and None))
    out.append(_outcome(lambda: db.update_collection("People", SCHEMA, ["age"]) and None))
    out.append(_outcome(lambda: db.collection_info("People")))
    out.append(_outcome(lambda: db.new_collection("People") and None))
    out.append(_outcome(lambda: db.new_collection("bad name!") and None))
    out.append(sorted(c.name for c in db.list_collections()))
    out.append(_outcome(lambda: db.get_collection("Nope")))
    frame = people.to_pandas(tk.where("age").gt(30))
    out.append((sorted(frame.columns), sorted(_generated(i) for i in frame.index)))
    db.new_collection("Temp")
    db.delete_collection("Temp")
    out.append(sorted(c.name for c in db.list_collections()))
    out.append(db.info().name)
    peer.delete_db(db.id)
    out.append(_outcome(lambda: peer.get_db(db.id)))
    return out


def test_embedded_and_client_agree(daemon: Daemon) -> None:
    with tk.Peer(memory=True, network=False) as peer:
        embedded = run_operations(peer)
    with tk.Client(daemon.target, timeout=20) as client:
        remote = run_operations(client)
    assert len(embedded) == len(remote)
    for i, (a, b) in enumerate(zip(embedded, remote, strict=True)):
        assert a == b, f"operation {i}: embedded {a!r} != client {b!r}"
    assert ("error", "InvalidQuery") in embedded or ("error", "InvalidInput") in embedded
