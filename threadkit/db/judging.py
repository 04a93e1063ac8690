"""Judging an event: the schema, the write validator and unique claims, and what a refusal does.

The same rules judge local writes and received records; they differ only in what
a refused event does (:class:`RefusalPolicy`): a local write raises and its
transaction is abandoned (:data:`LOCAL`), a received event is recorded as lost
and skipped, the same way on every peer (:data:`RECEIVED`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from threadkit.db.change import Transition
from threadkit.db.config import CollectionConfig
from threadkit.db.docpath import get_path, indexable, same_value
from threadkit.db.events import Action, RecordEvent
from threadkit.db.reducer import StoredEvent
from threadkit.errors import CollectionNotFound, ScriptError, ThreadkitError, WriteRejected
from threadkit.store.txntypes import StoreWriteTxn

if TYPE_CHECKING:
    from threadkit.db.engine import Engine

__all__ = ["LOCAL", "RECEIVED", "REFUSALS", "Judge", "RefusalPolicy", "threaddb_event"]

REFUSALS = (WriteRejected, ScriptError, CollectionNotFound)
"""What a refused event raises, besides a lost unique value (``UniqueViolation``)."""


def threaddb_event(
    event: RecordEvent | StoredEvent, collection: str, instance_id: str, key: bytes
) -> dict[str, Any]:
    """The event as ThreadDB's validators see it."""
    action = event.action
    kind = {Action.CREATE: "create", Action.SAVE: "save", Action.DELETE: "delete"}.get(
        action, "purge"
    )
    stamp = int.from_bytes(key[:8], "big")
    return {
        "timestamp": stamp,
        "_id": key.hex(),
        "collection_name": collection,
        "patch": {"type": kind, "instance_id": instance_id, "json_patch": event.data},
    }


class RefusalPolicy(Protocol):
    """What happens to an event the rules refuse, or that the fast path cannot place."""

    def refused(self, exc: ThreadkitError) -> None:
        """An event was refused with ``exc``; returning means it is recorded (or re-folded)."""

    def raced(self) -> None:
        """An event does not follow its instance's latest event; returning means re-fold."""

    def check_before_refold(self, check: Callable[[], None]) -> None:
        """Run ``check`` (which raises a refusal) before an instance is re-folded, or not."""


class _Raise:
    """Local writes: a refusal raises, so the caller abandons the transaction."""

    def refused(self, exc: ThreadkitError) -> None:
        raise exc

    def raced(self) -> None:
        raise WriteRejected("a local write raced a concurrent change; retry it")

    def check_before_refold(self, check: Callable[[], None]) -> None:
        check()

    def __repr__(self) -> str:
        return "LOCAL"


class _Record:
    """Received events: a refusal is recorded and the event skipped."""

    def refused(self, exc: ThreadkitError) -> None:
        return None

    def raced(self) -> None:
        return None

    def check_before_refold(self, check: Callable[[], None]) -> None:
        return None

    def __repr__(self) -> str:
        return "RECEIVED"


LOCAL: RefusalPolicy = _Raise()
"""The policy of local writes: every refusal raises."""

RECEIVED: RefusalPolicy = _Record()
"""The policy of received events: every refusal is recorded, nothing raises."""


class Judge:
    """The rules events of one database are judged by.

    Parameters
    ----------
    engine : Engine
        The database's engine (its configs, script calls and unique claims).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def judge(
        self,
        txn: StoreWriteTxn,
        event: StoredEvent,
        change: Transition,
        config: CollectionConfig | None,
        steals: list[tuple[str, str]] | None = None,
        *,
        unique: bool = True,
        checked: bool = False,
    ) -> None:
        """Raise the reason an event is refused where it stands; note unique values it takes.

        ``config`` is the collection's config at the event's key; ``steals`` receives the
        instances that claimed a unique value after this event did. ``checked`` skips the
        schema for a document the caller already validated.

        With ``unique=False`` (re-folds) unique indexes are left to the re-fold's
        resolution (:meth:`.Refolds.resolve_unique`), which judges them on the instance's
        final state: whether a value was taken while an instance held it in between would
        depend on which records arrived first.
        """
        collection, before, after = change.collection, change.before, change.after
        if config is None:
            raise CollectionNotFound(f"collection {collection!r} does not exist at this point")
        if after is not None and not checked:
            # _mod is the store's, not the user's: schemas (additionalProperties: false) omit it
            config.schema_validator.validate(
                {k: v for k, v in after.items() if k != "_mod"} if "_mod" in after else after
            )
        validator = config.validator
        if validator is not None:
            view = threaddb_event(event, collection, change.instance_id, event.key)
            scripts = self.engine.scripts
            if scripts is None:
                validator(event.author, view, before)
            else:
                scripts.validate(validator, event.author, view, before)
        if after is None or not unique:
            return
        # unique indexes hold for the current state, so the current config's decide: an
        # index added later in the order still separates values written before it
        history = self.engine.history(txn, collection)
        current = history.current if history else None
        for path in current.unique_paths if current else ():
            value = get_path(after, path)
            if indexable(value) and not same_value(get_path(before, path), value):
                self.engine.claims.claim(
                    txn,
                    collection,
                    change.instance_id,
                    path,
                    value,
                    event.key,
                    [] if steals is None else steals,
                )

    def without_unique(
        self, txn: StoreWriteTxn, collection: str, instance_id: str
    ) -> Callable[[StoredEvent, dict[str, Any] | None, dict[str, Any] | None], str | None]:
        """The judge a fold takes: the reason an event is refused, unique values aside."""
        history = self.engine.history(txn, collection)

        def judge(
            event: StoredEvent, before: dict[str, Any] | None, after: dict[str, Any] | None
        ) -> str | None:
            config = history.at(event.key)[0] if history else None
            try:
                change = Transition(collection, instance_id, before, after)
                self.judge(txn, event, change, config, unique=False)
            except REFUSALS as exc:
                return str(exc)
            return None

        return judge
