"""What the daemon and ``tk.Client`` agree on over gRPC: the error table, metadata keys, limits.

The error table keeps go-threads' texts, which ThreadDB clients match on
(docs/wire-contract.md §2): the server turns an exception into a status with
:func:`status_for`, and the client turns a status back into a threadkit error with
:func:`error_from_status` (the class named in the :data:`ERROR_CLASS_KEY` trailer
first, then go-threads' texts, then the status code).

Examples
--------
>>> from threadkit import errors
>>> status_for(errors.CollectionExists("x"))[0].name
'ALREADY_EXISTS'
>>> type(error_from_text("collection not found: 'x'")).__name__
'CollectionNotFound'
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from threadkit import errors

__all__ = [
    "AUTHORIZATION_KEY",
    "ERROR_CLASS_KEY",
    "ERROR_TABLE",
    "LISTENING_KEY",
    "MAX_MESSAGE",
    "ErrorRow",
    "bearer",
    "error_from_status",
    "error_from_text",
    "message_size_options",
    "status_for",
]

MAX_MESSAGE = 16 * 1024 * 1024
"""Largest request or reply message, in bytes, both ways (bigger ones get RESOURCE_EXHAUSTED)."""

ERROR_CLASS_KEY = "x-threadkit-error"
"""Trailing metadata naming the threadkit error class of a failed call."""

LISTENING_KEY = "x-threadkit-listening"
"""Initial metadata Listen and Subscribe send (value ``"1"``) once they listen."""

AUTHORIZATION_KEY = "authorization"
"""Request metadata carrying ``bearer <token>``."""


@dataclass(frozen=True)
class ErrorRow:
    """One row of the error table.

    Attributes
    ----------
    kind : type
        The threadkit error class the server maps (and its subclasses).
    code : grpc.StatusCode
        The status the server ends the call with.
    text : str
        The message: the text alone when ``exact``, else ``"<text>: <detail>"``.
    exact : bool
        The message is ``text`` alone (the two go-threads texts matched whole).
    client_kind : type or None
        The class the client raises for a message starting with ``text`` (go-threads'
        texts only; None: the client goes by the status code).
    """

    kind: type[errors.ThreadkitError]
    code: grpc.StatusCode
    text: str
    exact: bool = False
    client_kind: type[errors.ThreadkitError] | None = None


_S = grpc.StatusCode
ERROR_TABLE: tuple[ErrorRow, ...] = (
    ErrorRow(
        errors.ThreadExists, _S.ALREADY_EXISTS, "db already exists", True, errors.ThreadExists
    ),
    ErrorRow(
        errors.CollectionExists,
        _S.ALREADY_EXISTS,
        "collection already registered",
        True,
        errors.CollectionExists,
    ),
    ErrorRow(errors.ThreadNotFound, _S.NOT_FOUND, "db not found", False, errors.DBNotFound),
    ErrorRow(
        errors.CollectionNotFound,
        _S.NOT_FOUND,
        "collection not found",
        False,
        errors.CollectionNotFound,
    ),
    ErrorRow(
        errors.InstanceNotFound, _S.NOT_FOUND, "instance not found", False, errors.InstanceNotFound
    ),
    ErrorRow(
        errors.UniqueViolation,
        _S.ALREADY_EXISTS,
        "unique constraint violation",
        False,
        errors.UniqueViolation,
    ),
    ErrorRow(
        errors.InstanceExists,
        _S.ALREADY_EXISTS,
        "can't create already existing instance",
        False,
        errors.InstanceExists,
    ),
    ErrorRow(
        errors.SchemaViolation,
        _S.INVALID_ARGUMENT,
        "instance doesn't correspond to schema",
        False,
        errors.SchemaViolation,
    ),
    ErrorRow(
        errors.PermissionDenied,
        _S.PERMISSION_DENIED,
        "permission denied",
        False,
        errors.PermissionDenied,
    ),
    ErrorRow(errors.InvalidToken, _S.UNAUTHENTICATED, "invalid token"),
    ErrorRow(errors.LimitExceeded, _S.RESOURCE_EXHAUSTED, "resource exhausted"),
    ErrorRow(errors.Timeout, _S.DEADLINE_EXCEEDED, "timeout"),
    ErrorRow(errors.NetworkError, _S.UNAVAILABLE, "network error"),
    ErrorRow(errors.InvalidInput, _S.INVALID_ARGUMENT, "invalid argument"),
    ErrorRow(errors.NotFound, _S.NOT_FOUND, "not found"),
    ErrorRow(errors.AlreadyExists, _S.ALREADY_EXISTS, "already exists"),
    ErrorRow(errors.TransactionError, _S.FAILED_PRECONDITION, "transaction error"),
    ErrorRow(errors.UnreadableDocument, _S.DATA_LOSS, "unreadable instance"),
)
"""Server side: the first row (exact rows before prefixed ones) whose class matches wins.
Client side: the first row with a ``client_kind`` whose text starts the message."""

_BY_CODE: dict[grpc.StatusCode, type[errors.ThreadkitError]] = {
    _S.UNAUTHENTICATED: errors.InvalidToken,
    _S.PERMISSION_DENIED: errors.PermissionDenied,
    _S.INVALID_ARGUMENT: errors.InvalidInput,
    _S.DEADLINE_EXCEEDED: errors.Timeout,
    _S.UNAVAILABLE: errors.NetworkError,
    _S.NOT_FOUND: errors.NotFound,
    _S.ALREADY_EXISTS: errors.AlreadyExists,
    _S.FAILED_PRECONDITION: errors.TransactionError,
}
"""The client's class for a status code when the message names none (RESOURCE_EXHAUSTED and
DATA_LOSS, which a daemon sends with the class trailer, fall back to ThreadkitError)."""

_SERVER_ORDER = tuple(r for r in ERROR_TABLE if r.exact) + tuple(
    r for r in ERROR_TABLE if not r.exact
)


def status_for(exc: Exception) -> tuple[grpc.StatusCode, str]:
    """The gRPC status and message for an exception (go-threads' texts first).

    Examples
    --------
    >>> status_for(errors.CollectionExists("x"))[1]
    'collection already registered'
    >>> status_for(errors.InstanceNotFound("no 'a'"))[1]
    "instance not found: no 'a'"
    """
    for row in _SERVER_ORDER:
        if isinstance(exc, row.kind):
            return row.code, row.text if row.exact else f"{row.text}: {exc}"
    if isinstance(exc, errors.ThreadkitError):
        return grpc.StatusCode.UNKNOWN, str(exc)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"


def error_from_text(message: str, code: grpc.StatusCode | None = None) -> errors.ThreadkitError:
    """The threadkit error for a daemon's error text (go-threads' texts are recognised).

    Examples
    --------
    >>> type(error_from_text("collection not found: 'x'")).__name__
    'CollectionNotFound'
    >>> type(error_from_text("nope", grpc.StatusCode.NOT_FOUND)).__name__
    'NotFound'
    """
    for row in ERROR_TABLE:
        if row.client_kind is not None and message.startswith(row.text):
            return row.client_kind(message)
    by_code = _BY_CODE.get(code) if code is not None else None
    return (by_code or errors.ThreadkitError)(message)


def error_from_status(exc: grpc.RpcError) -> errors.ThreadkitError:
    """The threadkit error for a failed call: the class its trailer names, else by its text."""
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else None
    message = details or str(exc)
    trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    for key, value in trailing or ():
        if key == ERROR_CLASS_KEY:
            kind = getattr(errors, str(value), None)
            if isinstance(kind, type) and issubclass(kind, errors.ThreadkitError):
                return kind(message)
    return error_from_text(message, code)


def bearer(token: str | None) -> list[tuple[str, str]]:
    """The call metadata carrying ``token`` (none without one).

    Examples
    --------
    >>> bearer("abc")
    [('authorization', 'bearer abc')]
    >>> bearer(None)
    []
    """
    return [(AUTHORIZATION_KEY, f"bearer {token}")] if token else []


def message_size_options(max_message: int = MAX_MESSAGE) -> list[tuple[str, int]]:
    """The channel/server options limiting messages to ``max_message`` bytes both ways."""
    return [
        ("grpc.max_receive_message_length", max_message),
        ("grpc.max_send_message_length", max_message),
    ]
