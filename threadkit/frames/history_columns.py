"""``db.history()`` built from columns: the events table decoded at once, not event by event.

:func:`threadkit.frames.history.history` documents the frame. This module builds
the same frame without an object per event: the stored keys and values come raw
from the events table (:mod:`threadkit.db.eventscan`); the values are decoded by
one ``cbor2`` call over their concatenation (a CBOR array of them); the keys are
cut into collection, ``_id`` and order key by Arrow string kernels; stamps, log
ids, record CIDs and actions come from the fixed-size order keys and from the
few distinct values (a log id or CID is encoded once, not once per event); the
total order is one stable ``argsort`` of the order keys. The collection events
(a handful, read from the collections' config histories) are appended before the
sort, as :func:`threadkit.db.timeline.event_rows` does.

:func:`history_columns` returns None when the keys do not have the layout this
relies on (order keys of one size: every log id of the database the same length,
``_id`` s that are valid UTF-8); the caller then builds the frame event by event.

Examples
--------
>>> import threadkit as tk
>>> from threadkit.frames.history import history, history_by_rows
>>> with tk.Peer(memory=True) as peer:
...     db = peer.new_db("notes")
...     notes = db.new_collection("Notes")
...     _ = notes.create([{"_id": "b", "n": 1}, {"_id": "a", "n": 2}])
...     notes.save({"_id": "a", "n": 3})
...     fast, slow = history(db), history_by_rows(db)
>>> fast.equals(slow), list(fast["action"])
(True, ['new_collection', 'create', 'create', 'save'])
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import cbor2

from threadkit.core.identity import peer_id_bytes
from threadkit.db.events import Action
from threadkit.db.purge import MARKER
from threadkit.db.timeline import EventRow, cid_text
from threadkit.store.layout import log_id_from_bytes

if TYPE_CHECKING:
    import pandas as pd

    from threadkit.frames.source import DatabaseSource

__all__ = ["array_header", "history_columns", "paused_gc"]

_STAMP_SIZE = 12
_PURGED_AT = 6  # [code, data, base, author, record, seen, purged]


def array_header(n: int) -> bytes:
    """The CBOR head of a definite-length array of ``n`` items.

    Examples
    --------
    >>> cbor2.loads(array_header(2) + cbor2.dumps(1) + cbor2.dumps("x"))
    [1, 'x']
    >>> array_header(24).hex(), array_header(70_000).hex()
    ('9818', '9a00011170')
    """
    if n < 24:
        return bytes([0x80 + n])
    for code, size in ((0x98, 1), (0x99, 2), (0x9A, 4)):
        if n < 1 << (8 * size):
            return bytes([code]) + n.to_bytes(size, "big")
    return b"\x9b" + n.to_bytes(8, "big")


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection inside: decoding a million containers at once
    would otherwise trigger collections that walk every one of them, again and again
    (what it builds holds no cycles)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _order_key_size(db: DatabaseSource) -> int | None:
    """The size of every order key of the database, None when its log ids differ in length."""
    sizes = {len(peer_id_bytes(log_id)) for log_id in db.timeline.log_ids()}
    sizes.add(len(peer_id_bytes(db.log_id)))
    return _STAMP_SIZE + sizes.pop() if len(sizes) == 1 else None


def _by_distinct(values: Any, encode: Any, order: Any = None) -> Any:
    """An Arrow string array of ``encode(v)`` for each value, taken in ``order`` (one
    ``encode`` call per distinct value; only the small indices are reordered)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(values)
    texts = pa.array([encode(v) for v in encoded.dictionary.to_pylist()], pa.large_string())
    indices = encoded.indices if order is None else encoded.indices.take(order)
    return texts.take(indices)


def history_columns(
    db: DatabaseSource, collection: str | None, rejected: Mapping[tuple[str, str, bytes], str]
) -> dict[str, pd.Series] | None:
    """The columns of the :func:`threadkit.frames.history.history` frame, built at once.

    Parameters
    ----------
    db : DatabaseSource
        The database.
    collection : str, optional
        Only this collection's events (the caller has checked that it exists).
    rejected : Mapping
        Rejected events, ``(collection, _id, order key) → reason``.

    Returns
    -------
    dict[str, pandas.Series] or None
        Each column by name, in the total order; None when the stored keys do
        not have the layout the columnar read relies on (see the module's docstring).
    """
    import pyarrow as pa

    size = _order_key_size(db)
    raw = db.timeline.raw_events(collection)
    if size is None or not raw.keys:
        return None
    keys = pa.array(raw.keys, pa.binary())
    try:
        cut = _names_and_ids(keys, raw.start, size)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # an _id that is not valid UTF-8
        return None
    if cut is None:
        return None
    names, instances = cut
    with paused_gc():
        extra = db.timeline.collection_events(collection, db.timeline.key_finder())
        head = array_header(len(raw.values))
        encoded = b"".join(chain((head,), raw.values))
        rows = cbor2.loads(encoded)
        fields = _fields(rows, _long_rows(raw.values, encoded, len(head)), extra)
        del rows  # its lists go before collection resumes; the patches hold no containers
        return _frame(fields, keys, names, instances, extra, size, rejected)


