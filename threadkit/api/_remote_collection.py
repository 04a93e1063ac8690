"""A collection on a daemon: :class:`RemoteCollection`, with ``tk.Collection``'s methods.

Its frames are built by :mod:`threadkit.frames` from the documents ``Find`` returns and
the schema fetched beside them (see :mod:`threadkit.api.client` on schema caching).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from threadkit import errors
from threadkit.api._remote_txn import RemoteReadTxn, RemoteWriteTxn
from threadkit.api._requests import doc_list, dump_doc, id_list, info_dict, needs_log, query_json
from threadkit.api.proto import threads_pb2 as pb

if TYPE_CHECKING:
    from threadkit.api._remote_db import RemoteDatabase
    from threadkit.core.identity import Identity, PublicKey
    from threadkit.db.query import Query
    from threadkit.frames.lazy import LazyFrame

__all__ = ["RemoteCollection"]


class RemoteCollection:
    """A collection on a daemon, with :class:`threadkit.Collection`'s methods."""

    def __init__(self, db: RemoteDatabase, name: str) -> None:
        self.db = db
        self.name = name
        self._raw = db.id.to_bytes()

    def __repr__(self) -> str:
        return f"RemoteCollection({self.name!r}, db={self.db.id})"

    def _call(self, method: str, request: Any, identity: Any = None) -> Any:
        return self.db.client.call(method, request, identity)

    def create(self, *docs: Any, identity: Identity | PublicKey | str | None = None) -> list[str]:
        """Create documents in one transaction; returns their ``_id`` s.

        ``identity`` (here and in every method that takes one) is who the call acts as,
        the writer given to the write validator and the reader given to the read filter:
        None for the client's token, a ``tk.Identity`` (the client gets a token for it), or
        the public key the client already acts as (:meth:`threadkit.api.client.Client.metadata`).
        """
        request = pb.CreateRequest(
            dbID=self._raw,
            collectionName=self.name,
            instances=[dump_doc(d) for d in doc_list(docs)],
        )
        return list(self._call("Create", request, identity).instanceIDs)

    def save(self, *docs: Any, identity: Identity | PublicKey | str | None = None) -> None:
        """Save whole documents (upsert), each with its ``_id``, in one transaction."""
        request = pb.SaveRequest(
            dbID=self._raw,
            collectionName=self.name,
            instances=[dump_doc(d) for d in doc_list(docs)],
        )
        self._call("Save", request, identity)

    def update(
        self,
        instance_id: str,
        changes: Mapping[str, Any] | None = None,
        /,
        *,
        identity: Identity | PublicKey | str | None = None,
        **fields: Any,
    ) -> None:
        """Change some fields of one document: a partial save (as ``Collection.update``).

        Done here as ``find_by_id`` and ``save`` inside one write transaction on the
        daemon (the API has no partial update). The daemon hands out documents as the
        read filter shows them, so saving one back could drop fields the filter hides:
        on a collection with a read filter, update is refused before anything is written.

        Raises
        ------
        InstanceNotFound
            No such document.
        InvalidDocument
            As ``Collection.update``.
        InvalidInput
            The collection has a read filter.
        """
        from threadkit.db.collection import update_fields

        merged = update_fields(instance_id, changes, fields)
        if self.db.collection_info(self.name)["read_filter"]:
            raise errors.InvalidInput(
                f"{self.name!r} has a read filter: update through tk.Client could drop the "
                "fields it hides; save the whole document instead"
            )
        with self.write_txn(identity) as txn:
            current = txn.find_by_id(instance_id)
            if merged:
                txn.save({**current, **merged})

    def delete(
        self, *instance_ids: str, identity: Identity | PublicKey | str | None = None
    ) -> None:
        """Delete documents by id in one transaction."""
        request = pb.DeleteRequest(
            dbID=self._raw, collectionName=self.name, instanceIDs=id_list(instance_ids)
        )
        self._call("Delete", request, identity)

    def verify(self, *docs: Any, identity: Identity | PublicKey | str | None = None) -> None:
        """Check documents against the schema and write validator without writing."""
        request = pb.VerifyRequest(
            dbID=self._raw,
            collectionName=self.name,
            instances=[dump_doc(d) for d in doc_list(docs)],
        )
        self._call("Verify", request, identity)

    def has(self, *instance_ids: str, identity: Identity | PublicKey | str | None = None) -> bool:
        """True when every given id exists."""
        request = pb.HasRequest(
            dbID=self._raw, collectionName=self.name, instanceIDs=id_list(instance_ids)
        )
        return bool(self._call("Has", request, identity).exists)

    def find(
        self, query: Query | None = None, identity: Identity | PublicKey | str | None = None
    ) -> list[dict[str, Any]]:
        """Documents matching ``query`` (every document when None)."""
        request = pb.FindRequest(
            dbID=self._raw, collectionName=self.name, queryJSON=query_json(query)
        )
        return [json.loads(raw) for raw in self._call("Find", request, identity).instances]

    def find_by_id(
        self, instance_id: str, identity: Identity | PublicKey | str | None = None
    ) -> dict[str, Any]:
        """One document; InstanceNotFound when absent."""
        request = pb.FindByIDRequest(
            dbID=self._raw, collectionName=self.name, instanceID=instance_id
        )
        doc: dict[str, Any] = json.loads(self._call("FindByID", request, identity).instance)
        return doc

    def count(self, query: Query | None = None) -> int:
        """Number of documents (matching ``query``)."""
        return len(self.find(query))

    def __len__(self) -> int:
        return self.count()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """``for doc in coll``: every document (one ``Find``, read before the first)."""
        return iter(self.find())

    def __contains__(self, instance_id: object) -> bool:
        """``"some-id" in coll``: True when a document has that ``_id``."""
        return isinstance(instance_id, str) and bool(instance_id) and self.has(instance_id)

    def write_txn(self, identity: Identity | PublicKey | str | None = None) -> RemoteWriteTxn:
        """A write transaction (commit on exit, discard on exception), acting as ``identity``."""
        return RemoteWriteTxn(self, identity)

    def read_txn(self, identity: Identity | PublicKey | str | None = None) -> RemoteReadTxn:
        """A read transaction over one snapshot on the daemon, reading as ``identity``."""
        return RemoteReadTxn(self, identity)

    # --------------------------------------------------------------- frames

    def _info_request(self) -> pb.GetCollectionInfoRequest:
        return pb.GetCollectionInfoRequest(dbID=self._raw, name=self.name)

    def _find_request(self, query: Query) -> pb.FindRequest:
        return pb.FindRequest(dbID=self._raw, collectionName=self.name, queryJSON=query_json(query))

    def _remember(self, info: Any) -> dict[str, Any]:
        """The schema of a GetCollectionInfo reply, kept as the last one seen."""
        schema: dict[str, Any] = info_dict(info)["schema"]
        self.db.client.schemas[(self._raw, self.name)] = schema
        return schema

    def schema(self) -> dict[str, Any]:
        """The collection's JSON Schema, fetched now (one ``GetCollectionInfo``)."""
        return self._remember(self._call("GetCollectionInfo", self._info_request()))

    def _cached_schema(self) -> dict[str, Any]:
        """The schema last seen for this collection (fetched when there is none)."""
        schema = self.db.client.schemas.get((self._raw, self.name))
        return schema if schema is not None else self.schema()

    def _frame(
        self, query: object, local_vars: Mapping[str, Any] | None = None, identity: Any = None
    ) -> Any:
        """The documents matching ``query`` (text, an expression, a Query or None) as a frame.

        ``GetCollectionInfo`` and ``Find`` are sent together; the frame is built
        with the schema that came back beside the documents. Text and
        expressions are compiled with the cached schema first and again (with
        ``Find`` repeated) when the fresh one differs or the cached one fails.
        """
        from threadkit.db.query import Query
        from threadkit.frames.frame import frame_from_documents
        from threadkit.frames.lazy import compile_with_schema

        client = self.db.client
        typed = query is not None and not isinstance(query, Query)
        cached: dict[str, Any] | None = None
        if typed:
            cached = self._cached_schema()
            try:
                compiled = compile_with_schema(cached, query, local_vars)
            except errors.InvalidQuery:
                cached = self.schema()  # perhaps the cached schema is stale: try the current one
                compiled = compile_with_schema(cached, query, local_vars)
        else:
            compiled = compile_with_schema({}, query)
        info = client.call_async("GetCollectionInfo", self._info_request())
        found = client.call_async("Find", self._find_request(compiled), identity)
        schema = self._remember(info())
        if typed and schema != cached:
            # the schema changed since the query was compiled: compile it and find again
            compiled = compile_with_schema(schema, query, local_vars)
            found = client.call_async("Find", self._find_request(compiled), identity)
        return frame_from_documents((json.loads(raw) for raw in found().instances), schema)

    def to_pandas(
        self, query: Query | None = None, identity: Identity | PublicKey | str | None = None
    ) -> Any:
        """Documents (matching ``query``) as a DataFrame, dtypes from the schema.

        The same frame an embedded collection gives
        (:func:`threadkit.frames.frame.to_pandas`): indexed by ``_id``, one
        column per field (nested objects as ``parent.child``), dtypes from the
        collection's JSON Schema, ``_mod`` last as ``datetime64[ns, UTC]``.
        Fetched on each call (nothing is cached but the schema, see the module
        docstring).

        Parameters
        ----------
        query : Query, optional
            Only documents matching it, in its order, with its skip/limit.
        identity : Identity, PublicKey or str, optional
            Who reads (:meth:`threadkit.api.client.Client.metadata`): None for the
            client's token, a ``tk.Identity``, or the public key the client acts as.

        Raises
        ------
        InvalidQuery
            For a ``query`` that is not a Query, or a type mismatch in it.
        InvalidInput
            For a public key the client does not act as.
        CollectionNotFound
            When the collection does not exist.

        Examples
        --------
        >>> people.to_pandas(tk.where("age").gt(30))  # doctest: +SKIP
        """
        from threadkit.db.query import Query

        if query is not None and not isinstance(query, Query):
            raise errors.InvalidQuery(f"expected a tk.Query or None, not {type(query).__name__}")
        self.db.client.metadata(identity)  # refused before anything is sent
        return self._frame(query, None, identity)

    @property
    def df(self) -> Any:
        """The whole collection as a DataFrame (fetched on each access)."""
        return self.to_pandas()

    def to_arrow(
        self, query: Query | None = None, identity: Identity | PublicKey | str | None = None
    ) -> Any:
        """Documents (matching ``query``) as a ``pyarrow.Table``, ``_id`` first.

        As :func:`threadkit.frames.frame.to_arrow`: the same table an embedded
        collection gives.
        """
        from threadkit.frames.frame import frame_to_arrow

        return frame_to_arrow(self.to_pandas(query, identity))

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        """The collection as an Arrow C stream (the PyCapsule protocol), as :meth:`to_arrow`.

        DuckDB and Polars read it as they read an embedded collection; the
        documents are fetched on each call, read as the client's token identity.
        """
        from threadkit.frames.frame import arrow_stream

        return arrow_stream(self.to_arrow(), requested_schema)

    def to_parquet(
        self,
        path: str | os.PathLike[str],
        query: Query | None = None,
        identity: Identity | PublicKey | str | None = None,
    ) -> None:
        """Write documents (matching ``query``) to a Parquet file (as :meth:`to_arrow`)."""
        from threadkit.frames.frame import frame_to_parquet

        frame_to_parquet(self.to_pandas(query, identity), path)

    def query(
        self,
        expr: Any,
        local_vars: dict[str, Any] | None = None,
        identity: Identity | PublicKey | str | None = None,
    ) -> Any:
        """Documents matching a pandas ``query`` string (or column expression) as a DataFrame.

        Compiled to a ``tk.Query`` here (:mod:`threadkit.frames.expr`) and run on
        the daemon by ``Find``, so its indexes are used. ``@name`` refers to the
        caller's variables, as in pandas.

        Raises
        ------
        InvalidQuery
            For what cannot compile, naming the part.
        InvalidInput
            For a public key the client does not act as.

        Examples
        --------
        >>> people.query("age > 30 and city in ['Oslo', 'Lima']")  # doctest: +SKIP
        """
        from threadkit.frames.lazy import caller_vars

        self.db.client.metadata(identity)  # refused before anything is sent
        return self._frame(expr, caller_vars(expr, local_vars), identity)

    def lazy(self, expr: Any = None) -> LazyFrame:
        """A lazy result with ``sort_values``/``head`` that compile to the query's sort/limit."""
        from threadkit.frames.lazy import LazyFrame, compile_with_schema

        return LazyFrame(self, compile_with_schema(self.schema(), expr))

    @property
    def c(self) -> Any:
        """Column expressions: ``coll[coll.c.age > 30]``, ``coll.c.city.isin([...])``."""
        from threadkit.db.schema import schema_paths
        from threadkit.frames.columns import ColumnNamespace

        return ColumnNamespace(schema_paths(self._cached_schema()))

    def __getitem__(self, expr: Any) -> Any:
        """``coll[coll.c.age > 30]``: the matching documents as a DataFrame."""
        return self._frame(expr)

    def create_many(self, df: Any, chunk_size: int = 1000, progress: Any = None) -> list[str]:
        """Insert a DataFrame's rows, one ``Create`` (one transaction) per chunk; their ids.

        As :func:`threadkit.frames.ingest.create_many`.
        """
        from threadkit.frames.ingest import create_many

        return create_many(self, df, chunk_size=chunk_size, progress=progress)

    # ------------------------------------------- views of the log: not over the API

    def at(self, when: Any, identity: Identity | PublicKey | str | None = None) -> Any:
        """Not available remotely: raises InvalidInput (time travel needs the record log)."""
        raise needs_log("time travel (at())")

    def diff(
        self, a: Any, b: Any = None, identity: Identity | PublicKey | str | None = None
    ) -> Any:
        """Not available remotely: raises InvalidInput (needs the record log)."""
        raise needs_log("diff()")
