"""Messages of ``/threadkit/1.1.0`` and ``/threadkit/1.0.0`` (docs/protocol.md).

The two protocol ids carry the same messages: ``/threadkit/1.1.0`` many exchanges per
stream, ``/threadkit/1.0.0`` one (peers from before long-lived streams). This module
encodes, decodes and checks them.

Everything a peer receives goes through :func:`decode_request` or
:func:`decode_reply`, which check the shape of every field and raise
``ProtocolError`` for anything else, so handlers only see well-formed messages.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import cbor2

from threadkit.core.records import RecordBlocks
from threadkit.errors import ProtocolError

__all__ = [
    "MAX_FRAME",
    "MAX_PUSH_BYTES",
    "MAX_RECORDS",
    "MAX_REPLY_BYTES",
    "PROTOCOL_ID",
    "PROTOCOL_IDS",
    "PROTOCOL_ID_PERSISTENT",
    "VERSION",
    "LogEntry",
    "auth_token",
    "decode_reply",
    "decode_request",
    "encode",
    "error_reply",
    "ok_reply",
    "read_key_check",
]

PROTOCOL_ID = "/threadkit/1.0.0"
"""One request and one reply per stream (the first version; still served and spoken)."""

PROTOCOL_ID_PERSISTENT = "/threadkit/1.1.0"
"""The same messages, many request/reply exchanges (one at a time) per long-lived stream."""

PROTOCOL_IDS = (PROTOCOL_ID_PERSISTENT, PROTOCOL_ID)
"""What a client offers, in order of preference (multistream-select picks the first known)."""

VERSION = 1
MAX_FRAME = 32 * 1024 * 1024
MAX_RECORDS = 1000
MAX_REPLY_BYTES = 8 * 1024 * 1024
MAX_PUSH_BYTES = 8 * 1024 * 1024
"""Bytes of records a ``push_records`` carries at most, unless one record alone is larger.

A record is at most 16 MiB and 12 KiB (``threadkit.core.records``), so a push is at most
that much plus CBOR framing: always below :data:`MAX_FRAME`."""
_AUTH_DOMAIN = b"threadkit/1.0.0 auth"
_READ_CHECK_DOMAIN = b"threadkit/1.0.0 read key check"

REQUEST_TYPES = frozenset(
    {"get_logs", "push_log", "get_records", "push_records", "exchange_edges"}
    | {"get_snapshot", "get_blocks"}  # joining from a snapshot (threadkit/net/bootstrap.py)
)


@dataclass(frozen=True, slots=True)
class LogEntry:
    """A log as peers describe it to each other."""

    id: bytes
    pub: bytes
    addrs: tuple[bytes, ...]
    counter: int

    def to_node(self) -> dict[str, Any]:
        """The CBOR-ready map."""
        return {"id": self.id, "pub": self.pub, "addrs": list(self.addrs), "counter": self.counter}

    @classmethod
    def from_node(cls, node: object) -> LogEntry:
        """Parse and check a log entry."""
        entry = _map(node, "log entry")
        addrs = _list(entry.get("addrs", []), "log addrs")
        return cls(
            _bytes(entry.get("id"), "log id", 64),
            _bytes(entry.get("pub"), "log public key", 64),
            tuple(_bytes(a, "log addr", 1024) for a in addrs[:64]),
            _count(entry.get("counter", 0), "log counter"),
        )


def auth_token(service_key: bytes, thread_id: bytes, receiver: bytes) -> bytes:
    """The credential for a call to ``receiver`` (its peer id bytes) about a thread."""
    return hmac.new(service_key, _AUTH_DOMAIN + thread_id + receiver, hashlib.sha256).digest()


def read_key_check(read_key: bytes, thread_id: bytes) -> bytes:
    """What a peer holding a thread's read key sends in ``get_logs`` (``rcheck``).

    A joiner computes the same value with the read key it was given: a mismatch means
    its read key is wrong. The value is a MAC, so it reveals nothing of the key.
    """
    return hmac.new(read_key, _READ_CHECK_DOMAIN + thread_id, hashlib.sha256).digest()


def check_auth(token: object, service_key: bytes, thread_id: bytes, me: bytes) -> bool:
    """True when ``token`` proves the caller holds the thread's service key."""
    if not isinstance(token, bytes):
        return False
    return hmac.compare_digest(token, auth_token(service_key, thread_id, me))


def encode(message: dict[str, Any]) -> bytes:
    """A message as CBOR bytes."""
    return cbor2.dumps(message)


