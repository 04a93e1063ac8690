"""``threadkit demo``: two peers share a dataset, edit it concurrently, and converge.

Until the network layer lands, the two peers live in this process and records go
from one to the other through the same seam the network will use
(:mod:`threadkit.db.handoff`): every record is checked (decrypted, hashed,
signature verified) on the way in, exactly as a received record will be.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any, TextIO

__all__ = ["DATASET", "load_csv", "load_elements", "run_demo"]

DATASET = Path(__file__).resolve().parents[1] / "datasets" / "elements.csv"

_SCHEMA = {
    "type": "object",
    "properties": {
        "number": {"type": "integer"},
        "symbol": {"type": "string"},
        "name": {"type": "string"},
        "atomic_weight": {"type": "number"},
        "group": {"type": "integer"},
        "period": {"type": "integer"},
        "category": {"type": "string"},
        "note": {"type": "string"},
    },
    "required": ["number", "symbol", "name"],
}


def load_elements(path: Path = DATASET) -> list[dict[str, Any]]:
    """The shipped elements dataset as documents (``_id`` = the element's symbol)."""
    rows = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            rows.append(
                {
                    "_id": row["symbol"],
                    "number": int(row["number"]),
                    "symbol": row["symbol"],
                    "name": row["name"],
                    "atomic_weight": float(row["atomic_weight"]),
                    "group": int(row["group"]),
                    "period": int(row["period"]),
                    "category": row["category"],
                }
            )
    return rows


def load_csv(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV file as documents: integers and floats parsed, empty cells left out."""
    docs = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            docs.append({k: _parse_cell(v) for k, v in row.items() if v not in ("", None)})
    return docs


def _parse_cell(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _table(docs: list[dict[str, Any]], columns: list[str], out: TextIO) -> None:
    widths = [max(len(c), *(len(str(d.get(c, ""))) for d in docs)) for c in columns]
    print("  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)), file=out)
    for doc in docs:
        cells = (str(doc.get(c, "")).ljust(w) for c, w in zip(columns, widths, strict=True))
        print("  " + "  ".join(cells), file=out)


def run_demo(out: TextIO = sys.stdout) -> int:
    """Run the demonstration; returns the exit code."""
    import threadkit as tk
    from threadkit.db.handoff import handoff, replica

    with tk.Peer(memory=True) as alice, tk.Peer(memory=True) as bob:
        print(f"peer A {alice.id}\npeer B {bob.id}\n", file=out)
        db_a = alice.new_db("periodic-table")
        elements = db_a.new_collection(
            "Elements", schema=_SCHEMA, indexes=[tk.Index("number", unique=True), "category"]
        )
        elements.create(load_elements())
        print(f"A created database {db_a.id} and loaded {elements.count()} elements", file=out)

        db_b = replica(bob, db_a)
        moved = handoff(db_a, db_b)
        print(f"B joined with the key and received {moved} records (each checked)\n", file=out)

        # concurrent edits: neither peer has seen the other's
        elements.save(dict(elements.find_by_id("O"), note="discovered 1774 (A)"))
        elements.save(dict(elements.find_by_id("Fe"), category="metal"))
        b_elements = db_b["Elements"]
        b_elements.save(dict(b_elements.find_by_id("O"), atomic_weight=16.0))
        b_elements.save(dict(b_elements.find_by_id("Fe"), category="transition-metal (B)"))
        b_elements.delete("Kr")
        print(
            "A and B edit concurrently: O (different fields), Fe (same field), B deletes Kr",
            file=out,
        )

        handoff(db_a, db_b)
        handoff(db_b, db_a)
        same = elements.find() == b_elements.find()
        print(f"after exchanging records both ways, replicas identical: {same}\n", file=out)

        print("Elements with a note, or edited:", file=out)
        edited = [d for d in elements.find() if d["_id"] in ("O", "Fe")]
        _table(edited, ["_id", "name", "atomic_weight", "category", "note"], out)
        query = tk.where("category").eq("noble gas")
        print(f"\nquery {query.to_json()}:", file=out)
        _table(b_elements.find(query), ["_id", "name", "period"], out)

        print("\nwrites that lost a conflict (identical on both peers):", file=out)
        for lost in db_a.lost_writes():
            print(f"  {lost['collection']}/{lost['instance_id']} field {lost['path']!r}", file=out)
        print(f"  same on B: {db_a.lost_writes() == db_b.lost_writes()}", file=out)

        print("\nlogs (one per writer):", file=out)
        for info in alice.repo.list_logs(db_a.id):
            owner = "A" if info.id == db_a.log_id else "B"
            print(f"  {owner}  {info.id}  {info.counter} records", file=out)
    print(
        "\nnext: peers on libp2p instead of in-process hand-over, DataFrames, history,"
        " and the DAG picture.",
        file=out,
    )
    return 0 if same else 1
