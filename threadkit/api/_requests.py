"""Request fields from Python values, and reply fields back, for ``tk.Client``'s remote classes."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from threadkit import errors
from threadkit.api.proto import threads_pb2 as pb
from threadkit.api.wire import error_from_text
from threadkit.db.config import Index
from threadkit.db.query import Query
from threadkit.db.txn import normalise_docs

__all__ = [
    "check",
    "collection_config",
    "doc_list",
    "dump_doc",
    "id_list",
    "info_dict",
    "needs_log",
    "query_json",
]


def dump_doc(doc: Any) -> bytes:
    """A document as compact UTF-8 JSON, as the API carries instances."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def doc_list(docs: tuple[Any, ...]) -> list[dict[str, Any]]:
    """Documents given as ``*docs`` (dicts, or lists of them), checked as the embedded API does."""

    return normalise_docs(docs)


def id_list(ids: Iterable[Any]) -> list[str]:
    """Instance ids given as ``*ids``, lists and tuples flattened."""
    out: list[str] = []
    for item in ids:
        if isinstance(item, list | tuple):
            out.extend(id_list(item))
        else:
            out.append(item)
    return out


def query_json(query: Query | None) -> bytes:
    """``queryJSON`` for a query (``{}``: every document); InvalidQuery for anything else."""

    if query is None:
        return b"{}"
    if not isinstance(query, Query):
        raise errors.InvalidQuery(f"expected a tk.Query or None, not {type(query).__name__}")
    return query.to_json().encode("utf-8")


def collection_config(
    name: str,
    schema: dict[str, Any] | None,
    indexes: Iterable[Any],
    write_validator: str | None,
    read_filter: str | None,
) -> pb.CollectionConfig:
    """A ``CollectionConfig`` message (indexes as paths, dicts or ``tk.Index``)."""

    wire = []
    for index in indexes:
        if isinstance(index, str):
            wire.append(pb.Index(path=index))
        elif isinstance(index, Index):
            wire.append(pb.Index(path=index.path, unique=index.unique))
        else:
            wire.append(pb.Index(path=index["path"], unique=bool(index.get("unique", False))))
    return pb.CollectionConfig(
        name=name,
        schema=dump_doc(schema) if schema is not None else b"",
        indexes=wire,
        writeValidator=write_validator or "",
        readFilter=read_filter or "",
    )


def info_dict(reply: Any) -> dict[str, Any]:
    """A GetCollectionInfo reply as ``Database.collection_info``'s dict."""
    return {
        "name": reply.name,
        "schema": json.loads(reply.schema) if reply.schema else {},
        "indexes": [{"path": i.path, "unique": i.unique} for i in reply.indexes],
        "write_validator": reply.writeValidator or None,
        "read_filter": reply.readFilter or None,
    }


def check(reply: Any) -> Any:
    """``reply``, or the error its ``transactionError`` names."""
    if reply.transactionError:
        raise error_from_text(reply.transactionError)
    return reply


def needs_log(what: str) -> errors.InvalidInput:
    """The error for a view that needs the record log, which the daemon's API does not serve."""
    return errors.InvalidInput(
        f"{what} needs the database's record log, which a daemon's API does not serve "
        "(tk.Client sees documents only); join the database from an embedded peer "
        "(tk.Peer().new_db_from_addr(addr, key) with db.info()) and call it there"
    )
