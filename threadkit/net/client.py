"""Outbound requests of ``/threadkit``: one request, one reply (docs/protocol.md).

:class:`Requester` is how every part of the thread service calls a remote peer: it makes
sure there is a connection (dialling the addresses the thread's logs know), sends the
request as one frame on a long-lived stream of its :class:`~threadkit.net.streams.StreamPool`
(``/threadkit/1.1.0``; ``/threadkit/1.0.0``, one request per stream, with peers that know
only that) and returns the decoded reply, or raises the peer's refusal as
:class:`~threadkit.errors.ProtocolError` with the peer's ``code``.
"""

from __future__ import annotations

import contextlib
from typing import Any

from threadkit.core.ids import ThreadID
from threadkit.errors import Timeout
from threadkit.net import protocol as p
from threadkit.net.context import ServiceContext
from threadkit.net.streams import MAX_PER_PEER, StreamPool

__all__ = ["Requester", "close_stream", "reset_stream"]


class Requester:
    """Sends requests to peers on behalf of the service.

    Parameters
    ----------
    ctx : ServiceContext
        The service's shared state (node, repo, timeout).
    idle_timeout : float
        Seconds an unused stream to a peer stays open.
    max_per_peer : int
        Streams open to one peer at most.
    """

    def __init__(
        self, ctx: ServiceContext, *, idle_timeout: float, max_per_peer: int = MAX_PER_PEER
    ) -> None:
        self.ctx = ctx
        self.pool = StreamPool(
            ctx.node,
            p.PROTOCOL_IDS,
            single_protocols=[p.PROTOCOL_ID],
            idle_timeout=idle_timeout,
            max_per_peer=max_per_peer,
            max_frame=p.MAX_FRAME,
            budget=ctx.frames,
        )

    async def request(self, peer_id: str, message: dict[str, Any]) -> dict[str, Any]:
        """Send ``message`` (without ``v``) to ``peer_id``; return its reply.

        A stream that fails under the request is replaced and the request sent once more
        (every call is idempotent).

        Raises
        ------
        ProtocolError
            The peer refused (its ``code``), or closed the stream without replying
            (``code="eof"``), or the reply is malformed.
        NetworkError
            No connection or stream could be made, or the stream broke twice.
        Timeout
            No reply within the context's timeout (the request is abandoned).
        """
        import trio

        ctx = self.ctx
        node = ctx.node
        message = {"v": p.VERSION, **message}
        thread = message.get("thread")

        async def connect() -> None:
            if isinstance(thread, bytes) and peer_id not in node.connected_peers():
                known = ctx.addrs_of(ThreadID.from_bytes(thread), peer_id)
                await ctx.dial(peer_id, known)

        try:
            with trio.fail_after(ctx.timeout):
                data = await self.pool.request(peer_id, p.encode(message), connect=connect)
        except trio.TooSlowError:
            raise Timeout(
                f"{peer_id} did not answer {message.get('t')!r} within {ctx.timeout} s"
            ) from None
        return p.decode_reply(data)


async def close_stream(stream: Any) -> None:
    """Close a stream, ignoring a stream the peer already reset."""
    with contextlib.suppress(Exception):
        await stream.close()


async def reset_stream(stream: Any) -> None:
    """Reset a stream (both directions, at once), ignoring one already gone."""
    with contextlib.suppress(Exception):
        await stream.reset()
