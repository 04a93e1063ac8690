"""Shared helpers of the store tests: writers, chains of records, raw table dumps."""

from __future__ import annotations

from dataclasses import dataclass, field

from threadkit.core import dagcbor
from threadkit.core.identity import Identity
from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.core.records import Record, create_record
from threadkit.store import Repo


def make_chain(
    log_key: Identity, key: ThreadKey, n: int, prev: bytes | None = None, tag: str = ""
) -> list[Record]:
    """``n`` records of one log, each linking to the one before, the first to ``prev``."""
    records = []
    for i in range(n):
        body = dagcbor.encode({"i": i, "tag": tag})
        record = create_record(body, log_key=log_key, key=key, prev=prev)
        records.append(record)
        prev = record.cid
    return records


@dataclass
class Writer:
    """A thread with one log: the ids and keys needed to make and store its records."""

    thread_id: ThreadID = field(default_factory=ThreadID.new)
    key: ThreadKey = field(default_factory=ThreadKey.new)
    log_key: Identity = field(default_factory=Identity.generate)

    @property
    def log_id(self) -> str:
        return self.log_key.public.peer_id

    def chain(self, n: int, prev: bytes | None = None, tag: str = "") -> list[Record]:
        return make_chain(self.log_key, self.key, n, prev, tag)

    def install(self, repo: Repo, own: bool = True) -> None:
        """Add the thread and the log to ``repo``."""
        if not repo.has_thread(self.thread_id):
            repo.add_thread(self.thread_id, self.key)
        repo.add_log(self.thread_id, self.log_key.public, self.log_key if own else None)


def dump(repo: Repo, *tables: str) -> dict[str, list[tuple[bytes, bytes]]]:
    """Every entry of the named store tables, byte for byte."""
    handles = repo._tables
    out = {}
    with repo.transaction() as txn:
        for name in tables:
            with txn.cursor(db=getattr(handles, name)) as cursor:
                out[name] = [(bytes(k), bytes(v)) for k, v in cursor]
    return out
