"""A feed offered a commit's events at once holds what offering them one by one held."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from threadkit.db.events import Action
from threadkit.db.listen import Event, Lagged, Listeners


class OneByOne:
    """The feed's rules applied event by event (a bounded queue keeping one place free
    for the Lagged marker): the reference the batched feed must match."""

    def __init__(self, maxsize: int) -> None:
        self.items: list[Event | Lagged] = []
        self.maxsize = maxsize
        self.missed = 0

    def offer(self, event: Event) -> None:
        if self.missed:
            if len(self.items) >= self.maxsize - 1:
                self.missed += 1
                return
            self.items.append(Lagged(self.missed))
            self.missed = 0
        if len(self.items) >= self.maxsize - 1:
            self.missed += 1
        else:
            self.items.append(event)

    def next(self) -> Event | Lagged | None:
        if self.missed and not self.items:
            missed, self.missed = self.missed, 0
            return Lagged(missed)
        return self.items.pop(0) if self.items else None


def _event(n: int, collection: str = "Docs") -> Event:
    return Event(collection, f"d{n}", Action.CREATE, {"_id": f"d{n}"})


@given(
    st.integers(min_value=2, max_value=6),
    st.lists(
        st.one_of(
            st.integers(min_value=1, max_value=9).map(lambda n: ("publish", n)),
            st.integers(min_value=1, max_value=5).map(lambda n: ("read", n)),
        ),
        max_size=25,
    ),
)
def test_batches_match_one_by_one(maxsize: int, steps: list[tuple[str, int]]) -> None:
    listeners = Listeners()
    feed = listeners.subscribe(collection="Docs", maxsize=maxsize)
    reference = OneByOne(maxsize)
    counter = 0
    for kind, n in steps:
        if kind == "publish":
            # another collection's events in the same commit are filtered out
            events = [_event(counter + i, "Docs" if i % 3 else "Other") for i in range(n)]
            counter += n
            listeners.publish(iter(events))  # any iterable, read once
            for event in events:
                if event.collection == "Docs":
                    reference.offer(event)
        else:
            for _ in range(n):
                assert feed.get_nowait() == reference.next()
    while (item := reference.next()) is not None:
        assert feed.get(timeout=1) == item
    assert feed.get_nowait() is None
    feed.close()
    assert list(feed) == []
