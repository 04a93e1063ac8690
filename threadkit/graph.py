"""The record DAG of a database: as a networkx graph, as a picture, and its logs as a table.

A database is a thread: one append-only log per writer, each record linked to
the previous one of its log by its CID (``prev``). :func:`dag` turns every
record this peer holds into a node of a ``networkx.DiGraph``; :func:`plot_dag`
draws it with one horizontal lane per log; :func:`logs` lists the logs and
their heads.

**Causal edges.** With ``causal=True`` the graph also has an edge from a
record to the latest record of each other log its writer had provably seen.
The proof is the events' ``base``: each event names the latest event of its
instance that its writer had applied, and a peer applies a log's records in
order, so the writer had seen the record holding that base event and every
record before it in that log. An edge is added only where it says more than
the record's predecessors in its own log already said (no redundant edges).
This is a sound under-approximation: a writer who had seen another log but
wrote no event on an instance touched there gets no edge. HLC order is not
used, because a later stamp does not mean the writer had seen the earlier one.

Examples
--------
>>> import threadkit as tk
>>> with tk.Peer(memory=True) as peer:
...     db = peer.new_db("notes")
...     notes = db.new_collection("Notes")
...     _ = notes.create({"text": "hello"})
...     g = dag(db)
>>> g.number_of_nodes(), g.number_of_edges()
(2, 1)
>>> sorted(attrs["actions"] for _, attrs in g.nodes(data=True))
[('create',), ('new_collection',)]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from threadkit.core.identity import PublicKey, peer_id_bytes
from threadkit.db.events import Action
from threadkit.db.timeline import RecordNode, cid_text, records
from threadkit.errors import InvalidInput, ThreadkitError
from threadkit.frames.history import conflicts

if TYPE_CHECKING:
    import networkx as nx
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from threadkit.dagfigure import DagFigure
    from threadkit.frames.source import DatabaseLog, DatabaseSource

__all__ = ["GraphViews", "RecordNode", "dag", "logs", "plot_dag", "records"]

LOG_COLUMNS = ("log", "own", "counter", "head", "applied", "key", "addrs")
"""Columns of :func:`logs`, in order."""


def _unique(values: Iterator[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def dag(db: DatabaseSource, causal: bool = False) -> nx.DiGraph:
    """The record DAG of a database as a ``networkx.DiGraph``.

    Parameters
    ----------
    db : DatabaseSource
        The database.
    causal : bool
        Also add causal edges (module docstring): from a record to the latest
        record of each other log its writer had seen, by the events' ``base``.

    Returns
    -------
    networkx.DiGraph
        Nodes are record CID strings (``bafy…``), with attributes ``log``,
        ``own`` (this peer's log), ``author`` (public key string), ``counter``,
        ``hlc`` (first event's stamp as ``"wall.logical"``, None when
        unreadable), ``wall`` (its wall time in ns), ``collections`` and
        ``actions`` (tuples, in first-seen order), ``events`` (count) and
        ``size`` (bytes of the four blocks). Edges go from a record to its
        ``prev`` (``kind="prev"``) and, with ``causal``, to records of other
        logs (``kind="causal"``). Graph attributes: ``db`` (name), ``thread``
        (id string), ``logs`` (log ids).

    Examples
    --------
    >>> import threadkit as tk
    >>> with tk.Peer(memory=True) as peer:
    ...     db = peer.new_db("notes")
    ...     notes = db.new_collection("Notes")
    ...     _ = notes.create({"text": "a"})
    ...     _ = notes.create({"text": "b"})
    ...     g = dag(db)
    >>> [g.nodes[n]["counter"] for n in g.nodes]
    [1, 2, 3]
    >>> [(g.nodes[u]["counter"], g.nodes[v]["counter"]) for u, v in g.edges]
    [(2, 1), (3, 2)]
    """
    import networkx as nx

    graph = nx.DiGraph(db=db.name, thread=str(db.id), logs=[])
    nodes = list(db.timeline.records())
    graph.graph["logs"] = list(dict.fromkeys(n.log for n in nodes))
    for node in nodes:
        stamp = node.stamp
        events = node.events or ()
        graph.add_node(
            cid_text(node.cid),
            log=node.log,
            own=node.log == db.log_id,
            author=node.author,
            counter=node.counter,
            hlc=f"{stamp.wall}.{stamp.logical}" if stamp else None,
            wall=stamp.wall if stamp else None,
            collections=_unique(e.collection for e in events),
            actions=_unique(str(e.action) for e in events),
            events=len(events),
            size=node.size,
        )
    for node in nodes:
        if node.prev is not None:
            graph.add_edge(cid_text(node.cid), cid_text(node.prev), kind="prev")
    if causal:
        for source, target in _causal_edges(nodes):
            graph.add_edge(source, target, kind="causal")
    return graph


def _causal_edges(nodes: list[RecordNode]) -> Iterator[tuple[str, str]]:
    """(record, seen record of another log) pairs, without redundant ones (module doc)."""

    where: dict[bytes, tuple[str, int]] = {}
    by_place: dict[tuple[str, int], bytes] = {}
    log_bytes: dict[str, bytes] = {}
    for node in nodes:
        by_place[(node.log, node.counter)] = node.cid
        raw = log_bytes.setdefault(node.log, peer_id_bytes(node.log))
        for event in node.events or ():
            where[event.key(raw)] = (node.log, node.counter)
    known: dict[str, dict[str, int]] = {}
    for node in sorted(nodes, key=lambda n: (n.log, n.counter)):
        seen = known.setdefault(node.log, {})
        latest: dict[str, int] = {}
        for event in node.events or ():
            if event.base is None or event.base not in where:
                continue
            other, counter = where[event.base]
            if other != node.log and counter > max(seen.get(other, 0), latest.get(other, 0)):
                latest[other] = counter
        for other, counter in latest.items():
            seen[other] = counter
            yield cid_text(node.cid), cid_text(by_place[(other, counter)])


# -------------------------------------------------------------------------- logs


def logs(db: DatabaseSource) -> pd.DataFrame:
    """The logs of a database and their heads, as a DataFrame.

    Returns
    -------
    pandas.DataFrame
        One row per log (this peer's own first), with columns ``log`` (log id),
        ``own`` (True for this peer's log of the database), ``counter``
        (records held), ``head`` (the head record's CID, None while empty),
        ``applied`` (records whose events this peer has applied), ``key`` (the
        log's public key string) and ``addrs`` (multiaddrs it can be fetched
        from). ``dict(zip(df.log, df.counter))`` is a head set for time travel.

    Examples
    --------
    >>> import threadkit as tk
    >>> with tk.Peer(memory=True) as peer:
    ...     db = peer.new_db("notes")
    ...     _ = db.new_collection("Notes")
    ...     logs(db)[["own", "counter", "applied"]].to_dict("records")
    [{'own': True, 'counter': 1, 'applied': 1}]
    """
    import pandas as pd

    infos = db.timeline.logs()
    return pd.DataFrame(
        {
            "log": pd.Series([i.id for i in infos], dtype="string"),
            "own": pd.Series([i.own for i in infos], dtype=bool),
            "counter": pd.Series([i.counter for i in infos], dtype="int64"),
            "head": pd.Series(
                [cid_text(i.head) if i.head else None for i in infos], dtype="string"
            ),
            "applied": pd.Series([i.applied for i in infos], dtype="int64"),
            "key": pd.Series([i.public for i in infos], dtype="string"),
            "addrs": pd.Series([list(i.addrs) for i in infos], dtype=object),
        },
        columns=list(LOG_COLUMNS),
    )


# -------------------------------------------------------------------------- plot

_MARKERS = {
    "create": "o",
    "save": "s",
    "delete": "X",
    "purge": "v",
    "collection": "D",
    "migration": "*",
    "mixed": "P",
    "unreadable": "x",
}


_KIND_OF = {str(Action.MIGRATE_COLLECTION): "migration"}


def _kind(actions: tuple[str, ...], readable: bool) -> str:
    if not readable:
        return "unreadable"
    kinds = {_KIND_OF.get(a) or ("collection" if Action(a).is_collection else a) for a in actions}
    if len(kinds) == 1:
        return kinds.pop()
    return "collection" if "collection" in kinds else "mixed"


def _short(peer_id: str) -> str:
    return f"{peer_id[:6]}…{peer_id[-4:]}" if len(peer_id) > 12 else peer_id


def _author_label(author: str | None) -> str:
    if author is None:
        return "unknown"

    try:
        return _short(PublicKey.from_string(author).peer_id)
    except ThreadkitError:
        return _short(author)


def _budget(counts: dict[str, int], total: int) -> dict[str, int]:
    """Records to show per log: at most ``total``, fairly shared (water-filling)."""
    shown: dict[str, int] = {}
    remaining = max(total, len(counts))
    pending = sorted(counts, key=lambda log: counts[log])
    while pending:
        share = max(1, remaining // len(pending))
        log = pending.pop(0)
        shown[log] = min(counts[log], share)
        remaining -= shown[log]
    return shown


def plot_dag(
    db: DatabaseSource,
    ax: Axes | None = None,
    max_records: int = 300,
    causal: bool = False,
    members: Mapping[str, str] | None = None,
) -> DagFigure | Figure:
    """Draw the record DAG: one horizontal lane per log, records in HLC order.

    Each record is a marker in its log's lane (x = its place in the HLC order
    of the records shown), coloured by author, shaped by what it does (create
    ●, save ■, delete ✖, purge ▼, collection ◆, migration ✱, several ✚, unreadable
    ×); arrows go from each record back to its ``prev``. With more than
    ``max_records`` records, only the latest of each log are drawn (a fair share
    each) and a "… k earlier" marker at the start of a lane counts the rest.

    Conflicts are marked: a record holding a write that lost (``db.conflicts()``)
    gets a red ring and the lost field's name under it, the record holding the
    write it lost to a green ring.

    Parameters
    ----------
    db : DatabaseSource
        The database.
    ax : matplotlib Axes, optional
        Where to draw; by default a new figure sized to the graph.
    max_records : int
        Most records drawn.
    causal : bool
        Also draw causal edges (see :func:`dag`) as dashed grey arrows.
    members : Mapping[str, str], optional
        Names for the members, by log id or by peer id (a peer's ``peer.id``):
        lanes and authors in the legend are shown by these names
        (e.g. ``{peer_a.id: "A", peer_b.id: "B"}``).

    Returns
    -------
    DagFigure or matplotlib.figure.Figure
        A new :class:`~threadkit.dagfigure.DagFigure` (a ``Figure`` with a PNG
        rich repr: it displays as the cell's value in any Jupyter kernel, with
        or without ``%matplotlib inline``; ``fig.save("dag.png")`` writes it
        to a file), or ``ax``'s own figure when ``ax`` is given.
        The lanes are the y tick labels: the member's name when ``members`` gives
        one, else a short log id; "(own)" marks this peer's.

    Examples
    --------
    >>> import threadkit as tk
    >>> with tk.Peer(memory=True) as peer:
    ...     db = peer.new_db("notes")
    ...     _ = db.new_collection("Notes").create({"text": "hi"})
    ...     fig = plot_dag(db)
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()][0].endswith("(own)")
    True
    """
    if max_records < 1:
        raise InvalidInput(f"max_records must be at least 1, got {max_records}")
    graph = dag(db, causal=causal)
    lanes = _lanes(db, graph)
    by_log: dict[str, list[str]] = {log: [] for log in lanes}
    for node, log in graph.nodes(data="log"):
        by_log[log].append(node)
    for nodes in by_log.values():
        nodes.sort(key=lambda n: graph.nodes[n]["counter"])
    budget = _budget({log: len(nodes) for log, nodes in by_log.items()}, max_records)
    shown = [n for log, nodes in by_log.items() for n in nodes[len(nodes) - budget[log] :]]
    order = _hlc_order(graph, shown)
    x = {node: i for i, node in enumerate(order)}
    y = {log: i for i, log in enumerate(lanes)}
    hidden = {log: len(by_log[log]) - budget[log] for log in lanes}

    if ax is None:
        columns = len(order) + 2
        width = min(18.0, max(7.0, 4.0 + (0.24 if columns <= 60 else 0.05) * columns))
        height = min(12.0, max(2.4, 1.4 + 0.8 * len(lanes)))
        from threadkit.dagfigure import DagFigure

        fig: DagFigure | Figure = DagFigure(figsize=(width, height), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure  # type: ignore[assignment]

    authors = list(dict.fromkeys(graph.nodes[n]["author"] for n in order))
    palette = _palette(len(authors))
    colour = {a: palette[i] for i, a in enumerate(authors)}
    dense = len(order) > 120
    _draw_edges(ax, graph, x, y, dense)
    kinds = _draw_records(ax, graph, order, x, y, colour, dense)
    names = _member_names(db, members)
    marked = _draw_conflicts(ax, db, graph, x, y, dense)
    if hidden and any(hidden.values()):
        for log, k in hidden.items():
            if k and by_log[log]:
                first = x[by_log[log][len(by_log[log]) - budget[log]]]
                ax.plot([-1.2, first], [y[log], y[log]], ls=":", color="#888888", lw=1, zorder=1)

    labels = []
    for log in lanes:
        label = names.get(log, _short(log)) + (" (own)" if log == db.log_id else "")
        if hidden[log]:
            label += f"\n… {hidden[log]} earlier"
        labels.append(label)
    ax.set_yticks(range(len(lanes)))
    ax.set_yticklabels(labels, fontsize=9)
    ax.set_ylim(len(lanes) - 0.5, -0.5)
    ax.set_xlim(-1.5, max(len(order), 1))
    ticks = _time_ticks(graph, order)
    ax.set_xticks(ticks)
    ax.set_xticklabels(
        [_time_label(graph.nodes[order[t]]["wall"]) for t in ticks],
        fontsize=7,
        rotation=20,
        ha="right",
    )
    ax.set_xlabel("records in HLC order (ticks: wall time, UTC)", fontsize=9)
    ax.grid(axis="y", color="#e5e5e5", zorder=0)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    total = graph.number_of_nodes()
    note = f"latest {len(order)} of {total} records" if len(order) < total else f"{total} records"
    ax.set_title(f"{db.name}: {len(lanes)} logs, {note}; arrows point to prev", fontsize=10)
    if not order:
        ax.text(0.5, 0.5, "no records", transform=ax.transAxes, ha="center", color="#777777")
    _legend(ax, authors, colour, kinds, names, marked)
    return fig


def _member_names(db: DatabaseSource, members: Mapping[str, str] | None) -> dict[str, str]:
    """Names by log id and by author key, from names given by log id or peer id."""
    if not members:
        return {}

    names = {str(k): str(v) for k, v in members.items()}
    for key, value in members.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidInput(f"members maps ids to names (text), got {key!r}: {value!r}")
    for log_id, public in db.timeline.log_keys().items():
        owner = names.get(log_id)
        if owner is None:
            continue
        names.setdefault(public, owner)
    by_author: dict[str, str] = {}
    for node in db.timeline.records():
        if node.author is None or node.author in by_author:
            continue
        peer = PublicKey.from_string(node.author).peer_id
        name = names.get(peer) or names.get(node.log)
        if name is not None:
            by_author[node.author] = name
            names.setdefault(node.log, name)
    return {**names, **by_author}


def _draw_conflicts(
    ax: Axes,
    db: DatabaseSource,
    graph: nx.DiGraph,
    x: dict[str, int],
    y: dict[str, int],
    dense: bool,
) -> list[str]:
    """Rings around records whose writes lost (red) or won (green); returns what was drawn."""

    try:
        frame = conflicts(db)
    except ThreadkitError:  # a replicator without the read key cannot tell
        return []
    drawn: list[str] = []
    size = 260 if not dense else 90
    for side, colour in (("winner", "#2ca02c"), ("loser", "#d62728")):
        rows = [r for r in frame.itertuples() if getattr(r, f"{side}_record") in x]
        nodes = list(dict.fromkeys(getattr(r, f"{side}_record") for r in rows))
        if not nodes:
            continue
        drawn.append(side)
        ax.scatter(
            [x[n] for n in nodes],
            [y[graph.nodes[n]["log"]] for n in nodes],
            s=size,
            facecolors="none",
            edgecolors=colour,
            linewidths=1.6,
            zorder=2,
        )
        if side == "loser" and not dense:
            for node in nodes:
                lost = sorted(
                    {
                        f"{r.instance}.{r.path}" if r.path else str(r.instance)
                        for r in rows
                        if r.loser_record == node
                    }
                )
                ax.annotate(
                    "lost: " + ", ".join(lost[:3]) + (" …" if len(lost) > 3 else ""),
                    (x[node], y[graph.nodes[node]["log"]]),
                    xytext=(0, -14),
                    textcoords="offset points",
                    ha="center",
                    fontsize=7,
                    color=colour,
                )
    return drawn


def _draw_edges(
    ax: Axes, graph: nx.DiGraph, x: dict[str, int], y: dict[str, int], dense: bool
) -> None:
    """Prev links (solid) and causal edges (dashed): arrows, or plain lines when dense."""
    from matplotlib.collections import LineCollection

    segments: dict[bool, list[tuple[tuple[int, int], tuple[int, int]]]] = {True: [], False: []}
    for u, v, kind in graph.edges(data="kind"):
        if u in x and v in x:
            start = (x[u], y[graph.nodes[u]["log"]])
            end = (x[v], y[graph.nodes[v]["log"]])
            segments[kind == "prev"].append((start, end))
    for prev, pairs in segments.items():
        colour, style = ("#4d4d4d", "-") if prev else ("#9a9a9a", "--")
        if dense:
            lines = LineCollection(pairs, colors=colour, linewidths=0.6, linestyles=style, zorder=1)
            ax.add_collection(lines)
            continue
        for start, end in pairs:
            ax.annotate(
                "",
                xy=end,
                xytext=start,
                arrowprops={
                    "arrowstyle": "-|>",
                    "color": colour,
                    "lw": 0.8,
                    "ls": style,
                    "shrinkA": 4,
                    "shrinkB": 4,
                    "mutation_scale": 7,
                    "connectionstyle": "arc3" if prev else "arc3,rad=0.15",
                },
                zorder=1,
            )


def _draw_records(
    ax: Axes,
    graph: nx.DiGraph,
    order: list[str],
    x: dict[str, int],
    y: dict[str, int],
    colour: dict[str | None, Any],
    dense: bool,
) -> list[str]:
    """One marker per record; returns the kinds drawn (for the legend)."""
    size = 70 if len(order) <= 60 else (36 if not dense else 18)
    kinds: list[str] = []
    for kind, marker in _MARKERS.items():
        nodes = [
            n
            for n in order
            if _kind(graph.nodes[n]["actions"], graph.nodes[n]["hlc"] is not None) == kind
        ]
        if not nodes:
            continue
        kinds.append(kind)
        ax.scatter(
            [x[n] for n in nodes],
            [y[graph.nodes[n]["log"]] for n in nodes],
            c=[colour[graph.nodes[n]["author"]] for n in nodes],
            marker=marker,
            s=size,
            edgecolors="black",
            linewidths=0.3 if dense else 0.5,
            zorder=3,
        )
    if len(order) <= 60:
        for n in order:
            ax.annotate(
                str(graph.nodes[n]["counter"]),
                (x[n], y[graph.nodes[n]["log"]]),
                xytext=(0, 7),
                textcoords="offset points",
                ha="center",
                fontsize=7,
                color="#333333",
            )
    return kinds


def _legend(
    ax: Axes,
    authors: list[str | None],
    colour: dict[str | None, Any],
    kinds: list[str],
    names: dict[str, str],
    marked: list[str],
) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], ls="", marker="o", color=colour[a], markeredgecolor="black", ms=7)
        for a in authors
    ]
    labels = [
        f"written by {names[a]}" if a in names else f"author {_author_label(a)}" for a in authors
    ]
    rings = {"winner": ("#2ca02c", "won a conflict"), "loser": ("#d62728", "lost a write")}
    for side in marked:
        ring, text = rings[side]
        handles.append(
            Line2D([], [], ls="", marker="o", markerfacecolor="none", markeredgecolor=ring, ms=10)
        )
        labels.append(text)
    handles += [
        Line2D([], [], ls="", marker=_MARKERS[k], color="white", markeredgecolor="black", ms=7)
        for k in kinds
    ]
    labels += kinds
    if handles:
        ax.legend(
            handles, labels, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False
        )


def _lanes(db: DatabaseSource, graph: nx.DiGraph) -> list[str]:
    """Log ids in lane order: by the HLC of their first record (empty logs last)."""
    first: dict[str, int] = {}
    for _, attrs in graph.nodes(data=True):
        if attrs["counter"] == 1 and attrs["wall"] is not None:
            first[attrs["log"]] = attrs["wall"]
    ids = db.timeline.log_ids()
    return sorted(ids, key=lambda log: (log not in first, first.get(log, 0), log))


def _hlc_order(graph: nx.DiGraph, nodes: list[str]) -> list[str]:
    """Nodes sorted by their first stamp; unreadable ones right after their prev."""

    def key(node: str) -> tuple[int, int, int, str]:
        attrs = graph.nodes[node]
        hops, current = 0, node
        while graph.nodes[current]["hlc"] is None:
            successors = [
                v for v in graph.successors(current) if graph.edges[current, v]["kind"] == "prev"
            ]
            if not successors:
                return (0, 0, hops, attrs["log"])
            current, hops = successors[0], hops + 1
        wall, logical = (int(p) for p in graph.nodes[current]["hlc"].split("."))
        return (wall, logical, hops, attrs["log"])

    return sorted(nodes, key=key)


def _palette(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(max(n, 1))]


def _time_ticks(graph: nx.DiGraph, order: list[str]) -> list[int]:
    """A few evenly spaced positions of readable records, for wall-time tick labels."""
    if not order:
        return []
    count = min(max(2, len(order) // 12), 8, len(order))
    picks = sorted({round(i * (len(order) - 1) / max(count - 1, 1)) for i in range(count)})
    return [p for p in picks if graph.nodes[order[p]]["wall"] is not None]


def _time_label(wall: int | None) -> str:
    if wall is None:
        return ""

    moment = datetime.fromtimestamp(wall / 1e9, UTC)
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


# ------------------------------------------------------------------------- views


class GraphViews:
    """The record-DAG views of a database (``tk.Database`` has them, ``threadkit.views``)."""

    __slots__ = ()

    def dag(self: DatabaseLog, causal: bool = False) -> nx.DiGraph:
        """The records of every log as a ``networkx.DiGraph`` (edges: prev links)."""
        return dag(self._log_source("dag()"), causal)

    def plot_dag(
        self: DatabaseLog,
        ax: Axes | None = None,
        max_records: int = 300,
        causal: bool = False,
        members: dict[str, str] | None = None,
    ) -> DagFigure | Figure:
        """A matplotlib figure of the record DAG, one lane per log, coloured by author.

        Conflicting records are ringed (red: a write lost, green: the write it lost to);
        ``members`` names lanes and authors (``{peer.id: "A", ...}``); see
        :func:`threadkit.graph.plot_dag`.
        """
        return plot_dag(
            self._log_source("plot_dag()"),
            ax=ax,
            max_records=max_records,
            causal=causal,
            members=members,
        )

    def logs(self: DatabaseLog) -> pd.DataFrame:
        """The database's logs and their heads, as a DataFrame."""
        return logs(self._log_source("logs()"))

    def _log_source(self: DatabaseSource, what: str) -> DatabaseSource:
        return self
