"""Values of the store's sub-databases: how each is written and read back.

========== ===================================================================
table      value
========== ===================================================================
threads    CBOR map ``{"key": thread key bytes, "name": str | null,
           "created": int µs since the Unix epoch}``
logs       CBOR map ``{"pubkey": libp2p public key bytes, "privkey": libp2p
           private key bytes (absent for others' logs), "addrs": [multiaddr
           bytes]}``
heads      u64be counter, followed by the head record's CID when counter > 0
records    u16be length of the locator ‖ locator (the record's ``log_index``
           key) ‖ CBOR array ``[prev CID | null, record, event, header, body]``
log_index  the record CID, raw
========== ===================================================================

The locator leads the record value so that "which log holds this CID?" is
answered without decoding (or copying) the blocks.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import cbor2

from threadkit.core.identity import Identity, PublicKey
from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.core.records import Record, RecordBlocks
from threadkit.errors import StoreError
from threadkit.store.models import ThreadInfo

__all__ = [
    "decode_head",
    "decode_log",
    "decode_record",
    "decode_thread",
    "encode_head",
    "encode_log",
    "encode_record",
    "encode_thread",
    "record_locator",
]

_COUNTER = 8
_LOC_LEN = 2


def encode_thread(key: ThreadKey, name: str | None, created_us: int) -> bytes:
    """The ``threads`` value of a thread.

    Parameters
    ----------
    key : ThreadKey
        The thread key.
    name : str | None
        The local name.
    created_us : int
        Creation time, microseconds since the Unix epoch.
    """
    return cbor2.dumps({"key": key.to_bytes(), "name": name, "created": created_us})


def decode_thread(thread_id: ThreadID, data: bytes) -> ThreadInfo:
    """The :class:`ThreadInfo` of a ``threads`` value.

    Raises
    ------
    StoreError
        When the value is damaged.
    """
    value = _loads(data, "thread")
    try:
        created = datetime.fromtimestamp(value["created"] / 1e6, tz=UTC)
        return ThreadInfo(thread_id, ThreadKey.from_bytes(value["key"]), value["name"], created)
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"damaged thread entry for {thread_id}: {exc}") from None


def encode_log(public: PublicKey, private: Identity | None, addrs: list[bytes]) -> bytes:
    """The ``logs`` value of a log.

    Parameters
    ----------
    public : PublicKey
        The log key.
    private : Identity | None
        The private log key, for own logs.
    addrs : list[bytes]
        Binary multiaddrs.
    """
    value: dict[str, Any] = {"pubkey": public.to_bytes(), "addrs": addrs}
    if private is not None:
        value["privkey"] = private.to_bytes()
    return cbor2.dumps(value)


def decode_log(data: bytes) -> tuple[PublicKey, Identity | None, list[bytes]]:
    """The public key, private key (or None) and binary addresses of a ``logs`` value.

    Raises
    ------
    StoreError
        When the value is damaged.
    """
    value = _loads(data, "log")
    try:
        private = value.get("privkey")
        return (
            PublicKey.from_bytes(value["pubkey"]),
            Identity.from_bytes(private) if private is not None else None,
            list(value["addrs"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StoreError(f"damaged log entry: {exc}") from None


def encode_head(cid: bytes | None, counter: int) -> bytes:
    """The ``heads`` value: u64be counter, then the head CID unless the log is empty."""
    return counter.to_bytes(_COUNTER, "big") + (cid or b"")


def decode_head(data: bytes) -> tuple[bytes | None, int]:
    """The head CID (None for an empty log) and counter of a ``heads`` value."""
    counter = int.from_bytes(data[:_COUNTER], "big")
    return (bytes(data[_COUNTER:]) if counter else None), counter


def encode_record(locator: bytes, record: Record) -> bytes:
    """The ``records`` value of a record stored at ``locator``.

    Parameters
    ----------
    locator : bytes
        The record's ``log_index`` key.
    record : Record
        The record.
    """
    blocks = record.blocks
    return (
        len(locator).to_bytes(_LOC_LEN, "big")
        + locator
        + cbor2.dumps([record.prev, blocks.record, blocks.event, blocks.header, blocks.body])
    )


def record_locator(data: bytes) -> bytes:
    """The locator at the start of a ``records`` value, without decoding the blocks.

    ``data`` may be a buffer into the map; the result is a copy.
    """
    end = _LOC_LEN + int.from_bytes(data[:_LOC_LEN], "big")
    return bytes(data[_LOC_LEN:end])


def decode_record(data: bytes) -> tuple[bytes, bytes | None, RecordBlocks]:
    """The locator, prev CID and blocks of a ``records`` value.

    Raises
    ------
    StoreError
        When the value is damaged.
    """
    end = _LOC_LEN + int.from_bytes(data[:_LOC_LEN], "big")
    value = _loads(data[end:], "record")
    try:
        prev, record, event, header, body = value
        return bytes(data[_LOC_LEN:end]), prev, RecordBlocks(record, event, header, body)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"damaged record entry: {exc}") from None


def _loads(data: bytes, what: str) -> Any:
    try:
        return cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError) as exc:
        raise StoreError(f"damaged {what} entry in the repo: {exc}") from None
