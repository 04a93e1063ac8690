"""Stored instance event values decoded at once, as columns.

An events value is the CBOR array ``[action code, data, base, author, record CID,
seen?, purged?]`` (:mod:`threadkit.db.eventscan`). :func:`decode_values` decodes a
chunk of them in one ``cbor2.loads`` call, without a list per event, and without
building the author string and the record CID of each event:

- each value is preceded by the byte ``41`` (a CBOR byte string of length 1),
  which takes the value's own array head (``85``: five items) as its content;
- the author and record of the events of one record are the same bytes at the end
  of each value (the writer stores its record's author and CID with every event).
  Values are grouped by their last 8 bytes; one value of each group is decoded in
  full, and its author and record encoded again give the group's tail. The first
  bytes of that tail, in each value that ends with it, are overwritten with the
  head of a byte string that spans the rest of the tail.

The stream is then five flat items per event, ``b"\\x85", code, data, base,
tail``, read out by slices of stride 5. A byte string of one byte is a shared
object in CPython, so nothing is allocated for the array head; the action code (an
integer below 24 is its own one-byte head) is read from the bytes. What the parse
must give is checked: the ``85`` of every event, every tail (the overwritten bytes
before the overwrite, the rest as decoded) and a last item after the last value;
a chunk that fails a check, or whose values do not all fit (six or seven items: a
migration's ``seen``, a purge's mark; another encoding of the tail), is decoded
value by value, as arrays.

Examples
--------
>>> import cbor2
>>> stored = [cbor2.dumps([0, {"a": 1}, None, "k", b"r"]), cbor2.dumps([1, None, b"o", "k", b"s"])]
>>> decoded = decode_values(stored)
>>> decoded.codes.tolist(), list(decoded.data), decoded.authors, decoded.records
([0, 1], [{'a': 1}, None], ['k', 'k'], [b'r', b's'])
>>> decoded.sources.tolist(), decoded.tails
([0, 1], [('k', b'r'), ('k', b's')])
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import cbor2

from threadkit.db.events import array_header
from threadkit.db.purge import MARKER

__all__ = ["CHUNK", "EventValues", "decode_chunks", "decode_values"]

CHUNK = 1 << 14
"""Values decoded by one ``cbor2`` call: a stream of a few megabytes is decoded in
memory the previous one freed, instead of in fresh pages."""

_SHORT_HEAD = 0x85  # an array of five items: [code, data, base, author, record]
_PURGED_AT = 6  # [code, data, base, author, record, seen, purged]
_SEPARATOR = b"\x41"  # a byte string of one byte: the next byte is its content
_END = b"\xf7"  # after the last value, the content of one more such byte string
_ITEMS = 5  # b"\x85", code, data, base, tail
_SUFFIX = 8  # the bytes that group values by their tail


@dataclass(frozen=True, slots=True)
class EventValues:
    """Decoded event values, one entry per value, in the order given.

    Attributes
    ----------
    codes : numpy.ndarray
        The action codes (int64).
    data : list
        Each event's data; ``{"_purged": True}`` for an event a purge erased.
    sources : numpy.ndarray
        Each event's (author, record) as an index into ``tails`` (intp).
    tails : list[tuple]
        The distinct (author, record) pairs: the record's public key string and the
        CID bytes of the record that carried the events.
    """

    codes: Any
    data: list[Any]
    sources: Any
    tails: list[tuple[Any, Any]]

    @property
    def authors(self) -> list[Any]:
        """The author of each event."""
        return [self.tails[i][0] for i in self.sources.tolist()]

    @property
    def records(self) -> list[Any]:
        """The record CID of each event."""
        return [self.tails[i][1] for i in self.sources.tolist()]


class _Tails:
    """The distinct (author, record) pairs met so far, and each group's stored tail."""

    def __init__(self) -> None:
        self.pairs: list[tuple[Any, Any]] = []
        self._index: dict[tuple[bytes, bytes], int] = {}
        self.by_suffix: dict[int, tuple[int, bytes] | None] = {}

    def add(self, author: Any, record: Any) -> int:
        """The index of a pair (added when new)."""
        key = (cbor2.dumps(author), cbor2.dumps(record))
        at = self._index.get(key)
        if at is None:
            at = self._index[key] = len(self.pairs)
            self.pairs.append((author, record))
        return at

    def of(self, suffix: int, value: bytes) -> tuple[int, bytes] | None:
        """The pair and stored tail of the values ending with ``suffix``, read from one of
        them; None when that value is not a five-item array ending with its pair's bytes."""
        if suffix not in self.by_suffix:
            found: tuple[int, bytes] | None = None
            row = cbor2.loads(value)
            if isinstance(row, list) and len(row) == _ITEMS:
                tail = cbor2.dumps(row[3]) + cbor2.dumps(row[4])
                if value.endswith(tail):
                    found = (self.add(row[3], row[4]), tail)
            self.by_suffix[suffix] = found
        return self.by_suffix[suffix]


