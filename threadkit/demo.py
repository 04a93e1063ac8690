"""``threadkit demo``: two peers share a dataset over libp2p, edit it concurrently, converge.

Two embedded peers in this process, A's and B's, talk over libp2p on loopback exactly
as peers in separate processes or machines do: B joins A's database with its address
and key, goes offline, both edit the same documents, B comes back, and both end up
identical. The demo says in words what became of each edit (merged field by field, or
lost to the later write, and why), shows the event history by member, and writes a
picture of the record DAG with one lane per member and the conflict marked.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

import threadkit as tk
from threadkit.datasets import load

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
    print(
        "  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(),
        file=out,
    )
    for doc in docs:
        cells = (str(doc.get(c, "")).ljust(w) for c, w in zip(columns, widths, strict=True))
        print(("  " + "  ".join(cells)).rstrip(), file=out)


def run_demo(out: TextIO = sys.stdout, picture: Path | None = None) -> int:
    """Run the demonstration; returns the exit code (0 when the peers converged).

    Two people, A and B, each with an embedded peer, share the periodic table; B
    goes offline, both edit the same elements, B comes back. The demo tells what
    happened to each edit in words: fields changed by only one side are merged,
    a field both changed keeps the later write (the same on both peers), and why.
    """

    import pandas as pd

    picture = picture or Path(tempfile.gettempdir()) / "threadkit-demo-dag.png"
    pd.set_option("display.width", 120)
    say = _Printer(out)
    with tk.Peer(memory=True, network=True) as alice, tk.Peer(memory=True, network=True) as bob:
        say(
            "Two people, A and B, share one database with no server between them: each has",
            "a peer in this process, talking over libp2p on 127.0.0.1 as on two machines.",
            "",
        )
        db_a = alice.new_db("periodic-table")
        elements = db_a.new_collection(
            "Elements", schema=_SCHEMA, indexes=[tk.Index("number", unique=True), "category"]
        )
        elements.create(load_elements())
        info = db_a.info()
        say(f"A puts the periodic table ({elements.count()} elements) in a database and shares")
        say(f"its address and key: {info.addrs[0]}")
        db_b = bob.new_db_from_addr(info.addrs[0], info.key)
        b_elements = db_b["Elements"]
        say(f"B joins with them and now holds {b_elements.count()} elements too.", "")
        names = {db_a.log_id: "A", db_b.log_id: "B"}

        bob.stop_network()
        say("B goes offline (a train, a plane). Both keep editing the same elements:")
        b_elements.save(dict(b_elements.find_by_id("O"), atomic_weight=16.0))
        say("  B sets oxygen's atomic weight to 16.0")
        b_elements.save(dict(b_elements.find_by_id("Fe"), category="transition metal (B)"))
        say("  B sets iron's category to 'transition metal (B)'")
        b_elements.delete("Kr")
        say("  B deletes krypton")
        elements.save(dict(elements.find_by_id("O"), note="discovered 1774 (A)"))
        say("  A adds a note to oxygen: 'discovered 1774 (A)'")
        elements.save(dict(elements.find_by_id("Fe"), category="metal (A)"))
        say("  A sets iron's category to 'metal (A)', a little after B did", "")

        bob.start_network()
        bob.pull(db_b)
        same = _wait_same(elements, b_elements)
        say(
            "B comes back online; the two peers send each other what they wrote.",
            f"Do A and B now hold exactly the same data? {'yes' if same else 'NO'}",
            "",
        )

        frame = elements.to_pandas()
        say(frame.loc[["O", "Fe"], ["name", "atomic_weight", "category", "note"]].to_string(), "")
        oxygen = elements.find_by_id("O")
        if oxygen.get("note") and oxygen.get("atomic_weight") == 16.0:
            say(
                "Oxygen keeps A's note and B's weight: they changed different fields, and",
                "threadkit merges a document field by field.",
            )
        if "Kr" not in set(frame.index):
            say("Krypton is gone on both: B deleted it and A never touched it.")
        for row in db_a.conflicts(full=True).itertuples():
            winner = names.get(row.winner_log, "another member")
            loser = names.get(row.loser_log, "another member")
            say(
                f"{row.instance}'s {row.path}: {loser}'s {row.loser_value!r} lost to "
                f"{winner}'s {row.winner_value!r}.",
                f"  Why: both changed {row.path} while apart, neither having seen the other's",
                "  write. The later write in the shared order wins:",
                f"  {winner} wrote at {_clock(row.winner_time)}, {loser} at "
                f"{_clock(row.loser_time)}",
                "  (hybrid logical clock: time first, then the writer's log id, so every peer",
                "  orders the same records the same way and picks the same winner, without",
                f"  asking the other). {loser}'s write is not erased: it stays in the history",
                "  and db.conflicts() lists it.",
            )
        agree = db_a.lost_writes() == db_b.lost_writes()
        say(f"Does B list the same lost writes as A? {'yes' if agree else 'NO'}", "")

        history = db_a.history("Elements", full=True)
        shown = history[["time", "log", "action", "instance", "patch"]].tail(6).copy()
        shown["log"] = [names.get(log, log[:8]) for log in shown["log"]]
        shown = shown.rename(columns={"log": "who", "instance": "element", "patch": "change"})
        shown["time"] = [_clock(t) for t in shown["time"]]
        shown["change"] = [
            _change(a, c) for a, c in zip(shown["action"], shown["change"], strict=True)
        ]
        say(f"The last 6 of the {len(history)} events, in the order both peers agree on:")
        _table(shown.to_dict("records"), list(shown.columns), out)
        say("")

        figure = db_a.plot_dag(members={alice.id: "A", bob.id: "B"})
        figure.savefig(picture, dpi=110, bbox_inches="tight")
        say(
            f"The picture of the record DAG ({db_a.dag().number_of_nodes()} records): one lane "
            "per member, A and B;",
            "the record with the write that lost is ringed red, the one it lost to green.",
            f"It was written to {picture}",
        )
    return 0 if same and agree else 1


class _Printer:
    """Prints lines of the story to ``out``."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, *lines: str) -> None:
        for line in lines:
            print(line, file=self.out)


def _change(action: str, patch: Any) -> str:
    """An event's change for people: the fields it set (no ``_id``/``_mod``), or what it did."""
    if action == "delete" or not isinstance(patch, dict):
        return "(deleted)" if action == "delete" else ""
    fields = {k: v for k, v in patch.items() if k not in ("_id", "_mod")}
    text = ", ".join(f"{k}={v!r}" for k, v in fields.items())
    return ("created: " if action == "create" else "") + (
        text if len(text) <= 60 else text[:59] + "…"
    )


def _clock(when: Any) -> str:
    """A time of day to the millisecond, UTC (a pandas Timestamp or datetime)."""
    try:
        return str(when.strftime("%H:%M:%S.%f")[:-3]) + " UTC"
    except AttributeError:
        return str(when)


def _wait_same(a: Any, b: Any, timeout: float = 15.0) -> bool:

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if a.find() == b.find():
            return True
        time.sleep(0.05)
    return bool(a.find() == b.find())
