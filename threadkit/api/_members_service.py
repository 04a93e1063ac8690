"""``threadkit.pb.Members``: a database's members for API clients (docs/daemon.md).

Not part of ThreadDB's API: threadkit's own service on the same port, which ThreadDB's
clients never call. Each call acts for the caller's token identity, as an **attested**
event (the daemon's identity vouches that the client asked, docs/access.md): it counts
when both the client and the daemon hold the role it needs, and never in a database
that requires direct proof.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc

from threadkit import errors
from threadkit.api._servicing import Tokens, unary, wire_thread_id
from threadkit.api.proto import members_pb2 as mpb
from threadkit.api.proto import members_pb2_grpc as mpb_grpc
from threadkit.core.identity import PublicKey
from threadkit.db.gate import Attested

if TYPE_CHECKING:
    from threadkit.db.database import Database
    from threadkit.peer import Peer

__all__ = ["MembersService"]


def _key(text: str) -> PublicKey:
    if not text:
        raise errors.InvalidInput("identity: a public key is required")
    return PublicKey.from_string(text)


class MembersService(mpb_grpc.MembersServicer):
    """``threadkit.pb.Members`` over a peer."""

    def __init__(self, peer: Peer, tokens: Tokens) -> None:
        self.peer = peer
        self.tokens = tokens

    def _db(self, raw: bytes) -> Database:
        return self.peer.get_db(wire_thread_id(raw))

    @unary
    def Grant(self, request: Any, context: grpc.ServicerContext) -> mpb.MembersReply:
        """Give an identity a role, for the caller."""
        who = self.tokens.identity(context)
        db = self._db(request.dbID)
        db.grant(_key(request.identity), request.role, identity=Attested(who))
        return mpb.MembersReply()

    @unary
    def Revoke(self, request: Any, context: grpc.ServicerContext) -> mpb.MembersReply:
        """Take an identity's roles, for the caller."""
        who = self.tokens.identity(context)
        self._db(request.dbID).revoke(_key(request.identity), identity=Attested(who))
        return mpb.MembersReply()

    @unary
    def SetMode(self, request: Any, context: grpc.ServicerContext) -> mpb.MembersReply:
        """Open or close the database, or require direct proof, for the caller."""
        who = self.tokens.identity(context)
        db = self._db(request.dbID)
        if not request.HasField("open") and not request.HasField("direct"):
            raise errors.InvalidInput("SetMode sets open, direct or both")
        if request.HasField("open"):
            db.set_open(request.open, identity=Attested(who))
        if request.HasField("direct"):
            db.set_direct(request.direct, identity=Attested(who))
        return mpb.MembersReply()

    @unary
    def ListMembers(self, request: Any, context: grpc.ServicerContext) -> mpb.ListMembersReply:
        """Who holds which role, and whether the database is open."""
        self.tokens.identity(context)
        db = self._db(request.dbID)
        frame = db.members()
        return mpb.ListMembersReply(
            members=[
                mpb.ListMembersReply.Member(
                    identity=row.identity,
                    role=row.role,
                    grantedBy=row.granted_by,
                    when=int(row.when.value),
                )
                for row in frame.itertuples()
            ],
            access=db.access,
        )

    @unary
    def RoleOf(self, request: Any, context: grpc.ServicerContext) -> mpb.RoleOfReply:
        """The role an identity holds now."""
        self.tokens.identity(context)
        return mpb.RoleOfReply(role=self._db(request.dbID).role_of(_key(request.identity)))
