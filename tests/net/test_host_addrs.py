"""What py-libp2p advertises and keeps: no unspecified address (threadkit.net.host_addrs).

The unit tests give the interface list; the peer tests run real nodes bound to
``0.0.0.0`` on this host and look at what each learned of the other through Identify.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from libp2p.peer.id import ID
from multiaddr import Multiaddr

from tests.e2e.waits import poll_until
from threadkit.errors import PeerUnreachable
from threadkit.net.addrs import is_wildcard
from threadkit.net.host_addrs import dialable, identify_addrs, new_peerstore
from threadkit.net.node import Node

IFACES = [("lo", "127.0.0.1"), ("lo", "::1"), ("eth0", "192.168.1.20"), ("eth0", "fd00::2")]
PEER = "12D3KooWPQFYfb1i2eAbW8xHQs6edZieKJKHjvSUpzcU9DUR8WCx"
WILDCARD = ["/ip4/0.0.0.0/tcp/0"]


def _strs(addrs: list[Multiaddr]) -> list[str]:
    return [str(a) for a in addrs]


# ------------------------------------------------------------------ unit


def test_identify_addrs_expands_wildcards_to_interface_addresses_loopback_last() -> None:
    factory = identify_addrs(interfaces=IFACES)
    got = factory([Multiaddr("/ip4/0.0.0.0/tcp/4006"), Multiaddr("/ip6/::/tcp/4007")])
    assert _strs(got) == [
        "/ip4/192.168.1.20/tcp/4006",
        "/ip6/fd00::2/tcp/4007",
        "/ip4/127.0.0.1/tcp/4006",
        "/ip6/::1/tcp/4007",
    ]


def test_identify_addrs_keeps_concrete_and_observed_addresses() -> None:
    factory = identify_addrs(interfaces=IFACES)
    given_addrs = [Multiaddr("/ip4/10.0.0.5/tcp/1"), Multiaddr("/ip4/203.0.113.9/tcp/1")]
    assert _strs(factory(given_addrs)) == _strs(given_addrs)


def test_identify_addrs_announce_replaces_everything() -> None:
    factory = identify_addrs(["/ip4/203.0.113.5/tcp/4006"], interfaces=IFACES)
    assert _strs(factory([Multiaddr("/ip4/0.0.0.0/tcp/1")])) == ["/ip4/203.0.113.5/tcp/4006"]


@given(st.lists(st.sampled_from(["/ip4/0.0.0.0/tcp/1", "/ip6/::/tcp/2", "/ip4/10.0.0.1/tcp/3"])))
def test_identify_addrs_never_gives_an_unspecified_address(addrs: list[str]) -> None:
    got = identify_addrs(interfaces=IFACES)([Multiaddr(a) for a in addrs])
    assert not any(is_wildcard(str(a)) for a in got)
    assert len(got) == len({str(a) for a in got})


def test_dialable_drops_unspecified_addresses_only() -> None:
    addrs = ["/ip4/0.0.0.0/tcp/1", "/ip6/::/tcp/1", "/ip4/127.0.0.1/tcp/1", "/ip6/::1/tcp/1"]
    assert dialable(addrs) == ["/ip4/127.0.0.1/tcp/1", "/ip6/::1/tcp/1"]


def test_the_peerstore_never_keeps_an_unspecified_address() -> None:
    store = new_peerstore()
    pid = ID.from_base58(PEER)
    store.add_addrs(pid, [Multiaddr("/ip4/0.0.0.0/tcp/1")], 600)
    assert not store.has_peer(pid) or store.addrs(pid) == []
    store.add_addr(pid, Multiaddr("/ip4/10.0.0.2/tcp/1"), 600)
    store.add_addrs(pid, [Multiaddr("/ip6/::/tcp/1"), Multiaddr("/ip4/10.0.0.3/tcp/1")], 600)
    assert sorted(_strs(store.addrs(pid))) == ["/ip4/10.0.0.2/tcp/1", "/ip4/10.0.0.3/tcp/1"]


# ------------------------------------------------------------------ real nodes


@pytest.fixture
def two_wildcard_nodes() -> Iterator[tuple[Node, Node]]:
    a = Node(bytes([41]) * 32, WILDCARD).start()
    b = Node(bytes([42]) * 32, WILDCARD).start()
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


async def _learned(node: Node, peer_id: str) -> list[str]:
    store = node.host.get_peerstore()
    pid = ID.from_base58(peer_id)
    addrs = [str(a) for a in store.addrs(pid)] if store.has_peer(pid) else []
    return [a.removesuffix(f"/p2p/{peer_id}") for a in addrs]


def test_what_a_peer_learns_through_identify_is_what_the_other_advertises(
    two_wildcard_nodes: tuple[Node, Node],
) -> None:
    a, b = two_wildcard_nodes
    assert all(is_wildcard(addr) for addr in a.listen_addrs)  # bound to 0.0.0.0 ...
    advertised = sorted(addr.rsplit("/p2p/", 1)[0] for addr in a.addrs)
    assert not any(is_wildcard(addr) for addr in advertised)  # ... advertised expanded
    b.call(b.connect, a.addrs[0], timeout=10)
    # Identify replaces what b's peerstore holds of a (the dialed address) with a's
    # listen addresses; b's own connect added only a.addrs[0]
    assert poll_until(
        lambda: sorted(b.call(_learned, b, a.peer_id, timeout=5)) == advertised, timeout=10
    ), b.call(_learned, b, a.peer_id, timeout=5)
    assert poll_until(
        lambda: b.peer_id in [str(p) for p in a.call(_connected, a, timeout=5)], timeout=10
    )
    learned_by_a = a.call(_learned, a, b.peer_id, timeout=5)
    assert learned_by_a and not any(is_wildcard(addr) for addr in learned_by_a)


async def _connected(node: Node) -> list[object]:
    return list(node.host.get_connected_peers())


def test_a_node_never_dials_an_unspecified_address(
    two_wildcard_nodes: tuple[Node, Node],
) -> None:
    a, b = two_wildcard_nodes
    port = a.listen_addrs[0].split("/tcp/")[1]
    # a listens on 0.0.0.0: a dial of 0.0.0.0 would reach it on this host, by accident
    with pytest.raises(PeerUnreachable, match="unspecified address is not dialable"):
        b.call(b.connect, f"/ip4/0.0.0.0/tcp/{port}/p2p/{a.peer_id}", timeout=10)
    assert a.peer_id not in b.connected_peers()
