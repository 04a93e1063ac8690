"""The batched read path: index entries as id references, documents fetched and decoded in
batches, and queries compiled to a matcher that decides the common cases without
:func:`~threadkit.db.query.matches`.

A query's candidates are read in three steps, none of them document by document in
Python beyond what must be: the index entries of a lookup give the encoded ``_id`` s that
follow their values (:func:`index_refs`, never decoding a value or an id); the documents'
keys are those bytes behind the collection's prefix, fetched in ``_id`` order by one
cursor and decoded by one ``cbor2`` call per chunk of 256 (:func:`load_batches`,
:func:`scan_batches`, :func:`decode_docs`), a chunk at a time, so a query keeps only each
chunk's matches and the encoded values are never all held; a document that does not decode
is left out with a warning, as every multi-document read does.

:func:`compile_matcher` gives a function equal to ``matches(query, doc)`` for every
document: criteria whose field holds the criterion's type (or is missing or null) are
decided by one generated function; anything else (another type, arrays, ``contains``,
``or`` branches) is handed to :func:`~threadkit.db.query.matches`, which decides or raises.
"""

from __future__ import annotations

import io
import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from itertools import takewhile
from operator import itemgetter
from typing import Any

import cbor2

from threadkit.db import dockeys
from threadkit.db.indexkeys import value_end
from threadkit.db.query import Op, Query, matches
from threadkit.store.txntypes import StoreTxn

__all__ = [
    "compile_matcher",
    "decode_docs",
    "index_refs",
    "load_batches",
    "scan",
    "scan_batches",
    "scan_raw",
    "scan_raw_batches",
]

log = logging.getLogger("threadkit.db")

_CHUNK = 256  # documents fetched and decoded at a time
_RAW_CHUNK = 8192  # encoded values read at a time where all of them are kept
_DECODE_ERRORS = (cbor2.CBORDecodeError, ValueError, TypeError, EOFError, RecursionError)


def decode_docs(
    values: Sequence[bytes], collection: str, what: str = "read"
) -> list[dict[str, Any]]:
    """Stored documents decoded; one that does not decode is left out with a warning.

    Parameters
    ----------
    values : Sequence[bytes]
        CBOR-encoded documents.
    collection : str
        The collection's name, for the warning.
    what : str
        What is reading them (``"scan"``, ``"read"``), for the warning.

    Returns
    -------
    list[dict[str, Any]]
        The documents, in order.
    """
    out: list[dict[str, Any]] = []
    for start in range(0, len(values), _CHUNK):
        chunk = values[start : start + _CHUNK]
        decoded = _decode_together(chunk)
        out += decoded if decoded is not None else _decode_each(chunk, collection, what)
    return out


def _decode_together(values: Sequence[bytes]) -> list[Any] | None:
    """The values decoded by one ``cbor2`` call, as the items of one CBOR array of their
    number; None unless that call reads exactly their bytes and gives a map for each (each
    value is then decoded alone).

    The store writes each document as one ``cbor2.dumps`` of a checked JSON object: one
    complete map, without the shared-value or string-reference tags whose meaning could
    reach into another item, so the items of the array are the documents. A value that is
    cut short or carries bytes after its map makes the call fail, read other than all
    the bytes, or give a non-map item. (Only a damaged file could still hold values that
    split into maps otherwise, e.g. two maps in one value beside an empty one.)
    """
    n = len(values)
    if n < 24:
        head = bytes([0x80 + n])
    elif n < 1 << 16:
        head = b"\x99" + n.to_bytes(2, "big")
    else:
        head = b"\x9a" + n.to_bytes(4, "big")
    raw = head + b"".join(values)
    stream = io.BytesIO(raw)
    try:
        items = cbor2.CBORDecoder(stream, read_size=len(raw)).decode()
    except _DECODE_ERRORS:
        return None
    if stream.tell() != len(raw) or not set(map(type, items)) <= {dict}:
        return None
    return items  # type: ignore[no-any-return]


