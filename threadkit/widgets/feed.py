"""``ListenFeed``: a live, scrolling table of a database's events as they arrive."""

from __future__ import annotations

import collections
import threading
import time
from typing import TYPE_CHECKING

from threadkit.db.listen import Event, Lagged
from threadkit.widgets.base import LiveWidget, escape

if TYPE_CHECKING:
    from threadkit.db.database import Database

__all__ = ["ListenFeed"]


class ListenFeed(LiveWidget):
    """Events of a database (local writes and records from other peers), newest first.

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

    def render(self) -> str:
        """The table's HTML."""
        title = f"{escape(self.db.name)}" + (
            f" / {escape(self.collection)}" if self.collection else ""
        )
        lines = [
            f"<div><b>{title}</b> — {self.count} events</div>",
            "<table><tr><th>time</th><th>collection</th><th>action</th><th>id</th>"
            "<th>document</th></tr>",
        ]
        for at, item in list(self.rows):
            stamp = time.strftime("%H:%M:%S", time.localtime(at))
            if isinstance(item, Lagged):
                lines.append(
                    f"<tr><td>{stamp}</td><td colspan='4'><i>{item.missed} events skipped "
                    "(the feed fell behind)</i></td></tr>"
                )
                continue
            lines.append(
                f"<tr><td>{stamp}</td><td>{escape(item.collection)}</td>"
                f"<td>{escape(item.action.value)}</td><td>{escape(item.instance_id)}</td>"
                f"<td><code>{escape(item.document or '')}</code></td></tr>"
            )
        lines.append("</table>")
        return "".join(lines)
