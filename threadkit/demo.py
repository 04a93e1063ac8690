"""``threadkit demo``: two peers share a dataset over libp2p, edit it concurrently, converge.

Two embedded peers in this process talk over libp2p on loopback exactly as peers in
separate processes or machines do: B joins A's database with its address and key, goes
offline, both edit the same documents, B comes back, and both end up identical. The
demo prints the tables, the event history, the writes that lost, and where the picture
of the record DAG was written.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

__all__ = ["load_elements", "run_demo"]

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


def load_elements() -> list[dict[str, Any]]:
    """The shipped elements dataset (``tk.datasets.load``) as documents, ``_id`` = symbol."""
    from threadkit.datasets import load

    return [
        {
            "_id": str(row.symbol),
            "number": int(row.number),
            "symbol": str(row.symbol),
            "name": str(row.name),
            "atomic_weight": float(row.atomic_weight),
            "group": int(row.group),
            "period": int(row.period),
            "category": str(row.category),
        }
        for row in load("elements").itertuples(index=False)
    ]


def _table(docs: list[dict[str, Any]], columns: list[str], out: TextIO) -> None:
    widths = [max(len(c), *(len(str(d.get(c, ""))) for d in docs)) for c in columns]
    print("  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)), file=out)
    for doc in docs:
        cells = (str(doc.get(c, "")).ljust(w) for c, w in zip(columns, widths, strict=True))
        print("  " + "  ".join(cells), file=out)


def run_demo(out: TextIO = sys.stdout, picture: Path | None = None) -> int:
    """Run the demonstration; returns the exit code (0 when the peers converged)."""
    import tempfile

    import pandas as pd

    import threadkit as tk

    picture = picture or Path(tempfile.gettempdir()) / "threadkit-demo-dag.png"
    pd.set_option("display.width", 120)
    with tk.Peer(memory=True, network=True) as alice, tk.Peer(memory=True, network=True) as bob:
        print(f"peer A {alice.id} listening on {alice.addrs[0]}", file=out)
        print(f"peer B {bob.id} listening on {bob.addrs[0]}\n", file=out)
        db_a = alice.new_db("periodic-table")
        elements = db_a.new_collection(
            "Elements", schema=_SCHEMA, indexes=[tk.Index("number", unique=True), "category"]
        )
        elements.create(load_elements())
        info = db_a.info()
        print(f"A shares {elements.count()} elements at {info.addrs[0]}", file=out)

        db_b = bob.new_db_from_addr(info.addrs[0], info.key)
        b_elements = db_b["Elements"]
        print(
            f"B joined over libp2p with the key and holds {b_elements.count()} elements\n", file=out
        )

        bob.stop_network()
        print("B goes offline; both edit the same documents:", file=out)
        elements.save(dict(elements.find_by_id("O"), note="discovered 1774 (A)"))
        elements.save(dict(elements.find_by_id("Fe"), category="metal (A)"))
        b_elements.save(dict(b_elements.find_by_id("O"), atomic_weight=16.0))
        b_elements.save(dict(b_elements.find_by_id("Fe"), category="transition metal (B)"))
        b_elements.delete("Kr")
        print(
            "  A: O gets a note, Fe's category  |  B: O's weight, Fe's category, deletes Kr",
            file=out,
        )

        bob.start_network()
        bob.pull(db_b)
        same = _wait_same(elements, b_elements)
        print(f"B back online: records exchanged both ways, replicas identical: {same}\n", file=out)

        frame = elements.to_pandas()
        print(frame.loc[["O", "Fe"], ["name", "atomic_weight", "category", "note"]], file=out)
        noble = b_elements.query("category == 'noble gas'")
        print(f"\nnoble gases on B (Kr deleted): {', '.join(noble['name'])}", file=out)

        print("\nthe event history (last 6 of", len(db_a.history()), "events):", file=out)
        history = db_a.history("Elements")
        print(history[["time", "action", "instance", "log"]].tail(6).to_string(), file=out)

        conflicts = db_a.conflicts()
        print("\nwrites that lost a conflict (the same on both peers):", file=out)
        for row in conflicts.itertuples():
            print(
                f"  {row.instance}.{row.path}: {row.loser_value!r} lost to {row.winner_value!r}",
                file=out,
            )
        print(f"  identical on B: {db_a.lost_writes() == db_b.lost_writes()}", file=out)

        figure = db_a.plot_dag()
        figure.savefig(picture, dpi=110, bbox_inches="tight")
        print(
            f"\nthe record DAG ({db_a.dag().number_of_nodes()} records, one lane per log)", file=out
        )
        print(f"was written to {picture}", file=out)
    return 0 if same else 1


def _wait_same(a: Any, b: Any, timeout: float = 15.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if a.find() == b.find():
            return True
        time.sleep(0.05)
    return bool(a.find() == b.find())
