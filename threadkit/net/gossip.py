"""GossipSub: records published on each thread's topic, where pubsub is enabled.

Gossip is best-effort on top of direct pushes (py-libp2p's queues drop under load):
the periodic pull repairs whatever it misses. A gossiped ``push_records`` carries an
``auth`` made for the receiver ``b"gossip"`` (every subscriber checks the same proof)
and goes through the same checks as a direct push.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from threadkit.core.identity import peer_id_bytes
from threadkit.errors import ProtocolError, ThreadkitError
from threadkit.net import protocol as p
from threadkit.net.context import ServiceContext, peer_id_str, thread_id_from
from threadkit.net.receive import Receiver

if TYPE_CHECKING:
    from threadkit.core.ids import ThreadID
    from threadkit.core.records import Record

__all__ = ["GOSSIP_RECEIVER", "Gossip", "topic"]

log = logging.getLogger("threadkit.net")

GOSSIP_RECEIVER = b"gossip"
"""What a gossiped message's ``auth`` is bound to instead of a receiver's peer id."""


def topic(thread_id: ThreadID) -> str:
    """The GossipSub topic of a thread."""
    return f"/threadkit/thread/{thread_id}"


class Gossip:
    """Publishes local records on their thread's topic and receives others' records.

    Parameters
    ----------
    ctx : ServiceContext
        The service's shared state.
    receiver : Receiver
        Checks and applies the records received.
    """

    def __init__(self, ctx: ServiceContext, receiver: Receiver) -> None:
        self.ctx = ctx
        self.receiver = receiver
        self._topics: set[ThreadID] = set()

    async def publish(self, thread_id: ThreadID, log_id: str, records: list[Record]) -> None:
        """Publish records of a log on the thread's topic."""
        key = self.ctx.key(thread_id)
        message = {
            "v": p.VERSION,
            "t": "push_records",
            "thread": thread_id.to_bytes(),
            "auth": p.auth_token(key.service, thread_id.to_bytes(), GOSSIP_RECEIVER),
            "log": peer_id_bytes(log_id),
            "records": [p.blocks_to_node(r.blocks) for r in records],
        }
        await self.ctx.node.publish(topic(thread_id), p.encode(message))

    async def subscribe(self, thread_id: ThreadID) -> None:
        """Receive the thread's topic (once per thread)."""
        ctx = self.ctx
        if not ctx.node.pubsub_enabled or thread_id in self._topics:
            return
        self._topics.add(thread_id)

        async def on_message(data: bytes, sender: str) -> None:
            if sender == ctx.node.peer_id:
                return
            try:
                request = p.decode_request(data)
                tid = thread_id_from(request["thread"])
                key = ctx.known_key(tid)
                if not p.check_auth(
                    request.get("auth"), key.service, tid.to_bytes(), GOSSIP_RECEIVER
                ):
                    raise ProtocolError("not authorised for this thread", code="auth")
                if request["t"] != "push_records":
                    raise ProtocolError("only pushes travel by gossip", code="malformed")
                log_id = peer_id_str(request["log"])
                ctx.repo.get_log(tid, log_id)
                await self.receiver.receive(sender, tid, log_id, request["records"])
            except (ThreadkitError, OSError) as exc:
                log.info("ignored a gossip message from %s: %s", sender, exc)

        await ctx.node.subscribe(topic(thread_id), on_message)
