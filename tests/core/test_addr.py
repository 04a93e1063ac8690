"""Thread multiaddrs: string and binary round trips, the ``thread`` code (406), bad input."""

from __future__ import annotations

import contextlib
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multiformats import multibase, varint

from threadkit.core.addr import ThreadAddr, addr_from_bytes, addr_to_bytes, parse_addr
from threadkit.core.identity import Identity
from threadkit.core.ids import ThreadID, Variant
from threadkit.errors import InvalidAddress

TID = ThreadID.from_bytes(b"\x01\x55" + bytes(range(32)))
PEER = "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq"
PEER_MH = bytes(multibase.decode("z" + PEER))

ip4 = st.integers(0, 2**32 - 1).map(lambda n: f"/ip4/{ipaddress.IPv4Address(n)}")
ip6 = st.integers(0, 2**128 - 1).map(lambda n: f"/ip6/{ipaddress.IPv6Address(n).compressed}")
ports = st.integers(0, 65535)
hosts = st.one_of(
    st.just(""),
    ip4,
    ip6,
    st.builds(lambda ip, port: f"{ip}/tcp/{port}", st.one_of(ip4, ip6), ports),
    st.builds(lambda ip, port: f"{ip}/udp/{port}", ip4, ports),
)
peer_ids = st.binary(min_size=32, max_size=32).map(lambda seed: Identity(seed).public.peer_id)
thread_ids = st.builds(
    lambda variant, random: ThreadID.from_bytes(b"\x01" + varint.encode(variant) + random),
    st.sampled_from([int(v) for v in Variant]),
    st.binary(min_size=16, max_size=64),
)
thread_addrs = st.builds(ThreadAddr, hosts, peer_ids, thread_ids)


# -- round trips ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(thread_addrs)
def test_string_round_trip(addr: ThreadAddr) -> None:
    text = str(addr)
    assert text.endswith(f"/p2p/{addr.peer_id}/thread/{addr.thread_id}")
    assert text.startswith("/")
    parsed = ThreadAddr.parse(text)
    assert parsed == addr
    assert str(parsed) == text
    assert parsed.peer_addr == f"{addr.host}/p2p/{addr.peer_id}"


@settings(max_examples=300, deadline=None)
@given(thread_addrs)
def test_bytes_round_trip(addr: ThreadAddr) -> None:
    data = addr.to_bytes()
    assert ThreadAddr.from_bytes(data) == addr
    assert addr_to_bytes(str(addr)) == data
    assert addr_from_bytes(data) == str(addr)


@settings(max_examples=200, deadline=None)
@given(thread_addrs)
def test_binary_form_ends_with_thread_component(addr: ThreadAddr) -> None:
    """Protocol code 406 as a uvarint (``96 03``), then the length-prefixed thread id bytes."""
    id_bytes = addr.thread_id.to_bytes()
    tail = b"\x96\x03" + varint.encode(len(id_bytes)) + id_bytes
    data = addr.to_bytes()
    assert data.endswith(tail)
    peer_mh = bytes(multibase.decode("z" + addr.peer_id))
    p2p = varint.encode(0x01A5) + varint.encode(len(peer_mh)) + peer_mh
    assert data.endswith(p2p + tail)


def test_known_binary_form() -> None:
    addr = ThreadAddr("/ip4/127.0.0.1/tcp/4006", PEER, TID)
    expected = (
        bytes.fromhex("047f000001")  # ip4 127.0.0.1
        + bytes.fromhex("060fa6")  # tcp 4006
        + bytes.fromhex("a503")  # p2p (421)
        + varint.encode(len(PEER_MH))
        + PEER_MH
        + bytes.fromhex("9603")  # thread (406)
        + bytes([34])
        + TID.to_bytes()
    )
    assert addr.to_bytes() == expected
    assert "9603220155000102" in expected.hex()
    assert ThreadAddr.from_bytes(expected) == addr


def test_known_string() -> None:
    text = f"/ip4/127.0.0.1/tcp/4006/p2p/{PEER}/thread/{TID}"
    addr = ThreadAddr.parse(text)
    assert addr.host == "/ip4/127.0.0.1/tcp/4006"
    assert addr.peer_id == PEER
    assert addr.thread_id == TID
    assert str(addr) == text


def test_no_host() -> None:
    addr = ThreadAddr.parse(f"/p2p/{PEER}/thread/{TID}")
    assert addr.host == ""
    assert addr.peer_addr == f"/p2p/{PEER}"


def test_thread_id_in_other_base_is_normalised() -> None:
    b58 = multibase.encode(TID.to_bytes(), "base58btc")
    addr = ThreadAddr.parse(f"/ip4/1.2.3.4/tcp/1/p2p/{PEER}/thread/{b58}")
    assert addr.thread_id == TID
    assert str(addr).endswith(f"/thread/{TID}")


def test_parse_addr_plain_multiaddr() -> None:
    assert bytes(parse_addr("/ip4/1.2.3.4/tcp/80")) == bytes.fromhex("040102030406") + b"\x00\x50"
    assert addr_from_bytes(addr_to_bytes("/ip4/1.2.3.4/tcp/80")) == "/ip4/1.2.3.4/tcp/80"


