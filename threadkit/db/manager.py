"""The databases of one repo: create, open, list and delete them.

Each database is a thread with a key that includes a read key, this peer's own
log in it (a fresh Ed25519 log key), and a 4-byte key prefix for its documents.
Everything survives closing and reopening the repo.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import cbor2

from threadkit.core.clock import HLC, Timestamp
from threadkit.core.identity import Identity
from threadkit.core.ids import ThreadID, Variant
from threadkit.core.keys import ThreadKey
from threadkit.db import dockeys
from threadkit.db.database import Database
from threadkit.db.doctables import DocTables, open_db_tables
from threadkit.db.membership import start_members
from threadkit.db.names import check_name
from threadkit.db.sharing import Sharing
from threadkit.errors import DBNotFound, InvalidThreadID, InvalidThreadKey
from threadkit.store import logs, threads
from threadkit.store.repo import Repo
from threadkit.store.txntypes import StoreTxn, StoreWriteTxn

__all__ = ["DEFAULT_DB_NAME", "Manager"]

DEFAULT_DB_NAME = "unnamed"
_NEXT_PREFIX = b"\x00next-prefix"  # thread ids start with 0x01, so this key never collides


class Manager:
    """Opens every database of a repo and creates new ones.

    Parameters
    ----------
    repo : Repo
        The open repo.
    identity : Identity
        The peer's identity: the author of its writes and its default reader.
    database_class : type[Database]
        The class its databases are opened as (a peer gives ``threadkit.views.Database``,
        the store's class with the notebook views).
    sharing : Sharing, optional
        What shares its databases (their addresses, sync); None: nothing does.
    """

    def __init__(
        self,
        repo: Repo,
        identity: Identity,
        *,
        database_class: type[Database] = Database,
        sharing: Sharing | None = None,
    ) -> None:
        self.repo = repo
        self.identity = identity
        self.database_class = database_class
        self.sharing = sharing
        self.tables: DocTables = open_db_tables(repo)
        self.hlc = HLC()
        self._dbs: dict[ThreadID, Database] = {}
        self._lock = threading.RLock()
        self._new_db_callbacks: list[Callable[[Database], None]] = []
        self._load()

    def _load(self) -> None:
        with self.repo.transaction() as txn:
            entries = []
            for key, value in txn.cursor(self.tables.dbs):
                if key.startswith(b"\x00"):
                    continue
                entries.append((ThreadID.from_bytes(bytes(key)), cbor2.loads(value)))
            latest = self._latest_stamp(txn, [e["prefix"] for _, e in entries])
        for thread_id, entry in entries:
            db = self._dbs[thread_id] = self._open(thread_id, entry)
            for history in db.engine.colls.values():
                if history.keys:
                    stamp = Timestamp.from_bytes(max(history.keys)[:12])
                    latest = stamp if latest is None else max(latest, stamp)
        if latest is not None:
            self.hlc.update(latest)

    def _latest_stamp(self, txn: StoreTxn, prefixes: list[bytes]) -> Timestamp | None:
        latest = None
        cursor = txn.cursor(self.tables.order)
        for prefix in prefixes:
            bound = (int.from_bytes(prefix, "big") + 1).to_bytes(4, "big")
            positioned = cursor.prev() if cursor.set_range(bound) else cursor.last()
            key = bytes(cursor.key()) if positioned else b""
            if key.startswith(prefix):
                stamp = Timestamp.from_bytes(key[4:16])
                latest = stamp if latest is None else max(latest, stamp)
        return latest

    def _open(self, thread_id: ThreadID, entry: dict[str, Any]) -> Database:
        info = self.repo.get_thread(thread_id)
        log = self.repo.get_log(thread_id, entry["log"])
        if log.private is None:
            raise InvalidThreadKey(f"database {thread_id} has lost its own log key")
        return self.database_class(
            self.repo,
            self.tables,
            thread_id,
            entry["name"],
            info.key,
            entry["prefix"],
            log.private,
            self.identity,
            self.hlc,
            self.sharing,
        )

    def new_db(
        self,
        name: str | None = None,
        thread_id: ThreadID | None = None,
        key: ThreadKey | None = None,
        *,
        adopt: bool = False,
        prepare: Callable[[Any], None] | None = None,
        open: bool = True,
    ) -> Database:
        """Create a database: a new thread (or the given id) with this peer's log in it.

        With ``adopt=True`` a thread the repo already holds without a database (as a
        replicator) becomes one, if ``key`` has the same service key; its stored
        records are then applied. ``prepare(txn)``, when given, runs first inside the
        same write transaction (a restore stores the thread and its records there, so
        they and the database appear together or not at all).

        Parameters
        ----------
        name : str, optional
            ThreadDB's name rule; default ``"unnamed"``.
        thread_id : ThreadID, optional
            A new Raw id by default.
        key : ThreadKey, optional
            Must include a read key; a fresh key by default.
        open : bool
            True (the default): anyone holding the key writes, as in ThreadDB. False: the
            database has members; this peer's identity is its owner (docs/access.md).

        Raises
        ------
        InvalidName, InvalidThreadKey, ThreadExists
        """
        name = DEFAULT_DB_NAME if name is None else name
        check_name(name, "database")
        thread_id = thread_id or ThreadID.new(Variant.RAW)
        if not isinstance(thread_id, ThreadID):
            raise InvalidThreadID(f"thread_id must be a ThreadID, got {type(thread_id).__name__}")
        key = key or ThreadKey.new()
        if not isinstance(key, ThreadKey) or not key.can_read:
            raise InvalidThreadKey("a database needs a thread key that includes a read key")
        log_key = Identity.generate()
        with self._lock:
            with self.repo.transaction(write=True) as txn:
                if prepare is not None:
                    prepare(txn)
                if threads.has_thread(txn, self.repo.tables, thread_id) and adopt:
                    # a thread this peer replicated: now it holds the read key too
                    threads.set_thread_key(txn, self.repo.tables, thread_id, key, name)
                else:
                    threads.add_thread(txn, self.repo.tables, thread_id, key, name)
                logs.add_log(txn, self.repo.tables, thread_id, log_key.public, log_key, ())
                prefix = self.next_prefix(txn)
                number = int.from_bytes(prefix, "big")
                txn.put(_NEXT_PREFIX, (number + 1).to_bytes(4, "big"), db=self.tables.dbs)
                entry = {
                    "prefix": prefix,
                    "name": name,
                    "log": log_key.public.peer_id,
                }
                txn.put(thread_id.to_bytes(), cbor2.dumps(entry), db=self.tables.dbs)
            db = self._dbs[thread_id] = self._open(thread_id, entry)
            if not open:
                start_members(db)
        for callback in list(self._new_db_callbacks):
            callback(db)
        return db

    def next_prefix(self, txn: StoreTxn) -> bytes:
        """The key prefix the next database created in ``txn`` gets (a bootstrap fills it)."""
        raw = txn.get(_NEXT_PREFIX, db=self.tables.dbs)
        return dockeys.db_prefix(int.from_bytes(raw, "big") if raw else 1)

    def on_new_db(self, callback: Callable[[Database], None]) -> None:
        """Call ``callback(db)`` for every database created from now on (the network attaches)."""
        self._new_db_callbacks.append(callback)

    def get_db(self, thread_id: ThreadID | str) -> Database:
        """An open database by id (or id string); DBNotFound when absent."""
        if isinstance(thread_id, str):
            thread_id = ThreadID.from_string(thread_id)
        db = self._dbs.get(thread_id)
        if db is None:
            raise DBNotFound(f"no database {thread_id} in this repo")
        return db

    def list_dbs(self) -> list[Database]:
        """Every database, in creation order."""
        return sorted(self._dbs.values(), key=lambda db: db.prefix)

    def delete_db(self, thread_id: ThreadID | str) -> None:
        """Delete a database, its thread, logs and documents from this repo."""
        db = self.get_db(thread_id)
        with self._lock:
            with self.repo.transaction(write=True) as txn:
                for table in (
                    self.tables.colls,
                    self.tables.docs,
                    self.tables.inst,
                    self.tables.events,
                    self.tables.index,
                    self.tables.lost,
                    self.tables.losers,
                    self.tables.applied,
                    self.tables.order,
                    self.tables.access,
                    self.tables.snaps,
                    self.tables.snapblocks,
                ):
                    _delete_prefix(txn, table, db.prefix)
                txn.delete(db.id.to_bytes(), db=self.tables.dbs)
                threads.delete_thread(txn, self.repo.tables, db.id)
            # only once the delete has committed: a failed one leaves the database as it was
            db.close()
            del self._dbs[db.id]

    def close(self) -> None:
        """Close every database's feeds."""
        for db in self._dbs.values():
            db.close()


def _delete_prefix(txn: StoreWriteTxn, table: Any, prefix: bytes) -> None:
    cursor = txn.cursor(table)
    if not cursor.set_range(prefix):
        return
    while cursor.key().startswith(prefix):
        if not cursor.delete():
            break
