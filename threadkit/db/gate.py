"""The access gate of one database: writer proofs on its records, and the verdicts of its members.

Every record this peer writes carries a writer proof (:mod:`.members`); every record
it holds has an entry in ``db_access``. After each delivery the gate folds the entries
(:func:`.members.verdicts`): records newly accepted are applied, and when a record
already applied is now rejected (a revoke that arrived late cut it), the database's
state is rebuilt from its accepted records. The engine is order-independent, so the
state is that of applying exactly the accepted records, on every peer. A database
bootstrapped from a snapshot rebuilds from the snapshot's state instead of the records
before it, which it does not hold (:mod:`.basestate`).

Records of a key epoch from 1 are read with the keys this peer holds
(:mod:`.epochs`); one whose key is not held is kept **locked** (signed by its log key,
stored in its log, never applied). Each settle first finds the keys the accepted
membership records give this identity, opens the locked records those keys open and
locks again the ones whose key no longer counts (a rotation a late revoke cut), then
judges and applies as above: the state is that of the accepted records this peer can
read, whatever the order they and the keys arrived in.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from threadkit.core.clock import Timestamp
from threadkit.core.identity import Identity, PublicKey, peer_id_bytes, public_key_from_peer_id
from threadkit.core.keys import ThreadKey
from threadkit.core.records import Record, open_record
from threadkit.core.symmetric import SymmetricKey
from threadkit.core.writerproof import attest, delegate
from threadkit.db import basestate, dockeys, epochs, members, snapshots
from threadkit.db.change import Change, change_between
from threadkit.db.epochs import MEMBERSHIP
from threadkit.db.events import Body, RecordEvent, decode_record_body
from threadkit.errors import (
    DecryptionError,
    InvalidInput,
    MalformedRecord,
    PermissionDenied,
    RecordError,
)
from threadkit.store import reads
from threadkit.store.logs import list_logs, read_head
from threadkit.store.models import Head
from threadkit.store.txntypes import StoreTxn, StoreWriteTxn

if TYPE_CHECKING:
    from threadkit.db.database import Database
    from threadkit.db.engine import Engine

__all__ = ["Attested", "Gate", "WriteAs", "Writer", "author_of", "reader_of", "resolve_writer"]

log = logging.getLogger("threadkit.db")


@dataclass(frozen=True)
class Attested:
    """A write this peer's identity attests for a client (a daemon's API caller).

    The client proved its key to the daemon (a token); the record's proof is the
    daemon's attestation, so other peers see the write as the client's **via** this
    peer (docs/access.md), never as the client's own.

    Attributes
    ----------
    client : PublicKey
        The client the write is for.
    """

    client: PublicKey


Writer = Identity | Attested
"""Who a local write is by: an identity whose private key this peer holds, or an attestation."""

WriteAs = Identity | Attested | PublicKey | str | None
"""What ``identity=`` of a write accepts (see :func:`resolve_writer`)."""


def resolve_writer(identity: object, own: Identity) -> Writer:
    """The writer of a local write given as ``identity=``; refuses impersonation.

    None, the peer's own public key (or its string) and ``own`` write as ``own``; an
    :class:`Identity` (its private key held here) writes as itself; :class:`Attested`
    as the attested client. A bare public key of anyone else raises
    :class:`~threadkit.errors.PermissionDenied`: the peer cannot prove that identity wrote.
    """
    if identity is None:
        return own
    if isinstance(identity, Identity):
        return identity
    if isinstance(identity, Attested):
        return own if identity.client == own.public else identity
    if isinstance(identity, PublicKey | str):
        if str(identity) == str(own.public):
            return own
        raise PermissionDenied(
            f"cannot write as {str(identity)[:24]}…: a public key is not a proof; pass the "
            "tk.Identity whose private key this peer holds (writes are signed for it)"
        )
    raise InvalidInput(f"identity must be a tk.Identity, got {type(identity).__name__}")


def reader_of(identity: object, own: Identity) -> str:
    """The reader a read filter runs for, given ``identity=`` of a read; refuses impersonation.

    None, the peer's own public key (or its string) and ``own`` read as ``own``; an
    :class:`Identity` (its private key held here) as itself; :class:`Attested` as the
    client a daemon authenticated (its token). A bare public key of anyone else raises
    :class:`~threadkit.errors.PermissionDenied`, as for writes: read filters run for an
    authenticated identity only.

    Examples
    --------
    >>> me, alice = Identity.generate(), Identity.generate()
    >>> reader_of(alice, me) == str(alice.public)
    True
    >>> reader_of(str(alice.public), me)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    threadkit.errors.PermissionDenied: cannot read as ...
    """
    if identity is None:
        return str(own.public)
    if isinstance(identity, Identity):
        return str(identity.public)  # never the private key's string
    if isinstance(identity, Attested):
        return str(identity.client)
    if isinstance(identity, PublicKey | str):
        if str(identity) == str(own.public):
            return str(own.public)
        raise PermissionDenied(
            f"cannot read as {str(identity)[:24]}…: a public key is not a proof; pass the "
            "tk.Identity whose private key this peer holds (read filters run for an "
            "authenticated reader)"
        )
    raise InvalidInput(f"identity must be a tk.Identity, got {type(identity).__name__}")


def author_of(writer: Writer) -> PublicKey:
    """The key a record by ``writer`` names as its writer (``pubKey``)."""
    return writer.client if isinstance(writer, Attested) else writer.public


class Gate:
    """Writer proofs and member verdicts of one database.

    Parameters
    ----------
    db : Database
        The database.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._delegations: dict[PublicKey, dict[str, Any]] = {}
        self._held: dict[tuple[str, int], tuple[Record, Body | None, members.Entry]] = {}
        self._unsaved: list[members.Entry] = []
        """Entries noted but not yet stored: :meth:`settle` stores each once."""
        self._base: tuple[bytes | None, list[members.Entry]] | None = None
        """The membership entries, by the membership mark they were read under."""
        self._touched: StoreTxn | None = None
        """The transaction a membership entry was last admitted or noted in."""
        self._opened: dict[bytes, SymmetricKey | None] = {}
        self._ring: tuple[tuple[tuple[str, int], ...], epochs.Keyring] | None = None
        """The last keyring, by the membership entries it was made from (a pure function)."""
        self._sealing: tuple[int, bytes, ThreadKey] = (0, b"", db.key)

    def has_members(self, txn: StoreTxn) -> bool:
        """True once the database has a genesis: the members' rules then judge every record."""
        return any(e.kind == "genesis" for e in self.membership(txn))

    def membership(self, txn: StoreTxn) -> list[members.Entry]:
        """The membership entries (genesis, grants, revokes, modes) as ``txn`` sees them.

        What every verdict depends on besides the judged record itself (docs/access.md,
        "What a verdict depends on"). Kept in memory by the membership mark
        (:func:`.members.membership_mark`), so only a change of membership, in this
        transaction or another, reads the table again. No mark yet (a store written
        before marks) names the entries read without one: every membership entry written
        since came with a mark (:meth:`_put`).
        """
        tables, prefix = self.db._tables, self.db.prefix
        mark = members.membership_mark(txn, tables.applied, prefix)
        cached = self._base
        if cached is not None and cached[0] == mark:
            return cached[1]
        entries = members.iter_entries(txn, tables.access, prefix)
        base = [e for e in entries if e.kind in epochs.MEMBERSHIP]
        self._base = (mark, base)
        return base

    # ------------------------------------------------------------------ keys

    def ring(
        self,
        txn: StoreTxn,
        entries: list[members.Entry] | None = None,
        verdicts: Mapping[tuple[str, int], str] | None = None,
    ) -> epochs.Keyring:
        """The read keys this peer's identity holds for the database (:mod:`.epochs`).

        A function of the membership entries alone (their verdicts do not depend on the
        other entries), so it is kept, keyed by their positions, until they change.
        """
        if entries is None:
            entries = self.membership(txn)
            if not any(e.kind == "genesis" for e in entries):
                return epochs.Keyring(self.db.key)
        key = tuple(sorted((e.log, e.counter) for e in entries if e.kind in epochs.MEMBERSHIP))
        cached = self._ring
        if cached is not None and cached[0] == key:
            return cached[1]
        db = self.db
        ring = epochs.keyring(
            entries, members.verdicts(entries) if verdicts is None else verdicts,
            me=db.identity, thread_key=db.key, thread_id=db.id, opened=self._opened,
        )  # fmt: skip
        self._ring = (key, ring)
        return ring

    def write_key(self) -> tuple[ThreadKey, int]:
        """The thread key (its read key: the newest epoch's) and epoch of the record
        :meth:`admit` just judged."""
        epoch, _, key = self._sealing
        return key, epoch

    def read_body(self, record: Record) -> bytes:
        """A record's body read with the key of its epoch; DecryptionError when not held."""
        if record.epoch == 0:
            return record.read_body(self.db.key)
        with self.db._repo.transaction() as txn:
            return self.ring(txn).read(record)[0]

    # ---------------------------------------------------------------- writing

    def proof(
        self,
        writer: Writer,
        events: list[RecordEvent],
        member: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The writer proof node of a record holding ``events`` (or the membership event
        ``member``) by ``writer``."""
        db = self.db
        if isinstance(writer, Attested):
            return attest(
                db.identity,
                client=writer.client,
                thread_id=db.id,
                log=db.log_key.public,
                content=members.attested_content(events, member),
            ).to_node()
        node = self._delegations.get(writer.public)
        if node is None:
            node = delegate(writer, thread_id=db.id, log=db.log_key.public).to_node()
            self._delegations[writer.public] = node
        return node

    def _put(self, txn: StoreWriteTxn, entry: members.Entry) -> None:
        """Store an entry; a membership entry gets a new membership mark with it."""
        members.put_entry(txn, self.db._tables.access, self.db.prefix, entry)
        if entry.kind in epochs.MEMBERSHIP:
            members.new_mark(txn, self.db._tables.applied, self.db.prefix)

    def heads(self, txn: StoreTxn) -> dict[str, int]:
        """Per log, the highest record counter applied here: what a membership event saw."""
        out: dict[str, int] = {}
        for info in list_logs(txn, self.db._repo.tables, self.db.id):
            key = dockeys.applied_key(self.db.prefix, peer_id_bytes(info.id))
            raw = txn.get(key, db=self.db._tables.applied)
            if raw:
                out[info.id] = int.from_bytes(raw, "big")
        return out

    def check_local(
        self,
        txn: StoreTxn,
        counter: int,
        kind: str,
        writer: Writer,
        stamp: int,
        fields: Mapping[str, Any],
        base: list[members.Entry] | None = None,
    ) -> members.Entry:
        """The entry of a local record at ``counter`` of this peer's log; PermissionDenied
        when the members' rules reject it (nothing is written then). ``base`` is
        :meth:`membership` when the caller has read it in ``txn`` already."""
        author = author_of(writer)
        more = dict(fields)
        if isinstance(writer, Attested):
            more["via"] = str(self.db.identity.public)
        entry = members.Entry(self.db.log_id, counter, kind, stamp, str(author), more, ok=True)
        base = self.membership(txn) if base is None else base
        if kind in ("write", "config") and not any(e.kind == "genesis" for e in base):
            return entry  # an open database without members: no fold to run
        # a verdict depends on the membership entries and the record alone (docs/access.md)
        reason = members.verdicts([*base, entry]).get((entry.log, counter), "")
        if reason:
            raise PermissionDenied(reason)
        return entry

    def admit(
        self,
        txn: StoreWriteTxn,
        kind: str,
        writer: Writer,
        stamp: Timestamp,
        *,
        head: Head | None = None,
        **fields: Any,
    ) -> None:
        """Judge this peer's next record by the members' rules and keep its entry (in
        ``txn``: gone with it if the commit fails); PermissionDenied when refused.
        ``head`` is this peer's log head when the caller has read it in ``txn``."""
        db = self.db
        if head is None:
            head = read_head(txn, db._repo.tables, db.id, db.log_id)
        self._sealing = (0, b"", db.key)
        base = self.membership(txn)
        if kind in ("write", "config") and any(e.kind == "genesis" for e in base):
            self._sealing = self.ring(txn).newest()
            if self._sealing[0]:
                fields = {**fields, "sealed": [self._sealing[0], self._sealing[1]]}
        stamp_int = members.stamp_int(stamp)
        entry = self.check_local(txn, head.counter + 1, kind, writer, stamp_int, fields, base)
        self._put(txn, entry)
        if kind in epochs.MEMBERSHIP:
            self._touched = txn

    # -------------------------------------------------------------- receiving

    def note(self, txn: StoreWriteTxn, log_id: str, counter: int, record: Record) -> None:
        """Make the entry of a received record (its events are applied by :meth:`settle`)."""
        entry, body = self._entry(txn, log_id, counter, record)
        if entry.kind in epochs.MEMBERSHIP:
            self._put(txn, entry)  # with a new membership mark, which settle reads
        else:
            self._unsaved.append(entry)  # stored by settle, once, with its verdict
        if body is not None and body.snapshot is not None and entry.kind == "write":
            snapshots.note(txn, self.db, log_id, counter, record, body)
        self._held[(log_id, counter)] = (record, body, entry)
        if entry.kind in epochs.MEMBERSHIP:
            self._touched = txn

    def _entry(
        self, txn: StoreTxn, log_id: str, counter: int, record: Record
    ) -> tuple[members.Entry, Body | None]:
        """The entry of a record and its body (None when unreadable or locked)."""
        body: Body | None = None
        sealed = (0, b"")
        try:
            epoch = record.epoch
            if epoch == 0:
                raw = record.read_body(self.db.key)
            else:
                try:
                    raw, commit = self.ring(txn).read(record)
                except DecryptionError:
                    return members.locked(log_id, counter, record.author, epoch), None
                sealed = (epoch, commit)
            body = decode_record_body(raw)
        except (RecordError, MalformedRecord) as exc:
            # signed by the log's owner, so it stays in the log; every peer skips it alike
            log.warning("record %s has an unreadable body, skipped: %s", record.cid.hex(), exc)
            body = None
        log_key = public_key_from_peer_id(log_id)
        entry = members.entry_for(
            body, thread_id=self.db.id, log=log_key, counter=counter, author=record.author,
            sealed=sealed,
        )  # fmt: skip
        return entry, body

    def settle(self, txn: StoreWriteTxn) -> list[Change]:
        """Judge the entries; apply what is newly accepted, rebuild when an applied one is not.

        When no membership entry came in this transaction, only the records it noted
        need a verdict (:meth:`_settle_held`); else every entry is judged again.
        """
        try:
            table, prefix = self.db._tables.access, self.db.prefix
            base = self.membership(txn)
            if not any(e.kind == "genesis" for e in base):
                return self._settle_open(txn)
            for entry in self._unsaved:
                self._put(txn, entry)
            self._unsaved.clear()
            if self._touched is not txn:
                held = self._settle_held(txn, base)
                if held is not None:
                    return held
            entries = list(members.iter_entries(txn, table, prefix))
            verdicts = members.verdicts(entries)
            ring = self.ring(txn, entries, verdicts)
            if self._rekey(txn, entries, ring):
                entries = list(members.iter_entries(txn, table, prefix))
                verdicts = members.verdicts(entries)
            off = [e for e in entries if e.ok and verdicts.get((e.log, e.counter))]
            on = [e for e in entries if not e.ok and not verdicts.get((e.log, e.counter))]
            for e in [*off, *on]:
                self._put(txn, _with_ok(e, not e.ok))
            start = basestate.heads(txn, self.db)
            if start:  # bootstrapped: the records before the snapshot are not held
                early = basestate.before_base(start, [*off, *on])
                basestate.note_stale(txn, self.db, [e for e in early if e.kind not in MEMBERSHIP])
            if off:
                return self._rebuild(
                    txn, [e for e in entries if not verdicts.get((e.log, e.counter))], ring
                )
            changes: list[Change] = []
            for e in on:
                changes.extend(self._apply(txn, e, ring))
            return changes
        finally:
            self._held.clear()
            self._unsaved.clear()
            self._touched = None

    def _settle_held(self, txn: StoreWriteTxn, base: list[members.Entry]) -> list[Change] | None:
        """Judge and apply the records noted in this transaction against the membership
        entries alone; None when a locked one opened (then every entry is judged again).

        The membership is that of the last settle (no membership entry came since), which
        left every other entry's ``ok`` equal to its verdict, and its key ring unchanged.
        """
        held = [entry for _, (_, _, entry) in sorted(self._held.items())]
        ring = self.ring(txn, base)
        if self._rekey(txn, [e for e in held if e.kind == "locked"], ring):
            return None
        verdicts = members.verdicts([*base, *held])
        if any(e.ok for e in held):
            return None  # noted over an applied entry (never, as entries are noted): judge all
        changes: list[Change] = []
        for e in held:
            if not verdicts.get((e.log, e.counter)):
                self._put(txn, _with_ok(e, True))
                changes.extend(self._apply(txn, e, ring))
        return changes

    def _rekey(
        self,
        txn: StoreWriteTxn,
        entries: list[members.Entry],
        ring: epochs.Keyring,
    ) -> bool:
        """Open locked records whose key is now held, lock those whose key no longer counts;
        True when an entry changed."""
        changed = False
        for e in entries:
            sealed = e.fields.get("sealed")
            if sealed is None:
                continue
            if e.kind == "locked" and sealed[0] in ring.keys:
                record = self._stored(txn, e.log, e.counter)
                if record is None:
                    continue
                entry, body = self._entry(txn, e.log, e.counter, record)
                if entry.kind == "locked":
                    continue
                self._held[(e.log, e.counter)] = (record, body, entry)
            elif e.kind != "locked" and not ring.holds(sealed[0], sealed[1]):
                entry = members.locked(e.log, e.counter, PublicKey.from_string(e.author), sealed[0])
                entry = _with_ok(entry, e.ok)  # an applied one is dropped by the rebuild
            else:
                continue
            self._put(txn, entry)
            changed = True
        return changed

    def _stored(self, txn: StoreTxn, log_id: str, counter: int) -> Record | None:
        """A record of the log; None when not held (before the log's start)."""
        stored = reads.read_log(txn, self.db._repo.tables, self.db.id, log_id, counter - 1, 1)
        if not stored or stored[0].counter != counter:
            return None
        return open_record(
            stored[0].blocks,
            service_key=self.db.key,
            log_key=public_key_from_peer_id(log_id),
            cid=stored[0].cid,
            verify_signature=False,
        )

    def _settle_open(self, txn: StoreWriteTxn) -> list[Change]:
        """Without a genesis each record's verdict is its own: no fold over the others.

        Each entry noted is stored here, once, with the verdict it is applied with.
        """
        changes: list[Change] = []
        for entry in self._unsaved:
            if members.verdicts([entry]).get((entry.log, entry.counter)):
                self._put(txn, entry)
        for position, (_, _, entry) in sorted(self._held.items()):
            if not members.verdicts([entry]).get(position):
                self._put(txn, _with_ok(entry, True))
                changes.extend(self._apply(txn, entry, epochs.Keyring(self.db.key)))
        return changes

    def _apply(
        self, txn: StoreWriteTxn, entry: members.Entry, ring: epochs.Keyring
    ) -> list[Change]:
        held = self._held.get((entry.log, entry.counter))
        if held is None:
            record = self._stored(txn, entry.log, entry.counter)
            if record is None:  # before the snapshot a bootstrapped database started from
                return []
            try:
                body: Body | None = decode_record_body(ring.read(record)[0])
            except (RecordError, MalformedRecord):
                body = None
        else:
            record, body, _ = held
        if body is None or not body.events:
            return []
        return self.db._apply_events(txn, peer_id_bytes(entry.log), record, body.events)

    def _rebuild(
        self, txn: StoreWriteTxn, accepted: list[members.Entry], ring: epochs.Keyring
    ) -> list[Change]:
        """Drop the document state and apply the accepted records again."""
        log.info("%s: a record already applied is now rejected; rebuilding", self.db.name)
        engine = self.db.engine
        before = _documents(engine, txn)
        engine.reset(txn)
        basestate.restore(txn, self.db)  # a bootstrapped database: its snapshot's state
        for entry in sorted(accepted, key=lambda e: (e.log, e.counter)):
            self._apply(txn, entry, ring)
        after = _documents(engine, txn)
        # what listeners see: the difference, not the replay
        return [
            change_between(coll, instance_id, before.get((coll, instance_id)), doc)
            for (coll, instance_id), doc in {**dict.fromkeys(before), **after}.items()
            if before.get((coll, instance_id)) != doc
        ]

    # ---------------------------------------------------------------- reading

    def fold(self, txn: StoreTxn) -> tuple[list[members.Entry], dict[tuple[str, int], str]]:
        """Every entry and its verdict ("" when accepted)."""
        entries = list(members.iter_entries(txn, self.db._tables.access, self.db.prefix))
        return entries, members.verdicts(entries)


def _documents(engine: Engine, txn: StoreTxn) -> dict[tuple[str, str], dict[str, Any]]:
    """Every live document of the database, by collection and id."""
    staged = engine.staged_for(txn) or {}
    names = {n for n, h in {**engine.colls, **staged}.items() if h.current is not None}
    return {
        (name, doc["_id"]): doc for name in sorted(names) for doc in engine.scan_docs(txn, name)
    }


def _with_ok(entry: members.Entry, ok: bool) -> members.Entry:
    return members.Entry(
        entry.log, entry.counter, entry.kind, entry.stamp, entry.author, entry.fields, ok
    )
