"""db.dag(), db.plot_dag() and db.logs(): the record DAG as a graph, a picture and a table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

import threadkit as tk
from threadkit.core.cid import cid_to_string
from threadkit.db.database import Database
from threadkit.db.handoff import handoff, know_log, log_records, replica
from threadkit.errors import InvalidInput
from threadkit.frames.history import history
from threadkit.graph import LOG_COLUMNS, dag, logs, plot_dag

matplotlib.use("Agg")


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def sync(*dbs: Database) -> None:
    for target in dbs:
        for source in dbs:
            if source is not target:
                handoff(source, target)


def three_writers(stack: ExitStack) -> list[Database]:
    origin = stack.enter_context(tk.Peer(memory=True)).new_db("dag")
    origin.new_collection("Items")
    origin.new_collection("Tags")
    dbs = [origin] + [replica(stack.enter_context(tk.Peer(memory=True)), origin) for _ in range(2)]
    sync(*dbs)
    a, b, c = dbs
    a["Items"].create({"_id": "x", "n": 1}, {"_id": "y", "n": 1})
    b["Tags"].create({"_id": "t"})
    handoff(a, b)
    b["Items"].save({"_id": "x", "n": 2})  # B had seen A's create: a causal edge B → A
    c["Items"].create({"_id": "z"})
    c["Items"].delete("z")
    sync(*dbs)
    with a["Items"].write_txn() as txn:  # one record touching two actions
        txn.save({"_id": "y", "n": 5})
        txn.delete("x")
    sync(*dbs)
    return dbs


def held_records(db: Database) -> dict[str, object]:
    return {
        cid_to_string(s.cid): s
        for info in db._repo.list_logs(db.id)
        for s in db._repo.read_log(db.id, info.id)
    }


# --------------------------------------------------------------------------- dag


def test_nodes_and_edges_are_the_records_and_prev_links(stack: ExitStack) -> None:
    dbs = three_writers(stack)
    for db in dbs:
        graph = dag(db)
        held = held_records(db)
        assert set(graph.nodes) == set(held)
        counters = logs(db)["counter"].tolist()
        assert graph.number_of_nodes() == sum(counters) == len(held)
        assert graph.number_of_edges() == sum(c - 1 for c in counters if c)
        for node, stored in held.items():
            prev = stored.prev  # type: ignore[attr-defined]
            successors = list(graph.successors(node))
            assert successors == ([cid_to_string(prev)] if prev else [])
            assert all(graph.edges[node, s]["kind"] == "prev" for s in successors)
        assert graph.graph["db"] == "dag" and graph.graph["thread"] == str(db.id)
        assert set(graph.graph["logs"]) == {d.log_id for d in dbs}
    # every replica holds the same records, so the same graph
    first = dag(dbs[0])
    for db in dbs[1:]:
        other = dag(db)
        assert set(other.nodes) == set(first.nodes) and set(other.edges) == set(first.edges)


def test_node_attributes(stack: ExitStack) -> None:
    a, b, c = three_writers(stack)
    graph = dag(a)
    held = held_records(a)
    events = history(a)
    for writer in (a, b, c):
        for counter, record in enumerate(log_records(writer), start=1):
            node = graph.nodes[cid_to_string(record.cid)]
            assert node["log"] == writer.log_id
            assert node["own"] is (writer is a)
            assert node["counter"] == counter
            assert node["author"] == str(writer.identity.public) == str(record.author)
            assert node["size"] == record.blocks.total_size()
            assert node["size"] == held[cid_to_string(record.cid)].blocks.total_size()  # type: ignore[attr-defined]
            mine = events[events["record"] == cid_to_string(record.cid)]
            assert node["events"] == len(mine)
            assert node["hlc"] == mine["hlc"].iloc[0]
            assert node["wall"] == int(mine["hlc"].iloc[0].split(".")[0])
            assert node["actions"] == tuple(dict.fromkeys(mine["action"]))
            assert node["collections"] == tuple(dict.fromkeys(mine["collection"]))
    a_nodes = [graph.nodes[cid_to_string(r.cid)] for r in log_records(a)]
    assert [n["actions"] for n in a_nodes] == [
        ("new_collection",),
        ("new_collection",),
        ("create",),
        ("save", "delete"),
    ]
    assert a_nodes[0]["collections"] == ("Items",) and a_nodes[1]["collections"] == ("Tags",)


def test_causal_edges_follow_what_writers_had_seen(stack: ExitStack) -> None:
    a, b, c = three_writers(stack)
    plain = dag(a)
    graph = dag(a, causal=True)
    assert set(plain.edges) <= set(graph.edges)
    causal = {(u, v) for u, v, kind in graph.edges(data="kind") if kind == "causal"}
    assert len(causal) == graph.number_of_edges() - plain.number_of_edges()
    for u, v in causal:
        assert graph.nodes[u]["log"] != graph.nodes[v]["log"]
    a_records = [cid_to_string(r.cid) for r in log_records(a)]
    b_save = cid_to_string(log_records(b)[-1].cid)
    # B's save of x had seen A's create of x (A's third record)
    assert (b_save, a_records[2]) in causal
    # A's last transaction saved y and deleted x after seeing B's save of x
    assert (a_records[3], b_save) in causal
    # C never touched an instance another log had written
    assert not [u for u, _ in causal if graph.nodes[u]["log"] == c.log_id]


def test_single_writer_has_no_causal_edges(stack: ExitStack) -> None:
    db = stack.enter_context(tk.Peer(memory=True)).new_db("solo")
    coll = db.new_collection("Items")
    ids = coll.create({"n": 1})
    coll.save({"_id": ids[0], "n": 2})
    graph = dag(db, causal=True)
    assert {kind for *_, kind in graph.edges(data="kind")} == {"prev"}


def test_a_partial_replica_holds_part_of_the_dag(stack: ExitStack) -> None:
    a, b, _ = three_writers(stack)
    observer = replica(stack.enter_context(tk.Peer(memory=True)), a)
    know_log(observer, a)
    observer.apply_records(a.log_id, log_records(a)[:2])
    graph = dag(observer)
    assert graph.number_of_nodes() == 2 and graph.number_of_edges() == 1
    know_log(observer, b)
    assert dag(observer).number_of_nodes() == 2  # a known log with no records adds no node


# -------------------------------------------------------------------------- logs


def test_logs_table(stack: ExitStack) -> None:
    a, b, c = three_writers(stack)
    df = logs(a)
    assert list(df.columns) == list(LOG_COLUMNS)
    assert len(df) == 3
    assert df["own"].tolist() == [True, False, False]
    assert df["log"].iloc[0] == a.log_id
    assert set(df["log"]) == {a.log_id, b.log_id, c.log_id}
    for writer in (a, b, c):
        row = df[df["log"] == writer.log_id].iloc[0]
        records = log_records(writer)
        assert row["counter"] == len(records) == row["applied"]
        assert row["head"] == cid_to_string(records[-1].cid)
        assert row["key"] == str(writer.log_key.public)
        assert row["addrs"] == []
    empty_log = replica(stack.enter_context(tk.Peer(memory=True)), a)
    row = logs(empty_log).iloc[0]
    assert bool(row["own"]) and row["counter"] == 0 and pd.isna(row["head"])


# -------------------------------------------------------------------------- plot


def lane_labels(fig: object) -> list[str]:
    ax = fig.axes[0]  # type: ignore[attr-defined]
    return [t.get_text() for t in ax.get_yticklabels()]


def test_plot_has_one_lane_per_log_and_saves(stack: ExitStack, tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    a, b, c = three_writers(stack)
    fig = plot_dag(a)
    assert isinstance(fig, Figure)
    labels = lane_labels(fig)
    assert len(labels) == 3
    assert sum(label.endswith("(own)") for label in labels) == 1
    assert labels[0].startswith(a.log_id[:6]) and labels[0].endswith("(own)")
    for db in (b, c):
        assert any(label.startswith(db.log_id[:6]) and db.log_id[-4:] in label for label in labels)
    ax = fig.axes[0]
    plotted = sum(len(col.get_offsets()) for col in ax.collections if hasattr(col, "get_offsets"))
    assert plotted == dag(a).number_of_nodes()
    assert "records" in ax.get_title()
    path = tmp_path / "dag.png"
    fig.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    causal = plot_dag(a, causal=True)
    causal.savefig(tmp_path / "causal.png")


def test_plot_summarises_beyond_max_records(stack: ExitStack, tmp_path: Path) -> None:
    db = stack.enter_context(tk.Peer(memory=True)).new_db("long")
    coll = db.new_collection("Items")
    for i in range(49):
        coll.create({"n": i})
    fig = plot_dag(db, max_records=10)
    labels = lane_labels(fig)
    assert len(labels) == 1
    assert "… 40 earlier" in labels[0]
    ax = fig.axes[0]
    assert "latest 10 of 50" in ax.get_title()
    plotted = sum(len(col.get_offsets()) for col in ax.collections if hasattr(col, "get_offsets"))
    assert plotted == 10
    fig.savefig(tmp_path / "long.png")
    dense = plot_dag(db, max_records=300)  # dense mode draws lines, not arrows
    dense.savefig(tmp_path / "dense.png")
    with pytest.raises(InvalidInput):
        plot_dag(db, max_records=0)


def test_plot_shares_the_budget_between_logs(stack: ExitStack) -> None:
    origin = stack.enter_context(tk.Peer(memory=True)).new_db("budget")
    coll = origin.new_collection("Items")
    other = replica(stack.enter_context(tk.Peer(memory=True)), origin)
    sync(origin, other)
    for i in range(30):
        coll.create({"n": i})
    other["Items"].create({"n": -1})
    sync(origin, other)
    fig = plot_dag(origin, max_records=12)
    labels = lane_labels(fig)
    # the short log shows whole; the long one gets the rest of the budget
    assert sum("earlier" in label for label in labels) == 1
    assert "… 20 earlier" in next(label for label in labels if "earlier" in label)


def test_plot_into_given_axes_and_an_empty_db(stack: ExitStack) -> None:
    from matplotlib.figure import Figure

    db = stack.enter_context(tk.Peer(memory=True)).new_db("empty")
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_dag(db, ax=ax) is fig
    assert len(lane_labels(fig)) == 1
    assert any(t.get_text() == "no records" for t in ax.texts)


def test_the_plot_displays_as_a_picture_in_any_kernel(stack: ExitStack, tmp_path: Path) -> None:
    """A kernel's display formatter shows the figure as a PNG without %matplotlib inline;
    in a terminal, its repr says how to save it, and save() writes the file."""
    from IPython.core.formatters import DisplayFormatter

    db = stack.enter_context(tk.Peer(memory=True)).new_db("shown")
    db.new_collection("Items").create({"n": 1})
    fig = db.plot_dag()
    data, _ = DisplayFormatter().format(fig)  # a fresh formatter: nothing registered for Figure
    assert data["image/png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert "save(" in data["text/plain"]
    written = fig.save(tmp_path / "dag.svg")
    assert Path(written).read_text().lstrip().startswith("<?xml")


def test_plot_names_members_and_rings_the_conflict(stack: ExitStack) -> None:
    """Lanes and authors by member name; the record whose write lost is ringed red with the
    lost field under it, the record it lost to green (issue #13 item 13)."""
    peer_a = stack.enter_context(tk.Peer(memory=True))
    peer_b = stack.enter_context(tk.Peer(memory=True))
    a = peer_a.new_db("conflict")
    a.new_collection("Notes").create({"_id": "n", "text": "draft"})
    b = replica(peer_b, a)
    sync(a, b)
    b["Notes"].save({"_id": "n", "text": "from B"})
    a["Notes"].save({"_id": "n", "text": "from A"})  # concurrent, and later: A's wins
    sync(a, b)
    [lost] = a.conflicts(full=True).itertuples()
    fig = a.plot_dag(members={peer_a.id: "A", b.log_id: "B"})
    assert lane_labels(fig) == ["A (own)", "B"]
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"written by A", "written by B", "won a conflict", "lost a write"} <= set(legend)
    texts = [t.get_text() for t in ax.texts]
    assert "lost: n.text" in texts
    rings = [c for c in ax.collections if len(c.get_facecolors()) == 0]
    assert len(rings) == 2
    graph_nodes = {cid: attrs for cid, attrs in dag(a).nodes(data=True)}
    assert graph_nodes[lost.loser_record]["log"] == b.log_id
    assert graph_nodes[lost.winner_record]["log"] == a.log_id
    plain = plot_dag(a)  # without names: short log ids, the rings all the same
    assert lane_labels(plain)[1].startswith(b.log_id[:6])
    with pytest.raises(InvalidInput, match="members"):
        plot_dag(a, members={peer_a.id: 1})  # type: ignore[dict-item]
