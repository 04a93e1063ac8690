"""``threads.pb.API`` (ThreadDB's DB API) over a peer: :class:`DBService`."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import grpc

from threadkit import errors
from threadkit.api._servicing import (
    Tokens,
    dump_doc,
    dump_docs,
    load_docs,
    load_query,
    peer_call,
    status_error,
    streaming,
    txn_error,
    unary,
    wire_thread_id,
)
from threadkit.api.limits import StreamGuard
from threadkit.api.proto import threads_pb2 as pb
from threadkit.api.proto import threads_pb2_grpc as pb_grpc
from threadkit.api.wire import LISTENING_KEY
from threadkit.core.addr import addr_from_bytes, addr_to_bytes
from threadkit.core.keys import ThreadKey
from threadkit.db.events import Action
from threadkit.db.gate import Attested
from threadkit.db.listen import Event as ListenEvent
from threadkit.db.membership import start_members
from threadkit.db.readaccess import read_refusal

if TYPE_CHECKING:
    from threadkit.core.identity import PublicKey
    from threadkit.db.collection import Collection
    from threadkit.db.database import Database
    from threadkit.peer import Peer

__all__ = ["HALF_CLOSE_GRACE", "DBService", "db_info"]

log = logging.getLogger("threadkit.api")


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
        schema=dump_doc(info["schema"]),
        indexes=[pb.Index(path=i["path"], unique=i["unique"]) for i in info["indexes"]],
        writeValidator=info["write_validator"] or "",
        readFilter=info["read_filter"] or "",
    )


def db_info(db: Database) -> pb.GetDBInfoReply:
    """GetDBInfo's reply for a database: its addresses (binary), key and name."""
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


