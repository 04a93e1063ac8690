"""Pubsub subscriptions of a :class:`~threadkit.net.node.Node`: one draining task per topic.

py-libp2p's subscription queue holds 32 messages and drops beyond that, silently; each topic
is drained by its own task into a buffer of :data:`SUBSCRIPTION_BUFFER` messages, and a
second task delivers them to the topic's callbacks.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from threadkit.net._loop import Runtime

__all__ = [
    "SUBSCRIPTION_BUFFER",
    "SubscriptionCallback",
    "Topic",
    "run_topic",
    "topic_peers",
    "topic_peers_async",
]

log = logging.getLogger("threadkit.net.node")

SubscriptionCallback = Callable[[bytes, str], Awaitable[None] | None]
"""A pubsub callback: ``callback(data, from_peer_id)``, sync or async, run on the node's loop."""

SUBSCRIPTION_BUFFER = 10_000
"""Messages held per topic while its callbacks are busy; beyond that they are dropped (logged)."""


class Topic:
    """One subscribed topic: its callbacks and the scope of its two tasks."""

    def __init__(self, scope: Any, send: Any) -> None:
        self.callbacks: list[SubscriptionCallback] = []
        self.scope = scope
        self.send = send
        self.dropped = 0


async def run_topic(rt: Runtime, entry: Topic, topic: str, subscription: Any, receive: Any) -> None:
    """One topic's two tasks: drain py-libp2p's queue, deliver to the callbacks."""
    import trio

    try:
        with entry.scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(drain_subscription, entry, topic, subscription)
                nursery.start_soon(deliver, entry, topic, receive)
    except Exception as exc:  # never let a subscription take the node's loop down
        level = logging.DEBUG if rt.stopping else logging.ERROR
        log.log(level, "subscription to %s failed", topic, exc_info=exc)
    finally:
        if rt.topics.get(topic) is entry:
            del rt.topics[topic]


async def drain_subscription(entry: Topic, topic: str, subscription: Any) -> None:
    import trio
    from libp2p.peer.id import ID

    async for message in subscription:
        item = (bytes(message.data), ID(message.from_id).to_base58())
        try:
            entry.send.send_nowait(item)
        except trio.WouldBlock:
            entry.dropped += 1
            if entry.dropped == 1 or entry.dropped % 1000 == 0:
                log.warning(
                    "topic %s: callbacks too slow, %d messages dropped", topic, entry.dropped
                )


async def deliver(entry: Topic, topic: str, receive: Any) -> None:
    async for data, sender in receive:
        for callback in list(entry.callbacks):
            try:
                result = callback(data, sender)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                log.error("callback for topic %s failed", topic, exc_info=exc)


def topic_peers(pubsub: Any, topic: str) -> list[str]:
    if pubsub is None:
        return []
    return sorted(str(p) for p in pubsub.peer_topics.get(topic, ()))


async def topic_peers_async(pubsub: Any, topic: str) -> list[str]:
    return topic_peers(pubsub, topic)
