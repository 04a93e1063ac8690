"""Re-folding instances from their events, and settling contested unique values.

When an event cannot be applied on top of the stored document (late, concurrent,
or touching a unique value another instance holds), the instances involved are
folded again from all their events (:mod:`.reducer`); a collection whose unique
values are contested is settled whole, from its events alone, so every peer ends
with the same holders whatever order records arrived in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from threadkit.db import dockeys
from threadkit.db.change import Change, Transition
from threadkit.db.claims import unique_violation
from threadkit.db.docpath import get_path, indexable
from threadkit.db.events import Action
from threadkit.db.indexkeys import encode_value
from threadkit.db.migrations import fold_migrations
from threadkit.db.purge import erase_purged
from threadkit.db.reducer import FoldResult, Rejection, StoredEvent, fold
from threadkit.errors import StoreError
from threadkit.store.txntypes import StoreWriteTxn

if TYPE_CHECKING:
    from threadkit.db.engine import Engine

__all__ = ["MAX_REFOLD_ROUNDS", "Refolds"]

MAX_REFOLD_ROUNDS = 10_000

_Folded = tuple[FoldResult, dict[str, Any] | None, dict[bytes, str]]
"""A fold's result, the document it leaves (None outside the current epoch), the banned."""


class Refolds:
    """Re-folds of one database's instances.

    Parameters
    ----------
    engine : Engine
        The database's engine (its configs, events, judge, indexes and claims).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def refold_all(
        self, txn: StoreWriteTxn, pending: list[tuple[str, str]], changes: list[Change]
    ) -> None:
        """Re-fold instances; collections where unique values are contested are resolved whole."""
        queue = list(dict.fromkeys(pending))
        contested: dict[str, None] = {}
        rounds = 0
        while queue:
            rounds += 1
            if rounds > MAX_REFOLD_ROUNDS:
                raise StoreError(f"re-folding did not settle after {rounds} rounds (a bug)")
            collection, instance_id = queue.pop(0)
            if collection in contested:
                continue
            woken = self.refold(txn, collection, instance_id, changes)
            if woken is None:
                contested[collection] = None
                continue
            for item in woken:
                if item not in queue and item != (collection, instance_id):
                    queue.append(item)
        for collection in contested:
            self.resolve_unique(txn, collection, changes)

    def refold(
        self, txn: StoreWriteTxn, collection: str, instance_id: str, changes: list[Change]
    ) -> list[tuple[str, str]] | None:
        """Re-fold one instance; None when its unique values are contested (resolve globally)."""
        engine = self.engine
        coll = engine.coll_key(collection)
        history = engine.history(txn, collection)
        config = history.current if history else None
        events = erase_purged(engine, txn, collection, instance_id)
        result, doc, _ = self._fold_instance(txn, collection, instance_id, events, {})
        if config is not None and config.unique_paths:
            claims = engine.claims
            if claims.has_loser_entries(txn, coll, instance_id):
                return None
            for path in config.unique_paths:
                value = get_path(doc, path)
                if indexable(value) and claims.held_elsewhere(txn, coll, path, value, instance_id):
                    return None
        engine.claims.clear_losses(txn, coll, instance_id)
        return self._store_fold(txn, collection, instance_id, (result, doc, {}), changes)

    def resolve_unique(self, txn: StoreWriteTxn, collection: str, changes: list[Change]) -> None:
        """Settle a collection's unique values from its events alone (order-independent).

        Every instance is folded; claims (the key since which an instance has held a value)
        are taken in key order, and the first value already taken makes the later claimant
        lose it: all its events that set that value are rejected and it is folded again.
        Bans only grow, so this ends; it depends on nothing but the events.
        """
        engine = self.engine
        coll = engine.coll_key(collection)
        history = engine.history(txn, collection)
        config = history.current if history else None
        unique = config.unique_paths if config else ()
        ids = [instance_id for instance_id, _ in engine.instance_heads(txn, collection)]
        events = {i: erase_purged(engine, txn, collection, i) for i in ids}
        bans: dict[str, dict[tuple[str, bytes], str]] = {i: {} for i in ids}
        states = {i: self._fold_instance(txn, collection, i, events[i], {}) for i in ids}
        for _ in range(MAX_REFOLD_ROUNDS):
            claims: list[tuple[bytes, str, str, Any]] = []
            for i, (result, doc, _) in states.items():
                for path in unique:
                    value = get_path(doc, path)
                    if indexable(value):
                        since = result.value_since.get(path, result.last_key or b"")
                        claims.append((since, i, path, value))
            claims.sort(key=lambda c: (c[0], c[1]))
            taken: dict[tuple[str, bytes], str] = {}
            loser = None
            for _since, i, path, value in claims:
                slot = (path, encode_value(value))
                holder = taken.setdefault(slot, i)
                if holder != i:
                    loser = (i, slot, value, holder)
                    break
            if loser is None:
                break
            i, slot, value, holder = loser
            bans[i][slot] = unique_violation(collection, slot[0], value, holder)
            states[i] = self._fold_instance(txn, collection, i, events[i], bans[i])
        else:
            raise StoreError("unique values did not settle (a bug)")
        for i in ids:
            engine.claims.clear_losses(txn, coll, i)
        for i in ids:
            self._store_fold(txn, collection, i, states[i], changes)
            for path, encoded in bans[i]:
                engine.claims.note_loser_encoded(txn, coll, path, encoded, i)

    def _fold_instance(
        self,
        txn: StoreWriteTxn,
        collection: str,
        instance_id: str,
        events: list[StoredEvent],
        banned: dict[tuple[str, bytes], str],
    ) -> _Folded:
        """Fold an instance without the events that set any banned unique value."""
        history = self.engine.history(txn, collection)
        rejected: dict[bytes, str] = {}
        if banned:
            for event in events:
                for (path, encoded), reason in banned.items():
                    if _sets_encoded(event, path, encoded):
                        rejected[event.key] = reason
        kept = [e for e in events if e.key not in rejected] if rejected else events
        judge = self.engine.judge.without_unique(txn, collection, instance_id)
        result = fold(instance_id, kept, judge, fold_migrations(self.engine, history))
        current_epoch = history.current_epoch if history else None
        doc = result.doc if result.epoch == current_epoch else None
        if events:
            result.last_key = events[-1].key
        return result, doc, rejected

    def _store_fold(
        self,
        txn: StoreWriteTxn,
        collection: str,
        instance_id: str,
        folded: _Folded,
        changes: list[Change],
    ) -> list[tuple[str, str]]:
        """Write a folded instance: document, index entries with claims, lost writes."""
        engine = self.engine
        result, doc, rejected = folded
        coll = engine.coll_key(collection)
        history = engine.history(txn, collection)
        config = history.current if history else None
        before = engine.get_doc(txn, collection, instance_id)
        claims = {
            p: result.value_since.get(p, b"") for p in (config.unique_paths if config else ())
        }
        change = Transition(collection, instance_id, before, doc)
        woken = engine.indexes.write_state(txn, coll, change, config, claims)
        if result.last_key is not None:
            txn.put(dockeys.doc_key(coll, instance_id), result.last_key, db=engine.tables.inst)
        for rejection in [*result.rejections, *(Rejection(k, r) for k, r in rejected.items())]:
            engine.claims.record_rejection(txn, coll, instance_id, rejection)
        for conflict in result.conflicts:
            engine.claims.record_conflict(txn, coll, instance_id, conflict)
        if before != doc:
            changes.append(change.change())
        return woken


def _sets_encoded(event: StoredEvent, path: str, encoded: bytes) -> bool:
    """True when an event writes the value ``encoded`` at ``path`` (create document or patch)."""
    if event.action is Action.DELETE or event.data is None:
        return False
    value = get_path(event.data, path)
    return indexable(value) and encode_value(value) == encoded
