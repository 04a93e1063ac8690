"""What py-libp2p tells other peers about this host's addresses, and what it keeps of theirs.

py-libp2p 0.8.1 advertises its transport addresses as they were bound: a node listening
on ``/ip4/0.0.0.0/tcp/P`` sends ``/ip4/0.0.0.0/tcp/P`` in Identify (and in its signed
peer record, and DCUtR's fallback), and a peer that stores it and dials it reaches a port
on its *own* host. Three pieces close that, as go-libp2p does:

- :func:`identify_addrs` — the host's ``addrs_factory``: the announce addresses when
  given, else the transport addresses with each wildcard expanded to the interface
  addresses (:func:`threadkit.net.addrs.expand_addrs`, loopback last). This is what
  Identify sends, what the signed peer record holds and what DCUtR falls back to.
- :func:`new_peerstore` — the host's peerstore, which drops unspecified addresses a
  peer sends (an older or foreign peer may still advertise ``0.0.0.0``), so nothing in
  py-libp2p (``host.connect``, DCUtR's direct dials) dials one.
- :func:`dialable` — the same filter for address lists that bypass the peerstore.

Examples
--------
>>> from multiaddr import Multiaddr
>>> [str(a) for a in dialable([Multiaddr("/ip4/0.0.0.0/tcp/1"), Multiaddr("/ip4/10.0.0.2/tcp/1")])]
['/ip4/10.0.0.2/tcp/1']
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from threadkit.net.addrs import expand_addrs, is_wildcard

__all__ = ["dialable", "identify_addrs", "new_peerstore"]


def dialable(addrs: Sequence[Any]) -> list[Any]:
    """``addrs`` (multiaddrs or strings) without the unspecified ones (``0.0.0.0``, ``::``)."""
    return [a for a in addrs if not is_wildcard(str(a))]


def identify_addrs(
    announce: Sequence[str] = (), interfaces: Sequence[tuple[str, str]] | None = None
) -> Callable[[list[Any]], list[Any]]:
    """An ``addrs_factory`` for py-libp2p's host: what it advertises to other peers.

    Parameters
    ----------
    announce : sequence of str
        Announce addresses (without ``/p2p/``); when given they replace the others.
    interfaces : sequence of (name, ip), optional
        The host's interface addresses (default: read on every call, so an interface
        that comes up later is advertised from then on).

    Returns
    -------
    callable
        ``factory(candidates) -> multiaddrs``: the candidates (transport addresses,
        observed ones) with every wildcard expanded, never an unspecified address.

    Examples
    --------
    >>> from multiaddr import Multiaddr
    >>> factory = identify_addrs(interfaces=[("lo", "127.0.0.1"), ("eth0", "10.0.0.2")])
    >>> [str(a) for a in factory([Multiaddr("/ip4/0.0.0.0/tcp/4006")])]
    ['/ip4/10.0.0.2/tcp/4006', '/ip4/127.0.0.1/tcp/4006']
    >>> [str(a) for a in identify_addrs(["/ip4/203.0.113.5/tcp/4006"])([])]
    ['/ip4/203.0.113.5/tcp/4006']
    """
    from multiaddr import Multiaddr

    fixed = [Multiaddr(a) for a in announce]

    def factory(candidates: list[Any]) -> list[Any]:
        if fixed:
            return list(fixed)
        return [Multiaddr(a) for a in expand_addrs([str(c) for c in candidates], interfaces)]

    return factory


@functools.cache
def _peerstore_class() -> type[Any]:
    from libp2p.peer.peerstore import PeerStore

    class DialablePeerStore(PeerStore):
        """py-libp2p's PeerStore that never keeps an unspecified address."""

        def add_addrs(self, peer_id: Any, addrs: Sequence[Any], ttl: int = 0) -> None:
            kept = dialable(list(addrs))
            if kept or not addrs:  # nothing but unspecified ones: nothing to add
                super().add_addrs(peer_id, kept, ttl)

    return DialablePeerStore


def new_peerstore() -> Any:
    """py-libp2p's PeerStore, dropping every unspecified address it is given.

    Examples
    --------
    >>> from libp2p.peer.id import ID
    >>> from multiaddr import Multiaddr
    >>> store = new_peerstore()
    >>> pid = ID.from_base58("12D3KooWPQFYfb1i2eAbW8xHQs6edZieKJKHjvSUpzcU9DUR8WCx")
    >>> store.add_addrs(pid, [Multiaddr("/ip4/0.0.0.0/tcp/1"), Multiaddr("/ip4/10.0.0.2/tcp/1")])
    >>> [str(a) for a in store.addrs(pid)]
    ['/ip4/10.0.0.2/tcp/1']
    """
    return _peerstore_class()()
