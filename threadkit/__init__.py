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
from typing import TYPE_CHECKING, Any

from threadkit import errors

__version__ = "0.1.0"

__all__ = [
    "HLC",
    "Identity",
    "PublicKey",
    "ThreadID",
    "ThreadKey",
    "Timestamp",
    "Variant",
    "__version__",
    "errors",
]

_LAZY = {
    "ThreadID": "threadkit.core.ids",
    "Variant": "threadkit.core.ids",
    "ThreadKey": "threadkit.core.keys",
    "Identity": "threadkit.core.identity",
    "PublicKey": "threadkit.core.identity",
    "HLC": "threadkit.core.clock",
    "Timestamp": "threadkit.core.clock",
}

if TYPE_CHECKING:
    from threadkit.core.clock import HLC, Timestamp
    from threadkit.core.identity import Identity, PublicKey
    from threadkit.core.ids import ThreadID, Variant
    from threadkit.core.keys import ThreadKey


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'threadkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
