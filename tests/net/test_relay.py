"""Relayed addresses and relay settings (the lab tests in tests/netlab run real relays)."""

from __future__ import annotations

import time

import pytest

import threadkit as tk
from threadkit.core.addr import ThreadAddr, addr_from_bytes, addr_to_bytes, parse_addr
from threadkit.errors import InvalidAddress
from threadkit.net._libp2p_host import parse_peer_id
from threadkit.net.relay import circuit_addr, parse_relays

RELAY_ID = "12D3KooWKizFYDpdWVknp3gtswXyvPCHxU9RRP8bSFbfcRsVaCJc"
PEER_ID = "12D3KooWHYX7N2TyWsB2jNUwC7w3QkrjH25x3XBukq7oJCp3ebab"
RELAY = f"/ip4/198.51.100.10/tcp/4006/p2p/{RELAY_ID}"
TID = "bafkqaaicamcakbqhbaequcymbuha6earcijrifiwc4mbsgq3dqor4hy"


def test_a_relayed_address_round_trips_through_its_binary_form() -> None:
    # multiformats refuses /p2p/ twice: this raised InvalidAddress before
    addr = circuit_addr(RELAY, PEER_ID)
    assert addr_from_bytes(addr_to_bytes(addr)) == addr
    assert str(parse_addr(addr)) == addr


def test_a_relayed_thread_address_parses_to_the_peer_behind_the_relay() -> None:
    text = f"{circuit_addr(RELAY, PEER_ID)}/thread/{TID}"
    parsed = ThreadAddr.parse(text)
    assert parsed.peer_id == PEER_ID
    assert parsed.peer_addr == circuit_addr(RELAY, PEER_ID)
    assert str(parsed) == text
    assert ThreadAddr.from_bytes(parsed.to_bytes()) == parsed


@pytest.mark.parametrize(
    "bad",
    [
        f"{RELAY}/p2p-circuit",  # no peer after the relay
        f"{RELAY}/p2p-circuit/p2p/notapeer",
        f"{RELAY}/p2p-circuit/p2p/{PEER_ID}/p2p-circuit/p2p/{RELAY_ID}/thread/{TID}",
    ],
)
def test_malformed_relayed_thread_addresses_are_refused(bad: str) -> None:
    with pytest.raises(InvalidAddress):
        ThreadAddr.parse(bad)


def test_truncated_binary_relayed_address_is_refused() -> None:
    data = addr_to_bytes(circuit_addr(RELAY, PEER_ID))
    with pytest.raises(InvalidAddress):
        addr_from_bytes(data[:-3])


@pytest.mark.parametrize(
    ("relays", "why"),
    [
        (RELAY, "not one string"),
        ([42], "multiaddr string"),
        (["/ip4/198.51.100.10/tcp/4006"], "must end in /p2p/"),
        ([f"/ip4/0.0.0.0/tcp/4006/p2p/{RELAY_ID}"], "not dialable"),
        ([f"/ip4/198.51.100.10/tcp/0/p2p/{RELAY_ID}"], "not dialable"),
        ([circuit_addr(RELAY, PEER_ID)], "itself relayed"),
        ([f"/ip4/198.51.100.10/tcp/4006/p2p/{PEER_ID}"], "own"),
        (["not an address"], "starting with '/'"),
    ],
)
def test_bad_relay_addresses_are_refused(relays: object, why: str) -> None:
    with pytest.raises(InvalidAddress, match=why):
        parse_relays(relays, PEER_ID)  # type: ignore[arg-type]


def test_a_peer_refuses_bad_relays_before_anything_is_opened(tmp_path: object) -> None:
    with pytest.raises(InvalidAddress, match="must end in /p2p/"):
        tk.Peer(memory=True, relays=["/ip4/198.51.100.10/tcp/4006"])
    with pytest.raises(tk.errors.InvalidInput, match="relay_service"):
        tk.Peer(memory=True, relay_service="yes")  # type: ignore[arg-type]
    with pytest.raises(tk.errors.InvalidInput, match="mdns"):
        tk.Peer(memory=True, mdns="on")  # type: ignore[arg-type]


def test_a_peer_with_relays_advertises_only_its_relayed_addresses() -> None:
    nobody = f"/ip4/127.0.0.1/tcp/1/p2p/{RELAY_ID}"  # refused at once, and stays on this host
    with tk.Peer(memory=True, listen=["/ip4/0.0.0.0/tcp/0"], relays=[nobody]) as peer:
        assert peer.addrs == [circuit_addr(nobody, peer.id)]
        relays = peer.status()["relays"]
        assert list(relays) == [nobody] and relays[nobody]["reserved"] is False
        assert "could not connect" in relays[nobody]["error"]


def test_joining_by_thread_id_needs_lan_discovery() -> None:
    with (
        tk.Peer(memory=True, mdns=False, network=True) as peer,
        pytest.raises(tk.errors.NetworkError, match="LAN discovery is off"),
    ):
        peer.join(TID, tk.ThreadKey.new())


def test_a_relayed_connection_to_a_reachable_peer_becomes_direct() -> None:
    # on loopback nothing stands between the peers: the peer that accepted the relayed
    # connection runs DCUtR, whose first step dials the other's own addresses directly
    from threadkit.core.identity import Identity
    from threadkit.net.node import Node

    def transports(node: Node, peer_id: str) -> list[str]:
        async def read() -> list[str]:
            conns = node._rt.host.get_network().connections.get(parse_peer_id(peer_id), [])
            return [str(a) for c in conns if not c.is_closed for a in c.get_transport_addresses()]

        return node.call(read, timeout=5)

    relay = Node(Identity.generate().seed, relay_service=True).start()
    with (
        relay,
        Node(Identity.generate().seed, relays=[relay.addrs[0]]) as behind,
        Node(Identity.generate().seed) as other,
    ):
        other.call(other.connect, circuit_addr(relay.addrs[0], behind.peer_id), timeout=20)
        assert all("/p2p-circuit" in a for a in transports(other, behind.peer_id))
        deadline = time.monotonic() + 30  # the connection table announces nothing
        while all("/p2p-circuit" in a for a in transports(other, behind.peer_id)):
            assert time.monotonic() < deadline, transports(other, behind.peer_id)
            time.sleep(0.2)
        direct = [a for a in transports(other, behind.peer_id) if "/p2p-circuit" not in a]
        assert direct and all(a.startswith("/ip4/127.0.0.1/tcp/") for a in direct)
