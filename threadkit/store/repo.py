"""The repo: one LMDB environment per directory, holding threads, logs and records.

``Repo(path)`` opens (creating when needed) the repo in ``path``;
``Repo(None)`` or :meth:`Repo.temporary` makes one in a fresh temporary
directory that is deleted on close. A repo is a context manager, ``close()``
may be called any number of times, and using a closed repo raises
:class:`~threadkit.errors.RepoClosed`.

Files in the directory: ``data.mdb`` and ``lock.mdb`` (LMDB's) and
``repo.lock`` (the repo lock, see :mod:`threadkit.store.lock`): a second
process, or a second ``Repo`` in this process, gets
:class:`~threadkit.errors.RepoInUse` until the first closes or dies.

Key layout
----------
Composite keys write each variable-length id as a *part* (one length byte,
then the bytes), so prefixes never run into a neighbour's id.

========== ============================================== ======================================
table      key                                            value
========== ============================================== ======================================
meta       UTF-8 name                                     bytes (``format`` → ``b"1"``)
threads    thread id bytes                                CBOR ``{key, name, created}``
logs       part(thread id) ‖ part(log id)                 CBOR ``{pubkey, privkey?, addrs}``
heads      part(thread id) ‖ part(log id)                 u64be counter ‖ head CID (or none)
records    record CID                                     u16be n ‖ locator (n bytes) ‖
                                                          CBOR ``[prev, record, event, header,
                                                          body]``
log_index  part(thread id) ‖ part(log id) ‖ u64be counter record CID
========== ============================================== ======================================

The *locator* kept with a record is its ``log_index`` key: it names the
record's thread, log and counter. The log id is the binary peer id (the
identity multihash of the log's public key). Details: :mod:`.layout`,
:mod:`.codec`, and ``docs/store.md``.

Durability and concurrency
--------------------------
Every change is one LMDB write transaction, synced to disk on commit unless
the repo was opened with ``durable=False``; a killed process leaves every
committed transaction intact and no part of an uncommitted one. Writes are
serialized (one writer at a time, in this process by a lock and across the
environment by LMDB); reads run concurrently from any thread, each on a
consistent snapshot.

Examples
--------
>>> from threadkit.core.identity import Identity
>>> from threadkit.core.ids import ThreadID
>>> from threadkit.core.keys import ThreadKey
>>> from threadkit.core.records import create_record
>>> with Repo.temporary() as repo:
...     tid, key, log_key = ThreadID.new(), ThreadKey.new(), Identity.generate()
...     _ = repo.add_thread(tid, key, name="notes")
...     log = repo.add_log(tid, log_key.public, log_key)
...     rec = create_record(b"\\xa0", log_key=log_key, key=key)
...     repo.append(tid, log.id, rec)
...     [r.counter for r in repo.read_log(tid, log.id)]
1
[1]
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import lmdb

from threadkit.core.identity import Identity, PublicKey
from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.core.records import Record
from threadkit.errors import DiskFull, InvalidInput, RepoClosed, RepoFormatError, StoreError
from threadkit.store import chain, layout, logs, reads, reclaim, threads
from threadkit.store.lock import RepoLock
from threadkit.store.models import AcceptResult, Head, LogInfo, StoredRecord, ThreadInfo
from threadkit.store.tables import Tables, open_tables
from threadkit.store.txntypes import StoreTxn

__all__ = ["DEFAULT_MAP_SIZE", "FORMAT_VERSION", "LOW_DISK_SPACE", "MAX_TABLES", "Repo"]

DEFAULT_MAP_SIZE = 64 * 1024**3
"""Largest size the repo may grow to (64 GiB); address space, not disk, until used."""

FORMAT_VERSION = b"1"
"""On-disk format written to ``meta["format"]``; other versions are refused."""

MAX_TABLES = 64
"""Named sub-databases the environment has room for (the store's and later layers')."""

LOW_DISK_SPACE = 64 * 1024**2
"""Free bytes (64 MiB) under which a write that failed with an I/O error or a full map is
reported as :class:`~threadkit.errors.DiskFull`: LMDB reports most short writes on a
full disk as EIO, not ENOSPC (which is a DiskFull whatever the free space)."""

_FORMAT_KEY = b"format"


class Repo:
    """A repository: threads, their logs and records, in one LMDB environment.

    Parameters
    ----------
    path : str | os.PathLike[str] | None
        The repo directory, created if missing; None for a temporary repo
        whose directory is deleted on close.
    map_size : int
        Largest size the repo may grow to, in bytes.
    durable : bool
        Sync to disk on every commit (the default). ``False`` is faster and
        still survives a killed process, but an operating-system crash may lose
        the latest commits.

    Raises
    ------
    RepoInUse
        When another process or another open ``Repo`` holds the directory.
    RepoFormatError
        When the repo was written in a format this version cannot read.
    StoreError
        When the directory cannot be used (not a directory, no permission).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        *,
        map_size: int = DEFAULT_MAP_SIZE,
        durable: bool = True,
    ) -> None:
        temporary = path is None
        directory = (
            Path(tempfile.mkdtemp(prefix="threadkit-repo-"))
            if path is None
            else Path(path).expanduser().absolute()
        )
        self._path = directory
        self._temporary = temporary
        self._durable = durable
        self._map_size = map_size
        self._reopened = False
        self._write_lock = threading.RLock()
        self._env: Any = None
        env: Any = None
        lock: RepoLock | None = None
        try:
            directory.mkdir(parents=True, exist_ok=True)
            lock = RepoLock(directory)
            reclaim.discard_copy(directory)  # one a killed reclaim left
            env = self._open_env()
            tables = open_tables(env)
            _check_format(env, tables, directory)
        except BaseException as exc:
            _shutdown(env, lock, directory if temporary else None)
            if isinstance(exc, (OSError, lmdb.Error)):
                raise _open_error(directory, exc) from exc
            raise
        self._env = env
        self._tables = tables
        self._finalizer = weakref.finalize(
            self, _shutdown, env, lock, directory if temporary else None
        )

    def _open_env(self) -> Any:
        return lmdb.open(
            str(self._path),
            map_size=self._map_size,
            max_dbs=MAX_TABLES,
            sync=self._durable,
            metasync=self._durable,
            subdir=True,
        )

    def _reopen(self, between: Callable[[], None]) -> None:
        """Close the environment, run ``between`` (the repo lock still held), open it again.

        Table handles opened before belong to the closed environment (:mod:`.reclaim`).
        """
        with self._write_lock:
            env = self._live_env()
            detached = self._finalizer.detach()
            lock, temporary = detached[2][1:] if detached else (None, None)
            self._env = None
            env.close()
            self._reopened = True
            try:
                between()
            finally:
                fresh = None
                try:
                    fresh = self._open_env()
                    self._tables = open_tables(fresh)
                except BaseException as exc:
                    if fresh is not None:
                        fresh.close()
                    fresh = None
                    if isinstance(exc, (OSError, lmdb.Error)):
                        raise _open_error(self._path, exc) from exc
                    raise
                finally:
                    self._finalizer = weakref.finalize(self, _shutdown, fresh, lock, temporary)
                    self._env = fresh

    @classmethod
    def temporary(cls, *, map_size: int = DEFAULT_MAP_SIZE, durable: bool = True) -> Repo:
        """A repo in a fresh temporary directory, deleted on close.

        Parameters
        ----------
        map_size, durable
            As for :class:`Repo`.
        """
        return cls(None, map_size=map_size, durable=durable)

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The repo directory."""
        return self._path

    @property
    def tables(self) -> Tables:
        """Handles of the store's tables, for layers that compose store calls in one transaction."""
        return self._tables

    @property
    def is_temporary(self) -> bool:
        """True for a temporary repo (its directory is deleted on close)."""
        return self._temporary

    @property
    def durable(self) -> bool:
        """True when every commit is synced to disk."""
        return self._durable

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._env is None

    def close(self) -> None:
        """Close the environment and release the repo lock; idempotent.

        Waits for a write in progress in another thread. A temporary repo's
        directory is deleted.
        """
        with self._write_lock:
            self._env = None
            self._finalizer()

    def __enter__(self) -> Repo:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("temporary" if self._temporary else "open")
        return f"Repo({str(self._path)!r}, {state})"

    # -- transactions for later layers -------------------------------------------------------

    def transaction(
        self, write: bool = False, *, buffers: bool = False
    ) -> contextlib.AbstractContextManager[StoreTxn]:
        """One LMDB transaction on the repo's environment, for layers built on the store.

        Committed when the block ends, aborted when it raises. Write
        transactions are serialized.

        Parameters
        ----------
        write : bool
            A write transaction (else a read-only snapshot).
        buffers : bool
            Return values as buffers into the map, valid only inside the transaction.

        Returns
        -------
        contextlib.AbstractContextManager
            Entering it gives the ``lmdb.Transaction``.

        Raises
        ------
        RepoClosed
            When the repo is closed.
        """
        return self._txn(write, buffers)

    def open_table(self, name: str) -> Any:
        """Open (creating when missing) a named sub-database for a later layer.

        Parameters
        ----------
        name : str
            The table's name; the store's own names (:data:`.layout.TABLES`) are refused.

        Returns
        -------
        lmdb handle
            Pass it as ``db=`` to the methods of a :meth:`transaction`.
        """
        key = name.encode() if isinstance(name, str) else b""
        if not key or key in layout.TABLES:
            raise InvalidInput(f"table name {name!r} is empty or belongs to the store")
        with self._write_lock:
            env = self._live_env()
            try:
                return env.open_db(key)
            except lmdb.Error as exc:
                raise self._error(exc) from exc

    # -- meta --------------------------------------------------------------------------------

    def get_meta(self, name: str) -> bytes | None:
        """A repo-level value by name, or None.

        Parameters
        ----------
        name : str
            The value's name, e.g. ``"host_key"``.
        """
        key = _meta_key(name)
        with self._txn(False) as txn:
            value = txn.get(key, db=self._tables.meta)
            return None if value is None else bytes(value)

    def put_meta(self, name: str, value: bytes) -> None:
        """Store a repo-level value (replacing any). The name ``format`` is reserved.

        Parameters
        ----------
        name : str
            The value's name.
        value : bytes
            The value.
        """
        key = _meta_key(name, writing=True)
        if not isinstance(value, bytes | bytearray | memoryview):
            raise InvalidInput(f"meta value must be bytes, got {type(value).__name__}")
        with self._txn(True) as txn:
            txn.put(key, bytes(value), db=self._tables.meta)

    def delete_meta(self, name: str) -> bool:
        """Remove a repo-level value; True if it was there."""
        key = _meta_key(name, writing=True)
        with self._txn(True) as txn:
            return bool(txn.delete(key, db=self._tables.meta))

    # -- threads -----------------------------------------------------------------------------

    def add_thread(
        self, thread_id: ThreadID, key: ThreadKey, name: str | None = None
    ) -> ThreadInfo:
        """Add a thread with its key.

        Parameters
        ----------
        thread_id : ThreadID
            The thread's id.
        key : ThreadKey
            Its key.
        name : str | None
            A local name.

        Returns
        -------
        ThreadInfo

        Raises
        ------
        ThreadExists
            When the repo already holds the thread.
        """
        with self._txn(True) as txn:
            return threads.add_thread(txn, self._tables, thread_id, key, name)

    def get_thread(self, thread_id: ThreadID) -> ThreadInfo:
        """The thread's id, key, name and creation time.

        Raises
        ------
        ThreadNotFound
            When the repo does not hold the thread.
        """
        with self._txn(False) as txn:
            return threads.get_thread(txn, self._tables, thread_id)

    def has_thread(self, thread_id: ThreadID) -> bool:
        """True when the repo holds the thread."""
        with self._txn(False) as txn:
            return threads.has_thread(txn, self._tables, thread_id)

    def list_threads(self) -> list[ThreadInfo]:
        """Every thread in the repo, in thread id byte order."""
        with self._txn(False) as txn:
            return threads.list_threads(txn, self._tables)

    def delete_thread(self, thread_id: ThreadID) -> None:
        """Remove a thread with its logs, index entries and records (one transaction).

        Raises
        ------
        ThreadNotFound
            When the repo does not hold the thread.
        """
        with self._txn(True) as txn:
            threads.delete_thread(txn, self._tables, thread_id)

    # -- logs --------------------------------------------------------------------------------

    def add_log(
        self,
        thread_id: ThreadID,
        public: PublicKey,
        private: Identity | None = None,
        addrs: Iterable[str | bytes] = (),
    ) -> LogInfo:
        """Add an empty log to a thread; its id is ``public.peer_id``.

        Parameters
        ----------
        thread_id : ThreadID
            The thread.
        public : PublicKey
            The log key.
        private : Identity | None
            The private log key, for this peer's own log.
        addrs : Iterable[str | bytes]
            Multiaddrs (strings or binary) where the log can be fetched.

        Returns
        -------
        LogInfo

        Raises
        ------
        ThreadNotFound
            When the repo does not hold the thread.
        LogExists
            When the thread already has the log.
        TooManyLogs
            When the thread already has ``MAX_LOGS`` (256) logs (``threadkit.store.logs``).
        InvalidKey, InvalidAddress
            For a private key of another log, or a malformed multiaddr.
        """
        with self._txn(True) as txn:
            return logs.add_log(txn, self._tables, thread_id, public, private, addrs)

    def get_log(self, thread_id: ThreadID, log_id: str) -> LogInfo:
        """A log's keys, addresses, head and counter.

        Raises
        ------
        ThreadNotFound, LogNotFound
            When the thread, or the log in it, is not there.
        """
        with self._txn(False) as txn:
            return logs.get_log(txn, self._tables, thread_id, log_id)

    def list_logs(self, thread_id: ThreadID) -> list[LogInfo]:
        """Every log of a thread, in log id byte order.

        Raises
        ------
        ThreadNotFound
            When the repo does not hold the thread.
        """
        with self._txn(False) as txn:
            return logs.list_logs(txn, self._tables, thread_id)

    def add_addrs(self, thread_id: ThreadID, log_id: str, addrs: Iterable[str | bytes]) -> LogInfo:
        """Add addresses to a log, keeping each once; returns the updated log.

        Raises
        ------
        ThreadNotFound, LogNotFound
            When the thread, or the log in it, is not there.
        InvalidAddress
            For a malformed multiaddr.
        """
        with self._txn(True) as txn:
            return logs.add_addrs(txn, self._tables, thread_id, log_id, addrs)

    def set_addrs(self, thread_id: ThreadID, log_id: str, addrs: Iterable[str | bytes]) -> LogInfo:
        """Replace a log's addresses (see :func:`threadkit.store.logs.set_addrs`)."""
        with self._txn(True) as txn:
            return logs.set_addrs(txn, self._tables, thread_id, log_id, addrs)

    def get_head(self, thread_id: ThreadID, log_id: str) -> Head:
        """A log's head CID and counter (cheap: one fixed-width value).

        Raises
        ------
        ThreadNotFound, LogNotFound
            When the thread, or the log in it, is not there.
        """
        with self._txn(False) as txn:
            return logs.read_head(txn, self._tables, thread_id, log_id)

    # -- records -----------------------------------------------------------------------------

    def append(self, thread_id: ThreadID, log_id: str, record: Record) -> int:
        """Append a record of one's own log; ``record.prev`` must be the head.

        Stores the blocks, the index entry, and the new head and counter in one
        transaction.

        Returns
        -------
        int
            The log's new counter (the record's position).

        Raises
        ------
        ThreadNotFound, LogNotFound
            When the thread, or the log in it, is not there.
        ChainError
            When ``record.prev`` is not the log's head.
        """
        with self._txn(True) as txn:
            return chain.append(txn, self._tables, thread_id, log_id, (record,))

    def append_many(self, thread_id: ThreadID, log_id: str, records: Iterable[Record]) -> int:
        """Append several records in one transaction: all or nothing.

        The first must link to the head, each next one to the one before.

        Returns
        -------
        int
            The log's counter after the last record.

        Raises
        ------
        ThreadNotFound, LogNotFound
            When the thread, or the log in it, is not there.
        ChainError
            When a record does not link; nothing is stored.
        """
        with self._txn(True) as txn:
            return chain.append(txn, self._tables, thread_id, log_id, records)

    def accept(self, thread_id: ThreadID, log_id: str, records: Iterable[Record]) -> AcceptResult:
        """Store received records that link to the log's head, in any order given.

        Records already held are skipped; the rest are chained from the head by
        their ``prev`` links and the linked part is committed in one
        transaction. See :mod:`threadkit.store.chain`.

        Parameters
        ----------
        thread_id : ThreadID
            The thread.
        log_id : str
            The log.
        records : Iterable[Record]
            Received records, each already checked with ``open_record``.

        Returns
        -------
        AcceptResult
            ``added`` (oldest-first, with counters), ``head``, and ``gap`` /
            ``pending`` for records that could not link yet
            (:meth:`AcceptResult.raise_for_gap` raises ``LogGap``).

        Raises
        ------
        ThreadNotFound, LogNotFound
            When the thread, or the log in it, is not there.
        ChainError
            When a record forks the log or belongs to another; nothing is stored.
        """
        with self._txn(True) as txn:
            return chain.accept(txn, self._tables, thread_id, log_id, records)

    def read_log(
        self, thread_id: ThreadID, log_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[StoredRecord]:
        """Records of a log with counters in ``(after, head]``, oldest-first.

        Parameters
        ----------
        after : int
            Counter of the last record already had (0 for none).
        limit : int | None
            Most records to return; None for all.

        Raises
        ------
        ThreadNotFound, LogNotFound
            When the thread, or the log in it, is not there.
        """
        with self._txn(False) as txn:
            return reads.read_log(txn, self._tables, thread_id, log_id, after, limit)

    def read_back(
        self,
        thread_id: ThreadID,
        log_id: str,
        head_cid: bytes | None = None,
        offset_cid: bytes | None = None,
        limit: int | None = None,
    ) -> list[StoredRecord]:
        """Walk back from ``head_cid`` to ``offset_cid`` (exclusive); oldest-first.

        ThreadDB's ``GetRecords`` shape; see :func:`threadkit.store.reads.read_back`.

        Raises
        ------
        ThreadNotFound, LogNotFound
            When the thread, or the log in it, is not there.
        BlockNotFound
            When ``head_cid`` is not a record of the log.
        """
        with self._txn(False) as txn:
            return reads.read_back(
                txn, self._tables, thread_id, log_id, head_cid, offset_cid, limit
            )

    def get_record(self, cid: bytes) -> StoredRecord:
        """A stored record by CID, with its thread, log and counter.

        Raises
        ------
        BlockNotFound
            When the repo does not hold the record.
        """
        with self._txn(False) as txn:
            return reads.get_record(txn, self._tables, cid)

    def has_record(self, cid: bytes) -> bool:
        """True when the repo holds the record."""
        with self._txn(False) as txn:
            return reads.has_record(txn, self._tables, cid)

    # -- internals ---------------------------------------------------------------------------

    def _txn(self, write: bool, buffers: bool = True) -> _Txn:
        """A transaction; lmdb errors become store errors."""
        return _Txn(self, write, buffers)

    def _live_env(self) -> Any:
        env = self._env
        if env is None:
            raise RepoClosed(f"repo {self._path} is closed")
        return env

    def _error(self, exc: Exception) -> StoreError:
        if self._env is None:
            return RepoClosed(f"repo {self._path} was closed during the operation")
        if self._reopened and "another environment" in str(exc):
            return RepoClosed(
                f"repo {self._path} was reopened (peer.reclaim): this handle belongs to the "
                "environment before; get the database again (peer.get_db)"
            )
        full = _disk_full(self._path, exc)
        if full is not None:
            return full
        if isinstance(exc, lmdb.MapFullError):
            return StoreError(f"repo {self._path} is full: open it with a larger map_size")
        return StoreError(f"repo {self._path}: {exc}")


def _open_error(directory: Path, exc: Exception) -> StoreError:
    """The error for a repo that could not be opened."""
    return _disk_full(directory, exc) or StoreError(f"cannot open repo {directory}: {exc}")


def _disk_full(directory: Path, exc: Exception) -> DiskFull | None:
    """A DiskFull for an error that a full disk explains (see :data:`LOW_DISK_SPACE`)."""
    code = exc.errno if isinstance(exc, OSError) else getattr(exc, "code", None)
    map_full = isinstance(exc, lmdb.MapFullError)
    if code not in (errno.ENOSPC, errno.EIO) and not map_full:
        return None
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return None
    if code != errno.ENOSPC and free >= LOW_DISK_SPACE:
        return None
    also = "; the repo has also reached its map_size" if map_full else ""
    return DiskFull(
        f"the disk is full: {free} bytes free on the filesystem of repo {directory}{also}. "
        f"Nothing of the write was kept; free some space and try again ({exc})"
    )


def _meta_key(name: str, writing: bool = False) -> bytes:
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"meta name must be a non-empty string, got {name!r}")
    key = name.encode()
    if writing and key == _FORMAT_KEY:
        raise InvalidInput("meta name 'format' is reserved for the repo's format version")
    return key


