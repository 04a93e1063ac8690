"""``tk.Client``: a daemon's databases through gRPC, with the embedded peer's interface.

Notebook code switches between an embedded peer and a daemon by changing one line::

    peer = tk.Peer()                      # embedded
    peer = tk.Client("127.0.0.1:6006")    # threadkit daemon (or ThreadDB's threadsd)

Examples
--------
>>> import threadkit as tk
>>> client = tk.Client("127.0.0.1:6006")  # doctest: +SKIP
>>> db = client.new_db("notes")  # doctest: +SKIP
>>> people = db.new_collection("Persons")  # doctest: +SKIP
>>> people.create({"name": "Alice"})  # doctest: +SKIP
['01j…']
>>> people.query("name == 'Alice'")  # doctest: +SKIP

Frames (``to_pandas``, ``df``, ``to_arrow``, ``to_parquet``, ``query``, ``c``,
``coll[expr]``, ``lazy``, ``create_many``, ``db.from_pandas``) are built by
:mod:`threadkit.frames` from the documents ``Find`` returns and the collection's
schema, so a remote collection's frames equal an embedded one's: same columns,
dtypes, index and ``_mod``. What needs the record log (``at``, ``diff``,
``db.history`` and the other history and DAG views) raises InvalidInput: the
daemon's API does not serve the log; join the database from an embedded peer.

Schema caching: a frame is built with the schema fetched in the same call
(``GetCollectionInfo`` is sent together with ``Find``, so it costs no extra
round trip), never with a cached one. Query text and column expressions must be
compiled before ``Find`` (values are checked and date-times converted against
the schema): they are compiled with the schema last seen for the collection
(cached on the :class:`Client`), and when the schema fetched beside ``Find``
differs — or compiling with the cached one fails — they are compiled again with
the fresh one and ``Find`` is repeated. A result therefore never depends on a
stale schema, and a steady schema costs one round trip per query.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Self

import grpc

from threadkit import errors
from threadkit.api.proto import threads_pb2 as pb
from threadkit.api.proto import threads_pb2_grpc as pb_grpc
from threadkit.api.proto import threadsnet_pb2 as netpb
from threadkit.api.proto import threadsnet_pb2_grpc as netpb_grpc
from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.db.events import Action
from threadkit.db.listen import Event, Lagged

if TYPE_CHECKING:
    from threadkit.core.identity import Identity, PublicKey
    from threadkit.db.config import Index
    from threadkit.db.database import DBInfo
    from threadkit.db.query import Query
    from threadkit.frames.lazy import LazyFrame

__all__ = ["Client", "RemoteCollection", "RemoteDatabase", "RemoteFeed"]

DEFAULT_MAX_MESSAGE = 16 * 1024 * 1024

_BY_TEXT: list[tuple[str, type[errors.ThreadkitError]]] = [
    ("db already exists", errors.ThreadExists),
    ("collection already registered", errors.CollectionExists),
    ("db not found", errors.DBNotFound),
    ("collection not found", errors.CollectionNotFound),
    ("instance not found", errors.InstanceNotFound),
    ("unique constraint violation", errors.UniqueViolation),
    ("can't create already existing instance", errors.InstanceExists),
    ("instance doesn't correspond to schema", errors.SchemaViolation),
]
_BY_CODE: dict[grpc.StatusCode, type[errors.ThreadkitError]] = {
    grpc.StatusCode.UNAUTHENTICATED: errors.InvalidToken,
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidInput,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.Timeout,
    grpc.StatusCode.UNAVAILABLE: errors.NetworkError,
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.ALREADY_EXISTS: errors.AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: errors.TransactionError,
}


def error_from_text(message: str, code: grpc.StatusCode | None = None) -> errors.ThreadkitError:
    """The threadkit error for a daemon's error text (go-threads' texts are recognised).

    Examples
    --------
    >>> type(error_from_text("collection not found: 'x'")).__name__
    'CollectionNotFound'
    """
    for text, kind in _BY_TEXT:
        if message.startswith(text):
            return kind(message)
    by_code = _BY_CODE.get(code) if code is not None else None
    return (by_code or errors.ThreadkitError)(message)


def _error(exc: grpc.RpcError) -> errors.ThreadkitError:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else None
    message = details or str(exc)
    trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    for key, value in trailing or ():
        if key == "x-threadkit-error":
            kind = getattr(errors, str(value), None)
            if isinstance(kind, type) and issubclass(kind, errors.ThreadkitError):
                return kind(message)
    return error_from_text(message, code)


def _target(addr: str) -> str:
    """``host:port`` from ``host:port`` or ``/ip4/<host>/tcp/<port>``."""
    if addr.startswith("/"):
        parts = addr.strip("/").split("/")
        if len(parts) >= 4 and parts[2] == "tcp":
            host = f"[{parts[1]}]" if parts[0] == "ip6" else parts[1]
            return f"{host}:{parts[3]}"
        raise errors.InvalidAddress(f"{addr!r} is not an /ip4/<host>/tcp/<port> address")
    return addr.removeprefix("http://")


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _docs(docs: tuple[Any, ...]) -> list[dict[str, Any]]:
    from threadkit.db.txn import normalise_docs

    return normalise_docs(docs)


def _ids(ids: Iterable[Any]) -> list[str]:
    out: list[str] = []
    for item in ids:
        if isinstance(item, list | tuple):
            out.extend(_ids(item))
        else:
            out.append(item)
    return out


def _query_json(query: Query | None) -> bytes:
    from threadkit.db.query import Query

    if query is None:
        return b"{}"
    if not isinstance(query, Query):
        raise errors.InvalidQuery(f"expected a tk.Query or None, not {type(query).__name__}")
    return query.to_json().encode("utf-8")


def _needs_log(what: str) -> errors.InvalidInput:
    """The error for a view that needs the record log, which the daemon's API does not serve."""
    return errors.InvalidInput(
        f"{what} needs the database's record log, which a daemon's API does not serve "
        "(tk.Client sees documents only); join the database from an embedded peer "
        "(tk.Peer().new_db_from_addr(addr, key) with db.info()) and call it there"
    )


