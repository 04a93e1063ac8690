"""coll.at(when) and coll.diff(a, b): a collection at a time, a record or a set of heads."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

import threadkit as tk
from threadkit.core.cid import cid_to_string
from threadkit.core.clock import HLC
from threadkit.db.database import Database
from threadkit.db.handoff import handoff, know_log, log_records, replica
from threadkit.errors import BlockNotFound, InvalidInput, LogNotFound
from threadkit.frames.history import history
from threadkit.frames.timetravel import (
    changed_fields,
    collection_at,
    diff,
    documents_at,
    documents_frame,
    heads,
)

LOCK_VALIDATOR = """
if (instance && instance.locked === true && event.patch.type !== "delete") {
  return false
}
return true
"""


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def new_db(stack: ExitStack, name: str = "tt") -> Database:
    return stack.enter_context(tk.Peer(memory=True)).new_db(name)


def sync(*dbs: Database) -> None:
    for target in dbs:
        for source in dbs:
            if source is not target:
                handoff(source, target)


def record_walls(db: Database) -> list[int]:
    """Wall time of the last event of each record of the db's own log."""
    df = history(db)
    return [int(df[df["record"] == cid_to_string(r.cid)]["hlc"].iloc[-1].split(".")[0])
            for r in log_records(db)]  # fmt: skip


# -------------------------------------------------------------------------- points


def test_now_equals_the_live_collection(stack: ExitStack) -> None:
    db = new_db(stack)
    people = db.new_collection("People", indexes=[tk.Index("name", unique=True)])
    ids = people.create({"name": "Ada", "age": 36}, {"name": "Bob", "age": 40})
    people.save({"_id": ids[0], "name": "Ada", "age": 37, "city": "Oslo"})
    people.create({"name": "Cy", "tags": ["x", "y"], "meta": {"k": 1}})
    people.delete(ids[1])
    live = people.find()
    assert documents_at(people, heads(db)) == live
    assert documents_at(people, datetime.now(UTC) + timedelta(days=1)) == live
    assert documents_at(people, log_records(db)[-1].cid) == live
    frame = collection_at(people, heads(db))
    assert frame.index.name == "_id"
    assert sorted(frame.index) == sorted(d["_id"] for d in live)
    assert frame.loc[ids[0], "city"] == "Oslo"
    pd.testing.assert_frame_equal(frame, documents_frame(live))


def test_at_a_record_holds_that_record_and_everything_before(stack: ExitStack) -> None:
    db = new_db(stack)
    notes = db.new_collection("Notes")  # record 1
    notes.create({"_id": "a", "n": 1}, {"_id": "b", "n": 1})  # record 2: one transaction
    notes.save({"_id": "a", "n": 2})  # record 3
    notes.create({"_id": "c", "n": 1})  # record 4
    records = log_records(db)
    assert documents_at(notes, records[0].cid) == []
    at_first_docs = documents_at(notes, records[1].cid)
    assert [(d["_id"], d["n"]) for d in at_first_docs] == [("a", 1), ("b", 1)]
    # a CID as a string works the same
    assert documents_at(notes, cid_to_string(records[1].cid)) == at_first_docs
    assert [(d["_id"], d["n"]) for d in documents_at(notes, records[2].cid)] == [
        ("a", 2),
        ("b", 1),
    ]
    assert documents_at(notes, records[3].cid) == notes.find()
    # the record's documents are exactly those of its creates
    assert collection_at(notes, records[1].cid)["n"].tolist() == [1, 1]


