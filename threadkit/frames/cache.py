"""Incremental materialisation: cached frames kept current from the database's listen feed.

One cache entry per (database, collection, query JSON, reader). An entry holds
the frame, the kind of every row's value at every path (so the column plan can
be recomputed exactly), and a listen feed on the collection, subscribed
**before** the documents were read. A request then:

1. drains the feed: no events → the cached frame, nothing decoded;
2. on events, re-reads just the changed instances from one snapshot, decodes
   them, drops their old rows and merges the new ones in ``_id`` order;
3. rebuilds from scratch when that is simpler than being clever: the feed
   overflowed (``Lagged``) or was closed, the collection's config changed
   (schema, read filter, delete/re-create), the column set or a dtype changes,
   or the query sorts or pages its results.

A query with criteria (no sort or page, no read filter) and no entry of its own is
answered from the entry of the whole collection (:mod:`.select`), kept current the same
way. When there is none and the query would read every document, the first such query
of the collection is answered by one columnar scan that builds only the matching rows
(:mod:`.scan`, nothing cached), and the next one builds that entry (the columnar build
costs less than decoding every document, and later queries are answered from it).
Queries an index serves, and those the frame cannot answer exactly, get an entry of
their own as above.

It can never return stale data: listeners are told synchronously inside the
commit (local or received), before the write call returns, and a re-read
always reads the current snapshot, so an event that arrives after the read
is only applied twice, never missed. Read filters are assumed to depend only
on the reader and the document (as ThreadDB's ``_filter`` does).

A frame handed out is a shallow copy under pandas' copy-on-write (always on
from pandas 3), a deep copy otherwise: changing it never changes the cached one.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cbor2
import numpy as np

from threadkit.core.identity import PublicKey
from threadkit.db.gate import Attested
from threadkit.db.listen import Feed, Lagged
from threadkit.db.query import Query
from threadkit.frames import build as fb
from threadkit.frames import cbor_columns

if TYPE_CHECKING:
    from threadkit.db.config import CollectionConfig
    from threadkit.frames.source import CollectionSource, DatabaseSource

__all__ = ["FEED_SIZE", "MAX_ENTRIES", "cached_frame", "clear"]

MAX_ENTRIES = 16
"""Cached frames kept per database (least recently used dropped first, with their feed)."""

FEED_SIZE = 4096
"""Changes buffered per entry; more than this between two reads means a full rebuild."""

_caches: weakref.WeakKeyDictionary[DatabaseSource, _DBCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    config: CollectionConfig | None = None
    feed: Feed | None = None
    frame: Any = None
    kinds: dict[str, fb.KindArray] = field(default_factory=dict)
    columns: fb.Plan = field(default_factory=list)
    targets: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    uniform: bool = False
    """Every row's document lists its fields in one order (see ``_order_may_differ``)."""
    picks: OrderedDict[str, Any] = field(default_factory=OrderedDict)
    """Rows selected from this (whole-collection) frame, by query JSON; valid while
    ``frame`` is the object they were selected from (see ``_from_whole``)."""

    def close(self) -> None:
        if self.feed is not None:
            self.feed.close()
            self.feed = None


class _DBCache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: OrderedDict[tuple[str, str, str | None], _Entry] = OrderedDict()
        self.scanned: set[str] = set()
        """Collections a query was answered for by a scan (:mod:`.scan`) since the last clear."""

    def entry(self, key: tuple[str, str, str | None]) -> _Entry:
        with self.lock:
            entry = self.entries.get(key)
            if entry is None:
                entry = self.entries[key] = _Entry()
            self.entries.move_to_end(key)
            while len(self.entries) > MAX_ENTRIES:
                _, old = self.entries.popitem(last=False)
                old.close()
            return entry

    def clear(self) -> None:
        with self.lock:
            for entry in self.entries.values():
                entry.close()
            self.entries.clear()
            self.scanned.clear()


def _db_cache(db: DatabaseSource) -> _DBCache:
    with _caches_lock:
        cache = _caches.get(db)
        if cache is None:
            cache = _caches[db] = _DBCache()
        return cache


def clear(db: DatabaseSource) -> None:
    """Drop a database's cached frames and close their feeds."""
    with _caches_lock:
        cache = _caches.pop(db, None)
    if cache is not None:
        cache.clear()


def _paged(query: Query) -> bool:
    return bool(query.sort or query.seek_id or query.skip_count or query.limit_count)


