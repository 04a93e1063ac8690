"""The deterministic fold of one instance's events (docs/design.md §7.1, docs/semantics.md).

The state of an instance is the fold of its events in total order (HLC stamp,
then log id). Given the same events, every peer computes the same document,
the same conflicts and the same rejections, whatever order the events arrived in.

Rules, per event in order:

- **create** sets the whole document. On a live instance (only possible when two
  writers created the same ``_id`` concurrently) the later create wins whole.
- **save** merges its patch into the document; on an absent instance it upserts
  (ThreadDB's save is an upsert). A save whose writer had not seen a delete that
  precedes it in the order loses to the delete (delete wins over concurrent saves).
- **delete** removes the instance; deleting an absent instance does nothing.
- Each event is judged (schema, write validator, unique indexes) against the
  instance as it stands at that place in the order; a rejected event is skipped.
- A collection deleted and created again starts its instances afresh: events
  from before the re-creation do not carry over (the ``epoch`` of an event).
- A **migration** of the collection rewrites the document where it stands in the
  order; an event after it whose writer had not seen it is rewritten first
  (:class:`Migration`, :mod:`threadkit.db.migrations`).
- A **purge** deletes the instance, and the events before it, whose data the store
  erased, count for nothing: a version shows as ``{"_id": ..., "_purged": True}``
  only where the purge itself is not among the events (history before the purge).

A write *loses a conflict* when a later event overwrites one of its fields and
that event's writer had not seen it (the loser's key is not covered by the
winner's ``base``). Losers are reported, with the winner, per field path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from threadkit.db.events import Action, Folded
from threadkit.db.patch import apply_patch, leaf_paths, patch_paths

__all__ = [
    "PURGED",
    "Conflict",
    "FoldResult",
    "Judge",
    "Migration",
    "Rejection",
    "StoredEvent",
    "fold",
    "step",
]

PURGED = "_purged"
"""The field that marks a version whose contents a purge erased."""

_UNTRACKED = frozenset({"_id", "_mod"})


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An instance event as the store keeps it.

    Attributes
    ----------
    key : bytes
        Order key (stamp bytes ‖ log id bytes).
    action : Action
        CREATE, SAVE or DELETE.
    data : dict | None
        The document (create) or merge patch (save).
    base : bytes | None
        Key of the latest event of the instance the writer had seen.
    author : str
        The writer's public key string.
    record : bytes
        CID of the record that carried the event.
    epoch : bytes
        Key of the collection (re)creation the event belongs to.
    seen : bytes | None
        Key of the latest migration of the collection its writer had applied.
    purged : bytes | None
        Key of the purge that erased its data (None: not purged).
    folded : Folded | None
        Set on the create compaction left of an instance's events up to a snapshot's
        frontier: its document is the instance's state there, already through the
        migrations up to ``folded.through`` and judged, with its unique claims (None: an
        event as written).
    """

    key: bytes
    action: Action
    data: dict[str, Any] | None
    base: bytes | None
    author: str
    record: bytes
    epoch: bytes
    seen: bytes | None = None
    purged: bytes | None = None
    folded: Folded | None = None


@dataclass(frozen=True, slots=True)
class Conflict:
    """A write that lost: ``loser``'s value at ``path`` was overwritten by ``winner``."""

    path: str
    loser: bytes
    winner: bytes


@dataclass(frozen=True, slots=True)
class Rejection:
    """An event skipped by the fold, with the reason (and the event it lost to, if any)."""

    key: bytes
    reason: str
    lost_to: bytes | None = None