def test_at_a_time(stack: ExitStack) -> None:
    db = new_db(stack)
    notes = db.new_collection("Notes")
    notes.create({"_id": "a", "n": 1})
    notes.save({"_id": "a", "n": 2})
    notes.create({"_id": "b", "n": 1})
    walls = record_walls(db)
    assert walls == sorted(walls) and len(set(walls)) == len(walls)
    for k, wall in enumerate(walls, start=1):
        expected = documents_at(notes, {db.log_id: k})
        stamp = pd.Timestamp(wall, unit="ns", tz="UTC")
        before = pd.Timestamp(wall - 1, unit="ns", tz="UTC")
        assert documents_at(notes, before) == documents_at(notes, {db.log_id: k - 1})
        assert documents_at(notes, stamp) == expected
        assert documents_at(notes, stamp.tz_localize(None)) == expected  # naive pandas: UTC
        assert documents_at(notes, stamp.isoformat()) == expected
        assert documents_at(notes, stamp.to_datetime64()) == expected
    # a datetime keeps microseconds only: the first µs after the event includes it
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    moment = epoch + timedelta(microseconds=walls[2] // 1000 + 1)
    assert [d["n"] for d in documents_at(notes, moment)] == [2]
    local = moment.astimezone().replace(tzinfo=None)  # naive datetime: local time
    assert [d["n"] for d in documents_at(notes, local)] == [2]
    assert documents_at(notes, 0) == []
    assert documents_at(notes, -5.5) == []
    assert documents_at(notes, datetime(2000, 1, 1, tzinfo=UTC)) == []
    empty = collection_at(notes, 0)
    assert len(empty) == 0 and empty.index.name == "_id"


def test_at_heads(stack: ExitStack) -> None:
    db = new_db(stack)
    notes = db.new_collection("Notes")
    notes.create({"_id": "a"})
    taken = heads(db)
    notes.create({"_id": "b"})
    assert taken == {db.log_id: 2}
    assert [d["_id"] for d in documents_at(notes, taken)] == ["a"]
    head_cid = log_records(db)[1].cid
    assert documents_at(notes, {db.log_id: head_cid}) == documents_at(notes, taken)
    assert documents_at(notes, {db.log_id: cid_to_string(head_cid)}) == documents_at(notes, taken)
    assert documents_at(notes, {db.log_id: 0}) == []
    assert documents_at(notes, {}) == []  # no log named: no records


def test_bad_points_are_clear_errors(stack: ExitStack) -> None:
    db = new_db(stack)
    notes = db.new_collection("Notes")
    notes.create({"_id": "a"})
    other = new_db(stack, "other")
    other.new_collection("X")
    with pytest.raises(InvalidInput, match="nanoseconds"):
        documents_at(notes, notes.find_by_id("a")["_mod"])  # ns, not seconds: said so
    for bad in (float("nan"), float("inf"), 1e300):
        with pytest.raises(InvalidInput):
            documents_at(notes, bad)
    with pytest.raises(InvalidInput, match="seconds since the epoch"):
        documents_at(notes, object())
    with pytest.raises(InvalidInput):
        documents_at(notes, True)
    with pytest.raises(InvalidInput):
        documents_at(notes, "not a time or a cid")
    with pytest.raises(InvalidInput):
        documents_at(notes, b"\x01\x02")
    with pytest.raises(BlockNotFound):
        documents_at(notes, log_records(other)[0].cid)
    with pytest.raises(LogNotFound):
        documents_at(notes, {other.log_id: 1})
    with pytest.raises(InvalidInput, match="out of range"):
        documents_at(notes, {db.log_id: 3})
    with pytest.raises(BlockNotFound):
        documents_at(notes, {db.log_id: log_records(other)[0].cid})
    with pytest.raises(ValueError):  # InvalidInput is a ValueError
        documents_at(notes, {db.log_id: 1.0})


def test_deleted_and_recreated_collection(stack: ExitStack) -> None:
    db = new_db(stack)
    notes = db.new_collection("Notes")
    notes.create({"_id": "old"})
    before_delete = heads(db)
    db.delete_collection("Notes")
    deleted = heads(db)
    fresh = db.new_collection("Notes")
    fresh.create({"_id": "new"})
    assert [d["_id"] for d in documents_at(notes, before_delete)] == ["old"]
    assert documents_at(notes, deleted) == []
    assert [d["_id"] for d in documents_at(fresh, heads(db))] == ["new"]
    assert documents_at(fresh, heads(db)) == fresh.find()


def test_read_filter_applies_for_the_reader(stack: ExitStack) -> None:
    db = new_db(stack)
    secret = db.new_collection(
        "Secrets", read_filter="if (instance.secret) { return null }\nreturn instance"
    )
    secret.create({"_id": "a", "secret": False}, {"_id": "b", "secret": True})
    assert [d["_id"] for d in documents_at(secret, heads(db))] == ["a"]
    assert documents_at(secret, heads(db)) == secret.find()


# -------------------------------------------------------- partial replicas (property)


def fake_clocks(rng: random.Random, writers: list[Database]) -> None:
    """Deterministic clocks, each writer's skewed, so a seed always gives the same order."""
    ticks = itertools.count(time.time_ns() + 1_000_000_000, 10_000)
    for writer in writers:
        skew = rng.randrange(0, 50_000)
        writer.hlc = HLC(physical=lambda skew=skew: next(ticks) + skew)


def random_writes(rng: random.Random, writers: list[Database], steps: int) -> None:
    ids = ["a", "b", "c", "d", "e"]
    for _ in range(steps):
        writer = rng.choice(writers)
        coll = writer["Items"]
        instance = rng.choice(ids)
        roll = rng.random()
        try:
            if roll < 0.3:
                if not coll.has(instance):
                    coll.create({"_id": instance, "code": rng.choice("xyz"), "n": 0})
            elif roll < 0.8:
                doc: dict[str, Any] = {"_id": instance, "n": rng.randrange(100)}
                if rng.random() < 0.3:
                    doc["code"] = rng.choice("xyz")
                if rng.random() < 0.2:
                    doc["locked"] = rng.random() < 0.5
                coll.save(doc)
            elif roll < 0.9:
                coll.delete(instance)
            else:
                coll.save({"_id": instance, "meta": {"tag": rng.choice("rg")}})
        except tk.errors.WriteRejected:
            pass
        if rng.random() < 0.15:
            source, target = rng.sample(writers, 2)
            handoff(source, target)


@pytest.mark.parametrize("seed", [1, 3, 20, 39])  # 3, 20, 39 contest a unique value
def test_heads_of_a_partial_replica_equal_its_state(stack: ExitStack, seed: int) -> None:
    rng = random.Random(seed)
    origin = new_db(stack, "partial")
    origin.new_collection(
        "Items", indexes=[tk.Index("code", unique=True), "n"], write_validator=LOCK_VALIDATOR
    )
    writers = [origin] + [
        replica(stack.enter_context(tk.Peer(memory=True)), origin) for _ in range(2)
    ]
    fake_clocks(rng, writers)
    sync(*writers)
    random_writes(rng, writers, 60)
    sync(*writers)
    full = writers[0]
    assert full.lost_writes()
    logs = {w.log_id: log_records(w) for w in writers}
    assert documents_at(full["Items"], heads(full)) == full["Items"].find()
    for _ in range(4):
        cut = {log_id: rng.randrange(len(records) + 1) for log_id, records in logs.items()}
        observer_peer = stack.enter_context(tk.Peer(memory=True))
        observer = replica(observer_peer, origin)
        for writer in writers:
            know_log(observer, writer)
            prefix = logs[writer.log_id][: cut[writer.log_id]]
            if prefix:
                observer.apply_records(writer.log_id, prefix)
        expected = observer["Items"].find() if "Items" in observer else []
        assert documents_at(full["Items"], cut) == expected, cut
        # and from the observer's own point of view, its heads are its present
        if "Items" in observer:
            assert documents_at(observer["Items"], heads(observer)) == expected


def test_collection_at_a_record_of_another_log(stack: ExitStack) -> None:
    origin = new_db(stack)
    origin.new_collection("Items").create({"_id": "a", "n": 1})
    other = replica(stack.enter_context(tk.Peer(memory=True)), origin)
    sync(origin, other)
    other["Items"].save({"_id": "a", "n": 2})
    origin["Items"].create({"_id": "b", "n": 1})
    sync(origin, other)
    their_save = log_records(other)[-1]
    state = documents_at(origin["Items"], their_save.cid)
    # everything ordered up to B's save: A's create of b came later in the order
    assert [(d["_id"], d["n"]) for d in state] == [("a", 2)]


# --------------------------------------------------------------------------- diff


def test_diff_between_points(stack: ExitStack) -> None:
    db = new_db(stack)
    notes = db.new_collection("Notes")
    notes.create({"_id": "a", "n": 1, "meta": {"x": 1}}, {"_id": "b", "n": 1}, {"_id": "c"})
    start = heads(db)
    notes.save({"_id": "a", "n": 2, "meta": {"x": 1, "y": 2}})
    notes.delete("b")
    notes.create({"_id": "d", "n": 5})
    notes.save({"_id": "c"})  # no change but _mod
    df = diff(notes, start)
    assert df.index.name == "_id"
    assert list(df.index) == ["a", "b", "d"]
    assert list(df["change"]) == ["changed", "removed", "added"]
    assert df.loc["a", "fields"] == ["meta.y", "n"]
    assert df.loc["b", "fields"] == ["n"]
    assert df.loc["b", "after"] is None and df.loc["b", "before"]["n"] == 1
    assert df.loc["d", "after"]["n"] == 5 and df.loc["d", "before"] is None
    assert diff(notes, start, heads(db)).equals(df)
    assert list(diff(notes, start, ignore=())["change"]) == [
        "changed",
        "removed",
        "changed",
        "added",
    ]
    assert len(diff(notes, heads(db))) == 0
    back = diff(notes, heads(db), start)
    assert list(back["change"]) == ["changed", "added", "removed"]


def test_changed_fields() -> None:
    assert changed_fields(None, {"_id": "a", "x": 1}) == ["x"]
    assert changed_fields({"a": {"b": 1}}, {"a": {"b": 1}}) == []
    assert changed_fields({"a": 1}, {"a": 1.0}) == ["a"]  # JSON types differ
    assert changed_fields({"a": [1]}, {"a": [1, 2]}) == ["a"]
    assert changed_fields({"a": {"b": 1}}, {"a": 5}) == ["a", "a.b"]
    assert changed_fields({"_mod": 1}, {"_mod": 2}, ("_mod",)) == []


def test_at_seconds_as_time_time_gives_them(stack: ExitStack) -> None:
    """``coll.at(int(time.time()))`` and ``coll.at(time.time())`` are seconds, not ns."""
    import time

    import numpy as np

    db = new_db(stack)
    notes = db.new_collection("Notes")
    notes.create({"_id": "a", "n": 1})
    notes.save({"_id": "a", "n": 2})
    walls = record_walls(db)
    live = notes.find()
    now = time.time()
    assert documents_at(notes, now) == live
    assert documents_at(notes, int(now) + 1) == live
    assert documents_at(notes, np.int64(int(now) + 1)) == live
    assert documents_at(notes, np.float64(now)) == live
    assert len(notes.at(int(now) + 1)) == 1
    assert documents_at(notes, walls[0] // 10**9) == []  # the start of the first one's second
    for k, wall in enumerate(walls, start=1):
        gap_after = walls[k] - wall if k < len(walls) else 10**9
        if gap_after > 4_000:  # a float of seconds is exact to a few hundred ns here
            expected = documents_at(notes, {db.log_id: k})
            assert documents_at(notes, (wall + 2_000) / 1e9) == expected
