"""Read a collection's stored documents as encoded bytes, without decoding them.

The frame builder decodes whole batches at once (:mod:`.cbor_columns`), so it
wants the raw CBOR values straight from the LMDB cursor. These two readers go
through the engine's tables and :mod:`threadkit.db.layout`; they belong on the
engine as ``scan_raw`` / ``get_raw`` (this module is the stand-in).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from threadkit.db import layout

if TYPE_CHECKING:
    from threadkit.db.collection import Collection

__all__ = ["raw_documents", "raw_documents_by_id"]

_CHUNK = 8192


def raw_documents(coll: Collection) -> list[bytes]:
    """Every live document of the collection, encoded, in ``_id`` order (one snapshot).

    Values are read in chunks without their keys (the iteration stays in C): keys
    are sorted, so when the cursor's key after a chunk is still in the collection
    every value of the chunk is; the chunk that crosses the end is trimmed by
    stepping back to the collection's last key.
    """
    engine = coll.db.engine
    prefix = layout.coll_key(engine.prefix, coll.name)
    out: list[bytes] = []
    with coll.db._repo.transaction() as txn:
        cursor = txn.cursor(engine.tables.docs)
        if not cursor.set_range(prefix):
            return out
        values = cursor.iternext(keys=False, values=True)
        while True:
            chunk = list(itertools.islice(values, _CHUNK))
            if not chunk:
                return out
            if not cursor.key():  # the table ended: its last item was the chunk's last
                cursor.last()
            elif cursor.key().startswith(prefix):  # the cursor rests on the chunk's last item
                out += chunk
                continue
            beyond = 0
            while beyond < len(chunk) and not cursor.key().startswith(prefix):
                beyond += 1
                if not cursor.prev():
                    break
            out += chunk[: len(chunk) - beyond]
            return out


def raw_documents_by_id(coll: Collection, instance_ids: Sequence[str]) -> list[bytes | None]:
    """The encoded documents with these ids (None where absent), from one snapshot."""
    engine = coll.db.engine
    prefix = layout.coll_key(engine.prefix, coll.name)
    with coll.db._repo.transaction() as txn:
        return [txn.get(layout.doc_key(prefix, i), db=engine.tables.docs) for i in instance_ids]
