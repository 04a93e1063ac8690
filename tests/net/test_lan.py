"""LAN discovery's default and what it announces (the lab's tests run real mDNS)."""

from __future__ import annotations

import pytest

import threadkit as tk
from threadkit.net.lan import lan_addrs

LAN = ["/ip4/192.168.1.20/tcp/4006/p2p/12D3KooWx", "/ip4/127.0.0.1/tcp/4006/p2p/12D3KooWx"]
LOOPBACK = ["/ip4/127.0.0.1/tcp/4006/p2p/12D3KooWx"]


def test_only_lan_addresses_are_announced() -> None:
    assert lan_addrs(LAN) == ["/ip4/192.168.1.20/tcp/4006"]
    assert lan_addrs(LOOPBACK) == []


@pytest.mark.parametrize(
    ("mdns", "env", "addrs", "wanted"),
    [
        (None, None, LAN, True),  # listening beyond loopback: on
        (None, None, LOOPBACK, False),  # loopback only: off
        (None, "0", LAN, False),  # THREADKIT_MDNS=0 turns the default off
        (None, "off", LAN, False),
        (True, "0", LOOPBACK, True),  # an explicit choice wins
        (False, None, LAN, False),
    ],
)
def test_the_default(
    monkeypatch: pytest.MonkeyPatch,
    mdns: bool | None,
    env: str | None,
    addrs: list[str],
    wanted: bool,
) -> None:
    if env is None:
        monkeypatch.delenv("THREADKIT_MDNS", raising=False)
    else:
        monkeypatch.setenv("THREADKIT_MDNS", env)
    with tk.Peer(memory=True, network=False, mdns=mdns) as peer:
        assert peer._mdns_wanted(addrs) is wanted


def test_a_loopback_peer_starts_no_discovery_and_says_so_when_joining_by_id() -> None:
    with tk.Peer(memory=True, network=True) as peer:  # loopback, default
        assert peer.status()["lan"] == {}
        with pytest.raises(tk.errors.NetworkError, match="LAN discovery is off"):
            peer.join(
                "bafkqaaicamcakbqhbaequcymbuha6earcijrifiwc4mbsgq3dqor4hy", tk.ThreadKey.new()
            )


def test_join_by_id_refuses_bad_input_before_the_network() -> None:
    with tk.Peer(memory=True, network=False) as peer:
        with pytest.raises(tk.errors.InvalidThreadID):
            peer.join("not a thread id", tk.ThreadKey.new())
        with pytest.raises(tk.errors.InvalidThreadKey):
            peer.join(
                "bafkqaaicamcakbqhbaequcymbuha6earcijrifiwc4mbsgq3dqor4hy",
                tk.ThreadKey.new().service_only(),
            )
        assert not peer.online
