"""The one error tree of threadkit.

Every exception that threadkit raises on purpose is a subclass of
:class:`ThreadkitError`. Errors about bad input are also :class:`ValueError`,
errors about something missing are also :class:`LookupError`, so code that
already catches the built-in kinds keeps working.

::

    ThreadkitError
    ├── InvalidInput (ValueError)                 bad input from a caller or a peer
    │   ├── InvalidThreadID                       bad multibase, version, variant or length
    │   ├── InvalidThreadKey                      a thread key that is not 32 or 64 bytes
    │   ├── InvalidKey                            a malformed public or private identity key
    │   ├── InvalidAddress                        a malformed multiaddr or thread address
    │   ├── TooManyLogs                           a log beyond the most a thread may have
    │   ├── InvalidToken                          a JWT malformed, forged, expired or not ours
    │   ├── InvalidTimestamp                      a hybrid-logical-clock stamp out of range
    │   ├── InvalidName                           a DB or collection name ThreadDB's rule refuses
    │   ├── InvalidSchema                         not a JSON Schema, or `_id` is not a string
    │   ├── InvalidIndex                          an index path that is not a string/number/bool field
    │   ├── InvalidQuery                          a malformed query, a type mismatch, a bad sort path
    │   ├── InvalidDocument                       not a JSON object, or a bad `_id`
    │   ├── InvalidScript                         a validator or filter that does not compile
    │   ├── InvalidArchive                        a CAR file truncated, malformed, or not a threadkit export
    │   ├── InvalidMigration                      a bad migration transform, or documents it cannot carry
    │   ├── InvalidSnapshot                       a snapshot malformed, forged, untrusted or unknown
    │   ├── WriteRejected                         a write refused; the transaction leaves no trace
    │   │   ├── SchemaViolation                   the document does not satisfy the schema
    │   │   ├── ScriptRejected                    the write validator did not return true
    │   │   ├── UniqueViolation                   a unique index already holds the value
    │   │   ├── InstanceExists                    create of an `_id` that exists
    │   │   └── PermissionDenied                  the writer lacks the role the write needs
    │   ├── ScriptError                           a script threw, ran too long or used too much memory
    │   │   ├── ScriptTimeout
    │   │   └── ScriptMemoryError
    │   └── RecordError                           a record or one of its blocks fails a check
    │       ├── MalformedRecord                   not a valid node: truncated, wrong shape, bad CBOR
    │       │   └── OversizedRecord               larger than the size limit
    │       ├── IntegrityError                    bytes do not hash to the CID that names them
    │       ├── DecryptionError                   wrong service or read key, or tampered ciphertext
    │       ├── SignatureError                    missing or forged signature
    │       │   └── WriterProofError              a writer proof forged, or for another thread, log or content
    │       └── ChainError                        `prev` does not link, or a counter does not follow
    ├── StoreError                                the repository on disk
    │   ├── RepoInUse                             another process holds the repo
    │   ├── RepoClosed                            the repo was used after close()
    │   ├── RepoFormatError                       a repo written in a format this version cannot read
    │   ├── DiskFull                              a commit failed for want of disk space; nothing written
    │   ├── NotFound (LookupError)                something looked up that is not there
    │   │   ├── ThreadNotFound
    │   │   │   └── DBNotFound
    │   │   ├── LogNotFound
    │   │   ├── BlockNotFound
    │   │   ├── HistoryCompacted                  history before a snapshot a compaction dropped
    │   │   ├── CollectionNotFound
    │   │   └── InstanceNotFound
    │   ├── AlreadyExists                         something created twice
    │   │   ├── ThreadExists
    │   │   ├── LogExists
    │   │   └── CollectionExists
    │   ├── LogGap                                received records do not reach the local head
    │   └── UnreadableDocument                    a stored document outside the JSON value model
    ├── TransactionError                          misuse of a transaction
    │   ├── ReadOnlyTransaction                   a write inside a read transaction
    │   └── TransactionClosed                     use after commit or discard
    ├── FeedClosed                                a listen feed read after it was closed
    ├── LimitExceeded                             a server's budget is used up (open streams, connections)
    ├── NetworkError                              talking to another peer failed
    │   ├── PeerUnreachable                       no connection to the peer could be made
    │   ├── ConnectionLost                        a stream reset or closed under a read or a write
    │   ├── NodeClosed                            a network node used before start() or after stop()
    │   ├── WrongThread                           a node method called from a thread where it cannot run
    │   └── ProtocolError                         a malformed, refused or unexpected message
    │       └── FrameTooLarge                     a frame over the size limit, refused unread
    └── Timeout (TimeoutError)                    a blocking call ran out of time
        └── SyncTimeout                           db.sync: some peers did not answer in time

Examples
--------
>>> import threadkit as tk
>>> try:
...     tk.ThreadID.from_string("not an id")
... except tk.errors.InvalidThreadID as err:
...     print(type(err).__name__)
InvalidThreadID
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "BlockNotFound",
    "ChainError",
    "CollectionExists",
    "CollectionNotFound",
    "ConnectionLost",
    "DBNotFound",
    "DecryptionError",
    "DiskFull",
    "FeedClosed",
    "FrameTooLarge",
    "HistoryCompacted",
    "InstanceExists",
    "InstanceNotFound",
    "IntegrityError",
    "InvalidAddress",
    "InvalidArchive",
    "InvalidDocument",
    "InvalidIndex",
    "InvalidInput",
    "InvalidKey",
    "InvalidMigration",
    "InvalidName",
    "InvalidQuery",
    "InvalidSchema",
    "InvalidScript",
    "InvalidSnapshot",
    "InvalidThreadID",
    "InvalidThreadKey",
    "InvalidTimestamp",
    "InvalidToken",
    "LimitExceeded",
    "LogExists",
    "LogGap",
    "LogNotFound",
    "MalformedRecord",
    "NetworkError",
    "NodeClosed",
    "NotFound",
    "OversizedRecord",
    "PeerUnreachable",
    "PermissionDenied",
    "ProtocolError",
    "ReadOnlyTransaction",
    "RecordError",
    "RepoClosed",
    "RepoFormatError",
    "RepoInUse",
    "SchemaViolation",
    "ScriptError",
    "ScriptMemoryError",
    "ScriptRejected",
    "ScriptTimeout",
    "SignatureError",
    "StoreError",
    "SyncTimeout",
    "ThreadExists",
    "ThreadNotFound",
    "ThreadkitError",
    "Timeout",
    "TooManyLogs",
    "TransactionClosed",
    "TransactionError",
    "UniqueViolation",
    "UnreadableDocument",
    "WriteRejected",
    "WriterProofError",
    "WrongThread",
]


class ThreadkitError(Exception):
    """Root of every error threadkit raises on purpose."""


class InvalidInput(ThreadkitError, ValueError):
    """Input from a caller or a peer that threadkit refuses."""


class InvalidThreadID(InvalidInput):
    """A thread id that is not valid multibase, or has a bad version, variant or length."""


class InvalidThreadKey(InvalidInput):
    """A thread key that is not 32 (service only) or 64 (service and read) bytes."""


class InvalidKey(InvalidInput):
    """A malformed identity key: wrong protobuf framing, type or length."""


class InvalidAddress(InvalidInput):
    """A malformed multiaddr, or a thread address missing its peer or thread part."""


class TooManyLogs(InvalidInput):
    """A log refused: the thread already has the most logs it may have (nothing was stored)."""


class InvalidToken(InvalidInput):
    """A token that is malformed, badly signed, expired, or issued by another host."""


class InvalidTimestamp(InvalidInput):
    """A hybrid-logical-clock stamp that is negative or too large to encode."""


class InvalidName(InvalidInput):
    """A DB or collection name that does not match ``^[A-Za-z0-9]+(?:[-][A-Za-z0-9]+)*$``."""


class InvalidSchema(InvalidInput):
    """A collection schema that is not valid JSON Schema or whose ``_id`` is not a string."""


class InvalidIndex(InvalidInput):
    """An index path that does not lead to a string, number or boolean field."""


class InvalidQuery(InvalidInput):
    """A malformed query, a comparison across JSON types, or a bad sort path."""


class InvalidDocument(InvalidInput):
    """A document that is not a JSON object, or whose ``_id`` is not a string."""


class InvalidScript(InvalidInput):
    """A write validator or read filter that does not compile."""


class InvalidArchive(InvalidInput):
    """A CAR file that is truncated, malformed, or not the export of a threadkit database."""


class InvalidMigration(InvalidInput):
    """A schema migration whose transform is malformed, or that existing documents fail."""


class InvalidSnapshot(InvalidInput):
    """A snapshot that is malformed, forged, not trusted, or not known here (docs/lifecycle.md)."""


class WriteRejected(InvalidInput):
    """A write refused by the collection's rules; its transaction leaves no trace."""


