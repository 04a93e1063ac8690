"""ThreadDB's remote APIs (``threads.pb.API`` and ``threads.net.pb.API``) over a ``tk.Peer``.

The wire contract is docs/wire-contract.md: our own .proto files in
``threadkit/api/proto`` carry ThreadDB's field numbers, so ThreadDB's clients and
``tk.Client`` speak to :class:`APIServer` alike.

Callers identify themselves with ``authorization: bearer <token>`` metadata, a token
from the GetToken challenge flow; the token's identity is the writer given to write
validators and the reader given to read filters. Without a token the host's own
identity is used (as in ThreadDB); a forged token or one from another host is
refused with UNAUTHENTICATED.

Examples
--------
>>> import threadkit as tk
>>> from threadkit.api.server import APIServer
>>> with tk.Peer(memory=True, network=False) as peer:
...     server = APIServer(peer, "127.0.0.1:0")
...     server.start()
...     server.port > 0
...     server.stop()
True
"""

from __future__ import annotations

import secrets
from concurrent import futures
from typing import TYPE_CHECKING, Any

import grpc

from threadkit import errors
from threadkit.api._db_service import DBService
from threadkit.api._lifecycle_service import LifecycleService
from threadkit.api._members_service import MembersService
from threadkit.api._net_service import NetService
from threadkit.api._servicing import Tokens
from threadkit.api.limits import APILimits, StreamGuard
from threadkit.api.proto import lifecycle_pb2_grpc as lpb_grpc
from threadkit.api.proto import members_pb2_grpc as mpb_grpc
from threadkit.api.proto import threads_pb2_grpc as pb_grpc
from threadkit.api.proto import threadsnet_pb2_grpc as netpb_grpc
from threadkit.api.wire import ERROR_CLASS_KEY, MAX_MESSAGE, message_size_options, status_for

if TYPE_CHECKING:
    from threadkit.peer import Peer

__all__ = ["DEFAULT_MAX_MESSAGE", "ERROR_CLASS_KEY", "APIServer", "status_for"]

DEFAULT_MAX_MESSAGE = MAX_MESSAGE
"""Largest request or reply message, in bytes (:data:`threadkit.api.wire.MAX_MESSAGE`)."""


class APIServer:
    """A gRPC server serving both APIs over a peer.

    Parameters
    ----------
    peer : Peer
        The peer whose databases are served.
    address : str
        ``host:port`` to listen on (port 0: any free port, see :attr:`port`).
    max_message : int
        Largest message in bytes, both ways.
    limits : APILimits, optional
        The stream budget (:class:`threadkit.api.limits.APILimits`; default its
        defaults). Each open stream holds one of the ``limits.workers`` threads; at most
        ``limits.max_streams`` do, so ``limits.unary_workers`` are always left for unary
        calls.
    members_only : bool
        NewDB makes databases with members (``open=False``) instead of open ones; either
        way the caller's token identity owns them (the daemon's ``membersOnly``).

    Attributes
    ----------
    proxy_secret : str
        A random secret for the daemon's own proxy: calls carrying it are counted under
        the client address the proxy names.
    """

    def __init__(
        self,
        peer: Peer,
        address: str = "127.0.0.1:6006",
        max_message: int = DEFAULT_MAX_MESSAGE,
        limits: APILimits | None = None,
        *,
        members_only: bool = False,
    ) -> None:
        self.peer = peer
        self.address = address
        self.limits = limits = limits or APILimits()
        self.proxy_secret = secrets.token_hex(16)
        self.guard = guard = StreamGuard(limits, self.proxy_secret)
        tokens = Tokens(peer)
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="tk-api"),
            options=[
                *message_size_options(max_message),
                ("grpc.so_reuseport", 0),
                ("grpc.server_handshake_timeout_ms", int(limits.header_timeout * 1000)),
            ],
        )
        add_db: Any = pb_grpc.add_APIServicer_to_server
        add_net: Any = netpb_grpc.add_APIServicer_to_server
        add_db(DBService(peer, tokens, guard, members_only=members_only), self._server)
        add_net(NetService(peer, tokens, guard), self._server)
        add_members: Any = mpb_grpc.add_MembersServicer_to_server
        add_members(MembersService(peer, tokens), self._server)
        add_lifecycle: Any = lpb_grpc.add_LifecycleServicer_to_server
        add_lifecycle(LifecycleService(peer, tokens), self._server)
        self.port = 0

    def start(self) -> None:
        """Bind and start serving; raises NetworkError when the address cannot be bound."""
        try:
            self.port = self._server.add_insecure_port(self.address)
        except RuntimeError as exc:
            raise errors.NetworkError(f"cannot listen on {self.address}: {exc}") from None
        if self.port == 0:
            raise errors.NetworkError(f"cannot listen on {self.address}")
        self._server.start()

    def stop(self, grace: float | None = 1.0) -> None:
        """Stop serving; open streams are cancelled after ``grace`` seconds."""
        self._server.stop(grace).wait()
        self.guard.stop()
