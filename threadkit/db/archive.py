"""Backup and restore of a database as a CARv1 archive (docs/lifecycle.md).

An export holds, as IPLD blocks, a **manifest** (the archive's one root) and
every record of every log of the thread, each as the four blocks it is stored
and sent as (record, event, header, body; docs/formats.md, "Records"). Records
stay encrypted: the file holds no plaintext, and the thread key travels in it
only when asked (``keys="service"`` or ``"full"``).

The manifest is the DAG-CBOR map::

    {"format": "threadkit/export/1", "thread": <thread id bytes>, "name": <str>,
     "keys": "none" | "service" | "full", "key"?: <thread key bytes>,
     "logs": [{"pubKey": <log key bytes>, "addrs": [<multiaddr>, …],
               "records": [[CID(record), CID(event), CID(header), CID(body)], …]}, …]}

with each log's records oldest first. An import treats the file as untrusted, as
records received from a peer: every block must hash to its CID, every record
passes :func:`~threadkit.core.records.open_record` (signature included) and
must chain onto the one before it, and all of that is checked before anything
is written.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from threadkit.core import dagcbor
from threadkit.core.cid import cid_of, cid_to_string
from threadkit.core.dagcbor import Link
from threadkit.core.identity import PublicKey
from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.core.records import Record, RecordBlocks, open_record
from threadkit.db import received, snapshots
from threadkit.db.names import check_name
from threadkit.errors import (
    ChainError,
    DecryptionError,
    InvalidArchive,
    InvalidInput,
    InvalidKey,
    InvalidName,
    InvalidThreadID,
    InvalidThreadKey,
    MalformedRecord,
    ThreadExists,
)
from threadkit.store import car, chain, logs, reads, threads
from threadkit.store.txntypes import StoreWriteTxn

if TYPE_CHECKING:
    from threadkit.db.database import Database
    from threadkit.db.manager import Manager
    from threadkit.store.repo import Repo

__all__ = [
    "FORMAT",
    "KEY_CHOICES",
    "MAX_ARCHIVE_SIZE",
    "ArchiveSummary",
    "export_db",
    "export_thread",
    "import_db",
    "read_archive",
]

FORMAT = "threadkit/export/1"
"""The manifest's ``format`` value."""

MAX_ARCHIVE_SIZE = 2 * 1024**3
"""Largest archive file an import reads by default (2 GiB): its blocks are held in memory
while they are checked, since nothing is written before the last check."""

KEY_CHOICES = ("none", "service", "full")
"""What ``export(keys=…)`` puts in the file: no key, the service key, or service and read key."""


@dataclass(frozen=True)
class ArchiveSummary:
    """What an export wrote or an import read.

    Attributes
    ----------
    thread_id : ThreadID
        The thread.
    logs : int
        Logs in the archive.
    records : int
        Records in the archive.
    blocks : int
        Blocks in the archive, the manifest included.
    size : int
        Bytes of the file.
    """

    thread_id: ThreadID
    logs: int
    records: int
    blocks: int
    size: int


@dataclass(frozen=True)
class _LogEntry:
    public: PublicKey
    addrs: tuple[str, ...]
    records: list[Record]


def export_db(db: Database, path: str | os.PathLike[str], keys: str = "none") -> ArchiveSummary:
    """Write ``db`` (all logs, all records, as stored) to ``path`` as a CARv1 archive.

    See :meth:`Database.export` and :func:`export_thread`.

    Raises
    ------
    InvalidInput
        The database was compacted or bootstrapped from a snapshot: its logs start
        mid-chain, and an archive of them would not import.
    """
    for which, how in (("compacted", "was compacted"), ("base", "was bootstrapped")):
        started = snapshots.mark(db, which)
        if started is not None:
            raise InvalidInput(
                f"cannot export {db.name!r}: it {how} from snapshot "
                f"{cid_to_string(started['root'])}, so its logs start mid-chain and an "
                "archive of them would not import (docs/lifecycle.md)"
            )
    return export_thread(db._repo, db.id, path, keys)


