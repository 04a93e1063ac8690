"""db.timeline: the read side of a database's history (events, records, logs, heads)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

import threadkit as tk
from threadkit.db.database import Database
from threadkit.db.handoff import handoff, log_records, replica
from threadkit.db.timeline import RecordFinder, event_rows, heads, log_states, records


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def new_db(stack: ExitStack, name: str = "hist") -> Database:
    return stack.enter_context(tk.Peer(memory=True)).new_db(name)


def test_record_finder_locates_collection_events(stack: ExitStack) -> None:
    db = new_db(stack)
    coll = db.new_collection("Things")
    for i in range(20):
        coll.create({"n": i})
        if i % 7 == 0:
            db.update_collection("Things", indexes=[tk.Index("n")] if i % 2 else [])
    finder = RecordFinder(db)
    records = {r.cid: r for r in log_records(db)}
    configs = [r for r in event_rows(db, finder=finder) if r.instance == ""]
    assert len(configs) == 4
    for row in configs:
        assert row.record in records
        found = finder.locate(row.key)
        assert found is not None and found.cid == row.record
    assert finder.locate(b"\x00" * 12 + configs[0].key[12:]) is None


def test_logs_heads_and_records_of_two_replicas(stack: ExitStack) -> None:
    a = new_db(stack)
    a.new_collection("Notes").create({"_id": "n", "text": "x"})
    b = replica(stack.enter_context(tk.Peer(memory=True)), a)
    handoff(a, b)
    b["Notes"].save({"_id": "n", "text": "y"})
    handoff(b, a)
    assert heads(a) == {a.log_id: 2, b.log_id: 1} == a.timeline.heads()
    states = log_states(a)
    assert [s.id for s in states] == [a.log_id, b.log_id]
    assert [(s.own, s.counter, s.applied) for s in states] == [(True, 2, 2), (False, 1, 1)]
    assert states[1].head == log_records(b)[-1].cid
    nodes = list(records(a))
    assert {(n.log, n.counter) for n in nodes} == {(a.log_id, 1), (a.log_id, 2), (b.log_id, 1)}
    assert all(n.events for n in nodes)
    assert [str(r.action) for r in a.timeline.events("Notes")] == [
        "new_collection",
        "create",
        "save",
    ]


def test_documents_at_gives_the_schema_then(stack: ExitStack) -> None:
    db = new_db(stack)
    db.new_collection("Notes")
    notes = db["Notes"]
    notes.create({"_id": "a", "n": 1})
    then = db.timeline.heads()
    db.update_collection("Notes", schema={"properties": {"n": {"type": "integer"}}})
    notes.save({"_id": "a", "n": 2})
    docs, schema = db.timeline.documents_at("Notes", then, None)
    assert [d["n"] for d in docs] == [1]
    assert schema is not None and "n" not in schema.get("properties", {})
    docs, schema = db.timeline.documents_at("Notes", db.timeline.heads(), None)
    assert [d["n"] for d in docs] == [2] and schema is not None
    assert schema["properties"]["n"] == {"type": "integer"}
    assert db.timeline.documents_at("Nope", then, None) == ([], None)
