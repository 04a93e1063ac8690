"""Multiaddrs with the ``thread`` protocol (code 406), and thread addresses.

A thread address is a host address followed by ``/p2p/<peer id>/thread/<thread id>``,
for example ``/ip4/127.0.0.1/tcp/4006/p2p/12D3KooW…/thread/bafk…``. Parsing and
the binary form come from ``multiformats.multiaddr``; threadkit registers the
value codecs of ``p2p`` and ``thread`` with it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from multiformats import multiaddr
from multiformats.multiaddr import raw as _raw

from threadkit.core.identity import peer_id_bytes
from threadkit.core.ids import ThreadID
from threadkit.errors import InvalidAddress, InvalidKey, InvalidThreadID

__all__ = [
    "CircuitAddr",
    "ThreadAddr",
    "addr_from_bytes",
    "addr_to_bytes",
    "dial_target",
    "host_port",
    "listen_addr",
    "parse_addr",
    "tcp_port",
]


def _p2p_encoder(text: str) -> bytes:
    try:
        return peer_id_bytes(text)
    except InvalidKey as exc:
        raise multiaddr.err.MultiaddrValueError(str(exc)) from None


def _p2p_decoder(data: Any) -> str:
    import base58

    return str(base58.b58encode(bytes(data)).decode())


def _thread_encoder(text: str) -> bytes:
    try:
        return ThreadID.from_string(text).to_bytes()
    except InvalidThreadID as exc:
        raise multiaddr.err.MultiaddrValueError(str(exc)) from None


def _thread_decoder(data: Any) -> str:
    try:
        return str(ThreadID.from_bytes(bytes(data)))
    except InvalidThreadID as exc:
        raise multiaddr.err.MultiaddrValueError(str(exc)) from None


def _text_encoder(text: str) -> bytes:
    if not text or "/" in text or any(ord(c) < 0x20 for c in text):
        raise multiaddr.err.MultiaddrValueError(f"invalid name {text!r}")
    return text.encode()


def _text_decoder(data: Any) -> str:
    try:
        text = bytes(data).decode()
    except UnicodeDecodeError as exc:
        raise multiaddr.err.MultiaddrValueError(str(exc)) from None
    _text_encoder(text)
    return text


for _name, _enc, _dec in (
    ("p2p", _p2p_encoder, _p2p_decoder),
    ("thread", _thread_encoder, _thread_decoder),
    ("dns", _text_encoder, _text_decoder),
    ("dns4", _text_encoder, _text_decoder),
    ("dns6", _text_encoder, _text_decoder),
    ("dnsaddr", _text_encoder, _text_decoder),
    ("sni", _text_encoder, _text_decoder),
):
    if not _raw.exists(_name):
        _raw.register(_name, _enc, _dec, None)
for _name in ("quic-v1", "webtransport"):
    if not _raw.exists(_name):
        _raw.register(_name, None, None, 0)


_CIRCUIT = "/p2p-circuit"
_CIRCUIT_CODE = b"\xa2\x02"  # varint of p2p-circuit's code, 0x0122


class CircuitAddr:
    """A relayed multiaddr, ``<relay addr>/p2p-circuit/p2p/<peer id>[/thread/<id>]``.

    multiformats refuses a protocol that appears twice, and a relayed address names two
    peers: it is kept as two multiaddrs, the relay's (ending ``/p2p-circuit``) and the
    rest, whose text and binary forms are simply concatenated, as go-multiaddr's are.

    Examples
    --------
    >>> relay_id = "12D3KooWKizFYDpdWVknp3gtswXyvPCHxU9RRP8bSFbfcRsVaCJc"
    >>> relay = f"/ip4/198.51.100.10/tcp/4006/p2p/{relay_id}"
    >>> peer = "12D3KooWHYX7N2TyWsB2jNUwC7w3QkrjH25x3XBukq7oJCp3ebab"
    >>> addr = parse_addr(f"{relay}/p2p-circuit/p2p/{peer}")
    >>> addr_from_bytes(bytes(addr)) == str(addr) == f"{relay}/p2p-circuit/p2p/{peer}"
    True
    """

    __slots__ = ("head", "tail")

    def __init__(self, head: Any, tail: Any) -> None:
        self.head = head
        self.tail = tail

    def __iter__(self) -> Any:
        yield from self.head
        yield from self.tail

    def __bytes__(self) -> bytes:
        return bytes(self.head) + bytes(self.tail)

    def __str__(self) -> str:
        return str(self.head) + str(self.tail)


def parse_addr(text: str) -> Any:
    """Parse a multiaddr string (any protocol multiformats knows, plus p2p and thread).

    A relayed address (``…/p2p-circuit/…``) gives a :class:`CircuitAddr`.
    """
    if not isinstance(text, str) or not text.startswith("/"):
        raise InvalidAddress(f"multiaddr must be a string starting with '/', got {text!r}")
    try:
        if _CIRCUIT + "/" in text:
            head, _, tail = text.partition(_CIRCUIT + "/")
            return CircuitAddr(multiaddr.parse(head + _CIRCUIT), multiaddr.parse("/" + tail))
        return multiaddr.parse(text)
    except (ValueError, KeyError) as exc:
        raise InvalidAddress(f"multiaddr {text[:200]!r} is not valid: {exc}") from None


def _decode_circuit(data: bytes) -> CircuitAddr | None:
    """The relayed address ``data`` encodes, or None (tries each p2p-circuit code's place)."""
    start = 0
    while (at := data.find(_CIRCUIT_CODE, start)) >= 0:
        start = at + 1
        cut = at + len(_CIRCUIT_CODE)
        try:
            head, tail = multiaddr.decode(data[:cut]), multiaddr.decode(data[cut:])
        except (ValueError, KeyError, IndexError):
            continue
        if bytes(head) + bytes(tail) == data and str(head).endswith(_CIRCUIT):
            return CircuitAddr(head, tail)
    return None


def addr_to_bytes(text: str) -> bytes:
    """The binary form of a multiaddr string (cached: multiformats checks types at run time)."""
    if not isinstance(text, str):
        raise InvalidAddress(f"multiaddr must be a string starting with '/', got {text!r}")
    return _addr_to_bytes(text)


@lru_cache(maxsize=8192)
def _addr_to_bytes(text: str) -> bytes:
    return bytes(parse_addr(text))


def addr_from_bytes(data: bytes) -> str:
    """The string form of a binary multiaddr (cached, like :func:`addr_to_bytes`)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidAddress(f"binary multiaddr must be bytes, got {type(data).__name__}")
    return _addr_from_bytes(bytes(data))


@lru_cache(maxsize=8192)
def _addr_from_bytes(data: bytes) -> str:
    try:
        decoded = multiaddr.decode(bytes(data))
    except (ValueError, KeyError, IndexError) as exc:
        circuit = _decode_circuit(bytes(data)) if _CIRCUIT_CODE in data else None
        if circuit is not None:
            return str(circuit)
        raise InvalidAddress(f"binary multiaddr is not valid: {exc}") from None
    # multiformats reads past a short length prefix without complaint: re-encode to be sure
    if bytes(decoded) != bytes(data):
        raise InvalidAddress("binary multiaddr is truncated or not in canonical form")
    return str(decoded)


@dataclass(frozen=True)
class ThreadAddr:
    """A thread's address: where a peer serves it.

    Attributes
    ----------
    host : str
        The transport part, e.g. ``/ip4/127.0.0.1/tcp/4006`` (may be empty).
    peer_id : str
        The serving peer's id.
    thread_id : ThreadID
        The thread.

    Examples
    --------
    >>> tid = ThreadID.from_string("bafkqaaicamcakbqhbaequcymbuha6earcijrifiwc4mbsgq3dqor4hy")
    >>> a = ThreadAddr("/ip4/127.0.0.1/tcp/4006",
    ...                "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq", tid)
    >>> ThreadAddr.parse(str(a)) == a
    True
    """

    host: str
    peer_id: str
    thread_id: ThreadID

    @classmethod
    def parse(cls, text: str) -> ThreadAddr:
        """Parse ``<host>/p2p/<peer id>/thread/<thread id>``."""
        # through the binary form, so every spelling of a host gives the same value
        parsed = parse_addr(text)
        if isinstance(parsed, CircuitAddr):
            relay, rest = parsed.head, cls.parse(str(parsed.tail))
            if rest.host:
                raise InvalidAddress(f"a relayed address has one /p2p-circuit: {text[:200]!r}")
            return cls(str(multiaddr.decode(bytes(relay))), rest.peer_id, rest.thread_id)
        parts: list[Any] = list(multiaddr.decode(bytes(parsed)))
        protos = [getattr(part, "proto", part).name for part in parts]  # a Proto has no value
        if len(parts) < 2 or protos[-1] != "thread" or protos[-2] != "p2p":
            raise InvalidAddress(
                f"thread address must end in /p2p/<peer id>/thread/<thread id>: {text[:200]!r}"
            )
        host = "".join(str(part) for part in parts[:-2])
        peer_id = str(parts[-2].value)
        thread_id = ThreadID.from_string(str(parts[-1].value))
        return cls(host, peer_id, thread_id)

    @classmethod
    def from_bytes(cls, data: bytes) -> ThreadAddr:
        """Parse the binary multiaddr form."""
        return cls.parse(addr_from_bytes(data))

    def to_bytes(self) -> bytes:
        """The binary multiaddr form."""
        return addr_to_bytes(str(self))

    @property
    def peer_addr(self) -> str:
        """The address without the thread part: ``<host>/p2p/<peer id>``."""
        return f"{self.host}/p2p/{self.peer_id}"

    def __str__(self) -> str:
        return f"{self.peer_addr}/thread/{self.thread_id}"


# ----------------------------------------------------- TCP endpoints of multiaddrs

_HOST_PROTOCOLS = frozenset({"ip4", "ip6", "dns4", "dns6", "dns"})


def _components(addr: str) -> list[str]:
    """The ``/``-separated components of a multiaddr's text (no empty ends)."""
    return addr.strip().strip("/").split("/")


def _host_text(protocol: str, host: str) -> str:
    """A host as a socket address spells it (an IPv6 address in brackets)."""
    return f"[{host}]" if protocol == "ip6" else host


def host_port(addr: str, what: str) -> tuple[str, int]:
    """``host`` and ``port`` of ``/ip4/H/tcp/P`` (also ``/ip6`` and ``/dns*`` hosts).

    Parameters
    ----------
    addr : str
        Exactly a host and a TCP port, nothing after them.
    what : str
        The setting's name, to start the error message with.

    Returns
    -------
    tuple of (str, int)
        The host (an IPv6 address in brackets) and the port.

    Raises
    ------
    InvalidAddress
        For anything else, a malformed IP address or a port outside 0–65535.

    Examples
    --------
    >>> host_port("/ip4/127.0.0.1/tcp/6006", "apiAddr")
    ('127.0.0.1', 6006)
    >>> host_port("/ip6/::1/tcp/0", "apiAddr")
    ('[::1]', 0)
    """
    parts = _components(addr)
    if len(parts) != 4 or parts[0] not in _HOST_PROTOCOLS or parts[2] != "tcp" or not parts[1]:
        raise InvalidAddress(f"{what}: {addr!r} is not an /ip4/<host>/tcp/<port> address")
    if parts[0] in ("ip4", "ip6"):
        parse = ipaddress.IPv4Address if parts[0] == "ip4" else ipaddress.IPv6Address
        try:
            parse(parts[1])
        except ValueError:
            raise InvalidAddress(f"{what}: {parts[1]!r} is not an {parts[0]} address") from None
    if not parts[3].isdigit() or not 0 <= int(parts[3]) <= 65535:
        raise InvalidAddress(f"{what}: port {parts[3]!r} is not a number from 0 to 65535")
    return _host_text(parts[0], parts[1]), int(parts[3])


def listen_addr(addr: str, what: str) -> str:
    """A libp2p listen address, checked: ``/ip4/<ip>/tcp/<port>`` or ``/ip6/<ip>/tcp/<port>``.

    Returns
    -------
    str
        ``addr`` without surrounding white space.

    Raises
    ------
    InvalidAddress
        For a DNS host, another transport, a malformed IP address or port.

    Examples
    --------
    >>> listen_addr(" /ip4/0.0.0.0/tcp/4006 ", "hostAddr")
    '/ip4/0.0.0.0/tcp/4006'
    """
    if not addr.strip().startswith(("/ip4/", "/ip6/")):
        raise InvalidAddress(f"{what}: {addr!r} is not an /ip4/<ip>/tcp/<port> address")
    host_port(addr, what)
    return addr.strip()


def dial_target(addr: str) -> str:
    """A gRPC dial target ``host:port`` from ``host:port`` or ``/ip4/<host>/tcp/<port>/…``.

    A ``host:port`` (``http://`` dropped) is passed on as it is; of a multiaddr, what follows
    the port is ignored.

    Raises
    ------
    InvalidAddress
        A multiaddr without a host and a TCP port.

    Examples
    --------
    >>> dial_target("/ip6/::1/tcp/6006")
    '[::1]:6006'
    >>> dial_target("http://127.0.0.1:6006")
    '127.0.0.1:6006'
    """
    if addr.startswith("/"):
        parts = _components(addr)
        if len(parts) >= 4 and parts[2] == "tcp":
            return f"{_host_text(parts[0], parts[1])}:{parts[3]}"
        raise InvalidAddress(f"{addr!r} is not an /ip4/<host>/tcp/<port> address")
    return addr.removeprefix("http://")


def tcp_port(addrs: Iterable[str]) -> int | None:
    """The TCP port of the first address that has one (None when none has).

    Examples
    --------
    >>> tcp_port(["/ip4/127.0.0.1/udp/9/quic-v1", "/ip4/127.0.0.1/tcp/4006/p2p/12D3KooW"])
    4006
    """
    for addr in addrs:
        parts = _components(addr)
        if "tcp" in parts:
            return int(parts[parts.index("tcp") + 1])
    return None
