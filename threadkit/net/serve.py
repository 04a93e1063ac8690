"""Serving ``/threadkit/1.1.0`` and ``/threadkit/1.0.0``: answering inbound requests.

``/threadkit/1.1.0`` streams carry request after request, one at a time, until the
caller closes them or they stay idle too long; ``/threadkit/1.0.0`` streams carry one
request each (peers that know only that version). The messages are the same.

Each request is decoded and checked (:func:`threadkit.net.protocol.decode_request`), its
``auth`` checked against this peer's own id and the thread's service key, and answered;
a refusal goes back as an error reply with a machine-readable code and changes nothing.
Records pushed to this peer go through :class:`~threadkit.net.receive.Receiver`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from threadkit.core.keys import ThreadKey
from threadkit.errors import (
    InvalidInput,
    NetworkError,
    NotFound,
    ProtocolError,
    StoreError,
    TooManyLogs,
)
from threadkit.net import protocol as p
from threadkit.net.bootstrap import blocks_reply, snapshot_reply
from threadkit.net.client import close_stream, reset_stream
from threadkit.net.context import ServiceContext, peer_id_str, thread_id_from
from threadkit.net.receive import Receiver

if TYPE_CHECKING:
    from threadkit.core.ids import ThreadID

__all__ = ["Server"]

log = logging.getLogger("threadkit.net")


class Server:
    """Answers inbound requests.

    Parameters
    ----------
    ctx : ServiceContext
        The service's shared state.
    receiver : Receiver
        Checks and applies pushed records.
    pull_later : callable
        ``pull_later(peer_id, thread_id)`` starts a background pull from a peer (after it
        told of a log).
    accept_replication : bool or frozenset of str
        Who may make this peer a replicator (a ``push_log`` carrying a service key): True
        any peer, False none, a set of peer ids only those peers.
    idle_timeout : float
        Seconds a ``/threadkit/1.1.0`` stream may wait for its next request before this
        peer closes it.
    """

    def __init__(
        self,
        ctx: ServiceContext,
        receiver: Receiver,
        pull_later: Callable[[str, ThreadID], None],
        *,
        accept_replication: bool | frozenset[str],
        idle_timeout: float,
    ) -> None:
        self.ctx = ctx
        self.receiver = receiver
        self.pull_later = pull_later
        self.accept_replication = accept_replication
        self.idle_timeout = idle_timeout

    async def handle(self, stream: Any, remote: str) -> None:
        """The ``/threadkit/1.0.0`` handler: read one request, write one reply, close.

        A stream that brings no request within ``idle_timeout`` seconds is closed.
        """
        await self._answer(stream, remote, once=True)

    async def handle_persistent(self, stream: Any, remote: str) -> None:
        """The ``/threadkit/1.1.0`` handler: requests and replies, one at a time, until the end.

        The stream ends when the caller closes it, when no request comes for
        ``idle_timeout`` seconds (so that an idle connection can be trimmed), or at a
        framing error (an oversized, truncated or malformed frame: the rest of the stream
        cannot be read), which gets no reply, as on ``/threadkit/1.0.0``. A refused
        request gets its error reply and the stream stays open.
        """
        await self._answer(stream, remote, once=False)

    async def _answer(self, stream: Any, remote: str, *, once: bool) -> None:
        """Reply to the stream's requests (only the first when ``once``), then close it."""
        import trio

        from threadkit.net.framing import FrameReader, write_frame

        self.ctx.reach.succeeded(remote)  # it reached us: dial it again when needed
        reader = FrameReader(stream, budget=self.ctx.frames, peer=remote)
        failed = False
        try:
            while True:
                data = None
                with trio.move_on_after(self.idle_timeout) as idle:
                    data = await reader.read_frame(p.MAX_FRAME)
                if idle.cancelled_caught:
                    log.debug("closing an idle stream from %s", remote)
                    return
                if data is None:
                    return
                await write_frame(stream, await self.reply(data, remote))
                if once:
                    return
        except (NetworkError, OSError) as exc:
            log.info("stream from %s failed: %s", remote, exc)
            failed = True
        finally:
            # a failed stream is reset: what its sender still sends is then dropped, not kept
            await (reset_stream(stream) if failed else close_stream(stream))

    async def reply(self, data: bytes, remote: str) -> bytes:
        """The encoded reply to one request frame: an answer or an error reply."""
        try:
            request = p.decode_request(data)
            return await self.serve(request, remote)
        except ProtocolError as exc:
            log.info("refused a request from %s: %s", remote, exc)
            return p.error_reply(exc.code, str(exc))
        except NotFound as exc:
            return p.error_reply("not_found", str(exc))
        except TooManyLogs as exc:
            log.info("refused a log from %s: %s", remote, exc)
            return p.error_reply("too_many_logs", str(exc))
        except InvalidInput as exc:
            log.info("refused a malformed request from %s: %s", remote, exc)
            return p.error_reply("malformed", str(exc))
        except StoreError as exc:
            # this peer's repo failed (a full disk): nothing of the request was kept
            log.warning("could not serve a request from %s: %s", remote, exc)
            return p.error_reply("store", str(exc))

    async def serve(self, request: dict[str, Any], remote: str) -> bytes:
        """The encoded reply to a decoded request from ``remote``.

        Raises
        ------
        ProtocolError
            The request is refused (its ``code`` goes back to the caller).
        NotFound
            Something it names is not here.
        """
        ctx = self.ctx
        kind = request["t"]
        if kind == "exchange_edges":
            return self._serve_edges(request)
        thread_id = thread_id_from(request["thread"])
        tid = thread_id.to_bytes()
        if kind == "push_log" and "skey" in request:
            return self._serve_replication(thread_id, request, remote)
        key = ctx.known_key(thread_id)
        if not p.check_auth(request.get("auth"), key.service, tid, ctx.me):
            raise ProtocolError("not authorised for this thread", code="auth")
        if kind == "get_logs":
            # a peer holding the read key lets a joiner check its own (docs/protocol.md)
            check = {} if key.read is None else {"rcheck": p.read_key_check(key.read, tid)}
            return p.ok_reply(logs=ctx.log_entries(thread_id), name=ctx.db_name(thread_id), **check)
        if kind == "push_log":
            entry: p.LogEntry = request["log"]
            ctx.merge_log(thread_id, entry)
            self.pull_later(remote, thread_id)
            return p.ok_reply()
        if kind == "get_records":
            return p.ok_reply(logs=self._records_for(thread_id, request["logs"]))
        if kind == "get_snapshot":
            return p.ok_reply(**snapshot_reply(ctx, thread_id))
        if kind == "get_blocks":
            return p.ok_reply(blocks=blocks_reply(ctx, thread_id, request["cids"]))
        # push_records
        log_id = peer_id_str(request["log"])
        try:
            ctx.repo.get_log(thread_id, log_id)
        except NotFound:
            raise ProtocolError(f"unknown log {log_id}", code="unknown_log") from None
        await self.receiver.receive(remote, thread_id, log_id, request["records"])
        head = ctx.repo.get_head(thread_id, log_id).counter
        return p.ok_reply(head=head)

    def _serve_replication(
        self, thread_id: ThreadID, request: dict[str, Any], remote: str
    ) -> bytes:
        ctx = self.ctx
        service = request.get("skey")
        allowed = self.accept_replication
        if allowed is False or (allowed is not True and remote not in allowed):
            log.info("refused to replicate thread %s for %s", thread_id, remote)
            raise ProtocolError(
                f"this peer does not replicate threads for {remote}", code="refused"
            )
        if not isinstance(service, bytes) or len(service) != 32:
            raise ProtocolError("skey must be a 32-byte service key", code="malformed")
        if not ctx.repo.has_thread(thread_id):
            ctx.repo.add_thread(thread_id, ThreadKey.from_bytes(service))
        elif ctx.known_key(thread_id).service != service:
            raise ProtocolError("not authorised for this thread", code="auth")
        ctx.merge_log(thread_id, request["log"])
        self.pull_later(remote, thread_id)
        return p.ok_reply()

    def _serve_edges(self, request: dict[str, Any]) -> bytes:
        # only threads the caller proves it holds the key of: edges reveal membership
        ctx = self.ctx
        edges = []
        for tid_bytes, auth, _addrs, _heads in request["threads"]:
            thread_id = thread_id_from(tid_bytes)
            if not ctx.repo.has_thread(thread_id):
                continue
            if not p.check_auth(auth, ctx.key(thread_id).service, tid_bytes, ctx.me):
                continue
            addrs, heads = ctx.edges(thread_id)
            edges.append({"thread": tid_bytes, "addrs": addrs, "heads": heads})
        return p.ok_reply(edges=edges)

    def _records_for(
        self, thread_id: ThreadID, wanted: list[tuple[bytes, int, int]]
    ) -> list[dict[str, Any]]:
        out = []
        budget = p.MAX_REPLY_BYTES
        repo = self.ctx.repo
        for log_bytes, after, limit in wanted:
            log_id = peer_id_str(log_bytes)
            try:
                head = repo.get_head(thread_id, log_id).counter
            except NotFound:
                continue
            records: list[list[bytes]] = []
            if head > after and budget > 0:
                for stored in repo.read_log(thread_id, log_id, after=after, limit=limit):
                    size = stored.blocks.total_size()
                    if records and size > budget:
                        break
                    budget -= size
                    records.append(p.blocks_to_node(stored.blocks))
            out.append({"id": log_bytes, "counter": head, "records": records})
        return out
