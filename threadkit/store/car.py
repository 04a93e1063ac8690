"""CARv1 archives: IPLD's Content Addressable aRchive, written and read as a stream.

A CARv1 file is ``varint(len) ‖ header`` followed by ``varint(len) ‖ CID ‖ block``
sections, where the header is the DAG-CBOR map ``{version: 1, roots: [CID, …]}``
(the IPLD CARv1 specification). Varints come from ``multiformats.varint``; the
framing is written here because no maintained Python package writes CAR files as a
stream or hands back a block's raw bytes (docs/lifecycle.md, "Why the framing is
ours").

The reader takes untrusted input: every length is bounded before anything is
read, a truncated section is :class:`~threadkit.errors.InvalidArchive`, and with
``verify=True`` every block must hash to its CID
(:class:`~threadkit.errors.IntegrityError`).

Examples
--------
>>> import io
>>> from threadkit.core.cid import cid_of
>>> out = io.BytesIO()
>>> block = b"\\x41\\x00"
>>> write_car(out, [cid_of(block)], [(cid_of(block), block)])  # bytes written
98
>>> roots, blocks = read_car(io.BytesIO(out.getvalue()))
>>> [bytes(b) for _, b in blocks] == [block]
True
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from multiformats import varint

from threadkit.core import dagcbor
from threadkit.core.cid import CID_PREFIX, CID_SIZE, verify_block
from threadkit.core.dagcbor import Link
from threadkit.errors import InvalidArchive, MalformedRecord

__all__ = ["MAX_HEADER_SIZE", "MAX_SECTION_SIZE", "iter_blocks", "read_car", "write_car"]

MAX_HEADER_SIZE = 64 * 1024
"""Largest CAR header read (a header holds the version and a few root CIDs)."""

MAX_SECTION_SIZE = 32 * 1024 * 1024
"""Largest ``CID ‖ block`` section read; above threadkit's largest block (a 16 MiB body)."""

_MAX_VARINT = 9


def write_car(out: BinaryIO, roots: list[bytes], blocks: Iterable[tuple[bytes, bytes]]) -> int:
    """Write a CARv1 archive to ``out``; returns the bytes written.

    Parameters
    ----------
    out : BinaryIO
        A binary file open for writing.
    roots : list[bytes]
        Binary CIDs of the archive's roots.
    blocks : Iterable[tuple[bytes, bytes]]
        ``(binary CID, block bytes)`` pairs, written in this order.
    """
    header = dagcbor.encode({"version": 1, "roots": [Link(r) for r in roots]})
    written = out.write(_encode_varint(len(header)) + header)
    for cid, block in blocks:
        written += out.write(_encode_varint(len(cid) + len(block)) + cid)
        written += out.write(block)
    return written


def read_car(
    source: BinaryIO, verify: bool = True
) -> tuple[list[bytes], list[tuple[bytes, bytes]]]:
    """Read a whole CARv1 archive: its roots and its ``(CID, block)`` pairs in file order.

    Raises
    ------
    InvalidArchive
        Not a CARv1 archive, truncated, or a length over the limits.
    IntegrityError
        With ``verify``, a block whose bytes do not hash to its CID.
    """
    roots, blocks = iter_blocks(source, verify)
    return roots, list(blocks)


def iter_blocks(
    source: BinaryIO, verify: bool = True
) -> tuple[list[bytes], Iterator[tuple[bytes, bytes]]]:
    """The roots of a CARv1 archive (read now) and an iterator over its blocks (read lazily)."""
    size = _read_varint(source, "header length", allow_end=False)
    if size is None or size == 0 or size > MAX_HEADER_SIZE:
        raise InvalidArchive(f"CAR header length {size} is not in 1..{MAX_HEADER_SIZE}")
    try:
        header = dagcbor.decode(_read_exact(source, size, "header"), "CAR header")
    except MalformedRecord as exc:
        raise InvalidArchive(f"not a CAR file: {exc}") from None
    if not isinstance(header, dict) or header.get("version") != 1:
        raise InvalidArchive("not a CARv1 file: the header has no version 1")
    roots = header.get("roots")
    if not isinstance(roots, list) or not all(isinstance(r, Link) for r in roots):
        raise InvalidArchive("CAR header roots must be a list of CIDs")
    return [bytes(r) for r in roots], _blocks(source, verify)


def _blocks(source: BinaryIO, verify: bool) -> Iterator[tuple[bytes, bytes]]:
    while True:
        size = _read_varint(source, "section length", allow_end=True)
        if size is None:
            return
        if not CID_SIZE <= size <= MAX_SECTION_SIZE:
            raise InvalidArchive(
                f"CAR section length {size} is not in {CID_SIZE}..{MAX_SECTION_SIZE}"
            )
        section = _read_exact(source, size, "section")
        cid, block = section[:CID_SIZE], section[CID_SIZE:]
        if not cid.startswith(CID_PREFIX):
            raise InvalidArchive(
                f"block CID {cid.hex()[:16]}… is not a CIDv1 dag-cbor sha2-256 (the only kind "
                "threadkit writes and can check)"
            )
        if verify:
            verify_block(cid, block, "CAR block")
        yield cid, block


# multiformats.varint checks its arguments' types at run time (~15 µs a call, most of a
# raw CAR read of small blocks); section lengths repeat, so each is coded by it once
@functools.lru_cache(maxsize=4096)
def _encode_varint(value: int) -> bytes:
    return varint.encode(value)


@functools.lru_cache(maxsize=4096)
def _decode_varint(raw: bytes) -> int:
    value: int = varint.decode(raw)
    return value


def _read_varint(source: BinaryIO, what: str, allow_end: bool) -> int | None:
    raw = bytearray()
    while True:
        byte = source.read(1)
        if not byte:
            if not raw and allow_end:
                return None
            raise InvalidArchive(f"CAR file truncated in a {what}")
        raw += byte
        if not byte[0] & 0x80:
            break
        if len(raw) >= _MAX_VARINT:
            raise InvalidArchive(f"CAR {what} varint is longer than {_MAX_VARINT} bytes")
    try:
        value = _decode_varint(bytes(raw))
    except ValueError as exc:
        raise InvalidArchive(f"CAR {what}: {exc}") from None
    return value


def _read_exact(source: BinaryIO, size: int, what: str) -> bytes:
    data = source.read(size)
    if len(data) != size:
        raise InvalidArchive(f"CAR file truncated: a {what} of {size} bytes has only {len(data)}")
    return data
