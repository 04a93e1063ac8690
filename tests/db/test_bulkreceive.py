"""Received records of creates applied in one batch (threadkit.db.bulkreceive): the stored
state, history and lost writes are exactly those of the event-by-event path."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snapshot_helpers import exchange, state

import threadkit as tk
from threadkit.db import bulkreceive
from threadkit.db.handoff import log_records, replica
from threadkit.db.timeline import event_rows

STRICT = {
    "type": "object",
    "properties": {"n": {"type": "integer"}, "tag": {"type": "string"}},
}


def _joined(peer: tk.Peer, origin: Any, writers: list[Any], bulk: bool) -> Any:
    """A fresh replica of ``origin`` given every writer's log, the bulk path on or off."""
    bulkreceive.enabled = bulk
    try:
        target = replica(peer, origin)
        for source in writers:
            if not any(i.id == source.log_id for i in target._repo.list_logs(target.id)):
                target._repo.add_log(target.id, source.log_key.public)
            target.apply_records(source.log_id, log_records(source))
        return target
    finally:
        bulkreceive.enabled = True


def _same(a: Any, b: Any) -> None:
    assert state(a) == state(b)
    assert event_rows(a) == event_rows(b)
    assert a.lost_writes() == b.lost_writes()


def _apply_step(dbs: list[Any], step: tuple[str, int, int, Any]) -> None:
    kind, who, size, value = step
    db = dbs[who]
    coll = db["Items"]
    if kind == "create":
        docs = [{"n": i, "tag": f"{value}-{i % 3}"} for i in range(size + 1)]
        if value is not None and value % 2:
            docs = [{"_id": f"d{value}-{i}", **d} for i, d in enumerate(docs)]
        with contextlib.suppress(tk.errors.ThreadkitError):
            coll.create(*docs)  # (refused: an id or unique value this writer already holds)
    elif kind == "save":
        for doc in coll.find()[:size]:
            coll.save({"_id": doc["_id"], "n": -1})
    elif kind == "delete":
        for doc in coll.find()[:size]:
            coll.delete(doc["_id"])
    elif kind == "unique":
        with contextlib.suppress(tk.errors.UniqueViolation):  # (values this writer holds twice)
            db.update_collection("Items", indexes=[tk.Index("tag", unique=True)])
    elif kind == "schema":
        db.update_collection("Items", schema=STRICT)
    else:
        exchange(*dbs)


steps = st.lists(
    st.tuples(
        st.sampled_from(["create", "create", "save", "delete", "unique", "schema", "sync"]),
        st.integers(0, 1),
        st.integers(0, 4),
        st.one_of(st.none(), st.integers(0, 5)),
    ),
    min_size=1,
    max_size=14,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_property_bulk_join_equals_event_by_event(plan: list[tuple[str, int, int, Any]]) -> None:
    """Two writers, concurrent creates (given ids, unique values, schema changes one of
    them has not seen): a joiner applying their logs in batches ends byte-identical."""
    with (
        tk.Peer(memory=True) as a,
        tk.Peer(memory=True) as b,
        tk.Peer(memory=True) as c,
        tk.Peer(memory=True) as d,
    ):
        first = a.new_db("bulk")
        first.new_collection("Items")
        second = replica(b, first)
        exchange(first, second)
        dbs = [first, second]
        for step in plan:
            _apply_step(dbs, step)
        old = _joined(c, first, dbs, bulk=False)
        new = _joined(d, first, dbs, bulk=True)
        _same(old, new)


def test_invalid_and_taken_documents_go_event_by_event() -> None:
    """A record the bulk path cannot take (a document the schema refuses where it stands,
    a unique value taken) is refused event by event, as before."""
    with (
        tk.Peer(memory=True) as a,
        tk.Peer(memory=True) as b,
        tk.Peer(memory=True) as c,
        tk.Peer(memory=True) as d,
    ):
        first = a.new_db("bulk")
        first.new_collection("Items", indexes=[tk.Index("tag", unique=True)])
        second = replica(b, first)
        exchange(first, second)
        first["Items"].create(*({"n": i, "tag": f"a{i}"} for i in range(5)))
        # the second writer has not seen the first's creates: a unique value taken twice
        second["Items"].create(*({"n": i, "tag": f"a{i}"} for i in range(3, 8)))
        first.update_collection("Items", schema=STRICT, indexes=[tk.Index("tag", unique=True)])
        second["Items"].create(*({"n": "text", "tag": f"z{i}"} for i in range(4)))
        old = _joined(c, first, [first, second], bulk=False)
        new = _joined(d, first, [first, second], bulk=True)
        _same(old, new)
        assert new.lost_writes(), "nothing was refused: the test does not test the fallback"


def test_bulk_path_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain backlog of creates does take the bulk path (not only the fallback)."""
    from threadkit.db import engine

    taken: list[bool] = []
    real = bulkreceive.apply_received_creates

    def watched(*args: Any) -> Any:
        out = real(*args)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(engine, "apply_received_creates", watched)
    with tk.Peer(memory=True) as a, tk.Peer(memory=True) as b:
        db = a.new_db("bulk")
        db.new_collection("Items").create(*({"n": i} for i in range(50)))
        joined = _joined(b, db, [db], bulk=True)
        assert taken == [False, True]  # the collection's record, then the creates
        assert joined["Items"].count() == 50
