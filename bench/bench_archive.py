"""Backup and restore (docs/lifecycle.md): export and import of a 100,000-document database.

Figures, each beside baselines measured in alternating rounds of the same run, for
100,000 documents written in 100 transactions of 1,000 and in 10,000 of 10:

- ``export``: ``db.export`` (durable repo), beside copying the repo's LMDB file
  (``data.mdb``) and a raw CAR write of the same blocks.
- ``import``: ``peer.import_db`` of that file into a fresh durable repo (every block hashed,
  every signature verified, the records stored and applied), beside copying the LMDB file
  and a raw CAR read (with hashing) of the same file.

At most :data:`MAX_ROUNDS` rounds (a round of the 10,000-transaction import takes seconds).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import threadkit as tk
from bench.harness import Figure, figure
from threadkit.store import car

DOCS = 100_000
TXNS = (100, 10_000)
"""Two shapes: 100 transactions of 1,000 documents, and 10,000 of 10."""
MAX_ROUNDS = 3


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return DOCS / (time.perf_counter() - start)


def _source(root: Path, txns: int) -> tuple[tk.Peer, tk.Database]:
    peer = tk.Peer(root / "src", network=False)
    db = peer.new_db("bench")
    coll = db.new_collection("Items")
    per = DOCS // txns
    for t in range(txns):
        coll.create(*({"n": t * per + i, "name": f"item-{t}-{i}", "x": i / 7} for i in range(per)))
    return peer, db


def run(rounds: int = MAX_ROUNDS) -> list[Figure]:
    """The export and import figures, for each shape of :data:`TXNS`."""
    rounds = max(1, min(rounds, MAX_ROUNDS))
    return [fig for txns in TXNS for fig in _run(rounds, txns)]


def _run(rounds: int, txns: int) -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        peer, db = _source(root, txns)
        data = peer.repo.path / "data.mdb"
        out = root / "db.car"
        db.export(out, keys="full")
        with out.open("rb") as handle:
            roots, blocks = car.read_car(handle)
        size = out.stat().st_size

        def raw_write() -> None:
            with (root / "raw.car").open("wb") as handle:
                car.write_car(handle, roots, blocks)

        def raw_read() -> None:
            with out.open("rb") as handle:
                car.read_car(handle)

        copy = lambda: shutil.copyfile(data, root / "copy.mdb")  # noqa: E731
        export, copies, raw_writes = [], [], []
        for _ in range(rounds):
            copies.append(_timed(copy))
            raw_writes.append(_timed(raw_write))
            export.append(_timed(lambda: db.export(out, keys="full")))
        imports, raw_reads, copies2 = [], [], []
        for n in range(rounds):
            copies2.append(_timed(copy))
            raw_reads.append(_timed(raw_read))
            target = tk.Peer(root / f"dst{n}", network=False)
            imports.append(_timed(lambda t=target: t.import_db(out)))  # type: ignore[misc]
            assert target.get_db(db.id)["Items"].count() == DOCS
            target.close()
            shutil.rmtree(root / f"dst{n}")
        lmdb_bytes = data.stat().st_size
        peer.close()
    common = {"docs": DOCS, "txns": txns, "car_bytes": size, "lmdb_bytes": lmdb_bytes}
    return [
        figure(
            f"export_{txns}_txns",
            "docs/s",
            "copy of the LMDB file",
            export,
            copies,
            raw_car_write_docs_per_s=round(max(raw_writes)),
            raw_car_write_median=round(statistics.median(raw_writes)),
            **common,
        ),
        figure(
            f"import_{txns}_txns",
            "docs/s",
            "copy of the LMDB file",
            imports,
            copies2,
            raw_car_read_docs_per_s=round(max(raw_reads)),
            raw_car_read_median=round(statistics.median(raw_reads)),
            **common,
        ),
    ]
