"""The network side of a peer: its node and thread service, and what it gives databases.

:class:`_Net` holds the libp2p node, the thread service and LAN discovery apart from
the :class:`threadkit.peer.Peer` (so the finalizer that stops them does not keep the
peer alive); :class:`_PeerSharing` is the :class:`threadkit.db.sharing.Sharing` seam a
peer passes its databases at construction.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from threadkit.core.identity import peer_id_bytes
from threadkit.errors import InvalidInput, NetworkError

if TYPE_CHECKING:
    from threadkit.db.database import Database as StoreDatabase
    from threadkit.db.sync import SyncSummary
    from threadkit.peer import Peer
    from threadkit.store.repo import Repo


def _replicator_policy(replicator: object) -> bool | frozenset[str]:
    """``Peer(replicator=...)`` checked: a bool, or the peer ids allowed (each checked).

    Raises
    ------
    InvalidInput
        Neither a bool nor an iterable of strings (``InvalidKey``: not a peer id).
    """
    if isinstance(replicator, bool):
        return replicator
    if isinstance(replicator, str | bytes) or not hasattr(replicator, "__iter__"):
        raise InvalidInput(
            f"replicator must be True, False or a collection of peer ids, got {replicator!r}"
        )
    allowed = frozenset(replicator)
    for peer_id in allowed:
        peer_id_bytes(peer_id)  # InvalidKey for anything but a peer id
    return allowed


class _PeerSharing:
    """What a peer gives its databases (:class:`threadkit.db.sharing.Sharing`).

    ``db.info()`` and ``db.sync()`` start the network when the peer may run one;
    a repr asks with ``start=False`` and gets ``[]`` while the peer is offline.
    """

    def __init__(self, peer: Peer, net: _Net, *, allowed: bool) -> None:
        self._peer = weakref.ref(peer)  # the peer owns its databases, not the reverse
        self._net = net
        self._allowed = allowed

    def _service(self, start: bool) -> Any:
        if self._net.service is None and start and self._allowed:
            peer = self._peer()
            if peer is not None and not peer.closed:
                peer.start_network()
        return self._net.service

    def addrs(self, db: StoreDatabase, *, start: bool) -> list[str]:
        """Addresses to join ``db`` at (``[]`` while offline and not ``start``)."""
        service = self._service(start)
        return list(service.thread_addrs(db.id)) if service is not None else []

    def sync(self, db: StoreDatabase, timeout: float | None) -> SyncSummary:
        """Sync ``db`` with its peers, starting the network first if needed."""
        service = self._service(True) if self._allowed else None
        if service is None:
            raise NetworkError(f"database {db.name!r} cannot sync: its peer runs without a network")
        summary: SyncSummary = service.sync(db.id, timeout)
        return summary


class _Net:
    """The network side of a peer (kept apart so the finalizer does not hold the peer)."""

    def __init__(self) -> None:
        self.node: Any = None
        self.service: Any = None
        self.lan: Any = None

    def stop(self) -> None:
        service, node, lan = self.service, self.node, self.lan
        self.service = self.node = self.lan = None
        if lan is not None:
            lan.stop()
        if service is not None:
            service.stop()
        if node is not None:
            node.stop()


def _close_quietly(repo: Repo, net: _Net) -> None:
    net.stop()
    repo.close()