def _decode_each(values: Sequence[bytes], collection: str, what: str) -> list[dict[str, Any]]:
    loads = cbor2.loads
    out = []
    for value in values:
        try:
            out.append(loads(value))
        except _DECODE_ERRORS as exc:
            log.warning(
                "a stored document does not decode: %s; left out of the %s of %r",
                exc,
                what,
                collection,
            )
    return out


def scan(engine: Any, txn: StoreTxn, collection: str) -> list[dict[str, Any]]:
    """Every live document of a collection, in ``_id`` order (:func:`scan_batches` joined)."""
    out: list[dict[str, Any]] = []
    for docs in scan_batches(engine, txn, collection):
        out += docs
    return out


def scan_batches(engine: Any, txn: StoreTxn, collection: str) -> Iterator[list[dict[str, Any]]]:
    """Every live document of a collection, in ``_id`` order, a chunk at a time: each chunk
    is read and decoded when the previous one has been taken, so a reader that keeps only
    some documents of each (a query's matches) never holds them all."""
    for chunk in scan_raw_batches(engine, txn, collection, _CHUNK):
        yield decode_docs(chunk, collection, "scan")


def scan_raw(engine: Any, txn: StoreTxn, collection: str) -> list[bytes]:
    """Every live document of a collection, encoded, in ``_id`` order."""
    out: list[bytes] = []
    for chunk in scan_raw_batches(engine, txn, collection, _RAW_CHUNK):
        out += chunk
    return out


def scan_raw_batches(
    engine: Any, txn: StoreTxn, collection: str, size: int
) -> Iterator[list[bytes]]:
    """The live documents of a collection, encoded, in ``_id`` order, ``size`` at a time.

    Values are read in chunks without their keys (the iteration stays in C): keys
    are sorted, so when the cursor's key after a chunk is still in the collection
    every value of the chunk is; the chunk that crosses the end is trimmed by
    stepping back to the collection's last key. Only one chunk is held at a time
    (an export of a collection larger than memory reads it this way).
    """
    prefix = dockeys.coll_key(engine.prefix, collection)
    cursor = txn.cursor(engine.tables.docs)
    if not cursor.set_range(prefix):
        return
    values = cursor.iternext(keys=False, values=True)
    while True:
        chunk = list(itertools.islice(values, size))
        if not chunk:
            return
        if not cursor.key():  # the table ended: its last item was the chunk's last
            cursor.last()
        elif cursor.key().startswith(prefix):  # the cursor rests on the chunk's last item
            yield chunk
            continue
        beyond = 0
        while beyond < len(chunk) and not cursor.key().startswith(prefix):
            beyond += 1
            if not cursor.prev():
                break
        if beyond < len(chunk):
            yield chunk[: len(chunk) - beyond]
        return


def index_refs(
    engine: Any,
    txn: StoreTxn,
    collection: str,
    path: str,
    lo: bytes,
    hi: bytes,
    value_size: int | None = None,
) -> list[bytes]:
    """The encoded ``_id`` s of index entries whose ``value ‖ id`` bytes lie in ``[lo, hi)``.

    In key order: value order, then ``_id`` order. Sorting them sorts by ``_id``.
    ``value_size`` is the length of the encoded value when every entry in the range
    holds the same one (an equality); otherwise each key's value is measured.
    """
    base = dockeys.index_prefix(dockeys.coll_key(engine.prefix, collection), path)
    cursor = txn.cursor(engine.tables.index)
    refs: list[bytes] = []
    if not cursor.set_range(base + lo):
        return refs
    end = base + hi
    start = len(base)
    keys = cursor.iternext(keys=True, values=False)
    if value_size is not None:
        # the loop stays in C: keys while below ``end``, each cut after the value
        return list(map(itemgetter(slice(start + value_size, None)), takewhile(end.__gt__, keys)))
    for key in keys:
        if key >= end:
            break
        refs.append(key[value_end(key, start) :])
    return refs


