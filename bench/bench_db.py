"""Document store figures W1, W2, W3a, W3b (docs/design.md §9), each beside a same-run baseline.

- W1: 10,000 small documents, 1,000 per transaction, durable — vs raw LMDB puts of the
  same documents (CBOR), 1,000 per durable transaction; with generated ids, with ids the
  documents bring (``_id``), and with a unique index on ``name``.
- W2: 1,000 single-document transactions, durable — vs raw LMDB, one put per durable commit,
  and (in the same rounds) raw LMDB writing one entry into each of nine tables per durable
  commit, as a threadkit commit does (the bound: bench/RESULTS.md).
- W3a: equality on an indexed field, 1,000 hits of 10,000 documents, as dicts — vs sqlite3
  (stdlib, in memory and durable) with an index, and a plain LMDB index scan.
- W3b: range filter without an index over 10,000 documents, a different threshold each
  call (never a cached result), as a DataFrame — with the collection's frame cached, with
  nothing cached (a columnar scan), and as the second query after that (which builds and
  caches the whole frame) — vs pandas' own ``DataFrame.query`` on the same frame (and sqlite);
  and as dicts (``find``) vs a plain LMDB full scan (and sqlite).
"""

from __future__ import annotations

import itertools
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
import lmdb

from bench.harness import Figure, figure
from threadkit.db.query import where
from threadkit.peer import Peer

__all__ = ["run"]

CITIES = ["Oslo", "Lima", "Pune", "Kyiv", "Quito", "Accra", "Hanoi", "Perth", "Turin", "Cusco"]


def _docs(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {"name": f"person-{i:06d}", "age": rng.randint(0, 99), "city": CITIES[i % len(CITIES)]}
        for i in range(n)
    ]


def _best(fn: Callable[[], float], rounds: int) -> list[float]:
    return [fn() for _ in range(rounds)]


