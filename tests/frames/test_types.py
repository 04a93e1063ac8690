"""One type mapping for every view (docs/types.md): df, at(), history(), conflicts(), find()."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pandas as pd
import pytest

import threadkit as tk
from threadkit.db.handoff import handoff, replica
from threadkit.frames.history import (
    CONFLICT_COLUMNS,
    HISTORY_COLUMNS,
    READABLE_CONFLICT_COLUMNS,
    READABLE_HISTORY_COLUMNS,
)

SCHEMA = {
    "properties": {
        "name": {"type": "string"},
        "n": {"type": "integer"},
        "w": {"type": "number"},
        "ok": {"type": "boolean"},
        "meta": {"type": "object", "properties": {"reads": {"type": "integer"}}},
    }
}


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def test_at_has_the_columns_and_dtypes_of_df(stack: ExitStack) -> None:
    db = stack.enter_context(tk.Peer(memory=True)).new_db("types")
    things = db.new_collection("Things", schema=SCHEMA)
    things.create(
        {"_id": "a", "name": "x", "n": 1, "w": 0.5, "ok": True, "meta": {"reads": 2}},
        {"_id": "b", "name": "y"},
    )
    now = db.heads()
    pd.testing.assert_frame_equal(things.at(now), things.df)
    assert things.at(now)["_mod"].dtype == "datetime64[ns, UTC]"
    assert str(things.at(now)["n"].dtype) == "Int64"
    things.save({"_id": "a", "name": "z", "n": 3})
    past = things.at(now)
    assert past.dtypes.equals(things.df.dtypes)
    assert int(past.loc["a", "n"]) == 1 and past.loc["b", "n"] is pd.NA
    empty = things.at(0)  # before the collection existed: no rows, the same index
    assert len(empty) == 0 and empty.index.name == "_id"


def test_at_a_time_when_the_schema_differed(stack: ExitStack) -> None:
    db = stack.enter_context(tk.Peer(memory=True)).new_db("types")
    notes = db.new_collection("Notes")
    notes.create({"_id": "a", "when": "2024-05-01T12:00:00.000000Z"})
    before = db.heads()
    db.update_collection(
        "Notes", schema={"properties": {"when": {"type": "string", "format": "date-time"}}}
    )
    assert str(notes.at(before)["when"].dtype) == "string"  # the schema then: text
    assert str(notes.df["when"].dtype) == "datetime64[ns, UTC]"


def test_find_dicts_carry_mod_as_int_nanoseconds_that_df_shows_as_time(stack: ExitStack) -> None:
    db = stack.enter_context(tk.Peer(memory=True)).new_db("types")
    notes = db.new_collection("Notes")
    notes.create({"_id": "a"})
    doc = notes.find_by_id("a")
    assert type(doc["_mod"]) is int
    assert pd.Timestamp(doc["_mod"], unit="ns", tz="UTC") == notes.df.loc["a", "_mod"]
    assert notes.at(db.heads()).loc["a", "_mod"] == notes.df.loc["a", "_mod"]


def test_history_is_readable_by_default_and_full_on_request(stack: ExitStack) -> None:
    db = stack.enter_context(tk.Peer(memory=True)).new_db("types")
    db.new_collection("Notes").create({"_id": "a"})
    shown = db.history()
    assert list(shown.columns) == list(READABLE_HISTORY_COLUMNS)
    assert shown["time"].dtype == "datetime64[ns, UTC]"
    assert shown["log"].tolist() == ["…" + db.log_id[-8:]] * 2
    assert all(len(r) == 9 and r.startswith("…") for r in shown["record"])
    full = db.history(full=True)
    assert list(full.columns) == list(HISTORY_COLUMNS)
    assert full["log"].tolist() == [db.log_id] * 2
    assert [r[-8:] for r in full["record"]] == [r[1:] for r in shown["record"]]
    assert str(shown["action"].dtype) == "string" and shown["rejected"].dtype == bool


def test_conflicts_are_readable_by_default_and_full_on_request(stack: ExitStack) -> None:
    a = stack.enter_context(tk.Peer(memory=True)).new_db("types")
    a.new_collection("Notes").create({"_id": "n", "text": "draft"})
    b = replica(stack.enter_context(tk.Peer(memory=True)), a)
    handoff(a, b)
    b["Notes"].save({"_id": "n", "text": "from B"})
    a["Notes"].save({"_id": "n", "text": "from A"})
    handoff(a, b), handoff(b, a)
    shown = a.conflicts()
    assert list(shown.columns) == list(READABLE_CONFLICT_COLUMNS)
    assert shown["loser_time"].dtype == "datetime64[ns, UTC]"
    [row] = shown.itertuples()
    assert (row.path, row.loser_value, row.winner_value) == ("text", "from B", "from A")
    assert row.loser_log == "…" + b.log_id[-8:] and row.winner_log == "…" + a.log_id[-8:]
    full = a.conflicts(full=True)
    assert list(full.columns) == list(CONFLICT_COLUMNS)
    assert full["loser_log"].tolist() == [b.log_id]
