"""Property: a query gives the same result, or the same error, whether or not indexes
exist, and both equal a brute-force oracle written here independently of query.py.

The oracle reads only the public fields of a Query (ands, ors, sort, seek_id,
skip_count, limit_count) and implements the documented semantics from scratch:
three-valued criteria (false < unknown < true; AND = min, OR = max), an error
when any document's outcome is unknown, a read filter over the matches, then a
comparator sort (missing/null first ascending, ties by _id), seek, skip, limit.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from threadkit.db.planner import InMemorySource, execute, explain
from threadkit.db.query import Criterion, Op, Query, Sort
from threadkit.errors import InvalidQuery

# --- the oracle ------------------------------------------------------------------------

MISSING = object()
F, U, T = 0, 1, 2  # false < unknown < true, so AND is min and OR is max
COMPARE = {
    0: operator.eq,
    1: operator.ne,
    2: operator.gt,
    3: operator.lt,
    4: operator.ge,
    5: operator.le,
}


class OracleError(Exception):
    """The oracle's verdict that the query must fail."""


def o_get(doc: Any, path: str) -> Any:
    current = doc
    for part in path.split("."):
        if type(current) is not dict or part not in current:
            return MISSING
        current = current[part]
    return current


def o_kind(value: Any) -> str:
    if value is None:
        return "null"
    if value is True or value is False:
        return "bool"
    if type(value) in (int, float):
        return "num"
    if type(value) is str:
        return "str"
    if type(value) is list:
        return "list"
    return "dict"


def o_criterion(c: Criterion, doc: dict[str, Any]) -> int:
    value = o_get(doc, c.path)
    code = int(c.op)
    if code == 8:  # exists
        return T if (value is not MISSING) == c.value else F
    if value is MISSING or value is None:
        return F
    kind = o_kind(value)
    if code == 7:  # contains
        if kind == "list":
            hit = any(o_kind(e) == o_kind(c.value) and e == c.value for e in value)
            return T if hit else F
        if kind == "str" and o_kind(c.value) == "str":
            return T if c.value in value else F
        return U
    options = c.value if code == 6 else (c.value,)
    assert isinstance(options, tuple)
    if kind != o_kind(options[0]):
        return U
    if code == 6:  # in
        return T if any(value == option for option in options) else F
    return T if COMPARE[code](value, c.value) else F


def o_query(q: Query, doc: dict[str, Any]) -> int:
    if not q.ands and not q.ors:
        return T
    outcomes = [min(o_criterion(c, doc) for c in q.ands)] if q.ands else []
    outcomes += [o_query(branch, doc) for branch in q.ors]
    return max(outcomes)


def oracle(
    docs: list[dict[str, Any]],
    q: Query,
    read_filter: Callable[[dict[str, Any]], dict[str, Any] | None] | None,
) -> list[dict[str, Any]]:
    rows = []
    for doc in sorted(docs, key=lambda d: d["_id"]):
        outcome = o_query(q, doc)
        if outcome == U:
            raise OracleError(doc["_id"])
        if outcome == T:
            shown = doc if read_filter is None else read_filter(dict(doc))
            if shown is not None:
                rows.append((doc["_id"], shown))
    sort = q.sort if q.sort is not None else Sort("_id")
    if sort.path == "_id":
        rows.sort(key=lambda row: row[0], reverse=sort.desc)
        if q.seek_id:
            rows = [r for r in rows if (r[0] <= q.seek_id if sort.desc else r[0] >= q.seek_id)]
    else:
        present = [o_get(doc, sort.path) for _, doc in rows]
        kinds = {o_kind(v) for v in present if v is not MISSING and v is not None}
        if len(kinds) > 1 or kinds - {"str", "num", "bool"}:
            raise OracleError(sort.path)

        def compare(x: tuple[str, dict[str, Any]], y: tuple[str, dict[str, Any]]) -> int:
            vx, vy = o_get(x[1], sort.path), o_get(y[1], sort.path)
            absent_x, absent_y = vx is MISSING or vx is None, vy is MISSING or vy is None
            if absent_x or absent_y:
                result = int(absent_y) - int(absent_x)
            else:
                result = int(vx > vy) - int(vx < vy)
            if sort.desc:
                result = -result
            return result or (int(x[0] > y[0]) - int(x[0] < y[0]))

        rows.sort(key=functools.cmp_to_key(compare))
    page = rows[q.skip_count :]
    if q.limit_count:
        page = page[: q.limit_count]
    return [doc for _, doc in page]


