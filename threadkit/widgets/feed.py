"""``ListenFeed``: a live, scrolling table of a database's events as they arrive."""

from __future__ import annotations

import collections
import datetime as dt
import json
import threading
import time
from typing import TYPE_CHECKING, Any

from threadkit.db.listen import Event, Lagged
from threadkit.widgets.base import LiveWidget, escape, member, panel

if TYPE_CHECKING:
    from threadkit.db.database import Database

__all__ = ["ListenFeed", "document_html", "when"]


def when(mod: Any, arrived: float) -> str:
    """The time a person reads for an event: the document's ``_mod``, else its arrival.

    ``_mod`` (nanoseconds since the epoch, as stored) is shown in local time to the
    millisecond; an event without one (a delete) shows when it arrived.

    Examples
    --------
    >>> when(None, 0.0) == dt.datetime.fromtimestamp(0.0).strftime("%H:%M:%S.%f")[:-3]
    True
    """
    if isinstance(mod, int) and not isinstance(mod, bool):
        seconds = mod / 1e9
    elif isinstance(mod, dt.datetime):
        seconds = mod.timestamp()
    else:
        seconds = arrived
    return dt.datetime.fromtimestamp(seconds).strftime("%H:%M:%S.%f")[:-3]


def document_html(document: dict[str, Any] | None, limit: int = 8) -> str:
    """A document's fields as ``name: value`` pairs (no ``_id``/``_mod``), HTML-escaped.

    Text is shown as is, other values as JSON; beyond ``limit`` fields, "… N more".

    Examples
    --------
    >>> document_html({"_id": "a", "_mod": 1, "name": "Ada <x>", "tags": ["a", 1]})
    '<b>name</b>: Ada &lt;x&gt; · <b>tags</b>: [&quot;a&quot;, 1]'
    >>> document_html(None)
    '<i>deleted</i>'
    """
    if document is None:
        return "<i>deleted</i>"
    fields = [(k, v) for k, v in document.items() if k not in ("_id", "_mod")]
    parts = []
    for key, value in fields[:limit]:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        parts.append(f"<b>{escape(key, 40)}</b>: {escape(text, 80)}")
    if len(fields) > limit:
        parts.append(f"… {len(fields) - limit} more")
    return " · ".join(parts)


class ListenFeed(LiveWidget):
    """Events of a database (local writes and records from other peers), newest first.

    Each row shows when the document was written (its ``_mod``, local time), who wrote
    it ("you" for this peer, else the writer's short log id), the collection, the
    action, the id and the document's fields; the rows scroll in a box.

    Parameters
    ----------
    db : Database
        The database to watch.
    collection : str, optional
        Only this collection's events.
    max_rows : int
        Rows kept on screen.
    """

    def __init__(
        self,
        db: Database,
        collection: str | None = None,
        max_rows: int = 100,
        throttle: float = 0.25,
    ) -> None:
        super().__init__(throttle=throttle)
        self.db = db
        self.collection = collection
        self.rows: collections.deque[tuple[float, Event | Lagged]] = collections.deque(
            maxlen=max_rows
        )
        self.count = 0
        self._feed = db.listen(collection=collection)
        self._cleanups.append(self._feed.close)
        self._reader = threading.Thread(target=self._read, name="ListenFeed-reader", daemon=True)
        self.start()
        self._reader.start()

    def _read(self) -> None:
        for item in self._feed:
            self.rows.appendleft((time.time(), item))
            if isinstance(item, Event):
                self.count += 1
            self.wake()
        self._source_ended("the database was closed")

    def _source_gone(self) -> bool:
        return bool(self._feed.closed)

    def render(self) -> str:
        """The table's HTML."""
        title = f"<b>{escape(self.db.name)}</b>" + (
            f" / {escape(self.collection)}" if self.collection else ""
        )
        heads = "".join(
            f"<th style='text-align:left'>{h}</th>"
            for h in ("time", "by", "collection", "action", "id", "document")
        )
        lines = [f"<table><thead><tr>{heads}</tr></thead><tbody>"]
        for at, item in list(self.rows):
            if isinstance(item, Lagged):
                lines.append(
                    f"<tr><td>{when(None, at)}</td><td colspan='5'><i>{item.missed} events "
                    "skipped (the feed fell behind)</i></td></tr>"
                )
                continue
            mod = item.document.get("_mod") if item.document else None
            cells = (
                when(mod, at),
                escape(member(item.log, self.db.log_id)),
                escape(item.collection),
                escape(item.action.value),
                f"<code>{escape(item.instance_id)}</code>",
                document_html(item.document),
            )
            row = "".join(f"<td style='text-align:left'>{c}</td>" for c in cells[:-1])
            lines.append(
                f"<tr>{row}<td class='tk-doc' style='text-align:left;white-space:normal'>"
                f"{cells[-1]}</td></tr>"
            )
        lines.append("</tbody></table>")
        events = "1 event" if self.count == 1 else f"{self.count} events"
        return panel(f"{title} — {events}", "".join(lines))
