"""Scale suite (issue 16): how costs grow from 10,000 to 1,000,000 documents.

``python -m bench.bench_scale [--sizes 10000 100000 1000000]`` (default 10,000 and
100,000; 1,000,000 is opt-in, it takes many minutes and ~3 GB of disk), or
``python -m bench.run scale`` (10,000 and 100,000; ``THREADKIT_BENCH_1M=1`` adds
1,000,000). Run it alone: every figure is a time on a shared machine.

Per size N, a durable repo holds N small documents (index on ``city``, 10 cities,
written 10,000 per transaction, so N events in N/10,000 records), and a plain LMDB
environment the same documents as CBOR (``id → doc``, ``city ‖ id → ''``), the
baseline of the same run:

- ``find`` — ``coll.find(where("city").eq(c))``, N/10 hits as dicts, µs per returned
  document (best of 3, warm), beside the plain LMDB index scan, gets and decode;
- ``df_cold`` — ``coll.df`` with every cached frame dropped, µs per document, beside a
  plain LMDB full scan and CBOR decode of the N documents;
- ``history`` — ``db.history()`` of the N events, µs per event (best and median of 3,
  each round after a round of the same plain scan: its baseline), the frame held until
  the round's clock stops (freeing it is timed apart, ``history_free_s``), with the
  process's resident memory while it is held and its peak during the call;
  ``history_columns_vs_rows`` — the same figure beside the frame built event by event
  (``history_by_rows``, the path before the columnar read), same repo, same run;
- ``reopen`` (fresh process) — ``tk.Peer(path)`` to the collection in hand, seconds,
  after a first ``tk.Peer(memory=True)`` has imported what a peer imports on first use
  (``first_peer_imports``, reported apart), beside ``lmdb.open`` of the plain
  environment and a read transaction, same process;
- ``rss`` (same process) — resident memory of the open peer, beside the process
  after its imports (``threadkit``, ``pandas``, ``pyarrow``), and after ``coll.df``;
  ``first_find`` — the first ``find`` in that process, µs per returned document;
- ``disk`` — bytes per document of the repo (``data.mdb``), beside the plain one's.

Each figure carries ``growth``: its per-document value (seconds for reopen, MB above
the imports for RSS) ÷ the same at 10,000 documents, from the same run.

``--only history`` measures the history figures alone (the repo and the plain
environment are still written per size).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cbor2
import lmdb

from bench.harness import Figure, emit

__all__ = ["run", "scale"]

CITIES = ["Oslo", "Lima", "Pune", "Kyiv", "Quito", "Accra", "Hanoi", "Perth", "Turin", "Cusco"]
PER_TXN = 10_000
ROOT = Path(__file__).resolve().parents[1]


def _docs(start: int, stop: int) -> list[dict[str, Any]]:
    rng = random.Random(start)
    return [
        {
            "name": f"person-{i:07d}",
            "age": rng.randint(0, 99),
            "city": CITIES[i % len(CITIES)],
            "score": round(rng.random() * 100, 3),
        }
        for i in range(start, stop)
    ]


def _plain(path: Path, n: int) -> lmdb.Environment:
    env = lmdb.open(str(path), map_size=1 << 34, max_dbs=2)
    docs, index = env.open_db(b"docs"), env.open_db(b"index")
    for start in range(0, n, PER_TXN):
        with env.begin(write=True) as txn:
            for i, doc in enumerate(_docs(start, min(n, start + PER_TXN)), start=start):
                key = f"{i:08d}".encode()
                txn.put(key, cbor2.dumps({"_id": key.decode(), **doc}), db=docs)
                txn.put(doc["city"].encode() + b"\x00" + key, b"", db=index)
    return env


def _plain_city(env: lmdb.Environment, city: str) -> list[dict[str, Any]]:
    docs, index = env.open_db(b"docs"), env.open_db(b"index")
    prefix = city.encode() + b"\x00"
    out = []
    with env.begin() as txn:
        cursor = txn.cursor(index)
        if cursor.set_range(prefix):
            for key in cursor.iternext(values=False):
                if not key.startswith(prefix):
                    break
                out.append(cbor2.loads(txn.get(key[len(prefix) :], db=docs)))
    return out


def _plain_scan(env: lmdb.Environment) -> int:
    docs = env.open_db(b"docs")
    with env.begin() as txn:
        return sum(1 for v in txn.cursor(docs).iternext(keys=False) if cbor2.loads(v))


def _memory_mb(field: str = "VmRSS") -> float:
    """A ``/proc/self/status`` memory field of this process, MB (VmHWM: the peak)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    """Start VmHWM afresh from the current RSS (Linux ``clear_refs``; kept if refused)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


def _history_rounds(db: Any, env: lmdb.Environment, rounds: int, out: dict[str, Any]) -> None:
    """``db.history()`` in rounds after the plain scan, the frame held while timed."""
    for key in ("history_s", "history_scan_s", "history_free_s", "history_rss_mb"):
        out[key] = []
    out["history_peak_mb"] = []
    for _ in range(rounds):
        out["history_scan_s"] += _timed(lambda: _plain_scan(env), 1)
        gc.collect()
        before = _memory_mb()
        _reset_peak()
        start = time.perf_counter()
        frame = db.history()
        out["history_s"].append(time.perf_counter() - start)
        out["history_peak_mb"].append(_memory_mb("VmHWM") - before)
        out["history_rss_mb"].append(_memory_mb() - before)
        out["history_rows"] = len(frame)
        start = time.perf_counter()
        del frame
        out["history_free_s"].append(time.perf_counter() - start)


def _timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def _child(path: str, db_id: str, plain: str, city: str) -> dict[str, float]:
    """Measured in a fresh process: reopen, RSS, the first find (see the module doc)."""
    import pandas  # noqa: F401  (the imports the baseline RSS includes)
    import pyarrow  # noqa: F401

    import threadkit as tk
    from threadkit.db.query import where

    def rss_mb() -> float:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    imports = rss_mb()
    start = time.perf_counter()
    env = lmdb.open(plain, max_dbs=2, readonly=True, lock=False)
    with env.begin() as txn:
        txn.stat(env.open_db(b"docs", txn=txn))
    plain_open = time.perf_counter() - start
    env.close()
    start = time.perf_counter()
    tk.Peer(memory=True).close()  # the modules a peer imports on first use (jsonschema…)
    first_peer = time.perf_counter() - start
    start = time.perf_counter()
    peer = tk.Peer(path)
    coll = peer.get_db(db_id)["People"]
    reopen = time.perf_counter() - start
    open_rss = rss_mb()
    start = time.perf_counter()
    hits = len(coll.find(where("city").eq(city)))
    first_find = time.perf_counter() - start
    _ = coll.df
    df_rss = rss_mb()
    peer.close()
    return {
        "imports_rss_mb": imports,
        "plain_open_s": plain_open,
        "reopen_s": reopen,
        "first_peer_s": first_peer,
        "open_rss_mb": open_rss,
        "first_find_s": first_find,
        "first_find_hits": hits,
        "df_rss_mb": df_rss,
    }


def measure(n: int, tmp: Path, only_history: bool = False) -> dict[str, Any]:
    """Every figure of the suite at ``n`` documents (raw numbers, seconds and MB)."""
    import threadkit as tk
    from threadkit.db.query import where
    from threadkit.frames import cache
    from threadkit.frames.history import history_by_rows, readable_history

    out: dict[str, Any] = {"docs": n}
    repo = tmp / f"repo-{n}"
    plain_path = tmp / f"plain-{n}"
    city = CITIES[3]
    with tk.Peer(repo) as peer:
        db = peer.new_db("scale")
        coll = db.new_collection("People", indexes=["city"])
        start = time.perf_counter()
        for first in range(0, n, PER_TXN):
            coll.create(_docs(first, min(n, first + PER_TXN)))
        out["write_docs_per_s"] = n / (time.perf_counter() - start)
        db_id = str(db.id)
        env = _plain(plain_path, n)
        if only_history:
            _history_rounds(db, env, 3, out)
            out["history_by_rows_s"] = _timed(lambda: readable_history(history_by_rows(db)), 1)
            env.close()
            return out
        eq = where("city").eq(city)
        hits = len(coll.find(eq))
        assert hits == len(_plain_city(env, city)) == n // len(CITIES)
        out["hits"] = hits
        out["find_s"] = _timed(lambda: coll.find(eq), 3)
        out["plain_find_s"] = _timed(lambda: _plain_city(env, city), 3)
        out["plain_scan_s"] = _timed(lambda: _plain_scan(env), 2)

        def cold_df() -> Any:
            cache.clear(db)
            return coll.df

        out["df_cold_s"] = _timed(cold_df, 2)
        cache.clear(db)
        _history_rounds(db, env, 3, out)
        out["history_by_rows_s"] = _timed(lambda: readable_history(history_by_rows(db)), 1)
        env.close()
    out["disk_bytes"] = sum(p.stat().st_size for p in repo.rglob("*") if p.is_file())
    out["plain_disk_bytes"] = sum(p.stat().st_size for p in plain_path.rglob("*") if p.is_file())
    code = (
        "import json, sys; from bench.bench_scale import _child; "
        "print(json.dumps(_child(*sys.argv[1:])))"
    )
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env_vars = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(repo), db_id, str(plain_path), city],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=env_vars,
    )
    out.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


def _figures(results: list[dict[str, Any]]) -> Iterator[Figure]:
    """Per-size figures with their growth against the smallest size of the run."""

    def per_doc(r: dict[str, Any], key: str, count: str = "docs") -> list[float]:
        return [t / r[count] * 1e6 for t in r[key]]

    base = results[0]
    rows: list[tuple[str, str, Callable[[dict[str, Any]], list[float]], str, Any]] = [
        (
            "find_per_returned_doc",
            "µs per returned document",
            lambda r: per_doc(r, "find_s", "hits"),
            "plain LMDB index scan + get + CBOR decode",
            lambda r: per_doc(r, "plain_find_s", "hits"),
        ),
        (
            "df_cold_per_doc",
            "µs per document",
            lambda r: per_doc(r, "df_cold_s"),
            "plain LMDB full scan + CBOR decode",
            lambda r: per_doc(r, "plain_scan_s"),
        ),
        (
            "history_per_event",
            "µs per event",
            lambda r: per_doc(r, "history_s"),
            "plain LMDB full scan + CBOR decode (per document), each round before the history",
            lambda r: per_doc(r, "history_scan_s"),
        ),
        (
            "history_columns_vs_rows",
            "µs per event (db.history(), built from columns)",
            lambda r: per_doc(r, "history_s"),
            "the same frame built event by event (history_by_rows, readable), same repo",
            lambda r: per_doc(r, "history_by_rows_s"),
        ),
        (
            "first_find_per_returned_doc",
            "µs per returned document (first find in a fresh process)",
            lambda r: [r["first_find_s"] / r["first_find_hits"] * 1e6],
            "warm find per returned document, same size",
            lambda r: per_doc(r, "find_s", "hits"),
        ),
        (
            "reopen",
            "s (tk.Peer(path) to the collection, fresh process)",
            lambda r: [r["reopen_s"]],
            "lmdb.open of the plain environment + a read txn, same process",
            lambda r: [r["plain_open_s"]],
        ),
        (
            "first_peer_imports",
            "s (tk.Peer(memory=True) first in a process: the modules it imports)",
            lambda r: [r["first_peer_s"]],
            "lmdb.open of the plain environment + a read txn, same process",
            lambda r: [r["plain_open_s"]],
        ),
        (
            "rss_open_peer",
            "MB resident, peer open",
            lambda r: [r["open_rss_mb"]],
            "the same process after importing threadkit, pandas, pyarrow",
            lambda r: [r["imports_rss_mb"]],
        ),
        (
            "rss_after_df",
            "MB resident, after coll.df",
            lambda r: [r["df_rss_mb"]],
            "the same process after its imports",
            lambda r: [r["imports_rss_mb"]],
        ),
        (
            "disk_per_doc",
            "bytes per document",
            lambda r: [r["disk_bytes"] / r["docs"]],
            "plain LMDB environment of the same documents",
            lambda r: [r["plain_disk_bytes"] / r["docs"]],
        ),
    ]
    for name, unit, work, base_name, baseline in rows:
        if any(not _has(r, work) for r in results):
            continue  # not measured in this run (--only)
        for r in results:
            values, base_values = work(r), baseline(r)
            best, base_best = min(values), min(base_values)
            if name.startswith("rss"):
                # memory grows with the data above what the imports hold: per document
                above = (best - base_best) / r["docs"]
                first = (work(base)[0] - baseline(base)[0]) / base["docs"]
                growth = above / first if first > 0 else float("nan")
            else:
                growth = best / min(work(base))
            detail = {
                "docs": r["docs"],
                f"growth_vs_{base['docs']}": round(growth, 3),
                "write_docs_per_s": round(r["write_docs_per_s"]),
            }
            if name == "history_per_event":
                detail.update(
                    {
                        key: [round(v, 3) for v in r[key]]
                        for key in ("history_free_s", "history_rss_mb", "history_peak_mb")
                    }
                )
            yield Figure(
                figure=f"scale_{name}_{r['docs']}",
                value=round(best, 3),
                unit=unit,
                baseline=base_name,
                baseline_value=round(base_best, 3),
                ratio=round(best / base_best, 3) if base_best else float("nan"),
                median=round(statistics.median(values), 3),
                baseline_median=round(statistics.median(base_values), 3),
                rounds=len(values),
                detail=detail,
            )


def _has(result: dict[str, Any], work: Callable[[dict[str, Any]], list[float]]) -> bool:
    try:
        work(result)
    except KeyError:
        return False
    return True


def scale(sizes: list[int], only_history: bool = False) -> list[Figure]:
    """Measure every size (smallest first: the growth is against it) and return the figures."""
    results = []
    for n in sorted(sizes):
        with tempfile.TemporaryDirectory(prefix=f"tk-scale-{n}-") as tmp:
            results.append(measure(n, Path(tmp), only_history))
            print(json.dumps({"raw": results[-1]}, default=str), file=sys.stderr, flush=True)
    return list(_figures(results))


def run(rounds: int = 1) -> list[Figure]:
    """10,000 and 100,000 documents (and 1,000,000 with ``THREADKIT_BENCH_1M=1``)."""
    sizes = [10_000, 100_000]
    if os.environ.get("THREADKIT_BENCH_1M") == "1":
        sizes.append(1_000_000)
    return scale(sizes)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.bench_scale [--sizes N ...]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_scale", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--only", choices=["history"], help="measure these figures alone")
    args = parser.parse_args(argv)
    for fig in scale(args.sizes, only_history=args.only == "history"):
        emit(fig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
