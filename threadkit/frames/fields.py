"""Which fields a pandas-style query may name: typos raise, as ``DataFrame.query`` does.

pandas raises ``UndefinedVariableError`` for a column a query names that the
frame does not have; a document store would silently match nothing. So a query
string or column expression (not a ``tk.Query``, whose ThreadDB semantics match
nothing on a missing field) may only name a **known** field:

- a path the collection's JSON Schema names (nested ones included), ``_id`` or
  ``_mod``; else
- a path some document the reader can see holds (documents may carry fields
  the schema does not list, and a schema-less collection lists none).

An empty schema-less collection has no fields to judge against, so any name
passes there (the query matches nothing).

``index`` means the frame's index, as in pandas: ``_id`` — unless the collection
has a field named ``index``, which then wins (pandas' columns win over the index
too).

Examples
--------
>>> import threadkit as tk
>>> from threadkit.frames.logic import Cmp
>>> with tk.Peer(memory=True) as peer:
...     notes = peer.new_db("n").new_collection("Notes")
...     _ = notes.create({"_id": "a", "title": "x"})
...     renamed = check_fields(notes, Cmp("index", "==", "a"))
...     check_fields(notes, Cmp("titel", "==", "x"))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
threadkit.errors.InvalidQuery: Notes has no field 'titel' (did you mean 'title'?); ...
>>> renamed
Cmp(path='_id', op='==', value='a')
"""

from __future__ import annotations

import difflib
from collections.abc import Generator
from contextlib import closing
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from threadkit.db.query import resolve
from threadkit.db.schema import schema_paths
from threadkit.errors import InvalidQuery
from threadkit.frames.logic import And, Cmp, Const, Node, Not, Or

if TYPE_CHECKING:
    from threadkit.frames.source import CollectionSource

__all__ = ["check_fields"]

_ALWAYS = ("_id", "_mod")
_SAMPLE = 200  # documents read to list a collection's fields in an error message
_LISTED = 40  # field names listed in an error message at most


def _paths(node: Node) -> set[str]:
    if isinstance(node, Cmp):
        return {node.path}
    if isinstance(node, And | Or):
        return set().union(*(_paths(part) for part in node.parts))
    if isinstance(node, Not):
        return _paths(node.part)
    assert isinstance(node, Const)
    return set()


def _rename(node: Node, names: dict[str, str]) -> Node:
    if isinstance(node, Cmp):
        return replace(node, path=names.get(node.path, node.path))
    if isinstance(node, And):
        return And(tuple(_rename(part, names) for part in node.parts))
    if isinstance(node, Or):
        return Or(tuple(_rename(part, names) for part in node.parts))
    if isinstance(node, Not):
        return Not(_rename(node.part, names))
    return node


def _visible_docs(coll: CollectionSource, reader: str) -> Generator[dict[str, Any], None, None]:
    """The documents ``reader`` sees, one at a time, in ``_id`` order."""
    yield from coll.visible_documents(reader)


def _held(coll: CollectionSource, path: str, reader: str) -> tuple[bool, bool]:
    """(some visible document holds ``path``, there is any visible document)."""

    seen = False
    with closing(_visible_docs(coll, reader)) as docs:
        for doc in docs:
            seen = True
            if resolve(doc, path)[0]:
                return True, True
    return False, seen


def _check_ids(node: Node, names: dict[str, str]) -> None:
    """``_id`` holds strings: a comparison with another type is a mistake, said now."""
    if isinstance(node, And | Or):
        for part in node.parts:
            _check_ids(part, names)
    elif isinstance(node, Not):
        _check_ids(node.part, names)
    elif isinstance(node, Cmp) and node.path == "_id" and node.op not in ("isna", "notna"):
        values = node.value if node.op in ("in", "not in") else [node.value]
        for value in values if isinstance(values, list | tuple | set | frozenset) else [values]:
            if not isinstance(value, str) and value is not None and value == value:
                shown = "index (the documents' _id)" if "index" in names else "_id"
                raise InvalidQuery(
                    f"{shown} holds strings; cannot compare it with {value!r} "
                    f"({type(value).__name__})"
                )


def _flat(doc: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, value in doc.items():
        path = prefix + key
        out.append(path)
        if isinstance(value, dict):
            out.extend(_flat(value, path + "."))
    return out


def _known(coll: CollectionSource, schema_fields: list[str], reader: str) -> list[str]:
    """Field paths to list in a message: the schema's, then those seen in documents."""
    known = dict.fromkeys(name for name in schema_fields if name not in _ALWAYS)
    with closing(_visible_docs(coll, reader)) as docs:
        for count, doc in enumerate(docs):
            if count >= _SAMPLE:
                break
            known.update(dict.fromkeys(p for p in _flat(doc) if p not in _ALWAYS))
    return ["_id", *known, "_mod"]


def _schema_fields(coll: CollectionSource) -> list[str]:
    """The schema's paths, in the frame's column order when it has one, else sorted."""

    schema = coll.config.schema
    paths = schema_paths(schema)
    columns = [c for c in schema.get("x-threadkit-columns", ()) if c in paths]
    return columns + sorted(paths - set(columns))


def check_fields(coll: CollectionSource, node: Node, reader: str | None = None) -> Node:
    """``node`` with ``index`` read as ``_id``; InvalidQuery for a field that is not known.

    Parameters
    ----------
    coll : CollectionSource
        The collection the query runs on.
    node : Node
        The parsed condition (:mod:`threadkit.frames.logic`).
    reader : str, optional
        Whose view of the documents decides (read filters apply); the peer's by default.

    Returns
    -------
    Node
        The condition, ``index`` renamed to ``_id`` where it names the index.

    Raises
    ------
    InvalidQuery
        Naming the unknown field, the closest known one, and the known fields.
    """
    reader = reader if reader is not None else coll.db_reader()
    schema_fields = _schema_fields(coll)
    declared = set(schema_fields) | set(_ALWAYS)
    renames: dict[str, str] = {}
    for path in sorted(_paths(node)):
        if path in declared:
            continue
        held, any_docs = _held(coll, path, reader)
        if held:
            continue
        if path == "index":
            renames[path] = "_id"
            continue
        if not any_docs and not declared - set(_ALWAYS):
            continue  # an empty schema-less collection: nothing to judge by
        known = _known(coll, schema_fields, reader)
        close = difflib.get_close_matches(path, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        listed = ", ".join(known[:_LISTED]) + (", …" if len(known) > _LISTED else "")
        raise InvalidQuery(f"{coll.name} has no field {path!r}{hint}; its fields: {listed}")
    node = _rename(node, renames) if renames else node
    _check_ids(node, renames)
    return node
