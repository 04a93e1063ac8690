"""Query planning and execution over a document source.

:func:`execute` runs a :class:`~threadkit.db.query.Query` against any
:class:`Source` (a collection in an LMDB transaction, a write transaction's
overlay, or the reference :class:`InMemorySource`):

1. **plan** (:func:`explain`): choose index lookups whose union is certain to
   hold every document the query could match, or else a full scan;
2. **match**: fetch the candidates in ``_id`` order (a stored collection reads
   them in chunks, :mod:`threadkit.db.reads`, each matched as it comes) and
   re-check each with a matcher equal to :func:`~threadkit.db.query.matches`
   (which raises on a deciding type mismatch), leaving out the criterion a
   single index lookup proves;
3. **filter**: pass each match through ``read_filter`` (None hides it; the
   returned document is what the caller sees and what the sort uses);
4. **order**: sort (ties by ``_id`` ascending), then seek, skip, limit.

Results and errors never depend on the plan. An index lookup on criterion
``c`` is used only when the index shows that every document's value at ``c``'s
path has ``c``'s JSON type (or is null): then ``c`` is plainly true or false on
every document, every document outside the lookup has ``c`` false, so its
whole AND is false and it can neither match nor raise (see the three-valued
semantics in :mod:`threadkit.db.query`). When the index holds other types the
planner does not guess: it tries another criterion or scans, and the scan
raises exactly when a mismatch decides some document. The same argument
covers a query whose ``ors`` branches each have a usable lookup (the union of
the branch lookups).

Rules of the plan:

- a usable criterion is an and-criterion of the query (not an ``or_`` branch)
  with ``EQ``, ``IN`` or a range operation on an indexed path; ``EQ``/``IN``
  are preferred over ranges, earlier criteria over later ones, and the index
  named by ``use_index`` over all others;
- a query with ands uses one lookup for them, plus the plans of its ``ors``;
  a query with only ``ors`` is the union of its branch plans; any part that
  has no usable lookup (or a query with neither ands nor ors) means a scan;
- ``use_index`` is only a hint: naming a path without an index, or one the
  query cannot use, is noted in the plan and otherwise ignored. (ThreadDB
  returned no results, silently, for an index on a bad path.)

Examples
--------
>>> from threadkit.db.query import where
>>> src = InMemorySource([{"_id": "a", "n": 1}, {"_id": "b", "n": 2}], indexed_paths=["n"])
>>> [d["_id"] for d in execute(where("n").ge(2), src)]
['b']
>>> print(explain(where("n").ge(2), src))
index lookup: n ge 2
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import chain, islice, repeat
from operator import itemgetter, le
from typing import Any, Protocol

from threadkit.db.indexkeys import encode_value, json_type, key_type, type_range
from threadkit.db.query import INDEXABLE_OPS, Criterion, Op, Query, Value, resolve
from threadkit.db.reads import compile_matcher
from threadkit.errors import InvalidDocument, InvalidIndex, InvalidQuery

__all__ = [
    "InMemorySource",
    "IndexLookup",
    "Plan",
    "ReadFilter",
    "Source",
    "execute",
    "explain",
]

ReadFilter = Callable[[dict[str, Any]], dict[str, Any] | None]
"""A read filter: the document a reader may see (possibly changed), or None to hide it."""


class Source(Protocol):
    """What the executor needs from a collection.

    Documents are JSON objects with a string ``_id``. A source may also define
    ``schema_allows(path: str) -> bool``: when present and false for a sort
    path, the query is refused (ThreadDB's ``ErrInvalidSortingField``); without
    it any sort path is accepted.
    """

    def scan(self) -> Iterable[dict[str, Any]]:
        """Every document, in ``_id`` order (code point order = UTF-8 byte order)."""
        ...

    def get(self, instance_id: str) -> dict[str, Any] | None:
        """The document with that ``_id``, or None."""
        ...

    def indexed_paths(self) -> Collection[str]:
        """The dot paths that have an index (``_id`` may be among them)."""
        ...

    def index_ids(self, path: str, op: Op, value: Value) -> Iterable[str]:
        """Ids of documents whose indexed value at ``path`` satisfies ``op value``.

        ``op`` is one of ``EQ``, ``IN``, ``GT``, ``GE``, ``LT``, ``LE``; ``value``
        has one JSON type (a tuple of them for ``IN``) and only values of that
        type qualify. Extra ids are harmless (candidates are re-checked);
        duplicates are fine.
        """
        ...

    def index_types(self, path: str) -> Collection[str]:
        """The JSON types (:data:`~threadkit.db.indexkeys.JSON_TYPES`) present in the index."""
        ...


@dataclass(frozen=True)
class IndexLookup:
    """One index lookup of a plan.

    Attributes
    ----------
    path : str
        The indexed path.
    op : Op
        ``EQ``, ``IN``, ``GT``, ``GE``, ``LT`` or ``LE``.
    value : Value
        The criterion value.
    """

    path: str
    op: Op
    value: Value

    def __str__(self) -> str:
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return f"{self.path} {self.op.name.lower()} {value!r}"


@dataclass(frozen=True)
class Plan:
    """How :func:`execute` finds candidate documents.

    Attributes
    ----------
    lookups : tuple[IndexLookup, ...]
        Index lookups whose union holds every possible match; empty for a
        full scan.
    notes : tuple[str, ...]
        Why the planner decided as it did (hints ignored, indexes skipped).
    """

    lookups: tuple[IndexLookup, ...]
    notes: tuple[str, ...] = ()

    @property
    def full_scan(self) -> bool:
        """True when every document is read."""
        return not self.lookups

    def __str__(self) -> str:
        if self.full_scan:
            head = "full scan"
        elif len(self.lookups) == 1:
            head = f"index lookup: {self.lookups[0]}"
        else:
            head = "union of index lookups: " + "; ".join(str(lk) for lk in self.lookups)
        return "\n".join([head, *(f"  note: {note}" for note in self.notes)])


# --- planning ------------------------------------------------------------------------


class _Planner:
    def __init__(self, source: Source) -> None:
        self.source = source
        self.indexed = frozenset(source.indexed_paths())
        self.notes: list[str] = []
        self._types: dict[str, frozenset[str]] = {}

    def types(self, path: str) -> frozenset[str]:
        if path not in self._types:
            self._types[path] = frozenset(self.source.index_types(path))
        return self._types[path]

    def plan(self, query: Query, where: str) -> list[IndexLookup] | None:
        if not query.ands and not query.ors:
            self.notes.append(f"{where} has no criteria: every document matches")
            return None
        lookups: list[IndexLookup] = []
        if query.ands:
            pick = self.pick(query, where)
            if pick is None:
                return None
            lookups.append(pick)
        for i, branch in enumerate(query.ors):
            sub = self.plan(branch, f"{where}.ors[{i}]")
            if sub is None:
                return None
            lookups.extend(sub)
        return list(dict.fromkeys(lookups))

    def pick(self, query: Query, where: str) -> IndexLookup | None:
        hint = query.index_hint
        usable = [
            (i, c)
            for i, c in enumerate(query.ands)
            if c.op in INDEXABLE_OPS and c.path in self.indexed
        ]
        usable.sort(key=lambda ic: (ic[1].path != hint, ic[1].op not in (Op.EQ, Op.IN), ic[0]))
        if hint and hint not in self.indexed:
            self.notes.append(f"{where}: use_index({hint!r}) ignored: no index on that path")
        elif hint and not any(c.path == hint for _, c in usable):
            self.notes.append(
                f"{where}: use_index({hint!r}) ignored: no eq, in or range criterion on it"
            )
        for _, c in usable:
            extra = self.types(c.path) - {c.value_type, "null"}
            if extra:
                self.notes.append(
                    f"{where}: index on {c.path!r} not used for {c.op.name.lower()}: it also "
                    f"holds {', '.join(sorted(extra))} values, so every document is checked"
                )
                continue
            return IndexLookup(c.path, c.op, c.value)
        if not any(n.startswith(f"{where}: index on") for n in self.notes):
            self.notes.append(f"{where}: no and-criterion can use an index")
        return None


def explain(query: Query | None, source: Source) -> Plan:
    """The plan :func:`execute` would use for ``query`` on ``source``.

    Parameters
    ----------
    query : Query | None
        The query; None means ``Query()``.
    source : Source
        Where the documents are.

    Returns
    -------
    Plan
        Index lookups (their union holds every possible match) or a full scan,
        with notes on the choices made.
    """
    query = _as_query(query)
    planner = _Planner(source)
    if not planner.indexed:
        return Plan((), ("no indexes",))
    lookups = planner.plan(query, "query")
    return Plan(tuple(lookups or ()), tuple(planner.notes))


# --- execution -----------------------------------------------------------------------


def _as_query(query: object) -> Query:
    if query is None:
        return Query()
    if not isinstance(query, Query):
        raise InvalidQuery(f"expected a Query (or None), not {type(query).__name__}")
    return query


def _doc_id(doc: Mapping[str, Any]) -> str:
    instance_id = doc.get("_id") if type(doc) is dict or isinstance(doc, Mapping) else None
    if not isinstance(instance_id, str):
        raise InvalidDocument(f"a stored document has no string _id: {doc!r:.200}")
    return instance_id


def _batches(plan: Plan, source: Source) -> Iterator[list[dict[str, Any]]] | None:
    """The candidates in ``_id`` order, in chunks, when the source reads them in batches
    (a source without ``scan_batches`` gives its scan as one chunk)."""
    if plan.full_scan:
        scan_batches = getattr(source, "scan_batches", None)
        return iter([list(source.scan())]) if scan_batches is None else scan_batches()
    index_refs = getattr(source, "index_refs", None)
    if index_refs is None:
        return None
    # a stored collection: ids stay encoded, the documents come in batches
    refs: list[bytes] = []
    for lookup in plan.lookups:
        refs.extend(index_refs(lookup.path, lookup.op, lookup.value))
    if len(plan.lookups) > 1 or plan.lookups[0].op is Op.IN:
        refs = list(set(refs))
    refs.sort()  # encoded ids sort as the ids do
    return source.load_batches(refs)  # type: ignore[attr-defined,no-any-return]


def _matching_batch(plan: Plan, source: Source, residual: Query) -> list[dict[str, Any]] | None:
    """The candidates ``residual`` matches, in ``_id`` order, read in batches; None when
    the source does not read in batches or a candidate is not an object with a text ``_id``
    (:func:`_candidates` then reads them one by one and raises on that one).

    Each chunk is matched as it comes and only its matches are kept, so the candidates that
    do not match are let go chunk by chunk. Giving up at a later chunk is sound: the matcher
    has no effects, and where it raised on an earlier chunk the one-by-one read raises the
    same error on the same document, every document before it being a valid object.
    """
    batches = _batches(plan, source)
    if batches is None:
        return None
    match = compile_matcher(residual) if residual.ands or residual.ors else None
    out: list[dict[str, Any]] = []
    ordered = True
    last: list[str] = []  # the last _id of the chunks so far
    for docs in batches:
        if not set(map(type, docs)) <= {dict}:
            return None
        ids: list[Any] = list(map(dict.get, docs, repeat("_id")))
        if not set(map(type, ids)) <= {str}:
            return None
        # in _id order from every source already: then a stable sort leaves them as they are
        follow = ids if last else islice(ids, 1, None)
        ordered = ordered and all(map(le, chain(last, ids), follow))
        last = ids[-1:] or last
        out += docs if match is None else filter(match, docs)
    if not ordered:
        out.sort(key=_BY_ID)
    return out


_BY_ID = itemgetter("_id")


def _matching(plan: Plan, source: Source, residual: Query) -> list[tuple[str, dict[str, Any]]]:
    """The candidates ``residual`` matches, with their ids, in ``_id`` order."""
    docs = _matching_batch(plan, source, residual)
    if docs is not None:
        return [(doc["_id"], doc) for doc in docs]
    match = compile_matcher(residual)
    return [(i, doc) for i, doc in _candidates(plan, source) if match(doc)]


def _candidates(plan: Plan, source: Source) -> Iterator[tuple[str, dict[str, Any]]]:
    if plan.full_scan:
        for doc in source.scan():
            yield _doc_id(doc), doc
        return
    ids: set[str] = set()
    for lookup in plan.lookups:
        ids.update(source.index_ids(lookup.path, lookup.op, lookup.value))
    for instance_id in sorted(ids):
        found = source.get(instance_id)
        if found is not None:
            yield instance_id, found


def _check_sort_path(query: Query, source: Source) -> None:
    sort = query.sort
    if sort is None or sort.path == "_id":
        return
    allows = getattr(source, "schema_allows", None)
    if allows is not None and not allows(sort.path):
        raise InvalidQuery(
            f"cannot sort by {sort.path!r}: the collection's schema has no such field"
        )


def _order(query: Query, rows: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    rows.sort(key=itemgetter(0))  # already in _id order from every source: one pass
    sort = query.sort
    desc = sort is not None and sort.desc
    if sort is None or sort.path == "_id":
        if desc:
            rows.reverse()
        if query.seek_id:
            seek = query.seek_id
            rows = [r for r in rows if (r[0] <= seek if desc else r[0] >= seek)]
    else:
        keyed: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        first_of: dict[str, str] = {}
        for instance_id, doc in rows:
            present, value = resolve(doc, sort.path)
            if not present or value is None:
                keyed.append(((0,), doc))
                continue
            kind = json_type(value)
            if kind not in ("string", "number", "boolean"):
                raise InvalidQuery(
                    f"cannot sort by {sort.path!r}: document {instance_id!r} holds a {kind} "
                    "there; only strings, numbers and booleans sort"
                )
            first_of.setdefault(kind, instance_id)
            keyed.append(((1, value), doc))
        if len(first_of) > 1:
            found = ", ".join(f"a {kind} in {i!r}" for kind, i in sorted(first_of.items()))
            raise InvalidQuery(f"cannot sort by {sort.path!r}: it holds mixed types ({found})")
        keyed.sort(key=lambda item: item[0], reverse=desc)  # stable: ties stay in _id order
        return _page(query, [doc for _, doc in keyed])
    return _page(query, [doc for _, doc in rows])


def _page(query: Query, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    start = query.skip_count
    if not start and not query.limit_count:
        return docs
    stop = start + query.limit_count if query.limit_count else None
    return docs[start:stop]


def execute(
    query: Query | None,
    source: Source,
    *,
    read_filter: ReadFilter | None = None,
    filter_many: Callable[[list[dict[str, Any]]], list[dict[str, Any] | None]] | None = None,
) -> list[dict[str, Any]]:
    """Run a query: plan, match, filter, sort, seek, skip, limit.

    Parameters
    ----------
    query : Query | None
        The query; None means ``Query()`` (every document).
    source : Source
        Where the documents are.
    read_filter : ReadFilter | None, optional
        Applied to every match before ordering: returns the document the
        reader sees (possibly changed) or None to hide it.
    filter_many : callable, optional
        The same for all matches at once (one list in, one result per document out);
        used instead of ``read_filter`` when given.

    Returns
    -------
    list[dict[str, Any]]
        The page of results. Ordered by the sort path (documents without it,
        or with null there, first when ascending, last when descending; ties
        by ``_id`` ascending), or by ``_id``. ``_id`` order, seek and ties use
        the stored ``_id`` even if the read filter changes it.

    Raises
    ------
    InvalidQuery
        When a type mismatch decides whether a stored document matches
        (checked before the read filter, whatever the plan), when the sort
        path holds mixed types or objects/arrays among the visible matches, or
        when the source's schema rules out the sort path.
    """
    query = _as_query(query)
    _check_sort_path(query, source)
    plan = explain(query, source)
    if filter_many is None and read_filter is None and _in_id_order(query):
        docs = _matching_batch(plan, source, _residual(query, plan))
        if docs is not None:
            return _page(query, docs)  # in _id order already, nothing to hide or sort
    rows: list[tuple[str, dict[str, Any]]] = []
    found = _matching(plan, source, _residual(query, plan))
    if filter_many is not None:
        shown_all = filter_many([doc for _, doc in found]) if found else []
        for (instance_id, _), shown in zip(found, shown_all, strict=True):
            if shown is not None:
                rows.append((instance_id, _checked_view(instance_id, shown)))
        return _order(query, rows)
    for instance_id, doc in found:
        if read_filter is not None:
            shown = read_filter(doc)
            if shown is None:
                continue
            doc = _checked_view(instance_id, shown)
        rows.append((instance_id, doc))
    return _order(query, rows)


def _in_id_order(query: Query) -> bool:
    """Whether the results are the matches in ascending ``_id`` order (then paged)."""
    sort = query.sort
    return not query.seek_id and (sort is None or (sort.path == "_id" and not sort.desc))


def _residual(query: Query, plan: Plan) -> Query:
    """What is left to check on the candidates of ``plan``.

    A single lookup proves its criterion on every candidate: the index holds only the
    criterion's type there (or null, which no lookup returns), and within one type the
    order of index keys is the order of values, numbers compared exactly. So when the
    query has no ``ors``, that criterion is true on every candidate and an AND with a
    true part is the AND of the rest (same result, same errors).
    """
    if query.ors or len(plan.lookups) != 1:
        return query
    lookup = plan.lookups[0]
    proven = Criterion(lookup.path, lookup.op, lookup.value)
    rest = list(query.ands)
    if proven not in rest:
        return query
    rest.remove(proven)
    return Query(ands=tuple(rest))


def _checked_view(instance_id: str, shown: Any) -> dict[str, Any]:
    """What a read filter returned for a match, when it is a document."""
    if not isinstance(shown, dict):
        raise InvalidDocument(
            f"the read filter returned a {json_type(shown)} for {instance_id!r}; "
            "expected an object or null"
        )
    return shown


# --- the reference source ------------------------------------------------------------


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


class _Index:
    """One path's entries, kept sorted as ``(encode_value(value), id)``."""

    __slots__ = ("entries", "keys", "types")

    def __init__(self) -> None:
        self.entries: list[tuple[bytes, str]] = []
        self.keys: list[bytes] = []  # the value keys of ``entries``, for bisecting
        self.types: Counter[str] = Counter()

    def add(self, key: bytes, instance_id: str) -> None:
        pos = bisect.bisect_left(self.entries, (key, instance_id))
        self.entries.insert(pos, (key, instance_id))
        self.keys.insert(pos, key)
        self.types[key_type(key)] += 1

    def remove(self, key: bytes, instance_id: str) -> None:
        pos = bisect.bisect_left(self.entries, (key, instance_id))
        del self.entries[pos]
        del self.keys[pos]
        self.types[key_type(key)] -= 1

    def ids(self, lo: int, hi: int) -> list[str]:
        return [instance_id for _, instance_id in self.entries[lo:hi]]


class InMemorySource:
    """A reference :class:`Source` over documents held in memory.

    Indexes use the same key encoding (:mod:`threadkit.db.indexkeys`) as the
    stored collections, so this is also a model of their behaviour. Documents
    are copied in and out; ``put`` and ``delete`` keep the indexes current
    (an overlay of pending writes can be queried this way).

    Parameters
    ----------
    docs : Iterable[Mapping[str, Any]], optional
        JSON objects, each with a unique string ``_id``.
    indexed_paths : Iterable[str], optional
        Dot paths to index; ``_id`` is always indexed.
    known_paths : Collection[str] | None, optional
        The dot paths a schema allows, for ``schema_allows``; None allows all.

    Raises
    ------
    InvalidDocument
        For a document that is not an object, lacks a string ``_id``, repeats
        an ``_id``, or holds NaN at an indexed path.
    InvalidIndex
        For an empty or malformed index path.
    """

    def __init__(
        self,
        docs: Iterable[Mapping[str, Any]] = (),
        indexed_paths: Iterable[str] = (),
        *,
        known_paths: Collection[str] | None = None,
    ) -> None:
        paths = ["_id"]
        for path in indexed_paths:
            if not isinstance(path, str) or not path or "" in path.split("."):
                raise InvalidIndex(f"index path {path!r} is not a dot path")
            paths.append(path)
        self._paths = tuple(dict.fromkeys(paths))
        self._indexes = {path: _Index() for path in self._paths}
        self._docs: dict[str, dict[str, Any]] = {}
        self._keys: dict[str, dict[str, bytes]] = {}
        self._known = None if known_paths is None else frozenset(known_paths)
        for doc in docs:
            if isinstance(doc, Mapping) and doc.get("_id") in self._docs:
                raise InvalidDocument(f"two documents have the _id {doc['_id']!r}")
            self.put(doc)

    def __len__(self) -> int:
        return len(self._docs)

    def __contains__(self, instance_id: object) -> bool:
        return instance_id in self._docs

    def put(self, doc: Mapping[str, Any]) -> None:
        """Insert or replace a document (by its ``_id``)."""
        if not isinstance(doc, Mapping):
            raise InvalidDocument(f"a document must be an object, not {json_type(doc)}")
        instance_id = doc.get("_id")
        if not isinstance(instance_id, str):
            raise InvalidDocument(f"a document needs a string _id, not {instance_id!r}")
        stored = _copy(dict(doc))
        keys: dict[str, bytes] = {}
        for path in self._paths:
            present, value = resolve(stored, path)
            if present:
                try:
                    keys[path] = encode_value(value)
                except ValueError as exc:
                    raise InvalidDocument(f"document {instance_id!r} at {path!r}: {exc}") from None
        self.delete(instance_id)
        self._docs[instance_id] = stored
        self._keys[instance_id] = keys
        for path, key in keys.items():
            self._indexes[path].add(key, instance_id)

    def delete(self, instance_id: str) -> bool:
        """Remove a document; True when it was there."""
        if instance_id not in self._docs:
            return False
        del self._docs[instance_id]
        for path, key in self._keys.pop(instance_id).items():
            self._indexes[path].remove(key, instance_id)
        return True

    def scan(self) -> Iterator[dict[str, Any]]:
        """Every document (a copy), in ``_id`` order."""
        for instance_id in sorted(self._docs):
            yield _copy(self._docs[instance_id])

    def get(self, instance_id: str) -> dict[str, Any] | None:
        """A copy of the document, or None."""
        doc = self._docs.get(instance_id)
        return None if doc is None else _copy(doc)

    def indexed_paths(self) -> frozenset[str]:
        """The indexed paths, ``_id`` included."""
        return frozenset(self._paths)

    def index_types(self, path: str) -> set[str]:
        """The JSON types present in the index on ``path``."""
        return {kind for kind, n in self._index(path).types.items() if n > 0}

    def schema_allows(self, path: str) -> bool:
        """Whether ``known_paths`` (if given) has ``path``."""
        return self._known is None or path == "_id" or path in self._known

    def _index(self, path: str) -> _Index:
        index = self._indexes.get(path)
        if index is None:
            raise InvalidQuery(f"no index on {path!r}")
        return index

    def index_ids(self, path: str, op: Op, value: Value) -> list[str]:
        """Ids whose indexed value satisfies ``op value`` (found by bisecting sorted keys)."""
        index = self._index(path)
        if op is Op.IN:
            assert isinstance(value, tuple)
            return [i for item in dict.fromkeys(value) for i in self.index_ids(path, Op.EQ, item)]
        if op not in INDEXABLE_OPS or isinstance(value, tuple):
            raise InvalidQuery(f"an index cannot answer {op.name.lower()} {value!r}")
        low, high = type_range(json_type(value))
        key = encode_value(value)
        keys = index.keys
        start = bisect.bisect_left(keys, low)
        end = bisect.bisect_left(keys, high)
        at = bisect.bisect_left(keys, key, start, end)
        past = bisect.bisect_right(keys, key, start, end)
        bounds = {
            Op.EQ: (at, past),
            Op.GT: (past, end),
            Op.GE: (at, end),
            Op.LT: (start, at),
            Op.LE: (start, past),
        }
        lo, hi = bounds[op]
        return index.ids(lo, hi)
