"""Building the py-libp2p host a :class:`~threadkit.net.node.Node` runs, and what it advertises.

Noise only, guarded Yamux only, the inbound cap lifted, the connection pruner run on a timer
too; GossipSub with spam protection off; listen addresses probed before binding; peer ids
and ``/p2p`` suffixes parsed. The reasons are in :mod:`threadkit.net.node` and
``docs/libp2p-notes.md``. Everything here imports libp2p lazily, inside the functions.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from typing import Any

from threadkit.errors import InvalidAddress, NetworkError
from threadkit.net.connmgr import MAX_CONNECTIONS, ConnLimits

__all__ = [
    "advertised",
    "check_listen_addrs",
    "connection_config",
    "describe",
    "live_connections",
    "new_host_for",
    "new_pubsub",
    "parse_peer_id",
    "run_service",
    "trim_periodically",
    "with_peer",
]

log = logging.getLogger("threadkit.net.node")


def describe(exc: BaseException) -> str:
    """A one-line description, looking inside single-exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


def advertised(
    bound: list[str], announce: tuple[str, ...], peer_id: str, relays: tuple[str, ...] = ()
) -> list[str]:
    """What the node advertises: ``announce`` if given, else its binds expanded.

    With relays, their circuit addresses, after the ``announce`` ones, and no bind: a peer
    that needs a relay is behind a NAT, where no bind is dialable from outside.
    """
    if relays:
        circuits = [f"{relay}/p2p-circuit/p2p/{peer_id}" for relay in relays]
        return [f"{a}/p2p/{peer_id}" for a in announce] + circuits
    from threadkit.net.addrs import expand_addrs

    chosen = list(announce) if announce else expand_addrs(bound)
    return [f"{a}/p2p/{peer_id}" for a in chosen]


async def run_service(background: Any, service: Any) -> None:
    import trio

    async with background(service):
        await trio.sleep_forever()


async def trim_periodically(host: Any, limits: ConnLimits, peer_id: str) -> None:
    """Run py-libp2p's connection pruner every ``limits.trim_interval`` s above high water.

    py-libp2p 0.8.1 runs its pruner only when a new connection arrives, and skips every
    connection still in its grace period: connections that were young at that moment
    stay open, however many, until the next newcomer. go-libp2p's connmgr (threadsd's)
    also trims on a timer; this task does the same. The pruner keeps its own rules:
    down to ``low_water``, at most 20 closes a round, never a connection with an open
    stream, a protected peer's, or one to a peer with a positive tag value.
    """
    import trio

    swarm = host.get_network()
    # Swarm._prune_in_background is the pruner behind py-libp2p's own (connection-time)
    # trigger, guarded against running twice at once; fall back to the public entry point
    prune = getattr(swarm, "_prune_in_background", None)
    if prune is None:  # pragma: no cover - another py-libp2p version
        prune = swarm.connection_pruner.maybe_prune_connections
    while True:
        await trio.sleep(limits.trim_interval)
        try:
            if len(swarm.get_connections()) > limits.high_water:
                await prune()
        except Exception as exc:  # never let trimming take the node's loop down
            log.warning("node %s: connection trim failed: %s", peer_id, describe(exc))


