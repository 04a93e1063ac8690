"""The addresses a peer advertises: wildcard binds expanded, announce addresses, scope.

A node that listens on ``/ip4/0.0.0.0/tcp/P`` or ``/ip6/::/tcp/P`` accepts connections on
every interface, but ``0.0.0.0`` is not an address anybody can dial. As go-threads (through
go-libp2p) does, such a bind is advertised as one address per interface address of the
host: ``/ip4/192.168.1.20/tcp/P``, …, and loopback last (``/ip4/127.0.0.1/tcp/P``).
Interfaces that are down are left out, and so are IPv6 link-local addresses (they need a
zone, which other hosts cannot use).

A host behind a port forward (or in a container with published ports) is reachable at
addresses none of its interfaces carry: ``announce`` addresses replace the advertised
ones entirely (threadsd's ``--announceAddr``).

**Scope.** A database whose peers are all on this host is advertised with loopback
addresses too (last); once it is shared beyond the host — one of its other peers has an
address that is not loopback — this peer's loopback addresses are left out of what it
advertises for that database (``db.info().addrs`` and the log addresses it sends), as
they would make the other hosts dial themselves. If nothing but loopback is left, that
stays.

Examples
--------
>>> expand_addrs(["/ip4/127.0.0.1/tcp/4006"], interfaces=[("lo", "127.0.0.1")])
['/ip4/127.0.0.1/tcp/4006']
>>> expand_addrs(
...     ["/ip4/0.0.0.0/tcp/4006"],
...     interfaces=[("lo", "127.0.0.1"), ("eth0", "192.168.1.20"), ("eth0", "fd00::2")],
... )
['/ip4/192.168.1.20/tcp/4006', '/ip4/127.0.0.1/tcp/4006']
>>> is_loopback("/ip4/127.0.0.1/tcp/4006/p2p/12D3KooW")
True
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from threadkit.errors import InvalidAddress

__all__ = [
    "expand_addrs",
    "host_interfaces",
    "is_loopback",
    "is_wildcard",
    "parse_announce",
    "scoped",
]

_WILDCARDS = {"ip4": "0.0.0.0", "ip6": "::"}


def _split(addr: str) -> list[str]:
    return addr.strip("/").split("/")


def host_interfaces() -> list[tuple[str, str]]:
    """``(interface, ip)`` for every address of every interface that is up.

    IPv6 link-local addresses are left out. Order: as the system lists them.
    """
    import socket

    import psutil

    stats = psutil.net_if_stats()
    found: list[tuple[str, str]] = []
    for name, entries in psutil.net_if_addrs().items():
        stat = stats.get(name)
        if stat is not None and not stat.isup:
            continue
        for entry in entries:
            if entry.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            ip = entry.address.split("%", 1)[0]
            try:
                parsed = ipaddress.ip_address(ip)
            except ValueError:
                continue
            if parsed.is_link_local and parsed.version == 6:
                continue
            found.append((name, ip))
    return found


def is_wildcard(addr: str) -> bool:
    """True for ``/ip4/0.0.0.0/…`` and ``/ip6/::/…`` (binds on every interface)."""
    parts = _split(addr)
    if len(parts) < 2 or parts[0] not in _WILDCARDS:
        return False
    try:
        return ipaddress.ip_address(parts[1]).is_unspecified
    except ValueError:
        return False


def is_loopback(addr: str) -> bool:
    """True when the address's IP is a loopback address (``127.0.0.0/8``, ``::1``)."""
    parts = _split(addr)
    if len(parts) < 2 or parts[0] not in _WILDCARDS:
        return False
    try:
        return ipaddress.ip_address(parts[1]).is_loopback
    except ValueError:
        return False