class SchemaViolation(WriteRejected):
    """A document that does not satisfy the collection's JSON Schema."""


class ScriptRejected(WriteRejected):
    """A write the collection's validator did not accept (it did not return ``true``)."""


class UniqueViolation(WriteRejected):
    """A write that would put a value twice into a unique index."""


class InstanceExists(WriteRejected):
    """A create of an ``_id`` that already exists."""


class PermissionDenied(WriteRejected):
    """A write or a change of the rules whose writer lacks the role it needs.

    ThreadDB's clients see ``permission denied``; see docs/access.md for the roles.
    """


class ScriptError(InvalidInput):
    """A validator or filter that threw an exception."""


class ScriptTimeout(ScriptError):
    """A validator or filter interrupted at its time limit."""


class ScriptMemoryError(ScriptError):
    """A validator or filter stopped at its memory limit."""


class RecordError(InvalidInput):
    """A record, or one of the blocks it links, fails a check."""


class MalformedRecord(RecordError):
    """A node that does not decode: truncated, not CBOR, or the wrong shape."""


class OversizedRecord(MalformedRecord):
    """A node larger than the size limit, refused before it is decoded."""


class IntegrityError(RecordError):
    """Bytes that do not hash to the CID that names them."""


class DecryptionError(RecordError):
    """Ciphertext that does not open under the given key (wrong key or tampered bytes)."""


