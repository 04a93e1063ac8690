"""A database: one thread, its collections, and the commit path (docs/design.md §6, §7).

Local commit, inside one LMDB write transaction: build the transaction's events
(HLC stamps, merge patches against what the writer saw), make and sign ONE
record holding them, apply the events through the engine with every check
(schema, validator, unique indexes) — a failure aborts everything, so nothing
is written and nothing is sent — then append the record to this peer's log.
Only after the commit are listeners told and the record handed to the network.

Received records come in through :meth:`Database.apply_records` (the seam to
the network layer, docs/seam.md): already checked with ``open_record``, they
are chained into their log and their events applied, in one transaction.
"""

from __future__ import annotations

import contextlib
import html
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import cbor2

from threadkit.core.clock import HLC, Timestamp, order_key
from threadkit.core.identity import Identity, peer_id_bytes
from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.core.records import Record, create_record
from threadkit.db import dockeys, migrations, received
from threadkit.db.archive import export_db
from threadkit.db.bulkcheck import new_instances
from threadkit.db.collection import Collection
from threadkit.db.config import CollectionConfig, Index
from threadkit.db.docpath import get_path
from threadkit.db.doctables import DocTables
from threadkit.db.engine import Change, Engine
from threadkit.db.events import Action, RecordEvent, encode_body, encode_creates
from threadkit.db.gate import Attested, Gate, WriteAs, Writer, author_of, resolve_writer
from threadkit.db.judging import threaddb_event
from threadkit.db.lifecycle import Lifecycle
from threadkit.db.listen import Event as ListenEvent
from threadkit.db.listen import Feed, Listeners
from threadkit.db.membership import Membership
from threadkit.db.names import check_name
from threadkit.db.pending import Pending, event_for, next_mod
from threadkit.db.readside import Timeline
from threadkit.db.scriptcalls import Deferred, ScriptCalls
from threadkit.db.writeop import WriteOp
from threadkit.errors import (
    CollectionExists,
    InvalidDocument,
    InvalidIndex,
    InvalidInput,
    NetworkError,
    ScriptError,
    UniqueViolation,
    WriteRejected,
)
from threadkit.store import chain
from threadkit.store.logs import read_head
from threadkit.store.models import AcceptResult, Head
from threadkit.store.txntypes import StoreTxn, StoreWriteTxn

if TYPE_CHECKING:
    from threadkit.db.sharing import Sharing
    from threadkit.db.sync import SyncSummary
    from threadkit.store.repo import Repo

__all__ = ["DBInfo", "Database"]

log = logging.getLogger("threadkit.db")

RecordCallback = Callable[["Database", Record], None]
T = TypeVar("T")

SCRIPT_ROUNDS = 8
"""Rounds a write may take whose script calls run outside the write lock (see
:mod:`.scriptcalls`); the last round runs the calls it still misses in place."""


class _Again(Exception):
    """The round noted script calls: abandon its transaction, run them, go again."""


@dataclass(frozen=True)
class DBInfo:
    """What another peer needs to join a database: its name, addresses and key."""

    name: str
    addrs: list[str]
    key: ThreadKey