def _lmdb_rate(docs: list[dict[str, Any]], per_txn: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = lmdb.open(tmp, map_size=1 << 30, sync=True, metasync=True)
        start = time.perf_counter()
        for i in range(0, len(docs), per_txn):
            with env.begin(write=True) as txn:
                for j, doc in enumerate(docs[i : i + per_txn], start=i):
                    txn.put(j.to_bytes(8, "big"), cbor2.dumps(doc))
        rate = len(docs) / (time.perf_counter() - start)
        env.close()
    return rate


NINE_TABLES = 9
"""The B-trees a threadkit commit writes (records, log_index, heads; docs, inst, events,
order, index, applied: bench/RESULTS.md, W2)."""


def _lmdb_nine_rate(docs: list[dict[str, Any]]) -> float:
    """Raw LMDB, one durable commit per document writing one entry into each of nine
    tables: the document (CBOR), a ~700-byte record, and seven small index entries."""
    record = bytes(700)
    with tempfile.TemporaryDirectory() as tmp:
        env = lmdb.open(tmp, map_size=1 << 30, sync=True, metasync=True, max_dbs=NINE_TABLES)
        tables = [env.open_db(f"t{i}".encode()) for i in range(NINE_TABLES)]
        start = time.perf_counter()
        for j, doc in enumerate(docs):
            key = j.to_bytes(8, "big")
            with env.begin(write=True) as txn:
                txn.put(key, cbor2.dumps(doc), db=tables[0])
                txn.put(key, record, db=tables[1])
                for table in tables[2:]:
                    txn.put(key + b"-index-key", key, db=table)
        rate = len(docs) / (time.perf_counter() - start)
        env.close()
    return rate


def _threadkit_rate(docs: list[dict[str, Any]], per_txn: int, unique: bool = False) -> float:
    index: Any = {"path": "name", "unique": True} if unique else "name"
    with tempfile.TemporaryDirectory() as tmp, Peer(Path(tmp) / "repo") as peer:
        coll = peer.new_db("bench").new_collection("People", indexes=[index])
        start = time.perf_counter()
        for i in range(0, len(docs), per_txn):
            if per_txn == 1:
                coll.create(docs[i])
            else:
                coll.create(docs[i : i + per_txn])
        return len(docs) / (time.perf_counter() - start)


def _write_figure(
    name: str, n: int, per_txn: int, rounds: int, ids: bool = False, unique: bool = False
) -> Figure:
    docs = _docs(n)
    if ids:
        docs = [{"_id": f"person-{i:06d}", **doc} for i, doc in enumerate(docs)]
    work, base, nine = [], [], []
    for _ in range(rounds):
        base.append(_lmdb_rate(docs, per_txn))
        if per_txn == 1:  # the bound of single-document commits (W2)
            nine.append(_lmdb_nine_rate(docs))
        work.append(_threadkit_rate(docs, per_txn, unique))
    extra: dict[str, Any] = {}
    if nine:
        extra = {
            "lmdb_nine_tables_best": round(max(nine)),
            "lmdb_nine_tables_median": round(statistics.median(nine)),
            "ratio_to_nine_tables": round(
                statistics.median(w / n for w, n in zip(work, nine, strict=True)), 3
            ),
        }
    return figure(
        name,
        "docs/s",
        "raw LMDB put (durable)",
        work,
        base,
        docs=n,
        per_txn=per_txn,
        ids="supplied" if ids else "generated",
        index="unique name" if unique else "name",
        **extra,
    )


def _latency(fn: Callable[[], object], repeat: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1000


def _sqlite(path: str, docs: list[dict[str, Any]]) -> sqlite3.Connection:
    sql = sqlite3.connect(path)
    sql.row_factory = _dict_row
    sql.execute("create table people (id text primary key, name text, age int, city text)")
    sql.executemany(
        "insert into people values (?, ?, ?, ?)",
        [(f"{i:08d}", d["name"], d["age"], d["city"]) for i, d in enumerate(docs)],
    )
    sql.execute("create index people_city on people (city)")
    sql.commit()
    return sql


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {col[0]: value for col, value in zip(cursor.description, row, strict=True)}


class _PlainLMDB:
    """The documents in plain LMDB: id → CBOR, and an index table city ‖ 00 ‖ id → b''."""

    def __init__(self, path: str, docs: list[dict[str, Any]]) -> None:
        self.env = lmdb.open(path, map_size=1 << 30, max_dbs=2)
        self.docs = self.env.open_db(b"docs")
        self.index = self.env.open_db(b"index")
        with self.env.begin(write=True) as txn:
            for i, doc in enumerate(docs):
                key = f"{i:08d}".encode()
                txn.put(key, cbor2.dumps({"_id": key.decode(), **doc}), db=self.docs)
                txn.put(doc["city"].encode() + b"\x00" + key, b"", db=self.index)

    def city(self, city: str) -> list[dict[str, Any]]:
        prefix = city.encode() + b"\x00"
        out = []
        with self.env.begin() as txn:
            cursor = txn.cursor(self.index)
            if cursor.set_range(prefix):
                for key in cursor.iternext(values=False):
                    if not key.startswith(prefix):
                        break
                    out.append(cbor2.loads(txn.get(key[len(prefix) :], db=self.docs)))
        return out

    def scan(self, keep: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        with self.env.begin() as txn:
            docs = (cbor2.loads(v) for v in txn.cursor(self.docs).iternext(keys=False))
            return [d for d in docs if keep(d)]


def _thresholds() -> Callable[[], int]:
    """A different lower bound each call (95 values in turn: more than the frame cache's 16
    entries, so no call is answered from a cached result)."""
    counter = itertools.count()
    return lambda: next(counter) % 95


def _query_figures(rounds: int) -> list[Figure]:
    import pandas as pd

    from threadkit.frames import cache

    docs = _docs(10_000)
    out: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp, Peer(Path(tmp) / "repo") as peer:
        coll = peer.new_db("bench").new_collection("People", indexes=["name", "city"])
        for i in range(0, len(docs), 1000):
            coll.create(docs[i : i + 1000])
        mem = _sqlite(":memory:", docs)
        disk = _sqlite(str(Path(tmp) / "base.sqlite"), docs)
        plain = _PlainLMDB(str(Path(tmp) / "plain"), docs)
        city = CITIES[3]
        eq = where("city").eq(city)
        assert len(coll.find(eq)) == len(mem.execute(SQL_CITY, (city,)).fetchall()) == 1000
        assert len(plain.city(city)) == 1000

        def sql_df(sql: sqlite3.Connection, t: int) -> Any:
            rows = sql.execute(SQL_RANGE, (t, t + 5)).fetchall()
            return pd.DataFrame(rows).set_index("id") if rows else pd.DataFrame()

        nxt = _thresholds()
        warm = coll.df  # the collection's frame, cached (pandas' baseline uses it too)

        def w3b_warm() -> object:
            t = nxt()
            return coll.query(f"age > {t} and age < {t + 5}")

        def w3b_cold() -> object:
            cache.clear(coll.db)  # nothing cached: what a query costs on its own
            t = nxt()
            return coll.query(f"age > {t} and age < {t + 5}")

        def w3b_builds() -> object:
            cache.clear(coll.db)
            cache._db_cache(coll.db).scanned.add(coll.name)  # as after a first (scanned) query
            t = nxt()
            return coll.query(f"age > {t} and age < {t + 5}")

        def pd_range() -> object:
            t = nxt()
            return warm.query(f"age > {t} and age < {t + 5}")

        def w3b_find() -> object:
            t = nxt()
            return coll.find(where("age").gt(t).and_("age").lt(t + 5))

        def lmdb_scan() -> object:
            t = nxt()
            return plain.scan(lambda d: t < d["age"] < t + 5)

        t0 = 40
        assert len(coll.query(f"age > {t0} and age < {t0 + 5}")) == len(
            warm.query(f"age > {t0} and age < {t0 + 5}")
        )
        extra_eq = {
            "sqlite_durable_ms": lambda: disk.execute(SQL_CITY, (city,)).fetchall(),
            "lmdb_index_scan_ms": lambda: plain.city(city),
        }
        extra_range = {"sqlite_inmemory_df_ms": lambda: sql_df(mem, nxt())}
        extra_find = {
            "sqlite_inmemory_ms": lambda: _sql_range(mem, nxt()),
        }
        for name, work, base, base_name, repeat, extra, note in (
            (
                "W3a_indexed_eq_1000_hits_dicts",
                lambda: coll.find(eq),
                lambda: mem.execute(SQL_CITY, (city,)).fetchall(),
                "sqlite3 in-memory indexed select as dicts",
                20,
                extra_eq,
                "coll.find(where('city').eq(c)): 1,000 of 10,000 documents",
            ),
            (
                "W3b_range_df_frame_warm",
                w3b_warm,
                pd_range,
                "pandas DataFrame.query on the collection's frame",
                20,
                extra_range,
                "coll.query('age > t and age < t+5'), t different each call, coll.df cached",
            ),
            (
                "W3b_range_df_nothing_cached",
                w3b_cold,
                pd_range,
                "pandas DataFrame.query on the collection's frame",
                10,
                extra_range,
                "as above, every cached frame dropped before each call: one columnar scan"
                " of the queried field, only the matching rows built, nothing cached",
            ),
            (
                "W3b_range_df_second_query_builds_frame",
                w3b_builds,
                pd_range,
                "pandas DataFrame.query on the collection's frame",
                10,
                extra_range,
                "the second query after every cached frame was dropped: it builds (and"
                " caches) the whole frame and answers from it; later ones are frame_warm",
            ),
            (
                "W3b_range_find_dicts",
                w3b_find,
                lmdb_scan,
                "plain LMDB full scan, CBOR decode, filter",
                10,
                extra_find,
                "coll.find(where('age').gt(t).and_('age').lt(t+5)), no index on age",
            ),
        ):
            ms, base_ms, extra_ms = [], [], {k: [] for k in extra}
            for _ in range(rounds):
                base_ms.append(_latency(base, repeat))
                ms.append(_latency(work, repeat))
                for key, fn in extra.items():
                    extra_ms[key].append(_latency(fn, repeat))
            fig = figure(
                name,
                "queries/s",
                base_name,
                [1000 / m for m in ms],
                [1000 / m for m in base_ms],
                docs=len(docs),
                what=note,
                best_ms=round(min(ms), 3),
                median_ms=round(statistics.median(ms), 3),
                baseline_best_ms=round(min(base_ms), 3),
                **{key: round(min(v), 3) for key, v in extra_ms.items()},
            )
            out.append(fig)
        mem.close()
        disk.close()
        plain.env.close()
    return out


SQL_CITY = "select * from people where city = ?"
SQL_RANGE = "select * from people where age > ? and age < ?"


def _sql_range(sql: sqlite3.Connection, t: int) -> list[Any]:
    return sql.execute(SQL_RANGE, (t, t + 5)).fetchall()


def run(rounds: int = 5) -> list[Figure]:
    """W1, W2, W3a, W3b."""
    rounds = max(1, min(rounds, 5))
    return [
        *writes(rounds),
        _write_figure("W2_single_doc_txns", 1_000, 1, rounds),
        *_query_figures(rounds),
    ]


def writes(rounds: int = 3) -> list[Figure]:
    """W1 with generated ids, supplied ids, and a unique index (``b.writes()``)."""
    rounds = max(1, min(rounds, 5))
    return [
        _write_figure("W1_bulk_insert", 10_000, 1_000, rounds),
        _write_figure("W1_bulk_insert_supplied_ids", 10_000, 1_000, rounds, ids=True),
        _write_figure("W1_bulk_insert_unique_index", 10_000, 1_000, rounds, unique=True),
        _write_figure(
            "W1_bulk_insert_supplied_ids_unique", 10_000, 1_000, rounds, ids=True, unique=True
        ),
    ]


def queries(rounds: int = 3) -> list[Figure]:
    """W3a and W3b only (``python -c 'import bench.bench_db as b; b.queries()'``)."""
    return _query_figures(max(1, min(rounds, 5)))
