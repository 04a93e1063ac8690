"""Record feeds: ThreadDB's ``Subscribe`` — new records of some threads, as they arrive."""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from threadkit.db.listen import Lagged
from threadkit.errors import FeedClosed, Timeout

if TYPE_CHECKING:
    from threadkit.core.ids import ThreadID
    from threadkit.core.records import Record
    from threadkit.net.service import ThreadService

__all__ = ["RecordFeed"]

Item = tuple["ThreadID", str, "Record"]


class RecordFeed:
    """An iterator of ``(thread_id, log_id, record)``; a full queue yields :class:`Lagged`."""

    def __init__(
        self, service: ThreadService, thread_ids: set[ThreadID] | None, maxsize: int
    ) -> None:
        self._queue: queue.Queue[Item | Lagged | None] = queue.Queue(maxsize)
        self._threads = thread_ids
        self._missed = 0
        self.closed = False
        self._remove = service.on_record(self._offer)

    def _offer(self, thread_id: ThreadID, log_id: str, record: Record) -> None:
        if self._threads is not None and thread_id not in self._threads:
            return
        if self._missed and self._queue.qsize() < self._queue.maxsize - 1:
            self._queue.put_nowait(Lagged(self._missed))
            self._missed = 0
        if self._queue.qsize() >= self._queue.maxsize - 1:
            self._missed += 1
            return
        self._queue.put_nowait((thread_id, log_id, record))

    def get(self, timeout: float | None = None) -> Item | Lagged:
        """The next record; ``Timeout`` after ``timeout`` s, ``FeedClosed`` once closed."""
        if self.closed and self._queue.empty():
            raise FeedClosed("this record feed is closed")
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise Timeout(f"no record within {timeout} s") from None
        if item is None:
            raise FeedClosed("this record feed is closed")
        return item

    def __iter__(self) -> Iterator[Item | Lagged]:
        while True:
            try:
                yield self.get()
            except FeedClosed:
                return

    def close(self) -> None:
        """Stop receiving records."""
        if self.closed:
            return
        self.closed = True
        self._remove()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)

    def __enter__(self) -> RecordFeed:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
