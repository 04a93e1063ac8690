"""Migrations and purges in the record DAG and the history frame: their own kinds, no data."""

from __future__ import annotations

import matplotlib

from threadkit.graph import dag, plot_dag
from threadkit.peer import Peer

matplotlib.use("Agg")


def test_migration_and_purge_records_are_drawn_as_their_kinds() -> None:
    with Peer(memory=True) as peer:
        db = peer.new_db("notes")
        notes = db.new_collection("Notes")
        notes.create({"_id": "n", "text": "secret words"})
        db.migrate("Notes", [{"rename": "text", "to": "body"}])
        notes.delete("n")
        notes.purge("n")
        graph = dag(db)
        actions = sorted(attrs["actions"] for _, attrs in graph.nodes(data=True))
        assert ("migrate_collection",) in actions and ("purge",) in actions
        fig = plot_dag(db)
        ax = fig.axes[0]
        labels = (
            ax.get_legend_handles_labels()[1]
            if ax.get_legend() is None
            else [t.get_text() for t in ax.get_legend().get_texts()]
        )
        assert "migration" in labels and "purge" in labels
        plotted = sum(len(c.get_offsets()) for c in ax.collections if hasattr(c, "get_offsets"))
        assert plotted == graph.number_of_nodes()
        frame = db.history(full=True)
        assert "secret words" not in repr(frame.to_dict())
        assert list(frame["action"]) == [
            "new_collection",
            "create",
            "migrate_collection",
            "delete",
            "purge",
        ]
