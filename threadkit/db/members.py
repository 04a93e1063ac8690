"""Members and writer proofs in the document store: what each record is, and its verdict.

Every record carries a writer proof (``w`` in its body, :mod:`.events`): a
**delegation** by the writer's identity to the log key, or a daemon's
**attestation** (docs/access.md; it covers the record's events, or its membership
event, :func:`attested_content`). On receipt (and on a local commit) a record becomes
an **entry** in ``db_access``, under ``prefix ‖ log id bytes ‖ counter``: the
authenticated writer, what the record does (``write``, ``config``, ``genesis``,
``grant``, ``revoke``, ``mode``), or why it cannot count (``invalid``: a proof that does not
verify, or one that names another writer; ``unproven``: a body written without a proof;
``locked``: a record of a key epoch whose read key this peer does not hold, so its body
cannot be read yet, :mod:`.epochs`).

The verdicts are a pure function of the set of entries (:func:`verdicts`): a record
without a valid proof never counts; a database without a genesis is **open** as before
members existed (writes and configs count, membership events do not); a database with
one is judged by the members fold of :mod:`.roles`. Each entry keeps the verdict its
record was applied with (``ok``), so a delivery that changes an earlier verdict is seen
and the state rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import base58
import cbor2

from threadkit.core.clock import Timestamp
from threadkit.core.identity import PublicKey, peer_id_bytes
from threadkit.core.ids import ThreadID
from threadkit.core.writerproof import ProofKind, WriterProof, verify_proof
from threadkit.db import epochs, roles
from threadkit.db.events import Body, RecordEvent, events_digest
from threadkit.errors import InvalidKey, InvalidTimestamp, MalformedRecord, WriterProofError
from threadkit.store.txntypes import StoreTxn, StoreWriteTxn

__all__ = [
    "ROLE_NAMES",
    "Entry",
    "attested_content",
    "entry_for",
    "fold_entries",
    "iter_entries",
    "locked",
    "member_node",
    "membership_mark",
    "new_mark",
    "put_entry",
    "stamp_int",
    "verdicts",
]

ROLE_NAMES = {"reader": roles.Role.READER, "writer": roles.Role.WRITER, "admin": roles.Role.ADMIN}
"""The roles a grant may give, by name."""

_COUNTER = struct.Struct(">Q")
_MARK = b"\xff"
"""The key (after the prefix) of the membership mark in ``db_applied``; log id bytes never
start with ff."""
_MEMBER_KINDS = {
    "genesis": roles.Kind.GENESIS,
    "grant": roles.Kind.GRANT,
    "revoke": roles.Kind.REVOKE,
    "mode": roles.Kind.MODE,
}
_MEMBER_FIELDS = frozenset(
    {"k", "t", "heads", "target", "role", "open", "direct", "epoch", "commit", "keys"}
)
UNPROVEN = "no writer proof: every record must show its writer"
LOCKED = "sealed under key epoch {}, whose read key this peer does not hold"


@dataclass(frozen=True)
class Entry:
    """What one record is, as the access rules see it.

    Attributes
    ----------
    log : str
        The record's log id.
    counter : int
        Its place in the log (1 for the first).
    kind : str
        ``write``, ``config``, ``genesis``, ``grant``, ``revoke``, ``mode``, ``invalid``,
        ``unproven`` or ``locked``.
    stamp : int
        Its first event's stamp as an integer (``wall << 32 | logical``).
    author : str
        The writer the proof authenticated (the record's ``pubKey`` when unproven).
    fields : Mapping
        ``via``, ``target``, ``role``, ``open``, ``heads`` or ``why``, as the kind has them;
        ``epoch``, ``commit`` and ``keys`` of a membership record carrying keys
        (:mod:`.epochs`); ``sealed`` (``[epoch, commitments]``, or ``[epoch]`` while
        locked) for a record of an epoch from 1.
    ok : bool
        Whether the record's events are applied (its verdict when last judged).
    """

    log: str
    counter: int
    kind: str
    stamp: int
    author: str
    fields: Mapping[str, Any]
    ok: bool = False

    def encode(self) -> bytes:
        """The ``db_access`` value (fields in key order: the writer's own entry and a
        receiver's gather them in different orders, and every peer must hold the same
        bytes)."""
        return cbor2.dumps(
            {
                "k": self.kind,
                "t": self.stamp,
                "a": self.author,
                "f": dict(sorted(self.fields.items())),
                "ok": self.ok,
            }
        )

    def event(self) -> roles.RoleEvent | None:
        """The event the members fold judges; None for an invalid or unproven record."""
        kind = _MEMBER_KINDS.get(self.kind) or {
            "write": roles.Kind.WRITE,
            "config": roles.Kind.CONFIG,
        }.get(self.kind)
        if kind is None:
            return None
        f = self.fields
        role = roles.Role(f["role"]) if "role" in f else None
        return roles.RoleEvent(
            self.log, self.counter, self.stamp, self.author, kind, target=f.get("target"),
            role=role, open=f.get("open"), heads=f.get("heads"), via=f.get("via"),
            direct=f.get("direct"),
        )  # fmt: skip


def stamp_int(stamp: Timestamp) -> int:
    """A stamp as the fold orders it: ``wall << 32 | logical``."""
    return (stamp.wall << 32) | stamp.logical


def member_node(
    kind: str,
    stamp: Timestamp,
    heads: Mapping[str, int],
    *,
    target: PublicKey | None = None,
    role: str | None = None,
    open: bool | None = None,
    direct: bool | None = None,
    keys: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``m`` node of a membership record body (see :func:`entry_for`); ``keys`` holds
    its epoch parts (``epoch``, ``commit``, ``keys``, :mod:`.epochs`)."""
    node: dict[str, Any] = {"k": kind, "t": [stamp.wall, stamp.logical], "heads": dict(heads)}
    if target is not None:
        node["target"] = target.to_bytes()
    if role is not None:
        node["role"] = role
    if open is not None:
        node["open"] = open
    if direct is not None:
        node["direct"] = direct
    node.update(keys or {})
    return node


def attested_content(events: Sequence[RecordEvent], member: Mapping[str, Any] | None) -> bytes:
    """What a daemon's attestation of a record covers: its events, or its membership event."""
    if member is None:
        return events_digest(events)
    return hashlib.sha256(b"member\0" + cbor2.dumps(dict(member), canonical=True)).digest()


def entry_for(
    body: Body | None,
    *,
    thread_id: ThreadID,
    log: PublicKey,
    counter: int,
    author: PublicKey,
    sealed: tuple[int, bytes] = (0, b""),
) -> Entry:
    """The entry of a record: its proof checked against the thread, the log and its ``pubKey``.

    ``body`` is None for a record whose body could not be read (it counts for nothing).
    ``sealed`` is the record's key epoch and the commitment of the key that opened it.
    """
    log_id = log.peer_id
    if body is None:
        return Entry(log_id, counter, "invalid", 0, str(author), {"why": "unreadable body"})
    if sealed[0] and body.member is not None:
        why = "a membership event is sealed under epoch 0 (every member must judge it)"
        return Entry(log_id, counter, "invalid", 0, str(author), {"why": why})
    stamp = _stamp_of(body)
    if body.proof is None:
        return Entry(log_id, counter, "unproven", stamp, str(author), {})
    try:
        proof = WriterProof.from_node(body.proof)
        attested = proof.kind is ProofKind.ATTESTED
        if proof.kind is ProofKind.DIRECT:
            raise WriterProofError(
                "records carry a delegation or an attestation, not a direct proof"
            )
        content = attested_content(body.events, body.member) if attested else None
        who = verify_proof(proof, thread_id=thread_id, log=log, content=content)
        if who.writer != author:
            raise WriterProofError(
                f"the record names writer {author.peer_id} but its proof is {who.writer.peer_id}'s"
            )
    except WriterProofError as exc:
        return Entry(log_id, counter, "invalid", stamp, str(author), {"why": str(exc)})
    fields: dict[str, Any] = {} if who.via is None else {"via": str(who.via)}
    if sealed[0]:
        fields["sealed"] = [sealed[0], sealed[1]]
    if body.member is None:
        kind = "config" if any(e.action.is_collection for e in body.events) else "write"
        return Entry(log_id, counter, kind, stamp, str(author), fields)
    try:
        sealer = author if who.via is None else who.via
        kind, more = _member_fields(body.member, thread_id, sealer)
        entry = Entry(log_id, counter, kind, stamp, str(author), {**fields, **more})
        entry.event()  # the fold's own checks of the fields
    except (MalformedRecord, InvalidKey, KeyError, TypeError, ValueError) as exc:
        return Entry(log_id, counter, "invalid", stamp, str(author), {"why": f"membership: {exc}"})
    return entry


def _stamp_of(body: Body) -> int:
    if body.events:
        return stamp_int(body.events[0].stamp)
    member = body.member or body.snapshot or {}  # a snapshot's stamp: when it was taken
    try:
        wall, logical = member["t"]
        return stamp_int(Timestamp.checked(wall, logical))
    except (KeyError, TypeError, ValueError, InvalidTimestamp):
        return 0  # a malformed stamp: the membership check refuses the entry


def locked(log: str, counter: int, author: PublicKey, epoch: int) -> Entry:
    """The entry of a record of ``epoch`` whose read key this peer does not hold."""
    return Entry(log, counter, "locked", 0, str(author), {"sealed": [epoch]})


def _member_fields(
    node: Mapping[str, Any], thread_id: ThreadID, sealer: PublicKey
) -> tuple[str, dict[str, Any]]:
    """A membership node's entry fields; ``sealer`` is who signed its sealed keys: the
    writer, or for an attested event the daemon, which holds the only key it can use."""
    kind = node["k"]
    if kind not in _MEMBER_KINDS or not node.keys() <= _MEMBER_FIELDS:
        raise MalformedRecord(f"unknown membership event {kind!r}")
    heads = node["heads"]
    if not isinstance(heads, dict):
        raise MalformedRecord("heads must be a map")
    out: dict[str, Any] = {"heads": heads}
    if "target" in node:
        out["target"] = str(PublicKey.from_bytes(node["target"]))
    if "role" in node:
        if node["role"] not in ROLE_NAMES:
            raise MalformedRecord(f"unknown role {node['role']!r}")
        out["role"] = int(ROLE_NAMES[node["role"]])
    for flag in ("open", "direct"):
        if flag in node:
            out[flag] = node[flag]
    out.update(epochs.check_node(node, thread_id=thread_id, author=sealer))
    return str(kind), out


# ------------------------------------------------------------------ the table


def _key(prefix: bytes, log: str, counter: int) -> bytes:
    return prefix + peer_id_bytes(log) + _COUNTER.pack(counter)


def put_entry(txn: StoreWriteTxn, table: Any, prefix: bytes, entry: Entry) -> None:
    """Store (or replace) an entry (a membership entry with a :func:`new_mark`)."""
    txn.put(_key(prefix, entry.log, entry.counter), entry.encode(), db=table)


def membership_mark(txn: StoreTxn, table: Any, prefix: bytes) -> bytes | None:
    """The database's membership mark in ``table`` (``db_applied``: local, never in a
    snapshot): random bytes written anew with every membership entry (in the same
    transaction), so a mark seen once names one set of membership entries for good, an
    aborted transaction's included; None when not written yet."""
    raw = txn.get(prefix + _MARK, db=table)
    return None if raw is None else bytes(raw)


def new_mark(txn: StoreWriteTxn, table: Any, prefix: bytes) -> bytes:
    """Write a new membership mark (:func:`membership_mark`) and return it."""
    mark = os.urandom(16)
    txn.put(prefix + _MARK, mark, db=table)
    return mark


def iter_entries(txn: StoreTxn, table: Any, prefix: bytes) -> Iterator[Entry]:
    """Every entry of a database, in key order."""
    cursor = txn.cursor(table)
    if not cursor.set_range(prefix):
        return
    for key, value in cursor:
        if not key.startswith(prefix):
            return
        key = bytes(key)
        log = base58.b58encode(key[len(prefix) : -_COUNTER.size]).decode()
        (counter,) = _COUNTER.unpack(key[-_COUNTER.size :])
        node = cbor2.loads(value)
        yield Entry(log, counter, node["k"], node["t"], node["a"], node["f"], node["ok"])


# ------------------------------------------------------------------ verdicts


def fold_entries(entries: list[Entry]) -> roles.RolesFold | None:
    """The members fold over the entries; None for an open database (no genesis)."""
    if not any(e.kind == "genesis" for e in entries):
        return None
    return roles.fold(e for e in (x.event() for x in entries) if e is not None)


def verdicts(entries: list[Entry]) -> dict[tuple[str, int], str]:
    """The reason each entry is rejected ("" when it counts), by ``(log, counter)``."""
    result = fold_entries(entries)
    out: dict[tuple[str, int], str] = {}
    if result is not None:
        out.update({v.event.position: v.reason for v in result.verdicts})
    for e in entries:
        if e.kind == "invalid":
            out[(e.log, e.counter)] = f"writer proof: {e.fields.get('why', '')}"
        elif e.kind == "unproven":
            out[(e.log, e.counter)] = UNPROVEN
        elif e.kind == "locked":
            out[(e.log, e.counter)] = LOCKED.format(e.fields["sealed"][0])
        elif result is None:
            member = e.kind in _MEMBER_KINDS
            out[(e.log, e.counter)] = "this database is open: it has no members" if member else ""
    return out