# --- random documents and queries ----------------------------------------------------

POOLS: dict[str, list[Any]] = {
    "number": [-2, -1, 0, 0.0, -0.0, 0.5, 1, 1.0, 2, 3, 2**53, 2**53 + 1],
    "string": ["", "a", "a\x00", "ab", "b", "ba", "é"],
    "boolean": [False, True],
}
PRIMARY = {kind: st.sampled_from(pool) for kind, pool in POOLS.items()}
ANY_SCALAR = st.sampled_from([v for pool in POOLS.values() for v in pool])
ANY_VALUE = st.one_of(
    ANY_SCALAR,
    st.lists(ANY_SCALAR, max_size=3),
    st.fixed_dictionaries({"d": ANY_SCALAR}),
)
INDEXED = ["a", "b", "c", "c.d", "t", "x"]
# the operations an index can answer come up twice as often as the others
OPS = [op for op in Op for _ in range(2 if op in (Op.NE, Op.CONTAINS, Op.EXISTS) else 4)]
PATHS = ["a", "b", "c", "c.d", "t", "x", "_id"]
# "c" holds objects and "t" mostly arrays: comparisons on them are nearly always type
# errors, so they come up rarely; contains goes to "t" or to string fields
# (Hypothesis favours the first and last options of a choice: rare ones go in the middle)
CRITERION_PATHS = (
    ["a"] * 6 + ["b"] * 3 + ["x", "_id", "c", "t", "_id", "x"] + ["b"] * 3 + ["c.d"] * 6
)
SORT_PATHS = ["a", "a", "b", "_id", "x", "c", "t", "_id", "b", "c.d", "c.d"]


def roll(draw: st.DrawFn) -> int:
    """A number in 0..19; the rare branches below use values away from the ends, which
    Hypothesis favours (nested one_of strategies are flattened, so they cannot weight)."""
    return draw(st.integers(0, 19))


@st.composite
def field_value(draw: st.DrawFn, kind: str, dirty: bool) -> Any:
    """Mostly the field's own type; sometimes absent or null; if dirty, another type."""
    n = roll(draw)
    if n in (6, 13):
        return MISSING
    if n == 9:
        return None
    if dirty and n in (4, 11):
        return draw(ANY_VALUE)
    return draw(PRIMARY[kind])


@st.composite
def documents(
    draw: st.DrawFn, kinds: dict[str, str], dirty: dict[str, bool]
) -> list[dict[str, Any]]:
    names = st.text("ab\x00é", min_size=1, max_size=3)
    ids = draw(st.lists(names, unique=True, min_size=3, max_size=10))
    docs = []
    for instance_id in ids:
        doc: dict[str, Any] = {"_id": instance_id}
        for name in ("a", "b"):
            value = draw(field_value(kinds[name], dirty[name]))
            if value is not MISSING:
                doc[name] = value
        n = roll(draw)
        if n == 7:
            pass  # no "c"
        elif n == 10:
            doc["c"] = None
        elif n == 12 and dirty["c"]:
            doc["c"] = draw(ANY_SCALAR)
        else:
            inner = draw(field_value(kinds["c.d"], dirty["c.d"]))
            doc["c"] = {} if inner is MISSING else {"d": inner}
        n = roll(draw)
        if n in (5, 14):
            doc["t"] = draw(PRIMARY["string"])
        elif n == 10 and dirty["t"]:
            doc["t"] = draw(ANY_SCALAR)
        elif n != 8:
            doc["t"] = draw(st.lists(ANY_SCALAR, max_size=4))
        docs.append(doc)
    return docs


@st.composite
def value_for(draw: st.DrawFn, kind: str) -> Any:
    """Mostly a value of the field's type, now and then one of another type."""
    return draw(ANY_SCALAR if roll(draw) == 9 else PRIMARY[kind])


