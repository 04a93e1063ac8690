"""The TCP endpoints of multiaddrs: host_port, listen_addr, dial_target, tcp_port."""

from __future__ import annotations

import pytest

from threadkit.core.addr import dial_target, host_port, listen_addr, tcp_port
from threadkit.errors import InvalidAddress


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("/ip4/127.0.0.1/tcp/6006", ("127.0.0.1", 6006)),
        (" /ip4/0.0.0.0/tcp/0/ ", ("0.0.0.0", 0)),
        ("/ip6/::1/tcp/65535", ("[::1]", 65535)),
        ("/dns4/lab.example.org/tcp/4006", ("lab.example.org", 4006)),
        ("/dns/localhost/tcp/1", ("localhost", 1)),
    ],
)
def test_host_port(addr: str, expected: tuple[str, int]) -> None:
    assert host_port(addr, "apiAddr") == expected


@pytest.mark.parametrize(
    ("addr", "message"),
    [
        ("localhost:4006", "is not an /ip4/<host>/tcp/<port> address"),
        ("/ip4/1.2.3.4/udp/1", "is not an /ip4/<host>/tcp/<port> address"),
        ("/ip4/1.2.3.4/tcp/1/ws", "is not an /ip4/<host>/tcp/<port> address"),
        ("/ip4//tcp/1", "is not an /ip4/<host>/tcp/<port> address"),
        ("/ip4/1.2.3.4.5/tcp/1", "'1.2.3.4.5' is not an ip4 address"),
        ("/ip6/1.2.3.4/tcp/1", "is not an ip6 address"),
        ("/ip4/0.0.0.0/tcp/x", "port 'x' is not a number from 0 to 65535"),
        ("/ip4/0.0.0.0/tcp/65536", "port '65536'"),
        ("/ip4/0.0.0.0/tcp/-1", "port '-1'"),
    ],
)
def test_host_port_refuses(addr: str, message: str) -> None:
    with pytest.raises(InvalidAddress, match=r"^apiAddr: ") as info:
        host_port(addr, "apiAddr")
    assert message in str(info.value)


def test_listen_addr_takes_ip_hosts_only() -> None:
    assert listen_addr("/ip6/::/tcp/4006 ", "--listen") == "/ip6/::/tcp/4006"
    with pytest.raises(InvalidAddress, match=r"--listen: '/dns4/x\.org/tcp/1' is not an /ip4"):
        listen_addr("/dns4/x.org/tcp/1", "--listen")
    with pytest.raises(InvalidAddress, match="port"):
        listen_addr("/ip4/0.0.0.0/tcp/port", "--listen")


@pytest.mark.parametrize(
    ("addr", "target"),
    [
        ("127.0.0.1:6006", "127.0.0.1:6006"),
        ("http://localhost:6006", "localhost:6006"),
        ("/ip4/127.0.0.1/tcp/6006", "127.0.0.1:6006"),
        ("/ip6/::1/tcp/6006", "[::1]:6006"),
        ("/dns4/host.example/tcp/6006/ws", "host.example:6006"),
    ],
)
def test_dial_target(addr: str, target: str) -> None:
    assert dial_target(addr) == target


@pytest.mark.parametrize("addr", ["/ip4/127.0.0.1/udp/6006", "/ip4/127.0.0.1", "/"])
def test_dial_target_refuses(addr: str) -> None:
    with pytest.raises(InvalidAddress, match="is not an /ip4/<host>/tcp/<port> address"):
        dial_target(addr)


def test_tcp_port() -> None:
    assert tcp_port([]) is None
    assert tcp_port(["/ip4/127.0.0.1/udp/1/quic-v1"]) is None
    peer = "/p2p/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq"
    assert tcp_port(["/ip4/127.0.0.1/udp/1/quic-v1", f"/ip6/::1/tcp/4006{peer}"]) == 4006
