"""db.history() and db.conflicts(): every event in total order, and the writes that lost."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pandas as pd
import pytest

import threadkit as tk
from threadkit.core.cid import cid_of, cid_to_string
from threadkit.db.database import Database
from threadkit.db.handoff import handoff, replica
from threadkit.db.timeline import cid_text
from threadkit.errors import CollectionNotFound
from threadkit.frames.history import (
    CONFLICT_COLUMNS,
    HISTORY_COLUMNS,
    conflicts,
    history,
    value_at,
)


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def new_db(stack: ExitStack, name: str = "hist") -> Database:
    return stack.enter_context(tk.Peer(memory=True)).new_db(name)


def replicas(stack: ExitStack, origin: Database, n: int) -> list[Database]:
    dbs = [origin] + [
        replica(stack.enter_context(tk.Peer(memory=True)), origin) for _ in range(n - 1)
    ]
    sync(*dbs)
    return dbs


def sync(*dbs: Database) -> None:
    for target in dbs:
        for source in dbs:
            if source is not target:
                handoff(source, target)


def all_record_cids(db: Database) -> set[str]:
    return {
        cid_to_string(s.cid)
        for info in db._repo.list_logs(db.id)
        for s in db._repo.read_log(db.id, info.id)
    }


# ------------------------------------------------------------------------ history


def test_history_lists_every_event_in_order(stack: ExitStack) -> None:
    db = new_db(stack)
    notes = db.new_collection("Notes")
    notes.create({"_id": "a", "text": "one", "meta": {"tag": "x"}}, {"_id": "b", "text": "two"})
    notes.save({"_id": "a", "text": "uno", "meta": {"tag": "x"}})
    notes.delete("b")
    df = history(db)

    assert list(df.columns) == list(HISTORY_COLUMNS)
    assert list(df["action"]) == ["new_collection", "create", "create", "save", "delete"]
    assert list(df["instance"]) == ["", "a", "b", "a", "b"]
    assert set(df["collection"]) == {"Notes"}
    assert str(df["time"].dtype) == "datetime64[ns, UTC]"
    assert df["time"].is_monotonic_increasing
    walls = [int(h.split(".")[0]) for h in df["hlc"]]
    assert [t.value for t in df["time"]] == walls
    assert set(df["author"]) == {str(db.identity.public)}
    assert set(df["log"]) == {db.log_id}
    # the two creates share one record (one transaction); 4 records in all
    assert df["record"].iloc[1] == df["record"].iloc[2]
    assert set(df["record"]) == all_record_cids(db)
    assert df["patch"].iloc[0]["name"] == "Notes"
    assert df["patch"].iloc[1]["meta"] == {"tag": "x"}
    assert df["patch"].iloc[3]["text"] == "uno"
    assert set(df["patch"].iloc[3]) == {"text", "_mod"}  # a merge patch: only what changed
    assert df["patch"].iloc[4] is None
    assert not df["rejected"].any()
    assert df["reason"].isna().all()


def test_history_of_one_collection_and_collection_events(stack: ExitStack) -> None:
    db = new_db(stack)
    a = db.new_collection("A")
    b = db.new_collection("B")
    a.create({"_id": "x"})
    b.create({"_id": "y"})
    db.update_collection("A", indexes=["n"])
    db.delete_collection("B")
    everything = history(db)
    assert list(everything["action"]) == [
        "new_collection",
        "new_collection",
        "create",
        "create",
        "update_collection",
        "delete_collection",
    ]
    assert everything["record"].notna().all()
    assert set(everything["author"]) == {str(db.identity.public)}
    config_rows = everything[everything["instance"] == ""]
    assert list(config_rows["collection"]) == ["A", "B", "A", "B"]
    assert config_rows["patch"].iloc[2]["indexes"] == [{"path": "n", "unique": False}]

    only_a = history(db, "A")
    assert list(only_a["action"]) == ["new_collection", "create", "update_collection"]
    assert set(only_a["collection"]) == {"A"}
    # a deleted collection still has its history
    assert list(history(db, "B")["action"]) == ["new_collection", "create", "delete_collection"]
    with pytest.raises(CollectionNotFound):
        history(db, "Nope")


def test_history_of_an_empty_database(stack: ExitStack) -> None:
    df = history(new_db(stack))
    assert list(df.columns) == list(HISTORY_COLUMNS)
    assert len(df) == 0
    assert str(df["time"].dtype) == "datetime64[ns, UTC]"


def concurrent_world(stack: ExitStack) -> tuple[Database, Database]:
    """Two replicas with a concurrent save, a unique contest and a save racing a delete."""
    origin = new_db(stack, "shared")
    items = origin.new_collection("Items", indexes=[tk.Index("code", unique=True)])
    items.create({"_id": "i1", "n": 1, "meta": {"tag": "red"}})
    a, b = replicas(stack, origin, 2)
    a["Items"].save({"_id": "i1", "n": 2, "meta": {"tag": "blue"}})
    b["Items"].save({"_id": "i1", "n": 3, "meta": {"tag": "red"}})
    b["Items"].create({"_id": "i2", "code": "c1"})
    a["Items"].create({"_id": "i3", "code": "c1"})
    a["Items"].create({"_id": "i4", "n": 0})
    sync(a, b)
    a["Items"].delete("i4")
    b["Items"].save({"_id": "i4", "n": 9})
    sync(a, b)
    return a, b


def test_history_marks_rejected_events_and_is_identical_on_replicas(stack: ExitStack) -> None:
    a, b = concurrent_world(stack)
    df = history(a)
    pd.testing.assert_frame_equal(df, history(b))
    rejected = df[df["rejected"]]
    assert set(rejected["instance"]) == {"i3", "i4"}
    unique = rejected[rejected["instance"] == "i3"].iloc[0]
    assert unique["action"] == "create" and "unique" in unique["reason"]
    lost = rejected[rejected["instance"] == "i4"].iloc[0]
    assert lost["action"] == "save" and "deleted" in lost["reason"]
    assert lost["log"] == b.log_id
    # overwritten writes are not rejections
    saves = df[(df["instance"] == "i1") & (df["action"] == "save")]
    assert len(saves) == 2 and not saves["rejected"].any()
    assert set(df["log"]) == {a.log_id, b.log_id}
    assert set(df["record"]) == all_record_cids(a)


# ---------------------------------------------------------------------- conflicts


def test_conflicts_show_loser_beside_winner(stack: ExitStack) -> None:
    a, b = concurrent_world(stack)
    df = conflicts(a)
    assert list(df.columns) == list(CONFLICT_COLUMNS)
    pd.testing.assert_frame_equal(df, conflicts(b))
    assert len(df) == len(a.lost_writes())
    assert df["loser_time"].is_monotonic_increasing

    n = df[(df["instance"] == "i1") & (df["path"] == "n")].iloc[0]
    a_first = n["loser_log"] == a.log_id
    assert n["kind"] == "overwritten"
    assert (n["loser_value"], n["winner_value"]) == ((2, 3) if a_first else (3, 2))
    assert n["loser_time"] < n["winner_time"]
    assert {n["loser_log"], n["winner_log"]} == {a.log_id, b.log_id}
    assert {n["loser_author"], n["winner_author"]} == {
        str(a.identity.public),
        str(b.identity.public),
    }
    assert n["loser_record"] != n["winner_record"]
    assert pd.isna(n["reason"])

    tag = df[(df["instance"] == "i1") & (df["path"] == "meta.tag")]
    # only A changed meta.tag: no conflict on it
    assert tag.empty

    unique = df[df["instance"] == "i3"].iloc[0]
    assert unique["kind"] == "rejected" and "unique" in unique["reason"]
    assert pd.isna(unique["path"])
    assert unique["loser_value"]["code"] == "c1"
    assert unique["winner_value"] is None and pd.isna(unique["winner_hlc"])
    assert pd.isna(unique["winner_time"])

    raced = df[df["instance"] == "i4"].iloc[0]
    assert raced["kind"] == "rejected" and pd.isna(raced["path"])
    assert "deleted" in raced["reason"]
    assert raced["loser_value"]["n"] == 9  # the save that lost: its whole patch
    assert raced["winner_value"] is None  # the delete that won
    assert raced["winner_log"] == a.log_id


def test_conflicts_on_a_nested_field_and_filtered_by_collection(stack: ExitStack) -> None:
    origin = new_db(stack)
    origin.new_collection("Other").create({"_id": "o"})
    origin.new_collection("Items").create({"_id": "i", "meta": {"tag": "red", "n": 1}})
    a, b = replicas(stack, origin, 2)
    a["Items"].save({"_id": "i", "meta": {"tag": "blue", "n": 1}})
    b["Items"].save({"_id": "i", "meta": {"tag": "green", "n": 1}})
    a["Other"].save({"_id": "o", "x": 1})
    b["Other"].save({"_id": "o", "x": 2})
    sync(a, b)
    df = conflicts(a, "Items")
    assert list(df["path"]) == ["meta.tag"]
    row = df.iloc[0]
    assert {row["loser_value"], row["winner_value"]} == {"blue", "green"}
    final = a["Items"].find_by_id("i")["meta"]["tag"]
    assert row["winner_value"] == final
    assert set(conflicts(a)["collection"]) == {"Items", "Other"}
    assert len(conflicts(new_db(stack, "empty"))) == 0


# ------------------------------------------------------------------------- pieces


def test_value_at_and_cid_text() -> None:
    assert value_at({"a": {"b": 1}}, "a.b") == 1
    assert value_at({"a": {"b": 1}}, "a") == {"b": 1}
    assert value_at({"a": 5}, "a.b") == 5
    assert value_at({"a": None}, "a") is None
    assert value_at({}, "a") is None
    assert value_at({"x": 1}, "") == {"x": 1}
    for block in (b"", b"x", b"\x00" * 100):
        assert cid_text(cid_of(block)) == cid_to_string(cid_of(block))