def export_thread(
    repo: Repo, thread_id: ThreadID, path: str | os.PathLike[str], keys: str = "none"
) -> ArchiveSummary:
    """Write a thread of ``repo`` (a database, or a thread kept as a replicator) to ``path``.

    The file is written beside ``path`` and renamed into place at the end, so a
    failed export leaves no partial file.

    Raises
    ------
    InvalidInput
        ``keys`` is not one of :data:`KEY_CHOICES`, or ``path`` is a directory.
    InvalidThreadKey
        ``keys="full"`` on a peer that holds only the service key (a replicator).
    ThreadNotFound
        The repo does not hold the thread.
    """
    if keys not in KEY_CHOICES:
        raise InvalidInput(f"keys must be one of {', '.join(KEY_CHOICES)}, got {keys!r}")
    target = Path(path)
    if target.is_dir():
        raise InvalidInput(f"{target} is a directory; give a file path for the archive")
    tables = repo.tables
    log_entries: list[dict[str, Any]] = []
    stored_logs = []
    with repo.transaction() as txn:
        thread = threads.get_thread(txn, tables, thread_id)
        if keys == "full" and not thread.key.can_read:
            raise InvalidThreadKey(
                f"this peer holds only the service key of thread {thread_id}: "
                "export it with keys='service' or 'none'"
            )
        for info in logs.list_logs(txn, tables, thread_id):
            stored = reads.read_log(txn, tables, thread_id, info.id)
            stored_logs.append(stored)
            cids = [[Link(s.cid), *(Link(cid_of(b)) for b in s.blocks[1:])] for s in stored]
            log_entries.append(
                {"pubKey": info.public.to_bytes(), "addrs": list(info.addrs), "records": cids}
            )
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "thread": thread_id.to_bytes(),
        "name": thread.name or "",
        "keys": keys,
        "logs": log_entries,
    }
    if keys == "service":
        manifest["key"] = thread.key.service_only().to_bytes()
    elif keys == "full":
        manifest["key"] = thread.key.to_bytes()
    manifest_block = dagcbor.encode(manifest)
    manifest_cid = cid_of(manifest_block)

    def blocks() -> Any:
        yield manifest_cid, manifest_block
        for entry, stored in zip(log_entries, stored_logs, strict=True):
            for cids, record in zip(entry["records"], stored, strict=True):
                for cid, block in zip(cids, record.blocks, strict=True):
                    yield bytes(cid), block

    count = 1 + 4 * sum(len(s) for s in stored_logs)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "wb") as out:
            size = car.write_car(out, [manifest_cid], blocks())
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return ArchiveSummary(thread_id, len(log_entries), (count - 1) // 4, count, size)


def read_archive(
    path: str | os.PathLike[str],
    key: ThreadKey | str | None = None,
    max_size: int = MAX_ARCHIVE_SIZE,
) -> tuple[ThreadID, str, ThreadKey, list[_LogEntry], ArchiveSummary]:
    """Read and check a whole archive: ``(thread id, name, key, logs, summary)``.

    Nothing is written. Every block is hashed, every record opened with its
    log's key (signature included) and chained onto the one before it.

    Raises
    ------
    InvalidArchive
        Truncated, malformed, or not a threadkit export; a block missing.
    IntegrityError, SignatureError, MalformedRecord, ChainError
        A block or record that fails its check.
    InvalidThreadKey
        No key in the archive nor given, a key without a read key, or one that does
        not open the archive's records.
    """
    source = Path(path)
    try:
        handle = source.open("rb")
    except OSError as exc:
        raise InvalidArchive(f"cannot read {source}: {exc.strerror}") from None
    with handle:
        size = os.fstat(handle.fileno()).st_size
        if size > max_size:
            raise InvalidArchive(
                f"{source} is {size} bytes, over the {max_size}-byte limit of an import (its "
                "blocks are held in memory while checked); pass max_size= to allow it"
            )
        roots, stream = car.iter_blocks(handle)
        blocks = dict(stream)
    if len(roots) != 1 or roots[0] not in blocks:
        raise InvalidArchive("not a threadkit export: it needs one root, its manifest block")
    manifest = _manifest(blocks[roots[0]])
    try:
        thread_id = ThreadID.from_bytes(manifest["thread"])
    except InvalidThreadID as exc:
        raise InvalidArchive(f"manifest thread id: {exc}") from None
    key = _resolve_key(manifest, key)
    entries: list[_LogEntry] = []
    first_readable: Record | None = None
    for number, raw in enumerate(manifest["logs"]):
        entry = _log_entry(raw, number, blocks, key)
        if any(e.public == entry.public for e in entries):
            raise InvalidArchive(f"manifest lists log {entry.public.peer_id} twice")
        entries.append(entry)
        if first_readable is None:  # records of later key epochs need other keys
            first_readable = next((r for r in entry.records if _epoch_of(r) == 0), None)
    if first_readable is not None:
        try:
            first_readable.read_body(key)
        except DecryptionError:
            raise InvalidThreadKey(
                f"the key's read key does not open the records of thread {thread_id}"
            ) from None
    records = sum(len(e.records) for e in entries)
    summary = ArchiveSummary(thread_id, len(entries), records, len(blocks), size)
    return thread_id, manifest["name"], key, entries, summary


def import_db(
    manager: Manager,
    path: str | os.PathLike[str],
    key: ThreadKey | str | None = None,
    name: str | None = None,
    thread_id: ThreadID | str | None = None,
    max_size: int = MAX_ARCHIVE_SIZE,
) -> Database:
    """Restore an exported database into ``manager``'s repo. See :meth:`Peer.import_db`."""
    if name is not None:
        check_name(name, "database")
    expected = ThreadID.from_string(thread_id) if isinstance(thread_id, str) else thread_id
    thread_id, stored_name, key, entries, _ = read_archive(path, key, max_size)
    if expected is not None and expected != thread_id:
        raise InvalidArchive(f"the archive holds thread {thread_id}, not {expected}")
    if name is None and stored_name:
        try:
            check_name(stored_name, "database")
            name = stored_name
        except InvalidName:
            pass  # a name this peer's rule refuses: the default name, as for a nameless export
    repo, tables = manager.repo, manager.repo.tables
    with repo.transaction() as txn:
        if threads.has_thread(txn, tables, thread_id):
            raise ThreadExists(
                f"thread {thread_id} is already in this repo; delete it first to restore it"
            )

    def store(txn: StoreWriteTxn) -> None:
        threads.add_thread(txn, tables, thread_id, key, name)
        for entry in entries:
            logs.add_log(txn, tables, thread_id, entry.public, None, entry.addrs)
            if entry.records:
                chain.accept(txn, tables, thread_id, entry.public.peer_id, entry.records)

    # one write transaction holds the thread, its logs and records, and the new database;
    # the records are folded when the database opens (db.received.catch_up, with the
    # records opened above), which a crash in between only delays to the next open
    with received.opened_records(r for entry in entries for r in entry.records):
        return manager.new_db(name, thread_id, key, adopt=True, prepare=store)


def _manifest(block: bytes) -> dict[str, Any]:
    try:
        node = dagcbor.decode(block, "manifest")
    except InvalidInput as exc:
        raise InvalidArchive(f"not a threadkit export: {exc}") from None
    if not isinstance(node, dict) or node.get("format") != FORMAT:
        raise InvalidArchive(f"not a threadkit export: the root is not a {FORMAT} manifest")
    checks = (
        ("thread", bytes),
        ("name", str),
        ("keys", str),
        ("logs", list),
    )
    for field, kind in checks:
        if not isinstance(node.get(field), kind):
            raise InvalidArchive(f"manifest field {field!r} is missing or not a {kind.__name__}")
    if node["keys"] not in KEY_CHOICES or ("key" in node) != (node["keys"] != "none"):
        raise InvalidArchive("manifest keys/key fields do not agree")
    return node


def _resolve_key(manifest: dict[str, Any], given: ThreadKey | str | None) -> ThreadKey:
    stored: ThreadKey | None = None
    if "key" in manifest:
        if not isinstance(manifest["key"], bytes):
            raise InvalidArchive("manifest key must be bytes")
        try:
            stored = ThreadKey.from_bytes(manifest["key"])
        except InvalidThreadKey as exc:
            raise InvalidArchive(f"manifest key: {exc}") from None
    if isinstance(given, str):
        given = ThreadKey.from_string(given.strip())
    if given is not None and not isinstance(given, ThreadKey):
        raise InvalidThreadKey(f"key must be a ThreadKey or its string, got {type(given).__name__}")
    if given is not None and stored is not None and given.service != stored.service:
        raise InvalidThreadKey("the given key is not the key stored in the archive")
    key = given if given is not None else stored
    if key is None:
        raise InvalidThreadKey(
            "the archive holds no thread key (exported with keys='none'): pass key=, the "
            "database's full key"
        )
    if not key.can_read:
        raise InvalidThreadKey(
            "restoring a database needs the full thread key (with its read key); the archive "
            f"holds keys={manifest['keys']!r}: pass key="
        )
    return key


def _log_entry(raw: Any, number: int, blocks: dict[bytes, bytes], key: ThreadKey) -> _LogEntry:
    if not isinstance(raw, dict) or set(raw) != {"pubKey", "addrs", "records"}:
        raise InvalidArchive(f"manifest log {number} must be a map {{pubKey, addrs, records}}")
    try:
        public = PublicKey.from_bytes(raw["pubKey"])
    except (InvalidKey, TypeError) as exc:
        raise InvalidArchive(f"manifest log {number} key: {exc}") from None
    addrs = raw["addrs"]
    if not isinstance(addrs, list) or not all(isinstance(a, str) for a in addrs):
        raise InvalidArchive(f"manifest log {number} addrs must be a list of strings")
    if not isinstance(raw["records"], list):
        raise InvalidArchive(f"manifest log {number} records must be a list")
    records: list[Record] = []
    prev: bytes | None = None
    for links in raw["records"]:
        if not isinstance(links, list) or len(links) != 4:
            raise InvalidArchive(f"manifest log {number}: a record entry is not 4 CIDs")
        found = []
        for link in links:
            block = blocks.get(bytes(link)) if isinstance(link, Link) else None
            if block is None:
                raise InvalidArchive(
                    f"block {cid_to_string(bytes(link)) if isinstance(link, Link) else link!r} "
                    f"of log {public.peer_id} is missing from the archive"
                )
            found.append(block)
        try:
            record = open_record(
                RecordBlocks(*found), service_key=key, log_key=public, cid=bytes(links[0])
            )
        except DecryptionError:
            raise InvalidThreadKey(
                f"the key does not open record {cid_to_string(bytes(links[0]))}: a wrong key, "
                "or a record of another thread"
            ) from None
        if record.prev != prev:
            raise ChainError(
                f"record {cid_to_string(record.cid)} of log {public.peer_id} does not link to "
                "the record before it in the archive"
            )
        records.append(record)
        prev = record.cid
    return _LogEntry(public, tuple(addrs), records)


def _epoch_of(record: Record) -> int | None:
    try:
        return record.epoch
    except MalformedRecord:
        return None