def cached_frame(coll: CollectionSource, query: Query, reader: str) -> Any:
    """The collection (matching ``query``, as ``reader`` sees it) as a DataFrame, cached.

    Parameters
    ----------
    coll : CollectionSource
        The collection.
    query : Query
        The query; ``Query()`` for every document.
    reader : str
        The reader's public key string (only matters when there is a read filter).

    Returns
    -------
    pandas.DataFrame
        A shallow copy of the cached frame.
    """
    config = coll.config
    filtered = config.filter is not None
    key = (coll.name, query.to_json(), reader if filtered else None)
    cache = _db_cache(coll.db)
    if (query.ands or query.ors) and not filtered and key not in cache.entries:
        picked = _from_whole(cache, coll, query, reader)
        if picked is not None:
            return picked
    entry = cache.entry(key)
    with entry.lock:
        _refresh(entry, coll, query, reader)
        return entry.frame.copy(deep=not _copy_on_write())


_EVERYTHING = Query().to_json()


def _from_whole(cache: _DBCache, coll: CollectionSource, query: Query, reader: str) -> Any:
    """``query``'s rows from the cached frame of the whole collection.

    When there is none and the query would otherwise read every document, the first such
    query of the collection is answered by a columnar scan (:func:`.scan.scan_select`);
    the next builds (and caches) the frame: the columnar build of the whole collection
    costs less than decoding every document for the scan (bench/RESULTS.md), and later
    queries are answered from it. None when the query can use an index, or the frame
    (or the scan) cannot answer it exactly (:func:`.select.select`).
    """
    from threadkit.frames.select import can_answer, select

    whole_key = (coll.name, _EVERYTHING, None)
    with cache.lock:
        whole = cache.entries.get(whole_key)
    current = whole is not None and whole.feed is not None and whole.config is coll.config
    if not current and (not can_answer(query) or not _scans(coll, query)):
        return None
    if whole is None:
        with cache.lock:
            first = coll.name not in cache.scanned
            cache.scanned.add(coll.name)
        if first:  # one query may be all there is: scan, cache nothing
            from threadkit.frames.scan import scan_select

            return scan_select(coll, query)
        whole = cache.entry(whole_key)
    with whole.lock:
        _refresh(whole, coll, Query(), reader)
        picks = whole.picks
        if picks and next(iter(picks.values()))[0] is not whole.frame:
            picks.clear()  # the frame changed since they were selected
        text = query.to_json()
        hit = picks.get(text)
        if hit is not None:
            picks.move_to_end(text)
            picked = hit[1]
        else:
            picked = select(
                whole.frame, whole.kinds, whole.columns, whole.targets, whole.order, query
            )
            if picked is not None and _order_may_differ(whole, picked):
                picked = _in_document_order(coll, whole, picked)
            if picked is None:
                return None
            picks[text] = (whole.frame, picked)
            while len(picks) > MAX_ENTRIES:
                picks.popitem(last=False)
        return picked.copy(deep=not _copy_on_write())


def _order_may_differ(whole: _Entry, picked: Any) -> bool:
    """Whether a frame built from the picked documents could order its columns otherwise.

    Columns the schema does not order come in the order the documents first list them
    (:func:`.build.plan`), which the picked rows alone may not share with all of them.
    """
    if whole.uniform:
        return False  # any rows list their fields in the frame's order
    ordered = set(whole.order)
    return sum(1 for path in picked.columns if path not in ordered and path != "_mod") > 1


def _in_document_order(coll: CollectionSource, whole: _Entry, picked: Any) -> Any:
    """The picked rows with their columns in the order a frame built from their documents
    has (the order those documents list their fields in), or None when the documents are
    not all there any more (a write landed in between: the store answers instead)."""
    ids = picked.index.tolist()
    values = coll.raw_documents_by_id(ids)
    present = [v for v in values if v is not None]
    if len(present) != len(ids):
        return None
    met = list(cbor_columns.decode(present).columns)
    have = set(picked.columns)
    # as build.plan orders them: the schema's order, then as met, then the rest; _mod last
    columns = [p for p in dict.fromkeys([*whole.order, *met]) if p in have and p != "_mod"]
    columns += [p for p in picked.columns if p not in columns and p != "_mod"]
    columns += ["_mod"] if "_mod" in have else []
    return picked if columns == list(picked.columns) else picked[columns]


def _scans(coll: CollectionSource, query: Query) -> bool:
    """Whether the store would read every document for ``query`` (no index lookup)."""
    from threadkit.db.planner import explain

    with coll.read_txn() as txn:
        return explain(query, txn._source()).full_scan


def _copy_on_write() -> bool:
    """Whether pandas copies lazily (always from pandas 3; opt-in before)."""
    import pandas as pd

    if int(pd.__version__.split(".")[0]) >= 3:
        return True
    try:
        return bool(pd.get_option("mode.copy_on_write"))
    except (KeyError, ValueError):
        return False


