"""The bulk path of creates (``Database._commit_creates``, ``Engine.apply_creates``).

New documents under generated ids skip the per-event machinery: their record body is
written by one encoder and their entries are put table by table. Nothing may differ
from the one-event path: the same record body, the same bytes in every table, the same
changes for listeners, the same errors — and a replica applying the records as received
events ends up byte-identical.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from replicas import deliver, log_records, replica

from threadkit.core.clock import Timestamp
from threadkit.db.config import CollectionConfig, Index
from threadkit.db.database import Database
from threadkit.db.engine import Change, Engine, open_db_tables
from threadkit.db.events import Action, RecordEvent, array_header, encode_body, encode_creates
from threadkit.errors import (
    InstanceExists,
    InvalidInput,
    SchemaViolation,
    ThreadkitError,
    UniqueViolation,
)
from threadkit.peer import Peer
from threadkit.store.repo import Repo

COLL = "Items"
PREFIX = b"\x00\x00\x00\x07"
LOG = b"\x00\x24" + bytes(range(36))
AUTHOR = "bafzbeiauthorkeystring"
RECORD = bytes(range(36))
COLL_STAMP = Timestamp(1_000, 0)

# ------------------------------------------------------------------------ strategies

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),  # the value model: signed 64-bit, finite floats
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
FIELDS = st.dictionaries(st.sampled_from(["n", "name", "meta", "x", "é"]), VALUES, max_size=4)
# an instance id may be any string; generated ones are ULIDs
IDS = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=8)
INDEX_PATHS = st.lists(st.sampled_from(["n", "name", "meta.tag", "meta"]), unique=True)
CREATES = st.lists(st.tuples(IDS, FIELDS), min_size=1, max_size=12, unique_by=lambda c: c[0])


def _creates(
    items: list[tuple[str, dict[str, Any]]], first_wall: int = 2_000
) -> list[tuple[Timestamp, str, dict[str, Any]]]:
    out = []
    for n, (instance_id, fields) in enumerate(items):
        stamp = Timestamp(first_wall + n // 2, n % 2)
        out.append((stamp, instance_id, {"_id": instance_id, **fields, "_mod": stamp.wall}))
    return out


def _events(creates: list[tuple[Timestamp, str, dict[str, Any]]]) -> list[RecordEvent]:
    return [RecordEvent(stamp, Action.CREATE, COLL, i, doc) for stamp, i, doc in creates]


# ------------------------------------------------------------------------ encoding


@settings(max_examples=300, deadline=None)
@given(CREATES, st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1))
def test_encode_creates_is_encode_body(
    items: list[tuple[str, dict[str, Any]]], wall: int, logical: int
) -> None:
    creates = [(Timestamp(wall, logical), i, {"_id": i, **f}) for i, f in items]
    body, docs = encode_creates(COLL, creates)
    assert body == encode_body(_events(creates))
    assert docs == [cbor2.dumps(doc) for _, _, doc in creates]


def test_encode_creates_needs_an_event() -> None:
    with pytest.raises(ThreadkitError):
        encode_creates(COLL, [])


@given(st.integers(0, 3_000))
def test_array_header(count: int) -> None:
    assert array_header(count) + cbor2.dumps(0) * count == cbor2.dumps([0] * count)


def test_array_header_of_long_arrays() -> None:
    for count in (0, 23, 24, 255, 256, 65_535, 65_536):
        assert array_header(count) + cbor2.dumps(0) * count == cbor2.dumps([0] * count)
    assert array_header(2**32) == b"\x9b" + (2**32).to_bytes(8, "big")
    assert array_header(2**32 - 1) == b"\x9a" + (2**32 - 1).to_bytes(4, "big")


# ------------------------------------------------------- engine: batch = one by one


class _Side:
    """A throwaway engine (one repo) holding one collection."""

    def __init__(self, stack: ExitStack, config: CollectionConfig) -> None:
        self.repo = stack.enter_context(Repo.temporary(durable=False, map_size=64 * 1024**2))
        self.engine = Engine(open_db_tables(self.repo), PREFIX)
        self.apply_config(COLL_STAMP, config)

    def apply_config(self, stamp: Timestamp, config: CollectionConfig) -> None:
        event = RecordEvent(stamp, Action.NEW_COLLECTION, COLL, "", config.to_node())
        with self.engine.write(self.repo) as txn:
            self.engine.apply_local(txn, [event], LOG, AUTHOR, RECORD)

    def dump(self) -> dict[str, list[tuple[bytes, bytes]]]:
        tables = self.engine.tables
        out = {}
        with self.repo.transaction() as txn:
            for name in tables.__dataclass_fields__:
                out[name] = [(bytes(k), bytes(v)) for k, v in txn.cursor(getattr(tables, name))]
        return out


def _outcome(side: _Side, run: Any) -> tuple[Any, Any]:
    try:
        with side.repo.transaction(write=True) as txn:
            return run(txn), side.dump
    except ThreadkitError as exc:
        return (type(exc), str(exc)), side.dump


def _both(
    config: CollectionConfig,
    creates: list[tuple[Timestamp, str, dict[str, Any]]],
    later_config: tuple[Timestamp, CollectionConfig] | None = None,
) -> None:
    """Apply creates through the batch and one event at a time; everything must agree."""
    with ExitStack() as stack:
        batch, single = _Side(stack, config), _Side(stack, config)
        if later_config is not None:
            batch.apply_config(*later_config)
            single.apply_config(*later_config)
        _, encoded = encode_creates(COLL, creates)
        ids = frozenset(i for _, i, _ in creates)
        got, got_dump = _outcome(
            batch,
            lambda txn: batch.engine.apply_creates(
                txn, COLL, creates, encoded, LOG, AUTHOR, RECORD
            ),
        )
        want, want_dump = _outcome(
            single,
            lambda txn: single.engine.apply_local(
                txn, _events(creates), LOG, AUTHOR, RECORD, fresh=ids
            ),
        )
        assert got == want
        assert got_dump() == want_dump()


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(CREATES, INDEX_PATHS)
def test_batch_stores_what_one_event_at_a_time_stores(
    items: list[tuple[str, dict[str, Any]]], paths: list[str]
) -> None:
    config = CollectionConfig.build(COLL, indexes=paths)
    _both(config, _creates(items))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CREATES, INDEX_PATHS, st.booleans())
def test_creates_the_batch_does_not_take_still_agree(
    items: list[tuple[str, dict[str, Any]]], paths: list[str], unique: bool
) -> None:
    """A unique index or a write validator to judge: the batch hands over to apply()."""
    indexes = [Index(p, unique=unique) for p in paths] or [Index("n", unique=True)]
    validator = None if unique else "return !(instance === null && event.patch.json_patch.x)"
    _both(CollectionConfig.build(COLL, indexes=indexes, write_validator=validator), _creates(items))


def test_a_config_event_at_or_after_the_first_stamp_hands_over() -> None:
    config = CollectionConfig.build(COLL, indexes=["n"])
    later = CollectionConfig.build(COLL, indexes=["name"])
    creates = _creates([("a", {"n": 1, "name": "x"}), ("b", {"n": 2})])
    _both(config, creates, later_config=(Timestamp(2_000, 1), later))
    _both(config, creates, later_config=(Timestamp(1_500, 0), later))


def test_unindexable_values_fail_alike() -> None:
    config = CollectionConfig.build(COLL, indexes=["n", "name"])
    creates = _creates([("a", {"n": 1}), ("b", {"name": {1, 2}}), ("c", {"n": float("nan")})])
    _both(config, creates)
    _both(config, _creates([("a", {"n": float("nan"), "name": {1}})]))


def test_changes_are_creates_in_order() -> None:
    config = CollectionConfig.build(COLL, indexes=["n"])
    creates = _creates([("b", {"n": 1}), ("a", {})])
    with ExitStack() as stack:
        side = _Side(stack, config)
        _, encoded = encode_creates(COLL, creates)
        with side.repo.transaction(write=True) as txn:
            changes = side.engine.apply_creates(txn, COLL, creates, encoded, LOG, AUTHOR, RECORD)
    assert changes == [Change(COLL, i, Action.CREATE, doc) for _, i, doc in creates]


# ---------------------------------------------------------------- the database


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def _db(stack: ExitStack, **collection: Any) -> Database:
    db = stack.enter_context(Peer(memory=True)).new_db("bulk")
    db.new_collection(COLL, **collection)
    return db


def _dump_db(db: Database) -> dict[str, list[tuple[bytes, bytes]]]:
    out = {}
    with db._repo.transaction() as txn:
        for name in ("docs", "inst", "events", "index", "order", "lost", "losers", "colls"):
            entries = txn.cursor(getattr(db._tables, name))
            out[name] = [(bytes(k), bytes(v)) for k, v in entries if bytes(k).startswith(db.prefix)]
    return out


class _Spy:
    """Counts the engine's bulk calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = Engine.apply_creates

        def spy(engine: Engine, *args: Any, **kwargs: Any) -> list[Change]:
            self.calls += 1
            return original(engine, *args, **kwargs)

        monkeypatch.setattr(Engine, "apply_creates", spy)


