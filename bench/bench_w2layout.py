"""W2's alternative layout, measured (issue 16): a durable journal plus derived tables not synced.

``python -m bench.run w2layout`` (or ``python -m bench.bench_w2layout [--rounds N]
[--rebuild-docs N]``). Nothing here is threadkit's store: these are raw LMDB layouts
writing entries of the sizes one threadkit single-document commit writes (measured
from a durable repo, W2's collection: ten tables, 560 bytes of keys and 1,389 of
values, the 852-byte record included), each beside raw LMDB's one put per durable
commit in the same alternating rounds:

- ``today``: the ten entries in ten tables of one durable environment, one
  transaction (one ``fdatasync``) per commit: threadkit's layout without its Python.
- ``journal only``: one entry per durable commit carrying the whole commit's puts
  (table, key, value; ~2 KB) appended to one B-tree: the layout's synced part alone.
- ``wal``: the journal entry committed durably, then the ten entries written right
  after, in the same process, to a second environment opened with
  ``sync=False, metasync=False`` (plus the journal position it has applied). A
  commit returns once both are done, so reads see it.
- ``wal, writemap``: the same with the derived environment opened ``writemap=True``
  (LMDB writes its pages in the map instead of ``pwrite``: the unsynced commit's CPU).
- ``wal, record-sized entry``: the same with a journal entry of the record's size
  only (the record carries the commit; rebuilding from it needs threadkit's apply).
- ``split``: the store's three tables (records, log_index, heads: the record is the
  journal) durable, the seven tables of the document layer in a ``sync=False``
  environment: the split that would keep threadkit's formats.
- ``group commit``: today's layout, N single-document transactions per ``fdatasync``
  (labelled: a commit returns before it is durable, so this is not W2's semantics).
- threadkit's own W2 (durable) and its CPU per commit in memory (no sync) in the
  same rounds, and the rate threadkit would reach on the ``wal`` (``split``) layout,
  predicted as 1 / (threadkit's in-memory commit + the journal-only (split) commit).

Recovery: after a process kill nothing is lost (the derived environment's pages
are in the OS page cache; at most the journal tail past the derived environment's
applied position is applied again). After a power loss LMDB documents that an
environment opened with ``MDB_NOSYNC`` may be corrupt, so the derived environment
is rebuilt from the journal: measured here per 1,000,000 commits (``--rebuild-docs``,
default 100,000 scaled to 1,000,000; ``THREADKIT_BENCH_1M=1`` rebuilds 1,000,000),
with the disk bytes per commit of journal + derived against today's; and, for a
journal holding only the records (``split``), the rebuild by threadkit's own apply of
10,000 W2 records in a fresh in-memory replica, scaled to 1,000,000.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cbor2
import lmdb

from bench.bench_db import _docs
from bench.harness import Figure, emit, figure
from threadkit.peer import Peer

__all__ = ["ENTRY_SIZES", "commit_entries", "run"]

ENTRY_SIZES: tuple[tuple[str, int, int, str], ...] = (
    ("records", 36, 852, "hash"),
    ("log_index", 82, 36, "seq"),
    ("heads", 74, 44, "fixed"),
    ("db_access", 50, 95, "seq"),
    ("db_applied", 42, 8, "fixed"),
    ("db_docs", 38, 82, "seq"),
    ("db_events", 88, 184, "seq"),
    ("db_index", 58, 0, "seq"),
    ("db_inst", 38, 50, "seq"),
    ("db_order", 54, 38, "seq"),
)
"""(table, key bytes, value bytes, key order) of the entries one threadkit W2 commit
writes (a durable repo, 2026-12-04): ``hash`` keys are CIDs (random order), ``seq``
keys grow with the commit (ULIDs, stamps, counters), ``fixed`` keys are rewritten."""

RECORD_SIZE = 852
N_COMMITS = 1_000
GROUP = 10
MAP_SIZE = 1 << 34
APPLIED_KEY = b"\xffjournal-applied"


def commit_entries(i: int, salt: bytes = b"") -> list[tuple[int, bytes, bytes]]:
    """The ``(table, key, value)`` entries of commit ``i``, of threadkit's sizes."""
    seq = i.to_bytes(8, "big")
    digest = hashlib.sha256(salt + seq).digest()
    out = []
    for table, (_, klen, vlen, order) in enumerate(ENTRY_SIZES):
        if order == "hash":
            key = (b"\x01q\x12 " + digest)[:klen]
        elif order == "fixed":
            key = bytes(klen)
        else:
            key = bytes(klen - 8) + seq
        value = (digest * (vlen // 32 + 1))[:vlen]
        out.append((table, key, value))
    return out


def journal_entry(entries: list[tuple[int, bytes, bytes]]) -> bytes:
    """One journal value carrying a whole commit's puts."""
    return cbor2.dumps([list(e) for e in entries])


def _env(path: str, durable: bool, tables: int = 0, writemap: bool = False) -> Any:
    return lmdb.open(
        path,
        map_size=MAP_SIZE,
        sync=durable,
        metasync=durable,
        max_dbs=tables,
        writemap=writemap,
    )


def _tables(env: Any, count: int = len(ENTRY_SIZES)) -> list[Any]:
    return [env.open_db(name.encode()) for name, *_ in ENTRY_SIZES[:count]]


def _put_all(txn: Any, tables: list[Any], entries: list[tuple[int, bytes, bytes]]) -> None:
    for table, key, value in entries:
        txn.put(key, value, db=tables[table])


def _used_bytes(env: Any) -> int:
    return (env.info()["last_pgno"] + 1) * env.stat()["psize"]


class _Timed:
    """Rate and CPU per item of one round."""

    def __init__(self) -> None:
        self.rates: list[float] = []
        self.cpu_us: list[float] = []
        self.disk: list[float] = []

    def run(self, fn: Callable[[], tuple[int, int]]) -> None:
        cpu0, wall0 = os.times(), time.perf_counter()
        items, disk = fn()
        wall, cpu1 = time.perf_counter() - wall0, os.times()
        cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        self.rates.append(items / wall)
        self.cpu_us.append(cpu / items * 1e6)
        self.disk.append(disk / items)


def _today(commits: list[list[tuple[int, bytes, bytes]]]) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as tmp:
        env = _env(tmp, True, len(ENTRY_SIZES))
        tables = _tables(env)
        for entries in commits:
            with env.begin(write=True) as txn:
                _put_all(txn, tables, entries)
        used = _used_bytes(env)
        env.close()
    return len(commits), used


def _group(commits: list[list[tuple[int, bytes, bytes]]], per_sync: int) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as tmp:
        env = _env(tmp, False, len(ENTRY_SIZES))
        tables = _tables(env)
        for i, entries in enumerate(commits, start=1):
            with env.begin(write=True) as txn:
                _put_all(txn, tables, entries)
            if i % per_sync == 0:
                env.sync(True)
        env.sync(True)
        used = _used_bytes(env)
        env.close()
    return len(commits), used


def _journal_only(values: list[bytes]) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as tmp:
        env = _env(tmp, True)
        for i, value in enumerate(values):
            with env.begin(write=True) as txn:
                txn.put(i.to_bytes(8, "big"), value, append=True)
        used = _used_bytes(env)
        env.close()
    return len(values), used


def _wal(
    commits: list[list[tuple[int, bytes, bytes]]], values: list[bytes], writemap: bool = False
) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as tmp:
        journal = _env(str(Path(tmp) / "journal"), True)
        derived = _env(str(Path(tmp) / "derived"), False, len(ENTRY_SIZES), writemap)
        tables = _tables(derived)
        for i, (entries, value) in enumerate(zip(commits, values, strict=True)):
            seq = i.to_bytes(8, "big")
            with journal.begin(write=True) as txn:
                txn.put(seq, value, append=True)
            with derived.begin(write=True) as txn:
                _put_all(txn, tables, entries)
                txn.put(APPLIED_KEY, seq, db=tables[4])
        used = _used_bytes(journal) + _used_bytes(derived)
        journal.close()
        derived.close()
    return len(commits), used


STORE_TABLES = 3
"""The first three of :data:`ENTRY_SIZES` (records, log_index, heads): the store's log."""


def _split(commits: list[list[tuple[int, bytes, bytes]]]) -> tuple[int, int]:
    """The store's three tables durable (the record is the journal), the seven tables of
    the document layer in a sync=False environment, written right after."""
    with tempfile.TemporaryDirectory() as tmp:
        log_env = _env(str(Path(tmp) / "log"), True, STORE_TABLES)
        derived = _env(str(Path(tmp) / "derived"), False, len(ENTRY_SIZES))
        log_tables = _tables(log_env, STORE_TABLES)
        tables = _tables(derived)
        for entries in commits:
            with log_env.begin(write=True) as txn:
                _put_all(txn, log_tables, entries[:STORE_TABLES])
            with derived.begin(write=True) as txn:
                _put_all(txn, tables, entries[STORE_TABLES:])
        used = _used_bytes(log_env) + _used_bytes(derived)
        log_env.close()
        derived.close()
    return len(commits), used


def _threadkit(docs: list[dict[str, Any]], memory: bool) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as tmp:
        peer = Peer(memory=True, network=False) if memory else Peer(Path(tmp) / "repo")
        with peer:
            coll = peer.new_db("bench").new_collection("People", indexes=["name"])
            for doc in docs:
                coll.create(doc)
    return len(docs), 0


def _commit_figures(rounds: int) -> list[Figure]:
    commits = [commit_entries(i) for i in range(N_COMMITS)]
    values = [journal_entry(e) for e in commits]
    small = [v[:RECORD_SIZE] + bytes(8) for v in values]
    docs = _docs(N_COMMITS)
    layouts: dict[str, Callable[[], tuple[int, int]]] = {
        "today": lambda: _today(commits),
        "journal": lambda: _journal_only(values),
        "wal": lambda: _wal(commits, values),
        "wal_record_entry": lambda: _wal(commits, small),
        "wal_writemap": lambda: _wal(commits, values, writemap=True),
        "split": lambda: _split(commits),
        "group": lambda: _group(commits, GROUP),
        "threadkit_durable": lambda: _threadkit(docs, memory=False),
        "threadkit_memory": lambda: _threadkit(docs, memory=True),
    }
    single = _Timed()
    timed = {name: _Timed() for name in layouts}
    for _ in range(rounds):
        for name, fn in layouts.items():
            single.run(lambda: _single_put(docs))
            timed[name].run(fn)
    return _summarise(
        single,
        timed,
        {
            "journal": len(values[0]),
            "wal": len(values[0]),
            "wal_writemap": len(values[0]),
            "wal_record_entry": len(small[0]),
        },
    )


def _single_put(docs: list[dict[str, Any]]) -> tuple[int, int]:
    """The baseline, as W2's (``bench_db``): one CBOR document put per durable commit."""
    with tempfile.TemporaryDirectory() as tmp:
        env = lmdb.open(tmp, map_size=1 << 30, sync=True, metasync=True)
        for j, doc in enumerate(docs):
            with env.begin(write=True) as txn:
                txn.put(j.to_bytes(8, "big"), cbor2.dumps(doc))
        used = _used_bytes(env)
        env.close()
    return len(docs), used


def _summarise(
    single: _Timed, timed: dict[str, _Timed], entry_bytes: dict[str, int]
) -> list[Figure]:
    n = len(timed)
    labels = {
        "today": "raw LMDB, today's layout: ten tables, one durable commit each",
        "journal": "raw LMDB, the journal alone: one ~2 KB entry per durable commit",
        "wal": "raw LMDB, journal durable + ten derived tables in a sync=False environment",
        "wal_record_entry": "the same with a record-sized journal entry (852 bytes)",
        "wal_writemap": "wal, the derived environment opened with writemap=True "
        "(its pages written in the map, no pwrite)",
        "split": "raw LMDB, the store's three tables (records, log_index, heads) durable, "
        "the seven document tables in a sync=False environment",
        "group": f"raw LMDB, today's layout, {GROUP} transactions per fdatasync "
        "(labelled: not W2's semantics)",
        "threadkit_durable": "threadkit W2 today (durable repo)",
        "threadkit_memory": "threadkit, same creates, in memory (no sync): its CPU",
    }
    figs = []
    for i, (name, t) in enumerate(timed.items()):
        base = single.rates[i::n]
        base_cpu = single.cpu_us[i::n]
        figs.append(
            figure(
                f"W2L_{name}",
                "commits/s",
                "raw LMDB one put per durable commit",
                t.rates,
                base,
                what=labels[name],
                commits=N_COMMITS,
                cpu_us_per_commit_median=round(statistics.median(t.cpu_us), 1),
                baseline_cpu_us_per_commit_median=round(statistics.median(base_cpu), 1),
                disk_bytes_per_commit=round(statistics.median(t.disk)) if t.disk[0] else None,
                journal_entry_bytes=entry_bytes.get(name),
                **_quiet(t.rates, base),
                load=os.getloadavg()[0],
            )
        )
    mem = timed["threadkit_memory"]
    predictions = {
        "wal": ("journal", "the journal-only durable commit"),
        "split": ("split", "the split layout's commit (its unsynced part counted twice)"),
    }
    for layout, (part, what) in predictions.items():
        rates = [1 / (1 / m + 1 / j) for m, j in zip(mem.rates, timed[part].rates, strict=True)]
        idx = list(timed).index(part)
        figs.append(
            figure(
                f"W2L_threadkit_on_{layout}_predicted",
                "commits/s",
                f"raw LMDB one put per durable commit (the {part} rounds)",
                rates,
                single.rates[idx::n],
                what=f"1 / (threadkit's in-memory commit + {what}), per round: "
                "a prediction, not a measurement of threadkit",
            )
        )
    return figs


def _quiet(work: list[float], base: list[float]) -> dict[str, Any]:
    """Ratios that leave out rounds slowed by other processes' disk traffic: best to best,
    and the median over the rounds whose baseline ran at ≥ half its best rate."""
    top = max(base)
    quiet = [w / b for w, b in zip(work, base, strict=True) if b >= top / 2]
    return {
        "ratio_best_to_best": round(max(work) / top, 3),
        "ratio_quiet_rounds": round(statistics.median(quiet), 3),
        "quiet_rounds": len(quiet),
    }


def _journal_values(count: int) -> Iterator[tuple[bytes, bytes]]:
    for i in range(count):
        yield i.to_bytes(8, "big"), journal_entry(commit_entries(i))


def rebuild(count: int) -> Figure:
    """Write a journal of ``count`` commits, then rebuild the derived tables from it.

    The rebuild reads the journal in order, decodes each entry and puts its entries
    into a fresh environment (sync=False, one transaction per 10,000 commits, one
    sync at the end), as recovery after a power loss would.
    """
    with tempfile.TemporaryDirectory() as tmp:
        journal = _env(str(Path(tmp) / "journal"), False)
        start = time.perf_counter()
        pending = _journal_values(count)
        while True:
            batch = list(zip(range(10_000), pending, strict=False))
            if not batch:
                break
            with journal.begin(write=True) as txn:
                txn.cursor().putmulti((kv for _, kv in batch), append=True)
        journal.sync(True)
        write_s = time.perf_counter() - start
        journal_bytes = _used_bytes(journal)
        derived = _env(str(Path(tmp) / "derived"), False, len(ENTRY_SIZES))
        tables = _tables(derived)
        cpu0, start = os.times(), time.perf_counter()
        with journal.begin() as rtxn:
            cursor = rtxn.cursor()
            more = cursor.first()
            while more:
                with derived.begin(write=True) as txn:
                    for _ in range(10_000):
                        if not more:
                            break
                        seq, value = cursor.item()
                        _put_all(txn, tables, cbor2.loads(value))
                        txn.put(APPLIED_KEY, seq, db=tables[4])
                        more = cursor.next()
        derived.sync(True)
        rebuild_s = time.perf_counter() - start
        cpu1 = os.times()
        derived_bytes = _used_bytes(derived)
        journal.close()
        derived.close()
    scale = 1_000_000 / count
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return figure(
        "W2L_rebuild_derived_from_journal",
        "s per 1,000,000 commits",
        "writing the journal itself (bulk, 10,000 per txn), s per 1,000,000",
        [rebuild_s * scale],
        [write_s * scale],
        commits=count,
        measured_s=round(rebuild_s, 2),
        cpu_s_per_million=round(cpu * scale, 2),
        journal_bytes_per_commit=round(journal_bytes / count),
        derived_bytes_per_commit=round(derived_bytes / count),
        load=os.getloadavg()[0],
    )


def rebuild_by_apply(count: int) -> Figure:
    """Rebuild the document layer from the records alone, by threadkit's own apply.

    ``count`` single-document commits (W2's records) are written in memory; a fresh
    in-memory replica (no sync, as a derived environment) then applies them all in one
    ``apply_records``, as it would re-apply a record journal. Baseline: reading and
    opening (decrypt, check) the same records.
    """
    from threadkit.db.handoff import know_log, log_records, replica

    docs = _docs(count)
    with Peer(memory=True, network=False) as src, Peer(memory=True, network=False) as dst:
        db = src.new_db("bench")
        coll = db.new_collection("People", indexes=["name"])
        for doc in docs:
            coll.create(doc)
        start = time.perf_counter()
        records = log_records(db)
        open_s = time.perf_counter() - start
        target = replica(dst, db)
        know_log(target, db)
        cpu0, start = time.process_time(), time.perf_counter()
        target.apply_records(db.log_id, records)
        apply_s, cpu = time.perf_counter() - start, time.process_time() - cpu0
        assert target["People"].count() == count
    scale = 1_000_000 / count
    return figure(
        "W2L_rebuild_by_threadkit_apply",
        "s per 1,000,000 commits",
        "reading and opening the same records, s per 1,000,000",
        [apply_s * scale],
        [open_s * scale],
        commits=count,
        measured_s=round(apply_s, 2),
        cpu_s_per_million=round(cpu * scale, 1),
        load=os.getloadavg()[0],
    )


def run(rounds: int = 5) -> list[Figure]:
    """The layouts' commit rates beside raw LMDB's single put, and the rebuilds."""
    count = 1_000_000 if os.environ.get("THREADKIT_BENCH_1M") else 100_000
    return [*_commit_figures(rounds), rebuild(count), rebuild_by_apply(10_000)]


def main() -> None:
    """``python -m bench.bench_w2layout``: the figures as JSON lines."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_w2layout")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rebuild-docs", type=int, default=None)
    parser.add_argument("--no-rebuild", action="store_true")
    parser.add_argument("--apply-docs", type=int, default=10_000)
    args = parser.parse_args()
    for fig in _commit_figures(args.rounds):
        emit(fig)
    if not args.no_rebuild:
        count = args.rebuild_docs or (
            1_000_000 if os.environ.get("THREADKIT_BENCH_1M") else 100_000
        )
        emit(rebuild(count))
        emit(rebuild_by_apply(args.apply_docs))


if __name__ == "__main__":
    main()