def expand_addrs(
    addrs: Iterable[str], interfaces: Sequence[tuple[str, str]] | None = None
) -> list[str]:
    """Wildcard binds replaced by one address per interface address; loopback last.

    Parameters
    ----------
    addrs : iterable of str
        Listen addresses with their real ports (``/ip4/0.0.0.0/tcp/41000``), with or
        without a ``/p2p/<id>`` suffix (kept).
    interfaces : sequence of (name, ip), optional
        The host's interface addresses (default: :func:`host_interfaces`).

    Returns
    -------
    list of str
        Every address not loopback first, in the order given, then the loopback ones;
        no duplicates and never an unspecified (``0.0.0.0`` / ``::``) address.
    """
    addrs = list(addrs)
    if interfaces is None and any(is_wildcard(a) for a in addrs):
        interfaces = host_interfaces()
    out: list[str] = []
    for addr in addrs:
        parts = _split(addr)
        if not is_wildcard(addr):
            out.append(addr)
            continue
        version = 4 if parts[0] == "ip4" else 6
        rest = "/".join(parts[2:])
        for _, ip in interfaces or ():
            if ipaddress.ip_address(ip).version == version:
                out.append(f"/{parts[0]}/{ip}/{rest}")
    unique = list(dict.fromkeys(out))
    return [a for a in unique if not is_loopback(a)] + [a for a in unique if is_loopback(a)]


def parse_announce(addrs: Iterable[str] | str | None, peer_id: str | None) -> tuple[str, ...]:
    """Check announce addresses and strip a ``/p2p/<own id>`` suffix.

    With ``peer_id`` None (not known yet), any ``/p2p/`` suffix is stripped unchecked.

    Raises
    ------
    InvalidAddress
        Not a list of multiaddrs; an unspecified IP (``0.0.0.0``, ``::``) or port ``0``,
        which nobody can dial; or a ``/p2p/`` part naming another peer.
    """
    if addrs is None:
        return ()
    if isinstance(addrs, str):
        raise InvalidAddress("announce must be a list of multiaddr strings, not one string")
    from multiaddr import Multiaddr

    out: list[str] = []
    for addr in addrs:
        if not isinstance(addr, str):
            raise InvalidAddress(f"an announce address must be a multiaddr string, got {addr!r}")
        try:
            maddr = Multiaddr(addr)
            names = [p.name for p in maddr.protocols()]
        except Exception as exc:
            raise InvalidAddress(f"not a multiaddr: {addr!r} ({exc})") from exc
        if "p2p" in names:
            named = maddr.value_for_protocol("p2p")
            if peer_id is not None and named != peer_id:
                raise InvalidAddress(f"announce address {addr!r} names another peer")
            maddr = maddr.decapsulate(Multiaddr(f"/p2p/{named}"))
        text = str(maddr)
        if is_wildcard(text):
            raise InvalidAddress(
                f"announce address {addr!r} is unspecified: give the address others dial"
            )
        for proto in ("tcp", "udp"):
            if proto in names and int(maddr.value_for_protocol(proto)) == 0:
                raise InvalidAddress(f"announce address {addr!r} has port 0: give the real port")
        if not text:
            raise InvalidAddress(f"announce address {addr!r} is empty")
        out.append(text)
    return tuple(dict.fromkeys(out))


def scoped(addrs: Sequence[str], peer_addrs: Iterable[str]) -> list[str]:
    """``addrs`` without the loopback ones when any of ``peer_addrs`` is not loopback.

    ``peer_addrs`` are the addresses of the database's other peers; when one of them is
    on another host, loopback addresses of this peer are useless to it. If that would
    leave nothing, ``addrs`` are returned as they are.

    Examples
    --------
    >>> mine = ["/ip4/10.0.0.5/tcp/1", "/ip4/127.0.0.1/tcp/1"]
    >>> scoped(mine, ["/ip4/127.0.0.1/tcp/2/p2p/X"])
    ['/ip4/10.0.0.5/tcp/1', '/ip4/127.0.0.1/tcp/1']
    >>> scoped(mine, ["/ip4/10.0.0.7/tcp/2/p2p/X"])
    ['/ip4/10.0.0.5/tcp/1']
    """
    if not any(not is_loopback(a) for a in peer_addrs):
        return list(addrs)
    outside = [a for a in addrs if not is_loopback(a)]
    return outside or list(addrs)