class DBService(pb_grpc.APIServicer):
    """``threads.pb.API`` over a peer."""

    def __init__(
        self, peer: Peer, tokens: Tokens, guard: StreamGuard, *, members_only: bool = False
    ) -> None:
        self.peer = peer
        self.tokens = tokens
        self.guard = guard
        self.members_only = members_only
        """NewDB makes databases with members (not open): the daemon's ``membersOnly``."""

    def _db(self, raw: bytes) -> Database:
        return self.peer.get_db(wire_thread_id(raw))

    def _coll(self, raw: bytes, name: str) -> Collection:
        return self._db(raw).get_collection(name)

    def _read_coll(self, raw: bytes, name: str, who: PublicKey) -> Collection:
        """The collection, once ``who`` may read its database (PermissionDenied if not)."""
        coll = self._coll(raw, name)
        _may_read(coll.db, who)
        return coll

    def _new_collections(self, db: Database, configs: Any, who: Attested) -> None:
        for config in configs:
            if config.name not in db:
                db.new_collection(config.name, **_config_kwargs(config), identity=who)

    # ----------------------------------------------------------------- tokens

    @streaming
    def GetToken(self, request_iterator: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        """The challenge flow: key → challenge → signature → token."""
        yield from self.tokens.challenge_flow(request_iterator, pb.GetTokenReply)

    # -------------------------------------------------------------- databases

    @unary
    def NewDB(self, request: Any, context: grpc.ServicerContext) -> pb.NewDBReply:
        """Create a database with the given id (and key, name, collections), owned by the
        caller: its genesis is attested for the token's identity (docs/access.md)."""
        who = Attested(self.tokens.identity(context))
        thread_id = wire_thread_id(request.dbID)
        if any(db.id == thread_id for db in self.peer.list_dbs()):
            raise errors.ThreadExists(f"database {thread_id} exists")
        key = ThreadKey.from_bytes(request.key) if request.key else None
        db = self.peer.new_db(request.name or None, thread_id, key)
        start_members(db, open=not self.members_only, owner=who)
        self._new_collections(db, request.collections, who)
        return pb.NewDBReply()

    @unary
    @peer_call
    def NewDBFromAddr(self, request: Any, context: grpc.ServicerContext) -> pb.NewDBReply:
        """Join a database another peer serves, from its address and key."""

        who = Attested(self.tokens.identity(context))
        addr = addr_from_bytes(request.addr)
        key = ThreadKey.from_bytes(request.key or request.threadKey)
        db = self.peer.new_db_from_addr(addr, key, request.name or None)
        self._new_collections(db, request.collections, who)
        return pb.NewDBReply()

    @unary
    def ListDBs(self, request: Any, context: grpc.ServicerContext) -> pb.ListDBsReply:
        """Every database with its info."""
        self.tokens.identity(context)
        return pb.ListDBsReply(
            dbs=[
                pb.ListDBsReply.DB(dbID=db.id.to_bytes(), info=db_info(db))
                for db in self.peer.list_dbs()
            ]
        )

    @unary
    def GetDBInfo(self, request: Any, context: grpc.ServicerContext) -> pb.GetDBInfoReply:
        """A database's name, addresses and key."""
        self.tokens.identity(context)
        return db_info(self._db(request.dbID))

    @unary
    def DeleteDB(self, request: Any, context: grpc.ServicerContext) -> pb.DeleteDBReply:
        """Delete a database."""
        self.tokens.identity(context)
        self.peer.delete_db(wire_thread_id(request.dbID))
        return pb.DeleteDBReply()

    # ------------------------------------------------------------ collections

    @unary
    def NewCollection(self, request: Any, context: grpc.ServicerContext) -> pb.NewCollectionReply:
        """Create a collection."""
        who = Attested(self.tokens.identity(context))
        db = self._db(request.dbID)
        db.new_collection(request.config.name, **_config_kwargs(request.config), identity=who)
        return pb.NewCollectionReply()

    @unary
    def UpdateCollection(
        self, request: Any, context: grpc.ServicerContext
    ) -> pb.UpdateCollectionReply:
        """Replace a collection's config."""
        who = Attested(self.tokens.identity(context))
        db = self._db(request.dbID)
        db.update_collection(request.config.name, **_config_kwargs(request.config), identity=who)
        return pb.UpdateCollectionReply()

    @unary
    def DeleteCollection(
        self, request: Any, context: grpc.ServicerContext
    ) -> pb.DeleteCollectionReply:
        """Delete a collection."""
        who = Attested(self.tokens.identity(context))
        self._db(request.dbID).delete_collection(request.name, identity=who)
        return pb.DeleteCollectionReply()

    @unary
    def GetCollectionInfo(
        self, request: Any, context: grpc.ServicerContext
    ) -> pb.GetCollectionInfoReply:
        """A collection's config."""
        self.tokens.identity(context)
        return _collection_info(self._db(request.dbID).collection_info(request.name))

    @unary
    def GetCollectionIndexes(
        self, request: Any, context: grpc.ServicerContext
    ) -> pb.GetCollectionIndexesReply:
        """A collection's indexes (deprecated in ThreadDB; kept for old clients)."""
        self.tokens.identity(context)
        info = self._db(request.dbID).collection_info(request.name)
        return pb.GetCollectionIndexesReply(
            indexes=[pb.Index(path=i["path"], unique=i["unique"]) for i in info["indexes"]]
        )

    @unary
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

    @unary
    def Create(self, request: Any, context: grpc.ServicerContext) -> pb.CreateReply:
        """Create instances in one transaction."""
        who = self.tokens.identity(context)
        coll = self._coll(request.dbID, request.collectionName)
        ids = coll.create(load_docs(request.instances), identity=Attested(who))
        return pb.CreateReply(instanceIDs=ids)

    @unary
    def Save(self, request: Any, context: grpc.ServicerContext) -> pb.SaveReply:
        """Save (upsert) instances in one transaction."""
        who = self.tokens.identity(context)
        coll = self._coll(request.dbID, request.collectionName)
        coll.save(load_docs(request.instances), identity=Attested(who))
        return pb.SaveReply()

    @unary
    def Delete(self, request: Any, context: grpc.ServicerContext) -> pb.DeleteReply:
        """Delete instances in one transaction."""
        who = self.tokens.identity(context)
        coll = self._coll(request.dbID, request.collectionName)
        coll.delete(*request.instanceIDs, identity=Attested(who))
        return pb.DeleteReply()

    @unary
    def Verify(self, request: Any, context: grpc.ServicerContext) -> pb.VerifyReply:
        """Check instances against the schema and validator without writing."""
        who = self.tokens.identity(context)
        coll = self._read_coll(request.dbID, request.collectionName, who)
        coll.verify(load_docs(request.instances), identity=Attested(who))
        return pb.VerifyReply()

    @unary
    def Has(self, request: Any, context: grpc.ServicerContext) -> pb.HasReply:
        """Whether every given instance exists."""
        who = self.tokens.identity(context)
        coll = self._read_coll(request.dbID, request.collectionName, who)
        return pb.HasReply(exists=coll.has(*request.instanceIDs, identity=Attested(who)))

    @unary
    def Find(self, request: Any, context: grpc.ServicerContext) -> pb.FindReply:
        """Instances matching a ThreadDB query JSON."""
        who = self.tokens.identity(context)
        coll = self._read_coll(request.dbID, request.collectionName, who)
        docs = coll.find(load_query(request.queryJSON), identity=Attested(who))
        return pb.FindReply(instances=dump_docs(docs))

    @unary
    def FindByID(self, request: Any, context: grpc.ServicerContext) -> pb.FindByIDReply:
        """One instance by id."""
        who = self.tokens.identity(context)
        coll = self._read_coll(request.dbID, request.collectionName, who)
        return pb.FindByIDReply(
            instance=dump_doc(coll.find_by_id(request.instanceID, identity=Attested(who)))
        )

    # ----------------------------------------------------------- transactions

    def _start(self, request_iterator: Any, context: grpc.ServicerContext) -> Collection:
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("option") != "startTransactionRequest":
            raise status_error(
                grpc.StatusCode.INVALID_ARGUMENT, "first message must be startTransactionRequest"
            )
        start = first.startTransactionRequest
        return self._coll(start.dbID, start.collectionName)

    @streaming
    def ReadTransaction(
        self, request_iterator: Any, context: grpc.ServicerContext
    ) -> Iterator[pb.ReadTransactionReply]:
        """A read transaction over one snapshot: one reply per request."""
        who = self.tokens.identity(context)
        coll = self._start(request_iterator, context)
        _may_read(coll.db, who)
        with coll.read_txn(Attested(who)) as txn:
            for request in request_iterator:
                yield _read_step(txn, request)

    @streaming
    def WriteTransaction(
        self, request_iterator: Any, context: grpc.ServicerContext
    ) -> Iterator[pb.WriteTransactionReply]:
        """A write transaction: one reply per request, commit on the client's half-close.

        A client that goes away before half-closing loses the whole transaction.
        """
        who = self.tokens.identity(context)
        coll = self._start(request_iterator, context)
        _may_read(coll.db, who)  # a write transaction reads too
        txn = coll.write_txn(Attested(who))
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

    @streaming
    def Listen(self, request: Any, context: grpc.ServicerContext) -> Iterator[pb.ListenReply]:
        """Changes to a database, until the client goes away."""
        who = self.tokens.identity(context)
        db = self._db(request.dbID)
        _may_read(db, who)
        filters = list(request.filters)
        feed = db.listen()
        context.add_callback(feed.close)
        context.send_initial_metadata(((LISTENING_KEY, "1"),))
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
                        document = coll.visible(document, str(who))
                        if document is None:
                            continue
                try:
                    instance = dump_doc(document) if document is not None else b""
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


def _may_read(db: Database, who: PublicKey) -> None:
    """PermissionDenied unless the caller may read ``db`` (a role, or an open database):
    the daemon holds the read key, so it must not read for a caller without one."""
    reason = read_refusal(db, str(who))
    if reason:
        raise errors.PermissionDenied(reason)


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
            return pb.ReadTransactionReply(hasReply=pb.HasReply(transactionError=txn_error(exc)))
    if kind == "findRequest":
        try:
            docs = txn.find(load_query(request.findRequest.queryJSON))
            return pb.ReadTransactionReply(findReply=pb.FindReply(instances=dump_docs(docs)))
        except Exception as exc:
            return pb.ReadTransactionReply(findReply=pb.FindReply(transactionError=txn_error(exc)))
    if kind == "findByIDRequest":
        try:
            doc = txn.find_by_id(request.findByIDRequest.instanceID)
            return pb.ReadTransactionReply(findByIDReply=pb.FindByIDReply(instance=dump_doc(doc)))
        except Exception as exc:
            return pb.ReadTransactionReply(
                findByIDReply=pb.FindByIDReply(transactionError=txn_error(exc))
            )
    raise status_error(
        grpc.StatusCode.INVALID_ARGUMENT, f"unexpected request in a read transaction: {kind}"
    )


def _write_step(txn: Any, request: Any) -> pb.WriteTransactionReply:
    kind = request.WhichOneof("option")
    R = pb.WriteTransactionReply
    try:
        if kind == "createRequest":
            ids = txn.create(load_docs(request.createRequest.instances))
            return R(createReply=pb.CreateReply(instanceIDs=ids))
        if kind == "saveRequest":
            txn.save(load_docs(request.saveRequest.instances))
            return R(saveReply=pb.SaveReply())
        if kind == "deleteRequest":
            txn.delete(*request.deleteRequest.instanceIDs)
            return R(deleteReply=pb.DeleteReply())
        if kind == "hasRequest":
            return R(hasReply=pb.HasReply(exists=txn.has(*request.hasRequest.instanceIDs)))
        if kind == "findRequest":
            docs = txn.find(load_query(request.findRequest.queryJSON))
            return R(findReply=pb.FindReply(instances=dump_docs(docs)))
        if kind == "findByIDRequest":
            doc = txn.find_by_id(request.findByIDRequest.instanceID)
            return R(findByIDReply=pb.FindByIDReply(instance=dump_doc(doc)))
        if kind == "verifyRequest":
            txn.verify(load_docs(request.verifyRequest.instances))
            return R(verifyReply=pb.VerifyReply())
        if kind == "discardRequest":
            txn.discard()
            return R(discardReply=pb.DiscardReply())
    except Exception as exc:
        message = txn_error(exc)
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
    raise status_error(
        grpc.StatusCode.INVALID_ARGUMENT, f"unexpected request in a write transaction: {kind}"
    )
