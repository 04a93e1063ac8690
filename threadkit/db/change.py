"""A change to an instance: as listeners see it, and as the engine judges it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from threadkit.db.events import Action

__all__ = ["Change", "Transition", "change_between"]


class Change(NamedTuple):
    """A change to an instance, as listeners see it."""

    collection: str
    instance_id: str
    action: Action
    document: dict[str, Any] | None


def change_between(
    collection: str, instance_id: str, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> Change:
    """The change that turns ``before`` into ``after`` (None: no document)."""
    if after is None:
        return Change(collection, instance_id, Action.DELETE, None)
    action = Action.CREATE if before is None else Action.SAVE
    return Change(collection, instance_id, action, after)


@dataclass(frozen=True, slots=True)
class Transition:
    """An instance's document before and after an event (None: no document).

    Examples
    --------
    >>> Transition("Notes", "n", None, {"_id": "n"}).change().action
    <Action.CREATE: 'create'>
    """

    collection: str
    instance_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    def change(self) -> Change:
        """The change listeners see."""
        return change_between(self.collection, self.instance_id, self.before, self.after)
