"""A collection of JSON documents in a database: writes, reads, queries, transactions.

Every single call (``create``, ``save``, ``delete``) is its own write
transaction: one record. Reads apply the collection's read filter for the
reader (by default the peer's own identity).
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from threadkit.core.clock import order_key
from threadkit.db.access import CollectionAccess, update_fields
from threadkit.db.config import CollectionConfig
from threadkit.db.events import Action, RecordEvent
from threadkit.db.judging import threaddb_event
from threadkit.db.patch import create_patch
from threadkit.db.schema import schema_paths
from threadkit.db.txn import ReadTxn, WriteTxn, normalise_docs

if TYPE_CHECKING:
    from threadkit.core.identity import PublicKey
    from threadkit.db.database import Database
    from threadkit.db.query import Query

__all__ = ["Collection", "update_fields"]


class Collection:
    """A collection; get one with ``db.new_collection(...)``, ``db[name]`` or ``db.get_collection``.

    Examples
    --------
    >>> ids = people.create({"name": "Alice", "age": 30})  # doctest: +SKIP
    >>> people.find(tk.where("age").gt(20))  # doctest: +SKIP
    [{'_id': '01j…', 'name': 'Alice', 'age': 30, '_mod': …}]
    """

    def __init__(self, db: Database, name: str) -> None:
        self.db = db
        self.name = name
        self._access = CollectionAccess(db, name)

    @property
    def config(self) -> CollectionConfig:
        """The collection's current config."""
        return self.db.engine.config(self.name)

    def db_reader(self) -> str:
        """The default reader/writer identity string (the peer's)."""
        return str(self.db.identity.public)

    def __repr__(self) -> str:
        return f"Collection({self.name!r}, db={self.db.name!r})"

    def _repr_html_(self) -> str:
        """Name, count, indexes, schema fields and the first rows (for notebooks)."""
        config = self.config
        fields = ", ".join(sorted(config.schema.get("properties", {}))) or "(schema-less)"
        indexes = ", ".join(f"{i.path}{' (unique)' if i.unique else ''}" for i in config.indexes)
        head = f"<b>Collection {html.escape(self.name)}</b> — {self.count()} documents"
        th = "<tr><th style='text-align:left'>"
        rows = [
            f"{th}indexes</th><td>{html.escape(indexes or '_id')}</td></tr>",
            f"{th}fields</th><td>{html.escape(fields)}</td></tr>",
        ]
        if config.write_validator:
            rows.append("<tr><th style='text-align:left'>write validator</th><td>yes</td></tr>")
        if config.read_filter:
            rows.append("<tr><th style='text-align:left'>read filter</th><td>yes</td></tr>")
        try:
            preview = str(self.to_pandas().head(5).to_html(border=0))
        except Exception:  # a preview must never break the repr
            preview = ""
        return f"<div>{head}<table>{''.join(rows)}</table>{preview}</div>"

    # ---------------------------------------------------------------- writes

    def write_txn(self, identity: PublicKey | None = None) -> WriteTxn:
        """A write transaction (commit on exit, discard on exception)."""
        return WriteTxn(self, identity)

    def read_txn(self, identity: PublicKey | str | None = None) -> ReadTxn:
        """A read transaction over one consistent snapshot."""
        return ReadTxn(self, self._reader(identity))

    def create(self, *docs: Any, identity: PublicKey | None = None) -> list[str]:
        """Create documents in one transaction; returns their ``_id`` s.

        A document without ``_id`` (or with an empty one) gets a lower-case ULID.
        Creating an ``_id`` that exists fails with InstanceExists.
        """
        with self.write_txn(identity) as txn:
            return txn.create(*docs)

    def save(self, *docs: Any, identity: PublicKey | None = None) -> None:
        """Save whole documents (upsert), each with its ``_id``, in one transaction."""
        with self.write_txn(identity) as txn:
            txn.save(*docs)

    def update(
        self,
        instance_id: str,
        changes: Mapping[str, Any] | None = None,
        /,
        *,
        identity: PublicKey | None = None,
        **fields: Any,
    ) -> None:
        """Change some fields of one document: a partial :meth:`save`.

        ``coll.update(id, weight=16.0)`` is ``save`` of the stored document with
        those fields replaced (or added): one transaction, one record, the same
        schema and validator checks, the same listen event (a save). Fields not
        named stay as they are, including any a read filter hides from the writer.
        Values replace whole: ``update(id, meta={"reads": 3})`` replaces ``meta``.

        Parameters
        ----------
        instance_id : str
            The document's ``_id``; it must exist.
        changes : Mapping, optional
            Fields to set, for names that are not Python identifiers (or ``identity``).
        identity : PublicKey, optional
            The writer (validators see it; the read filter decides visibility for it).
        **fields
            Fields to set (they win over ``changes``).

        Raises
        ------
        InstanceNotFound
            No such document (or the read filter hides it from the writer).
        InvalidDocument
            A bad id, changes that are not a mapping, or an attempt to set ``_id`` or ``_mod``.
        SchemaViolation, ScriptRejected, UniqueViolation
            As :meth:`save`; nothing is written.

        Examples
        --------
        >>> people.update(ids[0], age=31, city="Oslo")  # doctest: +SKIP
        """
        merged = update_fields(instance_id, changes, fields)
        with self.write_txn(identity) as txn:
            txn.update(instance_id, merged)

    def delete(self, *instance_ids: str, identity: PublicKey | None = None) -> None:
        """Delete documents by id in one transaction; a missing id is not an error."""
        with self.write_txn(identity) as txn:
            txn.delete(*instance_ids)

    def verify(self, *docs: Any, identity: PublicKey | None = None) -> None:
        """Run the schema and write validator on documents as saves, without writing."""
        config = self.config
        writer = str(identity) if identity is not None else self.db_reader()
        for doc in normalise_docs(docs):
            prepared = self._access.prepare(doc, generate_id=True)
            config.schema_validator.validate(prepared)
            if config.validator is not None:
                before = self._get_committed(prepared["_id"])
                stamp = self.db.hlc.last
                action = Action.SAVE if before is not None else Action.CREATE
                data = create_patch(before, prepared) if before is not None else prepared
                event = RecordEvent(stamp, action, self.name, prepared["_id"], data)
                key = order_key(stamp, b"")
                config.validator(
                    writer, threaddb_event(event, self.name, prepared["_id"], key), before
                )

    # ----------------------------------------------------------------- reads

    def find(
        self, query: Query | None = None, identity: PublicKey | str | None = None
    ) -> list[dict[str, Any]]:
        """Documents matching ``query`` (every document when None), read filter applied."""
        with self.read_txn(identity) as txn:
            return txn.find(query)

    def find_by_id(
        self, instance_id: str, identity: PublicKey | str | None = None
    ) -> dict[str, Any]:
        """One document; InstanceNotFound when absent or hidden by the read filter."""
        with self.read_txn(identity) as txn:
            return txn.find_by_id(instance_id)

    def has(self, *instance_ids: str, identity: PublicKey | str | None = None) -> bool:
        """True when every given id exists (and the read filter shows it)."""
        with self.read_txn(identity) as txn:
            return txn.has(*instance_ids)

    def count(self, query: Query | None = None) -> int:
        """Number of documents (matching ``query``, when given), read filter applied."""
        if query is None and self.config.filter is None:
            with self.db._repo.transaction() as txn:
                return self.db.engine.count_docs(txn, self.name)
        return len(self.find(query))

    def __len__(self) -> int:
        return self.count()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """``for doc in coll``: every document (as ``find()`` gives them, read filter applied).

        The documents are read in one snapshot before the first is returned, so
        writing to the collection inside the loop is safe. For rows as pandas
        gives them, iterate ``coll.df`` (``coll.df.itertuples()``).
        """
        return iter(self.find())

    def __contains__(self, instance_id: object) -> bool:
        """``"some-id" in coll``: True when a document has that ``_id`` (and is visible)."""
        return isinstance(instance_id, str) and bool(instance_id) and self.has(instance_id)

    # --------------------------------------------------------------- frames

    @property
    def df(self) -> Any:
        """The whole collection as a pandas DataFrame (``_id`` is the index; cached)."""
        from threadkit.frames.frame import to_pandas

        return to_pandas(self)

    def to_pandas(self, query: Query | None = None, identity: PublicKey | str | None = None) -> Any:
        """Documents (matching ``query``) as a DataFrame, dtypes from the schema."""
        from threadkit.frames.frame import to_pandas

        return to_pandas(self, query, identity)

    def to_arrow(self, query: Query | None = None, identity: PublicKey | str | None = None) -> Any:
        """Documents (matching ``query``) as a ``pyarrow.Table``."""
        from threadkit.frames.frame import to_arrow

        return to_arrow(self, query, identity)

    def to_parquet(
        self, path: Any, query: Query | None = None, identity: PublicKey | str | None = None
    ) -> None:
        """Write documents (matching ``query``) to a Parquet file."""
        from threadkit.frames.frame import to_parquet

        to_parquet(self, path, query, identity)

    def create_many(self, df: Any, chunk_size: int = 1000, progress: Any = None) -> list[str]:
        """Insert a DataFrame's rows, one transaction per chunk; returns their ids."""
        from threadkit.frames.ingest import create_many

        return create_many(self, df, chunk_size=chunk_size, progress=progress)

    def query(
        self,
        expr: Any,
        local_vars: dict[str, Any] | None = None,
        identity: PublicKey | str | None = None,
    ) -> Any:
        """Documents matching a pandas ``query`` string (or column expression) as a DataFrame.

        ``@name`` refers to the caller's variables, as in pandas. The expression is
        compiled to a ``tk.Query`` (so indexes are used); anything that cannot compile is
        an InvalidQuery naming the part.

        Examples
        --------
        >>> people.query("age > 30 and city in ['Oslo', 'Lima']")  # doctest: +SKIP
        """
        from threadkit.frames.lazy import caller_vars, query_frame

        return query_frame(self, expr, caller_vars(expr, local_vars), identity)

    def lazy(self, expr: Any = None) -> Any:
        """A lazy result with ``sort_values``/``head`` that compile to the query's sort/limit."""
        from threadkit.frames.lazy import lazy_query

        return lazy_query(self, expr)

    @property
    def c(self) -> Any:
        """Column expressions: ``coll[coll.c.age > 30]``, ``coll.c.city.isin([...])``."""
        from threadkit.frames.columns import ColumnNamespace

        return ColumnNamespace(schema_paths(self.config.schema))

    def __getitem__(self, expr: Any) -> Any:
        """``coll[coll.c.age > 30]``: the matching documents as a DataFrame."""
        from threadkit.frames.lazy import query_frame

        return query_frame(self, expr)

    # ------------------------------------------------------------ time travel

    def at(self, when: Any, identity: PublicKey | str | None = None) -> Any:
        """The collection as it was at a point in its history, as a DataFrame.

        ``when`` is a time (``datetime``, ``pandas.Timestamp``, ISO string, or seconds
        since the epoch as an int or float, as ``time.time()`` gives), a record CID, or
        a set of heads ``{log id: counter or CID}`` (``db.heads()``); anything else is
        an ``InvalidInput`` saying what it takes (:mod:`threadkit.frames.timetravel`).
        """
        from threadkit.frames.timetravel import collection_at

        return collection_at(self, when, identity=identity)

    def diff(self, a: Any, b: Any = None, identity: PublicKey | str | None = None) -> Any:
        """Instances added, removed or changed between two points (``b`` None: now)."""
        from threadkit.frames.timetravel import diff

        return diff(self, a, b, identity=identity)

    # ------------------------------------------------------------- internals

    def _reader(self, identity: PublicKey | str | None) -> str:
        return str(identity) if identity is not None else self.db_reader()

    def _visible(self, doc: dict[str, Any] | None, reader: str | None) -> dict[str, Any] | None:
        """``doc`` as the read filter shows it to ``reader`` (None: hidden or absent)."""
        return self._access.visible(doc, reader)

    def _get_committed(self, instance_id: str) -> dict[str, Any] | None:
        """The committed document (no read filter), or None."""
        return self._access.get_committed(instance_id)
