"""Document store figures W1, W2, W3a, W3b (docs/design.md §9), each beside a same-run baseline.

- W1: 10,000 small documents, 1,000 per transaction, durable — vs raw LMDB puts of the
  same documents (CBOR), 1,000 per durable transaction.
- W2: 1,000 single-document transactions, durable — vs raw LMDB, one put per durable commit.
- W3a: equality on an indexed field over 10,000 documents — vs sqlite3 (stdlib) with an index.
- W3b: range filter without an index over 10,000 documents, as a DataFrame (warm: the
  collection's frame is cached) — vs pandas' own ``DataFrame.query`` on the same frame.
"""

from __future__ import annotations

import random
import sqlite3
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
        {"name": f"person-{i:06d}", "age": rng.randint(0, 99), "city": rng.choice(CITIES)}
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


def _threadkit_rate(docs: list[dict[str, Any]], per_txn: int) -> float:
    with tempfile.TemporaryDirectory() as tmp, Peer(Path(tmp) / "repo") as peer:
        coll = peer.new_db("bench").new_collection("People", indexes=["name"])
        start = time.perf_counter()
        for i in range(0, len(docs), per_txn):
            if per_txn == 1:
                coll.create(docs[i])
            else:
                coll.create(docs[i : i + per_txn])
        return len(docs) / (time.perf_counter() - start)


def _write_figure(name: str, n: int, per_txn: int, rounds: int) -> Figure:
    docs = _docs(n)
    work, base = [], []
    for _ in range(rounds):
        base.append(_lmdb_rate(docs, per_txn))
        work.append(_threadkit_rate(docs, per_txn))
    return figure(name, "docs/s", "raw LMDB put (durable)", work, base, docs=n, per_txn=per_txn)


def _latency(fn: Callable[[], object], repeat: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1000


def _query_figures(rounds: int) -> list[Figure]:
    docs = _docs(10_000)
    with tempfile.TemporaryDirectory() as tmp, Peer(Path(tmp) / "repo") as peer:
        coll = peer.new_db("bench").new_collection("People", indexes=["name"])
        for i in range(0, len(docs), 1000):
            coll.create(docs[i : i + 1000])
        sql = sqlite3.connect(str(Path(tmp) / "base.sqlite"))
        sql.execute("create table people (name text, age int, city text)")
        sql.executemany("insert into people values (:name, :age, :city)", docs)
        sql.execute("create index people_name on people (name)")
        sql.commit()
        target = docs[4321]["name"]
        eq = where("name").eq(target)
        rng = where("age").gt(40).and_("age").lt(45)

        def tk_eq() -> object:
            return coll.find(eq)

        def sql_eq() -> object:
            return sql.execute("select * from people where name = ?", (target,)).fetchall()

        text = "age > 40 and age < 45"
        warm = coll.df

        def tk_range() -> object:
            return coll.query(text)

        def pd_range() -> object:
            return warm.query(text)

        assert len(coll.query(text)) == len(coll.find(rng))

        assert len(coll.find(eq)) == 1
        out = []
        for name, work, base, base_name, repeat in (
            ("W3a_indexed_eq", tk_eq, sql_eq, "sqlite3 indexed select", 200),
            ("W3b_unindexed_range_df", tk_range, pd_range, "pandas DataFrame.query", 50),
        ):
            ms = [_latency(work, repeat) for _ in range(rounds)]
            base_ms = [_latency(base, repeat) for _ in range(rounds)]
            fig = figure(
                name,
                "queries/s",
                base_name,
                [1000 / m for m in ms],
                [1000 / m for m in base_ms],
                docs=len(docs),
                best_ms=round(min(ms), 3),
                baseline_best_ms=round(min(base_ms), 3),
            )
            out.append(fig)
        sql.close()
    return out


def run(rounds: int = 5) -> list[Figure]:
    """W1, W2, W3a, W3b."""
    rounds = max(1, min(rounds, 5))
    return [
        _write_figure("W1_bulk_insert", 10_000, 1_000, rounds),
        _write_figure("W2_single_doc_txns", 1_000, 1, rounds),
        *_query_figures(rounds),
    ]
