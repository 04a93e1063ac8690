"""Advertised addresses: wildcard binds expanded, announce addresses, scope (threadkit.net.addrs).

The unit tests give the interface list; the peer tests run real peers (and a second
process) on this host's real interfaces and check what ``db.info().addrs`` offers.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import threadkit as tk
from threadkit.errors import InvalidAddress
from threadkit.net.addrs import (
    expand_addrs,
    host_interfaces,
    is_loopback,
    is_wildcard,
    parse_announce,
    scoped,
)

sys.path.insert(0, str(Path(__file__).parents[1] / "e2e"))
from procs import PeerProcess

IFACES = [("lo", "127.0.0.1"), ("lo", "::1"), ("eth0", "192.168.1.20"), ("eth0", "fd00::2")]
PEER = "12D3KooWPQFYfb1i2eAbW8xHQs6edZieKJKHjvSUpzcU9DUR8WCx"


def _lan_ipv4() -> str | None:
    for _, ip in host_interfaces():
        parsed = ipaddress.ip_address(ip)
        if parsed.version == 4 and not parsed.is_loopback:
            return ip
    return None


# ------------------------------------------------------------------ expansion


def test_wildcard_ip4_expands_to_ipv4_interfaces_loopback_last() -> None:
    got = expand_addrs(["/ip4/0.0.0.0/tcp/4006"], IFACES)
    assert got == ["/ip4/192.168.1.20/tcp/4006", "/ip4/127.0.0.1/tcp/4006"]


def test_wildcard_ip6_expands_to_ipv6_interfaces() -> None:
    got = expand_addrs(["/ip6/::/tcp/7"], IFACES)
    assert got == ["/ip6/fd00::2/tcp/7", "/ip6/::1/tcp/7"]


def test_loopback_last_across_binds_and_suffix_kept() -> None:
    got = expand_addrs(
        [f"/ip4/127.0.0.1/tcp/1/p2p/{PEER}", f"/ip4/0.0.0.0/tcp/2/p2p/{PEER}"], IFACES
    )
    assert got == [
        f"/ip4/192.168.1.20/tcp/2/p2p/{PEER}",
        f"/ip4/127.0.0.1/tcp/1/p2p/{PEER}",
        f"/ip4/127.0.0.1/tcp/2/p2p/{PEER}",
    ]


@given(st.lists(st.sampled_from(["/ip4/0.0.0.0/tcp/1", "/ip6/::/tcp/2", "/ip4/10.0.0.1/tcp/3"])))
def test_never_an_unspecified_address(addrs: list[str]) -> None:
    got = expand_addrs(addrs, IFACES)
    assert not any(is_wildcard(a) for a in got)
    assert len(got) == len(set(got))
    first_loop = next((i for i, a in enumerate(got) if is_loopback(a)), len(got))
    assert all(is_loopback(a) for a in got[first_loop:])


def test_real_interfaces_are_up_and_not_link_local() -> None:
    for _, ip in host_interfaces():
        parsed = ipaddress.ip_address(ip)
        assert not (parsed.version == 6 and parsed.is_link_local)
    assert any(ipaddress.ip_address(ip).is_loopback for _, ip in host_interfaces())


# ------------------------------------------------------------------- announce


@pytest.mark.parametrize(
    "bad",
    [
        ["/ip4/0.0.0.0/tcp/4006"],
        ["/ip6/::/tcp/4006"],
        ["/ip4/203.0.113.5/tcp/0"],
        ["not a multiaddr"],
        "/ip4/203.0.113.5/tcp/4006",
        [4006],
        ["/ip4/203.0.113.5/tcp/4006/p2p/12D3KooWM2LhLA8kuKnnSeTovagVZvKUXbwUFJ1Ji3qDCsX47tPN"],
    ],
)
def test_bad_announce_refused(bad: object) -> None:
    with pytest.raises(InvalidAddress):
        parse_announce(bad, PEER)  # type: ignore[arg-type]


def test_announce_own_suffix_stripped() -> None:
    assert parse_announce([f"/ip4/203.0.113.5/tcp/4006/p2p/{PEER}"], PEER) == (
        "/ip4/203.0.113.5/tcp/4006",
    )


def test_peer_refuses_bad_announce_before_opening_the_repo(tmp_path: Path) -> None:
    with pytest.raises(InvalidAddress):
        tk.Peer(tmp_path / "repo", announce=["/ip4/0.0.0.0/tcp/4006"])
    assert not (tmp_path / "repo").exists() or not any((tmp_path / "repo").iterdir())


def test_announce_replaces_the_advertised_addresses() -> None:
    announce = ["/ip4/203.0.113.5/tcp/4006", "/dns4/lab.example.org/tcp/4006"]
    with tk.Peer(memory=True, listen=["/ip4/0.0.0.0/tcp/0"], announce=announce) as peer:
        db = peer.new_db("shared")
        expected = [f"{a}/p2p/{peer.id}/thread/{db.id}" for a in announce]
        assert db.info().addrs == expected
        own = peer.repo.get_log(db.id, db.log_id).addrs
        assert list(own) == [f"{a}/p2p/{peer.id}" for a in announce]


# ---------------------------------------------------------------------- scope


def test_scoped_drops_loopback_only_when_shared_beyond_the_host() -> None:
    mine = ["/ip4/10.0.0.5/tcp/1", "/ip4/127.0.0.1/tcp/1"]
    assert scoped(mine, []) == mine
    assert scoped(mine, ["/ip4/127.0.0.1/tcp/9/p2p/X"]) == mine
    assert scoped(mine, ["/ip4/10.0.0.9/tcp/9/p2p/X"]) == ["/ip4/10.0.0.5/tcp/1"]
    assert scoped(["/ip4/127.0.0.1/tcp/1"], ["/ip4/10.0.0.9/tcp/9/p2p/X"]) == [
        "/ip4/127.0.0.1/tcp/1"
    ]


def test_wildcard_peer_advertises_dialable_addresses() -> None:
    with tk.Peer(memory=True, listen=["/ip4/0.0.0.0/tcp/0"]) as peer:
        db = peer.new_db("shared")
        addrs = db.info().addrs
        assert addrs and not any("/0.0.0.0/" in a for a in addrs)
        assert is_loopback(addrs[-1])  # alone on this host so far: loopback kept, last
        assert all(a.endswith(f"/p2p/{peer.id}/thread/{db.id}") for a in addrs)


@pytest.mark.slow
def test_joiner_on_another_address_can_dial_and_loopback_goes() -> None:
    """A peer in another process joins on the host's LAN address, as another host would."""
    lan = _lan_ipv4()
    if lan is None:
        pytest.skip("this host has no non-loopback IPv4 address")
    with tk.Peer(memory=True, listen=["/ip4/0.0.0.0/tcp/0"]) as peer:
        db = peer.new_db("shared")
        db.new_collection("Notes").create({"text": "hi"})
        first = db.info().addrs[0]
        assert f"/ip4/{lan}/" in first or not is_loopback(first)
        with PeerProcess(listen=[f"/ip4/{lan}/tcp/0"]) as other:
            other.call("join", addr=first, key=str(db.key), timeout=20)
            assert other.call("wait_count", db=str(db.id), coll="Notes", n=1)["reached"]
            # shared beyond this host now: no loopback in what this peer advertises
            after = db.info().addrs
            assert after and not any(is_loopback(a) for a in after)
            logs = {entry["id"]: entry for entry in other.call("logs", db=str(db.id))["logs"]}
            assert not any("/0.0.0.0/" in a for e in logs.values() for a in e["addrs"])


def test_daemon_info_lists_no_wildcard(tmp_path: Path) -> None:
    """GetDBInfo goes through ``db.info()``: the daemon's default bind is 0.0.0.0."""
    from threadkit.api._db_service import db_info as _db_info
    from threadkit.core.addr import addr_from_bytes

    with tk.Peer(tmp_path / "d", listen=["/ip4/0.0.0.0/tcp/0"], network=True) as peer:
        db = peer.new_db("shared")
        reply = _db_info(db)
        addrs = [addr_from_bytes(a) for a in reply.addrs]
        assert addrs and not any("/0.0.0.0/" in a for a in addrs)
