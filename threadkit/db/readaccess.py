"""Who may read a database's documents through a peer that holds its read key.

A peer holding the read key reads everything itself; a **daemon** reads for its API
clients, so it checks their role first: in a database with members that is not open,
reading needs the ``reader`` role (or above). An open database, and a database without
members, is read by anyone who reaches it (as in ThreadDB). The verdict is the members
fold's (:mod:`.roles`) over the entries this peer holds now.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from threadkit.db import members
from threadkit.db.roles import Role

if TYPE_CHECKING:
    from threadkit.db.database import Database

__all__ = ["read_refusal"]


def read_refusal(db: Database, reader: str) -> str:
    """Why ``reader`` (an identity key string) may not read ``db`` ("" when it may).

    Examples
    --------
    >>> import threadkit as tk
    >>> stranger = str(tk.Identity.generate().public)
    >>> with tk.Peer(memory=True) as peer:
    ...     read_refusal(peer.new_db("open"), stranger) == ""
    ...     read_refusal(peer.new_db("club", open=False), stranger)[-18:]
    True
    'none: may not read'
    """
    with db._repo.transaction() as txn:
        if not db.gate.has_members(txn):
            return ""
        entries = list(members.iter_entries(txn, db._tables.access, db.prefix))
    result = members.fold_entries(entries)
    if result is None or result.members.open:
        return ""
    role = result.members.role(reader)
    return "" if role >= Role.READER else f"{reader} is {role.name.lower()}: may not read"