class Database(Membership, Lifecycle):
    """A database (a thread) in a peer's repo. Get one from ``peer.new_db`` / ``peer.get_db``.

    The store's class: ``tk.Database`` is this class with the notebook views
    attached (``threadkit.views``).

    Attributes
    ----------
    id : ThreadID
        The thread id.
    name : str
        The database's name.
    key : ThreadKey
        The thread key (service and read key).
    """

    collection_class: ClassVar[type[Collection]] = Collection
    """The class of its collections (the composed one, with views, in ``tk.Database``)."""

    def __init__(
        self,
        repo: Repo,
        tables: DocTables,
        thread_id: ThreadID,
        name: str,
        key: ThreadKey,
        prefix: bytes,
        log_key: Identity,
        identity: Identity,
        hlc: HLC,
        sharing: Sharing | None = None,
    ) -> None:
        self._repo = repo
        self._tables = tables
        self.id = thread_id
        self.name = name
        self.key = key
        self.prefix = prefix
        self.log_key = log_key
        self.log_id = log_key.public.peer_id
        self._log_bytes = peer_id_bytes(self.log_id)
        self.identity = identity
        self.hlc = hlc
        self.engine = Engine(tables, prefix)
        self.listeners = Listeners()
        self._write_lock = threading.RLock()
        self._record_callbacks: list[RecordCallback] = []
        self._collections: dict[str, Collection] = {}
        self.closed = False
        self._sharing = sharing
        self.gate = Gate(self)
        with repo.transaction() as txn:
            self.engine.load(txn)
        received.catch_up(self)

    # ------------------------------------------------------------ collections

    def new_collection(
        self,
        name: str,
        schema: dict[str, Any] | None = None,
        indexes: Iterable[Index | str | dict[str, Any]] = (),
        write_validator: str | None = None,
        read_filter: str | None = None,
        identity: WriteAs = None,
    ) -> Collection:
        """Create a collection (an event in the thread, so it replicates).

        Parameters
        ----------
        name : str
            ThreadDB's name rule: letters, digits and single hyphens.
        schema : dict, optional
            JSON Schema; ``_id`` (string) is added at the root when missing.
        indexes : iterable of Index, str or {path, unique}
            Dot paths to string, number or boolean fields.
        write_validator, read_filter : str, optional
            JavaScript bodies of ``_validate(writer, event, instance)`` and
            ``_filter(reader, instance)``.
        identity : Identity, optional
            Who changes the config, as for a write (:func:`.gate.resolve_writer`).

        Examples
        --------
        >>> people = db.new_collection(  # doctest: +SKIP
        ...     "Persons", indexes=[tk.Index("name", unique=True)]
        ... )
        """
        config = CollectionConfig.build(name, schema, indexes, write_validator, read_filter)

        def check(txn: StoreTxn) -> None:
            if name in self.engine.collection_names():
                raise CollectionExists(f"collection {name!r} already exists in {self.name!r}")

        self._commit_collection_event(Action.NEW_COLLECTION, config, check=check, who=identity)
        return self.get_collection(name)

    def update_collection(
        self,
        name: str,
        schema: dict[str, Any] | None = None,
        indexes: Iterable[Index | str | dict[str, Any]] = (),
        write_validator: str | None = None,
        read_filter: str | None = None,
        identity: WriteAs = None,
    ) -> Collection:
        """Replace a collection's config; new indexes are backfilled, dropped ones removed.

        A unique index over values that existing documents share fails with
        UniqueViolation and changes nothing. Existing documents are not
        re-validated against a new schema: it applies to new writes.
        """
        config = CollectionConfig.build(name, schema, indexes, write_validator, read_filter)

        def check(txn: StoreTxn) -> None:
            current = self.engine.config(name)
            added = [i.path for i in config.indexes if i not in current.indexes]
            if added:
                self._check_indexable(txn, name, added)
            for index in config.indexes:
                if index.unique and index not in current.indexes:
                    dupes = self.engine.unique_duplicates(txn, name, index.path)
                    if dupes:
                        raise UniqueViolation(
                            f"cannot add unique index {index.path!r} to {name!r}: "
                            f"values shared by several instances, e.g. {dupes[0]!r}"
                        )

        self._commit_collection_event(Action.UPDATE_COLLECTION, config, check=check, who=identity)
        return self.get_collection(name)

    def _check_indexable(self, txn: StoreTxn, name: str, paths: list[str]) -> None:
        """Raise InvalidIndex when a document holds text too long for an entry of a new index."""
        coll = dockeys.coll_key(self.prefix, name)
        for doc in self.engine.scan_docs(txn, name):
            for path in paths:
                value = get_path(doc, path)
                if (
                    type(value) is str
                    and len(value) > 12
                    and not dockeys.index_key_fits(coll, path, value, doc["_id"])
                ):
                    raise InvalidIndex(
                        f"cannot index {path!r} of {name!r}: instance {doc['_id']!r} holds "
                        f"text too long for an index entry ({len(value.encode())} bytes)"
                    )

    def migrate(
        self,
        collection: str,
        transform: Any,
        schema: Any = None,
        indexes: Any = None,
        identity: WriteAs = None,
    ) -> None:
        """Migrate a collection's documents and config in one event (:mod:`.migrations`)."""
        migrations.migrate(self, collection, transform, schema, indexes, identity)

    def delete_collection(self, name: str, identity: WriteAs = None) -> None:
        """Delete a collection and its documents (an event: it replicates)."""
        check = lambda txn: self.engine.config(name)  # noqa: E731
        self._commit_collection_event(
            Action.DELETE_COLLECTION, None, name, check=check, who=identity
        )
        self._collections.pop(name, None)

    def get_collection(self, name: str) -> Collection:
        """The collection called ``name``; CollectionNotFound when absent."""
        self.engine.config(name)
        coll = self._collections.get(name)
        if coll is None:
            coll = self._collections[name] = self.collection_class(self, name)
        return coll

    def __getitem__(self, name: str) -> Collection:
        return self.get_collection(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.engine.collection_names()

    def list_collections(self) -> list[Collection]:
        """Every collection, by name."""
        return [self.get_collection(n) for n in self.engine.collection_names()]

    def collection_info(self, name: str) -> dict[str, Any]:
        """A collection's config as a dict (name, schema, indexes, scripts)."""
        return self.engine.config(name).info()

    # ----------------------------------------------------------------- listen

    def listen(
        self,
        collection: str | None = None,
        instance_id: str | None = None,
        actions: Iterable[Action | str] | Action | str | None = None,
        maxsize: int = 10_000,
    ) -> Feed:
        """A feed of changes, local and received alike; filters are ANDed, None = all.

        ``collection`` may name a collection that does not exist yet — one still on its
        way from another peer: the feed then sees its documents as they arrive (e.g.
        a join's initial sync, ``peer.new_db_from_addr(..., pull=False)``).

        Raises
        ------
        InvalidName
            ``collection`` is not a valid collection name (ThreadDB's rule).

        Examples
        --------
        >>> feed = db.listen(collection="Persons", actions=["create"])  # doctest: +SKIP
        >>> event = feed.get(timeout=5)  # doctest: +SKIP
        """
        if collection is not None:
            check_name(collection)
        return self.listeners.subscribe(collection, instance_id, actions, maxsize)

    def sync(self, timeout: float | None = None) -> SyncSummary:
        """Pull from and push to every peer of this database; return when heads are exchanged.

        Each known peer (replicators too) is asked for what it has that this peer lacks,
        and sent what it lacks, at once; the call returns when every peer is done.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait for all peers (default: three times the peer's ``timeout``).

        Returns
        -------
        SyncSummary
            Records pulled and pushed per peer (``summary.peers``; ``.pulled``,
            ``.pushed`` in all). No peers: an empty summary.

        Raises
        ------
        SyncTimeout
            A ``tk.errors.Timeout``: some peers did not answer in time or could not be
            reached; ``err.unanswered`` names them, ``err.summary`` holds the others'.
        InvalidInput
            ``timeout`` is not a positive number.
        NetworkError
            The peer runs without a network (``network=False``).

        Examples
        --------
        >>> db.sync(timeout=10)  # doctest: +SKIP
        SyncSummary(1 peer: 12 records pulled, 0 pushed)
        """
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout < float("inf")
        ):
            raise InvalidInput(f"timeout must be a number of seconds > 0, got {timeout!r}")
        if self._sharing is None:
            raise NetworkError(
                f"database {self.name!r} cannot sync: its peer runs without a network"
            )
        return self._sharing.sync(self, timeout)

    def lost_writes(self, collection: str | None = None) -> list[dict[str, Any]]:
        """Writes that lost: overwritten by a concurrent write, or rejected where they stood.

        Each entry: ``collection``, ``instance_id``, ``kind`` ("overwritten" or
        "rejected"), ``loser`` and ``winner`` (order keys: stamp ‖ log id),
        ``path`` (overwritten field) or ``reason`` (rejection). Identical on every
        peer that holds the same records.
        """
        with self._repo.transaction() as txn:
            return self.engine.lost_writes(txn, collection)

    # ------------------------------------------------------------- the read side

    @contextlib.contextmanager
    def read_txn(self) -> Iterator[StoreTxn]:
        """A read-only LMDB transaction: one consistent snapshot of the store (for readers
        in the package, such as the frame builder; the documents API needs none)."""
        with self._repo.transaction() as txn:
            yield txn

    @property
    def timeline(self) -> Timeline:
        """The read side of the database's history: events, records, logs, heads, replay."""
        return Timeline(self)

    # ------------------------------------------------------------------ info

    def info(self) -> DBInfo:
        """Name, addresses and key, to share with another peer (starts the network if needed)."""
        addrs = self._sharing.addrs(self, start=True) if self._sharing is not None else []
        return DBInfo(self.name, addrs, self.key)

    def __repr__(self) -> str:
        return f"Database({self.name!r}, id={self.id})"

    def _repr_html_(self) -> str:
        """Name, id, collections with counts, and its address (for notebooks).

        A repr has no side effects: it shows the address only when the network
        already runs, and never starts it (as :meth:`info` does).
        """
        items = "".join(
            f"<li>{html.escape(c.name)}: {c.count()} documents</li>"
            for c in self.list_collections()
        )
        addrs = self._sharing.addrs(self, start=False) if self._sharing is not None else []
        where = html.escape(addrs[0]) if addrs else "not shared yet (the peer is offline)"
        return (
            f"<div><b>Database {html.escape(self.name)}</b><br><code>{self.id}</code>"
            f"<br>address: <code>{where}</code><ul>{items or '<li>no collections</li>'}</ul></div>"
        )

    # -------------------------------------------------------- the local write

    def commit(self, ops: list[WriteOp], author: object = None) -> Record | None:
        """Commit a transaction's writes as one record; all or nothing.

        ``author`` is the writer (:func:`.gate.resolve_writer`): None for this peer's
        identity, a ``tk.Identity`` whose private key is held here, or an
        :class:`.gate.Attested` client; a bare public key of another identity raises
        PermissionDenied. Returns the record, or None when there was nothing to write.
        Write validators and read filters run outside the write lock (see :meth:`_rounds`);
        the events are built once and kept across rounds while nothing they were built on
        changed.
        """
        writer = resolve_writer(author, self.identity)
        if not ops:
            return None
        signer = author_of(writer)
        built: list[Pending] = []

        def attempt(txn: StoreWriteTxn) -> tuple[Record, list[Change]]:
            head = read_head(txn, self._repo.tables, self.id, self.log_id)  # read once
            if self._creates_only(ops) and self._new_instances(txn, ops):
                record, changes = self._commit_creates(txn, ops, writer, head)
            else:
                if not built or not self._still_current(txn, built[0]):
                    built[:] = [self._build_events(txn, ops)]
                self._prejudge(built[0], str(signer))
                record, changes = self._commit_ops(txn, ops, built[0], writer, head)
            counter = chain.append(txn, self._repo.tables, self.id, self.log_id, [record], head)
            self._set_applied(txn, self._log_bytes, counter)
            return record, changes

        record, changes = self._rounds(attempt)
        self._after_commit(changes, record)
        return record

    def _rounds(self, attempt: Callable[[Any], T], calls: ScriptCalls | None = None) -> T:
        """Run ``attempt(txn)`` in one LMDB write transaction under the write lock, with
        its script calls judged outside the lock; the result of the round that commits.

        A round that meets script calls not seen yet is abandoned (nothing written, and
        the collection configs it staged dropped, :meth:`Engine.write`); the calls run in
        the worker processes with no lock held, and the next round replays their reports
        (:mod:`.scriptcalls`).
        Up to :data:`SCRIPT_ROUNDS` rounds; the last runs what it still misses in place.
        """
        calls = ScriptCalls() if calls is None else calls
        rounds = 0
        while True:
            rounds += 1
            calls.defer = rounds < SCRIPT_ROUNDS
            with self._write_lock:
                self.engine.scripts = calls
                try:
                    # an abandoned round raises inside engine.write: its staged configs go too
                    with self.engine.write(self._repo) as txn:
                        try:
                            result = attempt(txn)
                        except Deferred:
                            raise _Again from None
                        except Exception:
                            if calls.missing:  # it may follow from a verdict guessed wrong
                                raise _Again from None
                            raise
                        if calls.missing:
                            raise _Again
                    return result
                except _Again:
                    pass
                finally:
                    self.engine.scripts = None
            calls.run_missing()

    def _build_events(self, txn: StoreTxn, ops: list[WriteOp]) -> Pending:
        """The events of a transaction's writes, stamped now, and what they were built on."""
        head = read_head(txn, self._repo.tables, self.id, self.log_id)
        pending = Pending(head=head.cid)
        for op in ops:
            ident = (op.collection, op.instance_id)
            if ident not in pending.state and ident not in pending.seen and not op.fresh:
                pending.seen[ident] = self.engine.last_key(txn, op.collection, op.instance_id)
            if op.collection not in pending.configs:
                history = self.engine.colls.get(op.collection)
                pending.configs[op.collection] = history.current if history else None
            pending.events.append(event_for(self, txn, pending, op))
        return pending

    def _prejudge(self, pending: Pending, author: str) -> None:
        """Note the write validator call of each event, so that one batch judges them all
        before the engine applies them (the engine's own calls then replay the reports;
        a call it makes that was not foreseen here costs one more round)."""
        calls = self.engine.scripts
        if calls is None or pending.prejudged:
            return
        pending.prejudged = True
        for event, before in zip(pending.events, pending.befores, strict=True):
            config = pending.configs.get(event.collection)
            validator = config.validator if config else None
            if validator is None or (event.action is Action.DELETE and before is None):
                continue
            key = order_key(event.stamp, self._log_bytes)
            view = threaddb_event(event, event.collection, event.instance_id, key)
            # a verdict already known is raised by the engine, in order, when it gets there
            with contextlib.suppress(ScriptError, WriteRejected, InvalidDocument):
                calls.validate(validator, author, view, before)
        if calls.missing:
            raise _Again

    def _still_current(self, txn: StoreTxn, pending: Pending) -> bool:
        """True when events built earlier can be committed now: no record was added to
        this peer's log since (their stamps still follow its head), and no instance or
        collection they were built on changed."""
        if read_head(txn, self._repo.tables, self.id, self.log_id).cid != pending.head:
            return False
        for name, config in pending.configs.items():
            history = self.engine.colls.get(name)
            if (history.current if history else None) is not config:
                return False
        return all(
            self.engine.last_key(txn, name, instance_id) == key
            for (name, instance_id), key in pending.seen.items()
        )

    def _commit_ops(
        self, txn: StoreWriteTxn, ops: list[WriteOp], pending: Pending, writer: Writer, head: Head
    ) -> tuple[Record, list[Change]]:
        """Any transaction: an event per write, each judged and applied where it stands."""
        author = author_of(writer)
        record = self._sign(txn, pending.events, writer, head)
        fresh = frozenset(op.instance_id for op in ops if op.fresh and self._still_checked(op))
        changes = self.engine.apply_local(
            txn, pending.events, self._log_bytes, str(author), record.cid, fresh=fresh
        )
        return record, changes

    def _commit_creates(
        self, txn: StoreWriteTxn, ops: list[WriteOp], writer: Writer, head: Head
    ) -> tuple[Record, list[Change]]:
        """New documents, never seen before (the bulk path, see :meth:`_creates_only`).

        The record and the stored state are those :meth:`_commit_ops` would make from the
        same stamps; each document is encoded once, and nothing is looked up.
        """
        name = ops[0].collection
        creates = [
            (stamp, op.instance_id, {**(op.doc or {}), "_mod": next_mod(stamp.wall, None)})
            for op, stamp in zip(ops, self.hlc.now_many(len(ops)), strict=True)
        ]
        # an attestation names the events' digest; a delegation (the usual case) does not
        attested = isinstance(writer, Attested)
        events = [RecordEvent(t, Action.CREATE, name, i, d) for t, i, d in creates if attested]
        self.gate.admit(txn, "write", writer, creates[0][0], head=head)
        body, encoded = encode_creates(name, creates, self.gate.proof(writer, events))
        author = author_of(writer)
        key, epoch = self.gate.write_key()
        record = create_record(
            body, log_key=self.log_key, key=key, prev=head.cid, author=author, epoch=epoch
        )
        changes = self.engine.apply_creates(
            txn, name, creates, encoded, self._log_bytes, str(author), record.cid
        )
        return record, changes

    def _creates_only(self, ops: list[WriteOp]) -> bool:
        """True when every write creates a document, all in one collection with no write
        validator, each document checked against the collection's current schema and
        holding its ``_id`` first (unique values are checked in batch by the engine)."""
        config = ops[0].checked
        history = self.engine.colls.get(ops[0].collection)
        if config is None or config.validator is not None or (history and history.transforms):
            return False  # (after a migration, events carry what they saw: one by one)
        if not self._still_checked(ops[0]):
            return False
        return all(
            op.action is Action.CREATE
            and op.checked is config
            and op.doc is not None
            and next(iter(op.doc), None) == "_id"
            and op.doc["_id"] == op.instance_id
            for op in ops
        )

    def _new_instances(self, txn: StoreTxn, ops: list[WriteOp]) -> bool:
        """True when the creates' ids are distinct and those the caller gave were never seen
        (else the one-event path raises InstanceExists naming the document)."""
        given = [op.instance_id for op in ops if not op.fresh]
        ids = [op.instance_id for op in ops] if given else []
        coll = self.engine.coll_key(ops[0].collection)
        return new_instances(txn, self.engine.tables, coll, ids, given)

    def _still_checked(self, op: WriteOp) -> bool:
        """True when ``op``'s document was checked against its collection's current config."""
        history = self.engine.colls.get(op.collection)
        return op.checked is not None and history is not None and op.checked is history.current

    def _stamp_after(self, base: bytes | None, what: str) -> Timestamp:
        """A new stamp for a write that saw the event ordered at ``base``: it sorts after it.

        The base's stamp is merged first: the clock skipped it on receipt if it was then
        too far ahead, and it may be within reach now. While it is still more than the
        clock's ``max_drift`` ahead, the write cannot sort after it and is refused.
        """
        if base is not None:
            seen = Timestamp.from_bytes(base[:12])
            if seen >= self.hlc.last:
                self.hlc.update(seen)
        stamp = self.hlc.now()
        if base is not None and order_key(stamp, self._log_bytes) <= base:
            ahead = (int.from_bytes(base[:8], "big") - stamp.wall) / 1e9
            raise WriteRejected(
                f"{what} was last written with a stamp {ahead:.0f} s ahead of this peer's "
                f"clock, beyond the {self.hlc.max_drift / 1e9:.0f} s it may run ahead: it "
                "cannot be written until this clock is within that of it"
            )
        return stamp

    def _sign(
        self, txn: StoreWriteTxn, events: list[RecordEvent], writer: Writer, head: Head
    ) -> Record:
        """This peer's next record holding ``events`` with ``writer``'s proof, linked to its
        log's ``head``; PermissionDenied first when the members' rules refuse it."""
        kind = "config" if any(e.action.is_collection for e in events) else "write"
        self.gate.admit(txn, kind, writer, events[0].stamp, head=head)
        body = encode_body(events, self.gate.proof(writer, events))
        key, epoch = self.gate.write_key()  # the newest key epoch held (docs/access.md)
        return create_record(
            body, log_key=self.log_key, key=key, prev=head.cid, author=author_of(writer),
            epoch=epoch,
        )  # fmt: skip

    def _head(self, txn: StoreTxn) -> bytes | None:
        return read_head(txn, self._repo.tables, self.id, self.log_id).cid

    def _commit_collection_event(
        self,
        action: Action,
        config: CollectionConfig | None,
        name: str | None = None,
        *,
        check: Callable[[Any], object] | None = None,
        node: dict[str, Any] | None = None,
        who: WriteAs = None,
    ) -> Record:
        """Commit one collection event (its data ``node``, else the config's); ``check(txn)``
        runs first, in the same transaction."""
        name, writer = config.name if config else name, resolve_writer(who, self.identity)
        assert name is not None
        built: list[tuple[bytes | None, RecordEvent]] = []

        def attempt(txn: StoreWriteTxn) -> tuple[Record, list[Change]]:
            if check is not None:
                check(txn)
            log_head = read_head(txn, self._repo.tables, self.id, self.log_id)
            head = log_head.cid
            if not built or built[0][0] != head:
                history = self.engine.colls.get(name)
                latest = history.keys[-1] if history is not None and history.keys else None
                stamp = self._stamp_after(latest, f"collection {name!r}")
                data = node if node is not None else config.to_node() if config else None
                built[:] = [(head, RecordEvent(stamp, action, name, "", data))]
            event = built[0][1]
            record = self._sign(txn, [event], writer, log_head)
            changes = self.engine.apply_local(
                txn, [event], self._log_bytes, str(author_of(writer)), record.cid
            )
            counter = chain.append(txn, self._repo.tables, self.id, self.log_id, [record], log_head)
            self._set_applied(txn, self._log_bytes, counter)
            return record, changes

        record, changes = self._rounds(attempt)
        self._after_commit(changes, record)
        return record

    def _after_commit(
        self, changes: list[Change], record: Record | None, log_id: str | None = None
    ) -> None:
        if changes and len(self.listeners):  # (publish would find no feed either)
            writer = self.log_id if record is not None else log_id
            self.listeners.publish(
                ListenEvent(c.collection, c.instance_id, c.action, c.document, writer)
                for c in changes
            )
        if record is not None:
            for callback in list(self._record_callbacks):
                try:
                    callback(self, record)
                except Exception:  # a network hiccup must not undo a committed write
                    log.exception("record callback failed for %s", self.name)

    # ------------------------------------------------------- the network seam

    def on_record(self, callback: RecordCallback) -> Callable[[], None]:
        """Call ``callback(db, record)`` after each local commit; returns an unsubscriber."""
        self._record_callbacks.append(callback)

        def remove() -> None:
            if callback in self._record_callbacks:
                self._record_callbacks.remove(callback)

        return remove

    def apply_records(self, log_id: str, records: Iterable[Record]) -> AcceptResult:
        """Chain received records into their log and apply their events (one transaction).

        The records must have been checked with ``open_record`` against the
        log's key. Records already held are skipped; a gap is reported in the
        result, never applied past. Listeners are told after the commit
        (:mod:`threadkit.db.received`).
        """
        return received.apply_records(self, log_id, records)

    def apply_records_now(self, log_id: str, records: Iterable[Record]) -> AcceptResult | None:
        """:meth:`apply_records` unless it would wait (None): ``received.apply_records_now``."""
        return received.apply_records_now(self, log_id, records)

    def _apply_events(
        self, txn: StoreWriteTxn, log_bytes: bytes, record: Record, events: list[RecordEvent]
    ) -> list[Change]:
        """Apply the events of an accepted record (the gate decides which, :mod:`.gate`)."""
        top = max((e.stamp for e in events), default=None)
        # the newest stamp merged, the clock passes them all (each only when it is too far ahead)
        merged = top is None or self.hlc.update(top) >= top
        skipped = [] if merged else [e.stamp for e in events if self.hlc.update(e.stamp) < e.stamp]
        if skipped:
            log.warning(
                "record %s of %s: %d event stamp(s) up to %s are more than %d s ahead of this "
                "peer's clock and were not merged into it",
                record.cid.hex(),
                self.name,
                len(skipped),
                max(skipped),
                self.hlc.max_drift // 10**9,
            )
        return self.engine.apply_received(txn, events, log_bytes, str(record.author), record.cid)

    def _set_applied(self, txn: StoreWriteTxn, log_bytes: bytes, counter: int) -> None:
        txn.put(
            dockeys.applied_key(self.prefix, log_bytes),
            counter.to_bytes(8, "big"),
            db=self._tables.applied,
        )

    def export(self, path: str | os.PathLike[str], keys: str = "none") -> Any:
        """Write this database, all its logs and records as stored, to a CARv1 archive.

        Parameters
        ----------
        path : str or PathLike
            The file to write (replaced atomically; a failed export leaves none).
        keys : {"none", "service", "full"}
            The thread key in the file: none (default: the file alone reads nothing),
            the service key (a replicator can keep and serve it), or the full key
            (anyone with the file reads the database).

        Returns
        -------
        ArchiveSummary
            Logs, records, blocks and bytes written. See docs/lifecycle.md.
        """
        return export_db(self, path, keys)

    def close(self) -> None:
        """Close every listen feed; the repo stays open (the peer owns it)."""
        self.closed = True
        self.listeners.close_all()


def encode_db_entry(prefix: bytes, name: str, log_id: str) -> bytes:
    """The ``db_dbs`` value of a database."""
    return cbor2.dumps({"prefix": prefix, "name": name, "log": log_id})
