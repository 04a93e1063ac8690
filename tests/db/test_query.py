"""Queries: the builder, ThreadDB's JSON (Go and JS styles), every bad input, matching
semantics, ordering and paging, the planner's choices and the in-memory source."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threadkit.db.planner import IndexLookup, InMemorySource, Plan, execute, explain
from threadkit.db.query import Criterion, CriterionBuilder, Op, Query, Sort, matches, resolve, where
from threadkit.errors import InvalidDocument, InvalidIndex, InvalidQuery

# --- builder -------------------------------------------------------------------------


def test_where_chain_builds_threaddb_shape() -> None:
    q = where("age").gt(30).and_("name").eq("Alice").order_by("age").limit(10)
    assert q.ands == (Criterion("age", Op.GT, 30), Criterion("name", Op.EQ, "Alice"))
    assert q.ors == ()
    assert q.sort == Sort("age")
    assert q.limit_count == 10
    assert (q.skip_count, q.seek_id, q.index_hint) == (0, "", "")


def test_or_takes_a_query() -> None:
    q = where("a").eq(1).or_(where("b").in_([2, 3]))
    assert q.ands == (Criterion("a", Op.EQ, 1),)
    assert q.ors == (Query(ands=(Criterion("b", Op.IN, (2, 3)),)),)


def test_empty_query_is_everything() -> None:
    assert Query() == Query(ands=(), ors=(), sort=None)
    assert matches(Query(), {"_id": "x"})


def test_builder_is_immutable() -> None:
    base = where("a").eq(1)
    more = base.and_("b").eq(2)
    sorted_ = base.order_by_desc("a").skip(2).limit(3).use_index("a")
    assert len(base.ands) == 1 and len(more.ands) == 2
    assert base.sort is None and sorted_.sort == Sort("a", desc=True)
    assert (sorted_.skip_count, sorted_.limit_count, sorted_.index_hint) == (2, 3, "a")
    field = where("x")
    assert field.eq(1) != field.eq(2)  # one builder, two independent queries
    assert isinstance(field, CriterionBuilder) and field.path == "x"


def test_all_builder_operations() -> None:
    ops: dict[str, tuple[Op, Any]] = {
        "eq": (Op.EQ, "v"),
        "ne": (Op.NE, 1),
        "gt": (Op.GT, 1.5),
        "lt": (Op.LT, "m"),
        "ge": (Op.GE, -3),
        "le": (Op.LE, 10**30),
        "contains": (Op.CONTAINS, "sub"),
    }
    for method, (op, value) in ops.items():
        q = getattr(where("f"), method)(value)
        assert q.ands == (Criterion("f", op, value),)
    assert where("f").in_(("a", "b")).ands[0].value == ("a", "b")
    assert where("f").exists().ands[0] == Criterion("f", Op.EXISTS, True)
    assert where("f").exists(False).ands[0] == Criterion("f", Op.EXISTS, False)


def test_last_order_call_wins_and_seek_fits_id_order() -> None:
    q = where("a").eq(1).order_by("a").order_by_desc("b")
    assert q.sort == Sort("b", True)
    assert Query().seek("01h").seek_id == "01h"
    assert Query().order_by("_id").seek("x").seek_id == "x"
    assert Query().seek("x").order_by_desc("_id").sort == Sort("_id", True)


def test_op_codes_are_threaddbs() -> None:
    assert [(o.name, o.value) for o in Op] == [
        ("EQ", 0),
        ("NE", 1),
        ("GT", 2),
        ("LT", 3),
        ("GE", 4),
        ("LE", 5),
        ("IN", 6),
        ("CONTAINS", 7),
        ("EXISTS", 8),
    ]


def test_values_compare_as_json() -> None:
    assert where("a").eq(3) == where("a").eq(3.0)
    assert where("a").eq(True) != where("a").eq(1)
    assert where("a").in_([1, 2]) == where("a").in_([1.0, 2.0])
    assert where("a").in_([True]) != where("a").in_([1])
    assert hash(where("a").eq(3)) == hash(where("a").eq(3.0))
    assert Criterion("a", 0, 1).op is Op.EQ  # type: ignore[arg-type]


def test_numpy_style_scalars_are_unwrapped() -> None:
    class FakeNumpyInt:
        def item(self) -> int:
            return 7

    class FakeNumpyBool:
        def item(self) -> bool:
            return True

    q = where("a").gt(FakeNumpyInt()).and_("b").eq(FakeNumpyBool())  # type: ignore[arg-type]
    assert q.ands[0].value == 7 and type(q.ands[0].value) is int
    assert q.ands[1].value is True


def test_repr_is_builder_code() -> None:
    q = (
        where("a")
        .eq(1)
        .and_("b")
        .in_(["x"])
        .or_(where("c").exists(False))
        .order_by_desc("a")
        .skip(1)
        .limit(2)
        .use_index("a")
    )
    assert repr(q) == (
        "where('a').eq(1).and_('b').in_(['x']).or_(where('c').exists(False))"
        ".order_by_desc('a').skip(1).limit(2).use_index('a')"
    )
    assert repr(Query().or_(where("x").exists()).seek("s")) == (
        "Query().or_(where('x').exists()).seek('s')"
    )
    assert repr(where("a")) == "where('a')"
    assert repr(where("a").eq(1).and_("b")) == "where('a').eq(1).and_('b')"


# --- bad builder input ---------------------------------------------------------------

BAD_BUILDER: dict[str, tuple[Callable[[], object], str]] = {
    "empty path": (lambda: where(""), "empty"),
    "non-string path": (lambda: where(5), "must be a string"),  # type: ignore[arg-type]
    "double dot": (lambda: where("a..b"), "empty segment"),
    "leading dot": (lambda: where(".a"), "empty segment"),
    "trailing dot": (lambda: where("a."), "empty segment"),
    "empty and_ path": (lambda: where("a").eq(1).and_(""), "empty"),
    "null value": (lambda: where("a").eq(None), "null"),  # type: ignore[arg-type]
    "list value": (lambda: where("a").eq([1]), "array"),  # type: ignore[arg-type]
    "object value": (lambda: where("a").ne({"b": 1}), "object"),  # type: ignore[arg-type]
    "bytes value": (lambda: where("a").eq(b"x"), "bytes"),  # type: ignore[arg-type]
    "nan": (lambda: where("a").eq(float("nan")), "NaN"),
    "inf": (lambda: where("a").lt(float("inf")), "infinity"),
    "gt bool": (lambda: where("a").gt(True), "booleans have no order"),
    "lt bool": (lambda: where("a").lt(False), "booleans have no order"),
    "ge bool": (lambda: where("a").ge(True), "booleans have no order"),
    "le bool": (lambda: where("a").le(True), "booleans have no order"),
    "in empty": (lambda: where("a").in_([]), "at least one"),
    "in string": (lambda: where("a").in_("abc"), "list of values"),
    "in set": (lambda: where("a").in_({1, 2}), "list of values"),  # type: ignore[arg-type]
    "in mixed types": (lambda: where("a").in_([1, "a"]), "one JSON type"),
    "in bool and number": (lambda: where("a").in_([1, True]), "one JSON type"),
    "in null": (lambda: where("a").in_([None]), "null"),  # type: ignore[list-item]
    "in nested list": (lambda: where("a").in_([[1]]), "array"),  # type: ignore[list-item]
    "contains null": (lambda: where("a").contains(None), "null"),  # type: ignore[arg-type]
    "contains list": (lambda: where("a").contains([1]), "array"),  # type: ignore[arg-type]
    "exists non-bool": (lambda: where("a").exists("yes"), "boolean flag"),  # type: ignore[arg-type]
    "exists int": (lambda: where("a").exists(1), "boolean flag"),  # type: ignore[arg-type]
    "criterion twice": (lambda: where("a").eq(1).eq(2), "needs a field first"),
    "gt twice": (lambda: where("a").gt(1).gt(2), "needs a field first"),
    "in_ on query": (lambda: Query().in_([1]), "needs a field first"),
    "exists on query": (lambda: Query().exists(), "needs a field first"),
    "negative skip": (lambda: Query().skip(-1), "non-negative"),
    "negative limit": (lambda: Query().limit(-1), "non-negative"),
    "bool limit": (lambda: Query().limit(True), "non-negative integer"),
    "float skip": (lambda: Query().skip(1.5), "non-negative integer"),  # type: ignore[arg-type]
    "empty seek": (lambda: Query().seek(""), "non-empty instance id"),
    "non-string seek": (lambda: Query().seek(5), "non-empty instance id"),  # type: ignore[arg-type]
    "seek then sort": (lambda: Query().seek("x").order_by("age"), "only in _id order"),
    "sort then seek": (lambda: Query().order_by_desc("age").seek("x"), "only in _id order"),
    "empty order_by": (lambda: Query().order_by(""), "empty"),
    "empty order_by_desc": (lambda: Query().order_by_desc(""), "empty"),
    "empty use_index": (lambda: Query().use_index(""), "empty"),
    "or_ builder": (lambda: where("a").eq(1).or_(where("b")), "no operation yet"),  # type: ignore[arg-type]
    "or_ string": (lambda: Query().or_("b = 1"), "takes a Query"),  # type: ignore[arg-type]
    "or_ with limit": (lambda: Query().or_(where("b").eq(1).limit(1)), "cannot sort"),
    "or_ with sort": (lambda: Query().or_(where("b").eq(1).order_by("b")), "cannot sort"),
    "or_ with skip": (lambda: Query().or_(where("b").eq(1).skip(1)), "cannot sort"),
    "or_ with seek": (lambda: Query().or_(where("b").eq(1).seek("x")), "cannot sort"),
    "unknown op code": (lambda: Criterion("a", 9, 1), "unknown operation"),  # type: ignore[arg-type]
    "bool op code": (lambda: Criterion("a", True, 1), "operation must be"),  # type: ignore[arg-type]
    "ands of non-criteria": (lambda: Query(ands=("a",)), "Criterion"),  # type: ignore[arg-type]
    "sort not Sort": (lambda: Query(sort="a"), "Sort"),  # type: ignore[arg-type]
    "sort desc not bool": (lambda: Sort("a", 1), "boolean"),  # type: ignore[arg-type]
    "hint not string": (lambda: Query(index_hint=3), "string"),  # type: ignore[arg-type]
    "seek_id not string": (lambda: Query(seek_id=3), "string"),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("case", sorted(BAD_BUILDER))
def test_bad_builder_input(case: str) -> None:
    build, message = BAD_BUILDER[case]
    with pytest.raises(InvalidQuery, match=message):
        build()


def test_bad_value_message_names_call() -> None:
    with pytest.raises(InvalidQuery, match=r"where\('age'\)\.gt\(True\)"):
        where("age").gt(True)


# --- JSON ----------------------------------------------------------------------------

GO_JSON = """{
  "Ands": [
    {"FieldPath": "Meta.TotalReads", "Operation": 2,
     "Value": {"String": null, "Bool": null, "Float": 124.36}},
    {"FieldPath": "Title", "Operation": 1,
     "Value": {"String": "Title1", "Bool": null, "Float": null}}
  ],
  "Ors": null,
  "Sort": {"FieldPath": "Meta.Rating", "Desc": true},
  "Seek": "", "Limit": 5, "Skip": 1, "Index": "Meta.TotalReads"
}"""

JS_JSON = {
    "ands": [{"fieldPath": "Banned", "operation": 0, "value": {"bool": True}}],
    "ors": [{"ands": [{"fieldPath": "Title", "operation": 5, "value": {"string": "T"}}]}],
    "sort": {"fieldPath": "", "desc": False},
}


def test_from_go_style_json() -> None:
    q = Query.from_json(GO_JSON)
    assert q == (
        where("Meta.TotalReads")
        .gt(124.36)
        .and_("Title")
        .ne("Title1")
        .order_by_desc("Meta.Rating")
        .skip(1)
        .limit(5)
        .use_index("Meta.TotalReads")
    )


def test_from_js_style_json() -> None:
    q = Query.from_json(JS_JSON)
    assert q == where("Banned").eq(True).or_(where("Title").le("T"))
    assert Query.from_json(json.dumps(JS_JSON).encode()) == q


def test_to_json_is_threaddb_shape() -> None:
    q = where("age").gt(30).order_by("age")
    assert json.loads(q.to_json()) == {
        "ands": [{"fieldPath": "age", "operation": 2, "value": {"float": 30}}],
        "ors": [],
        "sort": {"fieldPath": "age", "desc": False},
        "seek": "",
        "limit": 0,
        "skip": 0,
        "index": "",
    }
    assert q.to_dict() == json.loads(q.to_json())


def test_extension_values_in_json() -> None:
    q = where("a").in_([1, 2.5]).and_("b").exists(False).and_("c").contains("x")
    ands = q.to_dict()["ands"]
    assert ands[0] == {"fieldPath": "a", "operation": 6, "value": {"list": [1, 2.5]}}
    assert ands[1] == {"fieldPath": "b", "operation": 8, "value": {"bool": False}}
    assert ands[2] == {"fieldPath": "c", "operation": 7, "value": {"string": "x"}}
    assert Query.from_json(q.to_json()) == q


def test_json_numbers_compare_as_numbers() -> None:
    from_int = Query.from_json('{"ands":[{"fieldPath":"n","operation":0,"value":{"float":3}}]}')
    assert from_int == where("n").eq(3.0)
    assert matches(from_int, {"_id": "x", "n": 3.0}) and matches(from_int, {"_id": "y", "n": 3})


def test_empty_and_null_json_is_everything() -> None:
    assert Query.from_json("{}") == Query()
    assert Query.from_json('{"ands": null, "ors": [], "sort": null, "seek": null}') == Query()
    assert Query.from_json({"sort": {"fieldPath": "", "desc": True}}) == Query()


scalars = st.one_of(
    st.text(max_size=5),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)
paths = st.sampled_from(["a", "b.c", "_id", "Meta.TotalReads", "x.y.z"])


@st.composite
def criteria(draw: st.DrawFn) -> Criterion:
    op = draw(st.sampled_from(list(Op)))
    path = draw(paths)
    if op is Op.EXISTS:
        return Criterion(path, op, draw(st.booleans()))
    if op is Op.IN:
        kinds: list[st.SearchStrategy[Any]] = [st.text(max_size=3), st.integers(), st.booleans()]
        kind = draw(st.sampled_from(kinds))
        return Criterion(path, op, tuple(draw(st.lists(kind, min_size=1, max_size=3))))
    value = draw(scalars)
    if op in (Op.GT, Op.LT, Op.GE, Op.LE) and isinstance(value, bool):
        value = draw(st.integers())
    return Criterion(path, op, value)


def queries(depth: int = 2) -> st.SearchStrategy[Query]:
    branches = st.just(()) if depth == 0 else st.lists(queries(depth - 1), max_size=2)
    return st.builds(
        lambda ands, ors, hint: Query(tuple(ands), tuple(ors), index_hint=hint),
        st.lists(criteria(), max_size=3),
        branches,
        st.sampled_from(["", "a", "b.c"]),
    )


@st.composite
def top_queries(draw: st.DrawFn) -> Query:
    q = draw(queries())
    sort = draw(st.one_of(st.none(), st.builds(Sort, paths, st.booleans())))
    seek = ""
    if sort is None or sort.path == "_id":
        seek = draw(st.text(max_size=4))
    return Query(
        q.ands,
        q.ors,
        sort,
        seek,
        draw(st.integers(0, 10**6)),
        draw(st.integers(0, 10**6)),
        q.index_hint,
    )


@settings(max_examples=300)
@given(top_queries())
def test_json_round_trip(q: Query) -> None:
    assert Query.from_json(q.to_json()) == q
    assert Query.from_json(q.to_dict()) == q
    assert eval(repr(q), {"where": where, "Query": Query}) == q


def _crit(**value: Any) -> dict[str, Any]:
    return {"ands": [{"fieldPath": "a", "operation": 0, "value": value}]}


BAD_JSON: dict[str, tuple[Any, str]] = {
    "not json": ("{ands: [}", "does not parse"),
    "not utf-8": (b"\xff\xfe{", "does not parse"),
    "top-level array": ("[]", "query must be a JSON object"),
    "unknown member": ({"ands": [], "and": []}, "unknown member 'and'"),
    "duplicate by case": ({"ands": [], "Ands": []}, "both 'ands' and 'Ands'"),
    "ands not array": ({"ands": {}}, r"query\.ands must be a JSON array"),
    "ors not array": ({"ors": "x"}, r"query\.ors must be a JSON array"),
    "criterion not object": ({"ands": [1]}, r"query\.ands\[0\] must be a JSON object"),
    "criterion unknown member": (
        {"ands": [{"fieldPath": "a", "operation": 0, "value": {"float": 1}, "query": {}}]},
        r"query\.ands\[0\] has an unknown member 'query'",
    ),
    "no fieldPath": ({"ands": [{"operation": 0, "value": {"float": 1}}]}, "no 'fieldPath'"),
    "no operation": ({"ands": [{"fieldPath": "a", "value": {"float": 1}}]}, "no 'operation'"),
    "no value": ({"ands": [{"fieldPath": "a", "operation": 0}]}, "no 'value'"),
    "null value": ({"ands": [{"fieldPath": "a", "operation": 0, "value": None}]}, "no 'value'"),
    "fieldPath not string": (
        {"ands": [{"fieldPath": 1, "operation": 0, "value": {"float": 1}}]},
        r"fieldPath must be a string",
    ),
    "empty fieldPath": (
        {"ands": [{"fieldPath": "", "operation": 0, "value": {"float": 1}}]},
        r"query\.ands\[0\]: .*empty",
    ),
    "operation out of range": (
        {"ands": [{"fieldPath": "a", "operation": 9, "value": {"float": 1}}]},
        r"operation must be one of",
    ),
    "operation is a string": (
        {"ands": [{"fieldPath": "a", "operation": "0", "value": {"float": 1}}]},
        r"operation must be one of",
    ),
    "operation is a bool": (
        {"ands": [{"fieldPath": "a", "operation": False, "value": {"float": 1}}]},
        r"operation must be one of",
    ),
    "value not object": (
        {"ands": [{"fieldPath": "a", "operation": 0, "value": 1}]},
        r"value must be a JSON object",
    ),
    "two value members": (_crit(string="x", float=1), "exactly one"),
    "no value members": (_crit(), "exactly one"),
    "all-null value": (_crit(string=None, bool=None, float=None), "exactly one"),
    "unknown value member": (_crit(int=1), "unknown member 'int'"),
    "float is a string": (_crit(float="1"), r"value\.float must be a number"),
    "float is a bool": (_crit(float=True), r"value\.float must be a number"),
    "string is a number": (_crit(string=1), r"value\.string must be a string"),
    "bool is a number": (_crit(bool=1), r"value\.bool must be a boolean"),
    "nan float": (_crit(float=float("nan")), "NaN"),
    "list for eq": (_crit(list=[1]), "only for operation 6"),
    "list not array": (
        {"ands": [{"fieldPath": "a", "operation": 6, "value": {"list": 1}}]},
        r"value\.list must be an array",
    ),
    "in without list": (
        {"ands": [{"fieldPath": "a", "operation": 6, "value": {"float": 1}}]},
        r"operation 6 \(in\) takes",
    ),
    "in empty list": (
        {"ands": [{"fieldPath": "a", "operation": 6, "value": {"list": []}}]},
        "at least one",
    ),
    "in mixed list": (
        {"ands": [{"fieldPath": "a", "operation": 6, "value": {"list": [1, "x"]}}]},
        "one JSON type",
    ),
    "exists with string": (
        {"ands": [{"fieldPath": "a", "operation": 8, "value": {"string": "x"}}]},
        r"operation 8 \(exists\) takes",
    ),
    "gt bool": (
        {"ands": [{"fieldPath": "a", "operation": 2, "value": {"bool": True}}]},
        "booleans have no order",
    ),
    "sort not object": ({"sort": "a"}, r"query\.sort must be a JSON object"),
    "sort unknown member": ({"sort": {"path": "a"}}, "unknown member 'path'"),
    "sort fieldPath not string": ({"sort": {"fieldPath": 1}}, r"sort\.fieldPath must be"),
    "sort bad path": ({"sort": {"fieldPath": "a..b"}}, r"query\.sort: .*empty segment"),
    "sort desc not bool": ({"sort": {"fieldPath": "a", "desc": "yes"}}, r"sort\.desc must be"),
    "seek not string": ({"seek": 1}, r"query\.seek must be a string"),
    "index not string": ({"index": 1}, r"query\.index must be a string"),
    "bad index path": ({"index": "a."}, "empty segment"),
    "negative limit": ({"limit": -1}, r"query\.limit: .*non-negative"),
    "float limit": ({"limit": 1.5}, r"query\.limit: .*non-negative"),
    "bool skip": ({"skip": True}, r"query\.skip: .*non-negative"),
    "seek with sort": ({"seek": "x", "sort": {"fieldPath": "a"}}, "only in _id order"),
    "nested error path": (
        {"ors": [{"ands": [{"fieldPath": "a", "operation": 0, "value": {"float": "1"}}]}]},
        r"query\.ors\[0\]\.ands\[0\]\.value\.float must be a number",
    ),
    "or branch with limit": ({"ors": [{"limit": 3}]}, "cannot sort, seek, skip or limit"),
}


@pytest.mark.parametrize("case", sorted(BAD_JSON))
def test_bad_json(case: str) -> None:
    data, message = BAD_JSON[case]
    with pytest.raises(InvalidQuery, match=message):
        Query.from_json(data)


def test_from_json_keys_are_case_insensitive() -> None:
    data = {"ANDS": [{"FIELDPATH": "a", "OpErAtIoN": 0, "VALUE": {"FLOAT": 1}}]}
    assert Query.from_json(data) == where("a").eq(1)


# --- matching ------------------------------------------------------------------------

DOC = {
    "_id": "d1",
    "name": "Alice",
    "age": 31,
    "score": 2.5,
    "ok": True,
    "none": None,
    "meta": {"reads": 120, "tags": ["go", 3, {"x": 1}], "deep": {"v": "z"}},
    "text": "hello world",
    "empty": "",
}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (where("name").eq("Alice"), True),
        (where("name").ne("Bob"), True),
        (where("name").gt("Al"), True),
        (where("name").lt("Alice"), False),
        (where("name").le("Alice"), True),
        (where("age").eq(31.0), True),
        (where("age").ge(31), True),
        (where("age").gt(30.99), True),
        (where("score").lt(3), True),
        (where("ok").eq(True), True),
        (where("ok").ne(True), False),
        (where("ok").eq(False), False),
        (where("meta.reads").eq(120), True),
        (where("meta.deep.v").eq("z"), True),
        (where("empty").eq(""), True),
        (where("name").in_(["Bob", "Alice"]), True),
        (where("age").in_([1, 31.0]), True),
        (where("age").in_([1, 2]), False),
        (where("ok").in_([False]), False),
        # missing, null and paths through non-objects never match, without error
        (where("missing").eq(1), False),
        (where("missing").ne(1), False),
        (where("none").eq("x"), False),
        (where("none").ne("x"), False),
        (where("none").gt(1), False),
        (where("name.first").eq("A"), False),
        (where("meta.tags.0").eq("go"), False),
        (where("meta.missing.deeper").eq(1), False),
        # contains
        (where("meta.tags").contains("go"), True),
        (where("meta.tags").contains(3.0), True),
        (where("meta.tags").contains("x"), False),
        (where("meta.tags").contains(True), False),
        (where("text").contains("lo wo"), True),
        (where("text").contains("xyz"), False),
        (where("missing").contains("x"), False),
        (where("none").contains("x"), False),
        # exists: null is present
        (where("name").exists(), True),
        (where("none").exists(), True),
        (where("missing").exists(), False),
        (where("missing").exists(False), True),
        (where("none").exists(False), False),
        (where("name.x").exists(False), True),
        (where("meta.deep").exists(), True),
        # and / or structure
        (where("name").eq("Alice").and_("age").gt(40), False),
        (where("name").eq("Bob").or_(where("age").eq(31)), True),
        (Query().or_(where("age").eq(1)), False),  # ThreadDB matched everything here
        (Query().or_(where("age").eq(1)).or_(where("ok").eq(True)), True),
        (where("age").eq(1).or_(Query()), True),
    ],
    ids=repr,
)
def test_matches(query: Query, expected: bool) -> None:
    assert matches(query, DOC) is expected
    assert query.matches(DOC) is expected


@pytest.mark.parametrize(
    ("query", "found", "wanted"),
    [
        (where("name").eq(1), "string", "number"),
        (where("name").ne(True), "string", "boolean"),
        (where("age").gt("30"), "number", "string"),
        (where("ok").eq(1), "boolean", "number"),
        (where("meta").eq("x"), "object", "string"),
        (where("meta.tags").eq("go"), "array", "string"),
        (where("age").in_(["31"]), "number", "string"),
        (where("name").eq("Alice").and_("age").lt("x"), "number", "string"),
    ],
    ids=repr,
)
def test_type_mismatch_raises_with_path_id_and_types(query: Query, found: str, wanted: str) -> None:
    path = query.ands[-1].path
    with pytest.raises(InvalidQuery) as info:
        matches(query, DOC)
    message = str(info.value)
    assert repr(path) in message and "'d1'" in message
    assert f"holds a {found}" in message and f"a {wanted}" in message


@pytest.mark.parametrize(
    "query",
    [
        where("age").contains(3),
        where("ok").contains(True),
        where("meta").contains("x"),
        where("text").contains(1),
    ],
    ids=repr,
)
def test_contains_on_wrong_field_type_raises(query: Query) -> None:
    with pytest.raises(InvalidQuery, match="'d1'"):
        matches(query, DOC)


def test_mismatch_only_raises_when_it_decides() -> None:
    # a false criterion decides the AND: the mismatch cannot change the outcome
    assert not matches(where("name").eq("Bob").and_("age").eq("x"), DOC)
    assert not matches(where("age").eq("x").and_("name").eq("Bob"), DOC)
    # a true branch decides the OR
    assert matches(where("age").eq("x").or_(where("name").eq("Alice")), DOC)
    assert matches(Query().or_(where("age").eq("x")).or_(where("ok").eq(True)), DOC)
    # otherwise the unknown outcome is an error
    with pytest.raises(InvalidQuery, match="'age'"):
        matches(where("age").eq("x").or_(where("name").eq("Bob")), DOC)
    with pytest.raises(InvalidQuery, match="'age'"):
        matches(where("name").eq("Alice").and_("age").eq("x"), DOC)


def test_first_mismatch_is_reported() -> None:
    q = where("name").eq(1).and_("age").eq("x")
    with pytest.raises(InvalidQuery, match="'name'"):
        matches(q, DOC)


def test_resolve() -> None:
    assert resolve(DOC, "meta.deep.v") == (True, "z")
    assert resolve(DOC, "none") == (True, None)
    assert resolve(DOC, "name.x") == (False, None)
    assert resolve(DOC, "nope") == (False, None)


# --- execution: ordering, seek, skip, limit, read filter ------------------------------

PEOPLE: list[dict[str, Any]] = [
    {"_id": "p1", "name": "Cid", "age": 40, "city": "Oslo"},
    {"_id": "p2", "name": "Ann", "age": 25.5, "city": "Lima"},
    {"_id": "p3", "name": "Bea", "age": 40},
    {"_id": "p4", "name": "Dan", "age": None, "city": "Oslo"},
    {"_id": "p5", "name": "Eve", "age": 19, "city": "Rome"},
]


def _ids(docs: list[dict[str, Any]]) -> list[str]:
    return [d["_id"] for d in docs]


@pytest.fixture(params=[(), ("name", "age", "city")], ids=["scan", "indexed"])
def people(request: pytest.FixtureRequest) -> InMemorySource:
    return InMemorySource(PEOPLE, request.param)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (Query(), ["p1", "p2", "p3", "p4", "p5"]),
        (Query().order_by_desc("_id"), ["p5", "p4", "p3", "p2", "p1"]),
        # missing and null sort first ascending, last descending; ties by _id ascending
        (Query().order_by("age"), ["p4", "p5", "p2", "p1", "p3"]),
        (Query().order_by_desc("age"), ["p1", "p3", "p2", "p5", "p4"]),
        (Query().order_by("city"), ["p3", "p2", "p1", "p4", "p5"]),
        (Query().order_by_desc("city"), ["p5", "p1", "p4", "p2", "p3"]),
        (where("age").ge(20).order_by("name"), ["p2", "p3", "p1"]),
        # sort happens before skip and limit
        (Query().order_by("name").limit(2), ["p2", "p3"]),
        (Query().order_by_desc("name").skip(1).limit(2), ["p4", "p1"]),
        (Query().order_by("age").skip(4), ["p3"]),
        (Query().skip(9), []),
        (Query().limit(0), ["p1", "p2", "p3", "p4", "p5"]),
        # seek in _id order
        (Query().seek("p3"), ["p3", "p4", "p5"]),
        (Query().seek("p30"), ["p4", "p5"]),
        (Query().order_by_desc("_id").seek("p3"), ["p3", "p2", "p1"]),
        (Query().order_by("_id").seek("p2").skip(1).limit(2), ["p3", "p4"]),
        (where("city").eq("Oslo").seek("p2"), ["p4"]),
    ],
    ids=repr,
)
def test_order_and_paging(people: InMemorySource, query: Query, expected: list[str]) -> None:
    assert _ids(execute(query, people)) == expected


def test_none_query_is_everything(people: InMemorySource) -> None:
    assert _ids(execute(None, people)) == ["p1", "p2", "p3", "p4", "p5"]


def test_sort_by_bool_and_nested() -> None:
    docs = [
        {"_id": "a", "ok": True, "m": {"v": 2}},
        {"_id": "b", "ok": False, "m": {"v": 1}},
        {"_id": "c", "ok": True, "m": 7},
    ]
    src = InMemorySource(docs)
    assert _ids(execute(Query().order_by("ok"), src)) == ["b", "a", "c"]
    assert _ids(execute(Query().order_by("m.v"), src)) == ["c", "b", "a"]


@pytest.mark.parametrize(
    ("docs", "message"),
    [
        ([{"_id": "a", "v": 1}, {"_id": "b", "v": "1"}], "mixed types"),
        ([{"_id": "a", "v": True}, {"_id": "b", "v": 0}], "mixed types"),
        ([{"_id": "a", "v": {"x": 1}}], "holds a object"),
        ([{"_id": "a", "v": [1]}], "holds a array"),
    ],
)
def test_unsortable_values_raise(docs: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(InvalidQuery, match=message):
        execute(Query().order_by("v"), InMemorySource(docs))


def test_sort_type_check_only_sees_matches() -> None:
    docs = [{"_id": "a", "v": 1, "k": 1}, {"_id": "b", "v": "1", "k": 2}]
    assert _ids(execute(where("k").eq(1).order_by("v"), InMemorySource(docs))) == ["a"]


def test_sort_path_unknown_to_schema_raises() -> None:
    src = InMemorySource(PEOPLE, known_paths={"name", "age", "city"})
    with pytest.raises(InvalidQuery, match="schema has no such field"):
        execute(Query().order_by("WrongFieldName"), src)
    assert len(execute(Query().order_by("_id"), src)) == 5


def test_read_filter_hides_and_rewrites_before_ordering(people: InMemorySource) -> None:
    def only_adults_renamed(doc: dict[str, Any]) -> dict[str, Any] | None:
        if doc["_id"] == "p2":
            return None
        return {**doc, "name": doc["name"][::-1]}

    result = execute(Query().order_by("name").limit(3), people, read_filter=only_adults_renamed)
    assert [d["name"] for d in result] == ["aeB", "diC", "evE"]  # not Bea, Cid, Dan order


def test_read_filter_does_not_mask_type_errors() -> None:
    src = InMemorySource([{"_id": "a", "v": "x"}, {"_id": "b", "v": 1}])
    with pytest.raises(InvalidQuery, match="'a'"):
        execute(where("v").gt(0), src, read_filter=lambda d: None if d["_id"] == "a" else d)


def test_read_filter_must_return_object_or_none() -> None:
    src = InMemorySource([{"_id": "a"}])
    with pytest.raises(InvalidDocument, match="read filter"):
        execute(Query(), src, read_filter=lambda d: "x")  # type: ignore[arg-type,return-value]


def test_execute_refuses_non_queries(people: InMemorySource) -> None:
    with pytest.raises(InvalidQuery, match="expected a Query"):
        execute(where("a"), people)  # type: ignore[arg-type]


def test_results_are_copies(people: InMemorySource) -> None:
    first = execute(where("name").eq("Ann"), people)
    first[0]["name"] = "changed"
    assert execute(where("name").eq("Ann"), people)[0]["name"] == "Ann"


# --- planning ------------------------------------------------------------------------


def test_explain_prefers_eq_and_hint() -> None:
    src = InMemorySource(PEOPLE, ["name", "age", "city"])
    assert explain(where("age").gt(20).and_("city").eq("Oslo"), src).lookups == (
        IndexLookup("city", Op.EQ, "Oslo"),
    )
    assert explain(where("age").gt(20).and_("city").eq("Oslo").use_index("age"), src).lookups == (
        IndexLookup("age", Op.GT, 20),
    )
    plan = explain(where("age").gt(20).and_("name").in_(["Ann"]), src)
    assert plan.lookups == (IndexLookup("name", Op.IN, ("Ann",)),)
    assert str(plan) == "index lookup: name in ['Ann']"


def test_explain_unions_or_branches() -> None:
    src = InMemorySource(PEOPLE, ["name", "city"])
    plan = explain(Query().or_(where("name").eq("Ann")).or_(where("city").eq("Rome")), src)
    assert plan.lookups == (IndexLookup("name", Op.EQ, "Ann"), IndexLookup("city", Op.EQ, "Rome"))
    assert str(plan).startswith("union of index lookups: name eq 'Ann'; city eq 'Rome'")
    assert _ids(
        execute(Query().or_(where("name").eq("Ann")).or_(where("city").eq("Rome")), src)
    ) == [
        "p2",
        "p5",
    ]
    # one branch without a usable index means a scan
    assert explain(where("name").eq("Ann").or_(where("age").eq(19)), src).full_scan


@pytest.mark.parametrize(
    ("query", "note"),
    [
        (Query(), "no criteria"),
        (where("name").ne("Ann"), "no and-criterion can use an index"),
        (where("name").exists(), "no and-criterion can use an index"),
        (where("name").contains("A"), "no and-criterion can use an index"),
        (where("age").eq(1).use_index("name"), "use_index('name') ignored: no eq"),
        (where("name").eq("Ann").use_index("nope"), "use_index('nope') ignored: no index"),
    ],
    ids=repr,
)
def test_explain_notes(query: Query, note: str) -> None:
    src = InMemorySource(PEOPLE, ["name"])
    assert any(note in n for n in explain(query, src).notes), explain(query, src)


def test_index_with_foreign_types_is_not_used() -> None:
    docs: list[dict[str, Any]] = [
        {"_id": "a", "v": 1},
        {"_id": "b", "v": "x"},
        {"_id": "c", "v": None},
    ]
    src = InMemorySource(docs, ["v"])
    plan = explain(where("v").eq(1), src)
    assert plan.full_scan
    assert "also holds string values" in str(plan)
    with pytest.raises(InvalidQuery, match="'b'"):
        execute(where("v").eq(1), src)
    # null alone does not spoil an index
    clean = InMemorySource(docs[:1] + docs[2:], ["v"])
    assert explain(where("v").eq(1), clean).lookups == (IndexLookup("v", Op.EQ, 1),)


class _NoIndexes(InMemorySource):
    def indexed_paths(self) -> frozenset[str]:
        return frozenset()


def test_no_indexes_plan() -> None:
    assert explain(where("a").eq(1), _NoIndexes([])) == Plan((), ("no indexes",))
    assert str(explain(where("a").eq(1), _NoIndexes([]))) == "full scan\n  note: no indexes"
    plan = explain(where("a").eq(1), InMemorySource([]))
    assert plan.full_scan and plan.notes == ("query: no and-criterion can use an index",)


def test_id_is_always_indexed() -> None:
    src = InMemorySource(PEOPLE)
    assert explain(where("_id").eq("p2"), src).lookups == (IndexLookup("_id", Op.EQ, "p2"),)
    assert _ids(execute(where("_id").ge("p4"), src)) == ["p4", "p5"]


# --- the in-memory source ------------------------------------------------------------


def test_in_memory_source_put_and_delete_keep_indexes() -> None:
    src = InMemorySource(PEOPLE, ["age"])
    assert len(src) == 5 and "p1" in src
    src.put({"_id": "p1", "age": 1})
    src.put({"_id": "p9", "age": 40})
    assert src.delete("p3") and not src.delete("p3")
    assert sorted(src.index_ids("age", Op.EQ, 40)) == ["p9"]
    assert sorted(src.index_ids("age", Op.LT, 20)) == ["p1", "p5"]
    assert src.index_types("age") == {"number", "null"}
    src.delete("p4")
    assert src.index_types("age") == {"number"}
    assert _ids(execute(where("age").ge(19), src)) == ["p1", "p2", "p5", "p9"][1:]


def test_in_memory_index_lookups_match_semantics() -> None:
    values: list[Any] = [
        -1,
        0,
        0.5,
        1,
        1.0,
        2**53,
        2**53 + 1,
        "a",
        "a\x00",
        "b",
        True,
        False,
        None,
        [1],
    ]
    docs = [{"_id": f"d{i:02}", "v": v} for i, v in enumerate(values)]
    src = InMemorySource(docs, ["v"])
    probes: list[Any] = [0, 1, 2**53, 2**53 + 1, 0.75, "a", "a\x00", True]
    for probe in probes:
        for op in (Op.EQ, Op.GT, Op.GE, Op.LT, Op.LE):
            if isinstance(probe, bool) and op is not Op.EQ:
                continue
            c = Criterion("v", op, probe)
            expected = sorted(
                d["_id"]
                for d in docs
                if type(d["v"]) in (int, float, str, bool)
                and (isinstance(d["v"], bool) == isinstance(probe, bool))
                and (isinstance(d["v"], str) == isinstance(probe, str))
                and matches(Query((c,)), d)
            )
            assert sorted(src.index_ids("v", op, probe)) == expected, (op, probe)
    assert sorted(src.index_ids("v", Op.IN, (1, 2**53 + 1))) == ["d03", "d04", "d06"]


def test_in_memory_source_errors() -> None:
    with pytest.raises(InvalidDocument, match="string _id"):
        InMemorySource([{"name": "x"}])
    with pytest.raises(InvalidDocument, match="two documents"):
        InMemorySource([{"_id": "a"}, {"_id": "a"}])
    with pytest.raises(InvalidDocument, match="must be an object"):
        InMemorySource(["x"])  # type: ignore[list-item]
    with pytest.raises(InvalidDocument, match="NaN"):
        InMemorySource([{"_id": "a", "v": float("nan")}], ["v"])
    with pytest.raises(InvalidIndex):
        InMemorySource([], ["a..b"])
    src = InMemorySource([], ["v"])
    with pytest.raises(InvalidQuery, match="no index"):
        src.index_ids("w", Op.EQ, 1)
    with pytest.raises(InvalidQuery, match="cannot answer"):
        src.index_ids("v", Op.NE, 1)
