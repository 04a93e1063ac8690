"""Hand records from one replica of a database to another, in-process.

This is what the network layer does between peers, without the network: read a
log's records from one repo, check each with ``open_record`` against the log's
key, and give them to the other replica through ``Database.apply_records`` (the
seam, docs/seam.md). Useful for demos, tests and teaching.

Examples
--------
>>> import threadkit as tk
>>> with tk.Peer(memory=True) as a, tk.Peer(memory=True) as b:
...     db_a = a.new_db("shared")
...     notes = db_a.new_collection("Notes")
...     _ = notes.create({"text": "hello"})
...     db_b = replica(b, db_a)
...     _ = handoff(db_a, db_b)
...     [d["text"] for d in db_b["Notes"].find()]
['hello']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeVar

from threadkit.core.records import Record, open_record

if TYPE_CHECKING:
    from threadkit.core.ids import ThreadID
    from threadkit.core.keys import ThreadKey
    from threadkit.db.database import Database

__all__ = ["DatabaseMaker", "handoff", "know_log", "log_records", "replica"]

_D = TypeVar("_D", bound="Database")
_D_co = TypeVar("_D_co", bound="Database", covariant=True)


class DatabaseMaker(Protocol[_D_co]):
    """Where a replica is made: a peer (``tk.Peer``) or a database manager."""

    def new_db(
        self,
        name: str | None = None,
        thread_id: ThreadID | None = None,
        key: ThreadKey | None = None,
    ) -> _D_co:
        """Create a database."""
        ...


def replica(peer: DatabaseMaker[_D], origin: Database) -> _D:
    """A replica of ``origin`` in ``peer``: the same thread id and key, with its own log."""
    return peer.new_db(origin.name, thread_id=origin.id, key=origin.key)


def log_records(db: Database, log_id: str | None = None, after: int = 0) -> list[Record]:
    """A log's records after counter ``after`` (default: the db's own), checked, oldest-first."""
    log_id = log_id or db.log_id
    public = db._repo.get_log(db.id, log_id).public
    return [
        open_record(s.blocks, service_key=db.key, log_key=public, cid=s.cid)
        for s in db._repo.read_log(db.id, log_id, after=after)
    ]


def know_log(target: Database, source: Database) -> None:
    """Make ``target`` know ``source``'s own log (what GetLogs/PushLog do on the wire)."""
    if not any(info.id == source.log_id for info in target._repo.list_logs(target.id)):
        target._repo.add_log(target.id, source.log_key.public)


def handoff(source: Database, target: Database) -> int:
    """Give ``target`` the records of ``source``'s own log it does not have; returns how many."""
    know_log(target, source)
    have = target._repo.get_head(target.id, source.log_id).counter
    records = log_records(source, after=have)
    if records:
        target.apply_records(source.log_id, records)
    return len(records)
