"""The values the store hands out: frozen dataclasses, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from threadkit.core.cid import cid_to_string
from threadkit.core.identity import Identity, PublicKey
from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.core.records import Record, RecordBlocks
from threadkit.errors import LogGap

__all__ = ["AcceptResult", "Appended", "Head", "LogInfo", "StoredRecord", "ThreadInfo"]


@dataclass(frozen=True, slots=True)
class ThreadInfo:
    """A thread held in the repo.

    Attributes
    ----------
    id : ThreadID
        The thread's id.
    key : ThreadKey
        Its service key, and its read key when this peer may read.
    name : str | None
        A local name, if one was given.
    created : datetime
        When the thread was added to this repo (UTC).
    """

    id: ThreadID
    key: ThreadKey
    name: str | None
    created: datetime


@dataclass(frozen=True, slots=True)
class Head:
    """The newest record of a log and the number of records in it.

    Attributes
    ----------
    cid : bytes | None
        CID of the newest record, None for an empty log.
    counter : int
        Records in the log; the head's position (the first record is 1).
    """

    cid: bytes | None
    counter: int


@dataclass(frozen=True, slots=True)
class LogInfo:
    """A log of a thread.

    Attributes
    ----------
    id : str
        The log id: the peer id of the log key (``12D3KooW…``).
    public : PublicKey
        The log key that signs every record.
    private : Identity | None
        The private log key, for this peer's own logs.
    addrs : tuple[str, ...]
        Multiaddrs where the log can be fetched.
    head : bytes | None
        CID of the newest record, None while the log is empty.
    counter : int
        Records in the log.
    """

    id: str
    public: PublicKey
    private: Identity | None
    addrs: tuple[str, ...]
    head: bytes | None
    counter: int


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record as stored: its blocks (still encrypted) and its place in a log.

    Attributes
    ----------
    cid : bytes
        The record's CID.
    prev : bytes | None
        CID of the record before it in its log, None for the first.
    blocks : RecordBlocks
        The four blocks; open them with :func:`threadkit.core.records.open_record`.
    thread_id : ThreadID
        The thread the record belongs to.
    log_id : str
        The log the record belongs to.
    counter : int
        The record's position in its log (the first is 1).
    """

    cid: bytes
    prev: bytes | None
    blocks: RecordBlocks
    thread_id: ThreadID
    log_id: str
    counter: int

    def __repr__(self) -> str:
        return f"StoredRecord({cid_to_string(self.cid)}, log={self.log_id}, counter={self.counter})"


@dataclass(frozen=True, slots=True)
class Appended:
    """A received record that :meth:`Repo.accept` added to its log.

    Attributes
    ----------
    record : Record
        The record.
    counter : int
        Its position in the log.
    """

    record: Record
    counter: int

    @property
    def cid(self) -> bytes:
        """The record's CID."""
        return self.record.cid


@dataclass(frozen=True, slots=True)
class AcceptResult:
    """What :meth:`Repo.accept` did with a delivery of received records.

    Attributes
    ----------
    thread_id : ThreadID
        The thread of the log.
    log_id : str
        The log.
    added : list[Appended]
        Records newly added, oldest-first, with their counters.
    head : Head
        The log's head after the delivery.
    gap : bytes | None
        CID of a missing record: some received records link back to it, and it
        is neither held nor received. None when every received record is now held.
    pending : list[Record]
        Received records not added because they lie beyond ``gap`` (in the order
        received). Nothing was stored for them; deliver them again once the gap
        is filled.
    """

    thread_id: ThreadID
    log_id: str
    added: list[Appended] = field(default_factory=list)
    head: Head = field(default_factory=lambda: Head(None, 0))
    gap: bytes | None = None
    pending: list[Record] = field(default_factory=list)

    def raise_for_gap(self) -> None:
        """Raise :class:`~threadkit.errors.LogGap` when some received records could not link.

        Raises
        ------
        LogGap
            With ``missing`` set to :attr:`gap`.
        """
        if self.gap is not None:
            raise LogGap(
                f"log {self.log_id} of thread {self.thread_id}: {len(self.pending)} received "
                f"record(s) wait for missing record {cid_to_string(self.gap)}",
                missing=self.gap,
            )
