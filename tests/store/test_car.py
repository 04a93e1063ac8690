"""CARv1 framing (threadkit.store.car): round trips, and untrusted input refused clearly."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multiformats import varint

from threadkit import errors
from threadkit.core.cid import cid_of
from threadkit.store import car


def _car(blocks: list[bytes], roots: list[bytes] | None = None) -> bytes:
    out = io.BytesIO()
    pairs = [(cid_of(b), b) for b in blocks]
    car.write_car(out, roots if roots is not None else [p[0] for p in pairs[:1]], pairs)
    return out.getvalue()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=300), max_size=12))
def test_round_trip(blocks: list[bytes]) -> None:
    data = _car(blocks)
    roots, read = car.read_car(io.BytesIO(data))
    assert roots == [cid_of(b) for b in blocks[:1]]
    assert read == [(cid_of(b), b) for b in blocks]


def test_header_is_the_cbor_map_of_the_spec() -> None:
    data = _car([b"abc"])
    size, n, _ = varint.decode_raw(data)
    # {"roots": [tag 42 CID], "version": 1}: map of 2, "roots" first (shorter key)
    assert data[n] == 0xA2 and data[n + 1 : n + 7] == b"\x65roots"
    assert data[n + size - 9 :].startswith(b"\x67version\x01")


@pytest.mark.parametrize("cut", [0, 1, 5, 20, -1, -7])
def test_truncated_file_is_invalid_archive(cut: int) -> None:
    data = _car([b"one block", b"another block"])
    short = data[:cut]
    with pytest.raises(errors.InvalidArchive, match=r"truncated|header length"):
        car.read_car(io.BytesIO(short))


def test_block_that_does_not_hash_to_its_cid() -> None:
    data = bytearray(_car([b"honest bytes"]))
    data[-1] ^= 0x01
    with pytest.raises(errors.IntegrityError):
        car.read_car(io.BytesIO(bytes(data)))
    # without verification the bytes come back as they are
    _, blocks = car.read_car(io.BytesIO(bytes(data)), verify=False)
    assert blocks[0][1] != b"honest bytes"


def test_not_a_car_and_wrong_version() -> None:
    with pytest.raises(errors.InvalidArchive):
        car.read_car(io.BytesIO(b"\x05hello"))
    header = b"\xa2\x65roots\x80\x67version\x02"
    with pytest.raises(errors.InvalidArchive, match="version 1"):
        car.read_car(io.BytesIO(varint.encode(len(header)) + header))


def test_lengths_over_the_limits_are_refused_unread() -> None:
    huge = varint.encode(car.MAX_HEADER_SIZE + 1)
    with pytest.raises(errors.InvalidArchive, match="header length"):
        car.read_car(io.BytesIO(huge + b"\x00" * 10))
    data = _car([]) + varint.encode(car.MAX_SECTION_SIZE + 1)
    with pytest.raises(errors.InvalidArchive, match="section length"):
        car.read_car(io.BytesIO(data))
    with pytest.raises(errors.InvalidArchive, match="varint"):
        car.read_car(io.BytesIO(_car([]) + b"\xff" * 12))


def test_foreign_cid_kinds_are_refused() -> None:
    raw_cid = b"\x01\x55\x12\x20" + bytes(32)  # CIDv1 raw codec: not what threadkit writes
    data = _car([]) + varint.encode(len(raw_cid) + 3) + raw_cid + b"abc"
    with pytest.raises(errors.InvalidArchive, match="CIDv1 dag-cbor"):
        car.read_car(io.BytesIO(data))
