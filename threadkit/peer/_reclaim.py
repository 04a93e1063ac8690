"""``peer.reclaim()``: giving back the disk that compaction and purges freed.

The repo's LMDB file is swapped for a compacted copy (:mod:`threadkit.store.reclaim`),
which closes and reopens the LMDB environment. What the peer does around it:

- a running network is **paused**: stopped before, started again after (on the same port
  when it is free); peers connected meanwhile reconnect as after any restart;
- the peer's databases are **closed and opened again**: a ``Database`` object taken before
  is closed (its listen feeds end) and using it raises
  :class:`~threadkit.errors.RepoClosed`; ``peer.get_db`` gives the new one.

Other processes cannot hold the repo (the repo lock), and threads of this process must
not use the peer while it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from threadkit.db.manager import Manager
from threadkit.store import reclaim as store_reclaim
from threadkit.store.reclaim import Reclaimed

if TYPE_CHECKING:
    from threadkit.peer import Peer

__all__ = ["reclaim"]


def reclaim(peer: Peer) -> Reclaimed:
    """Swap the peer's LMDB file for a compacted copy (see :meth:`threadkit.peer.Peer.reclaim`)."""
    repo, manager = peer.repo, peer.manager
    online = peer.online
    if online:
        peer.stop_network()
    manager.close()
    peer._manager = None
    try:
        return store_reclaim.reclaim(repo)
    finally:
        fresh = Manager(
            repo,
            manager.identity,
            database_class=manager.database_class,
            sharing=manager.sharing,
        )
        fresh.hlc.update(manager.hlc.last)
        peer._manager = fresh
        if online:
            peer.start_network()
