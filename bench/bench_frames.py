"""Notebook-layer figures (docs/design.md §9), each beside a pandas baseline from this run.

- collection → DataFrame, 100,000 documents, **cold** (no cached frame: every document
  read from LMDB and decoded) — vs ``pd.DataFrame(list_of_dicts)`` of the same documents,
  already decoded (the cheapest way pandas itself builds such a frame);
- the same, **unchanged** (the cached frame; nothing decoded) — vs the same baseline;
- the same after **one document changed** (one re-read and merged) — vs the same baseline;
- an unindexed range over 10,000 documents as a DataFrame, compiled from pandas query
  text, **the same text every call** — a cache hit, labelled so (``..._CACHE_HIT``);
  W3b itself (a new threshold each call) is in :mod:`bench.bench_db` — vs pandas' own
  ``DataFrame.query`` on the same frame.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import Figure, figure
from threadkit.frames import cache
from threadkit.frames.frame import to_pandas
from threadkit.frames.lazy import query_frame
from threadkit.peer import Peer

__all__ = ["run"]

CITIES = ["Oslo", "Lima", "Pune", "Kyiv", "Quito", "Accra", "Hanoi", "Perth", "Turin", "Cusco"]


def _docs(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "name": f"person-{i:06d}",
            "age": rng.randint(0, 99),
            "city": rng.choice(CITIES),
            "score": round(rng.random() * 100, 3),
            "active": rng.random() < 0.5,
        }
        for i in range(n)
    ]


def _ms(fn: Callable[[], object], repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1000


def _latency_figure(
    name: str,
    work: Callable[[], object],
    base: Callable[[], object],
    base_name: str,
    rounds: int,
    repeat: int,
    base_repeat: int,
    **detail: Any,
) -> Figure:
    ms, base_ms = [], []
    for _ in range(rounds):  # interleaved: baseline, then the workload
        base_ms.append(_ms(base, base_repeat))
        ms.append(_ms(work, repeat))
    return figure(
        name,
        "frames/s",
        base_name,
        [1000 / m for m in ms],
        [1000 / m for m in base_ms],
        best_ms=round(min(ms), 3),
        median_ms=round(sorted(ms)[len(ms) // 2], 3),
        baseline_best_ms=round(min(base_ms), 3),
        **detail,
    )


def _frame_figures(rounds: int) -> list[Figure]:
    import pandas as pd

    n = 100_000
    docs = _docs(n)
    with tempfile.TemporaryDirectory() as tmp, Peer(Path(tmp) / "repo") as peer:
        db = peer.new_db("bench")
        coll = db.new_collection("People")
        for i in range(0, n, 10_000):
            coll.create(docs[i : i + 10_000])
        stored = coll.find()  # the baseline gets the documents already decoded
        ids = [d["_id"] for d in stored]
        rng = random.Random(3)

        def baseline() -> object:
            return pd.DataFrame(stored)

        def cold() -> object:
            cache.clear(db)
            return to_pandas(coll)

        def unchanged() -> object:
            return to_pandas(coll)

        def changed() -> object:
            doc = dict(stored[rng.randrange(n)], age=rng.randint(0, 99))
            doc.pop("_mod")
            coll.save(doc)
            start = time.perf_counter()
            to_pandas(coll)
            return time.perf_counter() - start

        assert len(to_pandas(coll)) == n and len(ids) == n
        figures = [
            _latency_figure(
                "frames_cold_100k",
                cold,
                baseline,
                "pd.DataFrame(list of dicts)",
                rounds,
                1,
                1,
                docs=n,
                target_ms=300,
            ),
            _latency_figure(
                "frames_unchanged_100k",
                unchanged,
                baseline,
                "pd.DataFrame(list of dicts)",
                rounds,
                20,
                1,
                docs=n,
                target_ms=20,
            ),
        ]
        to_pandas(coll)
        refresh_ms = []
        for _ in range(rounds):
            refresh_ms.append(float(changed()) * 1000)  # type: ignore[arg-type]
        base_ms = [_ms(baseline) for _ in range(rounds)]
        figures.append(
            figure(
                "frames_one_changed_100k",
                "frames/s",
                "pd.DataFrame(list of dicts)",
                [1000 / m for m in refresh_ms],
                [1000 / m for m in base_ms],
                docs=n,
                best_ms=round(min(refresh_ms), 3),
                baseline_best_ms=round(min(base_ms), 3),
            )
        )
        return figures


def _w3b_figure(rounds: int) -> Figure:
    import pandas as pd

    docs = _docs(10_000)
    with tempfile.TemporaryDirectory() as tmp, Peer(Path(tmp) / "repo") as peer:
        coll = peer.new_db("bench").new_collection("People", indexes=["name"])
        for i in range(0, len(docs), 1000):
            coll.create(docs[i : i + 1000])
        frame = pd.DataFrame(docs)
        text = "age > 40 and age < 45"
        expected = len(frame.query(text))
        assert len(query_frame(coll, text)) == expected

        def uncached() -> object:
            cache.clear(coll.db)
            return query_frame(coll, text)

        first = min(_ms(uncached) for _ in range(rounds))
        return _latency_figure(
            "W3b_one_query_repeated_CACHE_HIT",
            lambda: query_frame(coll, text),
            lambda: frame.query(text),
            "pandas DataFrame.query",
            rounds,
            20,
            20,
            docs=len(docs),
            rows=expected,
            what=(
                "the same query text every call: answered from the selection cache (a cache"
                " hit, not W3b; W3b with a new threshold each call is bench_db's W3b_range_df_*)"
            ),
            uncached_best_ms=round(first, 3),
        )


def run(rounds: int = 5) -> list[Figure]:
    """Collection → DataFrame (cold, unchanged, one changed) and W3b as a DataFrame."""
    rounds = max(1, min(rounds, 7))
    return [*_frame_figures(rounds), _w3b_figure(rounds)]
