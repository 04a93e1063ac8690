"""Who may read (or write) a database's documents through a peer that holds its read key.

A peer holding the read key reads everything itself; a **daemon** reads for its API
clients, so it checks their role first: in a database with members that is not open,
reading needs the ``reader`` role (or above). An open database, and a database without
members, is read by anyone who reaches it (as in ThreadDB). The verdict is the members
fold's (:mod:`.roles`) over the entries this peer holds now. :func:`write_refusal` asks
the same of a write, for what a daemon does on a caller's behalf without an event of the
caller's (a snapshot the daemon signs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from threadkit.db import members
from threadkit.db.gate import WriteAs, resolve_writer
from threadkit.db.roles import Role
from threadkit.errors import PermissionDenied
from threadkit.store.logs import read_head

if TYPE_CHECKING:
    from threadkit.db.database import Database

__all__ = ["read_refusal", "write_refusal"]


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


def write_refusal(db: Database, writer: WriteAs) -> str:
    """Why ``writer`` may not write documents in ``db`` now ("" when it may).

    The verdict the members' rules would give this peer's next record by ``writer``
    (an attested client is judged with this peer, as its writes are), found without
    writing anything.

    Examples
    --------
    >>> import threadkit as tk
    >>> stranger = tk.Identity.generate()
    >>> with tk.Peer(memory=True) as peer:
    ...     write_refusal(peer.new_db("open"), stranger) == ""
    ...     write_refusal(peer.new_db("club", open=False), stranger)[-29:]
    True
    'none: may not write documents'
    """
    resolved = resolve_writer(writer, db.identity)
    stamp = members.stamp_int(db.hlc.now())
    with db._repo.transaction() as txn:
        counter = read_head(txn, db._repo.tables, db.id, db.log_id).counter + 1
        try:
            db.gate.check_local(txn, counter, "write", resolved, stamp, {})
        except PermissionDenied as exc:
            return str(exc)
    return ""
