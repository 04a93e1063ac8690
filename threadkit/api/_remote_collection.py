"""A collection on a daemon: :class:`RemoteCollection`, with ``tk.Collection``'s methods.

Its frames are built by :mod:`threadkit.frames` from the documents ``Find`` returns and
the schema fetched beside them (see :mod:`threadkit.api.client` on schema caching).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from threadkit import errors
from threadkit.api._remote_txn import RemoteReadTxn, RemoteWriteTxn
from threadkit.api._requests import doc_list, dump_doc, id_list, info_dict, needs_log, query_json
from threadkit.api.proto import lifecycle_pb2 as lpb
from threadkit.api.proto import threads_pb2 as pb
from threadkit.db.collection import update_fields
from threadkit.db.query import Query
from threadkit.db.values import check_id
from threadkit.frames.frame import frame_from_documents
from threadkit.frames.lazy import compile_with_schema
from threadkit.frames.views import FrameViews, TimeViews

if TYPE_CHECKING:
    from threadkit.api._remote_db import RemoteDatabase
    from threadkit.core.identity import Identity, PublicKey
    from threadkit.frames.source import CollectionSource

__all__ = ["RemoteCollection"]


class RemoteCollection(FrameViews, TimeViews):
    """A collection on a daemon, with :class:`threadkit.Collection`'s methods.

    Its views (``df``, ``to_pandas``, ``to_arrow``, ``to_parquet``, ``query``, ``lazy``,
    ``c``, ``[]``, ``create_many``, ``at``, ``diff``) are the embedded collection's
    (:class:`threadkit.frames.views.FrameViews`, ``TimeViews``), given the daemon's
    ``Find`` and ``GetCollectionInfo``; the time-travel ones need the record log, which
    the daemon's API does not serve, and say so.
    """

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

    def purge(self, instance_id: str, identity: Identity | PublicKey | str | None = None) -> None:
        """Erase a deleted document's contents for good, on the daemon and on peers.

        threadkit's ``Lifecycle`` service (a threadkit daemon only): the daemon writes the
        purge as an event it attests for ``identity`` (default the client's token), which
        replicates like a delete (see ``Collection.purge`` and docs/lifecycle.md for what
        a purge cannot promise).

        Parameters
        ----------
        instance_id : str
            A deleted instance (it must have existed).
        identity : Identity, PublicKey or str, optional
            Who the call acts as (:meth:`threadkit.api.client.Client.metadata`).

        Raises
        ------
        InvalidDocument
            ``instance_id`` is not a valid ``_id`` (nothing is sent).
        InstanceNotFound
            The instance never existed on the daemon.
        WriteRejected
            The instance is live (not deleted).
        PermissionDenied
            The caller (or the daemon) may not write documents in the database.
        """
        request = lpb.PurgeRequest(
            dbID=self._raw, collectionName=self.name, instanceID=check_id(instance_id)
        )
        self.db.client.call("Purge", request, identity, api=self.db.client.lifecycle_api)

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

    def _frame_of(self, expr: object, local_vars: Mapping[str, Any] | None, identity: Any) -> Any:
        self.db.client.metadata(identity)  # refused before anything is sent
        return self._frame(expr, local_vars, identity)

    def _compile(self, expr: object) -> Query:
        return compile_with_schema(self.schema(), expr)

    def _frame_schema(self) -> dict[str, Any]:
        return self._cached_schema()

    def _log_source(self, what: str) -> CollectionSource:
        raise needs_log(what)