def _drain(feed: Feed) -> set[str] | None:
    """Ids changed since the last drain; None when the feed lost events or closed."""
    changed: set[str] = set()
    while True:
        item = feed.get_nowait()
        if item is None:
            return None if feed.closed else changed
        if isinstance(item, Lagged):
            return None
        changed.add(item.instance_id)


def _refresh(entry: _Entry, coll: CollectionSource, query: Query, reader: str) -> None:
    config = coll.config
    if entry.feed is None or entry.config is not config:
        _rebuild(entry, coll, query, reader)
        return
    changed = _drain(entry.feed)
    if (
        changed is None
        or (changed and _paged(query))
        or (changed and not _merge(entry, coll, query, reader, sorted(changed)))
    ):
        _rebuild(entry, coll, query, reader)


def _encoded(coll: CollectionSource, query: Query, reader: str) -> list[bytes]:
    """The matching documents as the reader sees them, encoded (the normal read path)."""
    if not query.ands and not query.ors and not _paged(query) and coll.config.filter is None:
        return coll.raw_documents()
    # the reader was authenticated where the frame was asked for (coll.db_reader)
    with coll.read_txn(Attested(PublicKey.from_string(reader))) as txn:
        return [cbor2.dumps(doc) for doc in txn.find(query)]


def _rebuild(entry: _Entry, coll: CollectionSource, query: Query, reader: str) -> None:
    entry.close()
    entry.feed = coll.db.listen(collection=coll.name, maxsize=FEED_SIZE)
    entry.config = config = coll.config
    built = fb.build_frame(_encoded(coll, query, reader), config.schema)
    entry.frame, entry.kinds, entry.columns = built.frame, built.kinds, built.columns
    entry.targets, entry.order = built.targets, built.order
    entry.uniform = built.uniform


def _current(
    coll: CollectionSource, query: Query, reader: str, ids: list[str]
) -> list[bytes] | None:
    """The changed instances as the entry would hold them now; None when not mergeable."""
    if not query.ands and not query.ors and coll.config.filter is None:
        return coll.raw_documents_by_id(ids)  # type: ignore[return-value]
    out: list[Any] = []
    stored = coll.stored_documents(ids)
    for instance_id, doc in zip(ids, stored, strict=True):
        shown = None
        if doc is not None and query.matches(doc):
            shown = coll.visible(doc, reader)
        if shown is not None and shown.get("_id") != instance_id:
            return None  # the read filter rewrote _id: rows cannot be matched up
        out.append(None if shown is None else cbor2.dumps(shown))
    return out


def _merge(
    entry: _Entry, coll: CollectionSource, query: Query, reader: str, ids: list[str]
) -> bool:
    """Apply changes to the cached frame; False when only a rebuild can do it."""
    import pandas as pd

    values = _current(coll, query, reader, ids)
    if values is None:
        return False
    present = [v for v in values if v is not None]
    batch = cbor_columns.decode(present)
    if batch.n != len(present):
        return False  # a document was left out: rows no longer line up with ids
    rows = fb.classify(batch, entry.targets)
    frame = entry.frame
    keep = ~frame.index.isin(ids)
    new_ids = np.array([i for i, v in zip(ids, values, strict=True) if v is not None], dtype=object)
    kept = int(keep.sum())
    kinds: dict[str, fb.KindArray] = {}
    for path in dict.fromkeys([*entry.kinds, *rows.kinds]):
        old = entry.kinds.get(path)
        new = rows.kinds.get(path)
        kinds[path] = np.concatenate(
            [
                old[keep] if old is not None else np.zeros(kept, dtype=np.int8),
                new if new is not None else np.zeros(len(present), dtype=np.int8),
            ]
        )
    columns = fb.plan(fb.counts(kinds), entry.targets, entry.order, kinds)
    if dict(columns) != dict(entry.columns):
        return False
    parts = [frame[keep]] if kept else []
    if present:
        parts.append(fb.build(rows, entry.columns))
    merged = pd.concat(parts) if len(parts) > 1 else (parts[0] if parts else frame.iloc[:0])
    if len(parts) > 1:
        # both parts are in _id order: merge them without sorting everything
        slots = parts[0].index.searchsorted(new_ids)
        if slots[0] < kept:
            order = np.insert(np.arange(kept), slots, np.arange(kept, kept + len(present)))
            merged = merged.take(order)
            kinds = {path: k[order] for path, k in kinds.items()}
    old_order = list(entry.kinds)
    entry.frame = merged
    entry.kinds = kinds
    # still one field order when the new documents list theirs as the others do
    new_order = list(batch.columns)
    entry.uniform = entry.uniform and batch.uniform and new_order == old_order[: len(new_order)]
    return True