def _no_identity(identity: object) -> None:
    """Refuse a reader other than the token's: the daemon reads as the caller's identity."""
    if identity is not None:
        raise errors.InvalidInput(
            "a daemon reads as the identity of the client's token, not a given identity: "
            "call client.get_token(identity) and leave identity=None"
        )


def _config(
    name: str,
    schema: dict[str, Any] | None,
    indexes: Iterable[Any],
    write_validator: str | None,
    read_filter: str | None,
) -> pb.CollectionConfig:
    from threadkit.db.config import Index

    wire = []
    for index in indexes:
        if isinstance(index, str):
            wire.append(pb.Index(path=index))
        elif isinstance(index, Index):
            wire.append(pb.Index(path=index.path, unique=index.unique))
        else:
            wire.append(pb.Index(path=index["path"], unique=bool(index.get("unique", False))))
    return pb.CollectionConfig(
        name=name,
        schema=_dumps(schema) if schema is not None else b"",
        indexes=wire,
        writeValidator=write_validator or "",
        readFilter=read_filter or "",
    )


class Client:
    """A connection to a ``threadkit daemon`` (or ThreadDB's ``threadsd``) API.

    Parameters
    ----------
    addr : str
        ``host:port`` or a multiaddr ``/ip4/<host>/tcp/<port>`` (default the daemon's).
    token : str, optional
        A token from :meth:`get_token`; without one the daemon acts as its own identity.
    timeout : float
        Seconds a unary call may take.
    max_message : int
        Largest message in bytes, both ways.
    """

    def __init__(
        self,
        addr: str = "127.0.0.1:6006",
        token: str | None = None,
        timeout: float = 30.0,
        max_message: int = DEFAULT_MAX_MESSAGE,
    ) -> None:
        self.addr = addr
        self.token = token
        self.timeout = timeout
        self._channel = grpc.insecure_channel(
            _target(addr),
            options=[
                ("grpc.max_receive_message_length", max_message),
                ("grpc.max_send_message_length", max_message),
            ],
        )
        db_stub: Any = pb_grpc.APIStub
        net_stub: Any = netpb_grpc.APIStub
        self.api: Any = db_stub(self._channel)
        self.net: Any = net_stub(self._channel)
        self.schemas: dict[tuple[bytes, str], dict[str, Any]] = {}
        """The schema last seen per (database id, collection): compiles queries only."""

    # -------------------------------------------------------------- plumbing

    def metadata(self) -> list[tuple[str, str]]:
        """The call metadata (the token, when set)."""
        return [("authorization", f"bearer {self.token}")] if self.token else []

    def call(self, method: str, request: Any) -> Any:
        """Call a unary ``threads.pb.API`` method; daemon errors become threadkit errors."""
        try:
            return getattr(self.api, method)(
                request, timeout=self.timeout, metadata=self.metadata()
            )
        except grpc.RpcError as exc:
            raise _error(exc) from None

    def call_async(self, method: str, request: Any) -> Callable[[], Any]:
        """Send a unary call without waiting; the returned function waits for its reply.

        Several calls sent this way travel together (one round trip). Waiting
        raises what :meth:`call` would.
        """
        try:
            future = getattr(self.api, method).future(
                request, timeout=self.timeout, metadata=self.metadata()
            )
        except grpc.RpcError as exc:
            raise _error(exc) from None

        def result() -> Any:
            try:
                return future.result()
            except grpc.RpcError as exc:
                raise _error(exc) from None

        return result

    def close(self) -> None:
        """Close the connection."""
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.addr!r})"

    # ----------------------------------------------------------------- tokens

    def get_token(self, identity: Identity) -> str:
        """Do the GetToken challenge with ``identity``; later calls act as it.

        Returns
        -------
        str
            The token (also kept in :attr:`token`).
        """
        replies: queue.Queue[Any] = queue.Queue()
        requests: queue.Queue[Any] = queue.Queue()
        requests.put(pb.GetTokenRequest(key=str(identity.public)))

        def outgoing() -> Iterator[Any]:
            while (item := requests.get()) is not None:
                yield item

        try:
            stream = self.api.GetToken(outgoing(), timeout=self.timeout)
            for reply in stream:
                kind = reply.WhichOneof("payload")
                if kind == "challenge":
                    requests.put(pb.GetTokenRequest(signature=identity.sign(reply.challenge)))
                    requests.put(None)
                elif kind == "token":
                    replies.put(reply.token)
        except grpc.RpcError as exc:
            raise _error(exc) from None
        finally:
            requests.put(None)
        if replies.empty():
            raise errors.InvalidToken("the daemon sent no token")
        self.token = str(replies.get())
        return self.token

    @property
    def host_id(self) -> str:
        """The daemon's peer id."""
        import base58

        try:
            reply = self.net.GetHostID(
                netpb.GetHostIDRequest(), timeout=self.timeout, metadata=self.metadata()
            )
        except grpc.RpcError as exc:
            raise _error(exc) from None
        return str(base58.b58encode(reply.peerID).decode("ascii"))

    # -------------------------------------------------------------- databases

    def new_db(
        self,
        name: str | None = None,
        thread_id: ThreadID | None = None,
        key: ThreadKey | None = None,
    ) -> RemoteDatabase:
        """Create a database on the daemon."""
        thread_id = thread_id or ThreadID.new()
        self.call(
            "NewDB",
            pb.NewDBRequest(
                dbID=thread_id.to_bytes(),
                name=name or "",
                key=key.to_bytes() if key is not None else b"",
            ),
        )
        return RemoteDatabase(self, thread_id)

    def new_db_from_addr(
        self,
        addr: str,
        key: ThreadKey | str,
        name: str | None = None,
        timeout: float | None = None,
    ) -> RemoteDatabase:
        """Have the daemon join a database another peer serves (``db.info()`` there).

        ``key`` is a ``tk.ThreadKey`` or its string form (as ``threadkit share`` prints it).
        """
        from threadkit.core.addr import ThreadAddr, addr_to_bytes

        if isinstance(key, str):
            key = ThreadKey.from_string(key.strip())

        thread_id = ThreadAddr.parse(addr).thread_id
        request = pb.NewDBFromAddrRequest(
            addr=addr_to_bytes(addr), key=key.to_bytes(), name=name or ""
        )
        try:
            self.api.NewDBFromAddr(
                request, timeout=timeout or self.timeout, metadata=self.metadata()
            )
        except grpc.RpcError as exc:
            raise _error(exc) from None
        return RemoteDatabase(self, thread_id)

    def get_db(self, thread_id: ThreadID | str) -> RemoteDatabase:
        """An existing database by id; DBNotFound when absent."""
        if isinstance(thread_id, str):
            thread_id = ThreadID.from_string(thread_id)
        db = RemoteDatabase(self, thread_id)
        db.info()
        return db

    def list_dbs(self) -> list[RemoteDatabase]:
        """Every database on the daemon."""
        reply = self.call("ListDBs", pb.ListDBsRequest())
        return [RemoteDatabase(self, ThreadID.from_bytes(entry.dbID)) for entry in reply.dbs]

    def delete_db(self, thread_id: ThreadID | str) -> None:
        """Delete a database on the daemon."""
        if isinstance(thread_id, str):
            thread_id = ThreadID.from_string(thread_id)
        self.call("DeleteDB", pb.DeleteDBRequest(dbID=thread_id.to_bytes()))


