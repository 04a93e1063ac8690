"""threadkit: ThreadDB for Python notebooks.

A server-less, peer-to-peer, event-sourced document database on libp2p, with a
notebook toolkit around it. Public names are re-exported here and loaded on
first use, so ``import threadkit`` stays cheap.

Examples
--------
>>> import threadkit as tk
>>> tid = tk.ThreadID.new(tk.Variant.RAW)
>>> tk.ThreadID.from_string(str(tid)) == tid
True
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from threadkit import errors

__version__ = "0.1.0"

# a library's records are shown only where the application set logging up: without this,
# Python's last-resort handler prints warnings into whatever notebook cell ran last
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "HLC",
    "Action",
    "Client",
    "Collection",
    "DBInfo",
    "Database",
    "Event",
    "Identity",
    "Index",
    "Lagged",
    "Peer",
    "PublicKey",
    "Query",
    "ThreadAddr",
    "ThreadID",
    "ThreadKey",
    "Timestamp",
    "Variant",
    "__version__",
    "datasets",
    "errors",
    "where",
    "widgets",
]

_LAZY = {
    "ThreadID": "threadkit.core.ids",
    "Variant": "threadkit.core.ids",
    "ThreadKey": "threadkit.core.keys",
    "Identity": "threadkit.core.identity",
    "PublicKey": "threadkit.core.identity",
    "HLC": "threadkit.core.clock",
    "Timestamp": "threadkit.core.clock",
    "ThreadAddr": "threadkit.core.addr",
    "Peer": "threadkit.peer",
    "Client": "threadkit.api.client",
    "Database": "threadkit.views",
    "DBInfo": "threadkit.db.database",
    "Collection": "threadkit.views",
    "Index": "threadkit.db.config",
    "Action": "threadkit.db.events",
    "Event": "threadkit.db.listen",
    "Lagged": "threadkit.db.listen",
    "Query": "threadkit.db.query",
    "where": "threadkit.db.query",
}

if TYPE_CHECKING:
    from threadkit.core.addr import ThreadAddr
    from threadkit.core.clock import HLC, Timestamp
    from threadkit.core.identity import Identity, PublicKey
    from threadkit.core.ids import ThreadID, Variant
    from threadkit.core.keys import ThreadKey
    from threadkit.db.config import Index
    from threadkit.db.database import DBInfo
    from threadkit.db.events import Action
    from threadkit.db.listen import Event, Lagged
    from threadkit.db.query import Query, where
    from threadkit.peer import Peer
    from threadkit.views import Collection, Database


def __getattr__(name: str) -> Any:
    if name in ("widgets", "datasets"):
        return importlib.import_module(f"threadkit.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'threadkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
