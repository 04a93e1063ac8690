"""Migration transforms (threadkit.db.transforms), the event fields of migrations and purges
(threadkit.db.events) and config histories with migrations (threadkit.db.colls)."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest

from threadkit.core.clock import Timestamp
from threadkit.db.colls import CollHistory
from threadkit.db.config import CollectionConfig
from threadkit.db.events import Action, RecordEvent, decode_body, encode_body
from threadkit.db.transforms import convert, parse_migration, parse_transform
from threadkit.errors import InvalidMigration, MalformedRecord

STAMP = Timestamp(1_700_000_000_000_000_000, 0)


@pytest.mark.parametrize(
    ("value", "to", "want"),
    [
        ("12", "integer", 12),
        ("-3", "integer", -3),
        ("012", "integer", "012"),
        ("1.5", "integer", "1.5"),
        (2.0, "integer", 2),
        (2.5, "integer", 2.5),
        (True, "integer", 1),
        (str(2**64), "integer", str(2**64)),
        ("2.5", "number", 2.5),
        ("7", "number", 7),
        ("1e3", "number", 1000.0),
        ("x", "number", "x"),
        (7, "string", "7"),
        (0.1, "string", "0.1"),
        (False, "string", "false"),
        ("true", "boolean", True),
        (0, "boolean", False),
        (2, "boolean", 2),
        ("yes", "boolean", "yes"),
        (None, "string", None),
        ([1], "string", [1]),
        ({"a": 1}, "integer", {"a": 1}),
    ],
)
def test_convert(value: Any, to: str, want: Any) -> None:
    got = convert(value, to)
    assert got == want and type(got) is type(want)


def test_steps_on_nested_paths() -> None:
    t = parse_transform(
        [
            {"rename": "a.b", "to": "c.d"},
            {"default": "e.f", "value": {"g": 1}},
            {"drop": "h.i"},
            {"retype": "c.d", "to": "string"},
        ]
    )
    doc = {"_id": "x", "a": {"b": 5, "k": 1}, "h": {"i": 1, "j": 2}}
    assert t.apply_doc(doc) == {
        "_id": "x",
        "a": {"k": 1},
        "h": {"j": 2},
        "c": {"d": "5"},
        "e": {"f": {"g": 1}},
    }
    assert doc["a"] == {"b": 5, "k": 1}  # not changed in place


def test_patches_move_sets_and_removals_and_leave_no_empty_objects() -> None:
    t = parse_transform(
        [{"rename": "a.b", "to": "z"}, {"drop": "old"}, {"default": "d", "value": 1}]
    )
    assert t.apply_patch({"a": {"b": None}, "old": 3, "keep": {}}) == {"z": None, "keep": {}}
    assert t.apply_patch({"a": {"b": 2, "c": 1}}) == {"a": {"c": 1}, "z": 2}


def test_renames_for_indexes() -> None:
    t = parse_transform(
        [{"rename": "a", "to": "b"}, {"drop": "c"}, {"retype": "d", "to": "string"}]
    )
    assert t.renames() == {"a": "b", "c": None}


def test_node_round_trip() -> None:
    for spec in ([{"drop": "a"}], "return doc"):
        t = parse_transform(spec)
        assert parse_transform(t.to_node()) == t


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {"config": {}},
        {"config": 1, "transform": [{"drop": "a"}]},
        {"config": {"name": "X"}, "transform": [{"drop": "a"}]},
        {"config": CollectionConfig.build("X").to_node(), "transform": []},
        {"config": CollectionConfig.build("X").to_node(), "transform": [{"drop": "a"}], "x": 1},
    ],
)
def test_bad_migration_event_data(data: Any) -> None:
    with pytest.raises(InvalidMigration):
        parse_migration(data)


def _node(**fields: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"t": [STAMP.wall, STAMP.logical], "c": "X"}
    node.update(fields)
    return node


def test_received_migration_and_purge_events() -> None:
    data = {
        "config": CollectionConfig.build("X").to_node(),
        "transform": {"steps": [{"drop": "a"}]},
    }
    event = RecordEvent(STAMP, Action.MIGRATE_COLLECTION, "X", "", data)
    assert decode_body(encode_body([event])) == [event]
    seen = b"\x01" * 50
    save = RecordEvent(STAMP, Action.SAVE, "X", "i", {"a": 1}, None, seen)
    assert decode_body(encode_body([save]))[0].seen == seen
    purge = RecordEvent(STAMP, Action.PURGE, "X", "i")
    assert decode_body(encode_body([purge])) == [purge]
    assert "s" not in RecordEvent(STAMP, Action.SAVE, "X", "i", {}).to_node()


@pytest.mark.parametrize(
    "node",
    [
        _node(a=13, d={"config": CollectionConfig.build("X").to_node(), "transform": []}),
        _node(a=13),
        _node(a=3, i="i", d={"a": 1}),
        _node(a=3),
        _node(a=1, i="i", d={}, s="not bytes"),
    ],
)
def test_malformed_received_events(node: dict[str, Any]) -> None:
    body = cbor2.dumps({"v": 1, "events": [node]})
    with pytest.raises(MalformedRecord):
        decode_body(body)


def test_config_history_keeps_migrations() -> None:
    history = CollHistory("X")
    config = CollectionConfig.build("X")
    transform = parse_transform([{"drop": "a"}])
    history.insert(b"\x01", config)
    history.insert(b"\x03", config, transform)
    history.insert(b"\x02", config)
    assert history.latest_migration() == b"\x03"
    assert history.migrations() == [(b"\x03", b"\x01", transform)]
    decoded = CollHistory.decode("X", history.encode())
    assert decoded.transforms == {b"\x03": transform}
    assert decoded.keys == history.keys
    plain = CollHistory("X")
    plain.insert(b"\x01", config)
    assert cbor2.loads(plain.encode()) == [[b"\x01", config.to_node()]]  # as before
    history.insert(b"\x04", None)  # deleted: the new epoch has seen no migration
    history.insert(b"\x05", config)
    assert history.latest_migration() is None