def new_host_for(
    seed: bytes,
    listen: Sequence[str],
    limits: ConnLimits | None = None,
    announce: Sequence[str] = (),
) -> Any:
    """A BasicHost: the seed's Ed25519 key, Noise only, guarded Yamux only, the inbound cap lifted.

    What it tells other peers (Identify, its signed peer record, DCUtR) is ``announce``,
    or its binds with wildcards expanded; its peerstore never keeps an unspecified
    address a peer sends (:mod:`threadkit.net.host_addrs`).

    ``limits`` (default: threadsd's 100/400/20 s) become the swarm's watermarks and grace
    period; ``max_connections`` stays :data:`MAX_CONNECTIONS` whatever they are, and
    ``min_connections`` (py-libp2p's own floor, which must not exceed the low watermark)
    is py-libp2p's 50 or the low watermark if that is lower.
    """
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
    from libp2p.custom_types import TProtocol
    from libp2p.network.config import ConnectionConfig
    from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
    from libp2p.security.noise.transport import Transport as NoiseTransport
    from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
    from libp2p.stream_muxer.yamux.yamux import Yamux
    from multiaddr import Multiaddr

    from threadkit.net.host_addrs import identify_addrs, new_peerstore
    from threadkit.net.muxer import install

    key_pair = create_new_key_pair(seed)
    noise = NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)
    host = new_host(
        key_pair=key_pair,
        sec_opt={TProtocol(NOISE_PROTOCOL_ID): noise},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        listen_addrs=[Multiaddr(a) for a in listen],
        connection_config=connection_config(ConnectionConfig, limits or ConnLimits()),
        peerstore_opt=new_peerstore(),
        addrs_factory=identify_addrs(announce),
    )
    install(host)  # Yamux that enforces its receive windows (docs/libp2p-notes.md §9)
    return host


def connection_config(config_class: Any, limits: ConnLimits) -> Any:
    """``ConnectionConfig`` with ``limits`` applied and the 250-inbound cap still lifted."""
    from libp2p.network.config import MIN_CONNECTIONS

    return config_class(
        max_connections=MAX_CONNECTIONS,
        min_connections=min(MIN_CONNECTIONS, limits.low_water),
        low_watermark=limits.low_water,
        high_watermark=limits.high_water,
        grace_period=limits.grace_period,
    )


def new_pubsub(host: Any) -> tuple[Any, Any]:
    """GossipSub with spam protection off (it drops the node's own bursts)."""
    from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, GossipSub
    from libp2p.pubsub.pubsub import Pubsub

    router = GossipSub(
        protocols=[PROTOCOL_ID_V11, PROTOCOL_ID],
        degree=6,
        degree_low=4,
        degree_high=12,
        heartbeat_interval=1,
        spam_protection_enabled=False,
    )
    return Pubsub(host, router), router


def with_peer(maddr: Any, pid: Any) -> Any:
    from multiaddr import Multiaddr

    text = str(maddr)
    return maddr if text.endswith(f"/p2p/{pid}") else Multiaddr(f"{text}/p2p/{pid}")


def live_connections(host: Any, peer_id: Any) -> bool:
    connections = host.get_network().connections.get(peer_id)
    return bool(connections) and any(not getattr(c, "is_closed", False) for c in connections)


def parse_peer_id(peer_id: str) -> Any:
    from libp2p.peer.id import ID

    try:
        return ID.from_base58(str(peer_id))
    except Exception as exc:
        raise InvalidAddress(f"not a peer id: {peer_id!r}") from exc


def check_listen_addrs(addrs: Sequence[str]) -> None:
    """Parse the listen addresses, and refuse fixed TCP ports that are already taken.

    py-libp2p opens its listeners with SO_REUSEPORT, so on Linux a second listener on a
    taken port does not fail: it silently shares the port and gets a random half of the
    inbound connections. A probe socket without SO_REUSEPORT (with SO_REUSEADDR, so
    TIME_WAIT leftovers do not count) fails exactly when another listener holds the port.
    """
    from multiaddr import Multiaddr

    for addr in addrs:
        try:
            maddr = Multiaddr(addr)
            protocols = {p.name for p in maddr.protocols()}
        except Exception as exc:
            raise InvalidAddress(f"not a multiaddr: {addr!r} ({exc})") from exc
        if "tcp" not in protocols or not protocols & {"ip4", "ip6"}:
            continue
        port = int(maddr.value_for_protocol("tcp"))
        if port == 0:
            continue
        family = socket.AF_INET6 if "ip6" in protocols else socket.AF_INET
        host = maddr.value_for_protocol("ip6" if family == socket.AF_INET6 else "ip4")
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise NetworkError(f"cannot listen on {addr}: {exc.strerror or exc}") from exc