@st.composite
def criteria(draw: st.DrawFn, kinds: dict[str, str]) -> Criterion:
    op = draw(st.sampled_from(OPS))
    if op is Op.EXISTS:
        return Criterion(draw(st.sampled_from(PATHS)), op, draw(st.booleans()))
    if op is Op.CONTAINS:
        strings = [p for p in ("a", "b", "c.d") if kinds[p] == "string"]
        path = draw(st.sampled_from(["t", "t", "t", "c", *strings]))
        value = draw(ANY_SCALAR if path in ("t", "c") else value_for("string"))
        return Criterion(path, op, value)
    path = draw(st.sampled_from(CRITERION_PATHS))
    kind = kinds.get(path, "string")
    if op is Op.IN:
        first = draw(value_for(kind))
        more = draw(st.lists(PRIMARY[_json(first)], max_size=2))
        return Criterion(path, op, (first, *more))
    value = draw(value_for(kind))
    if isinstance(value, bool) and op in (Op.GT, Op.LT, Op.GE, Op.LE):
        op = draw(st.sampled_from([Op.EQ, Op.NE]))
    return Criterion(path, op, value)


def _json(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    return "string" if isinstance(value, str) else "number"


def queries(kinds: dict[str, str], depth: int) -> st.SearchStrategy[Query]:
    branches = (
        st.just([])
        if depth == 0
        else st.lists(queries(kinds, depth - 1), max_size=2 if depth == 2 else 1)
    )
    return st.builds(
        lambda ands, ors, hint: Query(tuple(ands), tuple(ors), index_hint=hint),
        # a branch with no criteria matches everything; keep those rare
        st.lists(criteria(kinds), min_size=0 if depth == 2 else 1, max_size=2),
        branches,
        st.sampled_from(["", "", "a", "b", "c.d", "x", "nope"]),
    )


@st.composite
def full_queries(draw: st.DrawFn, kinds: dict[str, str]) -> Query:
    q = draw(queries(kinds, 2))
    sort_paths = st.sampled_from(SORT_PATHS)
    sort = draw(st.one_of(st.none(), st.builds(Sort, sort_paths, st.booleans())))
    seek = ""
    if (sort is None or sort.path == "_id") and draw(st.booleans()):
        seek = draw(st.text("ab\x00é", min_size=1, max_size=3))
    skip = draw(st.sampled_from([0, 0, 0, 1, 2, 5]))
    limit = draw(st.sampled_from([0, 0, 0, 1, 2, 3]))
    return Query(q.ands, q.ors, sort, seek, skip, limit, q.index_hint)


def hide_b(doc: dict[str, Any]) -> dict[str, Any] | None:
    return None if doc["_id"].startswith("b") else doc


def rewrite_a(doc: dict[str, Any]) -> dict[str, Any] | None:
    out = dict(doc)
    if "a" in out and out["_id"].endswith("a"):
        del out["a"]
    return out


FILTERS = st.sampled_from([None, None, hide_b, rewrite_a])


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[list[dict[str, Any]], Query, Any, list[str]]:
    kinds = {
        path: draw(st.sampled_from(list(PRIMARY)), label=f"type of {path}")
        for path in ("a", "b", "c.d")
    }
    # per field: dirty (holds other types now and then, so indexes on it cannot be used
    # and mismatches become likely) or clean (only its type, missing or null)
    dirty = {path: roll(draw) in (7, 12) for path in ("a", "b", "c", "c.d", "t")}
    docs = draw(documents(kinds, dirty))
    query = draw(full_queries(kinds))
    subset = draw(st.lists(st.sampled_from(INDEXED), unique=True))
    return docs, query, draw(FILTERS), subset


def _run(
    query: Query, source: InMemorySource, read_filter: Any
) -> list[dict[str, Any]] | tuple[str, str]:
    try:
        return execute(query, source, read_filter=read_filter)
    except InvalidQuery as exc:
        return ("error", str(exc))


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_indexes_never_change_results_and_match_the_oracle(
    scenario: tuple[list[dict[str, Any]], Query, Any, list[str]],
) -> None:
    docs, query, read_filter, subset = scenario
    scan = InMemorySource(docs)
    indexed = InMemorySource(docs, INDEXED)
    some = InMemorySource(docs, subset)

    plain = _run(query, scan, read_filter)
    assert _run(query, indexed, read_filter) == plain
    assert _run(query, some, read_filter) == plain

    try:
        expected: list[dict[str, Any]] | None = oracle(docs, query, read_filter)
    except OracleError:
        expected = None
    if expected is None:
        assert isinstance(plain, tuple), f"oracle says error, engine returned {plain}"
        event(f"outcome: InvalidQuery ({plain[1].split(':')[0][:20]})")
    else:
        assert plain == expected
        event(f"outcome: {'empty' if not expected else 'results'}")
    plan = explain(query, indexed)
    event("plan: full scan" if plan.full_scan else f"plan: {len(plan.lookups)} lookup(s)")
