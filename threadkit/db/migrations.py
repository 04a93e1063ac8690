"""Schema migrations: a collection's new config and a transform of its documents, as an event.

``db.migrate(collection, schema=..., transform=...)`` commits one *migrate* event
(:class:`~threadkit.db.events.Action` ``MIGRATE_COLLECTION``) carrying the collection's new
config and the transform (:mod:`.transforms`). Like every config event it has its place in
the total order (docs/semantics.md), and there every peer rewrites the documents:

- the fold of an instance (:func:`threadkit.db.reducer.fold`) applies each migration to the
  document as it stands at the migration's key, so an instance written before it (even one
  whose records arrive after the migration did) is transformed the same way everywhere;
- events after the migration are judged under the new config (schema, validator, indexes);
- an event after the migration whose writer had **not** seen it (``seen``, carried in the
  event, is older: a peer offline or concurrent) is rewritten by the transform before it is
  judged: its create document or its save's merge patch. A save under a JavaScript
  transform cannot be rewritten (the function takes whole documents) and is rejected with
  that reason, recorded as a lost write.

Examples
--------
>>> import threadkit as tk
>>> with tk.Peer(memory=True) as peer:
...     db = peer.new_db("shop")
...     items = db.new_collection("Items")
...     _ = items.create({"_id": "a", "name": "pen", "price": "3"})
...     _ = db.migrate("Items", transform=[{"rename": "name", "to": "title"},
...                                        {"retype": "price", "to": "integer"}])
...     doc = items.find_by_id("a")
>>> {k: doc[k] for k in ("title", "price")}
{'title': 'pen', 'price': 3}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from threadkit.db.colls import CollHistory
from threadkit.db.config import CollectionConfig, Index
from threadkit.db.docpath import get_path, indexable
from threadkit.db.events import Action, RecordEvent
from threadkit.db.indexkeys import encode_value
from threadkit.db.reducer import StoredEvent
from threadkit.db.transforms import Transform, parse_transform
from threadkit.db.values import value_problem
from threadkit.errors import InvalidInput, InvalidMigration, ScriptError

if TYPE_CHECKING:
    from threadkit.db.database import Database
    from threadkit.db.engine import Engine
    from threadkit.db.gate import WriteAs
    from threadkit.store.txntypes import StoreTxn

__all__ = ["FoldMigration", "fast_path_fits", "fold_migrations", "migrate"]


@dataclass(frozen=True)
class FoldMigration:
    """One migration as the fold applies it (:class:`threadkit.db.reducer.Migration`).

    Attributes
    ----------
    key, epoch : bytes
        The migration's order key and the key that started its collection's epoch.
    transform : Transform
        What it does to a document.
    engine : Engine or None
        Runs a JavaScript transform through the database's script calls (None: in place).
    """

    key: bytes
    epoch: bytes
    transform: Transform
    engine: Engine | None = None

    def doc(self, doc: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The document rewritten; on failure ``doc`` and the reason."""
        if self.transform.js is None:
            return self.transform.apply_doc(doc), None
        try:
            after = self._run_js(doc)
        except (ScriptError, InvalidInput) as exc:
            return doc, f"migration failed on this instance: {exc}"
        if doc.get("_mod") is not None:
            after["_mod"] = doc["_mod"]
        else:
            after.pop("_mod", None)
        problem = value_problem(after)
        if problem is not None:
            return doc, f"migration returned a document that holds {problem}"
        return after, None

    def event(self, event: StoredEvent) -> tuple[StoredEvent, str | None]:
        """An event written before the migration was seen, rewritten; or why it cannot be."""
        data = event.data or {}
        if event.action is Action.SAVE:
            if self.transform.js is not None:
                return event, (
                    "a save written against the schema before a JavaScript migration "
                    f"({self.key.hex()[:24]}…) cannot be rewritten by it"
                )
            data = self.transform.apply_patch(data)
        elif event.action is Action.CREATE:
            after, reason = self.doc(data)
            if reason is not None:
                return event, reason
            data = after
        return dataclasses.replace(event, data=data, seen=self.key), None

    def _run_js(self, doc: dict[str, Any]) -> dict[str, Any]:
        script = self.transform.script
        assert script is not None
        scripts = self.engine.scripts if self.engine is not None else None
        after = script(None, doc) if scripts is None else scripts.filter(script, None, doc)
        if after is None:
            raise ScriptError("migration returned null or undefined, not a document")
        if "_id" in doc:
            after["_id"] = doc["_id"]
        else:
            after.pop("_id", None)
        return after


