"""Stored instance event values decoded at once, as columns.

An events value is the CBOR array ``[action code, data, base, author, record CID,
seen?, purged?]`` (:mod:`threadkit.db.eventscan`). :func:`decode_values` decodes a
million of them in one ``cbor2.loads`` call, and without a list per event: each
value is preceded by the byte ``41`` (a CBOR byte string of length 1), which takes
the value's own array head (``85``: five items) as its content. The stream is then
a flat sequence of six items per event, ``b"\\x85", code, data, base, author,
record``, read out by slices of stride 6. A byte string of one byte is a shared
object in CPython, so nothing is allocated for the head; the action code (an
integer below 24 is its own one-byte head) is read from the bytes.

Values of six or seven items (written with a migration's ``seen`` or a purge's
mark) are decoded as arrays, apart, and merged back in place.

Examples
--------
>>> import cbor2
>>> stored = [cbor2.dumps([0, {"a": 1}, None, "k", b"r"]), cbor2.dumps([1, None, b"o", "k", b"s"])]
>>> decoded = decode_values(stored)
>>> decoded.codes.tolist(), list(decoded.data), list(decoded.authors), list(decoded.records)
([0, 1], [{'a': 1}, None], ['k', 'k'], [b'r', b's'])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cbor2

from threadkit.db.events import array_header
from threadkit.db.purge import MARKER

__all__ = ["EventValues", "decode_values"]

_SHORT_HEAD = 0x85  # an array of five items: [code, data, base, author, record]
_PURGED_AT = 6  # [code, data, base, author, record, seen, purged]


@dataclass(frozen=True, slots=True)
class EventValues:
    """Decoded event values, one entry per value, in the order given.

    Attributes
    ----------
    codes : numpy.ndarray
        The action codes (int64).
    data : Sequence
        Each event's data; ``{"_purged": True}`` for an event a purge erased.
    authors : Sequence
        The author (the record's public key string) of each.
    records : Sequence
        The CID bytes of the record that carried each.
    """

    codes: Any
    data: Sequence[Any]
    authors: Sequence[Any]
    records: Sequence[Any]


def decode_values(values: Sequence[bytes], chunk: int = 1 << 14) -> EventValues:
    """Decode stored instance event values at once (see the module's docstring).

    Parameters
    ----------
    values : Sequence[bytes]
        Values of the events table.
    chunk : int, optional
        How many values each ``cbor2`` call decodes: a stream of a few megabytes
        is decoded in memory the previous one freed, instead of in fresh pages.

    Returns
    -------
    EventValues
        Their fields, in the same order.

    Raises
    ------
    cbor2.CBORDecodeError
        When a value is not CBOR.
    """
    import numpy as np

    if len(values) <= chunk:
        return _decode(values)
    codes: list[Any] = []
    data: list[Any] = []
    authors: list[Any] = []
    records: list[Any] = []
    for start in range(0, len(values), chunk):
        part = _decode(values[start : start + chunk])
        codes.append(part.codes)
        data.extend(part.data)
        authors.extend(part.authors)
        records.extend(part.records)
    return EventValues(np.concatenate(codes), data, authors, records)


def _decode(values: Sequence[bytes]) -> EventValues:
    import numpy as np

    n = len(values)
    if not n:
        return EventValues(np.zeros(0, dtype=np.int64), [], [], [])
    sizes = np.fromiter(map(len, values), dtype=np.int64, count=n)
    head = array_header(6 * n)
    stream = b"\x41".join([head, *values])
    view = np.frombuffer(stream, dtype=np.uint8)
    starts = np.cumsum(sizes + 1) - sizes + len(head)  # each value's first byte
    firsts, seconds = (view[np.minimum(starts + i, len(view) - 1)] for i in (0, 1))
    short = (firsts == _SHORT_HEAD) & (seconds < 24) & (sizes > 1)
    if short.all():
        flat = cbor2.loads(stream)
        return EventValues(seconds.astype(np.int64), flat[2::6], flat[4::6], flat[5::6])
    del stream, view
    return _mixed(values, short)


def _mixed(values: Sequence[bytes], short: Any) -> EventValues:
    """Values some of which are not five-item arrays: those decoded as arrays, apart."""
    import numpy as np

    inside, apart = np.flatnonzero(short), np.flatnonzero(~short)
    fast = _decode([values[i] for i in inside.tolist()])
    picked = [values[i] for i in apart.tolist()]
    rows = cbor2.loads(array_header(len(picked)) + b"".join(picked))
    data = [
        dict(MARKER) if len(row) > _PURGED_AT and row[_PURGED_AT] is not None else row[1]
        for row in rows
    ]
    columns: list[Any] = []
    for first, second in (
        (fast.data, data),
        (fast.authors, [row[3] for row in rows]),
        (fast.records, [row[4] for row in rows]),
    ):
        column = np.empty(len(values), dtype=object)
        column[inside] = _objects(first)
        column[apart] = _objects(second)
        columns.append(column)
    codes = np.empty(len(values), dtype=np.int64)
    codes[inside] = fast.codes
    codes[apart] = [row[0] for row in rows]
    return EventValues(codes, columns[0], columns[1], columns[2])


def _objects(items: Sequence[Any]) -> Any:
    """A one-dimensional object array of ``items`` (a list of lists stays one-dimensional)."""
    import numpy as np

    return np.fromiter(items, dtype=object, count=len(items))