class RemoteDatabase:
    """A database on a daemon, with :class:`threadkit.Database`'s methods."""

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
        from threadkit.core.addr import addr_from_bytes
        from threadkit.db.database import DBInfo

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
    ) -> RemoteCollection:
        """Create a collection (see ``Database.new_collection``)."""
        config = _config(name, schema, indexes, write_validator, read_filter)
        self.client.call("NewCollection", pb.NewCollectionRequest(dbID=self._raw, config=config))
        return RemoteCollection(self, name)

    def update_collection(
        self,
        name: str,
        schema: dict[str, Any] | None = None,
        indexes: Iterable[Any] = (),
        write_validator: str | None = None,
        read_filter: str | None = None,
    ) -> RemoteCollection:
        """Replace a collection's config (see ``Database.update_collection``)."""
        config = _config(name, schema, indexes, write_validator, read_filter)
        self.client.call(
            "UpdateCollection", pb.UpdateCollectionRequest(dbID=self._raw, config=config)
        )
        return RemoteCollection(self, name)

    def delete_collection(self, name: str) -> None:
        """Delete a collection and its documents."""
        self.client.call("DeleteCollection", pb.DeleteCollectionRequest(dbID=self._raw, name=name))

    def collection_info(self, name: str) -> dict[str, Any]:
        """A collection's config as a dict (as ``Database.collection_info``)."""
        reply = self.client.call(
            "GetCollectionInfo", pb.GetCollectionInfoRequest(dbID=self._raw, name=name)
        )
        return _info_dict(reply)

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

    def from_pandas(
        self,
        name: str,
        df: Any,
        indexes: Iterable[Index | str | dict[str, Any]] = (),
        chunk_size: int = 1000,
        progress: Any = None,
    ) -> RemoteCollection:
        """A new collection holding a DataFrame's rows, its schema inferred from the dtypes.

        As ``Database.from_pandas`` (:func:`threadkit.frames.ingest.from_pandas`):
        one ``Create`` call (one transaction) per ``chunk_size`` rows.

        Examples
        --------
        >>> people = db.from_pandas("People", frame, indexes=["name"])  # doctest: +SKIP
        """
        from threadkit.frames.ingest import from_pandas

        return from_pandas(
            self, name, df, indexes=indexes, chunk_size=chunk_size, progress=progress
        )

    # ------------------------------------------- views of the log: not over the API

    def history(self, collection: str | None = None) -> Any:
        """Not available remotely: raises InvalidInput (needs the record log)."""
        raise _needs_log("history()")

    def conflicts(self, collection: str | None = None) -> Any:
        """Not available remotely: raises InvalidInput (needs the record log)."""
        raise _needs_log("conflicts()")

    def lost_writes(self, collection: str | None = None) -> list[dict[str, Any]]:
        """Not available remotely: raises InvalidInput (needs the record log)."""
        raise _needs_log("lost_writes()")

    def heads(self) -> dict[str, int]:
        """Not available remotely: raises InvalidInput (needs the record log)."""
        raise _needs_log("heads()")

    def dag(self, causal: bool = False) -> Any:
        """Not available remotely: raises InvalidInput (needs the record log)."""
        raise _needs_log("dag()")

    def plot_dag(self, ax: Any = None, max_records: int = 300, causal: bool = False) -> Any:
        """Not available remotely: raises InvalidInput (needs the record log)."""
        raise _needs_log("plot_dag()")

    def logs(self) -> Any:
        """Not available remotely: raises InvalidInput (needs the record log)."""
        raise _needs_log("logs()")

    def listen(
        self,
        collection: str | None = None,
        instance_id: str | None = None,
        actions: Iterable[Action | str] | Action | str | None = None,
        maxsize: int = 10_000,
    ) -> RemoteFeed:
        """A feed of changes (see ``Database.listen``); registered when this returns."""
        from threadkit.db.listen import _parse_actions

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