DOCS = st.lists(FIELDS.filter(lambda f: "_id" not in f), min_size=1, max_size=15)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(DOCS, min_size=1, max_size=3))
def test_a_replica_applying_the_records_is_byte_identical(
    monkeypatch: pytest.MonkeyPatch, batches: list[list[dict[str, Any]]]
) -> None:
    spy = _Spy(monkeypatch)
    with ExitStack() as stack:
        db = _db(stack, indexes=["n", "name", "meta.tag"])
        feed = db.listen(collection=COLL)
        created = []
        for docs in batches:
            created += db[COLL].create(docs)
        db[COLL].save({"_id": "given", "n": 1})  # and a write of the other path
        other = replica(stack.enter_context(Peer(memory=True)), db)
        assert other.prefix == db.prefix
        deliver(other, db, log_records(db))
        assert _dump_db(other) == _dump_db(db)
        events = [feed.get(timeout=5) for _ in range(len(created) + 1)]
        feed.close()
        assert [e.document for e in events] == [db[COLL].find_by_id(e.instance_id) for e in events]
    assert spy.calls == len(batches)
    assert [(e.instance_id, e.action) for e in events] == [
        *((i, Action.CREATE) for i in created),
        ("given", Action.CREATE),
    ]


@pytest.mark.parametrize(
    ("collection", "docs", "bulk"),
    [
        ({}, [{"a": 1}, {"_id": ""}, {"_id": None}], True),
        ({"indexes": ["a"]}, [{"a": 1}], True),
        ({}, [{"a": 1}, {"_id": "mine"}], True),
        ({"indexes": [Index("a", unique=True)]}, [{"a": 1}], True),
        ({"indexes": [Index("a", unique=True)]}, [{"_id": "x", "a": 1}, {"a": None}], True),
        ({"write_validator": "return true"}, [{"a": 1}], False),
    ],
)
def test_which_transactions_take_the_bulk_path(
    stack: ExitStack,
    monkeypatch: pytest.MonkeyPatch,
    collection: dict[str, Any],
    docs: list[dict[str, Any]],
    bulk: bool,
) -> None:
    spy = _Spy(monkeypatch)
    db = _db(stack, **collection)
    ids = db[COLL].create(docs)
    assert spy.calls == int(bulk)
    assert [d["_id"] for d in db[COLL].find()] == sorted(ids)