class _Txn:
    """One transaction of a repo, as a context manager: committed when the block ends,
    aborted when it raises; a write transaction holds the repo's write lock, and lmdb
    errors (of the block or the commit) become store errors (:meth:`Repo._error`)."""

    __slots__ = ("_buffers", "_repo", "_txn", "_write")

    def __init__(self, repo: Repo, write: bool, buffers: bool) -> None:
        self._repo, self._write, self._buffers = repo, write, buffers
        self._txn: Any = None

    def __enter__(self) -> StoreTxn:
        repo = self._repo
        if self._write:
            repo._write_lock.acquire()
        try:
            env = repo._live_env()
            try:
                self._txn = env.begin(write=self._write, buffers=self._buffers)
            except lmdb.Error as exc:
                raise self._error(exc) from exc
        except BaseException:
            if self._write:
                repo._write_lock.release()
            raise
        txn: StoreTxn = self._txn
        return txn

    def _error(self, exc: Exception) -> StoreError:
        return self._repo._error(exc)

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        txn, self._txn = self._txn, None
        try:
            try:
                if exc_type is None:
                    txn.commit()
                else:
                    txn.abort()
            except lmdb.Error as failed:
                raise self._error(failed) from failed
            if isinstance(exc, lmdb.Error):
                raise self._error(exc) from exc
        finally:
            if self._write:
                self._repo._write_lock.release()


def _check_format(env: Any, tables: Tables, directory: Path) -> None:
    with env.begin(write=True) as txn:
        found = txn.get(_FORMAT_KEY, db=tables.meta)
        if found is None:
            txn.put(_FORMAT_KEY, FORMAT_VERSION, db=tables.meta)
        elif found != FORMAT_VERSION:
            raise RepoFormatError(
                f"repo {directory} has format {found.decode(errors='replace')!r}; "
                f"this threadkit reads format {FORMAT_VERSION.decode()}"
            )


def _shutdown(env: Any, lock: RepoLock | None, temporary: Path | None) -> None:
    """Close the environment, release the lock, delete a temporary directory."""
    if env is not None:
        env.close()
    if lock is not None:
        lock.release()
    if temporary is not None:
        shutil.rmtree(temporary, ignore_errors=True)