def ok_reply(**fields: Any) -> bytes:
    """A successful reply."""
    return encode({"v": VERSION, "ok": True, **fields})


def error_reply(code: str, message: str) -> bytes:
    """A refusal (``code`` is machine-readable: auth, version, malformed, unknown_thread, …)."""
    return encode({"v": VERSION, "ok": False, "error": code, "message": message[:500]})


def decode_request(data: bytes) -> dict[str, Any]:
    """Parse and check a request; ProtocolError (with a ``code``) for anything malformed."""
    message = _decode(data)
    kind = message.get("t")
    if kind not in REQUEST_TYPES:
        raise ProtocolError(f"unknown request type {kind!r}", code="malformed")
    message["thread"] = (
        _bytes(message.get("thread", b""), "thread id", 128) if kind != "exchange_edges" else None
    )
    if kind == "push_records":
        message["log"] = _bytes(message.get("log"), "log id", 64)
        records = _list(message.get("records"), "records")
        if len(records) > MAX_RECORDS:
            raise ProtocolError(f"more than {MAX_RECORDS} records in one push", code="malformed")
        message["records"] = [blocks_from_node(r) for r in records]
    elif kind == "push_log":
        message["log"] = LogEntry.from_node(message.get("log"))
    elif kind == "get_records":
        wanted = []
        for item in _list(message.get("logs"), "logs")[:1024]:
            entry = _map(item, "log request")
            wanted.append(
                (
                    _bytes(entry.get("id"), "log id", 64),
                    _count(entry.get("after", 0), "after"),
                    min(_count(entry.get("limit", MAX_RECORDS), "limit"), MAX_RECORDS),
                )
            )
        message["logs"] = wanted
    elif kind == "get_blocks":
        cids = _list(message.get("cids"), "cids")[:4096]
        message["cids"] = [_bytes(c, "cid", 64) for c in cids]
    elif kind == "exchange_edges":
        edges = []
        for item in _list(message.get("threads"), "threads")[:4096]:
            entry = _map(item, "edge")
            edges.append(
                (
                    _bytes(entry.get("thread"), "thread id", 128),
                    _bytes(entry.get("auth", b""), "auth", 64),
                    _bytes(entry.get("addrs", b""), "addrs edge", 32),
                    _bytes(entry.get("heads", b""), "heads edge", 32),
                )
            )
        message["threads"] = edges
    return message


def decode_reply(data: bytes) -> dict[str, Any]:
    """Parse a reply; a refusal raises ProtocolError with the peer's code and message."""
    message = _decode(data)
    if message.get("ok") is not True:
        code = message.get("error")
        text = message.get("message")
        raise ProtocolError(
            f"peer refused: {text if isinstance(text, str) else 'no reason'}",
            code=code if isinstance(code, str) else "refused",
        )
    return message


def blocks_to_node(blocks: RecordBlocks) -> list[bytes]:
    """A record's four blocks as a CBOR list."""
    return [blocks.record, blocks.event, blocks.header, blocks.body]


def blocks_from_node(node: object) -> RecordBlocks:
    """Parse a record's four blocks."""
    items = _list(node, "record")
    if len(items) != 4 or not all(isinstance(b, bytes) for b in items):
        raise ProtocolError("a record must be a list of four byte strings", code="malformed")
    return RecordBlocks(*items)


def _decode(data: bytes) -> dict[str, Any]:
    try:
        message = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError, RecursionError) as exc:
        raise ProtocolError(f"message is not CBOR: {exc}", code="malformed") from None
    if not isinstance(message, dict):
        raise ProtocolError("message is not a map", code="malformed")
    if message.get("v") != VERSION:
        raise ProtocolError(f"unsupported protocol version {message.get('v')!r}", code="version")
    return message


def _map(node: object, what: str) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise ProtocolError(f"{what} must be a map", code="malformed")
    return node


def _list(node: object, what: str) -> list[Any]:
    if not isinstance(node, list):
        raise ProtocolError(f"{what} must be a list", code="malformed")
    return node


def _bytes(node: object, what: str, limit: int) -> bytes:
    if not isinstance(node, bytes) or len(node) > limit:
        raise ProtocolError(f"{what} must be at most {limit} bytes", code="malformed")
    return node


def _count(node: object, what: str) -> int:
    if type(node) is not int or not 0 <= node < 2**63:
        raise ProtocolError(f"{what} must be a non-negative integer", code="malformed")
    return node