@pytest.mark.parametrize(
    "host",
    [
        "/dns4/example.com/tcp/4006",
        "/dns6/example.com/tcp/4006",
        "/dns/example.com/tcp/4006",
        "/dns4/hub.textile.io/tcp/4006",
    ],
)
def test_dns_hosts_round_trip(host: str) -> None:
    """Thread addresses with DNS hosts (as Textile's hubs publish) must parse and encode."""
    addr = ThreadAddr(host, PEER, TID)
    assert ThreadAddr.parse(str(addr)) == addr
    assert ThreadAddr.from_bytes(addr.to_bytes()) == addr


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("2001:0db8::1", "2001:db8::1"),
        ("2001:db8:0:0:0:0:0:1", "2001:db8::1"),
        ("0:0:0:0:0:0:0:1", "::1"),
    ],
)
def test_parse_and_from_bytes_agree_on_ip6(spelling: str, canonical: str) -> None:
    """One address is one value, whichever way it arrives (string or bytes)."""
    parsed = ThreadAddr.parse(f"/ip6/{spelling}/tcp/1/p2p/{PEER}/thread/{TID}")
    assert ThreadAddr.from_bytes(parsed.to_bytes()) == parsed
    assert parsed == ThreadAddr.parse(f"/ip6/{canonical}/tcp/1/p2p/{PEER}/thread/{TID}")


# -- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "/ip4/1.2.3.4/tcp/4006",  # no /p2p, no /thread
        f"/ip4/1.2.3.4/tcp/4006/p2p/{PEER}",  # no /thread
        f"/ip4/1.2.3.4/tcp/4006/thread/{TID}",  # no /p2p
        f"/thread/{TID}/p2p/{PEER}",  # wrong order
        f"/ip4/1.2.3.4/tcp/4006/p2p/{PEER}/thread/{TID}/tcp/1",  # something after
        f"/p2p/{PEER}/p2p/{PEER}",
        f"/thread/{TID}",
        "/",
    ],
)
def test_missing_parts(text: str) -> None:
    with pytest.raises(InvalidAddress):
        ThreadAddr.parse(text)


@pytest.mark.parametrize(
    "peer_id",
    [
        "notapeer0",  # not base58
        "0OIl",
        "",
    ],
)
def test_bad_peer_id_not_base58(peer_id: str) -> None:
    with pytest.raises(InvalidAddress):
        ThreadAddr.parse(f"/ip4/1.2.3.4/tcp/1/p2p/{peer_id}/thread/{TID}")


@pytest.mark.parametrize(
    "peer_id",
    [
        "zzzz",  # base58, but not a multihash
        "12D3KooW",  # truncated: the multihash says 36 bytes, holds 4
        PEER[:-3],  # truncated
    ],
)
def test_bad_peer_id_not_a_multihash(peer_id: str) -> None:
    with pytest.raises(InvalidAddress):
        ThreadAddr.parse(f"/ip4/1.2.3.4/tcp/1/p2p/{peer_id}/thread/{TID}")


@pytest.mark.parametrize(
    "thread_id",
    [
        "bnotanid",
        "",
        "!!!",
        multibase.encode(b"\x05\x55" + bytes(32), "base32"),  # version 5
        multibase.encode(b"\x01\x32" + bytes(32), "base32"),  # variant 50
        multibase.encode(b"\x01\x55" + bytes(8), "base32"),  # short
        multibase.encode(b"\x81", "base32"),  # truncated varint
    ],
)
def test_bad_thread_id(thread_id: str) -> None:
    with pytest.raises(InvalidAddress):
        ThreadAddr.parse(f"/ip4/1.2.3.4/tcp/1/p2p/{PEER}/thread/{thread_id}")


@pytest.mark.parametrize(
    "text",
    [
        f"ip4/1.2.3.4/tcp/1/p2p/{PEER}/thread/{TID}",
        f" /ip4/1.2.3.4/tcp/1/p2p/{PEER}/thread/{TID}",
        "",
        "thread",
    ],
)
def test_not_starting_with_slash(text: str) -> None:
    with pytest.raises(InvalidAddress, match="'/'"):
        ThreadAddr.parse(text)


@pytest.mark.parametrize("value", [None, 5, b"/ip4/1.2.3.4"])
def test_non_string(value: object) -> None:
    with pytest.raises(InvalidAddress):
        ThreadAddr.parse(value)  # type: ignore[arg-type]
    with pytest.raises(InvalidAddress):
        parse_addr(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    ["/ip4/999.1.1.1/tcp/1", "/ip4/1.2.3.4/tcp/70000", "/foo/bar", "/ip4", "/tcp/x"],
)
def test_bad_multiaddr(text: str) -> None:
    with pytest.raises(InvalidAddress):
        parse_addr(text)
    with pytest.raises(InvalidAddress):
        addr_to_bytes(text)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"\xff\xff",
        b"\x04\x01",  # ip4 with one byte
        b"\x96\x03\x05abc",  # thread, length says 5, holds 3
        b"\x96\x03\x03\x05\x55\x00",  # thread id version 5
        bytes.fromhex("047f000001060fa6"),  # a valid multiaddr, but no p2p/thread
    ],
)
def test_bad_binary(data: bytes) -> None:
    with pytest.raises(InvalidAddress):
        ThreadAddr.from_bytes(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=64))
def test_binary_parser_only_raises_invalid_address(data: bytes) -> None:
    try:
        text = addr_from_bytes(data)
    except InvalidAddress:
        return
    assert addr_to_bytes(text) == data


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["ip4", "ip6", "tcp", "p2p", "thread", "1.2.3.4", "::1", "80", PEER, str(TID), "x", ""]
        ),
        max_size=8,
    )
)
def test_string_parser_only_raises_invalid_address(parts: list[str]) -> None:
    text = "/" + "/".join(parts)
    with contextlib.suppress(InvalidAddress):
        ThreadAddr.parse(text)
