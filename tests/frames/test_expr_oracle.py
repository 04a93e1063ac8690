"""Property test: pandas query text compiled to tk.Query selects exactly the rows pandas'
own ``DataFrame.query`` selects, on random frames and random expressions.

The pandas frame is built from the same documents with NumPy-backed dtypes, where pandas'
missing-value semantics are the ones threadkit follows: an int column with missing values is
float64 (NaN), strings are pandas' default ``str`` dtype (NaN), bools never miss. Values are
compared only with values of their own type (pandas and threadkit both refuse, or differ, on
cross-type comparisons), and bool columns only with ==, !=, in and as bare conditions. The
nullable extension dtypes (``Int64``, ``string``, ``boolean``) are not the oracle: pandas
propagates ``<NA>`` through ``~`` and ``!=`` differently for each of them.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import threadkit as tk
from threadkit.frames.expr import compile_query

INTS = st.integers(-3, 3)
FLOATS = st.sampled_from([-1.5, 0.0, 0.5, 1.0, 2.25])
STRINGS = st.sampled_from(["", "a", "ab", "b", "ba", "c"])
VALUES = {"i": INTS, "f": st.one_of(FLOATS, INTS), "s": STRINGS}
ORDERED_OPS = ["==", "!=", "<", "<=", ">", ">="]

_names = itertools.count()


@pytest.fixture(scope="module")
def db() -> Iterator[Any]:
    with tk.Peer(memory=True) as peer:
        yield peer.new_db("oracle")


@st.composite
def rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(0, 30))
    out = []
    for _ in range(n):
        doc: dict[str, Any] = {"b": draw(st.booleans())}
        for name, values in (("i", INTS), ("f", FLOATS), ("s", STRINGS)):
            if draw(st.integers(0, 3)):  # about one in four missing
                doc[name] = draw(values)
        out.append(doc)
    return out


class _Locals:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def literal(self, draw: st.DrawFn, value: Any) -> str:
        if draw(st.booleans()):
            return repr(value)
        name = f"v{len(self.values)}"
        self.values[name] = value
        return f"@{name}"


def leaf(draw: st.DrawFn, names: _Locals) -> str:
    column = draw(st.sampled_from(["i", "f", "s", "b"]))
    if column == "b":
        form = draw(st.sampled_from(["b", "b == True", "b != False", "b in [True]", "False == b"]))
        return form
    values = VALUES[column]
    kind = draw(st.sampled_from(["cmp", "cmp", "flipped", "chain", "in", "not in"]))
    if kind in ("in", "not in"):
        items = draw(st.lists(values, max_size=3))
        return f"{column} {kind} {names.literal(draw, items)}"
    if kind == "chain":
        low, high = draw(values), draw(values)
        return f"{names.literal(draw, low)} < {column} <= {names.literal(draw, high)}"
    op = draw(st.sampled_from(ORDERED_OPS))
    value = names.literal(draw, draw(values))
    return f"{value} {op} {column}" if kind == "flipped" else f"{column} {op} {value}"


@st.composite
def expressions(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    names = _Locals()

    def build(depth: int) -> str:
        if depth >= 3 or draw(st.integers(0, 2)) == 0:
            return leaf(draw, names)
        form = draw(st.sampled_from(["and", "or", "&", "|", "not", "~"]))
        if form in ("not", "~"):
            return f"{form} ({build(depth + 1)})" if form == "not" else f"~({build(depth + 1)})"
        return f"({build(depth + 1)}) {form} ({build(depth + 1)})"

    return build(0), names.values


def pandas_frame(docs: list[dict[str, Any]], ids: list[str]) -> pd.DataFrame:
    columns: dict[str, Any] = {}
    for name in ("i", "f", "s"):
        values = [d.get(name) for d in docs]
        if name == "s":
            columns[name] = pd.Series(values, index=ids, dtype=object if not docs else None)
        elif name == "i" and all(v is not None for v in values):
            columns[name] = np.array(values, dtype=np.int64)
        else:
            columns[name] = np.array([np.nan if v is None else v for v in values], dtype=float)
    columns["b"] = np.array([d["b"] for d in docs], dtype=bool)
    columns = {k: v.to_numpy() if isinstance(v, pd.Series) else v for k, v in columns.items()}
    return pd.DataFrame(columns, index=pd.Index(ids, name="_id"))


@settings(
    max_examples=int(os.environ.get("TK_ORACLE_EXAMPLES", "250")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(docs=rows(), expression=expressions(), indexed=st.booleans())
def test_threadkit_selects_what_pandas_selects(
    db: Any, docs: list[dict[str, Any]], expression: tuple[str, dict[str, Any]], indexed: bool
) -> None:
    text, local_vars = expression
    coll = db.new_collection(f"Oracle-{next(_names)}", indexes=["i", "s"] if indexed else [])
    ids = coll.create(docs) if docs else []
    frame = pandas_frame(docs, ids)
    expected = set(frame.query(text, local_dict=local_vars).index)
    query = compile_query(text, local_vars=local_vars)
    got = {doc["_id"] for doc in coll.find(query)}
    assert got == expected, (text, local_vars, query)
