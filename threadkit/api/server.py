"""ThreadDB's remote APIs (``threads.pb.API`` and ``threads.net.pb.API``) over a ``tk.Peer``.

The wire contract is docs/wire-contract.md: our own .proto files in
``threadkit/api/proto`` carry ThreadDB's field numbers, so ThreadDB's clients and
``tk.Client`` speak to :class:`APIServer` alike.

Callers identify themselves with ``authorization: bearer <token>`` metadata, a token
from the GetToken challenge flow; the token's identity is the writer given to write
validators and the reader given to read filters. Without a token the host's own
identity is used (as in ThreadDB); a forged token or one from another host is
refused with UNAUTHENTICATED.

Examples
--------
>>> import threadkit as tk
>>> from threadkit.api.server import APIServer
>>> with tk.Peer(memory=True, network=False) as peer:
...     server = APIServer(peer, "127.0.0.1:0")
...     server.start()
...     server.port > 0
...     server.stop()
True
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import grpc

from threadkit import errors
from threadkit.api.limits import APILimits, StreamGuard
from threadkit.api.proto import threads_pb2 as pb
from threadkit.api.proto import threads_pb2_grpc as pb_grpc
from threadkit.api.proto import threadsnet_pb2 as netpb
from threadkit.api.proto import threadsnet_pb2_grpc as netpb_grpc
from threadkit.core.addr import addr_from_bytes
from threadkit.core.identity import PublicKey, peer_id_bytes
from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.core.tokens import TokenIssuer, new_challenge
from threadkit.db.events import Action
from threadkit.db.listen import Event as ListenEvent

if TYPE_CHECKING:
    from threadkit.db.collection import Collection
    from threadkit.db.database import Database
    from threadkit.peer import Peer

__all__ = ["DEFAULT_MAX_MESSAGE", "ERROR_CLASS_KEY", "APIServer", "status_for"]

log = logging.getLogger("threadkit.api")

DEFAULT_MAX_MESSAGE = 16 * 1024 * 1024
"""Largest request or reply message, in bytes (bigger ones get RESOURCE_EXHAUSTED)."""

ERROR_CLASS_KEY = "x-threadkit-error"
"""Trailing metadata naming the threadkit error class of a failed call."""

_T = TypeVar("_T")

# go-threads' error texts, which ThreadDB clients match on (docs/wire-contract.md §2)
_EXACT: list[tuple[type[Exception], grpc.StatusCode, str]] = [
    (errors.ThreadExists, grpc.StatusCode.ALREADY_EXISTS, "db already exists"),
    (errors.CollectionExists, grpc.StatusCode.ALREADY_EXISTS, "collection already registered"),
]
_PREFIXED: list[tuple[type[Exception], grpc.StatusCode, str]] = [
    (errors.ThreadNotFound, grpc.StatusCode.NOT_FOUND, "db not found"),
    (errors.CollectionNotFound, grpc.StatusCode.NOT_FOUND, "collection not found"),
    (errors.InstanceNotFound, grpc.StatusCode.NOT_FOUND, "instance not found"),
    (errors.UniqueViolation, grpc.StatusCode.ALREADY_EXISTS, "unique constraint violation"),
    (
        errors.InstanceExists,
        grpc.StatusCode.ALREADY_EXISTS,
        "can't create already existing instance",
    ),
    (
        errors.SchemaViolation,
        grpc.StatusCode.INVALID_ARGUMENT,
        "instance doesn't correspond to schema",
    ),
    (errors.InvalidToken, grpc.StatusCode.UNAUTHENTICATED, "invalid token"),
    (errors.LimitExceeded, grpc.StatusCode.RESOURCE_EXHAUSTED, "resource exhausted"),
    (errors.Timeout, grpc.StatusCode.DEADLINE_EXCEEDED, "timeout"),
    (errors.NetworkError, grpc.StatusCode.UNAVAILABLE, "network error"),
    (errors.InvalidInput, grpc.StatusCode.INVALID_ARGUMENT, "invalid argument"),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND, "not found"),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS, "already exists"),
    (errors.TransactionError, grpc.StatusCode.FAILED_PRECONDITION, "transaction error"),
    (errors.UnreadableDocument, grpc.StatusCode.DATA_LOSS, "unreadable instance"),
]


def status_for(exc: Exception) -> tuple[grpc.StatusCode, str]:
    """The gRPC status and message for an exception (go-threads' texts first).

    Examples
    --------
    >>> status_for(errors.CollectionExists("x"))[1]
    'collection already registered'
    >>> status_for(errors.InstanceNotFound("no 'a'"))[1]
    "instance not found: no 'a'"
    """
    for kind, code, text in _EXACT:
        if isinstance(exc, kind):
            return code, text
    for kind, code, text in _PREFIXED:
        if isinstance(exc, kind):
            return code, f"{text}: {exc}"
    if isinstance(exc, errors.ThreadkitError):
        return grpc.StatusCode.UNKNOWN, str(exc)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"


def _txn_error(exc: Exception) -> str:
    return status_for(exc)[1]


class _Abort(errors.ThreadkitError):
    """Raised inside a handler to end the call with a status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _abort(context: grpc.ServicerContext, exc: Exception) -> NoReturn:
    if isinstance(exc, _Abort):
        code, message = exc.code, exc.message
    else:
        code, message = status_for(exc)
        if code is grpc.StatusCode.INTERNAL:
            log.exception("API call failed", exc_info=exc)
        elif isinstance(exc, errors.ThreadkitError):
            # tk.Client raises the same class as an embedded peer would
            context.set_trailing_metadata(((ERROR_CLASS_KEY, type(exc).__name__),))
    context.abort(code, message)
    raise errors.ThreadkitError("context.abort returned")  # it always raises


def _unary(method: Callable[[Any, Any, grpc.ServicerContext], _T]) -> Any:
    """Wrap a unary handler: threadkit errors become gRPC statuses."""

    def handler(self: Any, request: Any, context: grpc.ServicerContext) -> _T:
        try:
            return method(self, request, context)
        except Exception as exc:
            _abort(context, exc)

    handler.__name__ = method.__name__
    handler.__doc__ = method.__doc__
    return handler


def _peer_call(method: Callable[[Any, Any, grpc.ServicerContext], _T]) -> Any:
    """Wrap a unary handler that waits for another peer: within ``limits.peer_calls``."""

    def handler(self: Any, request: Any, context: grpc.ServicerContext) -> _T:
        with self.guard.peer_call():
            return method(self, request, context)

    handler.__name__ = method.__name__
    handler.__doc__ = method.__doc__
    return handler


def _streaming(method: Callable[[Any, Any, grpc.ServicerContext], Iterator[_T]]) -> Any:
    """Wrap a streaming handler the same way, within the stream budget (``self.guard``).

    The call takes a stream slot first (LimitExceeded, RESOURCE_EXHAUSTED, when none is
    free); a client stream's messages each have an idle deadline.
    """

    def handler(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[_T]:
        try:
            release = self.guard.enter(context)
            try:
                if hasattr(request, "__next__"):
                    request = self.guard.watch(request, context)
                yield from method(self, request, context)
            finally:
                release()
        except grpc.RpcError:
            return  # the client went away
        except Exception as exc:
            _abort(context, exc)

    handler.__name__ = method.__name__
    handler.__doc__ = method.__doc__
    return handler


def _thread_key(raw: bytes) -> ThreadKey:
    if not raw:
        raise errors.InvalidThreadKey("threadKey is empty")
    return ThreadKey.from_bytes(bytes(raw))


def _thread_id(raw: bytes) -> ThreadID:
    if not raw:
        raise errors.InvalidThreadID("dbID is empty")
    return ThreadID.from_bytes(raw)


def _json_docs(instances: Any) -> list[dict[str, Any]]:
    docs = []
    for raw in instances:
        try:
            doc = json.loads(bytes(raw).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise errors.InvalidDocument(f"instance is not valid JSON: {exc}") from None
        except RecursionError:
            raise errors.InvalidDocument("instance is nested too deeply to parse") from None
        if not isinstance(doc, dict):
            raise errors.InvalidDocument("an instance must be a JSON object")
        docs.append(doc)
    return docs


def _dumps(doc: Any) -> bytes:
    """A document as strict JSON (no NaN, no lone surrogate), UnreadableDocument if it has none."""
    try:
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        shown = doc.get("_id") if isinstance(doc, dict) else None
        raise errors.UnreadableDocument(
            f"instance {shown!r} holds a value JSON cannot carry ({type(exc).__name__}: "
            f"{str(exc)[:120]}); it was stored before threadkit checked values"
        ) from None


def _dumps_all(docs: Any) -> list[bytes]:
    """Documents as JSON, skipping (with a warning) any that JSON cannot carry."""
    out = []
    for doc in docs:
        try:
            out.append(_dumps(doc))
        except errors.UnreadableDocument as exc:
            log.warning("skipped in a reply: %s", exc)
    return out


def _query(raw: bytes) -> Any:
    from threadkit.db.query import Query

    if not raw or not raw.strip():
        return None
    return Query.from_json(raw)


def _config_kwargs(config: pb.CollectionConfig) -> dict[str, Any]:
    schema = None
    if config.schema:
        try:
            schema = json.loads(config.schema.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise errors.InvalidSchema(f"schema is not valid JSON: {exc}") from None
        except RecursionError:
            raise errors.InvalidSchema("schema is nested too deeply to parse") from None
    return {
        "schema": schema,
        "indexes": [{"path": i.path, "unique": i.unique} for i in config.indexes],
        "write_validator": config.writeValidator or None,
        "read_filter": config.readFilter or None,
    }


def _collection_info(info: dict[str, Any]) -> pb.GetCollectionInfoReply:
    return pb.GetCollectionInfoReply(
        name=info["name"],
        schema=_dumps(info["schema"]),
        indexes=[pb.Index(path=i["path"], unique=i["unique"]) for i in info["indexes"]],
        writeValidator=info["write_validator"] or "",
        readFilter=info["read_filter"] or "",
    )


def _db_info(db: Database) -> pb.GetDBInfoReply:
    from threadkit.core.addr import addr_to_bytes

    info = db.info()
    return pb.GetDBInfoReply(
        addrs=[addr_to_bytes(a) for a in info.addrs], key=info.key.to_bytes(), name=info.name
    )


_LISTEN_ACTION = {Action.CREATE: 0, Action.SAVE: 1, Action.DELETE: 2}
_FILTER_ACTION = {1: Action.CREATE, 2: Action.SAVE, 3: Action.DELETE}


def _listen_match(filters: Any, event: Any) -> bool:
    if not filters:
        return True
    for f in filters:
        if f.collectionName and f.collectionName != event.collection:
            continue
        if f.instanceID and f.instanceID != event.instance_id:
            continue
        if f.action and _FILTER_ACTION.get(f.action) is not event.action:
            continue
        return True
    return False


class _Tokens:
    """The GetToken challenge flow and the caller's identity from request metadata."""

    def __init__(self, peer: Peer) -> None:
        self.host = peer.identity.public
        self.issuer = TokenIssuer(peer.identity)

    def challenge_flow(self, requests: Iterator[Any], reply: Callable[..., Any]) -> Iterator[Any]:
        first = next(requests, None)
        if first is None or first.WhichOneof("payload") != "key":
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "first message must carry the key")
        challenge = new_challenge()
        yield reply(challenge=challenge)
        second = next(requests, None)
        if second is None or second.WhichOneof("payload") != "signature":
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "second message must carry a signature")
        try:
            token = self.issuer.issue(first.key, challenge, second.signature)
        except errors.InvalidToken as exc:
            raise _Abort(grpc.StatusCode.UNAUTHENTICATED, str(exc)) from None
        yield reply(token=token)

    def identity(self, context: grpc.ServicerContext) -> PublicKey:
        auth = ""
        for key, value in context.invocation_metadata():
            if key.lower() == "authorization":
                auth = value if isinstance(value, str) else value.decode("latin-1")
        if not auth:
            return self.host
        scheme, _, token = auth.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _Abort(grpc.StatusCode.UNAUTHENTICATED, "authorization must be 'bearer <token>'")
        try:
            return self.issuer.verify(token.strip())
        except errors.InvalidToken as exc:
            raise _Abort(grpc.StatusCode.UNAUTHENTICATED, str(exc)) from None


class DBService(pb_grpc.APIServicer):
    """``threads.pb.API`` over a peer."""

    def __init__(self, peer: Peer, tokens: _Tokens, guard: StreamGuard) -> None:
        self.peer = peer
        self.tokens = tokens
        self.guard = guard

    def _db(self, raw: bytes) -> Database:
        return self.peer.get_db(_thread_id(raw))

    def _coll(self, raw: bytes, name: str) -> Collection:
        return self._db(raw).get_collection(name)

    def _new_collections(self, db: Database, configs: Any) -> None:
        for config in configs:
            if config.name not in db:
                db.new_collection(config.name, **_config_kwargs(config))

    # ----------------------------------------------------------------- tokens

    @_streaming
    def GetToken(self, request_iterator: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        """The challenge flow: key → challenge → signature → token."""
        yield from self.tokens.challenge_flow(request_iterator, pb.GetTokenReply)

    # -------------------------------------------------------------- databases

    @_unary
    def NewDB(self, request: Any, context: grpc.ServicerContext) -> pb.NewDBReply:
        """Create a database with the given id (and key, name, collections)."""
        from threadkit.core.keys import ThreadKey

        self.tokens.identity(context)
        thread_id = _thread_id(request.dbID)
        if any(db.id == thread_id for db in self.peer.list_dbs()):
            raise errors.ThreadExists(f"database {thread_id} exists")
        key = ThreadKey.from_bytes(request.key) if request.key else None
        db = self.peer.new_db(request.name or None, thread_id, key)
        self._new_collections(db, request.collections)
        return pb.NewDBReply()

    @_unary
    @_peer_call
    def NewDBFromAddr(self, request: Any, context: grpc.ServicerContext) -> pb.NewDBReply:
        """Join a database another peer serves, from its address and key."""
        from threadkit.core.addr import addr_from_bytes
        from threadkit.core.keys import ThreadKey

        self.tokens.identity(context)
        addr = addr_from_bytes(request.addr)
        key = ThreadKey.from_bytes(request.key or request.threadKey)
        db = self.peer.new_db_from_addr(addr, key, request.name or None)
        self._new_collections(db, request.collections)
        return pb.NewDBReply()

    @_unary
    def ListDBs(self, request: Any, context: grpc.ServicerContext) -> pb.ListDBsReply:
        """Every database with its info."""
        self.tokens.identity(context)
        return pb.ListDBsReply(
            dbs=[
                pb.ListDBsReply.DB(dbID=db.id.to_bytes(), info=_db_info(db))
                for db in self.peer.list_dbs()
            ]
        )

    @_unary
    def GetDBInfo(self, request: Any, context: grpc.ServicerContext) -> pb.GetDBInfoReply:
        """A database's name, addresses and key."""
        self.tokens.identity(context)
        return _db_info(self._db(request.dbID))

    @_unary
    def DeleteDB(self, request: Any, context: grpc.ServicerContext) -> pb.DeleteDBReply:
        """Delete a database."""
        self.tokens.identity(context)
        self.peer.delete_db(_thread_id(request.dbID))
        return pb.DeleteDBReply()

    # ------------------------------------------------------------ collections

    @_unary
    def NewCollection(self, request: Any, context: grpc.ServicerContext) -> pb.NewCollectionReply:
        """Create a collection."""
        self.tokens.identity(context)
        db = self._db(request.dbID)
        db.new_collection(request.config.name, **_config_kwargs(request.config))
        return pb.NewCollectionReply()

    @_unary
    def UpdateCollection(
        self, request: Any, context: grpc.ServicerContext
    ) -> pb.UpdateCollectionReply:
        """Replace a collection's config."""
        self.tokens.identity(context)
        db = self._db(request.dbID)
        db.update_collection(request.config.name, **_config_kwargs(request.config))
        return pb.UpdateCollectionReply()

    @_unary
    def DeleteCollection(
        self, request: Any, context: grpc.ServicerContext
    ) -> pb.DeleteCollectionReply:
        """Delete a collection."""
        self.tokens.identity(context)
        self._db(request.dbID).delete_collection(request.name)
        return pb.DeleteCollectionReply()

    @_unary
    def GetCollectionInfo(
        self, request: Any, context: grpc.ServicerContext
    ) -> pb.GetCollectionInfoReply:
        """A collection's config."""
        self.tokens.identity(context)
        return _collection_info(self._db(request.dbID).collection_info(request.name))

    @_unary
    def GetCollectionIndexes(
        self, request: Any, context: grpc.ServicerContext
    ) -> pb.GetCollectionIndexesReply:
        """A collection's indexes (deprecated in ThreadDB; kept for old clients)."""
        self.tokens.identity(context)
        info = self._db(request.dbID).collection_info(request.name)
        return pb.GetCollectionIndexesReply(
            indexes=[pb.Index(path=i["path"], unique=i["unique"]) for i in info["indexes"]]
        )

    @_unary
    def ListCollections(
        self, request: Any, context: grpc.ServicerContext
    ) -> pb.ListCollectionsReply:
        """Every collection's config."""
        self.tokens.identity(context)
        db = self._db(request.dbID)
        return pb.ListCollectionsReply(
            collections=[
                _collection_info(db.collection_info(c.name)) for c in db.list_collections()
            ]
        )

    # -------------------------------------------------------------- instances

    @_unary
    def Create(self, request: Any, context: grpc.ServicerContext) -> pb.CreateReply:
        """Create instances in one transaction."""
        who = self.tokens.identity(context)
        coll = self._coll(request.dbID, request.collectionName)
        ids = coll.create(_json_docs(request.instances), identity=who)
        return pb.CreateReply(instanceIDs=ids)

    @_unary
    def Save(self, request: Any, context: grpc.ServicerContext) -> pb.SaveReply:
        """Save (upsert) instances in one transaction."""
        who = self.tokens.identity(context)
        coll = self._coll(request.dbID, request.collectionName)
        coll.save(_json_docs(request.instances), identity=who)
        return pb.SaveReply()

    @_unary
    def Delete(self, request: Any, context: grpc.ServicerContext) -> pb.DeleteReply:
        """Delete instances in one transaction."""
        who = self.tokens.identity(context)
        coll = self._coll(request.dbID, request.collectionName)
        coll.delete(*request.instanceIDs, identity=who)
        return pb.DeleteReply()

    @_unary
    def Verify(self, request: Any, context: grpc.ServicerContext) -> pb.VerifyReply:
        """Check instances against the schema and validator without writing."""
        who = self.tokens.identity(context)
        coll = self._coll(request.dbID, request.collectionName)
        coll.verify(_json_docs(request.instances), identity=who)
        return pb.VerifyReply()

    @_unary
    def Has(self, request: Any, context: grpc.ServicerContext) -> pb.HasReply:
        """Whether every given instance exists."""
        who = self.tokens.identity(context)
        coll = self._coll(request.dbID, request.collectionName)
        return pb.HasReply(exists=coll.has(*request.instanceIDs, identity=who))

    @_unary
    def Find(self, request: Any, context: grpc.ServicerContext) -> pb.FindReply:
        """Instances matching a ThreadDB query JSON."""
        who = self.tokens.identity(context)
        coll = self._coll(request.dbID, request.collectionName)
        docs = coll.find(_query(request.queryJSON), identity=who)
        return pb.FindReply(instances=_dumps_all(docs))

    @_unary
    def FindByID(self, request: Any, context: grpc.ServicerContext) -> pb.FindByIDReply:
        """One instance by id."""
        who = self.tokens.identity(context)
        coll = self._coll(request.dbID, request.collectionName)
        return pb.FindByIDReply(instance=_dumps(coll.find_by_id(request.instanceID, identity=who)))

    # ----------------------------------------------------------- transactions

    def _start(self, request_iterator: Any, context: grpc.ServicerContext) -> Collection:
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("option") != "startTransactionRequest":
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT, "first message must be startTransactionRequest"
            )
        start = first.startTransactionRequest
        return self._coll(start.dbID, start.collectionName)

    @_streaming
    def ReadTransaction(
        self, request_iterator: Any, context: grpc.ServicerContext
    ) -> Iterator[pb.ReadTransactionReply]:
        """A read transaction over one snapshot: one reply per request."""
        who = self.tokens.identity(context)
        coll = self._start(request_iterator, context)
        with coll.read_txn(who) as txn:
            for request in request_iterator:
                yield _read_step(txn, request)

    @_streaming
    def WriteTransaction(
        self, request_iterator: Any, context: grpc.ServicerContext
    ) -> Iterator[pb.WriteTransactionReply]:
        """A write transaction: one reply per request, commit on the client's half-close.

        A client that goes away before half-closing loses the whole transaction.
        """
        who = self.tokens.identity(context)
        coll = self._start(request_iterator, context)
        txn = coll.write_txn(who)
        try:
            for request in request_iterator:
                yield _write_step(txn, request)
                if txn.closed:
                    return  # discarded at the client's request
            if _vanished(context):
                return
            txn.commit()
        finally:
            if not txn.closed:
                txn.discard()

    # ----------------------------------------------------------------- listen

    @_streaming
    def Listen(self, request: Any, context: grpc.ServicerContext) -> Iterator[pb.ListenReply]:
        """Changes to a database, until the client goes away."""
        who = self.tokens.identity(context)
        db = self._db(request.dbID)
        filters = list(request.filters)
        feed = db.listen()
        context.add_callback(feed.close)
        context.send_initial_metadata((("x-threadkit-listening", "1"),))
        try:
            while context.is_active():
                try:
                    event = feed.get(timeout=0.5)
                except errors.Timeout:
                    continue
                except errors.FeedClosed:
                    return
                if not isinstance(event, ListenEvent) or not _listen_match(filters, event):
                    continue  # a Lagged marker has no wire form in ThreadDB
                document = event.document
                if document is not None:
                    coll = db.get_collection(event.collection) if event.collection in db else None
                    if coll is not None:
                        document = coll._visible(document, str(who))
                        if document is None:
                            continue
                try:
                    instance = _dumps(document) if document is not None else b""
                except errors.UnreadableDocument as exc:
                    log.warning("skipped in Listen: %s", exc)
                    continue
                yield pb.ListenReply(
                    collectionName=event.collection,
                    instanceID=event.instance_id,
                    action=_LISTEN_ACTION[event.action],  # type: ignore[arg-type]
                    instance=instance,
                )
        finally:
            feed.close()


HALF_CLOSE_GRACE = 0.025
"""Seconds a write transaction waits, after the client's last message, to tell a half-close
(commit) from a vanished client (discard): grpcio reports both as the end of the request
stream, and the cancellation of a dropped connection arrives just after."""


def _vanished(context: grpc.ServicerContext, grace: float = HALF_CLOSE_GRACE) -> bool:
    deadline = time.monotonic() + grace
    while context.is_active():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.002)
    return True


def _read_step(txn: Any, request: Any) -> pb.ReadTransactionReply:
    kind = request.WhichOneof("option")
    if kind == "hasRequest":
        try:
            return pb.ReadTransactionReply(
                hasReply=pb.HasReply(exists=txn.has(*request.hasRequest.instanceIDs))
            )
        except Exception as exc:
            return pb.ReadTransactionReply(hasReply=pb.HasReply(transactionError=_txn_error(exc)))
    if kind == "findRequest":
        try:
            docs = txn.find(_query(request.findRequest.queryJSON))
            return pb.ReadTransactionReply(findReply=pb.FindReply(instances=_dumps_all(docs)))
        except Exception as exc:
            return pb.ReadTransactionReply(findReply=pb.FindReply(transactionError=_txn_error(exc)))
    if kind == "findByIDRequest":
        try:
            doc = txn.find_by_id(request.findByIDRequest.instanceID)
            return pb.ReadTransactionReply(findByIDReply=pb.FindByIDReply(instance=_dumps(doc)))
        except Exception as exc:
            return pb.ReadTransactionReply(
                findByIDReply=pb.FindByIDReply(transactionError=_txn_error(exc))
            )
    raise _Abort(
        grpc.StatusCode.INVALID_ARGUMENT, f"unexpected request in a read transaction: {kind}"
    )


def _write_step(txn: Any, request: Any) -> pb.WriteTransactionReply:
    kind = request.WhichOneof("option")
    R = pb.WriteTransactionReply
    try:
        if kind == "createRequest":
            ids = txn.create(_json_docs(request.createRequest.instances))
            return R(createReply=pb.CreateReply(instanceIDs=ids))
        if kind == "saveRequest":
            txn.save(_json_docs(request.saveRequest.instances))
            return R(saveReply=pb.SaveReply())
        if kind == "deleteRequest":
            txn.delete(*request.deleteRequest.instanceIDs)
            return R(deleteReply=pb.DeleteReply())
        if kind == "hasRequest":
            return R(hasReply=pb.HasReply(exists=txn.has(*request.hasRequest.instanceIDs)))
        if kind == "findRequest":
            docs = txn.find(_query(request.findRequest.queryJSON))
            return R(findReply=pb.FindReply(instances=_dumps_all(docs)))
        if kind == "findByIDRequest":
            doc = txn.find_by_id(request.findByIDRequest.instanceID)
            return R(findByIDReply=pb.FindByIDReply(instance=_dumps(doc)))
        if kind == "verifyRequest":
            txn.verify(_json_docs(request.verifyRequest.instances))
            return R(verifyReply=pb.VerifyReply())
        if kind == "discardRequest":
            txn.discard()
            return R(discardReply=pb.DiscardReply())
    except Exception as exc:
        message = _txn_error(exc)
        replies = {
            "createRequest": lambda: R(createReply=pb.CreateReply(transactionError=message)),
            "saveRequest": lambda: R(saveReply=pb.SaveReply(transactionError=message)),
            "deleteRequest": lambda: R(deleteReply=pb.DeleteReply(transactionError=message)),
            "hasRequest": lambda: R(hasReply=pb.HasReply(transactionError=message)),
            "findRequest": lambda: R(findReply=pb.FindReply(transactionError=message)),
            "findByIDRequest": lambda: R(findByIDReply=pb.FindByIDReply(transactionError=message)),
            "verifyRequest": lambda: R(verifyReply=pb.VerifyReply(transactionError=message)),
        }
        return replies[kind or "verifyRequest"]()
    raise _Abort(
        grpc.StatusCode.INVALID_ARGUMENT, f"unexpected request in a write transaction: {kind}"
    )


class NetService(netpb_grpc.APIServicer):
    """``threads.net.pb.API``, as far as the peer supports it."""

    def __init__(self, peer: Peer, tokens: _Tokens, guard: StreamGuard) -> None:
        self.peer = peer
        self.tokens = tokens
        self.guard = guard

    @_streaming
    def GetToken(self, request_iterator: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        """The challenge flow: key → challenge → signature → token."""
        yield from self.tokens.challenge_flow(request_iterator, netpb.GetTokenReply)

    @_unary
    def GetHostID(self, request: Any, context: grpc.ServicerContext) -> netpb.GetHostIDReply:
        """The host's peer id (binary multihash)."""
        self.tokens.identity(context)
        return netpb.GetHostIDReply(peerID=peer_id_bytes(self.peer.id))

    @_unary
    def GetThread(self, request: Any, context: grpc.ServicerContext) -> netpb.ThreadInfoReply:
        """A thread's key, logs and addresses."""
        self.tokens.identity(context)
        return _thread_info(self.peer, _thread_id(request.threadID))

    @_unary
    @_peer_call
    def PullThread(self, request: Any, context: grpc.ServicerContext) -> netpb.PullThreadReply:
        """Pull a thread from its peers now."""
        self.tokens.identity(context)
        self.peer.pull(_thread_id(request.threadID))
        return netpb.PullThreadReply()

    @_unary
    def GetRecord(self, request: Any, context: grpc.ServicerContext) -> netpb.GetRecordReply:
        """A record's four IPLD nodes."""
        self.tokens.identity(context)
        record = self.peer.get_record(_thread_id(request.threadID), bytes(request.recordID))
        return netpb.GetRecordReply(record=_record(record))

    @_streaming
    def Subscribe(
        self, request: Any, context: grpc.ServicerContext
    ) -> Iterator[netpb.NewRecordReply]:
        """New records of the given threads (all when none given), until the client goes."""
        self.tokens.identity(context)
        ids = [_thread_id(raw) for raw in request.threadIDs]
        feed = self.peer.subscribe(ids or None)
        context.add_callback(feed.close)
        context.send_initial_metadata((("x-threadkit-listening", "1"),))
        try:
            while context.is_active():
                try:
                    item = feed.get(timeout=0.5)
                except errors.Timeout:
                    continue
                except errors.FeedClosed:
                    return
                if not isinstance(item, tuple):
                    continue
                thread_id, log_id, record = item
                yield netpb.NewRecordReply(
                    threadID=thread_id.to_bytes(),
                    logID=peer_id_bytes(log_id),
                    record=_record(record),
                )
        finally:
            feed.close()

    @_unary
    def CreateThread(self, request: Any, context: grpc.ServicerContext) -> netpb.ThreadInfoReply:
        """A thread with no database and this host's log in it (``keys.logKey`` is not used)."""
        self.tokens.identity(context)
        thread_id = _thread_id(request.threadID) if request.threadID else None
        key = _thread_key(request.keys.threadKey) if request.keys.threadKey else None
        info = self.peer.create_thread(thread_id, key)
        return _thread_info(self.peer, ThreadID.from_string(info["id"]))

    @_unary
    @_peer_call
    def AddThread(self, request: Any, context: grpc.ServicerContext) -> netpb.ThreadInfoReply:
        """Keep a thread another peer serves at ``addr``; pulls its logs and records."""
        self.tokens.identity(context)
        addr = addr_from_bytes(bytes(request.addr))
        info = self.peer.add_thread(addr, _thread_key(request.keys.threadKey))
        return _thread_info(self.peer, ThreadID.from_string(info["id"]))

    @_unary
    def DeleteThread(self, request: Any, context: grpc.ServicerContext) -> netpb.DeleteThreadReply:
        """Delete a thread (and its database, if it has one)."""
        self.tokens.identity(context)
        self.peer.delete_thread(_thread_id(request.threadID))
        return netpb.DeleteThreadReply()

    @_unary
    @_peer_call
    def AddReplicator(
        self, request: Any, context: grpc.ServicerContext
    ) -> netpb.AddReplicatorReply:
        """Have the peer at ``addr`` keep the thread's records (service key only)."""
        self.tokens.identity(context)
        db = self.peer.get_db(_thread_id(request.threadID))
        peer_id = self.peer.add_replicator(db, addr_from_bytes(bytes(request.addr)))
        return netpb.AddReplicatorReply(peerID=peer_id_bytes(peer_id))

    @_unary
    def CreateRecord(self, request: Any, context: grpc.ServicerContext) -> netpb.NewRecordReply:
        """Append ``body`` (a DAG-CBOR node) to this host's log of a thread without a database."""
        self.tokens.identity(context)
        thread_id = _thread_id(request.threadID)
        record = self.peer.create_record(thread_id, bytes(request.body))
        own = next(log["id"] for log in self.peer.get_thread(thread_id)["logs"] if log["own"])
        return netpb.NewRecordReply(
            threadID=thread_id.to_bytes(), logID=peer_id_bytes(own), record=_record(record)
        )

    @_unary
    def AddRecord(self, request: Any, context: grpc.ServicerContext) -> netpb.AddRecordReply:
        """Add a record made elsewhere with its log's own keys (checked before it is kept)."""
        from threadkit.core.records import RecordBlocks, open_record
        from threadkit.net.service import _peer_id_str

        self.tokens.identity(context)
        thread_id = _thread_id(request.threadID)
        log_id = _peer_id_str(bytes(request.logID))
        node = request.record
        blocks = RecordBlocks(
            bytes(node.recordNode),
            bytes(node.eventNode),
            bytes(node.headerNode),
            bytes(node.bodyNode),
        )
        key = self.peer.repo.get_thread(thread_id).key
        record = open_record(blocks, service_key=key, log_key=PublicKey.from_peer_id(log_id))
        self.peer.add_record(thread_id, log_id, record)
        return netpb.AddRecordReply()


def _record(record: Any) -> netpb.Record:
    blocks = record.blocks
    return netpb.Record(
        recordNode=blocks.record,
        eventNode=blocks.event,
        headerNode=blocks.header,
        bodyNode=blocks.body,
    )


def _zigzag_varint(value: int) -> bytes:
    """Go's ``binary.PutVarint``."""
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _thread_info(peer: Peer, thread_id: ThreadID) -> netpb.ThreadInfoReply:
    from threadkit.core.addr import addr_to_bytes
    from threadkit.core.cid import cid_from_string

    info = peer.get_thread(thread_id)
    key = peer.repo.get_thread(thread_id).key
    logs = []
    for entry in info["logs"]:
        logs.append(
            netpb.LogInfo(
                ID=peer_id_bytes(entry["id"]),
                pubKey=PublicKey.from_string(entry["public"]).to_bytes(),
                addrs=[addr_to_bytes(a) for a in entry["addrs"]],
                head=cid_from_string(entry["head"]) if entry["head"] else b"",
                counter=_zigzag_varint(int(entry["counter"])),
            )
        )
    return netpb.ThreadInfoReply(
        threadID=thread_id.to_bytes(),
        threadKey=key.to_bytes(),
        logs=logs,
        addrs=[addr_to_bytes(a) for a in info["addrs"]],
    )


class APIServer:
    """A gRPC server serving both APIs over a peer.

    Parameters
    ----------
    peer : Peer
        The peer whose databases are served.
    address : str
        ``host:port`` to listen on (port 0: any free port, see :attr:`port`).
    max_message : int
        Largest message in bytes, both ways.
    limits : APILimits, optional
        The stream budget (:class:`threadkit.api.limits.APILimits`; default its
        defaults). Each open stream holds one of the ``limits.workers`` threads; at most
        ``limits.max_streams`` do, so ``limits.unary_workers`` are always left for unary
        calls.

    Attributes
    ----------
    proxy_secret : str
        A random secret for the daemon's own proxy: calls carrying it are counted under
        the client address the proxy names.
    """

    def __init__(
        self,
        peer: Peer,
        address: str = "127.0.0.1:6006",
        max_message: int = DEFAULT_MAX_MESSAGE,
        limits: APILimits | None = None,
    ) -> None:
        import secrets

        self.peer = peer
        self.address = address
        self.limits = limits = limits or APILimits()
        self.proxy_secret = secrets.token_hex(16)
        self.guard = guard = StreamGuard(limits, self.proxy_secret)
        tokens = _Tokens(peer)
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="tk-api"),
            options=[
                ("grpc.max_receive_message_length", max_message),
                ("grpc.max_send_message_length", max_message),
                ("grpc.so_reuseport", 0),
                ("grpc.server_handshake_timeout_ms", int(limits.header_timeout * 1000)),
            ],
        )
        add_db: Any = pb_grpc.add_APIServicer_to_server
        add_net: Any = netpb_grpc.add_APIServicer_to_server
        add_db(DBService(peer, tokens, guard), self._server)
        add_net(NetService(peer, tokens, guard), self._server)
        self.port = 0

    def start(self) -> None:
        """Bind and start serving; raises NetworkError when the address cannot be bound."""
        try:
            self.port = self._server.add_insecure_port(self.address)
        except RuntimeError as exc:
            raise errors.NetworkError(f"cannot listen on {self.address}: {exc}") from None
        if self.port == 0:
            raise errors.NetworkError(f"cannot listen on {self.address}")
        self._server.start()

    def stop(self, grace: float | None = 1.0) -> None:
        """Stop serving; open streams are cancelled after ``grace`` seconds."""
        self._server.stop(grace).wait()
        self.guard.stop()
