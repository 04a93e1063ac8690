"""Pandas-style queries name known fields only: typos raise, ``index`` is ``_id``; iteration."""

from __future__ import annotations

import keyword
from collections.abc import Iterator

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import threadkit as tk
from threadkit.db.collection import Collection
from threadkit.errors import InvalidQuery


@pytest.fixture(scope="module")
def peer() -> Iterator[tk.Peer]:
    with tk.Peer(memory=True) as peer:
        yield peer


@pytest.fixture(scope="module")
def elements(peer: tk.Peer) -> Collection:
    return peer.new_db("fields").from_pandas("Elements", tk.datasets.load("elements"))


def test_a_typo_raises_naming_the_field_and_the_known_ones(elements: Collection) -> None:
    with pytest.raises(InvalidQuery) as caught:
        elements.query("atomic_wieght > 5")
    message = str(caught.value)
    assert "'atomic_wieght'" in message and "did you mean 'atomic_weight'" in message
    for column in ("number", "symbol", "atomic_weight", "category", "_id", "_mod"):
        assert column in message
    with pytest.raises(InvalidQuery, match="atomic_wieght"):
        elements[elements.c.atomic_wieght > 5]
    with pytest.raises(InvalidQuery, match="catgory"):
        elements.lazy("catgory == 'metalloid' and period > 2")
    with pytest.raises(InvalidQuery, match="'nope'"):
        elements.query("period > 2 or not nope.isna()")


def test_a_tk_query_keeps_threaddb_semantics(elements: Collection) -> None:
    assert elements.to_pandas(tk.where("atomic_wieght").gt(5)).empty
    assert elements.find(tk.where("atomic_wieght").gt(5)) == []


def test_index_is_the_id_as_in_pandas(elements: Collection) -> None:
    some = elements.df.index[3]
    assert elements.query("index == @some").index.tolist() == [some]
    assert elements.query("index in [@some]").index.tolist() == [some]
    assert len(elements.query("index != @some")) == elements.count() - 1
    with pytest.raises(InvalidQuery, match=r"index \(the documents' _id\) holds strings"):
        elements.query("index > 5")
    with pytest.raises(InvalidQuery, match="_id holds strings"):
        elements.query("_id == 3")


def test_a_field_named_index_wins_over_the_index(peer: tk.Peer) -> None:
    pages = peer.new_db("pages").new_collection("Pages")
    pages.create({"_id": "a", "index": 7}, {"_id": "b", "index": 2})
    assert pages.query("index > 5").index.tolist() == ["a"]


def test_fields_held_by_documents_but_not_in_the_schema(peer: tk.Peer) -> None:
    schema = {"type": "object", "properties": {"_id": {"type": "string"}, "n": {"type": "integer"}}}
    coll = peer.new_db("extra").new_collection("Extra", schema=schema)
    coll.create({"_id": "a", "n": 1, "meta": {"reads": 3}}, {"_id": "b", "n": 2})
    assert coll.query("meta.reads > 1").index.tolist() == ["a"]
    assert coll.query("meta.isna()").index.tolist() == ["b"]
    with pytest.raises(InvalidQuery, match=r"did you mean 'meta\.reads'"):
        coll.query("meta.raeds > 1")


def test_an_empty_schemaless_collection_judges_nothing(peer: tk.Peer) -> None:
    empty = peer.new_db("empty").new_collection("Empty")
    assert empty.query("anything > 1").empty


def test_fields_only_in_hidden_documents_are_unknown(peer: tk.Peer) -> None:
    hide = "if (instance.secret) { return null; } return instance;"
    coll = peer.new_db("hidden").new_collection("Hidden", read_filter=hide)
    coll.create({"_id": "a", "open": 1}, {"_id": "b", "secret": 1})
    with pytest.raises(InvalidQuery) as caught:
        coll.query("secret == 1")
    assert "secret" not in str(caught.value).split("fields:")[1]


@settings(max_examples=40, deadline=None)
@given(name=st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True))
def test_any_name_not_known_raises_and_known_ones_pass(elements: Collection, name: str) -> None:
    if keyword.iskeyword(name) or name in ("and", "or", "not", "in", "is"):
        return
    known = set(elements.df.columns) | {"_id", "_mod", "index"}
    if name in known:
        assert isinstance(elements.query(f"{name}.notna()"), pd.DataFrame)
    else:
        with pytest.raises(InvalidQuery, match=f"no field '{name}'"):
            elements.query(f"{name}.notna()")


def test_iterating_a_collection_gives_its_documents(peer: tk.Peer) -> None:
    notes = peer.new_db("iter").new_collection("Notes")
    notes.create({"_id": "a", "t": 1}, {"_id": "b", "t": 2})
    assert list(notes) == notes.find()
    for doc in notes:  # a snapshot: writing inside the loop is safe
        notes.save({**doc, "t": doc["t"] * 10})
    assert [d["t"] for d in notes] == [10, 20]
    assert "a" in notes and "zz" not in notes and 5 not in notes and "" not in notes