def decode_values(values: Sequence[bytes], chunk: int = CHUNK) -> EventValues:
    """Decode stored instance event values at once (see the module's docstring).

    Parameters
    ----------
    values : Sequence[bytes]
        Values of the events table.
    chunk : int, optional
        How many values each ``cbor2`` call decodes.

    Returns
    -------
    EventValues
        Their fields, in the same order.

    Raises
    ------
    cbor2.CBORDecodeError
        When a value is not CBOR.
    """
    return decode_chunks([list(values[at : at + chunk]) for at in range(0, len(values), chunk)])


def decode_chunks(chunks: Iterable[list[bytes]]) -> EventValues:
    """:func:`decode_values` of values given in chunks, each chunk dropped once decoded
    (emptied, when ``chunks`` is a list), so that the memory of the stored values is
    used again while the rest is decoded.

    Parameters
    ----------
    chunks : Iterable[list[bytes]]
        Values of the events table, in chunks of at most a few megabytes (a
        generator that reads them as they are asked for holds only one).

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

    tails = _Tails()
    codes: list[Any] = [np.zeros(0, dtype=np.int64)]
    sources: list[Any] = [np.zeros(0, dtype=np.intp)]
    data: list[Any] = []
    for part in _taken(chunks):
        decoded = _fast(part, tails) or _mixed(part, tails)
        del part
        codes.append(decoded[0])
        data.extend(decoded[1])
        sources.append(decoded[2])
    return EventValues(np.concatenate(codes), data, np.concatenate(sources), tails.pairs)


_Decoded = tuple[Any, list[Any], Any]  # codes, data, sources


def _taken(chunks: Iterable[list[bytes]]) -> Iterator[list[bytes]]:
    """Each chunk, emptied in ``chunks`` (a list) as it is handed over."""
    if not isinstance(chunks, list):
        yield from chunks
        return
    for at, part in enumerate(chunks):
        chunks[at] = []
        yield part


def _fast(part: list[bytes], tails: _Tails) -> _Decoded | None:
    """One chunk of five-item values by one ``cbor2.loads``; None when it does not fit."""
    import numpy as np

    n = len(part)
    if not n:
        return np.zeros(0, dtype=np.int64), [], np.zeros(0, dtype=np.intp)
    head = array_header(_ITEMS * n + 1)
    stream = bytearray(_SEPARATOR).join([head, *part, _END])
    view = np.frombuffer(stream, dtype=np.uint8)
    sizes = np.fromiter(map(len, part), dtype=np.int64, count=n)
    starts = np.cumsum(sizes + 1) - sizes + len(head)  # each value's first byte
    ends = starts + sizes
    seconds = view[starts + 1]  # the byte after the last value's is the separator
    fits = (view[starts] == _SHORT_HEAD) & (seconds < 24) & (sizes > _ITEMS)
    if len(view) < _SUFFIX or not fits.all():
        return None
    groups = _groups(view, ends, part, tails)
    if groups is None:
        return None
    index, tail_bytes, members = groups
    contents = _overwrite(view, ends, tail_bytes, members)
    if contents is None:
        return None
    try:
        flat = cbor2.loads(stream)
    except cbor2.CBORDecodeError:
        return None  # decoded value by value: the error, if any, is the value's own
    del stream, view
    step = _ITEMS * n
    if flat[step] != _END or flat[0:step:_ITEMS].count(bytes([_SHORT_HEAD])) != n:
        return None
    if not _tails_match(flat[_ITEMS - 1 : step : _ITEMS], contents, members):
        return None
    return seconds.astype(np.int64), flat[2:step:_ITEMS], index[members]


def _tails_match(decoded: list[Any], contents: list[bytes], members: Any) -> bool:
    """Whether each value's decoded tail is its group's.

    When every group's content is at least as long as the suffix that grouped the
    values, a value's tail can equal no other group's content (it ends with its own
    group's suffix): counting the values equal to each content is then enough.
    """
    if min(map(len, contents)) >= _SUFFIX:
        return sum(map(decoded.count, contents)) == len(decoded)
    return decoded == [contents[j] for j in members.tolist()]


def _groups(view: Any, ends: Any, part: list[bytes], tails: _Tails) -> Any:
    """Each value's group (by its last bytes), and each group's pair index and stored tail;
    None when a group's tail is not the one this relies on."""
    import numpy as np

    # the 8 bytes from each position of the stream, as one integer (views, not copies)
    words = np.ndarray((len(view) - _SUFFIX + 1,), "<u8", view, 0, (1,))
    suffixes = words[np.maximum(ends - _SUFFIX, 0)]
    if (suffixes == suffixes[0]).all():
        distinct, firsts = suffixes[:1], np.zeros(1, dtype=np.intp)
        members = np.zeros(len(suffixes), dtype=np.intp)
    else:
        distinct, firsts, members = np.unique(suffixes, return_index=True, return_inverse=True)
    index = np.empty(len(distinct), dtype=np.intp)
    tail_bytes: list[bytes] = []
    for j, (suffix, first) in enumerate(zip(distinct.tolist(), firsts.tolist(), strict=True)):
        found = tails.of(suffix, part[first])
        if found is None:
            return None
        index[j] = found[0]
        tail_bytes.append(found[1])
    return index, tail_bytes, members.ravel()


def _byte_string_head(size: int) -> bytes | None:
    """The head of a byte string that, with its content, is ``size`` bytes long."""
    if size - 1 < 24:
        return bytes([0x40 + size - 1])
    if size - 2 < 1 << 8:
        return bytes([0x58, size - 2])
    if size - 3 < 1 << 16:
        return b"\x59" + (size - 3).to_bytes(2, "big")
    return None


def _overwrite(view: Any, ends: Any, tail_bytes: list[bytes], members: Any) -> list[bytes] | None:
    """Turn each value's tail into one byte string; the contents it will decode to, per
    group, or None when a value's tail does not begin with its group's bytes."""
    import numpy as np

    heads = [_byte_string_head(len(tail)) for tail in tail_bytes]
    if any(head is None for head in heads):
        return None
    width = max(len(head or b"") for head in heads)
    lengths = np.array([len(tail) for tail in tail_bytes], dtype=np.int64)
    expected = np.zeros((len(tail_bytes), width), dtype=np.uint8)
    written = np.zeros((len(tail_bytes), width), dtype=np.uint8)
    head_sizes = np.array([len(head or b"") for head in heads], dtype=np.int64)
    for j, (head, tail) in enumerate(zip(heads, tail_bytes, strict=True)):
        expected[j, : len(head or b"")] = list(tail[: len(head or b"")])
        written[j, : len(head or b"")] = list(head or b"")
    at = ends - lengths[members]
    for k in range(width):
        wanted = head_sizes[members] > k if k else slice(None)
        where = at[wanted] + k
        if (view[where] != expected[members[wanted], k]).any():
            return None
        view[where] = written[members[wanted], k]
    return [tail[len(head or b"") :] for head, tail in zip(heads, tail_bytes, strict=True)]


def _mixed(part: list[bytes], tails: _Tails) -> _Decoded:
    """Values some of which are not five-item arrays: those decoded as arrays, apart."""
    import numpy as np

    n = len(part)
    sizes = np.fromiter(map(len, part), dtype=np.int64, count=n)
    firsts = np.array([v[0] if v else 0 for v in part], dtype=np.int64)
    seconds = np.array([v[1] if len(v) > 1 else 0xFF for v in part], dtype=np.int64)
    short = (firsts == _SHORT_HEAD) & (seconds < 24) & (sizes > 1)
    inside, apart = np.flatnonzero(short), np.flatnonzero(~short)
    fast = (_fast([part[i] for i in inside.tolist()], tails) if len(apart) else None) or _rows(
        [part[i] for i in inside.tolist()], tails
    )
    rows = _rows([part[i] for i in apart.tolist()], tails)
    codes = np.empty(n, dtype=np.int64)
    codes[inside], codes[apart] = fast[0], rows[0]
    sources = np.empty(n, dtype=np.intp)
    sources[inside], sources[apart] = fast[2], rows[2]
    data = np.empty(n, dtype=object)
    data[inside] = _objects(fast[1])
    data[apart] = _objects(rows[1])
    return codes, data.tolist(), sources


def _rows(part: list[bytes], tails: _Tails) -> _Decoded:
    """Values decoded as arrays, by one ``cbor2.loads`` of their concatenation."""
    import numpy as np

    rows = cbor2.loads(array_header(len(part)) + b"".join(part)) if part else []
    data = [
        dict(MARKER) if len(row) > _PURGED_AT and row[_PURGED_AT] is not None else row[1]
        for row in rows
    ]
    sources = np.array([tails.add(row[3], row[4]) for row in rows], dtype=np.intp)
    return np.array([row[0] for row in rows], dtype=np.int64), data, sources


def _objects(items: Sequence[Any]) -> Any:
    """A one-dimensional object array of ``items`` (a list of lists stays one-dimensional)."""
    import numpy as np

    return np.fromiter(items, dtype=object, count=len(items))
