"""``db.history()`` built from columns: the events table decoded at once, not event by event.

:func:`threadkit.frames.history.history` documents the frame. This module builds
the same frame without an object per event beyond its ``patch``: the stored keys
and values come raw from the events table (:mod:`threadkit.db.eventscan`); the
values are decoded by one ``cbor2`` call per chunk, each record's author and CID
once (:mod:`threadkit.db.eventvalues`); the keys are cut into collection (one run
of keys per collection: they are sorted), ``_id`` and order key by Arrow kernels
and one gather of the order keys' bytes; stamps, log ids, record CIDs and actions
come from the fixed-size order keys and from the few distinct values (a log id or
CID is encoded once, not once per event); the total order is one stable
``argsort`` of the stored order keys, among which the collection events (a
handful, read from the collections' config histories) are merged by bisection, as
:func:`threadkit.db.timeline.event_rows` sorts them.

Given ``shorten`` it builds :func:`threadkit.frames.history.readable_history`
of that frame directly: the short log and record ids are cut from the distinct
ids, and the columns the readable frame drops (``hlc``, ``author``) are not built.

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
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import chain
from typing import TYPE_CHECKING, Any

from threadkit.core.identity import peer_id_bytes
from threadkit.db.events import Action
from threadkit.db.eventvalues import EventValues, decode_chunks
from threadkit.db.timeline import EventRow, cid_text
from threadkit.store.layout import log_id_from_bytes

if TYPE_CHECKING:
    import pandas as pd

    from threadkit.db.eventscan import RawEvents
    from threadkit.frames.source import DatabaseSource

__all__ = ["history_columns", "paused_gc"]

_STAMP_SIZE = 12


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


def _texts(values: Any, encode: Callable[[Any], str | None], order: Any = None) -> Any:
    """An Arrow string array of ``encode(v)`` for each value, taken in ``order`` (one
    ``encode`` call per distinct value; only the small indices are reordered)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(values)
    texts = pa.array([encode(v) for v in encoded.dictionary.to_pylist()], pa.large_string())
    indices = encoded.indices if order is None else encoded.indices.take(order)
    return texts.take(indices)


def _coded(texts: list[Any], codes: Any) -> Any:
    """An Arrow string array of ``texts[i]`` for each code ``i``."""
    import pyarrow as pa

    return pa.array(texts, pa.large_string()).take(pa.array(codes))


