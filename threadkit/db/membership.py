"""A database's members as the user sees them: grant, revoke, members, rejected records.

Membership changes are records like any other (their body holds a membership event
``m`` and no document events, :mod:`.members`), replicated in the writer's log and
judged on every peer by the members fold (:mod:`.roles`, docs/access.md). A database
created with ``open=False`` starts with a **genesis** record that makes its creator the
owner; a database without one is open, as before members existed.

A revoke of a member who could read starts a new key epoch (docs/access.md): the
revoking admin draws a new read key and seals it to every remaining member; and every
membership record an admin writes also seals the epochs it holds to the members who
have none yet (:mod:`.epochs`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from threadkit.core.identity import Identity, PublicKey
from threadkit.core.records import Record, create_record
from threadkit.core.symmetric import SymmetricKey
from threadkit.db import epochs, members
from threadkit.db.change import Change
from threadkit.db.events import encode_body
from threadkit.db.gate import WriteAs, author_of, resolve_writer
from threadkit.db.roles import Role
from threadkit.errors import InvalidInput, PermissionDenied
from threadkit.store import chain
from threadkit.store.txntypes import StoreWriteTxn

if TYPE_CHECKING:
    import pandas as pd

    from threadkit.db.database import Database

__all__ = ["Membership"]


class Membership:
    """The membership methods of :class:`~threadkit.db.database.Database`."""

    @property
    def access(self) -> str:
        """``"members"`` when only roles count, ``"open"`` when anyone with the key writes
        (no genesis, or an owner who opened it: ``members()`` then lists its roles)."""
        with _db(self)._repo.transaction() as txn:
            if not _db(self).gate.has_members(txn):
                return "open"
            entries = list(members.iter_entries(txn, _db(self)._tables.access, _db(self).prefix))
        result = members.fold_entries(entries)
        return "open" if result is None or result.members.open else "members"

    def grant(self, public_key: PublicKey | str, role: str, *, identity: WriteAs = None) -> Record:
        """Give ``public_key`` a role: ``"reader"``, ``"writer"`` or ``"admin"``.

        A grant is a record every peer judges: it counts when its writer (this peer's
        identity, or the ``tk.Identity`` given as ``identity``) is an admin. Raises
        PermissionDenied otherwise (nothing is written), InvalidInput for an unknown role
        or key, and PermissionDenied in an open database (create it with ``open=False``
        to have members).
        """
        if role not in members.ROLE_NAMES:
            raise InvalidInput(f"role must be one of {sorted(members.ROLE_NAMES)}, got {role!r}")
        return _commit_member(
            _db(self), "grant", target=_key(public_key), role=role, writer=identity
        )

    def revoke(self, public_key: PublicKey | str, *, identity: WriteAs = None) -> Record:
        """Take every role from ``public_key``: its records beyond what this peer had seen are
        rejected on every peer (docs/access.md, the revocation cut).

        When it could read (and the database is not open), the read key rotates: the
        record starts a new key epoch, sealed to every remaining member, and records
        written from then on are encrypted under it.
        """
        return _commit_member(_db(self), "revoke", target=_key(public_key), writer=identity)

    def set_direct(self, direct: bool, *, identity: WriteAs = None) -> Record:
        """Require direct proof (True): events a daemon attests for its API clients are
        then rejected on every peer; only writers' own proofs count. False allows them
        again. Admin only; a daemon cannot lift the requirement for its clients, since
        its attested mode change is itself refused (docs/access.md).
        """
        if not isinstance(direct, bool):
            raise InvalidInput(f"direct must be True or False, got {direct!r}")
        return _commit_member(_db(self), "mode", direct=direct, writer=identity)

    def set_open(self, open: bool, *, identity: WriteAs = None) -> Record:
        """Open the database (anyone with the key writes documents and changes collections,
        as in an open database) or close it again (only roles count); admin only.

        Membership keeps its rules while open: only admins grant and revoke, and a revoked
        identity stays banned.
        """
        if not isinstance(open, bool):
            raise InvalidInput(f"open must be True or False, got {open!r}")
        return _commit_member(_db(self), "mode", open=open, writer=identity)

    def members(self) -> pd.DataFrame:
        """Who holds which role: columns ``identity``, ``role``, ``granted_by``, ``when`` (UTC).

        Empty for an open database (no owner, no roles).
        """
        import pandas as pd

        with _db(self)._repo.transaction() as txn:
            entries = list(members.iter_entries(txn, _db(self)._tables.access, _db(self).prefix))
        result = members.fold_entries(entries)
        rows: list[dict[str, Any]] = []
        if result is not None:
            granted: dict[str, tuple[str, int]] = {}
            for verdict in result.verdicts:
                event = verdict.event
                if not verdict.accepted:
                    continue
                if event.kind == "genesis":
                    granted[event.author] = (event.author, event.stamp)
                    if event.via is not None:  # the daemon hosting the database
                        granted[event.via] = (event.author, event.stamp)
                elif event.kind == "grant" and event.target is not None:
                    granted[event.target] = (event.author, event.stamp)
            for who, role in result.members.roles.items():
                by, stamp = granted.get(who, ("", 0))
                rows.append(
                    {"identity": who, "role": role.name.lower(), "granted_by": by,
                     "when": _when(stamp)}
                )  # fmt: skip
        return pd.DataFrame(rows, columns=["identity", "role", "granted_by", "when"])

    def rejected(self) -> pd.DataFrame:
        """Records every peer rejects (never applied): ``log``, ``counter``, ``writer``,
        ``kind``, ``when`` and ``reason``, in log order."""
        import pandas as pd

        with _db(self)._repo.transaction() as txn:
            entries, verdicts = _db(self).gate.fold(txn)
        rows = [
            {"log": e.log, "counter": e.counter, "writer": e.author, "kind": e.kind,
             "when": _when(e.stamp), "reason": verdicts[(e.log, e.counter)]}
            for e in entries
            if verdicts.get((e.log, e.counter)) and e.kind != "locked"
        ]  # fmt: skip
        return pd.DataFrame(rows, columns=["log", "counter", "writer", "kind", "when", "reason"])

    def role_of(self, public_key: PublicKey | str) -> str:
        """The role ``public_key`` holds now (``"none"`` without one, and in an open database)."""
        with _db(self)._repo.transaction() as txn:
            entries = list(members.iter_entries(txn, _db(self)._tables.access, _db(self).prefix))
        result = members.fold_entries(entries)
        if result is None:
            return Role.NONE.name.lower()
        return result.members.role(str(_key(public_key))).name.lower()


def start_members(db: Database, *, open: bool = False, owner: WriteAs = None) -> Record:
    """Write the genesis record: this peer's identity (or ``owner``: an attested API client
    makes the client the owner and this peer an admin) owns ``db``, which has members."""
    return _commit_member(db, "genesis", open=open, writer=owner)


def _commit_member(
    db: Database,
    kind: str,
    *,
    target: PublicKey | None = None,
    role: str | None = None,
    open: bool | None = None,
    direct: bool | None = None,
    writer: WriteAs = None,
) -> Record:
    author = resolve_writer(writer, db.identity)

    def attempt(txn: StoreWriteTxn) -> tuple[Record, list[Change]]:
        if kind != "genesis" and not db.gate.has_members(txn):
            raise PermissionDenied(
                f"{db.name!r} is open (anyone with its key writes): it has no members to "
                "change; create the database with open=False"
            )
        stamp = db.hlc.now()
        heads = db.gate.heads(txn)
        fields: dict[str, Any] = {"heads": heads}
        if target is not None:
            fields["target"] = str(target)
        if role is not None:
            fields["role"] = int(members.ROLE_NAMES[role])
        if open is not None:
            fields["open"] = open
        if direct is not None:
            fields["direct"] = direct
        sealer = author if isinstance(author, Identity) else db.identity  # a daemon: its own
        keys = _keys(db, txn, kind, target, role, sealer) if kind != "genesis" else {}
        fields.update(keys)
        db.gate.admit(txn, kind, author, stamp, **fields)
        node = members.member_node(
            kind, stamp, heads, target=target, role=role, open=open, direct=direct, keys=keys
        )
        body = encode_body([], db.gate.proof(author, [], node), member=node)
        record = create_record(
            body, log_key=db.log_key, key=db.key, prev=db._head(txn), author=author_of(author)
        )
        counter = chain.append(txn, db._repo.tables, db.id, db.log_id, [record])
        db._set_applied(txn, db._log_bytes, counter)
        return record, db.gate.settle(txn)

    record, changes = db._rounds(attempt)
    db._after_commit(changes, record)
    return record


def _keys(
    db: Database,
    txn: StoreWriteTxn,
    kind: str,
    target: PublicKey | None,
    role: str | None,
    sealer: Identity,
) -> dict[str, Any]:
    """The epoch parts of a membership record: a new epoch when a revoke takes read access
    away, and the keys held here sealed (by ``sealer``, the record's writer or the daemon
    attesting it) to each reader who has not been given them."""
    entries, verdicts = db.gate.fold(txn)
    result = members.fold_entries(entries)
    if result is None:
        return {}
    ring = db.gate.ring(txn, entries, verdicts)
    readers = {who for who, r in result.members.roles.items() if r >= Role.READER}
    out: dict[str, Any] = {}
    if target is not None:
        if kind == "revoke":
            rotate = str(target) in readers and not result.members.open
            readers.discard(str(target))
            if rotate:
                epoch = 1 + max([ring.top, *ring.keys])  # past every epoch it has seen
                out = epochs.rotation(
                    sealer, db.id, epoch, SymmetricKey.new(),
                    [PublicKey.from_string(m) for m in sorted(readers)],
                )  # fmt: skip
        elif role is not None:
            readers.add(str(target))
    owed = epochs.seal_owed(
        sealer, db.id, ring, [PublicKey.from_string(m) for m in sorted(readers)],
        epochs.delivered(entries, verdicts),
    )  # fmt: skip
    if owed:
        out["keys"] = [*out.get("keys", []), *owed]
    return out


def _db(mixin: Membership) -> Database:
    return cast("Database", mixin)


def _key(public_key: PublicKey | Identity | str) -> PublicKey:
    if isinstance(public_key, Identity):
        return public_key.public
    if isinstance(public_key, PublicKey):
        return public_key
    if isinstance(public_key, str):
        return PublicKey.from_string(public_key)
    raise InvalidInput(f"expected a public key, got {type(public_key).__name__}")


def _when(stamp: int) -> datetime:
    return datetime.fromtimestamp((stamp >> 32) / 1e9, tz=UTC)
