"""Snapshots: a database's folded state at a head set, content-addressed, signed, in the thread.

``db.snapshot()`` (:func:`take`) writes a **checkpoint** of the document store as it
stands after exactly the records of a head set ``{log: counter}``: every row the records
fold into (collection configs, documents, instances, the per-instance event index,
unique claims, lost writes, the history order and the access entries), under keys
without the database's local prefix, so the state is the same bytes on every peer that
applied the same records (docs/semantics.md). The rows go into DAG-CBOR **chunk**
blocks; a **manifest** block links them and names the heads:

.. code-block:: text

    chunk    {"t": <table>, "z": zlib(CBOR [key, value, key, value, …])}
    manifest {"format": "threadkit/snapshot/1", "thread": <thread id bytes>,
              "heads": [{"log": <log id bytes>, "pub": <log public key bytes>,
                         "counter": <int>, "head": CID | null}, …],
              "chunks": [CID, …], "frontier": <order key of the newest event, or b"">,
              # a database with members only (threadkit/db/snapmembers.py):
              "members": [CID, …], "epoch": <int>, "commits": <bytes>}

In a database with members, ``z`` is encrypted under the read key of key epoch
``epoch`` (the keys named by ``commits``), and the ``members`` blocks carry every
membership record up to the heads, whole and signed, so that a joiner folds them with
the normal code (:mod:`.snapmembers`, docs/access.md).

The manifest's CID names the snapshot. It is carried as a **record** in the author's own
log, right after the heads it was taken at: the record's body is
``{v: 1, events: [], w: <writer proof>, s: {root: CID(manifest), t: [wall, logical]}}``
(``t``, its stamp, places it in the members fold), signed by the log
key and proved by the author's writer proof like every record, so the author's
signature covers the manifest and, through its links, every chunk. The record's
``prev`` is the author log's head in the manifest. Peers replicate the record as any
other; the blocks stay with the peers that made or received them (table
``db_snapblocks``), who serve them to joiners (:mod:`.bootstrap`).

Examples
--------
>>> import threadkit as tk
>>> with tk.Peer(memory=True) as peer:
...     db = peer.new_db("notes")
...     _ = db.new_collection("Notes").create({"_id": "a", "n": 1})
...     snap = db.snapshot()
...     (snap.heads == {db.log_id: 2}, [s.cid for s in db.snapshots()] == [snap.cid])
(True, True)
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cbor2

from threadkit.core import dagcbor
from threadkit.core.cid import cid_of, cid_to_string
from threadkit.core.identity import peer_id_bytes
from threadkit.core.records import Record, create_record
from threadkit.core.symmetric import SymmetricKey
from threadkit.db import snapmembers
from threadkit.db.events import Body, encode_body
from threadkit.errors import InvalidInput, InvalidSnapshot, StoreError
from threadkit.store import chain
from threadkit.store.layout import log_id_from_bytes
from threadkit.store.logs import list_logs
from threadkit.store.txntypes import StoreTxn, StoreWriteTxn

if TYPE_CHECKING:
    from threadkit.db.change import Change
    from threadkit.db.database import Database
    from threadkit.db.doctables import DocTables

__all__ = [
    "FORMAT",
    "PREFIXED_VALUES",
    "STATE_TABLES",
    "Snapshot",
    "block_cids",
    "chunks_of",
    "get_blocks",
    "get_snapshot",
    "held_blocks",
    "list_snapshots",
    "manifest_of",
    "mark_in",
    "note",
    "put_blocks",
    "read_chunk",
    "state_blocks",
    "take",
]

FORMAT = "threadkit/snapshot/1"
"""The ``format`` of a snapshot manifest."""

STATE_TABLES = ("colls", "docs", "inst", "events", "index", "lost", "losers", "order", "access")
"""The document store's tables a snapshot holds (``DocTables`` fields): every one the
records fold into. ``db_applied`` (how far this peer has applied each log) is local."""

PREFIXED_VALUES = frozenset({"order"})
"""Tables whose values start with the database's prefix (``db_order``: ``coll ‖ 00 ‖ id``):
a snapshot holds them without it, and a joiner puts its own prefix back, so the state is
the same bytes whichever prefix the database has in each repo."""

CHUNK_BYTES = 1 << 20
"""Bytes of rows per chunk block, about."""

BLOCKS_TABLE = "db_snapblocks"
"""``prefix ‖ CID`` → block: the snapshot blocks this peer holds."""
SNAPS_TABLE = "db_snaps"
"""``prefix ‖ "s" ‖ CID(manifest)`` → CBOR entry of a snapshot record in the thread;
``prefix ‖ "base"`` → the snapshot a bootstrapped database started from;
``prefix ‖ "r" ‖ u32be`` → the replayed rows that replaced a wrong base (:mod:`.basestate`);
``prefix ‖ "compacted"`` → the snapshot a compaction dropped history before."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A snapshot record of a database.

    Attributes
    ----------
    cid : bytes
        The manifest's CID: the snapshot's name (``str(snap)`` is its ``bafy…`` text).
    record : bytes
        The CID of the record that carries it.
    log : str
        The log holding that record (the author's log).
    counter : int
        The record's counter in that log.
    author : str
        The public key string of the author (the record's writer, proved).
    heads : dict[str, int]
        The head set the state was folded at: ``{log id: counter}``.
    held : bool
        True when this peer holds the snapshot's blocks (it can serve and check them).
    status : str
        ``"made"`` (written here), ``"received"`` (its record arrived; not checked),
        ``"verified"`` (a replay of the records gave the same state) or ``"bad"``
        (a replay gave another state: the snapshot is ignored), or ``"unverifiable"`` (this
        peer bootstrapped from it and no peer holds the records before it any more).
    """

    cid: bytes
    record: bytes
    log: str
    counter: int
    author: str
    heads: dict[str, int]
    held: bool
    status: str

    def __str__(self) -> str:
        return cid_to_string(self.cid)

    def __repr__(self) -> str:
        return (
            f"Snapshot({cid_to_string(self.cid)}, by {self.author[:16]}…, "
            f"heads={sum(self.heads.values())} records, {self.status})"
        )


# ------------------------------------------------------------------------ state


def _tables(db: Database) -> dict[str, Any]:
    return {name: getattr(db._tables, name) for name in STATE_TABLES}


def state_rows(txn: StoreTxn, db: Database) -> Iterator[tuple[str, list[bytes]]]:
    """Per table of :data:`STATE_TABLES`, runs of its rows (keys without the prefix, and
    the values of ``order``, which are instance keys, too: see :data:`PREFIXED_VALUES`)."""
    prefix = db.prefix
    start = len(prefix)
    for name, table in _tables(db).items():
        cursor = txn.cursor(table)
        if not cursor.set_range(prefix):
            continue
        rows: list[bytes] = []
        size = 0
        strip = name in PREFIXED_VALUES
        for key, value in cursor.iternext():
            if not key.startswith(prefix):
                break
            rows.append(bytes(key[start:]))
            rows.append(bytes(value[start:] if strip else value))
            size += len(key) + len(value)
            if size >= CHUNK_BYTES:
                yield name, rows
                rows, size = [], 0
        if rows:
            yield name, rows


def state_blocks(
    txn: StoreTxn, db: Database, seal: SymmetricKey | None = None
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The chunk blocks of the database's state, ``(cid, block)``, and its frontier.

    A chunk is canonical DAG-CBOR ``{t: <table>, z: <bytes>}``, ``z`` the zlib
    compression (level 1) of the CBOR array ``[key, value, …]``: the rows repeat
    authors, record CIDs and field names, and shrink about fourfold, which is what a
    joiner waits for. Chunks are cut by uncompressed size, so the rows each holds do not
    depend on the zlib build; :func:`read_chunk` reads one back. With ``seal`` (a
    database with members) ``z`` is then encrypted under it.
    """
    blocks = []
    for name, rows in state_rows(txn, db):
        packed = zlib.compress(cbor2.dumps(rows), 1)
        if seal is not None:
            packed = seal.encrypt(packed)
        block = cbor2.dumps({"t": name, "z": packed}, canonical=True)
        blocks.append((cid_of(block), block))
    cursor = txn.cursor(db._tables.order)
    bound = (int.from_bytes(db.prefix, "big") + 1).to_bytes(4, "big")
    positioned = cursor.prev() if cursor.set_range(bound) else cursor.last()
    key = bytes(cursor.key()) if positioned else b""
    frontier = key[len(db.prefix) :] if key.startswith(db.prefix) else b""
    return blocks, frontier


MAX_CHUNK_ROWS = 64 * 1024 * 1024
"""Bytes a chunk's rows may take uncompressed (a chunk is cut at about 1 MiB)."""


def read_chunk(block: bytes, key: SymmetricKey | None = None) -> tuple[str, list[bytes]]:
    """A chunk block's table and rows ``[key, value, …]``; InvalidSnapshot when malformed.

    ``key`` opens the chunk of a database with members (:func:`.snapmembers.chunk_key`).
    Decompression is bounded by :data:`MAX_CHUNK_ROWS`, so a small block cannot expand
    into gigabytes.
    """
    try:
        node = cbor2.loads(block)
        name, packed = (node.get("t"), node.get("z")) if isinstance(node, dict) else (None, None)
        if not isinstance(packed, bytes):
            raise InvalidSnapshot("a snapshot chunk is not a table's rows")
        if key is not None:
            packed = snapmembers.decrypt(packed, key)
        inflate = zlib.decompressobj()
        raw = inflate.decompress(packed, MAX_CHUNK_ROWS)
        if inflate.unconsumed_tail or not inflate.eof:
            raise InvalidSnapshot("a snapshot chunk is truncated or over its size limit")
        rows = cbor2.loads(raw)
    except InvalidSnapshot:
        raise
    except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError, RecursionError) as exc:
        raise InvalidSnapshot(f"a snapshot chunk does not decode: {exc}") from None
    except zlib.error as exc:
        raise InvalidSnapshot(f"a snapshot chunk does not decompress: {exc}") from None
    if name not in STATE_TABLES or not isinstance(rows, list) or len(rows) % 2:
        raise InvalidSnapshot("a snapshot chunk is not a table's rows")
    if not all(isinstance(r, bytes) for r in rows):
        raise InvalidSnapshot("a snapshot chunk holds rows that are not bytes")
    return name, rows


def manifest_of(
    db: Database,
    heads: list[dict[str, Any]],
    chunks: list[bytes],
    frontier: bytes,
    sealed: tuple[list[bytes], int, bytes] | None = None,
) -> bytes:
    """The manifest block (DAG-CBOR) of a snapshot; ``sealed`` is ``(members blocks,
    epoch, commitments)`` of a database with members."""
    node: dict[str, Any] = {
        "format": FORMAT,
        "thread": db.id.to_bytes(),
        "heads": [{**h, "head": dagcbor.Link(h["head"]) if h["head"] else None} for h in heads],
        "chunks": [dagcbor.Link(c) for c in chunks],
        "frontier": frontier,
    }
    if sealed is not None:
        node.update(members=[dagcbor.Link(c) for c in sealed[0]], epoch=sealed[1])
        node["commits"] = sealed[2]
    return dagcbor.encode(node)


def chunks_of(manifest: bytes) -> dict[str, Any]:
    """A manifest block decoded and its shape checked; InvalidSnapshot when it is not one."""
    try:
        node = dagcbor.decode(manifest, "snapshot manifest")
    except (InvalidInput, StoreError) as exc:
        raise InvalidSnapshot(f"snapshot manifest does not decode: {exc}") from None
    if not isinstance(node, dict) or node.get("format") != FORMAT:
        raise InvalidSnapshot(f"not a {FORMAT} manifest")
    heads, chunks, frontier = node.get("heads"), node.get("chunks"), node.get("frontier")
    if not isinstance(heads, list) or not isinstance(chunks, list):
        raise InvalidSnapshot("snapshot manifest: heads and chunks must be lists")
    if not isinstance(frontier, bytes) or not isinstance(node.get("thread"), bytes):
        raise InvalidSnapshot("snapshot manifest: thread and frontier must be bytes")
    for head in heads:
        if (
            not isinstance(head, dict)
            or not isinstance(head.get("log"), bytes)
            or not isinstance(head.get("pub"), bytes)
            or isinstance(head.get("counter"), bool)
            or not isinstance(head.get("counter"), int)
            or head["counter"] < 0
            or (head.get("head") is None) != (head["counter"] == 0)
        ):
            raise InvalidSnapshot(f"snapshot manifest: malformed head {head!r:.200}")
    if not all(isinstance(c, bytes) for c in chunks):
        raise InvalidSnapshot("snapshot manifest: chunks must be CIDs")
    if "members" in node or "epoch" in node or "commits" in node:
        listed, epoch, commits = node.get("members"), node.get("epoch"), node.get("commits")
        if (
            not isinstance(listed, list)
            or not all(isinstance(c, bytes) for c in listed)
            or type(epoch) is not int
            or epoch < 0
            or not isinstance(commits, bytes)
            or (epoch == 0) != (commits == b"")
            or len(commits) % 32
        ):
            raise InvalidSnapshot("snapshot manifest: malformed members, epoch or commits")
    return node


def block_cids(node: dict[str, Any]) -> list[bytes]:
    """The CIDs of every block a decoded manifest links: its chunks, then its members."""
    return [bytes(c) for c in [*node["chunks"], *node.get("members", [])]]


def heads_of(node: dict[str, Any]) -> dict[str, int]:
    """``{log id: counter}`` of a decoded manifest."""
    return {log_id_from_bytes(bytes(h["log"])): h["counter"] for h in node["heads"]}


# ------------------------------------------------------------------------ taking


def take(db: Database) -> Snapshot:
    """Write a snapshot of ``db`` at its current heads (see :meth:`Database.snapshot`)."""
    made: list[tuple[Snapshot, list[tuple[bytes, bytes]]]] = []

    def attempt(txn: StoreWriteTxn) -> tuple[Record, list[Change]]:
        heads = []
        applied = db.gate.heads(txn)
        infos = sorted(list_logs(txn, db._repo.tables, db.id), key=lambda i: i.id)
        for info in infos:
            if applied.get(info.id, 0) != info.counter:
                raise InvalidInput(
                    f"log {info.id} of {db.name!r} holds records not applied yet: "
                    "a snapshot is taken once they are"
                )
            heads.append(
                {
                    "log": peer_id_bytes(info.id),
                    "pub": info.public.to_bytes(),
                    "counter": info.counter,
                    "head": info.head,
                }
            )
        sealed, seal, listed = None, None, []
        if db.gate.has_members(txn):
            locked = [e for e in db.gate.fold(txn)[0] if e.kind == "locked"]
            if locked:
                raise InvalidInput(
                    f"database {db.name!r} holds record {locked[0].log}:{locked[0].counter} "
                    "of a key epoch this peer cannot read: it cannot fold it into a snapshot"
                )
            base = mark_in(txn, db._tables, db.prefix, "base")  # a bootstrapped database
            held = held_blocks(txn, db, base["root"], "members") if base else []
            listed = snapmembers.member_blocks(txn, db, held)
            epoch, commits, seal = snapmembers.sealing_key(db.gate.ring(txn))
            sealed = ([cid for cid, _ in listed], epoch, commits)
        chunks, frontier = state_blocks(txn, db, seal)
        manifest = manifest_of(db, heads, [cid for cid, _ in chunks], frontier, sealed)
        root = cid_of(manifest)
        blocks = [(root, manifest), *chunks, *listed]
        stamp = db.hlc.now()
        db.gate.admit(txn, "write", db.identity, stamp)
        node = {"root": root, "t": [stamp.wall, stamp.logical]}
        body = encode_body([], db.gate.proof(db.identity, []), snapshot=node)
        record = create_record(
            body, log_key=db.log_key, key=db.key, prev=db._head(txn), author=db.identity.public
        )
        counter = chain.append(txn, db._repo.tables, db.id, db.log_id, [record])
        db._set_applied(txn, db._log_bytes, counter)
        # the access entry every receiver makes of this record, so states stay equal
        db.gate.note(txn, db.log_id, counter, record)
        db.gate.settle(txn)
        put_blocks(txn, db._tables, db.prefix, blocks)
        snap = Snapshot(
            root,
            record.cid,
            db.log_id,
            counter,
            str(db.identity.public),
            {info.id: info.counter for info in infos},
            True,
            "made",
        )
        _put_entry(txn, db, snap)
        made[:] = [(snap, blocks)]
        return record, []

    record, _ = db._rounds(attempt)
    db._after_commit([], record)
    return made[0][0]


# ----------------------------------------------------------------- the index


def _snaps(db: Database) -> Any:
    return db._tables.snaps


def _blocks_table(db: Database) -> Any:
    return db._tables.snapblocks


def put_blocks(
    txn: StoreWriteTxn, tables: DocTables, prefix: bytes, blocks: list[tuple[bytes, bytes]]
) -> None:
    """Keep a database's snapshot blocks (already checked against their CIDs)."""
    for cid, block in blocks:
        txn.put(prefix + cid, block, db=tables.snapblocks)


def get_blocks(db: Database, root: bytes) -> list[tuple[bytes, bytes]] | None:
    """The blocks of a snapshot: manifest, chunks, members blocks; None unless all held."""
    table = _blocks_table(db)
    with db.read_txn() as txn:
        manifest = txn.get(db.prefix + root, db=table)
        if manifest is None:
            return None
        out = [(root, bytes(manifest))]
        for cid in block_cids(chunks_of(bytes(manifest))):
            block = txn.get(db.prefix + cid, db=table)
            if block is None:
                return None
            out.append((cid, bytes(block)))
    return out


def held_blocks(txn: StoreTxn, db: Database, root: bytes, part: str) -> list[tuple[bytes, bytes]]:
    """The ``chunks`` or ``members`` blocks of a snapshot this peer holds, in ``txn``;
    InvalidSnapshot when one is not held."""
    table = _blocks_table(db)
    manifest = txn.get(db.prefix + root, db=table)
    if manifest is None:
        raise InvalidSnapshot(f"this peer does not hold snapshot {cid_to_string(root)}")
    out = []
    for cid in chunks_of(bytes(manifest)).get(part, []):
        block = txn.get(db.prefix + bytes(cid), db=table)
        if block is None:
            raise InvalidSnapshot(f"this peer lacks block {cid_to_string(cid)} of a snapshot")
        out.append((bytes(cid), bytes(block)))
    return out


def _put_entry(txn: StoreWriteTxn, db: Database, snap: Snapshot) -> None:
    entry = {
        "record": snap.record,
        "log": snap.log,
        "counter": snap.counter,
        "author": snap.author,
        "heads": snap.heads,
        "status": snap.status,
    }
    txn.put(db.prefix + b"s" + snap.cid, cbor2.dumps(entry), db=_snaps(db))


def _entry(db: Database, cid: bytes, value: bytes, held: bool) -> Snapshot:
    e = cbor2.loads(value)
    return Snapshot(
        cid, e["record"], e["log"], e["counter"], e["author"], e["heads"], held, e["status"]
    )


def list_snapshots(db: Database) -> list[Snapshot]:
    """Every snapshot record this peer holds or held, oldest first (by record)."""
    table, blocks = _snaps(db), _blocks_table(db)
    start = db.prefix + b"s"
    out = []
    with db.read_txn() as txn:
        cursor = txn.cursor(table)
        if cursor.set_range(start):
            for key, value in cursor.iternext():
                if not key.startswith(start):
                    break
                cid = bytes(key[len(start) :])
                held = txn.get(db.prefix + cid, db=blocks) is not None
                out.append(_entry(db, cid, bytes(value), held))
    out.sort(key=lambda s: (sum(s.heads.values()), s.log, s.counter))
    return out


def get_snapshot(db: Database, which: Snapshot | bytes | str) -> Snapshot:
    """A snapshot of ``db`` by value, CID or CID text; InvalidSnapshot when unknown."""
    if isinstance(which, Snapshot):
        cid = which.cid
    elif isinstance(which, bytes):
        cid = which
    elif isinstance(which, str):
        from threadkit.core.cid import cid_from_string

        try:
            cid = cid_from_string(which)
        except InvalidInput:
            raise InvalidSnapshot(f"{which[:80]!r} is not a snapshot CID") from None
    else:
        raise InvalidSnapshot(f"expected a Snapshot or its CID, got {type(which).__name__}")
    for snap in list_snapshots(db):
        if snap.cid == cid:
            return snap
    raise InvalidSnapshot(f"database {db.name!r} has no snapshot {cid_to_string(cid)}")


def set_status(
    db: Database, snap: Snapshot, status: str, txn: StoreWriteTxn | None = None
) -> Snapshot:
    """Record a snapshot's status (``verified``, ``bad``), in ``txn`` when given."""
    new = Snapshot(
        snap.cid, snap.record, snap.log, snap.counter, snap.author, snap.heads, snap.held, status
    )
    if txn is not None:
        _put_entry(txn, db, new)
        return new
    with db._repo.transaction(write=True) as own:
        _put_entry(own, db, new)
    return new


def note(
    txn: StoreWriteTxn, db: Database, log_id: str, counter: int, record: Record, body: Body
) -> None:
    """Index a snapshot record received (called by the gate for records with ``s``)."""
    node = body.snapshot or {}
    root = node.get("root")
    if not isinstance(root, bytes) or len(root) != 36:
        return
    key = db.prefix + b"s" + root
    if txn.get(key, db=_snaps(db)) is not None:
        return
    manifest = txn.get(db.prefix + root, db=_blocks_table(db))
    heads = heads_of(chunks_of(bytes(manifest))) if manifest is not None else {}
    _put_entry(
        txn,
        db,
        Snapshot(root, record.cid, log_id, counter, str(record.author), heads, False, "received"),
    )


def mark(db: Database, which: str) -> dict[str, Any] | None:
    """The ``base`` or ``compacted`` mark of a database (None when it has none)."""
    with db.read_txn() as txn:
        return mark_in(txn, db._tables, db.prefix, which)


def mark_in(txn: StoreTxn, tables: DocTables, prefix: bytes, which: str) -> dict[str, Any] | None:
    """:func:`mark` in a transaction."""
    raw = txn.get(prefix + which.encode(), db=tables.snaps)
    return cbor2.loads(raw) if raw else None


def put_mark(
    txn: StoreWriteTxn, tables: DocTables, prefix: bytes, which: str, value: dict[str, Any]
) -> None:
    """Set the ``base`` or ``compacted`` mark of a database."""
    txn.put(prefix + which.encode(), cbor2.dumps(value), db=tables.snaps)