def history_columns(
    db: DatabaseSource,
    collection: str | None,
    rejected: Mapping[tuple[str, str, bytes], str],
    *,
    shorten: Callable[[str], str | None] | None = None,
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
    shorten : callable, optional
        Given (:func:`threadkit.frames.history.short_id`): the columns of
        :func:`threadkit.frames.history.readable_history` of that frame instead, log
        and record ids shortened by it, no ``hlc``, no ``author``.

    Returns
    -------
    dict[str, pandas.Series] or None
        Each column by name, in the total order; None when the stored keys do
        not have the layout the columnar read relies on (see the module's docstring).
    """
    size = _order_key_size(db)
    raw = db.timeline.raw_events(collection)
    if size is None or not raw.keys:
        return None
    with paused_gc():
        columns = _columns(db, collection, raw, size, rejected, shorten)
        # a collection walks every item of a list it finds young: these lists go first
        raw.keys.clear()
        raw.values.clear()
    return columns


def _columns(
    db: DatabaseSource,
    collection: str | None,
    raw: RawEvents,
    size: int,
    rejected: Mapping[tuple[str, str, bytes], str],
    shorten: Callable[[str], str | None] | None,
) -> dict[str, pd.Series] | None:
    import pyarrow as pa

    keys = pa.array(raw.keys, pa.binary())
    try:
        cut = _names_and_ids(raw, keys, size)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # an _id that is not valid UTF-8
        return None
    if cut is None:
        return None
    raw.keys.clear()  # held as Arrow binary now
    extra = db.timeline.collection_events(collection, db.timeline.key_finder())
    values = decode_chunks(raw.values)  # frees each chunk of stored values once decoded
    return _frame(values, keys, cut, extra, size, rejected, shorten)


class _Names:
    """Each event's collection: distinct names, and an index into them per event."""

    def __init__(self, names: list[str], codes: Any) -> None:
        self.names, self.codes = names, codes

    def extended(self, more: Sequence[str]) -> _Names:
        """These and ``more`` after them."""
        import numpy as np

        names = list(self.names)
        at = {name: i for i, name in enumerate(names)}
        extra = [at.setdefault(name, len(at)) for name in more]
        names.extend(sorted(set(at) - set(names), key=at.__getitem__))
        return _Names(names, np.concatenate([self.codes, np.array(extra, dtype=np.int64)]))

    def __getitem__(self, i: int) -> str:
        return self.names[int(self.codes[i])]


def _names_and_ids(raw: RawEvents, keys: Any, size: int) -> tuple[_Names, Any] | None:
    """Each key's collection and ``_id`` (Arrow strings);
    None when a key has no ``_id`` terminator just before an order key of ``size`` bytes.

    The keys are sorted, so each collection's keys are one run, found by bisection.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    ends = pc.binary_slice(keys, -size - 1, -size)  # the byte before the order key
    if not pc.all(pc.equal(ends, pa.scalar(b"\x00", pa.binary()))).as_py():
        return None  # another key layout
    names: list[str] = []
    lengths: list[int] = []
    ids: list[Any] = []
    at, start = 0, raw.start
    while at < len(raw.keys):
        key = raw.keys[at]
        name_end = key.find(b"\x00", start)
        if name_end < 0 or name_end > len(key) - size - 2:
            return None
        stop = bisect_left(raw.keys, key[:name_end] + b"\x01", at)
        names.append(key[start:name_end].decode())
        lengths.append(stop - at)
        ids.append(pc.binary_slice(keys.slice(at, stop - at), name_end + 1, -size - 1))
        at = stop
    escaped = pa.concat_arrays(ids)
    data = escaped.buffers()[2]
    content = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    if np.count_nonzero(content) < len(content):  # "\x00" is escaped as 00 FF
        escaped = pc.replace_substring(escaped, b"\x00\xff", b"\x00")
    codes = np.repeat(np.arange(len(names), dtype=np.int64), lengths)
    return _Names(names, codes), escaped.cast(pa.large_string())


def _frame(
    values: EventValues,
    keys: Any,
    cut: tuple[Any, Any],
    extra: Sequence[EventRow],
    size: int,
    rejected: Mapping[tuple[str, str, bytes], str],
    shorten: Callable[[str], str | None] | None,
) -> dict[str, pd.Series]:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    packed = _order_keys(keys, size)
    extra_keys = np.array([e.key for e in extra], dtype=f"S{size}")
    ordered = _total_order(packed, extra_keys)
    order = pa.array(ordered)
    layout = np.dtype([("wall", ">u8"), ("logical", ">u4"), ("log", f"S{size - _STAMP_SIZE}")])
    stamps = [part.view(layout) for part in (packed, extra_keys)]
    walls = np.concatenate([part["wall"] for part in stamps]).astype(np.int64)[ordered]
    names = cut[0].extended([e.collection for e in extra])
    instances = pa.concat_arrays([cut[1], pa.array([e.instance for e in extra], pa.large_string())])
    tails = [*values.tails, *((e.author, e.record) for e in extra)]
    sources = np.concatenate([values.sources, np.arange(len(extra)) + len(values.tails)])[ordered]
    extra_codes = np.array([e.action.code for e in extra], dtype=np.int64)
    codes = pa.array(np.concatenate([values.codes, extra_codes]))
    patches = _objects(chain(values.data, (e.data for e in extra)), len(ordered))[ordered]
    reasons = _reasons(rejected, packed, extra_keys, names, instances)

    def log_text(log: bytes) -> str | None:
        text = log_id_from_bytes(log)
        return text if shorten is None else shorten(text)

    def record_text(cid: bytes) -> str | None:
        return cid_text(cid) if shorten is None else shorten(cid_text(cid))

    columns = {
        "log": _logs(keys, extra, stamps, log_text, order),
        "record": _coded([None if r is None else record_text(r) for _, r in tails], sources),
        "collection": _coded(names.names, names.codes[ordered]),
        "instance": instances.take(order),
        "action": _texts(codes, lambda code: str(Action.from_code(code)), order),
        "reason": reasons.take(order) if rejected else reasons,
    }
    if shorten is None:
        logical = np.concatenate([part["logical"] for part in stamps]).astype(np.int64)
        columns["hlc"] = _hlc(walls, logical[ordered])
        columns["author"] = _coded([a for a, _ in tails], sources)
    series = {name: pd.Series(array, dtype="string") for name, array in columns.items()}
    series["time"] = pd.Series(walls.view("datetime64[ns]")).dt.tz_localize("UTC")
    series["patch"] = pd.Series(patches, dtype=object)
    series["rejected"] = pd.Series(pc.is_valid(columns["reason"]).to_numpy(zero_copy_only=False))
    return series


def _logs(
    keys: Any,
    extra: Sequence[EventRow],
    stamps: list[Any],
    text: Callable[[bytes], Any],
    order: Any,
) -> Any:
    """The log column: ``text`` of each order key's log id, in ``order`` (when every event
    is of one log, one writer's, its text is made once and repeated)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    logs = [part["log"] for part in stamps]
    first = next(part[:1] for part in logs if len(part))
    if all((part == first).all() for part in logs):
        return _coded([text(first.tobytes())], np.zeros(len(order), dtype=np.intp))
    size = first.dtype.itemsize
    log_bytes = pa.concat_arrays(
        [pc.binary_slice(keys, -size), pa.array([e.key[-size:] for e in extra], pa.binary())]
    )
    return _texts(log_bytes, text, order)


def _order_keys(keys: Any, size: int) -> Any:
    """The last ``size`` bytes of each key (its order key), as a NumPy ``S{size}`` array
    (each key is longer: :func:`_names_and_ids` checked)."""
    import numpy as np

    offsets = np.frombuffer(keys.buffers()[1], dtype=np.int32, count=len(keys) + 1)
    data = np.frombuffer(keys.buffers()[2], dtype=np.uint8)
    windows = np.lib.stride_tricks.sliding_window_view(data, size)
    return windows[offsets[1:] - size].view(f"S{size}").ravel()


def _total_order(packed: Any, extra: Any) -> Any:
    """The positions of ``packed`` and then ``extra`` sorted by their bytes (a stable sort:
    equal keys keep that order), without copying ``packed``."""
    import numpy as np

    ordered = np.argsort(packed, kind="stable")
    if not len(extra):
        return ordered
    among = np.argsort(extra, kind="stable")
    at = np.searchsorted(packed, extra[among], side="right", sorter=ordered)
    return np.insert(ordered, at, among + len(packed))


def _hlc(walls: Any, logical: Any) -> Any:
    """``"wall.logical"`` of each stamp, as Arrow strings."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.binary_join_element_wise(
        pa.array(walls).cast(pa.large_string()),
        pa.array(logical).cast(pa.large_string()),
        pa.scalar(".", pa.large_string()),
    )


def _objects(items: Iterable[Any], count: int) -> Any:
    """A one-dimensional object array of ``items`` (a list of lists stays one-dimensional)."""
    import numpy as np

    return np.fromiter(items, dtype=object, count=count)


def _reasons(
    rejected: Mapping[tuple[str, str, bytes], str],
    packed: Any,
    extra: Any,
    names: _Names,
    instances: Any,
) -> Any:
    """Each event's rejection reason (null: not rejected), in storage order, as Arrow strings."""
    import numpy as np
    import pyarrow as pa

    total = len(packed) + len(extra)
    if not rejected:
        return pa.nulls(total, pa.large_string())
    out: list[str | None] = [None] * total
    keys = np.concatenate([packed, extra])
    wanted = np.array([key for _, _, key in rejected], dtype=keys.dtype)
    raw = keys.view(np.uint8).reshape(total, keys.dtype.itemsize)
    for i in np.flatnonzero(np.isin(keys, wanted)).tolist():
        key = raw[i].tobytes()
        out[i] = rejected.get((names[i], instances[i].as_py(), key))
    return pa.array(out, pa.large_string())