def fold_migrations(engine: Engine | None, history: CollHistory | None) -> list[FoldMigration]:
    """The migrations of a collection, in order, as the fold takes them."""
    if history is None or not history.transforms:
        return []
    return [FoldMigration(k, e, t, engine) for k, e, t in history.migrations()]


def fast_path_fits(history: CollHistory, event: RecordEvent, key: bytes) -> bool:
    """False when an event cannot go on top of the stored document: a migration sorts after
    it (the stored document is already transformed), or one before it in its epoch was not
    seen by its writer (its data must be rewritten)."""
    epoch = history.at(key)[1]
    for mkey in history.transforms:
        if mkey > key:
            return False
        if epoch is not None and mkey >= epoch and (event.seen is None or mkey > event.seen):
            return False
    return True


def migrate(
    db: Database,
    collection: str,
    transform: object,
    schema: dict[str, Any] | None = None,
    indexes: Iterable[Index | str | dict[str, Any]] | None = None,
    identity: WriteAs = None,
) -> None:
    """Migrate a collection: commit its new config and ``transform`` as one event.

    Parameters
    ----------
    db : Database
        The database.
    collection : str
        The collection to migrate.
    transform : list of dict or str
        Declarative steps or a JavaScript body of ``_migrate(doc)`` (:mod:`.transforms`).
    schema : dict, optional
        The new JSON Schema (default: the current one).
    indexes : iterable, optional
        The new indexes (default: the current ones, with paths renamed by the transform's
        ``rename`` steps and those on dropped paths removed).
    identity : Identity or Attested, optional
        The writer (as for ``update_collection``); a members' database needs admin.

    Raises
    ------
    InvalidMigration
        A malformed transform, or an existing document that after it would not satisfy the
        new schema or would share a unique value, before anything is written.
    CollectionNotFound, InvalidSchema, InvalidIndex
        As for ``update_collection``.
    PermissionDenied
        The writer may not change collections (docs/access.md).
    """
    parsed = parse_transform(transform)
    current = db.engine.config(collection)
    config = CollectionConfig.build(
        collection,
        current.schema if schema is None else schema,
        _moved_indexes(current, parsed) if indexes is None else indexes,
        current.write_validator,
        current.read_filter,
    )
    node = {"config": config.to_node(), "transform": parsed.to_node()}

    def check(txn: StoreTxn) -> None:
        _check_documents(
            db.engine, txn, collection, config, FoldMigration(b"", b"", parsed, db.engine)
        )

    db._commit_collection_event(
        Action.MIGRATE_COLLECTION, config, check=check, node=node, who=identity
    )


def _moved_indexes(current: CollectionConfig, transform: Transform) -> list[Index]:
    moves = transform.renames()
    out = []
    for index in current.indexes:
        path: str | None = index.path
        for source, target in moves.items():
            if path is None:
                break
            if path == source or path.startswith(source + "."):
                path = None if target is None else target + path[len(source) :]
        if path is not None:
            out.append(Index(path, index.unique))
    return out


def _check_documents(
    engine: Engine,
    txn: StoreTxn,
    collection: str,
    config: CollectionConfig,
    migration: FoldMigration,
) -> None:
    """Raise InvalidMigration when an existing document would not carry over."""
    taken: dict[tuple[str, bytes], str] = {}
    for doc in engine.scan_docs(txn, collection):
        after, reason = migration.doc(doc)
        if reason is not None:
            raise InvalidMigration(f"instance {doc['_id']!r}: {reason}")
        try:
            config.schema_validator.validate({k: v for k, v in after.items() if k != "_mod"})
        except InvalidInput as exc:
            raise InvalidMigration(
                f"instance {doc['_id']!r} would not satisfy the new schema after the "
                f"transform: {exc}"
            ) from None
        for path in config.unique_paths:
            value = get_path(after, path)
            if indexable(value):
                holder = taken.setdefault((path, encode_value(value)), doc["_id"])
                if holder != doc["_id"]:
                    raise InvalidMigration(
                        f"after the transform, instances {holder!r} and {doc['_id']!r} "
                        f"would share {value!r} in unique index {path!r}"
                    )
