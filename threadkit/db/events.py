"""The event codec: one record body per committed transaction, holding its events.

A body node is ``{"v": 1, "events": [event, ...], "w"?: proof, "m"?: membership}``:
``w`` is the writer proof (:mod:`threadkit.core.writerproof`, docs/access.md), ``m`` a
membership event (``events`` is then empty; see :mod:`.members`). Each event is a map

======  ==========================================================================
``t``   the event's hybrid-logical-clock stamp ``[wall ns, logical]``
``a``   the action: 0 create, 1 save, 2 delete (ThreadDB's codes); 3 purge a deleted
        instance (:mod:`.purge`); 10/11/12 create, update and delete a collection;
        13 migrate a collection (:mod:`.migrations`)
``c``   the collection name
``i``   the instance ``_id`` (absent for collection events)
``d``   create: the whole document; save: a merge patch; delete, purge: absent;
        collection create/update: the collection's config; migrate:
        ``{"config": config, "transform": transform}``
``b``   the order key of the latest event of this instance the writer had applied
        (absent if none): what the writer had seen, for conflict detection
``s``   the order key of the latest migration of the collection the writer had applied
        (absent when the collection had none): the schema the event was written against
======  ==========================================================================

Events of one transaction carry increasing stamps, so their order inside a
record is their order in the total order. The author of every event is the
record's ``pubKey``; the log id comes from the log the record belongs to.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import io
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cbor2

from threadkit.core.clock import Timestamp, order_key
from threadkit.db.config import CollectionConfig
from threadkit.db.names import check_name
from threadkit.db.transforms import parse_migration
from threadkit.db.values import check_id, value_problem
from threadkit.errors import InvalidInput, InvalidTimestamp, MalformedRecord

__all__ = [
    "BODY_VERSION",
    "Action",
    "Body",
    "Folded",
    "RecordEvent",
    "array_header",
    "decode_body",
    "decode_record_body",
    "encode_body",
    "encode_creates",
    "events_digest",
]

BODY_VERSION = 1


class Action(enum.StrEnum):
    """What an event does; compares equal to its name (``Action.CREATE == "create"``).

    In record bodies actions travel as ThreadDB's integer codes (:attr:`code`).
    """

    CREATE = "create"
    SAVE = "save"
    DELETE = "delete"
    PURGE = "purge"
    NEW_COLLECTION = "new_collection"
    UPDATE_COLLECTION = "update_collection"
    DELETE_COLLECTION = "delete_collection"
    MIGRATE_COLLECTION = "migrate_collection"

    @property
    def code(self) -> int:
        """The integer written in record bodies (ThreadDB's 0/1/2, 3 purge; 10-13 for
        collections)."""
        return _CODES[self]

    @classmethod
    def from_code(cls, code: object) -> Action:
        """The action of an integer code; ValueError for an unknown one."""
        action = _BY_CODE.get(code) if isinstance(code, int) else None
        if action is None:
            raise MalformedRecord(f"unknown action code {code!r}")
        return action

    @property
    def is_collection(self) -> bool:
        """True for collection create/update/delete."""
        return _CODES[self] >= 10

    def __str__(self) -> str:
        return self.value


_CODES = {
    Action.CREATE: 0,
    Action.SAVE: 1,
    Action.DELETE: 2,
    Action.PURGE: 3,
    Action.NEW_COLLECTION: 10,
    Action.UPDATE_COLLECTION: 11,
    Action.DELETE_COLLECTION: 12,
    Action.MIGRATE_COLLECTION: 13,
}
_BY_CODE = {code: action for action, code in _CODES.items()}


@dataclass(frozen=True, slots=True)
class Folded:
    """What compaction folded into an instance's one create (local: never in a record).

    Attributes
    ----------
    through : bytes
        The order key up to which the create's document is the instance's state: every
        migration up to it has already rewritten it (:mod:`.compaction`).
    claims : dict[str, bytes]
        For each unique-indexed path holding a value there, the key since which it has
        held it (its claim, as the fold's ``value_since`` had it).
    """

    through: bytes
    claims: dict[str, bytes]

    def to_node(self) -> list[Any]:
        """``[through, {path: claim}]``, as the event index stores it."""
        return [self.through, self.claims]

    @classmethod
    def from_node(cls, node: Any) -> Folded:
        """Inverse of :meth:`to_node`."""
        return cls(bytes(node[0]), {str(k): bytes(v) for k, v in node[1].items()})


@dataclass(frozen=True, slots=True)
class RecordEvent:
    """One event as written in a record body.

    Attributes
    ----------
    stamp : Timestamp
        Its place in time.
    action : Action
        What it does.
    collection : str
        The collection it touches.
    instance_id : str
        The instance it touches ("" for collection events).
    data : dict | None
        Document, merge patch or collection config.
    base : bytes | None
        Order key of the latest event of the instance its writer had seen.
    seen : bytes | None
        Order key of the latest migration of the collection its writer had applied.
    purged : bytes | None
        Not carried in records: set on an event read back from a store where a purge (at
        this key) erased its data (:mod:`.purge`).
    folded : Folded | None
        Not carried in records: set on the create that compaction left of an instance's
        events up to a snapshot's frontier (:mod:`.compaction`).
    """

    stamp: Timestamp
    action: Action
    collection: str
    instance_id: str = ""
    data: dict[str, Any] | None = None
    base: bytes | None = None
    seen: bytes | None = None
    purged: bytes | None = None
    folded: Folded | None = None

    def key(self, log_id: bytes) -> bytes:
        """The event's order key: stamp bytes ‖ log id bytes."""
        return order_key(self.stamp, log_id)

    def to_node(self) -> dict[str, Any]:
        """The event as a CBOR-ready map."""
        node: dict[str, Any] = {
            "t": [self.stamp.wall, self.stamp.logical],
            "a": self.action.code,
            "c": self.collection,
        }
        if self.instance_id:
            node["i"] = self.instance_id
        if self.data is not None:
            node["d"] = self.data
        if self.base is not None:
            node["b"] = self.base
        if self.seen is not None:
            node["s"] = self.seen
        return node

    @classmethod
    def from_node(cls, node: object) -> RecordEvent:
        """Parse one event map; a wrong shape is MalformedRecord."""
        if not isinstance(node, dict):
            raise MalformedRecord("event must be a map")
        try:
            wall, logical = node["t"]
            stamp = Timestamp.checked(wall, logical)
            action = Action.from_code(node["a"])
            collection = node["c"]
        except (KeyError, TypeError, ValueError, InvalidTimestamp) as exc:
            raise MalformedRecord(f"event is missing or has a bad t/a/c field: {exc}") from None
        instance_id = node.get("i", "")
        data = node.get("d")
        base = node.get("b")
        seen = node.get("s")
        if not isinstance(collection, str) or not collection:
            raise MalformedRecord("event collection must be a non-empty string")
        if not isinstance(instance_id, str):
            raise MalformedRecord("event instance id must be a string")
        if not action.is_collection and not instance_id:
            raise MalformedRecord("instance event without an instance id")
        if data is not None and not isinstance(data, dict):
            raise MalformedRecord("event data must be a map")
        if action in _WITH_DATA and data is None:
            raise MalformedRecord(f"{action.name.lower()} event without data")
        if action is Action.PURGE and data is not None:
            raise MalformedRecord("a purge event carries no data")
        if base is not None and not isinstance(base, bytes):
            raise MalformedRecord("event base must be bytes")
        if seen is not None and not isinstance(seen, bytes):
            raise MalformedRecord("event 's' (the migration seen) must be bytes")
        _check_fields(action, collection, instance_id, data)
        return cls(stamp, action, collection, instance_id, data, base, seen)


_WITH_DATA = (Action.CREATE, Action.SAVE, Action.NEW_COLLECTION, Action.MIGRATE_COLLECTION)


def _check_fields(
    action: Action, collection: str, instance_id: str, data: dict[str, Any] | None
) -> None:
    """Hold a received event to what a local write must obey (names, ids, the value model).

    Whatever a peer signs is checked as if it were written here, so nothing outside the
    model reaches the store, and readers never meet it.
    """
    try:
        check_name(collection, "collection")
        if action is Action.MIGRATE_COLLECTION:
            parse_migration(data)
            return
        if action.is_collection:
            if data is not None:
                CollectionConfig.from_node(data)
            return
        check_id(instance_id)
    except InvalidInput as exc:
        raise MalformedRecord(f"event refused: {exc}") from None
    if data is not None:
        problem = value_problem(data)
        if problem is not None:
            raise MalformedRecord(f"event data for {instance_id!r} holds {problem}")


def encode_body(
    events: list[RecordEvent],
    proof: dict[str, Any] | None = None,
    member: dict[str, Any] | None = None,
    snapshot: dict[str, Any] | None = None,
) -> bytes:
    """The record body node of a transaction's events, with its writer proof node.

    A body without ``proof`` is the one written before writer proofs (byte for byte).
    A membership event (``member``) or a snapshot (``snapshot``, :mod:`.snapshots`) goes
    alone, with no events.
    """
    if not events and member is None and snapshot is None:
        raise MalformedRecord("a record body needs at least one event")
    node: dict[str, Any] = {"v": BODY_VERSION, "events": [e.to_node() for e in events]}
    if proof is not None:
        node["w"] = proof
    if member is not None:
        node["m"] = member
    if snapshot is not None:
        node["s"] = snapshot
    return cbor2.dumps(node)


def events_digest(events: Sequence[RecordEvent]) -> bytes:
    """SHA-256 of the CBOR of a body's ``events`` list (re-encoded from the parsed events).

    What an attested writer proof names as its content: every peer computes it alike
    from the events it parsed.
    """
    return hashlib.sha256(cbor2.dumps([e.to_node() for e in events])).digest()


def encode_creates(
    collection: str,
    creates: Sequence[tuple[Timestamp, str, dict[str, Any]]],
    proof: dict[str, Any] | None = None,
) -> tuple[bytes, list[bytes]]:
    """The body of a record of creates, and each created document's CBOR.

    ``creates`` holds ``(stamp, instance id, document)`` for each create event (none has
    a base: the instances are new). The body is byte for byte :func:`encode_body` of
    those events; it is written by one encoder, and the document bytes are cut out of
    it, so each document is encoded once for the body, the event index and the store.
    """
    if not creates:
        raise MalformedRecord("a record body needs at least one event")
    out = io.BytesIO()
    encode, write, tell = cbor2.CBOREncoder(out).encode, out.write, out.tell
    write((_BODY_HEAD if proof is None else _BODY_HEAD_W) + array_header(len(creates)))
    # each event map: t, a, c, i, d (to_node's order); a, c and the keys are the same for all
    middle = _create_middle(collection)
    starts, ends = [], []
    for stamp, instance_id, doc in creates:
        write(_CREATE_HEAD)
        encode([stamp.wall, stamp.logical])
        write(middle)
        encode(instance_id)
        write(_KEY_D)
        starts.append(tell())
        encode(doc)
        ends.append(tell())
    if proof is not None:
        write(_KEY_W)
        encode(proof)
    body = out.getvalue()
    return body, [body[a:b] for a, b in zip(starts, ends, strict=True)]


@functools.lru_cache(maxsize=256)
def _create_middle(collection: str) -> bytes:
    """The part of a create's event map between its stamp and its instance id."""
    return b"".join(
        [_KEY_A, cbor2.dumps(Action.CREATE.code), _KEY_C, cbor2.dumps(collection), _KEY_I]
    )


def array_header(count: int) -> bytes:
    """The CBOR head of an array of ``count`` items (the items' bytes follow it).

    >>> array_header(3) + cbor2.dumps(1) * 3 == cbor2.dumps([1, 1, 1])
    True
    """
    head = cbor2.dumps(count)  # an unsigned int: major type 0, the same length rules
    return bytes([head[0] | _MAJOR_ARRAY]) + head[1:]


_MAJOR_ARRAY = 0x80
_KEY_A, _KEY_C, _KEY_D, _KEY_I, _KEY_W = (cbor2.dumps(k) for k in "acdiw")
_CREATE_HEAD = b"\xa5" + cbor2.dumps("t")  # a map of 5 entries, then the first key
_BODY_HEAD = cbor2.dumps({"v": BODY_VERSION, "events": []})[:-1]  # ‖ array head ‖ events
_BODY_HEAD_W = b"\xa3" + _BODY_HEAD[1:]  # a map of 3: v, events, then w after the events


@dataclass(frozen=True, slots=True)
class Body:
    """A parsed record body.

    Attributes
    ----------
    events : list of RecordEvent
        The transaction's events (empty for a membership event).
    proof : object or None
        The writer proof node (parsed by :class:`threadkit.core.writerproof.WriterProof`),
        None in a body written before writer proofs.
    member : dict or None
        The membership event node, if the record is one.
    snapshot : dict or None
        The snapshot node ``{root: CID}``, if the record carries one (:mod:`.snapshots`).
    """

    events: list[RecordEvent]
    proof: object | None = None
    member: dict[str, Any] | None = None
    snapshot: dict[str, Any] | None = None


def decode_body(data: bytes) -> list[RecordEvent]:
    """The events of a record body; anything malformed is MalformedRecord."""
    return decode_record_body(data).events


def decode_record_body(data: bytes) -> Body:
    """A record body: its events, writer proof and membership event; MalformedRecord if bad."""
    try:
        node = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError, RecursionError) as exc:
        raise MalformedRecord(f"record body is not CBOR: {exc}") from None
    if not isinstance(node, dict) or node.get("v") != BODY_VERSION:
        raise MalformedRecord(f"record body is not a version {BODY_VERSION} event list")
    if not node.keys() <= {"v", "events", "w", "m", "s"}:
        raise MalformedRecord(f"record body has unknown fields {sorted(node)}")
    events = node.get("events")
    member = node.get("m")
    snapshot = node.get("s")
    if member is not None and (not isinstance(member, dict) or events != []):
        raise MalformedRecord("a membership record holds one membership map and no events")
    if snapshot is not None and (
        not isinstance(snapshot, dict) or events != [] or member is not None
    ):
        raise MalformedRecord("a snapshot record holds one snapshot map and no events")
    if not isinstance(events, list) or (not events and member is None and snapshot is None):
        raise MalformedRecord("record body holds no events")
    parsed = [RecordEvent.from_node(e) for e in events]
    for before, after in itertools.pairwise(parsed):
        if after.stamp <= before.stamp:
            raise MalformedRecord("events in a record body must have increasing stamps")
    return Body(parsed, node.get("w"), member, snapshot)
