"""A database on a daemon: :class:`RemoteDatabase`, and its Listen feed :class:`RemoteFeed`."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import grpc

from threadkit import errors
from threadkit.api._remote_collection import RemoteCollection
from threadkit.api._remote_lifecycle import RemoteLifecycle
from threadkit.api._remote_members import RemoteMembers
from threadkit.api._requests import collection_config, info_dict, needs_log
from threadkit.api.proto import threads_pb2 as pb
from threadkit.api.wire import error_from_status
from threadkit.core.addr import addr_from_bytes
from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.db.database import DBInfo
from threadkit.db.events import Action
from threadkit.db.listen import Event, Lagged, _parse_actions
from threadkit.frames.views import DatabaseViews
from threadkit.graph import GraphViews

if TYPE_CHECKING:
    from threadkit.api.client import Client
    from threadkit.core.identity import Identity, PublicKey
    from threadkit.frames.source import DatabaseSource

__all__ = ["RemoteDatabase", "RemoteFeed"]


class RemoteDatabase(RemoteMembers, RemoteLifecycle, DatabaseViews, GraphViews):
    """A database on a daemon, with :class:`threadkit.Database`'s methods.

    The members methods (:class:`~threadkit.api._remote_members.RemoteMembers`) and the
    life-cycle ones (``migrate``, ``snapshot``, ``snapshots``, ``verify_snapshot``,
    ``compact``: :class:`~threadkit.api._remote_lifecycle.RemoteLifecycle`) call
    threadkit's own services on the daemon.

    Its views (``from_pandas``, ``history``, ``conflicts``, ``heads``, ``dag``,
    ``plot_dag``, ``logs``) are the embedded database's
    (:class:`threadkit.frames.views.DatabaseViews`, :class:`threadkit.graph.GraphViews`);
    those that read the record log say why they cannot: the daemon's API does not
    serve it.
    """

    def __init__(self, client: Client, thread_id: ThreadID) -> None:
        self.client = client
        self.id = thread_id
        self._raw = thread_id.to_bytes()

    @property
    def name(self) -> str:
        """The database's name."""
        return self.info().name

    @property
    def key(self) -> ThreadKey:
        """The thread key."""
        return self.info().key

    def info(self) -> DBInfo:
        """Name, addresses and key, to share with another peer."""

        reply = self.client.call("GetDBInfo", pb.GetDBInfoRequest(dbID=self._raw))
        return DBInfo(
            reply.name, [addr_from_bytes(a) for a in reply.addrs], ThreadKey.from_bytes(reply.key)
        )

    def __repr__(self) -> str:
        return f"RemoteDatabase(id={self.id}, client={self.client.addr!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemoteDatabase) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def new_collection(
        self,
        name: str,
        schema: dict[str, Any] | None = None,
        indexes: Iterable[Any] = (),
        write_validator: str | None = None,
        read_filter: str | None = None,
        identity: Identity | PublicKey | str | None = None,
    ) -> RemoteCollection:
        """Create a collection (see ``Database.new_collection``), acting as ``identity``."""
        config = collection_config(name, schema, indexes, write_validator, read_filter)
        request = pb.NewCollectionRequest(dbID=self._raw, config=config)
        self.client.call("NewCollection", request, identity)
        return RemoteCollection(self, name)

    def update_collection(
        self,
        name: str,
        schema: dict[str, Any] | None = None,
        indexes: Iterable[Any] = (),
        write_validator: str | None = None,
        read_filter: str | None = None,
        identity: Identity | PublicKey | str | None = None,
    ) -> RemoteCollection:
        """Replace a collection's config (see ``Database.update_collection``)."""
        config = collection_config(name, schema, indexes, write_validator, read_filter)
        request = pb.UpdateCollectionRequest(dbID=self._raw, config=config)
        self.client.call("UpdateCollection", request, identity)
        return RemoteCollection(self, name)

    def delete_collection(
        self, name: str, identity: Identity | PublicKey | str | None = None
    ) -> None:
        """Delete a collection and its documents."""
        request = pb.DeleteCollectionRequest(dbID=self._raw, name=name)
        self.client.call("DeleteCollection", request, identity)

    def collection_info(self, name: str) -> dict[str, Any]:
        """A collection's config as a dict (as ``Database.collection_info``)."""
        reply = self.client.call(
            "GetCollectionInfo", pb.GetCollectionInfoRequest(dbID=self._raw, name=name)
        )
        return info_dict(reply)

    def get_collection(self, name: str) -> RemoteCollection:
        """The collection called ``name``; CollectionNotFound when absent."""
        self.collection_info(name)
        return RemoteCollection(self, name)

    def __getitem__(self, name: str) -> RemoteCollection:
        return self.get_collection(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(c.name == name for c in self.list_collections())

    def list_collections(self) -> list[RemoteCollection]:
        """Every collection, by name."""
        reply = self.client.call("ListCollections", pb.ListCollectionsRequest(dbID=self._raw))
        return [RemoteCollection(self, c.name) for c in reply.collections]

    # ------------------------------------------- views of the log: not over the API

    def _log_source(self, what: str) -> DatabaseSource:
        raise needs_log(what)

    def lost_writes(self, collection: str | None = None) -> list[dict[str, Any]]:
        """Not available remotely: raises InvalidInput (needs the record log)."""
        raise needs_log("lost_writes()")

    def listen(
        self,
        collection: str | None = None,
        instance_id: str | None = None,
        actions: Iterable[Action | str] | Action | str | None = None,
        maxsize: int = 10_000,
    ) -> RemoteFeed:
        """A feed of changes (see ``Database.listen``); registered when this returns."""

        wanted = _parse_actions(actions)
        codes = {Action.CREATE: 1, Action.SAVE: 2, Action.DELETE: 3}
        every = wanted == frozenset(codes)
        filters = [
            pb.ListenRequest.Filter(
                collectionName=collection or "",
                instanceID=instance_id or "",
                action=0 if every else codes[action],  # type: ignore[arg-type]
            )
            for action in (sorted(wanted) if not every else [Action.CREATE])
        ]
        if every and collection is None and instance_id is None:
            filters = []
        request = pb.ListenRequest(dbID=self._raw, filters=filters)
        return RemoteFeed(self.client, request, maxsize)


_REPLY_ACTION = {0: Action.CREATE, 1: Action.SAVE, 2: Action.DELETE}


class RemoteFeed:
    """A Listen stream as a feed of :class:`threadkit.Event` (``get``, iteration, ``close``)."""

    def __init__(self, client: Client, request: pb.ListenRequest, maxsize: int) -> None:
        self._queue: queue.Queue[Event | Lagged | grpc.RpcError | None] = queue.Queue(maxsize)
        self.closed = False
        try:
            self._call = client.api.Listen(request, metadata=client.metadata())
            self._call.initial_metadata()  # the daemon sends it once the listener is registered
        except grpc.RpcError as exc:
            raise error_from_status(exc) from None
        self._thread = threading.Thread(target=self._pump, name="tk-listen", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            for reply in self._call:
                document = json.loads(reply.instance) if reply.instance else None
                self._queue.put(
                    Event(
                        reply.collectionName,
                        reply.instanceID,
                        _REPLY_ACTION[reply.action],
                        document,
                    )
                )
        except grpc.RpcError as exc:
            if not self.closed:
                self._queue.put(exc)
        self._queue.put(None)

    def get(self, timeout: float | None = None) -> Event | Lagged:
        """The next event; Timeout after ``timeout`` s, FeedClosed once closed."""
        if self.closed and self._queue.empty():
            raise errors.FeedClosed("this listen feed is closed")
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise errors.Timeout(f"no event within {timeout} s") from None
        if item is None:
            self.closed = True
            raise errors.FeedClosed("this listen feed is closed")
        if isinstance(item, grpc.RpcError):
            self.closed = True
            raise error_from_status(item)
        return item

    def __iter__(self) -> Iterator[Event | Lagged]:
        while True:
            try:
                yield self.get()
            except errors.FeedClosed:
                return

    def close(self) -> None:
        """Stop listening."""
        self.closed = True
        self._call.cancel()

    def __enter__(self) -> RemoteFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
