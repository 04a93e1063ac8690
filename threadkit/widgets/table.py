"""``LiveTable``: a collection (or a query over it) that re-renders as documents change."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from threadkit.frames.frame import to_pandas
from threadkit.frames.lazy import query_frame
from threadkit.widgets.base import LiveWidget, escape, frame_html, panel

if TYPE_CHECKING:
    from threadkit.db.query import Query
    from threadkit.frames.source import CollectionSource

__all__ = ["LiveTable"]


class LiveTable(LiveWidget):
    """A table of a collection's documents, re-rendered (throttled) whenever they change.

    The table is the DataFrame's own notebook HTML (aligned, ``_mod`` as a time), in a
    scroll box with a sticky header.

    Parameters
    ----------
    coll : CollectionSource
        The collection.
    query : Query or str, optional
        A ``tk.Query``/``tk.where(...)`` or a pandas-style expression (``"age > 30"``).
    max_rows : int
        Rows shown.
    throttle : float
        Seconds between re-renders at most.
    """

    def __init__(
        self,
        coll: CollectionSource,
        query: Query | str | None = None,
        max_rows: int = 50,
        throttle: float = 0.5,
    ) -> None:
        super().__init__(throttle=throttle)
        self.collection = coll
        self.query = query
        self.max_rows = max_rows
        self._feed = coll.db.listen(collection=coll.name)
        self._cleanups.append(self._feed.close)
        self._reader = threading.Thread(target=self._read, name="LiveTable-reader", daemon=True)
        self.start()
        self._reader.start()

    def _read(self) -> None:
        for _ in self._feed:
            self.wake()
        self._source_ended("the database was closed")

    def frame(self) -> Any:
        """The current DataFrame (the query's result, or the whole collection)."""

        if isinstance(self.query, str):
            return query_frame(self.collection, self.query)
        return to_pandas(self.collection, self.query)

    def _source_gone(self) -> bool:
        return bool(self._feed.closed)

    def render(self) -> str:
        """The table's HTML."""
        frame = self.frame()
        shown = frame.head(self.max_rows)
        more = len(frame) - len(shown)
        caption = f"<b>{escape(self.collection.name)}</b> — {len(frame)} documents"
        if more > 0:
            caption += f" (first {len(shown)} shown)"
        return panel(caption, frame_html(shown))