def _info_dict(reply: Any) -> dict[str, Any]:
    return {
        "name": reply.name,
        "schema": json.loads(reply.schema) if reply.schema else {},
        "indexes": [{"path": i.path, "unique": i.unique} for i in reply.indexes],
        "write_validator": reply.writeValidator or None,
        "read_filter": reply.readFilter or None,
    }


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
            raise _error(exc) from None
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
            raise _error(item)
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


class RemoteCollection:
    """A collection on a daemon, with :class:`threadkit.Collection`'s methods."""

    def __init__(self, db: RemoteDatabase, name: str) -> None:
        self.db = db
        self.name = name
        self._raw = db.id.to_bytes()

    def __repr__(self) -> str:
        return f"RemoteCollection({self.name!r}, db={self.db.id})"

    def _call(self, method: str, request: Any) -> Any:
        return self.db.client.call(method, request)

    def create(self, *docs: Any) -> list[str]:
        """Create documents in one transaction; returns their ``_id`` s."""
        request = pb.CreateRequest(
            dbID=self._raw, collectionName=self.name, instances=[_dumps(d) for d in _docs(docs)]
        )
        return list(self._call("Create", request).instanceIDs)

    def save(self, *docs: Any) -> None:
        """Save whole documents (upsert), each with its ``_id``, in one transaction."""
        request = pb.SaveRequest(
            dbID=self._raw, collectionName=self.name, instances=[_dumps(d) for d in _docs(docs)]
        )
        self._call("Save", request)

    def update(
        self, instance_id: str, changes: Mapping[str, Any] | None = None, /, **fields: Any
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
        with self.write_txn() as txn:
            current = txn.find_by_id(instance_id)
            if merged:
                txn.save({**current, **merged})

    def delete(self, *instance_ids: str) -> None:
        """Delete documents by id in one transaction."""
        request = pb.DeleteRequest(
            dbID=self._raw, collectionName=self.name, instanceIDs=_ids(instance_ids)
        )
        self._call("Delete", request)

    def verify(self, *docs: Any) -> None:
        """Check documents against the schema and write validator without writing."""
        request = pb.VerifyRequest(
            dbID=self._raw, collectionName=self.name, instances=[_dumps(d) for d in _docs(docs)]
        )
        self._call("Verify", request)

    def has(self, *instance_ids: str) -> bool:
        """True when every given id exists."""
        request = pb.HasRequest(
            dbID=self._raw, collectionName=self.name, instanceIDs=_ids(instance_ids)
        )
        return bool(self._call("Has", request).exists)

    def find(self, query: Query | None = None) -> list[dict[str, Any]]:
        """Documents matching ``query`` (every document when None)."""
        request = pb.FindRequest(
            dbID=self._raw, collectionName=self.name, queryJSON=_query_json(query)
        )
        return [json.loads(raw) for raw in self._call("Find", request).instances]

    def find_by_id(self, instance_id: str) -> dict[str, Any]:
        """One document; InstanceNotFound when absent."""
        request = pb.FindByIDRequest(
            dbID=self._raw, collectionName=self.name, instanceID=instance_id
        )
        doc: dict[str, Any] = json.loads(self._call("FindByID", request).instance)
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

    def write_txn(self) -> RemoteWriteTxn:
        """A write transaction (commit on exit, discard on exception)."""
        return RemoteWriteTxn(self)

    def read_txn(self) -> RemoteReadTxn:
        """A read transaction over one snapshot on the daemon."""
        return RemoteReadTxn(self)

    # --------------------------------------------------------------- frames

    def _info_request(self) -> pb.GetCollectionInfoRequest:
        return pb.GetCollectionInfoRequest(dbID=self._raw, name=self.name)

    def _find_request(self, query: Query) -> pb.FindRequest:
        return pb.FindRequest(
            dbID=self._raw, collectionName=self.name, queryJSON=_query_json(query)
        )

    def _remember(self, info: Any) -> dict[str, Any]:
        """The schema of a GetCollectionInfo reply, kept as the last one seen."""
        schema: dict[str, Any] = _info_dict(info)["schema"]
        self.db.client.schemas[(self._raw, self.name)] = schema
        return schema

    def schema(self) -> dict[str, Any]:
        """The collection's JSON Schema, fetched now (one ``GetCollectionInfo``)."""
        return self._remember(self._call("GetCollectionInfo", self._info_request()))

    def _cached_schema(self) -> dict[str, Any]:
        """The schema last seen for this collection (fetched when there is none)."""
        schema = self.db.client.schemas.get((self._raw, self.name))
        return schema if schema is not None else self.schema()

    def _frame(self, query: object, local_vars: Mapping[str, Any] | None = None) -> Any:
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
        found = client.call_async("Find", self._find_request(compiled))
        schema = self._remember(info())
        if typed and schema != cached:
            # the schema changed since the query was compiled: compile it and find again
            compiled = compile_with_schema(schema, query, local_vars)
            found = client.call_async("Find", self._find_request(compiled))
        return frame_from_documents((json.loads(raw) for raw in found().instances), schema)

    def to_pandas(self, query: Query | None = None, identity: PublicKey | str | None = None) -> Any:
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
        identity : None
            Only None: the daemon reads as the identity of the client's token.

        Raises
        ------
        InvalidQuery
            For a ``query`` that is not a Query, or a type mismatch in it.
        InvalidInput
            For an ``identity``.
        CollectionNotFound
            When the collection does not exist.

        Examples
        --------
        >>> people.to_pandas(tk.where("age").gt(30))  # doctest: +SKIP
        """
        from threadkit.db.query import Query

        _no_identity(identity)
        if query is not None and not isinstance(query, Query):
            raise errors.InvalidQuery(f"expected a tk.Query or None, not {type(query).__name__}")
        return self._frame(query)

    @property
    def df(self) -> Any:
        """The whole collection as a DataFrame (fetched on each access)."""
        return self.to_pandas()

    def to_arrow(self, query: Query | None = None, identity: PublicKey | str | None = None) -> Any:
        """Documents (matching ``query``) as a ``pyarrow.Table``, ``_id`` first.

        As :func:`threadkit.frames.frame.to_arrow`: the same table an embedded
        collection gives.
        """
        from threadkit.frames.frame import frame_to_arrow

        return frame_to_arrow(self.to_pandas(query, identity))

    def to_parquet(
        self,
        path: str | os.PathLike[str],
        query: Query | None = None,
        identity: PublicKey | str | None = None,
    ) -> None:
        """Write documents (matching ``query``) to a Parquet file (as :meth:`to_arrow`)."""
        from threadkit.frames.frame import frame_to_parquet

        frame_to_parquet(self.to_pandas(query, identity), path)

    def query(
        self,
        expr: Any,
        local_vars: dict[str, Any] | None = None,
        identity: PublicKey | str | None = None,
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
            For an ``identity`` (the daemon reads as the token's identity).

        Examples
        --------
        >>> people.query("age > 30 and city in ['Oslo', 'Lima']")  # doctest: +SKIP
        """
        from threadkit.frames.lazy import caller_vars

        _no_identity(identity)
        return self._frame(expr, caller_vars(expr, local_vars))

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

    def at(self, when: Any, identity: PublicKey | str | None = None) -> Any:
        """Not available remotely: raises InvalidInput (time travel needs the record log)."""
        raise _needs_log("time travel (at())")

    def diff(self, a: Any, b: Any = None, identity: PublicKey | str | None = None) -> Any:
        """Not available remotely: raises InvalidInput (needs the record log)."""
        raise _needs_log("diff()")


class _Stream:
    """One bidi transaction stream: send a request, wait for its reply."""

    def __init__(self, coll: RemoteCollection, method: str, start: Any) -> None:
        self._requests: queue.Queue[Any] = queue.Queue()
        self._requests.put(start)
        client = coll.db.client

        def outgoing() -> Iterator[Any]:
            while (item := self._requests.get()) is not None:
                yield item

        try:
            self._call = getattr(client.api, method)(outgoing(), metadata=client.metadata())
        except grpc.RpcError as exc:
            raise _error(exc) from None
        self._replies = iter(self._call)
        self.closed = False

    def ask(self, request: Any) -> Any:
        if self.closed:
            raise errors.TransactionClosed("this transaction is closed")
        self._requests.put(request)
        try:
            return next(self._replies)
        except grpc.RpcError as exc:
            self.closed = True
            self._requests.put(None)  # release the thread feeding the stream
            raise _error(exc) from None
        except StopIteration:
            self.closed = True
            self._requests.put(None)
            raise errors.TransactionClosed("the daemon ended the transaction") from None

    def finish(self) -> None:
        """Half-close and wait for the final status (the commit for writes)."""
        if self.closed:
            return
        self.closed = True
        self._requests.put(None)
        try:
            for _ in self._replies:
                pass
        except grpc.RpcError as exc:
            raise _error(exc) from None

    def cancel(self) -> None:
        self.closed = True
        self._call.cancel()
        self._requests.put(None)


def _check(reply: Any) -> Any:
    if reply.transactionError:
        raise error_from_text(reply.transactionError)
    return reply


class RemoteReadTxn:
    """A read transaction on a daemon; use as a context manager."""

    _kind = "read"
    _method = "ReadTransaction"
    _request: Any = pb.ReadTransactionRequest

    def __init__(self, coll: RemoteCollection) -> None:
        self.collection = coll
        self._stream: _Stream | None = None

    def __enter__(self) -> Self:
        start = pb.StartTransactionRequest(
            dbID=self.collection._raw, collectionName=self.collection.name
        )
        self._stream = _Stream(
            self.collection, self._method, self._request(startTransactionRequest=start)
        )
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if self._stream is not None:
            self._stream.finish()

    def _ask(self, **option: Any) -> Any:
        if self._stream is None:
            raise errors.TransactionClosed(f"this {self._kind} transaction is not open")
        return self._stream.ask(self._request(**option))

    def has(self, *instance_ids: str) -> bool:
        """True when every id exists."""
        c = self.collection
        reply = self._ask(
            hasRequest=pb.HasRequest(
                dbID=c._raw, collectionName=c.name, instanceIDs=_ids(instance_ids)
            )
        )
        return bool(_check(reply.hasReply).exists)

    def find(self, query: Query | None = None) -> list[dict[str, Any]]:
        """Documents matching ``query``."""
        c = self.collection
        reply = self._ask(
            findRequest=pb.FindRequest(
                dbID=c._raw, collectionName=c.name, queryJSON=_query_json(query)
            )
        )
        return [json.loads(raw) for raw in _check(reply.findReply).instances]

    def find_by_id(self, instance_id: str) -> dict[str, Any]:
        """One document."""
        c = self.collection
        reply = self._ask(
            findByIDRequest=pb.FindByIDRequest(
                dbID=c._raw, collectionName=c.name, instanceID=instance_id
            )
        )
        doc: dict[str, Any] = json.loads(_check(reply.findByIDReply).instance)
        return doc

    def count(self, query: Query | None = None) -> int:
        """Number of matching documents."""
        return len(self.find(query))


class RemoteWriteTxn(RemoteReadTxn):
    """A write transaction on a daemon: commits when the block ends, discards on an exception."""

    _kind = "write"
    _method = "WriteTransaction"
    _request: Any = pb.WriteTransactionRequest

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if self._stream is None:
            return
        if exc_type is None:
            self._stream.finish()
        else:
            self.discard()

    def create(self, *docs: Any) -> list[str]:
        """Queue new documents; returns their ids."""
        c = self.collection
        reply = self._ask(
            createRequest=pb.CreateRequest(
                dbID=c._raw, collectionName=c.name, instances=[_dumps(d) for d in _docs(docs)]
            )
        )
        return list(_check(reply.createReply).instanceIDs)

    def save(self, *docs: Any) -> None:
        """Queue saves of whole documents."""
        c = self.collection
        reply = self._ask(
            saveRequest=pb.SaveRequest(
                dbID=c._raw, collectionName=c.name, instances=[_dumps(d) for d in _docs(docs)]
            )
        )
        _check(reply.saveReply)

    def delete(self, *instance_ids: str) -> None:
        """Queue deletes."""
        c = self.collection
        reply = self._ask(
            deleteRequest=pb.DeleteRequest(
                dbID=c._raw, collectionName=c.name, instanceIDs=_ids(instance_ids)
            )
        )
        _check(reply.deleteReply)

    def verify(self, *docs: Any) -> None:
        """Check documents without writing."""
        c = self.collection
        reply = self._ask(
            verifyRequest=pb.VerifyRequest(
                dbID=c._raw, collectionName=c.name, instances=[_dumps(d) for d in _docs(docs)]
            )
        )
        _check(reply.verifyReply)

    def discard(self) -> None:
        """Drop every pending write and end the transaction."""
        if self._stream is None or self._stream.closed:
            return
        with contextlib.suppress(errors.ThreadkitError):
            self._ask(discardRequest=pb.DiscardRequest())
        with contextlib.suppress(errors.ThreadkitError):
            self._stream.finish()
