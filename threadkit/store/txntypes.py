"""The types of the LMDB transactions the store hands to the layers above it.

``lmdb`` ships its own stubs; these aliases name the two ways the store's
transactions are used, so a signature says which one a function needs.
Both are ``lmdb.Transaction`` at run time (LMDB itself tells them apart: a
write to a read-only transaction raises).

Examples
--------
>>> from threadkit.store import Repo, StoreTxn
>>> def count(txn: StoreTxn) -> int:
...     return int(txn.stat()["entries"])
>>> with Repo.temporary() as repo, repo.transaction() as txn:
...     count(txn) >= 0
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import lmdb

__all__ = ["StoreTxn", "StoreWriteTxn"]

StoreTxn: TypeAlias = "lmdb.Transaction[Any]"
"""A read (or write) transaction of a repo's environment (:meth:`.Repo.transaction`)."""

StoreWriteTxn: TypeAlias = "lmdb.Transaction[Any]"
"""A write transaction of a repo's environment (``Repo.transaction(write=True)``)."""
