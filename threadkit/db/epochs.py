"""Key epochs of a database: which read keys this peer holds, and what they open.

Epoch 0 is the read key in the database's thread key. When an admin revokes a member
who could read, its revoke record starts a new epoch: it names the epoch (``epoch``),
publishes the new key's commitment (``commit``) and carries the key sealed to every
remaining member (``keys``, :mod:`threadkit.core.sealing`). Any membership record by an
admin may also carry keys of earlier epochs sealed to members who lack them (a member
granted later, or concurrently with a rotation). Membership records themselves are
always of epoch 0, so every holder of the thread key judges membership alike.

What this peer holds is a pure function of the accepted membership records and its
identity (:func:`keyring`): for each accepted rotation, the epoch and commitment it
published; for each sealed key addressed to this identity in an accepted record, the
key it opens to — kept only when it matches the commitment of an accepted rotation of
its epoch. A record of epoch ``n`` is read with the keys held for ``n``
(:meth:`Keyring.read`); a record whose key is not held is **locked** (docs/access.md).

Two admins revoking concurrently may both start epoch ``n``, each sealing its key to the
members it keeps, so each key may be held by the member the other revoked. A writer
holding several keys of its newest epoch therefore writes under their **combination**
(HKDF-SHA256 over the keys in commitment order): only a member holding every one of
them reads the record.

Examples
--------
>>> from threadkit.core.identity import Identity
>>> from threadkit.core.ids import ThreadID
>>> from threadkit.core.keys import ThreadKey
>>> from threadkit.core.records import create_record
>>> admin, tid, key = Identity.generate(), ThreadID.new(), ThreadKey.new()
>>> new = SymmetricKey.new()
>>> fields = rotation(admin, tid, 1, new, [admin.public])
>>> sorted(fields)
['commit', 'epoch', 'keys']
>>> ring = Keyring(key, {1: {fields["commit"]: new}})
>>> epoch, _, write_key = ring.newest()
>>> record = create_record(b"\\xa0", log_key=admin, key=write_key, epoch=epoch)
>>> ring.read(record)[0], record.epoch
(b'\\xa0', 1)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from itertools import combinations
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from threadkit.core.identity import Identity, PublicKey
from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.core.records import Record
from threadkit.core.sealing import SealedKey, key_commitment, open_epoch_key, seal_epoch_key
from threadkit.core.symmetric import SymmetricKey
from threadkit.errors import DecryptionError, MalformedRecord, RecordError

if TYPE_CHECKING:
    from threadkit.db.members import Entry

__all__ = [
    "MEMBERSHIP",
    "Keyring",
    "check_node",
    "combine",
    "delivered",
    "keyring",
    "rotation",
    "seal_owed",
]

MEMBERSHIP = frozenset({"genesis", "grant", "revoke", "mode"})
"""The entry kinds of membership records: the only ones that carry keys."""

_COMBINED = b"threadkit/epoch-keys-combined/1\x00"
_COMMIT_SIZE = 32
_MAX_SUBSETS_OF = 4
"""Up to this many keys of one epoch, a reader tries every combination of them."""


@dataclass(frozen=True)
class Keyring:
    """The read keys this peer holds for one database.

    Attributes
    ----------
    thread_key : ThreadKey
        The database's key: service key, and epoch 0's read key (absent on a replicator).
    keys : Mapping[int, Mapping[bytes, SymmetricKey]]
        Epoch (from 1) → commitment → key, for the epochs sealed to this identity by
        accepted records.
    top : int
        The highest epoch an accepted rotation started, held here or not.
    """

    thread_key: ThreadKey
    keys: Mapping[int, Mapping[bytes, SymmetricKey]] = field(default_factory=dict)
    top: int = 0

    def newest(self) -> tuple[int, bytes, ThreadKey]:
        """``(epoch, commitments, thread key)`` to write with: the highest epoch held, under
        the combination of every key held for it (their commitments concatenated, in
        order); epoch 0 and no commitment when none is held."""
        if not self.keys:
            return 0, b"", self.thread_key
        epoch = max(self.keys)
        held = sorted(self.keys[epoch].items())
        key = combine([k for _, k in held], [c for c, _ in held])
        return epoch, b"".join(c for c, _ in held), ThreadKey(self.thread_key.service_key, key)

    def holds(self, epoch: int, commits: bytes) -> bool:
        """True when every key of ``epoch`` named in ``commits`` is held (epoch 0: always)."""
        if epoch == 0:
            return True
        names = [commits[i : i + _COMMIT_SIZE] for i in range(0, len(commits), _COMMIT_SIZE)]
        held = self.keys.get(epoch, {})
        return bool(names) and all(len(n) == _COMMIT_SIZE and n in held for n in names)

    def read(self, record: Record) -> tuple[bytes, bytes]:
        """``(body bytes, commitments of the keys that opened it)`` of a record.

        Raises
        ------
        DecryptionError
            The record's epoch key is not held here (or none held opens it).
        RecordError
            A malformed header or body.
        """
        epoch = record.epoch
        if epoch == 0:
            return record.read_body(self.thread_key), b""
        for subset in _subsets(sorted(self.keys.get(epoch, {}).items())):
            key = combine([k for _, k in subset], [c for c, _ in subset])
            try:
                return record.read_body(key), b"".join(c for c, _ in subset)
            except DecryptionError:
                continue
        raise DecryptionError(f"the read key of epoch {epoch} is not held here")


def combine(keys: list[SymmetricKey], commits: list[bytes]) -> SymmetricKey:
    """One key from several keys of one epoch (HKDF-SHA256; the key itself when alone).

    ``commits`` are the keys' commitments, in the same (ascending) order.
    """
    if len(keys) == 1:
        return keys[0]
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_COMBINED + b"".join(commits))
    return SymmetricKey(hkdf.derive(b"".join(k.raw for k in keys)))


def _subsets(
    held: list[tuple[bytes, SymmetricKey]],
) -> Iterator[tuple[tuple[bytes, SymmetricKey], ...]]:
    """The combinations a record of an epoch may be written under, single keys first."""
    if len(held) > _MAX_SUBSETS_OF:
        yield from ((h,) for h in held)
        yield tuple(held)
        return
    for size in range(1, len(held) + 1):
        yield from combinations(held, size)


def check_node(
    node: Mapping[str, Any], *, thread_id: ThreadID, author: PublicKey
) -> dict[str, Any]:
    """The entry fields of a membership node's epoch parts (``epoch``, ``commit``, ``keys``).

    Every sealed key must be for this thread and sealed by the record's writer; the keys
    of the epoch the node starts must carry its commitment. Raises MalformedRecord.
    """
    out: dict[str, Any] = {}
    if ("epoch" in node) != ("commit" in node):
        raise MalformedRecord("a rotation names its epoch and its key commitment together")
    if "epoch" in node:
        epoch, commit = node["epoch"], node["commit"]
        if node.get("k") != "revoke":
            raise MalformedRecord("only a revoke starts a key epoch")
        if type(epoch) is not int or epoch < 1:
            raise MalformedRecord(f"a rotation starts an epoch from 1, got {epoch!r}")
        if type(commit) is not bytes or len(commit) != 32:
            raise MalformedRecord("a rotation's key commitment is 32 bytes")
        out.update(epoch=epoch, commit=commit)
    if "keys" in node:
        keys = node["keys"]
        if not isinstance(keys, list) or not all(type(k) is bytes for k in keys):
            raise MalformedRecord("keys must be a list of sealed keys (bytes)")
        for raw in keys:
            sealed = SealedKey.from_bytes(raw)
            if sealed.thread != thread_id.to_bytes() or sealed.sender != author:
                raise MalformedRecord("a sealed key must be for this thread, by the writer")
            started = sealed.epoch == out.get("epoch")
            if sealed.epoch == 0 or (started and sealed.commitment != out["commit"]):
                raise MalformedRecord(f"sealed key of epoch {sealed.epoch} does not fit")
        out["keys"] = list(keys)
    return out


def keyring(
    entries: Iterable[Entry],
    rejected: Mapping[tuple[str, int], str],
    *,
    me: Identity,
    thread_key: ThreadKey,
    thread_id: ThreadID,
    opened: MutableMapping[bytes, SymmetricKey | None],
) -> Keyring:
    """The keys ``me`` holds: sealed to it in accepted membership records, each matching
    the commitment of an accepted rotation of its epoch.

    ``rejected`` maps positions to their rejection reason ("" when accepted);
    ``opened`` caches what each sealed key opened to (None: not ``me``'s, or broken).
    """
    accepted = [
        e
        for e in entries
        if e.kind in MEMBERSHIP and not rejected.get((e.log, e.counter), "missing")
    ]
    commits: dict[int, set[bytes]] = {}
    for e in accepted:
        if "epoch" in e.fields:
            commits.setdefault(e.fields["epoch"], set()).add(e.fields["commit"])
    keys: dict[int, dict[bytes, SymmetricKey]] = {}
    for e in accepted:
        for raw in e.fields.get("keys", ()):
            if raw not in opened:
                opened[raw] = _open(raw, me, thread_id)
            key = opened[raw]
            if key is None:
                continue
            sealed = SealedKey.from_bytes(raw)
            if sealed.commitment in commits.get(sealed.epoch, ()):
                keys.setdefault(sealed.epoch, {})[sealed.commitment] = key
    return Keyring(thread_key, keys, max(commits, default=0))


def delivered(
    entries: Iterable[Entry], rejected: Mapping[tuple[str, int], str]
) -> set[tuple[str, int, bytes]]:
    """``(recipient, epoch, commitment)`` of every sealed key in an accepted record."""
    out: set[tuple[str, int, bytes]] = set()
    for e in entries:
        if e.kind in MEMBERSHIP and not rejected.get((e.log, e.counter), "missing"):
            for raw in e.fields.get("keys", ()):
                sealed = SealedKey.from_bytes(raw)
                out.add((str(sealed.recipient), sealed.epoch, sealed.commitment))
    return out


def rotation(
    admin: Identity,
    thread_id: ThreadID,
    epoch: int,
    key: SymmetricKey,
    members: Iterable[PublicKey],
) -> dict[str, Any]:
    """The node fields starting ``epoch`` with ``key``, sealed to each of ``members``."""
    return {
        "epoch": epoch,
        "commit": key_commitment(key, thread_id=thread_id, epoch=epoch),
        "keys": [
            seal_epoch_key(
                key, recipient=m, sender=admin, thread_id=thread_id, epoch=epoch
            ).to_bytes()
            for m in members
        ],
    }


def seal_owed(
    admin: Identity,
    thread_id: ThreadID,
    ring: Keyring,
    members: Iterable[PublicKey],
    have: set[tuple[str, int, bytes]],
) -> list[bytes]:
    """Sealed keys of every epoch ``ring`` holds for each of ``members`` not yet sealed one."""
    out: list[bytes] = []
    for member in members:
        for epoch, keys in sorted(ring.keys.items()):
            for commit, key in sorted(keys.items()):
                if (str(member), epoch, commit) not in have:
                    sealed = seal_epoch_key(
                        key, recipient=member, sender=admin, thread_id=thread_id, epoch=epoch
                    )
                    out.append(sealed.to_bytes())
    return out


def _open(raw: bytes, me: Identity, thread_id: ThreadID) -> SymmetricKey | None:
    sealed = SealedKey.from_bytes(raw)
    if sealed.recipient != me.public:
        return None
    try:
        return open_epoch_key(sealed, recipient=me, thread_id=thread_id, epoch=sealed.epoch)
    except RecordError:  # a signature or box that does not open: that key counts for nothing
        return None
