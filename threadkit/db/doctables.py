"""The document store's sub-database handles, and the table operations its parts share.

The keys are drawn in :mod:`.dockeys`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cbor2

from threadkit.db import dockeys
from threadkit.db.indexkeys import decode_id
from threadkit.errors import UnreadableDocument
from threadkit.store.txntypes import StoreTxn, StoreWriteTxn

if TYPE_CHECKING:
    from threadkit.store.repo import Repo

__all__ = ["DocTables", "delete_prefix", "ids_under", "load_doc", "open_db_tables", "put_entry"]

log = logging.getLogger("threadkit.db")


@dataclass(frozen=True, slots=True)
class DocTables:
    """Handles of the document store's sub-databases (see :mod:`.dockeys`).

    Attributes
    ----------
    dbs, colls, docs, inst, events, index, lost, losers, applied, order, access : Any
        LMDB database handles for the ``db_*`` tables of the same names.
    snaps, snapblocks : Any
        The snapshots known and the snapshot blocks held (:mod:`.snapshots`).
    """

    dbs: Any
    colls: Any
    docs: Any
    inst: Any
    events: Any
    index: Any
    lost: Any
    losers: Any
    applied: Any
    order: Any
    access: Any
    snaps: Any
    snapblocks: Any


def open_db_tables(repo: Repo) -> DocTables:
    """Open (creating when missing) the document store's tables in a repo."""
    return DocTables(*(repo.open_table(name.decode()) for name in dockeys.TABLES))


def load_doc(data: Any) -> dict[str, Any]:
    """A stored document; UnreadableDocument when its CBOR does not decode."""
    try:
        doc: dict[str, Any] = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError, RecursionError) as exc:
        # only a repository written before documents were held to the value model
        raise UnreadableDocument(f"a stored document does not decode: {exc}") from None
    return doc


def put_entry(txn: StoreWriteTxn, key: bytes, value: bytes, table: Any) -> None:
    """Put an index (or losers) entry; one too long for an LMDB key is left out, with a warning.

    Local writes refuse such values before they get here; a value received from a peer is
    kept in its document, but cannot be found through the index.
    """
    if len(key) > dockeys.MAX_KEY:
        log.warning("a value too long for an index entry is not indexed (%d bytes)", len(key))
        return
    txn.put(key, value, db=table)


def ids_under(txn: StoreTxn, table: Any, prefix: bytes) -> list[str]:
    """The instance ids encoded right after ``prefix`` in a table's keys."""
    cursor = txn.cursor(table)
    ids: list[str] = []
    if cursor.set_range(prefix):
        for key in cursor.iternext(keys=True, values=False):
            if not key.startswith(prefix):
                break
            ids.append(decode_id(bytes(key), len(prefix))[0])
    return ids


def delete_prefix(txn: StoreWriteTxn, table: Any, prefix: bytes) -> None:
    """Delete every entry of ``table`` whose key starts with ``prefix``."""
    cursor = txn.cursor(table)
    if not cursor.set_range(prefix):
        return
    while cursor.key().startswith(prefix):
        if not cursor.delete():
            break
