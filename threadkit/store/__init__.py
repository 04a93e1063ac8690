"""The LMDB environment of one repo: threads, logs, heads and records.

:class:`Repo` is the entry point; the modules behind it each do one job:

- :mod:`.repo`: the environment, its lifecycle and transactions (the facade);
- :mod:`.lock`: the ``flock`` that keeps a repo to one process;
- :mod:`.layout` and :mod:`.codec`: keys and values of the sub-databases;
- :mod:`.tables`: the sub-database handles; :mod:`.txntypes`: the transaction types;
- :mod:`.threads`, :mod:`.logs`: threads and logs;
- :mod:`.chain`: appending and accepting records; :mod:`.reads`: reading them back;
- :mod:`.models`: the frozen values handed out.

The key layout is drawn in :mod:`.repo` and ``docs/store.md``.
"""

from __future__ import annotations

from threadkit.store.models import (
    AcceptResult,
    Appended,
    Head,
    LogInfo,
    StoredRecord,
    ThreadInfo,
)
from threadkit.store.repo import DEFAULT_MAP_SIZE, Repo
from threadkit.store.txntypes import StoreTxn, StoreWriteTxn

__all__ = [
    "DEFAULT_MAP_SIZE",
    "AcceptResult",
    "Appended",
    "Head",
    "LogInfo",
    "Repo",
    "StoreTxn",
    "StoreWriteTxn",
    "StoredRecord",
    "ThreadInfo",
]