def _names_and_ids(keys: Any, start: int, size: int) -> tuple[Any, Any] | None:
    """Each key's collection name and ``_id``, as Arrow string arrays (None: a key that
    has no ``_id`` terminator just before an order key of ``size`` bytes)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ends = pc.binary_slice(keys, -size - 1, -size)  # the byte before the order key
    if not pc.all(pc.equal(ends, pa.scalar(b"\x00", pa.binary()))).as_py():
        return None  # another key layout
    middle = pc.binary_slice(keys, start, -size - 1)  # name 00 escaped-id (its 00 dropped)
    parts = pc.split_pattern(middle, b"\x00", max_splits=1)
    names = pc.list_element(parts, 0).cast(pa.large_string())
    ids = pc.replace_substring(pc.list_element(parts, 1), b"\x00\xff", b"\x00")
    return names, ids.cast(pa.large_string())


def _fields(rows: list[list[Any]], long_rows: list[int], extra: Sequence[EventRow]) -> Any:
    """Action codes, patches, authors and record CIDs of the stored and collection events."""
    import pyarrow as pa

    data: list[Any] = list(map(itemgetter(1), rows))
    for i in long_rows:
        row = rows[i]
        if row[_PURGED_AT] is not None:
            data[i] = dict(MARKER)
    data.extend(e.data for e in extra)
    codes = pa.array([*map(itemgetter(0), rows), *(e.action.code for e in extra)], pa.int64())
    authors = pa.array([*map(itemgetter(3), rows), *(e.author for e in extra)], pa.large_string())
    records = pa.array([*map(itemgetter(4), rows), *(e.record for e in extra)], pa.binary())
    return codes, data, authors, records


def _long_rows(values: Sequence[bytes], encoded: bytes, start: int) -> list[int]:
    """Indices of the values whose CBOR array has more items than the purge's position
    (only those can carry a purge), from the first byte of each in ``encoded``."""
    import numpy as np

    sizes = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    starts = np.cumsum(sizes) - sizes + start
    firsts = np.frombuffer(encoded, dtype=np.uint8)[starts]
    return list(np.flatnonzero(firsts > 0x80 + _PURGED_AT).tolist())


def _frame(
    fields: Any,
    keys: Any,
    names: Any,
    instances: Any,
    extra: Sequence[EventRow],
    size: int,
    rejected: Mapping[tuple[str, str, bytes], str],
) -> dict[str, pd.Series]:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    codes, data, authors, records = fields
    n, total = len(keys), len(keys) + len(extra)
    order_keys = pc.binary_slice(keys, -size).cast(pa.binary(size))
    tail = b"".join(e.key for e in extra)
    buffer = order_keys.buffers()[1].to_pybytes()[: n * size] + tail
    packed = np.frombuffer(buffer, dtype=f"S{size}", count=total)
    ordered = np.argsort(packed, kind="stable")
    order = pa.array(ordered)
    layout = [("wall", ">u8"), ("logical", ">u4"), ("log", f"V{size - _STAMP_SIZE}")]
    stamps = np.frombuffer(buffer, dtype=np.dtype(layout))[ordered]
    walls = stamps["wall"].astype(np.int64)
    hlc = pc.binary_join_element_wise(
        pa.array(walls).cast(pa.large_string()),
        pa.array(stamps["logical"].astype(np.int64)).cast(pa.large_string()),
        pa.scalar(".", pa.large_string()),
    )
    log_bytes = np.ascontiguousarray(stamps["log"]).tobytes()
    logs = _by_distinct(
        pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(size - _STAMP_SIZE), total, [None, pa.py_buffer(log_bytes)]
        ),
        log_id_from_bytes,
    )
    names = pa.concat_arrays([names, pa.array([e.collection for e in extra], pa.large_string())])
    instances = pa.concat_arrays(
        [instances, pa.array([e.instance for e in extra], pa.large_string())]
    )
    reasons = pa.array(_reasons(rejected, packed, size, names, instances), pa.large_string())
    patches = np.empty(total, dtype=object)
    patches[:] = data
    columns = {
        "hlc": hlc,
        "author": _by_distinct(authors, str, order),
        "log": logs,
        "record": _by_distinct(records, cid_text, order),
        "collection": _by_distinct(names, str, order),
        "instance": instances.take(order),
        "action": _by_distinct(codes, lambda code: str(Action.from_code(code)), order),
        "reason": reasons.take(order),
    }
    series = {name: pd.Series(array, dtype="string") for name, array in columns.items()}
    series["time"] = pd.to_datetime(pd.Series(walls), unit="ns", utc=True)
    series["patch"] = pd.Series(patches[ordered], dtype=object)
    series["rejected"] = series["reason"].notna().astype(bool)
    return series


def _reasons(
    rejected: Mapping[tuple[str, str, bytes], str],
    packed: Any,
    size: int,
    names: Any,
    instances: Any,
) -> list[str | None]:
    """Each event's rejection reason (None: not rejected), in storage order."""
    import numpy as np

    out: list[str | None] = [None] * len(packed)
    if not rejected:
        return out
    wanted = np.array([key for _, _, key in rejected], dtype=f"S{size}")
    raw = packed.view(np.uint8).reshape(len(packed), size)
    for i in np.flatnonzero(np.isin(packed, wanted)).tolist():
        key = raw[i].tobytes()
        out[i] = rejected.get((names[i].as_py(), instances[i].as_py(), key))
    return out
