"""Values of the store's tables round-trip; damaged values are StoreErrors."""

from __future__ import annotations

import cbor2
import pytest

from threadkit.core.identity import Identity
from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.errors import StoreError
from threadkit.store import codec

from .helpers import make_chain


def test_thread_round_trip() -> None:
    tid, key = ThreadID.new(), ThreadKey.new(read=False)
    info = codec.decode_thread(tid, codec.encode_thread(key, "notes", 1_700_000_000_123_456))
    assert (info.id, info.key, info.name) == (tid, key, "notes")
    assert info.created.timestamp() == pytest.approx(1_700_000_000.123456)
    assert info.created.tzinfo is not None


def test_log_round_trip() -> None:
    ident = Identity.generate()
    addrs = [b"\x04\x7f\x00\x00\x01"]
    assert codec.decode_log(codec.encode_log(ident.public, ident, addrs)) == (
        ident.public,
        ident,
        addrs,
    )
    assert codec.decode_log(codec.encode_log(ident.public, None, [])) == (ident.public, None, [])


def test_head_round_trip() -> None:
    assert codec.decode_head(codec.encode_head(None, 0)) == (None, 0)
    cid = b"\x01\x71\x12\x20" + bytes(32)
    assert codec.encode_head(cid, 7) == (7).to_bytes(8, "big") + cid
    assert codec.decode_head(codec.encode_head(cid, 7)) == (cid, 7)


def test_record_round_trip() -> None:
    first, second = make_chain(Identity.generate(), ThreadKey.new(), 2)
    value = codec.encode_record(b"locator", second)
    assert codec.record_locator(value) == b"locator"
    assert codec.record_locator(memoryview(value)) == b"locator"
    assert codec.decode_record(value) == (b"locator", first.cid, second.blocks)
    assert codec.decode_record(codec.encode_record(b"l", first))[1] is None


@pytest.mark.parametrize(
    ("decode", "value"),
    [
        (lambda v: codec.decode_thread(ThreadID.new(), v), b"\xff"),
        (lambda v: codec.decode_thread(ThreadID.new(), v), cbor2.dumps({"key": b"short"})),
        (codec.decode_log, cbor2.dumps({"pubkey": b"x", "addrs": []})),
        (codec.decode_log, cbor2.dumps([1, 2])),
        (codec.decode_record, b"\x00\x01L" + cbor2.dumps([1, 2])),
        (codec.decode_record, b"\x00\x01L\xff"),
    ],
)
def test_damaged_values(decode: object, value: bytes) -> None:
    with pytest.raises(StoreError, match="damaged"):
        decode(value)  # type: ignore[operator]
