"""One pending write of a transaction, as a write transaction queues it for the database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from threadkit.db.config import CollectionConfig
from threadkit.db.events import Action

__all__ = ["WriteOp"]


@dataclass(slots=True)
class WriteOp:
    """One pending write of a transaction.

    ``doc`` is the whole new document (create, save) or None (delete).

    Examples
    --------
    >>> WriteOp(Action.DELETE, "Notes", "n").doc is None
    True
    """

    action: Action
    collection: str
    instance_id: str
    doc: dict[str, Any] | None = None
    reader: str | None = None
    fresh: bool = False
    """True for an id this process just generated: it cannot exist yet, so no lookup."""
    checked: CollectionConfig | None = None
    """The config whose schema ``doc`` was checked against when the write was queued."""
    merge: bool = False
    """A partial save: ``doc`` holds only the fields to set, merged into the instance as it
    stands when the event is built (so a field another write changed meanwhile stays)."""
