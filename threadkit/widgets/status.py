"""``PeerStatus``: a peer's connections, databases, last sync and recent errors."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from threadkit.errors import RepoClosed
from threadkit.widgets.base import LiveWidget, escape, panel

if TYPE_CHECKING:
    from threadkit.peer import Peer

__all__ = ["PeerStatus"]


class PeerStatus(LiveWidget):
    """A small dashboard of a peer, refreshed every ``every`` seconds.

    Parameters
    ----------
    peer : Peer
        The peer to show.
    every : float
        Seconds between refreshes.
    """

    def __init__(self, peer: Peer, every: float = 2.0) -> None:
        super().__init__(throttle=0.0, poll=every)
        self.peer = peer
        self.start()

    def _source_gone(self) -> bool:
        return bool(self.peer.closed)

    def render(self) -> str:
        """The dashboard's HTML."""
        peer = self.peer
        if peer.closed:
            raise RepoClosed("the peer was closed")
        stats = peer.sync_stats
        rows = [
            ("peer id", peer.id),
            ("online", "yes" if peer.online else "no (starts when a database is shared)"),
            ("connected peers", ", ".join(peer.peers()) or "none"),
            (
                "unreachable peers",
                ", ".join(
                    f"{u['peer_id']} ({u['failures']} failed dials, next in {u['retry_in']:.0f} s)"
                    for u in peer.status()["unreachable"]
                )
                or "none",
            ),
            ("databases", ", ".join(f"{db.name} ({db.id})" for db in peer.list_dbs()) or "none"),
        ]
        if stats is not None:
            last = (
                time.strftime("%H:%M:%S", time.localtime(stats.last_sync))
                if stats.last_sync
                else "never"
            )
            rows += [
                ("records pushed / received", f"{stats.pushed} / {stats.received}"),
                ("records rejected", str(stats.rejected)),
                ("pulls", str(stats.pulls)),
                ("last sync", last),
                ("recent errors", "<br>".join(escape(e) for e in stats.errors[-5:]) or "none"),
            ]
        cells = "".join(
            f"<tr><th style='text-align:left'>{escape(k)}</th>"
            f"<td>{v if k == 'recent errors' else escape(v)}</td></tr>"
            for k, v in rows
        )
        return panel("<b>peer</b>", f"<table><tbody>{cells}</tbody></table>")
