"""Keys of the store's tables: parts are prefix-free, locators round-trip."""

from __future__ import annotations

import pytest

from threadkit.core.identity import Identity
from threadkit.core.ids import ThreadID, Variant
from threadkit.errors import InvalidKey, InvalidThreadID, StoreError
from threadkit.store import layout


def test_part_is_length_prefixed() -> None:
    assert layout.part(b"abc") == b"\x03abc"
    assert layout.part(b"") == b"\x00"
    with pytest.raises(StoreError, match="too long"):
        layout.part(b"x" * 256)


def test_thread_prefixes_do_not_run_into_longer_ids() -> None:
    short = ThreadID.new(size=16)
    longer = ThreadID.from_bytes(short.to_bytes() + b"\x00")
    assert longer.to_bytes().startswith(short.to_bytes())
    assert not layout.thread_prefix(longer).startswith(layout.thread_prefix(short))


def test_log_prefix_is_thread_part_then_log_part() -> None:
    tid, ident = ThreadID.new(), Identity.generate()
    prefix = layout.log_prefix(tid, ident.public.peer_id)
    peer = b"\x00\x24" + ident.public.to_bytes()  # identity multihash of the key
    assert prefix == layout.part(tid.to_bytes()) + layout.part(peer)


def test_locator_round_trip() -> None:
    tid, log_id = ThreadID.new(Variant.ACCESS_CONTROLLED), Identity.generate().public.peer_id
    prefix = layout.log_prefix(tid, log_id)
    locator = layout.index_key(prefix, 2**40 + 3)
    assert layout.split_locator(locator) == (tid, log_id, 2**40 + 3)
    assert layout.locator_counter(locator) == 2**40 + 3
    assert layout.in_log(locator, prefix)
    assert not layout.in_log(locator, layout.log_prefix(ThreadID.new(), log_id))


def test_index_keys_sort_by_counter() -> None:
    prefix = layout.log_prefix(ThreadID.new(), Identity.generate().public.peer_id)
    keys = [layout.index_key(prefix, n) for n in (1, 2, 255, 256, 70000)]
    assert sorted(keys) == keys


@pytest.mark.parametrize("locator", [b"", b"\x05abc", b"\x01a\x00" + bytes(8), b"\x01a\x01b"])
def test_damaged_locator(locator: bytes) -> None:
    with pytest.raises(StoreError, match="damaged"):
        layout.split_locator(locator)


def test_bad_ids() -> None:
    with pytest.raises(InvalidThreadID, match="expected a ThreadID"):
        layout.thread_prefix("bafk")  # type: ignore[arg-type]
    with pytest.raises(InvalidThreadID, match="expected a ThreadID"):
        layout.log_prefix(b"x", "12D3KooW")  # type: ignore[arg-type]
    with pytest.raises(InvalidThreadID, match="too long"):
        layout.thread_prefix(ThreadID.new(size=300))
    with pytest.raises(InvalidKey):
        layout.log_prefix(ThreadID.new(), "not base58 0OIl")
    with pytest.raises(InvalidKey, match="peer id string"):
        layout.log_prefix(ThreadID.new(), b"12D3")  # type: ignore[arg-type]
