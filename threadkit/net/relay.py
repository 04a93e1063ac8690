"""Circuit relay v2 (py-libp2p's): serving as a relay, reserving a slot, dialing through one.

Two peers behind different NATs cannot dial each other; both can dial a host with a
public address. A relay on that host (``tk.Peer(relay_service=True)``, ``threadkit daemon
--relay``) keeps a *reservation* for each peer that asks (``tk.Peer(relays=[addr])``) and
splices a connection from anyone to a reserved peer through the reserving peer's own
outbound connection. The reserved peer advertises ``<relay addr>/p2p-circuit/p2p/<its id>``;
others dial that address and get an ordinary (Noise-secured, Yamux-multiplexed)
connection, end to end encrypted: the relay only sees ciphertext.

- :class:`RelayService` — the relay (py-libp2p's ``CircuitV2Protocol`` with ``hop``
  allowed) with :data:`RELAY_LIMITS`.
- :class:`RelayClient` — accepts relayed connections (the ``stop`` side), dials
  ``/p2p-circuit`` addresses, and keeps a reservation on each given relay: made when
  the node starts, renewed every :data:`RESERVATION_REFRESH` seconds (and retried every
  :data:`RESERVATION_RETRY` seconds while a relay cannot be reached).
- :func:`new_hole_puncher` — DCUtR (py-libp2p's), run by a node that uses relays: a
  relayed connection it accepted is upgraded to a direct one by a TCP simultaneous open
  through both NATs where they allow it (docs/networking.md says which do).

Everything here runs on the node's trio loop; the module imports py-libp2p's relay
package only when used.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from threadkit.errors import InvalidAddress, PeerUnreachable
from threadkit.net.addrs import is_wildcard

__all__ = [
    "FIRST_RESERVATION_WAIT",
    "HOLE_PUNCH_CHECK",
    "RELAY_LIMITS",
    "RESERVATION_REFRESH",
    "RESERVATION_RETRY",
    "RelayClient",
    "RelayService",
    "circuit_addr",
    "is_circuit",
    "new_hole_puncher",
    "parse_relays",
    "start_relaying",
]

log = logging.getLogger(__name__)

RELAY_LIMITS = {
    "duration": 3600,
    "data": 1 << 30,
    "max_circuit_conns": 64,
    "max_reservations": 64,
    "reservation_ttl": 3600,
}
"""What a relay grants: a circuit lasts at most ``duration`` seconds and carries at most
``data`` bytes (py-libp2p's defaults, 1 h and 1 GiB; the peers then dial again), at most
``max_circuit_conns`` circuits and ``max_reservations`` reservations at once (py-libp2p's
8 and 4 are too few for a hub), a reservation is valid ``reservation_ttl`` seconds."""

RESERVATION_REFRESH = 600.0
"""Seconds between renewals of a reservation (well inside its one-hour validity)."""

RESERVATION_RETRY = 5.0
"""Seconds between attempts while a relay cannot be reached or refuses."""

FIRST_RESERVATION_WAIT = 5.0
"""Seconds a starting node waits for the first attempt on each relay before it is ready."""


HOLE_PUNCH_CHECK = 2.0
"""Seconds between looks for relayed connections to upgrade (py-libp2p's own interval)."""


def is_circuit(addr: str) -> bool:
    """True for a relayed address (``…/p2p-circuit/…``).

    Examples
    --------
    >>> is_circuit("/ip4/198.51.100.10/tcp/4006/p2p/12D3KooWa/p2p-circuit/p2p/12D3KooWb")
    True
    """
    return "/p2p-circuit" in addr


def circuit_addr(relay_addr: str, peer_id: str) -> str:
    """The address others dial to reach ``peer_id`` through the relay at ``relay_addr``.

    Examples
    --------
    >>> circuit_addr("/ip4/198.51.100.10/tcp/4006/p2p/12D3KooWa", "12D3KooWb")
    '/ip4/198.51.100.10/tcp/4006/p2p/12D3KooWa/p2p-circuit/p2p/12D3KooWb'
    """
    return f"{relay_addr}/p2p-circuit/p2p/{peer_id}"


def parse_relays(addrs: Sequence[str] | None, peer_id: str) -> tuple[str, ...]:
    """Check relay addresses: each a multiaddr ending ``/p2p/<relay id>``, dialable, not ours.

    Raises
    ------
    InvalidAddress
        Not a list of strings; malformed; no ``/p2p/<id>`` at the end; a relayed
        address; an unspecified IP or port 0; this peer's own id.

    Examples
    --------
    >>> relay_id = "12D3KooWKizFYDpdWVknp3gtswXyvPCHxU9RRP8bSFbfcRsVaCJc"
    >>> relay = f"/ip4/198.51.100.10/tcp/4006/p2p/{relay_id}"
    >>> parse_relays([relay], "12D3KooWb") == (relay,)
    True
    """
    if addrs is None:
        return ()
    if isinstance(addrs, str):
        raise InvalidAddress("relays must be a list of multiaddr strings, not one string")
    from threadkit.core.addr import parse_addr

    out = []
    for addr in addrs:
        if not isinstance(addr, str):
            raise InvalidAddress(f"a relay address must be a multiaddr string, got {addr!r}")
        if "/p2p-circuit" in addr:
            raise InvalidAddress(f"relay address {addr!r} is itself relayed")
        parts = [
            (getattr(p, "proto", p).name, str(getattr(p, "value", ""))) for p in parse_addr(addr)
        ]
        names = [name for name, _ in parts]
        if not parts or names[-1] != "p2p" or len(parts) < 2:
            raise InvalidAddress(f"relay address {addr!r} must end in /p2p/<relay peer id>")
        if parts[-1][1] == peer_id:
            raise InvalidAddress(f"relay address {addr!r} is this peer's own")
        if is_wildcard(addr) or any(n in ("tcp", "udp") and v == "0" for n, v in parts):
            raise InvalidAddress(f"relay address {addr!r} is not dialable (0.0.0.0 or port 0)")
        out.append(addr)
    return tuple(dict.fromkeys(out))


async def start_relaying(
    host: Any,
    nursery: Any,
    *,
    serve: bool,
    relays: Sequence[str],
    peer_id: str,
    connect: Any,
) -> RelayClient:
    """Start what a node needs: the relay service if ``serve``, the client always.

    The client (stop side, dialing) runs on every node that serves or uses relays; a node
    with neither gets one lazily, on its first dial of a relayed address. Returns once
    each relay was tried (at most :data:`FIRST_RESERVATION_WAIT` seconds), so a peer that
    has just started is reachable through its relays when they answer.
    """
    protocol = None
    if serve:
        service = RelayService(host)
        protocol = service.protocol
        nursery.start_soon(service.run)
    client = RelayClient(host, relays, peer_id, protocol)
    nursery.start_soon(client.run, connect)
    if relays:  # behind a NAT: upgrade relayed connections where the NATs allow it
        nursery.start_soon(_run, new_hole_puncher(host))
    await client.wait_first_round(FIRST_RESERVATION_WAIT)
    return client


async def _run(service: Any) -> None:
    import trio
    from libp2p.tools.anyio_service import background_trio_service

    async with background_trio_service(service):
        await trio.sleep_forever()


def new_hole_puncher(host: Any) -> Any:
    """py-libp2p's DCUtR service, in which only the side that accepted a relayed connection
    starts a hole punch.

    py-libp2p 0.8.1 lets both ends of a relayed connection start one every 2 s, so two
    sessions with opposite roles can run at once, each dialing. The DCUtR spec has the
    peer that *accepted* the relayed connection initiate, and so does this service; the
    dialing side only answers. A relayed peer is tried three times (py-libp2p's
    ``MAX_HOLE_PUNCH_ATTEMPTS``, reset when the peer disconnects); each attempt first
    dials the peer's known direct addresses (a peer that is reachable needs no punch).
    Unspecified addresses in a peer's CONNECT message are dropped (never dialed).
    Run it with ``background_trio_service``.
    """
    import trio
    from libp2p.rcmgr import Direction
    from libp2p.relay.circuit_v2.dcutr import MAX_HOLE_PUNCH_ATTEMPTS, DCUtRProtocol

    from threadkit.net.host_addrs import dialable

    class HolePuncher(DCUtRProtocol):
        def _decode_observed_addrs(self, addr_bytes: list[bytes]) -> list[Any]:
            # a peer's CONNECT may carry 0.0.0.0, which would reach this very host
            return dialable(super()._decode_observed_addrs(addr_bytes))

        async def _auto_drive_loop(self) -> None:
            while True:
                await trio.sleep(HOLE_PUNCH_CHECK)
                for peer_id in _accepted_relayed(self.host, Direction.INBOUND):
                    if peer_id in self._in_progress:
                        continue
                    if self._hole_punch_attempts.get(peer_id, 0) >= MAX_HOLE_PUNCH_ATTEMPTS:
                        continue
                    log.debug("trying to upgrade the relayed connection to %s", peer_id)
                    try:
                        direct = await self.initiate_hole_punch(peer_id)
                    except Exception as exc:  # py-libp2p logs the details; try again later
                        log.debug("hole punch to %s failed: %r", peer_id, exc)
                        continue
                    if direct:
                        log.info("connection to %s upgraded from relayed to direct", peer_id)

    return HolePuncher(host)


def _accepted_relayed(host: Any, inbound: Any) -> list[Any]:
    """Peers with a relayed connection this host accepted (``inbound``) and no direct one."""
    out = []
    for peer_id, conns in list(host.get_network().connections.items()):
        relayed = direct = False
        for conn in conns if isinstance(conns, list) else [conns]:
            if getattr(conn, "is_closed", False):
                continue
            addrs = [str(a) for a in conn.get_transport_addresses()]
            if addrs and all("/p2p-circuit" in a for a in addrs):
                relayed = relayed or getattr(conn, "direction", None) == inbound
            else:
                direct = True
        if relayed and not direct:
            out.append(peer_id)
    return out


def _limits() -> Any:
    from libp2p.relay.circuit_v2.resources import RelayLimits

    return RelayLimits(**RELAY_LIMITS)


class RelayService:
    """Serve circuit relay v2 (``hop``) on a host; run :meth:`run` in the node's nursery."""

    def __init__(self, host: Any) -> None:
        from libp2p.relay.circuit_v2.protocol import CircuitV2Protocol

        self.protocol = CircuitV2Protocol(host, limits=_limits(), allow_hop=True)

    async def run(self) -> None:
        """Run until cancelled."""
        from libp2p.tools.anyio_service import background_trio_service

        async with background_trio_service(self.protocol):
            import trio

            await trio.sleep_forever()


class RelayClient:
    """Accept and dial relayed connections, and keep reservations on ``relays``.

    Parameters
    ----------
    host : Any
        The node's py-libp2p host.
    relays : sequence of str
        Relay addresses, ``…/p2p/<relay id>``.
    peer_id : str
        This node's peer id (for the advertised circuit addresses).
    protocol : Any, optional
        A running ``CircuitV2Protocol`` to share (a node that is also a relay has one).
    """

    def __init__(
        self, host: Any, relays: Sequence[str], peer_id: str, protocol: Any = None
    ) -> None:
        from libp2p.relay.circuit_v2.config import RelayConfig, RelayRole
        from libp2p.relay.circuit_v2.protocol import CircuitV2Protocol
        from libp2p.relay.circuit_v2.transport import CircuitV2Transport

        self.host = host
        self.relays = list(relays)
        self.peer_id = peer_id
        self._own_protocol = protocol is None
        self.protocol = protocol or CircuitV2Protocol(host, limits=_limits(), allow_hop=False)
        # STOP only: a dial through a relay does not reserve a slot on it first
        self.transport = CircuitV2Transport(
            host, self.protocol, RelayConfig(roles=RelayRole.STOP, limits=_limits())
        )
        self.reserved: dict[str, float] = {}  # relay addr -> expiry (epoch seconds)
        self.errors: dict[str, str] = {}
        self._attempted: set[str] = set()
        self._first_round: Any = None  # trio.Event, set once every relay was tried

    def addrs(self) -> list[str]:
        """The circuit addresses of the relays this node holds a reservation on."""
        return [
            circuit_addr(relay, self.peer_id) for relay in self.relays if relay in self.reserved
        ]

    async def wait_first_round(self, timeout: float) -> None:
        """Return once every relay was tried once (reserved or failed), or after ``timeout``."""
        import trio

        if self._first_round is None:
            self._first_round = trio.Event()
            if self._attempted >= set(self.relays):
                self._first_round.set()
        with trio.move_on_after(timeout):
            await self._first_round.wait()

    async def run(self, connect: Any) -> None:
        """Serve the ``stop`` side and keep every reservation; runs until cancelled.

        ``connect(addr)`` dials a relay (the node's own dial, which reuses connections).
        """
        import trio
        from libp2p.tools.anyio_service import background_trio_service

        async def serve() -> None:
            if self._own_protocol:
                async with background_trio_service(self.protocol):
                    await trio.sleep_forever()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            for relay in self.relays:
                nursery.start_soon(self._keep, relay, connect)

    async def _keep(self, relay: str, connect: Any) -> None:
        import trio

        while True:
            try:
                await self.reserve(relay, connect)
                wait = RESERVATION_REFRESH
            except Exception as exc:  # unreachable or refused: keep trying
                self.reserved.pop(relay, None)
                self.errors[relay] = f"{type(exc).__name__}: {exc}"
                log.debug("reservation on %s failed: %s", relay, self.errors[relay])
                wait = RESERVATION_RETRY
            self._attempted.add(relay)
            if self._first_round is not None and self._attempted >= set(self.relays):
                self._first_round.set()
            await trio.sleep(wait)

    async def reserve(self, relay: str, connect: Any) -> None:
        """Reserve a slot on ``relay`` now (dialing it first)."""
        import time

        from libp2p.custom_types import TProtocol
        from libp2p.peer.id import ID
        from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID

        relay_id = await connect(relay)
        stream = await self.host.new_stream(ID.from_base58(relay_id), [TProtocol(PROTOCOL_ID)])
        try:
            ok = await self.transport._make_reservation(stream, ID.from_base58(relay_id))
        finally:
            await stream.close()
        if not ok:
            raise PeerUnreachable(f"relay {relay_id} refused a reservation")
        expiry = float(self.transport._reservations.get(ID.from_base58(relay_id), 0))
        if relay not in self.reserved:
            log.info("reserved a slot on relay %s", relay)
        self.reserved[relay] = expiry or time.time() + RELAY_LIMITS["reservation_ttl"]
        self.errors.pop(relay, None)

    async def dial(self, addr: Any) -> Any:
        """Dial a ``/p2p-circuit`` multiaddr; returns the swarm connection."""
        return await self.transport.dial(addr)