def load_batches(
    engine: Any, txn: StoreTxn, collection: str, refs: Sequence[bytes]
) -> Iterator[list[dict[str, Any]]]:
    """The documents with these encoded ids (absent ones skipped), in the order given, a
    chunk at a time: each chunk of ids is fetched and decoded when the previous one has been
    taken, so the encoded values of all of them are never held together (fresh memory for
    them costs more than reading them)."""
    coll = dockeys.coll_key(engine.prefix, collection)
    # one cursor, keys in order: each get starts from the page the last one ended on
    get = txn.cursor(engine.tables.docs).get
    for start in range(0, len(refs), _CHUNK):
        found: list[Any] = list(map(get, map(coll.__add__, refs[start : start + _CHUNK])))
        if not all(found):  # an absent id (None); an empty value is kept, to be warned about
            found = [value for value in found if value is not None]
        yield decode_docs(found, collection)


_TYPES: dict[str, tuple[type, ...]] = {
    "number": (int, float),
    "string": (str,),
    "boolean": (bool,),
}
_MISSING = object()


def _getter(path: str) -> Callable[[dict[str, Any]], Any]:
    if "." not in path:
        return lambda doc: doc.get(path, _MISSING)
    parts = path.split(".")

    def get(doc: dict[str, Any]) -> Any:
        node: Any = doc
        for part in parts:
            if type(node) is not dict or part not in node:
                return _MISSING
            node = node[part]
        return node

    return get


_SYMBOLS = {Op.EQ: "==", Op.NE: "!=", Op.GT: ">", Op.GE: ">=", Op.LT: "<", Op.LE: "<="}


def _compiled(query: Query) -> Callable[[dict[str, Any]], bool] | None:
    """The AND of ``query.ands`` as one generated function; None when a criterion needs more.

    Per criterion, in order: a missing or null field is false (a false part decides the
    AND); a field of another type than the criterion's hands the document to
    :func:`~threadkit.db.query.matches`; otherwise the comparison decides. Values, paths
    and types are bound as names, never written into the code.
    """
    names: dict[str, Any] = {"M": _MISSING, "FULL": lambda doc: matches(query, doc)}
    lines = ["def match(doc):"]
    for i, c in enumerate(query.ands):
        if "." in c.path:
            names[f"G{i}"] = _getter(c.path)
            lines.append(f"    v{i} = G{i}(doc)")
        else:
            names[f"P{i}"] = c.path
            lines.append(f"    v{i} = doc.get(P{i}, M)")
        if c.op is Op.EXISTS:
            names[f"E{i}"] = c.value
            lines.append(f"    if (v{i} is not M) is not E{i}: return False")
            continue
        types = _TYPES.get(c.value_type)
        if types is None or (c.op is not Op.IN and c.op not in _SYMBOLS):
            return None
        names[f"T{i}"], names[f"C{i}"] = types, c.value
        lines.append(f"    if v{i} is M or v{i} is None: return False")
        lines.append(f"    if type(v{i}) not in T{i}: return FULL(doc)")
        if c.op is Op.IN:
            lines.append(f"    if not any(v{i} == item for item in C{i}): return False")
        else:
            lines.append(f"    if not (v{i} {_SYMBOLS[c.op]} C{i}): return False")
    lines.append("    return True")
    exec(compile("\n".join(lines), "<query matcher>", "exec"), names)
    match: Callable[[dict[str, Any]], bool] = names["match"]
    return match


def compile_matcher(query: Query) -> Callable[[dict[str, Any]], bool]:
    """A function equal to ``matches(query, doc)`` (same result, same error) for any document.

    Examples
    --------
    >>> from threadkit.db.query import where
    >>> match = compile_matcher(where("age").gt(30).and_("city").eq("Oslo"))
    >>> match({"_id": "a", "age": 31, "city": "Oslo"}), match({"_id": "b", "age": 3})
    (True, False)
    """
    if not query.ands and not query.ors:
        return lambda doc: True
    compiled = None if query.ors else _compiled(query)
    if compiled is None:
        return lambda doc: matches(query, doc)
    return compiled
