"""Expression queries: pandas query text and column expressions compiled to tk.Query,
the not/missing mapping, every unsupported form named, query_frame and LazyFrame."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

import threadkit as tk
from threadkit.db.query import Query, where
from threadkit.errors import InvalidQuery
from threadkit.frames.columns import Column, ColumnNamespace
from threadkit.frames.expr import compile_query
from threadkit.frames.lazy import LazyFrame, lazy_query, query_frame

c = ColumnNamespace()
missing = where("a").exists(False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("age > 30", where("age").gt(30)),
        ("30 < age", where("age").gt(30)),
        ("age >= 1 and name == 'x'", where("age").ge(1).and_("name").eq("x")),
        ("age >= 1 & name == 'x'", where("age").ge(1).and_("name").eq("x")),
        ("a == 1 or b == 2", where("a").eq(1).or_(where("b").eq(2))),
        ("a == 1 | b == 2", where("a").eq(1).or_(where("b").eq(2))),
        ("1 < a <= 5", where("a").gt(1).and_("a").le(5)),
        ("a in [1, 2]", where("a").in_([1, 2])),
        ("a in [1]", where("a").eq(1)),
        ("a == [1, 2]", where("a").in_([1, 2])),
        ("a in []", where("_id").exists(False)),
        ("a not in []", Query()),
        ("a != 1", where("a").ne(1).or_(missing)),
        ("not (a > 1)", where("a").le(1).or_(missing)),
        ("~(a > 1)", where("a").le(1).or_(missing)),
        ("not (a <= 1)", where("a").gt(1).or_(missing)),
        ("not (a != 1)", where("a").eq(1)),
        ("not not (a == 1)", where("a").eq(1)),
        ("a not in [1, 2]", where("a").ne(1).and_("a").ne(2).or_(missing)),
        ("not (a in [1, 2])", where("a").ne(1).and_("a").ne(2).or_(missing)),
        ("a in [1, None]", where("a").eq(1).or_(missing)),
        ("a not in [1, None]", where("a").ne(1)),
        ("a == None", where("_id").exists(False)),
        ("a != None", Query()),
        ("flag", where("flag").eq(True)),
        ("not flag", where("flag").ne(True).or_(where("flag").exists(False))),
        ("`odd name` == 'x'", where("odd name").eq("x")),
        ("meta.reads >= 5", where("meta.reads").ge(5)),
        ("`meta.reads` >= 5", where("meta.reads").ge(5)),
        ("a > -3", where("a").gt(-3)),
        ("a.isna()", missing),
        ("a.notna()", where("a").exists(True)),
        ("a.isin(['x', 'y'])", where("a").in_(["x", "y"])),
        ("a.between(1, 3)", where("a").ge(1).and_("a").le(3)),
        ("a.between(1, 3, inclusive='neither')", where("a").gt(1).and_("a").lt(3)),
        ("True", Query()),
        ("1 > 2", where("_id").exists(False)),
        ("a == 'it''s'", where("a").eq("its")),
        ("a == '`not a name`'", where("a").eq("`not a name`")),
        (
            "not (a == 1 and b == 2)",
            where("a").ne(1).or_(missing).or_(where("b").ne(2)).or_(where("b").exists(False)),
        ),
        # a branch that cannot match is dropped: a missing and a > 0 together
        ("(a > 0 or a != 1) and a > 0", where("a").gt(0)),
    ],
)
def test_compiles(text: str, expected: Query) -> None:
    assert compile_query(text) == expected


def test_local_variables() -> None:
    lv = {"n": np.int64(3), "xs": np.array([1, 2]), "cfg": {"k": "v"}, "s": pd.Series(["a"])}
    assert compile_query("a > @n", local_vars=lv) == where("a").gt(3)
    assert compile_query("a in @xs", local_vars=lv) == where("a").in_([1, 2])
    assert compile_query("a == @cfg['k']", local_vars=lv) == where("a").eq("v")
    assert compile_query("a in @s", local_vars=lv) == where("a").eq("a")
    assert compile_query("a == @n.real", local_vars=lv) == where("a").eq(3)


def test_schema_aware_values() -> None:
    schema = {
        "properties": {
            "age": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "day": {"type": "string", "format": "date"},
            "ok": {"type": "boolean"},
        }
    }
    t = pd.Timestamp("2024-05-01 12:30", tz="Europe/Oslo")
    assert compile_query("at > @t", local_vars={"t": t}, schema=schema) == where("at").gt(
        "2024-05-01T10:30:00.000000Z"
    )
    assert compile_query("at >= '2024-05-01'", schema=schema) == where("at").ge(
        "2024-05-01T00:00:00.000000Z"
    )
    assert compile_query(
        "day == @d", local_vars={"d": pd.Timestamp("2024-05-01")}, schema=schema
    ) == where("day").eq("2024-05-01")
    ns = compile_query("_mod > @t", local_vars={"t": pd.Timestamp(1, unit="s", tz="UTC")})
    assert ns == where("_mod").gt(1_000_000_000)
    assert compile_query("ok", schema=schema) == where("ok").eq(True)
    with pytest.raises(InvalidQuery, match=r"'age' \(integer in the schema\) with '30'"):
        compile_query("age > '30'", schema=schema)
    with pytest.raises(InvalidQuery, match="'age' is not a boolean field"):
        compile_query("age", schema=schema)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("age + 1 > 2", r"arithmetic \(\+\) is not supported in a query: age \+ 1"),
        ("age * 2 > 2", r"arithmetic \(\*\)"),
        ("a > b", r"comparing two fields \(a and b\)"),
        ("len(a) > 1", r"a function call is not supported in a query: len\(a\)"),
        ("a.str.contains('x')", r"the method call \.contains\(\)"),
        ("a[0] == 1", "indexing a field"),
        ("a > @missing", "local variable 'missing' is not defined"),
        ("a >", "cannot parse"),
        ("", "empty"),
        ("`a", "unclosed backtick"),
        ("a in 5", "'in' on 'a' needs a list"),
        ("1 in a", "needs the field on the left"),
        ("'x'", "is a value, not a condition"),
        ("a == (b > 1)", "a condition cannot be used as a value"),
        ("a == {'k': 1}", r"the expression \(Dict\)"),
        ("a > True", "booleans have no order"),
        ("a in [1, 'x']", "must share one JSON type"),
        ("a == @x", "local variable 'x'"),
        ("@ > 1", "'@' must be followed"),
        ("a.between(1, 2, inclusive='x')", "inclusive"),
        ("class == 1", "keyword"),
        ("`odd` + 1 > 0", r"arithmetic \(\+\) is not supported in a query: `odd` \+ 1"),
        ("@xs > 1", "cannot evaluate"),
    ],
)
def test_unsupported_is_named(text: str, match: str) -> None:
    with pytest.raises(InvalidQuery, match=match):
        compile_query(text, local_vars={"xs": [1]})


def test_bad_arguments() -> None:
    with pytest.raises(InvalidQuery, match="must be a string"):
        compile_query(5)  # type: ignore[arg-type]
    with pytest.raises(InvalidQuery, match="local_vars must be a mapping"):
        compile_query("a > 1", local_vars=[1])  # type: ignore[arg-type]
    nested = " and ".join(f"(a{i} == 1 or b{i} == 2)" for i in range(10))
    with pytest.raises(InvalidQuery, match="alternatives"):
        compile_query(nested)


# --- column expressions --------------------------------------------------------------


def test_column_expressions() -> None:
    assert (c.age > 30).to_query() == where("age").gt(30)
    both = (c.age > 30) & (c.city == "Oslo")
    assert both.to_query() == where("age").gt(30).and_("city").eq("Oslo")
    assert (~(c.a > 1)).to_query() == where("a").le(1).or_(missing)
    assert c["odd name"].isin(["x"]).to_query() == where("odd name").eq("x")
    assert (c.meta.reads >= 5).to_query() == where("meta.reads").ge(5)
    assert c.meta["odd"].path == "meta.odd"
    assert ((c.a == 1) | (c.b == 2)).to_query() == where("a").eq(1).or_(where("b").eq(2))
    assert (c.flag & (c.a == 1)).to_query() == where("flag").eq(True).and_("a").eq(1)
    assert (~c.flag).to_query() == compile_query("not flag")
    assert c.flag.to_query() == where("flag").eq(True)
    assert (c.a != [1, 2]).to_query() == compile_query("a not in [1, 2]")
    assert c.a.between(1, 2).to_query() == where("a").ge(1).and_("a").le(2)
    assert c.a.isna().to_query() == missing
    assert c.a.notnull().to_query() == where("a").exists(True)
    assert repr((c.a > 1) | ~(c.b == "x")) == "Expr((a > 1) | (~(b == 'x')))"
    assert "name" in dir(ColumnNamespace(["name", "meta.reads"]))


def test_column_misuse_is_named() -> None:
    with pytest.raises(InvalidQuery, match="no truth value"):
        bool(c.a > 1)
    with pytest.raises(InvalidQuery, match="no truth value"):
        _ = (c.a > 1) and (c.b > 1)
    with pytest.raises(InvalidQuery, match=r"comparing two fields \(a and b\)"):
        _ = c.a == c.b
    with pytest.raises(InvalidQuery, match="expected a column expression"):
        _ = (c.a > 1) & 5
    with pytest.raises(InvalidQuery, match="non-empty dot path"):
        Column("a..b")


# --- running them --------------------------------------------------------------------


@pytest.fixture
def people() -> Iterator[Any]:
    with tk.Peer(memory=True) as peer:
        coll = peer.new_db("q").new_collection("People", indexes=["city"])
        coll.create(
            {"name": "Ada", "age": 36, "city": "Oslo"},
            {"name": "Lin", "age": 29, "city": "Lima"},
            {"name": "Kim", "city": "Oslo"},
            {"name": "Bo", "age": 51, "city": "Pune"},
        )
        yield coll


def test_query_frame(people: Any) -> None:
    names = query_frame(people, "age > 30 and city in ['Oslo', 'Lima']")["name"].tolist()
    assert names == ["Ada"]
    assert sorted(query_frame(people, "not (age > 30)")["name"]) == ["Kim", "Lin"]
    assert sorted(query_frame(people, people_c(people).age <= 30)["name"]) == ["Lin"]
    cities = ["Pune"]
    assert query_frame(people, "city in @cities", {"cities": cities})["name"].tolist() == ["Bo"]
    assert len(query_frame(people, tk.where("city").eq("Oslo"))) == 2
    with pytest.raises(InvalidQuery, match="expected query text"):
        query_frame(people, 42)


def people_c(coll: Any) -> ColumnNamespace:
    return ColumnNamespace()


def test_lazy_frame(people: Any) -> None:
    lazy = lazy_query(people, "city == 'Oslo' or age > 40")
    ordered = lazy.sort_values("age", ascending=False)
    assert ordered.to_pandas()["name"].tolist() == ["Bo", "Ada", "Kim"]  # missing last (desc)
    assert ordered.head(2).to_pandas()["name"].tolist() == ["Bo", "Ada"]
    assert ordered.head(2).head(5).query.limit_count == 2
    assert len(ordered.head(0).to_pandas()) == 0
    assert len(LazyFrame(people)) == 4
    assert "<table" in ordered._repr_html_()
    assert "LazyFrame('People'" in repr(ordered)
    assert LazyFrame(people).sort_values(["name"]).to_pandas()["name"].iloc[0] == "Ada"
    with pytest.raises(InvalidQuery, match="sorts by one field"):
        LazyFrame(people).sort_values(["a", "b"])
    with pytest.raises(InvalidQuery, match="non-negative integer"):
        LazyFrame(people).head(-1)
    with pytest.raises(InvalidQuery, match="ascending"):
        LazyFrame(people).sort_values("a", ascending="yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidQuery, match=r"expected a tk\.Query"):
        LazyFrame(people, "age > 1")  # type: ignore[arg-type]
