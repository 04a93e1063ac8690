"""db.history() built from columns returns exactly the frame built event by event."""

from __future__ import annotations

from contextlib import ExitStack, suppress
from typing import Any

import pandas as pd
from hypothesis import event, given, settings
from hypothesis import strategies as st

import threadkit as tk
from threadkit.db.events import array_header
from threadkit.db.handoff import handoff, replica
from threadkit.errors import ThreadkitError
from threadkit.frames.history import (
    READABLE_HISTORY_COLUMNS,
    history,
    history_by_rows,
    readable_history,
    short_id,
    shown_history,
)
from threadkit.frames.history_columns import history_columns

IDS = ["a", "b", "é-ü", "with\x00nul", "x" * 40, "日本"]
OPS = st.lists(
    st.tuples(
        st.sampled_from(["create", "save", "delete", "purge", "migrate", "bulk"]),
        st.sampled_from(["A", "B"]),
        st.sampled_from(IDS),
        st.integers(0, 3),
        st.booleans(),  # on the replica
    ),
    max_size=14,
)


def _apply(db: Any, op: str, name: str, doc_id: str, value: int) -> None:
    coll = db[name]
    if op == "create":
        coll.create({"_id": doc_id, "code": value, "note": {"n": value}})
    elif op == "save":
        coll.save({"_id": doc_id, "code": value, "extra": None})
    elif op in ("delete", "purge"):
        if not coll.has(doc_id):
            coll.create({"_id": doc_id, "code": 10 + value})
        coll.delete(doc_id)
        if op == "purge":
            coll.purge(doc_id)
    elif op == "migrate" and name == "A":
        db.migrate("A", f"doc.m = {value}; return doc")
    elif op == "bulk":
        coll.create([{"code": value + i} for i in range(3)])


def _same(db: Any, collection: str | None) -> None:
    fast, slow = history(db, collection), history_by_rows(db, collection)
    pd.testing.assert_frame_equal(fast, slow)
    assert (history_columns(db, collection, {}) is None) == (slow["instance"] == "").all()
    for action in set(slow["action"]):
        event(f"action {action}")
    if slow["rejected"].any():
        event("a rejected event")
    if any(p == {"_purged": True} for p in slow["patch"]):
        event("a purged event")
    assert list(fast["patch"]) == list(slow["patch"])
    shown = readable_history(fast)
    assert list(shown.columns) == list(READABLE_HISTORY_COLUMNS)
    # built directly (short ids from the distinct ids, no hlc/author): the same frame
    pd.testing.assert_frame_equal(shown_history(db, collection), readable_history(slow))
    pd.testing.assert_frame_equal(db.history(collection), readable_history(slow))
    for column in ("log", "record"):
        expected = pd.Series([short_id(v) for v in slow[column].tolist()], dtype="string")
        pd.testing.assert_series_equal(shown[column], expected, check_names=False)


@settings(max_examples=30, deadline=None)
@given(OPS, st.booleans())
def test_columnar_history_equals_the_per_event_history(ops: list[Any], sync: bool) -> None:
    with ExitStack() as stack:
        db = stack.enter_context(tk.Peer(memory=True)).new_db("h")
        db.new_collection("A")
        db.new_collection("B", indexes=[tk.Index("code", unique=True)])
        other = replica(stack.enter_context(tk.Peer(memory=True)), db)
        handoff(db, other)
        for op, name, doc_id, value, there in ops:
            # a write the state refuses (no such document, a unique value taken…) is skipped
            with suppress(ThreadkitError):
                _apply(other if there else db, op, name, doc_id, value)
        if sync:
            handoff(db, other), handoff(other, db)
        for target in (db, other):
            for collection in (None, "A", "B"):
                _same(target, collection)


def test_array_header_sizes() -> None:
    import cbor2

    for n in (0, 23, 24, 255, 256, 65_535, 65_536):
        assert cbor2.loads(array_header(n) + b"\x01" * n) == [1] * n
