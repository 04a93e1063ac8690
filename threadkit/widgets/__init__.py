"""Live notebook widgets (ipywidgets): event feeds, auto-refreshing tables, peer status.

Widgets update from a background thread, never from the kernel's own loop, so a cell
that shows one returns at once. The threads stop by themselves when the database or
peer they watch is closed, and the widget keeps showing its last state: end a notebook
with ``peer.close()``. ``w.stop()`` stops updates the same way; ``w.close()`` also
removes the widget's views.

Examples
--------
>>> import threadkit as tk  # doctest: +SKIP
>>> tk.widgets.LiveTable(people)  # doctest: +SKIP
>>> tk.widgets.ListenFeed(db)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["ListenFeed", "LiveTable", "PeerStatus"]

if TYPE_CHECKING:
    from threadkit.widgets.feed import ListenFeed
    from threadkit.widgets.status import PeerStatus
    from threadkit.widgets.table import LiveTable


def __getattr__(name: str) -> Any:
    if name == "ListenFeed":
        from threadkit.widgets.feed import ListenFeed

        return ListenFeed
    if name == "LiveTable":
        from threadkit.widgets.table import LiveTable

        return LiveTable
    if name == "PeerStatus":
        from threadkit.widgets.status import PeerStatus

        return PeerStatus
    raise AttributeError(f"module 'threadkit.widgets' has no attribute {name!r}")
