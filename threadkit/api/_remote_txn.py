"""Transactions on a daemon: :class:`RemoteReadTxn` and :class:`RemoteWriteTxn` over one
ReadTransaction/WriteTransaction stream each."""

from __future__ import annotations

import contextlib
import json
import queue
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Self

import grpc

from threadkit import errors
from threadkit.api._requests import check, doc_list, dump_doc, id_list, query_json
from threadkit.api.proto import threads_pb2 as pb
from threadkit.api.wire import error_from_status

if TYPE_CHECKING:
    from threadkit.api._remote_collection import RemoteCollection
    from threadkit.db.query import Query

__all__ = ["RemoteReadTxn", "RemoteWriteTxn", "TxnStream"]


class TxnStream:
    """One bidi transaction stream: send a request, wait for its reply."""

    def __init__(
        self, coll: RemoteCollection, method: str, start: Any, metadata: list[tuple[str, str]]
    ) -> None:
        self._requests: queue.Queue[Any] = queue.Queue()
        self._requests.put(start)
        client = coll.db.client

        def outgoing() -> Iterator[Any]:
            while (item := self._requests.get()) is not None:
                yield item

        try:
            self._call = getattr(client.api, method)(outgoing(), metadata=metadata)
        except grpc.RpcError as exc:
            raise error_from_status(exc) from None
        self._replies = iter(self._call)
        self.closed = False

    def ask(self, request: Any) -> Any:
        """Send one request and wait for its reply (TransactionClosed once the stream ended)."""
        if self.closed:
            raise errors.TransactionClosed("this transaction is closed")
        self._requests.put(request)
        try:
            return next(self._replies)
        except grpc.RpcError as exc:
            self.closed = True
            self._requests.put(None)  # release the thread feeding the stream
            raise error_from_status(exc) from None
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
            raise error_from_status(exc) from None

    def cancel(self) -> None:
        """End the stream at once (the daemon discards a write transaction)."""
        self.closed = True
        self._call.cancel()
        self._requests.put(None)


class RemoteReadTxn:
    """A read transaction on a daemon; use as a context manager.

    Parameters
    ----------
    coll : RemoteCollection
        The collection.
    identity : Identity, PublicKey or str, optional
        Who the transaction acts as (:meth:`threadkit.api.client.Client.metadata`).
    """

    _kind = "read"
    _method = "ReadTransaction"
    _request: Any = pb.ReadTransactionRequest

    def __init__(self, coll: RemoteCollection, identity: Any = None) -> None:
        self.collection = coll
        self._metadata = coll.db.client.metadata(identity)  # a refused identity: before any call
        self._stream: TxnStream | None = None

    def __enter__(self) -> Self:
        start = pb.StartTransactionRequest(
            dbID=self.collection._raw, collectionName=self.collection.name
        )
        self._stream = TxnStream(
            self.collection,
            self._method,
            self._request(startTransactionRequest=start),
            self._metadata,
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
                dbID=c._raw, collectionName=c.name, instanceIDs=id_list(instance_ids)
            )
        )
        return bool(check(reply.hasReply).exists)

    def find(self, query: Query | None = None) -> list[dict[str, Any]]:
        """Documents matching ``query``."""
        c = self.collection
        reply = self._ask(
            findRequest=pb.FindRequest(
                dbID=c._raw, collectionName=c.name, queryJSON=query_json(query)
            )
        )
        return [json.loads(raw) for raw in check(reply.findReply).instances]

    def find_by_id(self, instance_id: str) -> dict[str, Any]:
        """One document."""
        c = self.collection
        reply = self._ask(
            findByIDRequest=pb.FindByIDRequest(
                dbID=c._raw, collectionName=c.name, instanceID=instance_id
            )
        )
        doc: dict[str, Any] = json.loads(check(reply.findByIDReply).instance)
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
                dbID=c._raw, collectionName=c.name, instances=[dump_doc(d) for d in doc_list(docs)]
            )
        )
        return list(check(reply.createReply).instanceIDs)

    def save(self, *docs: Any) -> None:
        """Queue saves of whole documents."""
        c = self.collection
        reply = self._ask(
            saveRequest=pb.SaveRequest(
                dbID=c._raw, collectionName=c.name, instances=[dump_doc(d) for d in doc_list(docs)]
            )
        )
        check(reply.saveReply)

    def delete(self, *instance_ids: str) -> None:
        """Queue deletes."""
        c = self.collection
        reply = self._ask(
            deleteRequest=pb.DeleteRequest(
                dbID=c._raw, collectionName=c.name, instanceIDs=id_list(instance_ids)
            )
        )
        check(reply.deleteReply)

    def verify(self, *docs: Any) -> None:
        """Check documents without writing."""
        c = self.collection
        reply = self._ask(
            verifyRequest=pb.VerifyRequest(
                dbID=c._raw, collectionName=c.name, instances=[dump_doc(d) for d in doc_list(docs)]
            )
        )
        check(reply.verifyReply)

    def discard(self) -> None:
        """Drop every pending write and end the transaction."""
        if self._stream is None or self._stream.closed:
            return
        with contextlib.suppress(errors.ThreadkitError):
            self._ask(discardRequest=pb.DiscardRequest())
        with contextlib.suppress(errors.ThreadkitError):
            self._stream.finish()
