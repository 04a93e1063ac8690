"""A database's events as DataFrames: the history, and the writes that lost.

Every write is an event in the thread's logs (docs/design.md §7.6). :func:`history`
lists them all in the total order (HLC stamp, then log id; docs/semantics.md),
with who wrote them, in which log and record, and what they did.
:func:`conflicts` lists the writes that lost — overwritten by a concurrent
write, or rejected where they stood — beside the writes they lost to.

Both read through the database's read side, :mod:`threadkit.db.timeline`
(``db.timeline``); this module only shapes what it reads into DataFrames.

Examples
--------
>>> import threadkit as tk
>>> with tk.Peer(memory=True) as peer:
...     db = peer.new_db("notes")
...     notes = db.new_collection("Notes")
...     ids = notes.create({"_id": "n1", "text": "hello"})
...     notes.save({"_id": "n1", "text": "hello, world"})
...     df = history(db)
>>> list(df["action"])
['new_collection', 'create', 'save']
>>> df["patch"].iloc[2]["text"]
'hello, world'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from threadkit.db.events import Action
from threadkit.db.timeline import EventEntry, cid_text, key_stamp, log_of_key, stamp_text
from threadkit.errors import CollectionNotFound
from threadkit.frames.history_columns import history_columns

if TYPE_CHECKING:
    import pandas as pd

    from threadkit.frames.source import DatabaseSource

__all__ = ["conflicts", "history", "history_by_rows", "shown_history", "value_at"]

_SAVE_LOST_TO_DELETE = "saved an instance that a concurrent write deleted"

HISTORY_COLUMNS = (
    "hlc",
    "time",
    "author",
    "log",
    "record",
    "collection",
    "instance",
    "action",
    "patch",
    "rejected",
    "reason",
)
"""Columns of :func:`history`, in order."""

_SIDE_COLUMNS = ("hlc", "time", "author", "log", "record", "value")
CONFLICT_COLUMNS = (
    "collection",
    "instance",
    "kind",
    "path",
    "reason",
    *(f"loser_{c}" for c in _SIDE_COLUMNS),
    *(f"winner_{c}" for c in _SIDE_COLUMNS),
)
"""Columns of :func:`conflicts`, in order."""


# ------------------------------------------------------------------------ values


def value_at(data: Any, path: str) -> Any:
    """The value a document or merge patch holds at a dot path, None when it holds none.

    Walking stops at a non-object on the way: a patch that replaced ``a`` with
    a scalar holds that scalar for ``a.b``. The empty path is ``data`` itself.

    Examples
    --------
    >>> value_at({"a": {"b": 1}}, "a.b"), value_at({"a": 5}, "a.b"), value_at({}, "x")
    (1, 5, None)
    """
    if path == "":
        return data
    node = data
    for part in path.split("."):
        if not isinstance(node, dict):
            return node
        if part not in node:
            return None
        node = node[part]
    return node


# ---------------------------------------------------------------------- history


def _lost_index(db: DatabaseSource, collection: str | None) -> dict[tuple[str, str, bytes], str]:
    """Rejected events: (collection, instance, key) → reason."""
    rejected: dict[tuple[str, str, bytes], str] = {}
    for lost in db.lost_writes(collection):
        ident = (lost["collection"], lost["instance_id"], lost["loser"])
        if lost["kind"] == "rejected":
            rejected[ident] = lost["reason"] or "rejected"
        elif lost["kind"] == "overwritten" and lost["path"] == "":
            # a save refused because a concurrent delete precedes it (see conflicts())
            rejected.setdefault(ident, _SAVE_LOST_TO_DELETE)
    return rejected


def _times(walls: list[int]) -> Any:
    import pandas as pd

    return pd.to_datetime(pd.Series(walls, dtype="int64"), unit="ns", utc=True)


def history(db: DatabaseSource, collection: str | None = None) -> pd.DataFrame:
    """Every event of a database, in the total order, as a DataFrame.

    Parameters
    ----------
    db : DatabaseSource
        The database.
    collection : str, optional
        Only this collection's events: its instance events and its own
        create/update/delete events. None: every collection, collection
        events included (``instance`` is "" for those).

    Returns
    -------
    pandas.DataFrame
        One row per event, in the total order (HLC stamp, then log id), with
        columns:

        ========== ==============================================================
        hlc        the HLC stamp as ``"wall.logical"`` (wall in ns)
        time       the stamp's wall time, ``datetime64[ns, UTC]``
        author     the writer's public key string (the record's ``pubKey``)
        log        the writer's log id (``12D3KooW…``)
        record     the CID of the record that carried the event (base32)
        collection the collection
        instance   the instance ``_id`` ("" for collection events)
        action     create, save, delete, purge, new_collection, update_collection,
                   delete_collection, migrate_collection
        patch      create: the document; save: the merge patch (RFC 7386, None
                   removes a field); new/update_collection: the config;
                   migrate_collection: ``{config, transform}``; an event a purge
                   erased: ``{"_purged": True}``; else None
        rejected   True when the event was skipped where it stood (schema,
                   validator, unique index, a concurrent delete, no collection)
        reason     why it was rejected, else None
        ========== ==============================================================

        Overwritten writes are not ``rejected``: they were applied and later
        overwritten; :func:`conflicts` lists them.

    Examples
    --------
    >>> import threadkit as tk
    >>> with tk.Peer(memory=True) as peer:
    ...     db = peer.new_db("notes")
    ...     notes = db.new_collection("Notes", indexes=[tk.Index("slug", unique=True)])
    ...     _ = notes.create({"_id": "a", "slug": "x"})
    ...     notes.delete("a")
    ...     df = history(db, "Notes")
    >>> df[["instance", "action", "rejected"]].to_dict("records")  # doctest: +NORMALIZE_WHITESPACE
    [{'instance': '', 'action': 'new_collection', 'rejected': False},
     {'instance': 'a', 'action': 'create', 'rejected': False},
     {'instance': 'a', 'action': 'delete', 'rejected': False}]
    """
    import pandas as pd

    if collection is not None and collection not in db.engine.colls:
        _unknown_collection(db, collection)
    rejected = _lost_index(db, collection)
    columns = history_columns(db, collection, rejected)
    if columns is None:
        return history_by_rows(db, collection)
    return pd.DataFrame(columns, columns=list(HISTORY_COLUMNS))


def shown_history(db: DatabaseSource, collection: str | None = None) -> pd.DataFrame:
    """:func:`readable_history` of :func:`history` (what ``db.history()`` shows), built
    without the columns it drops."""
    import pandas as pd

    if collection is not None and collection not in db.engine.colls:
        _unknown_collection(db, collection)
    columns = history_columns(db, collection, _lost_index(db, collection), shorten=short_id)
    if columns is None:
        return readable_history(history_by_rows(db, collection))
    return pd.DataFrame(columns, columns=list(READABLE_HISTORY_COLUMNS))


def history_by_rows(db: DatabaseSource, collection: str | None = None) -> pd.DataFrame:
    """:func:`history` built event by event from :func:`threadkit.db.timeline.event_rows`.

    The frame :func:`history` builds from columns, the slow way: what it falls back
    to when the stored keys do not fit the columnar read, and its oracle in tests.
    """
    import pandas as pd

    if collection is not None and collection not in db.engine.colls:
        _unknown_collection(db, collection)
    rows = db.timeline.events(collection)
    rejected = _lost_index(db, collection)
    stamps = [r.stamp for r in rows]
    reasons = [rejected.get((r.collection, r.instance, r.key)) for r in rows]
    frame = pd.DataFrame(
        {
            "hlc": pd.Series([stamp_text(s) for s in stamps], dtype="string"),
            "time": _times([s.wall for s in stamps]),
            "author": pd.Series([r.author for r in rows], dtype="string"),
            "log": pd.Series([r.log for r in rows], dtype="string"),
            "record": pd.Series(
                [cid_text(r.record) if r.record else None for r in rows], dtype="string"
            ),
            "collection": pd.Series([r.collection for r in rows], dtype="string"),
            "instance": pd.Series([r.instance for r in rows], dtype="string"),
            "action": pd.Series([str(r.action) for r in rows], dtype="string"),
            "patch": pd.Series([r.data for r in rows], dtype=object),
            "rejected": pd.Series([reason is not None for reason in reasons], dtype=bool),
            "reason": pd.Series(reasons, dtype="string"),
        },
        columns=list(HISTORY_COLUMNS),
    )
    return frame


def _unknown_collection(db: DatabaseSource, name: str) -> None:

    raise CollectionNotFound(f"collection {name!r} has never existed in {db.name!r}")


# -------------------------------------------------------------------- conflicts


def conflicts(db: DatabaseSource, collection: str | None = None) -> pd.DataFrame:
    """The writes that lost, beside the writes they lost to.

    Parameters
    ----------
    db : DatabaseSource
        The database.
    collection : str, optional
        Only this collection's lost writes.

    Returns
    -------
    pandas.DataFrame
        One row per lost write (``db.lost_writes()``), ordered by the losing
        event's place in the total order, with columns:

        ================ =========================================================
        collection       the collection
        instance         the instance ``_id``
        kind             "overwritten": a concurrent write later in the order set
                         the same field, its writer not having seen the loser;
                         "rejected": skipped where it stood (schema, validator,
                         unique index, a concurrent delete)
        path             the overwritten field's dot path ("" when a save lost
                         the whole instance to a concurrent delete); None for
                         rejections
        reason           why a rejected write was refused, else None
        loser_hlc, …     the losing event: HLC stamp, time (UTC), author, log,
                         record CID, and ``loser_value``: its value at ``path``
                         (the whole document or patch for a rejection)
        winner_hlc, …    the same for the winning event (None when a rejection
                         lost to no event); ``winner_value`` is its value at
                         ``path``, None when it removed the field or deleted
                         the instance
        ================ =========================================================

        Every peer holding the same records gets the same rows.

    Examples
    --------
    >>> import threadkit as tk
    >>> from threadkit.db.handoff import handoff, replica
    >>> with tk.Peer(memory=True) as a, tk.Peer(memory=True) as b:
    ...     db_a = a.new_db("shared")
    ...     _ = db_a.new_collection("Notes").create({"_id": "n", "text": "draft"})
    ...     db_b = replica(b, db_a)
    ...     _ = handoff(db_a, db_b)
    ...     db_a["Notes"].save({"_id": "n", "text": "from A"})
    ...     db_b["Notes"].save({"_id": "n", "text": "from B"})  # concurrent: B had not seen A's
    ...     _ = handoff(db_a, db_b), handoff(db_b, db_a)
    ...     df = conflicts(db_a)
    >>> row = df.iloc[0]
    >>> row["kind"], row["path"], row["loser_value"], row["winner_value"]
    ('overwritten', 'text', 'from A', 'from B')
    """
    import pandas as pd

    lost = db.lost_writes(collection)
    lost.sort(key=lambda w: (w["loser"], w["collection"], w["instance_id"], w["path"] or ""))
    columns: dict[str, list[Any]] = {name: [] for name in CONFLICT_COLUMNS}
    wanted = [
        (w["collection"], w["instance_id"], key) for w in lost for key in (w["loser"], w["winner"])
    ]
    events = iter(db.timeline.stored_events(wanted))
    for entry in lost:
        name, instance, path = entry["collection"], entry["instance_id"], entry["path"]
        kind, reason = entry["kind"], entry["reason"]
        if kind == "overwritten" and path == "":
            reason = reason or _SAVE_LOST_TO_DELETE
        columns["collection"].append(name)
        columns["instance"].append(instance)
        columns["kind"].append(kind)
        columns["path"].append(path)
        columns["reason"].append(reason)
        for side, key in (("loser", entry["loser"]), ("winner", entry["winner"])):
            _side(columns, side, key, next(events), path if kind == "overwritten" else "")
    series = {}
    for column in CONFLICT_COLUMNS:
        values = columns[column]
        if column.endswith("_time"):
            series[column] = pd.Series(values, dtype="datetime64[ns, UTC]")
        elif column.endswith("_value"):
            series[column] = pd.Series(values, dtype=object)
        else:
            series[column] = pd.Series(values, dtype="string")
    return pd.DataFrame(series, columns=list(CONFLICT_COLUMNS))


def _side(
    columns: dict[str, list[Any]],
    side: str,
    key: bytes | None,
    event: EventEntry | None,
    path: str,
) -> None:
    stamp = key_stamp(key) if key else None
    columns[f"{side}_hlc"].append(stamp_text(stamp) if stamp else None)
    columns[f"{side}_time"].append(_timestamp(stamp.wall) if stamp else None)
    columns[f"{side}_log"].append(log_of_key(key) if key else None)
    if event is None:
        columns[f"{side}_author"].append(None)
        columns[f"{side}_record"].append(None)
        columns[f"{side}_value"].append(None)
        return
    columns[f"{side}_author"].append(event.author)
    columns[f"{side}_record"].append(cid_text(event.record) if event.record else None)
    deleted = event.action is Action.DELETE
    columns[f"{side}_value"].append(None if deleted else value_at(event.data, path))


def _timestamp(wall: int) -> Any:
    """A wall time in ns as a UTC ``pandas.Timestamp`` (ns precision)."""
    import pandas as pd

    return pd.Timestamp(wall, unit="ns", tz="UTC")


# --------------------------------------------------------------------- readable

READABLE_HISTORY_COLUMNS = (
    "time",
    "log",
    "record",
    "collection",
    "instance",
    "action",
    "patch",
    "rejected",
    "reason",
)
"""Columns of ``db.history()`` as shown by default (``full=True``: :data:`HISTORY_COLUMNS`)."""

READABLE_CONFLICT_COLUMNS = (
    "collection",
    "instance",
    "kind",
    "path",
    "reason",
    "loser_time",
    "loser_log",
    "loser_value",
    "winner_time",
    "winner_log",
    "winner_value",
)
"""Columns of ``db.conflicts()`` as shown by default (``full=True``: :data:`CONFLICT_COLUMNS`)."""

_SHORT = 8


def short_id(text: str | None) -> str | None:
    """A long id (log id, public key, record CID) as its last characters, after an ellipsis.

    The ids of one database share their first characters (``12D3KooW…``,
    ``bafyrei…``), so the end is what tells them apart.

    Examples
    --------
    >>> short_id("12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"), short_id(None)
    ('…kSCVe2Xo', None)
    """
    if text is None or len(text) <= _SHORT + 1:
        return text
    return "…" + text[-_SHORT:]


def _shorten(frame: pd.DataFrame, columns: tuple[str, ...], keep: tuple[str, ...]) -> Any:
    import pandas as pd

    shown = frame.loc[:, list(keep)].copy()
    for column in columns:
        if column in shown:
            shown[column] = pd.Series(_short_ids(shown[column]), index=shown.index, dtype="string")
    return shown


def _short_ids(values: pd.Series) -> Any:
    """:func:`short_id` of each string of a column (None for anything else), with Arrow kernels."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(values.dtype, pd.StringDtype):
        return [short_id(v) if isinstance(v, str) else None for v in values]
    texts = pa.array(values.array).cast(pa.large_string())
    tails = pc.binary_join_element_wise(
        pa.scalar("…", pa.large_string()),
        pc.utf8_slice_codeunits(texts, -_SHORT),
        pa.scalar("", pa.large_string()),
    )
    return pc.if_else(pc.greater(pc.utf8_length(texts), _SHORT + 1), tails, texts)


def readable_history(frame: pd.DataFrame) -> pd.DataFrame:
    """A :func:`history` frame as shown to people: the time, short ids, no HLC text.

    Examples
    --------
    >>> import threadkit as tk
    >>> with tk.Peer(memory=True) as peer:
    ...     db = peer.new_db("notes")
    ...     _ = db.new_collection("Notes").create({"_id": "n1"})
    ...     shown = readable_history(history(db))
    >>> list(shown.columns) == list(READABLE_HISTORY_COLUMNS), int(shown["log"].str.len().max())
    (True, 9)
    """
    result: pd.DataFrame = _shorten(frame, ("log", "record"), READABLE_HISTORY_COLUMNS)
    return result


def readable_conflicts(frame: pd.DataFrame) -> pd.DataFrame:
    """A :func:`conflicts` frame as shown to people: times, short log ids, the values."""
    result: pd.DataFrame = _shorten(frame, ("loser_log", "winner_log"), READABLE_CONFLICT_COLUMNS)
    return result
