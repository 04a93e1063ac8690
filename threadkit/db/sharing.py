"""The seam between a database and what shares it: its addresses, and sync with its peers.

The document store does not know the network. A database is given one
:class:`Sharing` object at construction (the peer passes its own, see
``threadkit.peer``); ``db.info()`` and ``db.sync()`` ask it, and a repr asks it
only for what is already known (``start=False``), so displaying a database never
starts the network.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from threadkit.db.database import Database
    from threadkit.db.sync import SyncSummary

__all__ = ["Sharing"]


class Sharing(Protocol):
    """What the network and the peer give a database."""

    def addrs(self, db: Database, *, start: bool) -> list[str]:
        """Addresses other peers can join ``db`` at.

        Parameters
        ----------
        db : Database
            The database.
        start : bool
            Start the network first when it is not running (``db.info()``); with
            False nothing is started and an offline peer gives ``[]`` (reprs).
        """
        ...

    def sync(self, db: Database, timeout: float | None) -> SyncSummary:
        """Pull from and push to every peer of ``db`` (starting the network if needed).

        Raises
        ------
        NetworkError
            The peer runs without a network.
        SyncTimeout
            Some peers did not answer in time.
        """
        ...
