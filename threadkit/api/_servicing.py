"""The plumbing every servicer of :mod:`threadkit.api.server` shares.

Handler wrappers that turn threadkit errors into gRPC statuses (:func:`unary`,
:func:`streaming`, :func:`peer_call`), the GetToken flow and the caller's identity
(:class:`Tokens`), and the conversions of request fields (ids, keys, JSON documents,
queries) both APIs use. The status of each error is :func:`threadkit.api.wire.status_for`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import grpc

from threadkit import errors
from threadkit.api.wire import AUTHORIZATION_KEY, ERROR_CLASS_KEY, status_for
from threadkit.core.identity import PublicKey
from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.core.tokens import TokenIssuer, new_challenge
from threadkit.db.query import Query

if TYPE_CHECKING:
    from threadkit.peer import Peer

__all__ = [
    "Abort",
    "Tokens",
    "abort",
    "dump_doc",
    "dump_docs",
    "load_docs",
    "load_query",
    "peer_call",
    "status_error",
    "streaming",
    "txn_error",
    "unary",
    "wire_thread_id",
    "wire_thread_key",
]

log = logging.getLogger("threadkit.api")

_T = TypeVar("_T")


def txn_error(exc: Exception) -> str:
    """The ``transactionError`` text of an exception (the status message it would get)."""
    return status_for(exc)[1]


class Abort(errors.ThreadkitError):
    """Raised inside a handler to end the call with a status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def status_error(code: grpc.StatusCode, message: str) -> errors.ThreadkitError:
    """An error that ends the call with exactly ``code`` and ``message`` (no error trailer)."""
    return Abort(code, message)


def abort(context: grpc.ServicerContext, exc: Exception) -> NoReturn:
    """End the call with the status for ``exc`` (its class in the error trailer)."""
    if isinstance(exc, Abort):
        code, message = exc.code, exc.message
    else:
        code, message = status_for(exc)
        if code is grpc.StatusCode.INTERNAL:
            log.exception("API call failed", exc_info=exc)
        elif isinstance(exc, errors.ThreadkitError):
            # tk.Client raises the same class as an embedded peer would
            context.set_trailing_metadata(((ERROR_CLASS_KEY, type(exc).__name__),))
    context.abort(code, message)
    raise errors.ThreadkitError("context.abort returned")  # it always raises


def unary(method: Callable[[Any, Any, grpc.ServicerContext], _T]) -> Any:
    """Wrap a unary handler: threadkit errors become gRPC statuses."""

    def handler(self: Any, request: Any, context: grpc.ServicerContext) -> _T:
        try:
            return method(self, request, context)
        except Exception as exc:
            abort(context, exc)

    handler.__name__ = method.__name__
    handler.__doc__ = method.__doc__
    return handler


def peer_call(method: Callable[[Any, Any, grpc.ServicerContext], _T]) -> Any:
    """Wrap a unary handler that waits for another peer: within ``limits.peer_calls``."""

    def handler(self: Any, request: Any, context: grpc.ServicerContext) -> _T:
        with self.guard.peer_call():
            return method(self, request, context)

    handler.__name__ = method.__name__
    handler.__doc__ = method.__doc__
    return handler


def streaming(method: Callable[[Any, Any, grpc.ServicerContext], Iterator[_T]]) -> Any:
    """Wrap a streaming handler the same way, within the stream budget (``self.guard``).

    The call takes a stream slot first (LimitExceeded, RESOURCE_EXHAUSTED, when none is
    free); a client stream's messages each have an idle deadline.
    """

    def handler(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[_T]:
        try:
            release = self.guard.enter(context)
            try:
                if hasattr(request, "__next__"):
                    request = self.guard.watch(request, context)
                yield from method(self, request, context)
            finally:
                release()
        except grpc.RpcError:
            return  # the client went away
        except Exception as exc:
            abort(context, exc)

    handler.__name__ = method.__name__
    handler.__doc__ = method.__doc__
    return handler


def wire_thread_key(raw: bytes) -> ThreadKey:
    """A request's thread key; InvalidThreadKey when empty."""
    if not raw:
        raise errors.InvalidThreadKey("threadKey is empty")
    return ThreadKey.from_bytes(bytes(raw))


def wire_thread_id(raw: bytes) -> ThreadID:
    """A request's ``dbID``/``threadID``; InvalidThreadID when empty."""
    if not raw:
        raise errors.InvalidThreadID("dbID is empty")
    return ThreadID.from_bytes(raw)


def load_docs(instances: Any) -> list[dict[str, Any]]:
    """A request's JSON instances as dicts; InvalidDocument for anything but JSON objects."""
    docs = []
    for raw in instances:
        try:
            doc = json.loads(bytes(raw).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise errors.InvalidDocument(f"instance is not valid JSON: {exc}") from None
        except RecursionError:
            raise errors.InvalidDocument("instance is nested too deeply to parse") from None
        if not isinstance(doc, dict):
            raise errors.InvalidDocument("an instance must be a JSON object")
        docs.append(doc)
    return docs


def dump_doc(doc: Any) -> bytes:
    """A document as strict JSON (no NaN, no lone surrogate), UnreadableDocument if it has none."""
    try:
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        shown = doc.get("_id") if isinstance(doc, dict) else None
        raise errors.UnreadableDocument(
            f"instance {shown!r} holds a value JSON cannot carry ({type(exc).__name__}: "
            f"{str(exc)[:120]}); it was stored before threadkit checked values"
        ) from None


def dump_docs(docs: Any) -> list[bytes]:
    """Documents as JSON, skipping (with a warning) any that JSON cannot carry."""
    out = []
    for doc in docs:
        try:
            out.append(dump_doc(doc))
        except errors.UnreadableDocument as exc:
            log.warning("skipped in a reply: %s", exc)
    return out


def load_query(raw: bytes) -> Any:
    """A request's ``queryJSON`` as a Query (None when empty)."""

    if not raw or not raw.strip():
        return None
    return Query.from_json(raw)


class Tokens:
    """The GetToken challenge flow and the caller's identity from request metadata."""

    def __init__(self, peer: Peer) -> None:
        self.host = peer.identity.public
        self.issuer = TokenIssuer(peer.identity)

    def challenge_flow(self, requests: Iterator[Any], reply: Callable[..., Any]) -> Iterator[Any]:
        """The GetToken exchange: key, then challenge, then signature, then token."""
        first = next(requests, None)
        if first is None or first.WhichOneof("payload") != "key":
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "first message must carry the key")
        challenge = new_challenge()
        yield reply(challenge=challenge)
        second = next(requests, None)
        if second is None or second.WhichOneof("payload") != "signature":
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "second message must carry a signature")
        try:
            token = self.issuer.issue(first.key, challenge, second.signature)
        except errors.InvalidToken as exc:
            raise Abort(grpc.StatusCode.UNAUTHENTICATED, str(exc)) from None
        yield reply(token=token)

    def identity(self, context: grpc.ServicerContext) -> PublicKey:
        """The caller: its bearer token's identity, or the host's without one."""
        auth = ""
        for key, value in context.invocation_metadata():
            if key.lower() == AUTHORIZATION_KEY:
                auth = value if isinstance(value, str) else value.decode("latin-1")
        if not auth:
            return self.host
        scheme, _, token = auth.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Abort(grpc.StatusCode.UNAUTHENTICATED, "authorization must be 'bearer <token>'")
        try:
            return self.issuer.verify(token.strip())
        except errors.InvalidToken as exc:
            raise Abort(grpc.StatusCode.UNAUTHENTICATED, str(exc)) from None
