"""What ``db.sync()`` reports: records pulled from and pushed to each peer.

The work is done by the network side (:mod:`threadkit.net.sync`); these are the types a
database hands back, so they live on this side of the seam.

Examples
--------
>>> summary = SyncSummary({"12D3KooWpeer": PeerSync("12D3KooWpeer", pulled=3, pushed=1)})
>>> summary.pulled, summary.pushed
(3, 1)
>>> summary
SyncSummary(1 peer: 3 records pulled, 1 pushed)
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PeerSync", "SyncSummary"]


@dataclass(frozen=True)
class PeerSync:
    """One peer's part of a sync.

    Attributes
    ----------
    peer_id : str
        The peer.
    pulled : int
        Records that came in from it.
    pushed : int
        Records it lacked and was sent.
    """

    peer_id: str
    pulled: int
    pushed: int


@dataclass(frozen=True)
class SyncSummary:
    """What a ``db.sync()`` moved, per peer that answered.

    Attributes
    ----------
    peers : dict of str to PeerSync
        The peers that answered, by peer id (empty: the database has no other peers).
    """

    peers: dict[str, PeerSync] = field(default_factory=dict)

    @property
    def pulled(self) -> int:
        """Records pulled, from all peers."""
        return sum(p.pulled for p in self.peers.values())

    @property
    def pushed(self) -> int:
        """Records pushed, to all peers."""
        return sum(p.pushed for p in self.peers.values())

    def __repr__(self) -> str:
        count = len(self.peers)
        return (
            f"SyncSummary({count} peer{'' if count == 1 else 's'}: "
            f"{self.pulled} records pulled, {self.pushed} pushed)"
        )
