"""Listen feeds: committed changes delivered to subscribers through bounded queues.

A subscriber that falls behind is never silently dropped from: when its queue
is full, the changes that do not fit are replaced by one :class:`Lagged`
marker (with the count it missed), and delivery resumes once it catches up.
The subscriber can then re-read the collection to resync.
"""

from __future__ import annotations

import html
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from threadkit.db.events import Action
from threadkit.errors import FeedClosed, InvalidInput, Timeout

__all__ = ["DEFAULT_QUEUE_SIZE", "Event", "Feed", "Lagged", "Listeners"]

DEFAULT_QUEUE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Event:
    """A change to an instance, local or from another peer.

    Attributes
    ----------
    collection : str
        The collection.
    instance_id : str
        The instance's ``_id``.
    action : Action
        ``Action.CREATE``, ``Action.SAVE`` or ``Action.DELETE``.
    document : dict | None
        The instance after the change (None for a delete).
    log : str | None
        The log (peer id) whose record made the change: this peer's own log for a local
        write, another member's for a record received from it; None when unknown
        (changes replayed after a restart).
    """

    collection: str
    instance_id: str
    action: Action
    document: dict[str, Any] | None = None
    log: str | None = None

    def _repr_html_(self) -> str:
        """One line: action, collection, id and the document (for notebooks)."""
        doc = html.escape(str(self.document)) if self.document is not None else ""
        return (
            f"<div><b>{html.escape(self.action.value)}</b> {html.escape(self.collection)}/"
            f"<code>{html.escape(self.instance_id)}</code> <code>{doc}</code></div>"
        )


@dataclass(frozen=True, slots=True)
class Lagged:
    """Marker in a feed: ``missed`` events did not fit in the subscriber's queue."""

    missed: int


_ACTION_NAMES = {"create": Action.CREATE, "save": Action.SAVE, "delete": Action.DELETE}


def _parse_actions(actions: Iterable[Action | str] | Action | str | None) -> frozenset[Action]:
    if actions is None:
        return frozenset((Action.CREATE, Action.SAVE, Action.DELETE))
    if isinstance(actions, Action | str):
        actions = [actions]
    if not isinstance(actions, list | tuple | set | frozenset):
        raise InvalidInput(f"actions must be an action or a list of them, got {actions!r}")
    parsed = set()
    for action in actions:
        if isinstance(action, str):
            if action.lower() not in _ACTION_NAMES:
                raise InvalidInput(f"unknown action {action!r}: use create, save or delete")
            parsed.add(_ACTION_NAMES[action.lower()])
        elif isinstance(action, Action) and not action.is_collection:
            parsed.add(action)
        else:
            raise InvalidInput(f"unknown action {action!r}: use create, save or delete")
    return frozenset(parsed)


class Feed:
    """An iterator of :class:`Event` (and :class:`Lagged` markers); close it when done.

    Examples
    --------
    >>> listeners = Listeners()
    >>> feed = listeners.subscribe(collection="Persons")
    >>> listeners.publish([Event("Persons", "a1", Action.CREATE, {"_id": "a1"})])
    >>> feed.get(timeout=1).instance_id
    'a1'
    >>> feed.close()
    """

    def __init__(
        self,
        owner: Listeners,
        collection: str | None,
        instance_id: str | None,
        actions: frozenset[Action],
        maxsize: int,
    ) -> None:
        self.collection = collection
        self.instance_id = instance_id
        self.actions = actions
        self._owner = owner
        self._items: deque[Event | Lagged | None] = deque()
        self._maxsize = maxsize
        self._missed = 0
        self._ready = threading.Condition(threading.Lock())
        """Guards the items and the missed count; notified once per batch offered."""
        self.closed = False

    def wants(self, event: Event) -> bool:
        """True when the event passes this feed's filters."""
        return (
            event.action in self.actions
            and (self.collection is None or event.collection == self.collection)
            and (self.instance_id is None or event.instance_id == self.instance_id)
        )

    def _offer(self, events: list[Event]) -> None:
        """Queue events (one commit's) and wake the reader once; the ones that do not
        fit are counted for a :class:`Lagged` marker (one place is kept for it)."""
        items, room = self._items, self._maxsize - 1
        with self._ready:
            added = len(items)
            for event in events:
                if self._missed:
                    if len(items) >= room:
                        self._missed += 1
                        continue
                    items.append(Lagged(self._missed))
                    self._missed = 0
                if len(items) >= room:
                    self._missed += 1
                else:
                    items.append(event)
            if len(items) > added:
                self._ready.notify_all()

    def get(self, timeout: float | None = None) -> Event | Lagged:
        """The next event.

        Raises
        ------
        Timeout
            When nothing arrives within ``timeout`` seconds.
        FeedClosed
            When the feed is closed (by :meth:`close` or because the database closed).
        """
        item = self._next(timeout)
        if item is None:
            raise FeedClosed("this listen feed is closed")
        return item

    def _next(self, timeout: float | None) -> Event | Lagged | None:
        if self.closed and not self._items:
            return None
        lagged = self._lagged()
        if lagged is not None:
            return lagged
        with self._ready:
            if not self._ready.wait_for(lambda: self._items, timeout):
                raise Timeout(f"no event within {timeout} s")
            return self._items.popleft()

    def _lagged(self) -> Lagged | None:
        """A Lagged marker once the reader has caught up with a queue that overflowed."""
        with self._ready:
            if self._missed and not self._items:
                missed, self._missed = self._missed, 0
                return Lagged(missed)
        return None

    def get_nowait(self) -> Event | Lagged | None:
        """The next event if one is waiting (or a Lagged marker), else None."""
        if self.closed and not self._items:
            return None
        lagged = self._lagged()
        if lagged is not None:
            return lagged
        with self._ready:
            return self._items.popleft() if self._items else None

    def __iter__(self) -> Iterator[Event | Lagged]:
        while (item := self._next(None)) is not None:
            yield item

    def close(self) -> None:
        """Stop receiving; a blocked iterator ends."""
        if self.closed:
            return
        self.closed = True
        self._owner._remove(self)
        with self._ready:
            if len(self._items) < self._maxsize:
                self._items.append(None)
                self._ready.notify_all()

    def __enter__(self) -> Feed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not self.closed:
            self._owner._remove(self)


class Listeners:
    """The subscribers of one database."""

    def __init__(self) -> None:
        self._feeds: list[Feed] = []
        self._lock = threading.Lock()

    def subscribe(
        self,
        collection: str | None = None,
        instance_id: str | None = None,
        actions: Iterable[Action | str] | Action | str | None = None,
        maxsize: int = DEFAULT_QUEUE_SIZE,
    ) -> Feed:
        """A new feed with the given filters (None = everything)."""
        if maxsize < 2:
            raise InvalidInput("a feed's queue must hold at least 2 items")
        feed = Feed(self, collection, instance_id, _parse_actions(actions), maxsize)
        with self._lock:
            self._feeds.append(feed)
        return feed

    def publish(self, events: Iterable[Event]) -> None:
        """Deliver committed events to every feed that wants them."""
        with self._lock:
            feeds = list(self._feeds)
        if not feeds:
            return
        events = list(events)
        for feed in feeds:
            wanted = [event for event in events if feed.wants(event)]
            if wanted:
                feed._offer(wanted)

    def close_all(self) -> None:
        """Close every feed (the database is closing)."""
        with self._lock:
            feeds = list(self._feeds)
        for feed in feeds:
            feed.close()

    def _remove(self, feed: Feed) -> None:
        with self._lock:
            if feed in self._feeds:
                self._feeds.remove(feed)

    def __len__(self) -> int:
        return len(self._feeds)
