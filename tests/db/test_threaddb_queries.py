"""ThreadDB's query tests, ported: ``db/query_test.go`` ``TestQuery`` (4 books, indexes on
``Meta.TotalReads`` and ``Title``), ``db/query_more_test.go`` ``TestCollectionQuery``
(5 books) and ``TestInvalidSortField``; the books and the expectations are ThreadDB's.

The tables run against :func:`threadkit.db.planner.execute` with a source from the
``make_source(docs, indexed_paths, schema)`` fixture. To run the same tables against the
real collection, swap that fixture for one that creates a collection with the schema and
indexes, creates the documents (with their ``_id``), and returns a source over it.

Every query runs three ways (built, as JS-style JSON, as Go-style JSON) and against three
index layouts (ThreadDB's, none, every field), and must give the same answer each time.
Results are compared in order: without a sort, threadkit returns ``_id`` order, and the
ids here follow creation order (as ThreadDB's ULIDs do).

Deliberate differences from ThreadDB (docs/design.md §7.3):

- ``InvalidIndex``: ``use_index("Not.Valid.Path")`` returned no results and no error in
  ThreadDB (the index scan failed silently). Here an index hint never changes results: it
  is ignored (and :func:`~threadkit.db.planner.explain` says so), so all 4 books match.
- ``TestInvalidSortField``: ThreadDB failed because a document lacked the field; here a
  missing sort field just sorts first, and the error comes from the collection schema,
  which has no such field (the books' schema is closed, as Go's ``SchemaFromInstance``
  makes it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from threadkit.db.planner import InMemorySource, Source, execute, explain
from threadkit.db.query import Query, where
from threadkit.errors import InvalidQuery

SourceFactory = Callable[[list[dict[str, Any]], Sequence[str], Mapping[str, Any]], Source]


# --- data ----------------------------------------------------------------------------


def _book_schema(banned: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "_id": {"type": "string"},
        "Title": {"type": "string"},
        "Author": {"type": "string"},
        "Meta": {
            "type": "object",
            "properties": {"TotalReads": {"type": "integer"}, "Rating": {"type": "number"}},
            "required": ["TotalReads", "Rating"],
            "additionalProperties": False,
        },
    }
    if banned:
        properties["Banned"] = {"type": "boolean"}
    return {
        "type": "object",
        "properties": properties,
        "required": sorted(properties),
        "additionalProperties": False,
    }


def _book(
    i: int, title: str, author: str, reads: int, rating: float, banned: bool | None = None
) -> dict[str, Any]:
    doc: dict[str, Any] = {"_id": f"book{i}", "Title": title}
    if banned is not None:
        doc["Banned"] = banned
    doc["Author"] = author
    doc["Meta"] = {"TotalReads": reads, "Rating": rating}
    return doc


# query_test.go
BOOKS = [
    _book(0, "Title1", "Author1", 100, 3.2, banned=True),
    _book(1, "Title2", "Author1", 150, 4.1, banned=False),
    _book(2, "Title3", "Author2", 120, 4.6, banned=False),
    _book(3, "Title4", "Author3", 1000, 2.6, banned=True),
]
BOOKS_INDEXES = ("Meta.TotalReads", "Title")
BOOKS_SCHEMA = _book_schema(banned=True)

# query_more_test.go
SAMPLE = [
    _book(0, "Title1", "Author1", 10, 3.3),
    _book(1, "Title2", "Author1", 20, 3.6),
    _book(2, "Title3", "Author1", 30, 3.9),
    _book(3, "Title4", "Author2", 114, 4.0),
    _book(4, "Title5", "Author3", 500, 4.8),
]
SAMPLE_SCHEMA = _book_schema(banned=False)

ALL = [0, 1, 2, 3]
title, title0, title1, title3, title_max = "Title", "Title1", "Title2", "Title3", "Title5000"
totread_eq1, totread_mid, totread_eq2 = 100.0, 124.36, 150.0
totread_max, totread_min = 1221.25, 12.22
rating_min, rating1, rating_mid, rating_max = 1.0, 3.2, 3.6, 5.0


@dataclass(frozen=True)
class Case:
    """One ThreadDB test case: a query and the indices of the expected books, in order."""

    name: str
    query: Query | None
    expected: list[int] | type[InvalidQuery]


TEST_QUERY = [
    # Ands string
    Case("EqByTitle1", where("Title").eq(title0), [0]),
    Case("NeByTitle1", where("Title").ne(title0), [1, 2, 3]),
    Case("NeByTitle", where("Title").ne(title), ALL),
    Case("EqByTitle", where("Title").eq(title), []),
    Case("LtByTitle", where("Title").lt(title), []),
    Case("GtByTitle", where("Title").gt(title), ALL),
    Case("GtByTitleMax", where("Title").gt(title_max), []),
    # Ands "int" (which ThreadDB's query interprets as float)
    Case("EqByTotalReads1", where("Meta.TotalReads").eq(totread_eq1), [0]),
    Case("LtByTotalReads1", where("Meta.TotalReads").lt(totread_eq1), []),
    Case("LeByTotalReadsBigger", where("Meta.TotalReads").le(totread_max), ALL),
    Case("GeByTotalReadsMin", where("Meta.TotalReads").ge(totread_min), ALL),
    Case("LtByTotalReadsMidpoint", where("Meta.TotalReads").lt(totread_mid), [0, 2]),
    Case("GtByTotalReadsMidpoint", where("Meta.TotalReads").gt(totread_mid), [1, 3]),
    Case("LtByTotalReads2", where("Meta.TotalReads").lt(totread_eq2), [0, 2]),
    # Ands float
    Case("EqByRating1", where("Meta.Rating").eq(rating1), [0]),
    Case("GtByRating1", where("Meta.Rating").gt(rating1), [1, 2]),
    Case("LeByRatingMin", where("Meta.Rating").le(rating_min), []),
    Case("GeByRatingMin", where("Meta.Rating").ge(rating_min), ALL),
    Case("LeByRatingMid", where("Meta.Rating").le(rating_mid), [0, 3]),
    Case("GeByRatingMid", where("Meta.Rating").ge(rating_mid), [1, 2]),
    Case("LeByRatingMax", where("Meta.Rating").le(rating_max), ALL),
    Case("GtByRatingMax", where("Meta.Rating").gt(rating_max), []),
    # Ands bool
    Case("EqByBanned", where("Banned").eq(True), [0, 3]),
    Case("NeByBanned", where("Banned").ne(True), [1, 2]),
    Case("EqByBannedFalse", where("Banned").eq(False), [1, 2]),
    # Ors
    Case("EqTitle1OrTitle3", where("Title").eq(title0).or_(where("Title").eq(title3)), [0, 2]),
    Case(
        "EqTitle2OrRating", where("Title").eq(title1).or_(where("Meta.Rating").eq(rating1)), [0, 1]
    ),
    # Ordering (string, int, float)
    Case("AllOrderedTitle", Query().order_by("Title"), [0, 1, 2, 3]),
    Case("AllOrderedTitleDesc", Query().order_by_desc("Title"), [3, 2, 1, 0]),
    Case("AllOrderedTotalReads", Query().order_by("Meta.TotalReads"), [0, 2, 1, 3]),
    Case("AllOrderedTotalReadsDesc", Query().order_by_desc("Meta.TotalReads"), [3, 1, 2, 0]),
    Case("AllOrderedRatings", Query().order_by("Meta.Rating"), [3, 0, 1, 2]),
    Case("AllOrderedRatingsDesc", Query().order_by_desc("Meta.Rating"), [2, 1, 0, 3]),
    Case(
        "AllOrderedRatingsDescWithAnd",
        where("Meta.Rating").gt(rating_mid).order_by("Meta.TotalReads"),
        [2, 1],
    ),
    Case(
        "AllOrderedRatingsDescWithAndDesc",
        where("Meta.Rating").gt(rating_mid).order_by_desc("Meta.TotalReads"),
        [1, 2],
    ),
    # Indexing
    Case(
        "EqTitle1OrTitle3UseIndex",
        where("Title").eq(title0).or_(where("Title").eq(title3)).use_index("Title"),
        [0, 2],
    ),
    Case(
        "GeByTotalReadsMinUseIndex",
        where("Meta.TotalReads").ge(totread_min).use_index("Meta.TotalReads"),
        ALL,
    ),
    # ThreadDB: [] (silently). threadkit: a hint never changes results; see the docstring.
    Case(
        "InvalidIndex",
        where("Meta.TotalReads").ge(totread_min).use_index("Not.Valid.Path"),
        ALL,
    ),
]

TEST_COLLECTION_QUERY = [
    Case("AllNil", None, [0, 1, 2, 3, 4]),
    Case("AllExplicit", Query(), [0, 1, 2, 3, 4]),
    Case("FromAuthor1", where("Author").eq("Author1"), [0, 1, 2]),
    Case("FromAuthor2", where("Author").eq("Author2"), [3]),
    Case("FromAuthor3", where("Author").eq("Author3"), [4]),
    Case("AndAuthor1Title2", where("Author").eq("Author1").and_("Title").eq("Title2"), [1]),
    Case(
        "AndAuthorNestedTotalReads",
        where("Author").eq("Author1").and_("Meta.TotalReads").eq(10.0),
        [0],
    ),
    Case(
        "OrAuthor",
        where("Author").eq("Author1").or_(where("Author").eq("Author3")),
        [0, 1, 2, 4],
    ),
    Case("NeAuthor", where("Author").ne("Author1"), [3, 4]),
    Case("NeTotalReads", where("Meta.TotalReads").ne(30.0), [0, 1, 3, 4]),
    Case("NeRating", where("Meta.Rating").ne(3.6), [0, 2, 3, 4]),
    Case("GtAuthor", where("Author").gt("Author2"), [4]),
    Case("GtTotalReads", where("Meta.TotalReads").gt(30.0), [3, 4]),
    Case("GtRating", where("Meta.Rating").gt(3.6), [2, 3, 4]),
    Case("GeAuthor", where("Author").ge("Author2"), [3, 4]),
    Case("GeTotalReads", where("Meta.TotalReads").ge(30.0), [2, 3, 4]),
    Case("GeRating", where("Meta.Rating").ge(3.6), [1, 2, 3, 4]),
    Case("LtAuthor", where("Author").lt("Author2"), [0, 1, 2]),
    Case("LtTotalReads", where("Meta.TotalReads").lt(30.0), [0, 1]),
    Case("LtRating", where("Meta.Rating").lt(3.6), [0]),
    Case("LeAuthor", where("Author").le("Author2"), [0, 1, 2, 3]),
    Case("LeTotalReads", where("Meta.TotalReads").le(30.0), [0, 1, 2]),
    Case("LeRating", where("Meta.Rating").le(3.6), [0, 1]),
    Case("SortAscString", where("Meta.TotalReads").gt(20.0).order_by("Author"), [2, 3, 4]),
    Case("SortDescString", where("Meta.TotalReads").gt(20.0).order_by_desc("Author"), [4, 3, 2]),
    Case(
        "SortAscInt",
        where("Meta.TotalReads").gt(10.0).order_by("Meta.TotalReads"),
        [1, 2, 3, 4],
    ),
    Case(
        "SortDescInt",
        where("Meta.TotalReads").gt(10.0).order_by_desc("Meta.TotalReads"),
        [4, 3, 2, 1],
    ),
    Case("SortAscFloat", where("Meta.TotalReads").gt(10.0).order_by("Meta.Rating"), [1, 2, 3, 4]),
    Case(
        "SortDescFloat",
        where("Meta.TotalReads").gt(10.0).order_by_desc("Meta.Rating"),
        [4, 3, 2, 1],
    ),
    Case("SortAllAscString", Query().order_by("Title"), [0, 1, 2, 3, 4]),
    Case("SortAllDescString", Query().order_by_desc("Title"), [4, 3, 2, 1, 0]),
    Case("SortAllAscInt", Query().order_by("Meta.TotalReads"), [0, 1, 2, 3, 4]),
    Case("SortAllDescInt", Query().order_by_desc("Meta.TotalReads"), [4, 3, 2, 1, 0]),
    Case("SortAllAscFloat", Query().order_by("Meta.Rating"), [0, 1, 2, 3, 4]),
    Case("SortAllDescFloat", Query().order_by_desc("Meta.Rating"), [4, 3, 2, 1, 0]),
    Case("LimitTotalReadsOutside", where("Meta.TotalReads").gt(100.0).limit(2), [3, 4]),
    Case("LimitTotalReadsInside", where("Meta.TotalReads").lt(100.0).limit(2), [0, 1]),
    Case("LimitWithSkip", where("Meta.TotalReads").gt(0.0).skip(1).limit(3), [1, 2, 3]),
    # TestInvalidSortField (see the docstring for why this is an error here)
    Case("InvalidSortField", Query().order_by("WrongFieldName"), InvalidQuery),
]


# --- the source fixture --------------------------------------------------------------


def schema_paths(schema: Mapping[str, Any]) -> set[str] | None:
    """The dot paths a closed JSON Schema admits; None when it admits any path."""
    paths: set[str] = set()

    def walk(node: Mapping[str, Any], prefix: str) -> bool:
        for name, sub in node.get("properties", {}).items():
            path = f"{prefix}{name}"
            paths.add(path)
            if sub.get("type") == "object" and not walk(sub, f"{path}."):
                return False
        return node.get("additionalProperties") is False

    return paths if walk(schema, "") else None


@pytest.fixture(params=["threaddb-indexes", "no-indexes", "every-field-indexed"])
def make_source(request: pytest.FixtureRequest) -> SourceFactory:
    """Build a source over ``docs`` with ``indexed_paths`` and ``schema``.

    The parameter varies the indexes (ThreadDB's, none, every field): results must not
    change. Replace this fixture to run the tables against the real collection.
    """

    def factory(
        docs: list[dict[str, Any]], indexed_paths: Sequence[str], schema: Mapping[str, Any]
    ) -> Source:
        known = schema_paths(schema)
        if request.param == "no-indexes":
            indexed_paths = ()
        elif request.param == "every-field-indexed":
            indexed_paths = sorted(p for p in known or () if p != "_id")
        return InMemorySource(docs, indexed_paths, known_paths=known)

    return factory


# --- the query encodings -------------------------------------------------------------


def _go_value(value: Mapping[str, Any]) -> dict[str, Any]:
    """Go's encoding/json writes every pointer field of a Value, nil ones as null."""
    out = {"String": None, "Bool": None, "Float": None}
    for key, item in value.items():
        out[key[:1].upper() + key[1:]] = item
    return out


def to_go_json(query: Mapping[str, Any]) -> dict[str, Any]:
    """A query dict re-keyed the way go-threads marshals its Query struct."""
    return {
        "Ands": [
            {
                "FieldPath": c["fieldPath"],
                "Operation": c["operation"],
                "Value": _go_value(c["value"]),
            }
            for c in query["ands"]
        ]
        or None,
        "Ors": [to_go_json(branch) for branch in query["ors"]] or None,
        "Sort": {"FieldPath": query["sort"]["fieldPath"], "Desc": query["sort"]["desc"]},
        "Seek": query["seek"],
        "Limit": query["limit"],
        "Skip": query["skip"],
        "Index": query["index"],
    }


ENCODINGS: dict[str, Callable[[Query | None], Query | None]] = {
    "built": lambda q: q,
    "js-json": lambda q: None if q is None else Query.from_json(q.to_json()),
    "go-json": lambda q: None if q is None else Query.from_json(to_go_json(q.to_dict())),
}


# --- the tests -----------------------------------------------------------------------


def _check(
    case: Case,
    docs: list[dict[str, Any]],
    source: Source,
    encoding: str,
) -> None:
    query = ENCODINGS[encoding](case.query)
    assert query == case.query
    if not isinstance(case.expected, list):
        with pytest.raises(case.expected):
            execute(query, source)
        return
    found = execute(query, source)
    by_id = {doc["_id"]: i for i, doc in enumerate(docs)}
    assert [by_id[doc["_id"]] for doc in found] == case.expected
    for doc in found:  # the stored book comes back (extra bookkeeping fields allowed)
        original = docs[by_id[doc["_id"]]]
        assert {key: doc[key] for key in original} == original


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("case", TEST_QUERY, ids=lambda c: c.name)
def test_query(case: Case, encoding: str, make_source: SourceFactory) -> None:
    """db/query_test.go TestQuery (and query_jsonmode_test.go, via the JSON encodings)."""
    _check(case, BOOKS, make_source(BOOKS, BOOKS_INDEXES, BOOKS_SCHEMA), encoding)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("case", TEST_COLLECTION_QUERY, ids=lambda c: c.name)
def test_collection_query(case: Case, encoding: str, make_source: SourceFactory) -> None:
    """db/query_more_test.go TestCollectionQuery and TestInvalidSortField."""
    _check(case, SAMPLE, make_source(SAMPLE, (), SAMPLE_SCHEMA), encoding)


def test_threaddb_indexes_are_used() -> None:
    """With ThreadDB's indexes, its index cases really go through an index."""
    source = InMemorySource(BOOKS, BOOKS_INDEXES, known_paths=schema_paths(BOOKS_SCHEMA))
    cases = {case.name: case.query for case in TEST_QUERY}
    for name in ("EqTitle1OrTitle3UseIndex", "GeByTotalReadsMinUseIndex", "EqByTitle1"):
        assert not explain(cases[name], source).full_scan, name
    plan = explain(cases["InvalidIndex"], source)
    assert not plan.full_scan
    assert any("use_index('Not.Valid.Path') ignored" in note for note in plan.notes)


def test_schema_paths() -> None:
    assert schema_paths(SAMPLE_SCHEMA) == {
        "_id",
        "Title",
        "Author",
        "Meta",
        "Meta.TotalReads",
        "Meta.Rating",
    }
    assert schema_paths({"type": "object", "properties": {"a": {}}}) is None