class Migration(Protocol):
    """A migration as the fold applies it (:mod:`threadkit.db.migrations` makes them)."""

    @property
    def key(self) -> bytes:
        """Its order key."""

    @property
    def epoch(self) -> bytes:
        """The key that started its collection's epoch."""

    def doc(self, doc: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The document rewritten; on failure the document unchanged and the reason."""

    def event(self, event: StoredEvent) -> tuple[StoredEvent, str | None]:
        """An event written before the migration was seen, rewritten; or the reason it
        cannot be."""


Judge = Callable[[StoredEvent, "dict[str, Any] | None", "dict[str, Any] | None"], "str | None"]
"""``judge(event, before, after)`` → None to accept, or the reason to reject."""


@dataclass(slots=True)
class FoldResult:
    """The state of an instance after its events.

    Attributes
    ----------
    doc : dict | None
        The document, None when absent or deleted.
    last_key : bytes | None
        Key of the latest event (accepted or not).
    field_keys : dict[str, bytes]
        For each leaf path of ``doc``, the key of the event that wrote it.
    value_since : dict[str, bytes]
        For each leaf path of ``doc``, the key of the earliest event since which it has
        held its current value (rewriting the same value does not move it): the claim a
        unique index judges by.
    conflicts, rejections : list
        What lost, in order.
    """

    doc: dict[str, Any] | None = None
    last_key: bytes | None = None
    field_keys: dict[str, bytes] = field(default_factory=dict)
    value_since: dict[str, bytes] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    deleted_key: bytes | None = None
    epoch: bytes | None = None


def step(instance_id: str, doc: dict[str, Any] | None, event: StoredEvent) -> dict[str, Any] | None:
    """The document after one event, ignoring judgement and conflicts (the fast path)."""
    if event.action is Action.CREATE:
        data = event.data or {}
        # a create's data holds ``_id`` first; compaction's creates hold a stored document,
        # whose ``_id`` is where the save that made it left it
        after = dict(data) if "_id" in data else {"_id": instance_id, **data}
    elif event.action is Action.SAVE:
        after = apply_patch(doc, event.data or {})
    else:
        return None
    after["_id"] = instance_id
    return after


def fold(
    instance_id: str,
    events: list[StoredEvent],
    judge: Judge,
    migrations: Sequence[Migration] = (),
) -> FoldResult:
    """Fold an instance's events, sorted by key, into its state.

    Parameters
    ----------
    instance_id : str
        The instance's ``_id``.
    events : list[StoredEvent]
        All its events, in key order.
    judge : Judge
        Decides whether an event is accepted where it stands.
    migrations : sequence of Migration
        The collection's migrations, in key order.
    """
    state = FoldResult()
    at = 0
    for event in events:
        while at < len(migrations) and migrations[at].key < event.key:
            _migrate(state, migrations[at])
            at += 1
        state.last_key = event.key
        if event.epoch != state.epoch:
            state.doc, state.field_keys, state.deleted_key = None, {}, None
            state.value_since = {}
            state.epoch = event.epoch
        if event.action is Action.PURGE or event.purged is not None:
            _purge(instance_id, state, event)
            continue
        if event.folded is not None:
            # compaction's create: the state at the frontier, which every migration up to
            # it has already rewritten (events after it still are, when not seen)
            _apply(instance_id, state, event, _accept)
            state.value_since.update(event.folded.claims)
            while at < len(migrations) and migrations[at].key <= event.folded.through:
                at += 1
            continue
        rewritten = _unseen(event, migrations[:at])
        if isinstance(rewritten, str):
            state.rejections.append(Rejection(event.key, rewritten))
            continue
        _apply(instance_id, state, rewritten, judge)
    for migration in migrations[at:]:
        _migrate(state, migration)
    return state


def _accept(
    event: StoredEvent, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> str | None:
    """The judge of a folded create: its document was judged where it was written."""
    return None


def _migrate(state: FoldResult, migration: Migration) -> None:
    """Rewrite the document where a migration stands (a purged version stays a marker)."""
    doc = state.doc
    if doc is None or migration.epoch != state.epoch or doc.get(PURGED) is True:
        return
    after, reason = migration.doc(doc)
    if reason is not None:
        state.rejections.append(Rejection(migration.key, reason))
        return
    for path in leaf_paths(doc):
        if path not in _UNTRACKED and not _same_value(_leaf(doc, path), _leaf(after, path)):
            state.field_keys.pop(path, None)
            state.value_since.pop(path, None)
    for path in leaf_paths(after):
        # a migration claims the values it changes (unique indexes), but its writes never
        # count as overwriting anyone's: it is not a concurrent writer
        if path not in _UNTRACKED and not _same_value(_leaf(doc, path), _leaf(after, path)):
            state.value_since[path] = migration.key
    state.doc = after


def _unseen(event: StoredEvent, before: Sequence[Migration]) -> StoredEvent | str:
    """``event`` rewritten by the migrations before it that its writer had not seen (or
    the reason it cannot be)."""
    for migration in before:
        seen = event.seen is not None and migration.key <= event.seen
        if migration.epoch != event.epoch or seen:
            continue
        if event.action is Action.DELETE:
            break
        event, reason = migration.event(event)
        if reason is not None:
            return reason
    return event


def _purge(instance_id: str, state: FoldResult, event: StoredEvent) -> None:
    """A purge deletes the instance; an event whose data it erased leaves only a marker."""
    state.field_keys.clear()
    state.value_since.clear()
    if event.action in (Action.PURGE, Action.DELETE):
        state.doc, state.deleted_key = None, event.key
    else:
        state.doc = {"_id": instance_id, PURGED: True}


def _apply(instance_id: str, state: FoldResult, event: StoredEvent, judge: Judge) -> None:
    before = state.doc
    if event.action is Action.DELETE and before is None:
        return
    if (
        event.action is Action.SAVE
        and before is None
        and state.deleted_key is not None
        and not _seen(event, state.deleted_key)
    ):
        lost = "saved an instance that a concurrent write deleted"
        state.rejections.append(Rejection(event.key, lost, state.deleted_key))
        return
    after = step(instance_id, before, event)
    reason = judge(event, before, after)
    if reason is not None:
        state.rejections.append(Rejection(event.key, reason))
        return
    if event.action is Action.SAVE:
        written = {p for p in patch_paths(event.data or {}) if p not in _UNTRACKED}
    else:
        written = set(state.field_keys)
        if after is not None:
            written.update(p for p in leaf_paths(after) if p not in _UNTRACKED)
    overwritten = _overlapping(state.field_keys, written)
    for path in overwritten:
        loser = state.field_keys.pop(path)
        if not _seen(event, loser):
            state.conflicts.append(Conflict(path, loser, event.key))
    if after is None:
        state.field_keys.clear()
        state.value_since.clear()
        state.deleted_key = event.key
    else:
        for path in written:
            if _has_leaf(after, path):
                state.field_keys[path] = event.key
                if not _same_value(_leaf(before, path), _leaf(after, path)):
                    state.value_since[path] = event.key
            else:
                state.value_since.pop(path, None)
    state.doc = after


def _seen(event: StoredEvent, key: bytes) -> bool:
    """True when ``event``'s writer had seen the event at ``key``."""
    return event.base is not None and key <= event.base


def _overlapping(field_keys: dict[str, bytes], written: set[str]) -> list[str]:
    """Tracked paths equal to, inside, or containing a written path."""
    if not field_keys:
        return []
    hits = []
    for path in field_keys:
        if path in written:
            hits.append(path)
            continue
        for w in written:
            if path.startswith(w + ".") or w.startswith(path + "."):
                hits.append(path)
                break
    return hits


_ABSENT = object()


def _leaf(doc: dict[str, Any] | None, path: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def _same_value(a: Any, b: Any) -> bool:
    return a is b or (a == b and type(a) is type(b))


def _has_leaf(doc: dict[str, Any], path: str) -> bool:
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True
