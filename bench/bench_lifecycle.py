"""Snapshots and compaction (docs/lifecycle.md): joins from a snapshot, disk after compaction.

Figures, each beside a baseline measured in the same run (joins over loopback libp2p,
two peers in this process, durable repos in a temporary directory):

- ``join_100k_from_snapshot``: join of 100,000 documents written in 100 transactions,
  from the source's snapshot (``new_db_from_addr(..., trust=[source])``), beside the
  join that pulls and applies every record (alternating rounds).
- ``join_100k_full``: the same join without ``trust=`` (every record pulled and applied,
  a record of creates in one batch, :mod:`threadkit.db.bulkreceive`), beside the previous
  path (every event applied one by one: ``bulkreceive.enabled = False``), in the same
  alternating rounds; its detail gives the same records applied with no network at all
  (``apply_only``), the bound a faster transfer could reach.
- ``join_20_saves_from_snapshot``: join of 10,000 documents each saved 20 times
  (210,000 events) from a snapshot, beside the full join.
- ``disk_after_compact``: the repo's ``data.mdb`` after the user path, ``db.compact`` then
  ``peer.reclaim()`` (the file swapped for LMDB's compacted copy), beside the same 10,000
  documents written once and reclaimed the same way (the file as written, in the detail);
  with the snapshot's blocks kept (joiners can start from it here) and dropped.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import threadkit as tk
from bench.harness import Figure, figure
from threadkit.db import bulkreceive

__all__ = ["run"]


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _join(
    root: Path, name: str, source: tk.Peer, db: tk.Database, trust: bool, bulk: bool = True
) -> float:
    """Seconds for a fresh durable peer to join ``db`` (from a snapshot when ``trust``;
    ``bulk`` False: received records applied event by event, the path before bulkreceive)."""
    addr, key = db.info().addrs[0], db.key
    bulkreceive.enabled = bulk
    try:
        with tk.Peer(root / name, network=True, pull_interval=0) as peer:
            seconds = _timed(
                lambda: peer.new_db_from_addr(
                    addr, key, timeout=600, trust=[source.identity] if trust else None
                )
            )
            joined = peer.get_db(db.id)
            assert joined["Items"].count() == db["Items"].count()
            assert not trust or any(s.held for s in joined.snapshots()), "no snapshot join"
    finally:
        bulkreceive.enabled = True
    return seconds


def _apply_only(root: Path, name: str, db: tk.Database) -> float:
    """Seconds to apply ``db``'s records in a fresh durable peer with no network at all:
    what the join's apply costs, the bound any transfer scheme leaves."""
    from threadkit.db.handoff import know_log, log_records, replica

    records = log_records(db)
    with tk.Peer(root / name, network=False) as peer:
        target = replica(peer, db)
        know_log(target, db)
        seconds = _timed(lambda: target.apply_records(db.log_id, records))
        assert target["Items"].count() == db["Items"].count()
    return seconds


def _many(root: Path, rounds: int) -> list[Figure]:
    docs, txns = 100_000, 100
    with tk.Peer(root / "src100k", network=True, pull_interval=0) as source:
        db = source.new_db("bench")
        coll = db.new_collection("Items")
        per = docs // txns
        for t in range(txns):
            coll.create(*({"n": t * per + i, "name": f"item-{t}-{i}"} for i in range(per)))
        snap = db.snapshot()
        fast, full, before, local = [], [], [], []
        for n in range(rounds):
            before.append(docs / _join(root, f"before{n}", source, db, False, bulk=False))
            full.append(docs / _join(root, f"full{n}", source, db, False))
            fast.append(docs / _join(root, f"fast{n}", source, db, True))
            local.append(docs / _apply_only(root, f"local{n}", db))
    return [
        figure(
            "join_100k_full",
            "docs/s",
            "the same join applying every event one by one (the previous path)",
            full,
            before,
            docs=docs,
            txns=txns,
            apply_only_best=round(max(local)),
            apply_only_median=round(sorted(local)[len(local) // 2]),
        ),
        figure(
            "join_100k_from_snapshot",
            "docs/s",
            "join pulling and applying every record",
            fast,
            full,
            docs=docs,
            txns=txns,
            snapshot_heads=sum(snap.heads.values()),
        ),
    ]


def _saves(root: Path, rounds: int) -> list[Figure]:
    docs, saves = 10_000, 20
    with tk.Peer(root / "src20", network=True, pull_interval=0) as source:
        db = source.new_db("bench")
        coll = db.new_collection("Items")
        coll.create(*({"_id": f"d{i}", "n": 0, "name": f"item-{i}"} for i in range(docs)))
        for s in range(saves):
            with coll.write_txn() as txn:
                txn.save(*({"_id": f"d{i}", "n": s + 1} for i in range(docs)))
        snap = db.snapshot()
        fast, full = [], []
        for n in range(rounds):
            full.append(_join(root, f"f20-{n}", source, db, False))
            fast.append(_join(root, f"s20-{n}", source, db, True))
        grown = _size(source)
        done = db.compact(snap)
        compacted = _size(source)
        started = time.perf_counter()
        kept = source.reclaim().after
        reclaim_seconds = time.perf_counter() - started
        db = source.get_db(db.id)  # reclaim reopened the databases
        with source.repo.transaction(write=True) as txn:  # what keep_blocks=False drops
            for cid, _ in _blocks(db, snap.cid):
                txn.delete(db.prefix + cid, db=db._tables.snapblocks)
        dropped = source.reclaim().after
    with tk.Peer(root / "once", network=False) as once:
        coll = once.new_db("bench").new_collection("Items")
        coll.create(*({"_id": f"d{i}", "n": saves, "name": f"item-{i}"} for i in range(docs)))
        as_written = _size(once)
        written_once = once.reclaim().after
    join = figure(
        "join_20_saves_from_snapshot",
        "joins/s",
        "join pulling and applying every record",
        [1 / s for s in fast],
        [1 / s for s in full],
        docs=docs,
        events=docs * (saves + 1),
        seconds_best=round(min(fast), 2),
        full_join_seconds_best=round(min(full), 2),
    )
    disk = Figure(
        figure="disk_after_compact",
        value=round(dropped / written_once, 2),
        unit="× the bytes of the documents written once",
        baseline="the same documents written once (data.mdb after peer.reclaim())",
        baseline_value=written_once,
        ratio=round(dropped / written_once, 2),
        median=round(dropped / written_once, 2),
        baseline_median=written_once,
        rounds=1,
        detail={
            "bytes_snapshot_blocks_dropped": dropped,
            "bytes_snapshot_blocks_kept": kept,
            "bytes_before_compact": grown,
            "bytes_after_compact_before_reclaim": compacted,
            "bytes_written_once_as_written": as_written,
            "reclaim_seconds": round(reclaim_seconds, 2),
            "ratio_blocks_kept": round(kept / written_once, 2),
            "records_dropped": done.records,
            "events_folded": done.events,
        },
    )
    return [join, disk]


def _size(peer: tk.Peer) -> int:
    """``st_size`` of the peer's LMDB file."""
    return (peer.repo.path / "data.mdb").stat().st_size


def _blocks(db: tk.Database, root: bytes) -> list[tuple[bytes, bytes]]:
    from threadkit.db.snapshots import get_blocks

    return get_blocks(db, root) or []


def run(rounds: int = 2) -> list[Figure]:
    """The join and disk figures (joins are slow: at most 3 rounds each)."""
    rounds = max(1, min(rounds, 3))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        return [*_many(root, rounds), *_saves(root, 1)]
