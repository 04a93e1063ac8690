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
    │   ├── InvalidToken                          a JWT malformed, forged, expired or not ours
    │   ├── InvalidTimestamp                      a hybrid-logical-clock stamp out of range
    │   └── RecordError                           a record or one of its blocks fails a check
    │       ├── MalformedRecord                   not a valid node: truncated, wrong shape, bad CBOR
    │       │   └── OversizedRecord               larger than the size limit
    │       ├── IntegrityError                    bytes do not hash to the CID that names them
    │       ├── DecryptionError                   wrong service or read key, or tampered ciphertext
    │       ├── SignatureError                    missing or forged signature
    │       └── ChainError                        `prev` does not link, or a counter does not follow
    └── StoreError                                the repository on disk
        ├── RepoInUse                             another process holds the repo
        ├── RepoClosed                            the repo was used after close()
        ├── NotFound (LookupError)                a thread, log or block that is not there
        │   ├── ThreadNotFound
        │   ├── LogNotFound
        │   └── BlockNotFound
        ├── AlreadyExists                         a thread or log created twice
        │   ├── ThreadExists
        │   └── LogExists
        └── LogGap                                received records do not reach the local head

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
    "DecryptionError",
    "IntegrityError",
    "InvalidAddress",
    "InvalidInput",
    "InvalidKey",
    "InvalidThreadID",
    "InvalidThreadKey",
    "InvalidTimestamp",
    "InvalidToken",
    "LogExists",
    "LogGap",
    "LogNotFound",
    "MalformedRecord",
    "NotFound",
    "OversizedRecord",
    "RecordError",
    "RepoClosed",
    "RepoInUse",
    "SignatureError",
    "StoreError",
    "ThreadExists",
    "ThreadNotFound",
    "ThreadkitError",
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


class InvalidToken(InvalidInput):
    """A token that is malformed, badly signed, expired, or issued by another host."""


class InvalidTimestamp(InvalidInput):
    """A hybrid-logical-clock stamp that is negative or too large to encode."""


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


class StoreError(ThreadkitError):
    """A problem with the repository on disk."""


class RepoInUse(StoreError):
    """Another process holds the repository open."""


class RepoClosed(StoreError):
    """The repository was used after it was closed."""


class NotFound(StoreError, LookupError):
    """Something looked up in the repository is not there."""


class ThreadNotFound(NotFound):
    """No thread with that id in the repository."""


class LogNotFound(NotFound):
    """No log with that id in the thread."""


class BlockNotFound(NotFound):
    """No block with that CID in the repository."""


class AlreadyExists(StoreError):
    """Something created twice."""


class ThreadExists(AlreadyExists):
    """A thread with that id is already in the repository."""


class LogExists(AlreadyExists):
    """A log with that id is already in the thread."""


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