def test_a_create_and_a_save_of_it_in_one_transaction(
    stack: ExitStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _Spy(monkeypatch)
    db = _db(stack)
    with db[COLL].write_txn() as txn:
        (new,) = txn.create({"a": 1})
        txn.save({"_id": new, "a": 2})
    assert spy.calls == 0
    assert db[COLL].find_by_id(new)["a"] == 2


@pytest.mark.parametrize("validator", [None, "return true"])
def test_a_schema_changed_before_commit_is_checked_at_commit(
    stack: ExitStack, validator: str | None
) -> None:
    """Creates are checked when queued; a schema that changed since is applied at commit."""
    db = _db(stack, write_validator=validator)
    strict = {"type": "object", "properties": {"a": {"type": "string"}}}
    with pytest.raises(SchemaViolation), db[COLL].write_txn() as txn:
        txn.create({"a": 1})
        db.update_collection(COLL, schema=strict, write_validator=validator)
    assert db[COLL].count() == 0
    assert db[COLL].create({"a": "ok"})


def test_an_unindexable_value_writes_nothing(stack: ExitStack) -> None:
    db = _db(stack, indexes=["a"])
    head = db._repo.get_head(db.id, db.log_id)
    with pytest.raises(InvalidInput):
        db[COLL].create({"a": 1}, {"a": float("nan")})
    assert db[COLL].count() == 0
    assert db._repo.get_head(db.id, db.log_id) == head


def test_order_keys_of_a_batch_follow_the_stamps(stack: ExitStack) -> None:
    db = _db(stack)
    ids = db[COLL].create([{"n": n} for n in range(50)])
    with db._repo.transaction() as txn:
        keys = [db.engine.last_key(txn, COLL, i) for i in ids]
    assert keys == sorted(keys)
    assert all(k is not None and k[12:] == db._log_bytes for k in keys)


# ------------------------------------------- supplied ids and unique values, in batch


def _nothing_written(db: Database, head: Any, count: int) -> None:
    assert db[COLL].count() == count
    assert db._repo.get_head(db.id, db.log_id) == head


@pytest.mark.parametrize(
    ("collection", "before", "docs", "error"),
    [
        # an id twice in one batch
        ({}, [], [{"_id": "a"}, {"n": 1}, {"_id": "a"}], InstanceExists),
        # an id a stored document has
        ({}, [{"_id": "a"}], [{"_id": "b"}, {"_id": "a"}], InstanceExists),
        # a unique value twice in one batch (supplied and generated ids)
        ({"indexes": [Index("u", unique=True)]}, [], [{"u": 1}, {"u": 2}, {"u": 1}], None),
        (
            {"indexes": [Index("u", unique=True)]},
            [],
            [{"_id": "x", "u": "v"}, {"_id": "y", "u": "v"}],
            None,
        ),
        # a unique value a stored document holds
        ({"indexes": [Index("u", unique=True)]}, [{"u": "v"}], [{"u": "w"}, {"u": "v"}], None),
    ],
)
def test_bad_batches_raise_and_write_nothing(
    stack: ExitStack,
    collection: dict[str, Any],
    before: list[dict[str, Any]],
    docs: list[dict[str, Any]],
    error: type[ThreadkitError] | None,
) -> None:
    db = _db(stack, **collection)
    if before:
        db[COLL].create(before)
    head = db._repo.get_head(db.id, db.log_id)
    with pytest.raises(error or UniqueViolation, match=r"already exists|unique|holds"):
        db[COLL].create(docs)
    _nothing_written(db, head, len(before))


def test_an_id_taken_between_create_and_commit(stack: ExitStack) -> None:
    """Checked when queued and again, in the write transaction, at commit."""
    db = _db(stack)
    with pytest.raises(InstanceExists, match="'b' already exists"), db[COLL].write_txn() as txn:
        txn.create({"_id": "a"}, {"_id": "b"})
        db[COLL].create({"_id": "b", "n": 1})
        head = db._repo.get_head(db.id, db.log_id)
    _nothing_written(db, head, 1)
    assert db[COLL].find_by_id("b")["n"] == 1


def test_a_unique_value_taken_between_create_and_commit(stack: ExitStack) -> None:
    db = _db(stack, indexes=[Index("u", unique=True)])
    with pytest.raises(UniqueViolation), db[COLL].write_txn() as txn:
        txn.create({"u": 1}, {"u": 2})
        db[COLL].create({"_id": "first", "u": 2})
        head = db._repo.get_head(db.id, db.log_id)
    _nothing_written(db, head, 1)


def test_an_id_seen_before_goes_the_one_event_way(
    stack: ExitStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deleted instance has a history: its re-creation is stamped after it, one by one."""
    db = _db(stack, indexes=[Index("u", unique=True)])
    db[COLL].create({"_id": "a", "u": 1})
    db[COLL].delete("a")
    spy = _Spy(monkeypatch)
    db[COLL].create({"_id": "a", "u": 1}, {"_id": "b", "u": 2})
    assert spy.calls == 0
    db[COLL].create({"_id": "c", "u": 3}, {"u": None}, {"u": None}, {"_id": "d"})
    assert spy.calls == 1  # nulls and missing values take nothing of a unique index
    assert [db[COLL].find_by_id(i)["u"] for i in "abc"] == [1, 2, 3]
    with pytest.raises(UniqueViolation):
        db[COLL].create({"u": 3})


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.tuples(st.sampled_from(["", "a", "b", "c", "d"]), st.sampled_from([None, 1, 2, "1"])),
        min_size=1,
        max_size=6,
    ),
    st.lists(st.sampled_from(["a", "b", "c"]), max_size=2, unique=True),
)
def test_supplied_ids_and_unique_values_agree_with_the_one_event_path(
    monkeypatch: pytest.MonkeyPatch, batch: list[tuple[str, Any]], stored: list[str]
) -> None:
    """The same outcome (ids or error, stored bytes) with and without the bulk path."""
    docs = [{"_id": i, "u": u} for i, u in batch]
    outcomes = []
    for bulk in (True, False):
        with ExitStack() as stack, monkeypatch.context() as patch:
            if not bulk:
                patch.setattr(Database, "_creates_only", lambda self, ops: False)
            db = _db(stack, indexes=[Index("u", unique=True)])
            db[COLL].create([{"_id": s, "u": n} for n, s in enumerate(stored)] or [{"_id": "z"}])
            try:
                got: Any = db[COLL].create(docs)
                got = [i if any(i == d["_id"] for d in docs) else "generated" for i in got]
            except ThreadkitError as exc:
                got = (type(exc), re.sub("'[0-9a-z]{26}'", "'generated'", str(exc)))
            found = [{k: v for k, v in d.items() if k != "_mod"} for d in db[COLL].find()]
            outcomes.append((got, [d for d in found if d["_id"] in {i for i, _ in batch}]))
    assert outcomes[0] == outcomes[1]
