"""Time travel as DataFrames: a collection as it was at a point in its history; diffs.

A **point** is a time (``datetime``, ``pandas.Timestamp``, ``numpy.datetime64``,
ISO string, or seconds since the epoch as an ``int`` or ``float``), a record CID,
or a set of heads ``{log id: counter or CID}``; :mod:`threadkit.db.points` says
exactly which events each includes, and :mod:`threadkit.db.replay` replays them
through the engine. This module reads through ``db.timeline`` and shapes the
result with the same type mapping as ``coll.df`` (docs/types.md).

Examples
--------
>>> import threadkit as tk
>>> with tk.Peer(memory=True) as peer:
...     db = peer.new_db("notes")
...     notes = db.new_collection("Notes")
...     _ = notes.create({"_id": "n1", "text": "first"})
...     then = heads(db)  # or a time, or a record CID
...     notes.save({"_id": "n1", "text": "second"})
...     _ = notes.create({"_id": "n2", "text": "other"})
...     old = documents_at(notes, then)
...     changes = diff(notes, then)
>>> [(d["_id"], d["text"]) for d in old]
[('n1', 'first')]
>>> changes[["change", "fields"]].to_dict("index")
{'n1': {'change': 'changed', 'fields': ['text']}, 'n2': {'change': 'added', 'fields': ['text']}}
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from threadkit.db.points import Point
from threadkit.frames.frame import frame_from_documents

if TYPE_CHECKING:
    import pandas as pd

    from threadkit.frames.source import CollectionSource, DatabaseSource

__all__ = [
    "Point",
    "changed_fields",
    "collection_at",
    "diff",
    "documents_at",
    "documents_frame",
    "heads",
]

_UNTRACKED = ("_mod",)


def heads(db: DatabaseSource) -> dict[str, int]:
    """The current heads of a database's logs: ``{log id: counter}`` (``db.heads()``).

    A head set taken now and passed to :func:`documents_at` later gives the
    state as it is now, whatever arrives in between.

    Examples
    --------
    >>> import threadkit as tk
    >>> with tk.Peer(memory=True) as peer:
    ...     db = peer.new_db("notes")
    ...     _ = db.new_collection("Notes")
    ...     heads(db) == {db.log_id: 1}
    True
    """
    return db.timeline.heads()


def _reader(coll: CollectionSource, identity: object | None) -> str:
    return coll.db_reader(identity)


def documents_at(
    coll: CollectionSource, when: Point, *, identity: object | None = None
) -> list[dict[str, Any]]:
    """A collection's documents as they were at a point in its history.

    Parameters
    ----------
    coll : CollectionSource
        The collection (it may have been deleted since).
    when : datetime, pandas.Timestamp, int, str, bytes or dict
        A time (``int`` = ns since the epoch), a record CID, or ``{log id: head}``
        (see the module docstring).
    identity : PublicKey or str, optional
        The reader the read filter in effect at that point is applied for
        (default: the peer's identity).

    Returns
    -------
    list[dict]
        The documents, in ``_id`` order; empty when the collection did not
        exist at that point.

    Examples
    --------
    >>> import threadkit as tk
    >>> with tk.Peer(memory=True) as peer:
    ...     db = peer.new_db("notes")
    ...     notes = db.new_collection("Notes")
    ...     _ = notes.create({"_id": "a"})
    ...     first = heads(db)
    ...     _ = notes.create({"_id": "b"})
    ...     [d["_id"] for d in documents_at(notes, first)]
    ['a']
    """
    return _at(coll, when, identity)[0]


def _at(
    coll: CollectionSource, when: Point, identity: object | None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    return coll.db.timeline.documents_at(coll.name, when, _reader(coll, identity))


def collection_at(
    coll: CollectionSource, when: Point, *, identity: object | None = None
) -> pd.DataFrame:
    """A collection as it was at a point in its history, as a DataFrame.

    Parameters
    ----------
    coll : CollectionSource
        The collection.
    when : datetime, pandas.Timestamp, int, str, bytes or dict
        A time (``int`` = ns since the epoch), a record CID, or ``{log id: head}``
        (see the module docstring for exactly which events each includes).
    identity : PublicKey or str, optional
        The reader for the read filter (default: the peer's identity).

    Returns
    -------
    pandas.DataFrame
        One row per document, indexed by ``_id``, as ``coll.df`` shows
        documents: nested objects flattened to ``parent.child`` columns, dtypes
        from the collection's schema at that point (nullable), ``_mod`` as
        ``datetime64[ns, UTC]`` (docs/types.md).

    Examples
    --------
    >>> import threadkit as tk
    >>> with tk.Peer(memory=True) as peer:
    ...     db = peer.new_db("notes")
    ...     notes = db.new_collection("Notes")
    ...     _ = notes.create({"_id": "a", "n": 1})
    ...     first = heads(db)
    ...     notes.save({"_id": "a", "n": 2})
    ...     int(collection_at(notes, first).loc["a", "n"])
    1
    """
    docs, schema = _at(coll, when, identity)
    return documents_frame(docs, schema)


def documents_frame(
    docs: list[dict[str, Any]], schema: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """Documents as ``coll.df`` shows them, for a collection with ``schema``.

    The one type mapping of every view (docs/types.md): indexed by ``_id``, nested
    objects flattened to ``parent.child`` columns, nullable dtypes from the schema
    (or from the values, without one), ``_mod`` as ``datetime64[ns, UTC]``.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = documents_frame([{"_id": "a", "n": 1, "_mod": 5}, {"_id": "b", "m": "x"}])
    >>> frame.dtypes.astype(str).to_dict()
    {'n': 'Int64', 'm': 'string', '_mod': 'datetime64[ns, UTC]'}
    >>> frame.loc["b", "n"] is pd.NA
    True
    """

    frame = frame_from_documents(docs, schema or {})
    frame.index.name = "_id"
    return frame


# -------------------------------------------------------------------------- diff


def _leaves(doc: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, value in doc.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict) and value:
            yield from _leaves(value, path + ".")
        else:
            yield path, value


def changed_fields(
    before: dict[str, Any] | None, after: dict[str, Any] | None, ignore: tuple[str, ...] = ()
) -> list[str]:
    """Dot paths of the leaves that differ between two documents (set, changed or removed).

    Examples
    --------
    >>> changed_fields({"a": 1, "b": {"c": 2}, "d": 0}, {"a": 1, "b": {"c": 3}, "e": 0})
    ['b.c', 'd', 'e']
    """
    old = dict(_leaves(before or {}))
    new = dict(_leaves(after or {}))
    paths = []
    for path in sorted(old.keys() | new.keys()):
        if path == "_id" or path in ignore:
            continue
        missing = path not in old or path not in new
        if missing or old[path] != new[path] or type(old[path]) is not type(new[path]):
            paths.append(path)
    return paths


def diff(
    coll: CollectionSource,
    a: Point,
    b: Point | None = None,
    *,
    identity: object | None = None,
    ignore: tuple[str, ...] = _UNTRACKED,
) -> pd.DataFrame:
    """What changed in a collection between two points of its history.

    Parameters
    ----------
    coll : CollectionSource
        The collection.
    a, b : point
        The two points (a time, a record CID or a head set; see the module
        docstring). ``b`` defaults to now (the live collection).
    identity : PublicKey or str, optional
        The reader for the read filter (default: the peer's identity).
    ignore : tuple of str
        Field paths not compared (default ``("_mod",)``: the write time, which
        changes on every save).

    Returns
    -------
    pandas.DataFrame
        One row per instance that differs, indexed by ``_id`` (sorted), with
        columns ``change`` ("added", "removed" or "changed"), ``fields`` (the
        sorted dot paths of the leaves set, changed or removed), ``before`` and
        ``after`` (the documents, None where absent).

    Examples
    --------
    >>> import threadkit as tk
    >>> with tk.Peer(memory=True) as peer:
    ...     db = peer.new_db("notes")
    ...     notes = db.new_collection("Notes")
    ...     _ = notes.create({"_id": "a", "n": 1}, {"_id": "b", "n": 1})
    ...     start = heads(db)
    ...     notes.save({"_id": "a", "n": 2})
    ...     notes.delete("b")
    ...     diff(notes, start)[["change", "fields"]].to_dict("index")
    {'a': {'change': 'changed', 'fields': ['n']}, 'b': {'change': 'removed', 'fields': ['n']}}
    """
    import pandas as pd

    before = {d["_id"]: d for d in documents_at(coll, a, identity=identity)}
    if b is None:
        after = {d["_id"]: d for d in coll.find(identity=identity)}
    else:
        after = {d["_id"]: d for d in documents_at(coll, b, identity=identity)}
    rows: dict[str, list[Any]] = {"_id": [], "change": [], "fields": [], "before": [], "after": []}
    for instance_id in sorted(before.keys() | after.keys()):
        old, new = before.get(instance_id), after.get(instance_id)
        fields = changed_fields(old, new, ignore)
        if old is None:
            change = "added"
        elif new is None:
            change = "removed"
        elif fields:
            change = "changed"
        else:
            continue
        rows["_id"].append(instance_id)
        rows["change"].append(change)
        rows["fields"].append(fields)
        rows["before"].append(old)
        rows["after"].append(new)
    frame = pd.DataFrame(
        {
            "change": pd.Series(rows["change"], dtype="string"),
            "fields": pd.Series(rows["fields"], dtype=object),
            "before": pd.Series(rows["before"], dtype=object),
            "after": pd.Series(rows["after"], dtype=object),
        }
    )
    frame.index = pd.Index(rows["_id"], dtype="string", name="_id")
    return frame
