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

import queue
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from threadkit import errors
from threadkit.api._remote_collection import RemoteCollection
from threadkit.api._remote_db import RemoteDatabase, RemoteFeed
from threadkit.api._remote_txn import RemoteReadTxn, RemoteWriteTxn
from threadkit.api.proto import lifecycle_pb2_grpc as lpb_grpc
from threadkit.api.proto import members_pb2_grpc as mpb_grpc
from threadkit.api.proto import threads_pb2 as pb
from threadkit.api.proto import threads_pb2_grpc as pb_grpc
from threadkit.api.proto import threadsnet_pb2 as netpb
from threadkit.api.proto import threadsnet_pb2_grpc as netpb_grpc
from threadkit.api.wire import (
    MAX_MESSAGE,
    bearer,
    error_from_status,
    error_from_text,
    message_size_options,
)
from threadkit.core.addr import ThreadAddr, addr_to_bytes, dial_target
from threadkit.core.identity import Identity, PublicKey
from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey

__all__ = [
    "Client",
    "RemoteCollection",
    "RemoteDatabase",
    "RemoteFeed",
    "RemoteReadTxn",
    "RemoteWriteTxn",
    "error_from_text",
]

DEFAULT_MAX_MESSAGE = MAX_MESSAGE
"""Largest message in bytes, both ways (:data:`threadkit.api.wire.MAX_MESSAGE`)."""


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
            dial_target(addr),
            options=message_size_options(max_message),
        )
        db_stub: Any = pb_grpc.APIStub
        net_stub: Any = netpb_grpc.APIStub
        self.api: Any = db_stub(self._channel)
        self.net: Any = net_stub(self._channel)
        members_stub: Any = mpb_grpc.MembersStub
        self.members_api: Any = members_stub(self._channel)
        """threadkit's Members service (not ThreadDB's: a threadkit daemon serves it)."""
        lifecycle_stub: Any = lpb_grpc.LifecycleStub
        self.lifecycle_api: Any = lifecycle_stub(self._channel)
        """threadkit's Lifecycle service (migrate, purge, snapshots, compact; a threadkit
        daemon serves it)."""
        self.schemas: dict[tuple[bytes, str], dict[str, Any]] = {}
        """The schema last seen per (database id, collection): compiles queries only."""
        self._tokens: dict[str, str] = {}  # tokens of identities passed as identity=
        self._host_key: str | None = None

    # -------------------------------------------------------------- plumbing

    def metadata(self, identity: Identity | PublicKey | str | None = None) -> list[tuple[str, str]]:
        """The call metadata: the token (when set), or a token acting as ``identity``.

        Parameters
        ----------
        identity : Identity, PublicKey or str, optional
            Who the call acts as, the ``identity=`` of the collection methods. None: the
            client's token (the daemon's own identity without one). A ``tk.Identity``:
            a token for it, got with the GetToken challenge on first use and kept. A public
            key (or its string): only the one the client already acts as (see
            :meth:`acting_as`), since the daemon acts only for an identity that proved it
            holds the private key.

        Raises
        ------
        InvalidInput
            For a public key the client does not act as.
        """
        if identity is None:
            return bearer(self.token)

        if isinstance(identity, Identity):
            key = str(identity.public)
            if key == self.acting_as():
                return bearer(self.token)
            if key not in self._tokens:
                self._tokens[key] = self._challenge(identity)
            return bearer(self._tokens[key])
        if str(identity) == self.acting_as():
            return bearer(self.token)
        raise errors.InvalidInput(
            f"a daemon acts only as an identity that proved it holds the private key: "
            f"{str(identity)[:60]!r} is not the one this client acts as; pass the tk.Identity "
            "itself, or call client.get_token(identity) and leave identity=None"
        )

    def acting_as(self) -> str | None:
        """The public key (string) the daemon acts as for this client's calls.

        The subject of :attr:`token`, or the daemon's own key without a token (asked once);
        None when the token is not one whose subject can be read.
        """
        if self.token:
            import jwt

            try:
                claims = jwt.decode(self.token, options={"verify_signature": False})
            except jwt.PyJWTError:
                return None
            subject = claims.get("sub")
            return subject if isinstance(subject, str) else None
        if self._host_key is None:
            self._host_key = str(PublicKey.from_peer_id(self.host_id))
        return self._host_key

    def call(
        self,
        method: str,
        request: Any,
        identity: Identity | PublicKey | str | None = None,
        *,
        api: Any = None,
    ) -> Any:
        """Call a unary ``threads.pb.API`` method (or one of ``api``, another service's
        stub); daemon errors become threadkit errors.

        ``identity`` is who the call acts as (:meth:`metadata`).
        """
        metadata = self.metadata(identity)
        stub = self.api if api is None else api
        try:
            return getattr(stub, method)(request, timeout=self.timeout, metadata=metadata)
        except grpc.RpcError as exc:
            raise error_from_status(exc) from None

    def call_async(
        self, method: str, request: Any, identity: Identity | PublicKey | str | None = None
    ) -> Callable[[], Any]:
        """Send a unary call without waiting; the returned function waits for its reply.

        Several calls sent this way travel together (one round trip). Waiting
        raises what :meth:`call` would.
        """
        metadata = self.metadata(identity)
        try:
            future = getattr(self.api, method).future(
                request, timeout=self.timeout, metadata=metadata
            )
        except grpc.RpcError as exc:
            raise error_from_status(exc) from None

        def result() -> Any:
            try:
                return future.result()
            except grpc.RpcError as exc:
                raise error_from_status(exc) from None

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
        self.token = self._challenge(identity)
        return self.token

    def _challenge(self, identity: Identity) -> str:
        """A token for ``identity`` from the GetToken challenge."""
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
            raise error_from_status(exc) from None
        finally:
            requests.put(None)
        if replies.empty():
            raise errors.InvalidToken("the daemon sent no token")
        return str(replies.get())

    @property
    def host_id(self) -> str:
        """The daemon's peer id."""
        import base58

        try:
            reply = self.net.GetHostID(
                netpb.GetHostIDRequest(), timeout=self.timeout, metadata=self.metadata()
            )
        except grpc.RpcError as exc:
            raise error_from_status(exc) from None
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
            raise error_from_status(exc) from None
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
