"""``threads.net.pb.API`` (ThreadDB's Net API) over a peer: :class:`NetService`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import grpc

from threadkit import errors
from threadkit.api._servicing import (
    Tokens,
    peer_call,
    streaming,
    unary,
    wire_thread_id,
    wire_thread_key,
)
from threadkit.api.limits import StreamGuard
from threadkit.api.proto import threadsnet_pb2 as netpb
from threadkit.api.proto import threadsnet_pb2_grpc as netpb_grpc
from threadkit.api.wire import LISTENING_KEY
from threadkit.core.addr import addr_from_bytes, addr_to_bytes
from threadkit.core.cid import cid_from_string
from threadkit.core.identity import PublicKey, peer_id_bytes
from threadkit.core.ids import ThreadID
from threadkit.core.records import RecordBlocks, open_record
from threadkit.net.context import peer_id_str

if TYPE_CHECKING:
    from threadkit.peer import Peer

__all__ = ["NetService"]


class NetService(netpb_grpc.APIServicer):
    """``threads.net.pb.API``, as far as the peer supports it."""

    def __init__(self, peer: Peer, tokens: Tokens, guard: StreamGuard) -> None:
        self.peer = peer
        self.tokens = tokens
        self.guard = guard

    @streaming
    def GetToken(self, request_iterator: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        """The challenge flow: key → challenge → signature → token."""
        yield from self.tokens.challenge_flow(request_iterator, netpb.GetTokenReply)

    @unary
    def GetHostID(self, request: Any, context: grpc.ServicerContext) -> netpb.GetHostIDReply:
        """The host's peer id (binary multihash)."""
        self.tokens.identity(context)
        return netpb.GetHostIDReply(peerID=peer_id_bytes(self.peer.id))

    @unary
    def GetThread(self, request: Any, context: grpc.ServicerContext) -> netpb.ThreadInfoReply:
        """A thread's key, logs and addresses."""
        self.tokens.identity(context)
        return _thread_info(self.peer, wire_thread_id(request.threadID))

    @unary
    @peer_call
    def PullThread(self, request: Any, context: grpc.ServicerContext) -> netpb.PullThreadReply:
        """Pull a thread from its peers now."""
        self.tokens.identity(context)
        self.peer.pull(wire_thread_id(request.threadID))
        return netpb.PullThreadReply()

    @unary
    def GetRecord(self, request: Any, context: grpc.ServicerContext) -> netpb.GetRecordReply:
        """A record's four IPLD nodes."""
        self.tokens.identity(context)
        record = self.peer.get_record(wire_thread_id(request.threadID), bytes(request.recordID))
        return netpb.GetRecordReply(record=_record(record))

    @streaming
    def Subscribe(
        self, request: Any, context: grpc.ServicerContext
    ) -> Iterator[netpb.NewRecordReply]:
        """New records of the given threads (all when none given), until the client goes."""
        self.tokens.identity(context)
        ids = [wire_thread_id(raw) for raw in request.threadIDs]
        feed = self.peer.subscribe(ids or None)
        context.add_callback(feed.close)
        context.send_initial_metadata(((LISTENING_KEY, "1"),))
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

    @unary
    def CreateThread(self, request: Any, context: grpc.ServicerContext) -> netpb.ThreadInfoReply:
        """A thread with no database and this host's log in it (``keys.logKey`` is not used)."""
        self.tokens.identity(context)
        thread_id = wire_thread_id(request.threadID) if request.threadID else None
        key = wire_thread_key(request.keys.threadKey) if request.keys.threadKey else None
        info = self.peer.create_thread(thread_id, key)
        return _thread_info(self.peer, ThreadID.from_string(info["id"]))

    @unary
    @peer_call
    def AddThread(self, request: Any, context: grpc.ServicerContext) -> netpb.ThreadInfoReply:
        """Keep a thread another peer serves at ``addr``; pulls its logs and records."""
        self.tokens.identity(context)
        addr = addr_from_bytes(bytes(request.addr))
        info = self.peer.add_thread(addr, wire_thread_key(request.keys.threadKey))
        return _thread_info(self.peer, ThreadID.from_string(info["id"]))

    @unary
    def DeleteThread(self, request: Any, context: grpc.ServicerContext) -> netpb.DeleteThreadReply:
        """Delete a thread (and its database, if it has one)."""
        self.tokens.identity(context)
        self.peer.delete_thread(wire_thread_id(request.threadID))
        return netpb.DeleteThreadReply()

    @unary
    @peer_call
    def AddReplicator(
        self, request: Any, context: grpc.ServicerContext
    ) -> netpb.AddReplicatorReply:
        """Have the peer at ``addr`` keep the thread's records (service key only)."""
        self.tokens.identity(context)
        db = self.peer.get_db(wire_thread_id(request.threadID))
        peer_id = self.peer.add_replicator(db, addr_from_bytes(bytes(request.addr)))
        return netpb.AddReplicatorReply(peerID=peer_id_bytes(peer_id))

    @unary
    def CreateRecord(self, request: Any, context: grpc.ServicerContext) -> netpb.NewRecordReply:
        """Append ``body`` (a DAG-CBOR node) to this host's log of a thread without a database."""
        self.tokens.identity(context)
        thread_id = wire_thread_id(request.threadID)
        record = self.peer.create_record(thread_id, bytes(request.body))
        own = next(log["id"] for log in self.peer.get_thread(thread_id)["logs"] if log["own"])
        return netpb.NewRecordReply(
            threadID=thread_id.to_bytes(), logID=peer_id_bytes(own), record=_record(record)
        )

    @unary
    def AddRecord(self, request: Any, context: grpc.ServicerContext) -> netpb.AddRecordReply:
        """Add a record made elsewhere with its log's own keys (checked before it is kept)."""

        self.tokens.identity(context)
        thread_id = wire_thread_id(request.threadID)
        log_id = peer_id_str(bytes(request.logID))
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