class SignatureError(RecordError):
    """A record whose signature is missing or does not verify under the log key."""


class ChainError(RecordError):
    """A record whose ``prev`` does not link to the record before it."""


class WriterProofError(SignatureError):
    """A writer proof that does not verify: forged, malformed, or made for another
    thread, log or content (``threadkit.core.writerproof``)."""


class StoreError(ThreadkitError):
    """A problem with the repository on disk."""


class RepoInUse(StoreError):
    """Another process holds the repository open."""


class RepoClosed(StoreError):
    """The repository was used after it was closed."""


class RepoFormatError(StoreError):
    """A repository whose on-disk format version this threadkit cannot read."""


class DiskFull(StoreError):
    """A write failed because the repo's filesystem is out of space.

    The transaction left no trace (on disk or in memory); once space is freed the
    repo works as before.
    """


class NotFound(StoreError, LookupError):
    """Something looked up in the repository is not there."""


class ThreadNotFound(NotFound):
    """No thread with that id in the repository."""


class DBNotFound(ThreadNotFound):
    """No database with that id in the repository."""


class CollectionNotFound(NotFound):
    """No collection with that name in the database."""


class InstanceNotFound(NotFound):
    """No instance with that ``_id`` in the collection (or hidden by the read filter)."""


class LogNotFound(NotFound):
    """No log with that id in the thread."""


class BlockNotFound(NotFound):
    """No block with that CID in the repository."""


class HistoryCompacted(NotFound):
    """History before a snapshot asked of a database that dropped it (``db.compact``)."""


class AlreadyExists(StoreError):
    """Something created twice."""


class ThreadExists(AlreadyExists):
    """A thread with that id is already in the repository."""


class LogExists(AlreadyExists):
    """A log with that id is already in the thread."""


class CollectionExists(AlreadyExists):
    """A collection with that name is already in the database."""


class UnreadableDocument(StoreError):
    """A stored document holding a value outside the JSON value model, which a reader that
    passes documents on as JSON (the daemon) cannot send.

    Both doors (local writes and received records) refuse such values, so only a
    repository written by an older version can hold one. Readers of many documents skip
    it with a warning; a read of that one document raises this error.
    """


class TransactionError(ThreadkitError):
    """A transaction used the wrong way."""


class ReadOnlyTransaction(TransactionError):
    """A write attempted inside a read transaction."""


class TransactionClosed(TransactionError):
    """A transaction used after it was committed or discarded."""


class FeedClosed(ThreadkitError):
    """A listen feed read after it was closed."""


class LimitExceeded(ThreadkitError):
    """A server's budget is used up: too many open streams or connections, in total or
    from one client (the daemon answers RESOURCE_EXHAUSTED). Nothing was done; try again
    once other calls have ended."""


class NetworkError(ThreadkitError):
    """Talking to another peer failed."""


class PeerUnreachable(NetworkError):
    """No connection to the peer could be made."""


class ProtocolError(NetworkError):
    """A malformed, refused or unexpected message.

    Attributes
    ----------
    code : str
        Machine-readable reason: ``malformed``, ``version``, ``auth``, ``unknown_thread``,
        ``unknown_log``, ``refused``, …
    """

    def __init__(self, message: str, code: str = "malformed") -> None:
        super().__init__(message)
        self.code = code


class FrameTooLarge(ProtocolError):
    """A frame larger than the size limit, refused before its body is read."""

    def __init__(self, message: str, code: str = "too_large") -> None:
        super().__init__(message, code)


class ConnectionLost(NetworkError):
    """A stream or its connection was reset or closed under a read or a write."""


class NodeClosed(NetworkError):
    """A network node used before ``start()`` or after ``stop()``."""


class WrongThread(NetworkError):
    """A network node's method called from a thread where it cannot run.

    A blocking call (``call``, ``stop``) made from the node's own trio thread would deadlock
    it: code on that thread awaits the async API instead. The async API (``connect``,
    ``open_stream``, …) runs only on that thread: other threads go through ``call``/``submit``.
    """


class Timeout(ThreadkitError, TimeoutError):
    """A blocking call ran out of time."""


class SyncTimeout(Timeout):
    """``db.sync``: some peers did not answer (in time, or at all).

    Attributes
    ----------
    unanswered : dict of str to str
        Peer id → why (``"no answer within 10 s"``, or the dial error).
    summary : Any
        What moved with the peers that did answer (a ``threadkit.db.sync.SyncSummary``).
    """

    def __init__(self, message: str, unanswered: dict[str, str], summary: object) -> None:
        super().__init__(message)
        self.unanswered = dict(unanswered)
        self.summary = summary


class LogGap(StoreError):
    """Received records do not link back to the local head of their log.

    Attributes
    ----------
    missing : bytes | None
        The CID (bytes) of the first record that is needed but not held.
    """

    def __init__(self, message: str, missing: bytes | None = None) -> None:
        super().__init__(message)
        self.missing = missing
