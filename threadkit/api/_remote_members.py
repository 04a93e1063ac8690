"""A database's members through a threadkit daemon: :class:`RemoteMembers`.

The calls go to threadkit's own ``threadkit.pb.Members`` service (not ThreadDB's API;
ThreadDB's daemon answers UNIMPLEMENTED). The daemon makes each change an event
**attested** for the caller's token identity (docs/access.md): it counts when both the
caller and the daemon hold the role it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from threadkit.api.proto import members_pb2 as mpb
from threadkit.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

    from threadkit.api.client import Client
    from threadkit.core.identity import Identity, PublicKey

__all__ = ["RemoteMembers"]


class RemoteMembers:
    """The members methods of :class:`~threadkit.api.client.RemoteDatabase`
    (``grant``, ``revoke``, ``set_open``, ``set_direct``, ``members``, ``role_of``,
    ``access``), as the embedded database's."""

    client: Client
    _raw: bytes

    def _members_call(self, method: str, request: Any, identity: Any = None) -> Any:
        return self.client.call(method, request, identity, api=self.client.members_api)

    @property
    def access(self) -> str:
        """``"members"`` when the database has an owner and roles, ``"open"`` otherwise."""
        reply = self._members_call("ListMembers", mpb.ListMembersRequest(dbID=self._raw))
        return str(reply.access)

    def grant(
        self,
        public_key: PublicKey | str,
        role: str,
        *,
        identity: Identity | PublicKey | str | None = None,
    ) -> None:
        """Give ``public_key`` a role (``"reader"``, ``"writer"``, ``"admin"``), acting as
        ``identity`` (default the client's token); PermissionDenied without admin."""
        request = mpb.GrantRequest(dbID=self._raw, identity=_text(public_key), role=role)
        self._members_call("Grant", request, identity)

    def revoke(
        self, public_key: PublicKey | str, *, identity: Identity | PublicKey | str | None = None
    ) -> None:
        """Take every role from ``public_key`` (see ``Database.revoke``)."""
        request = mpb.RevokeRequest(dbID=self._raw, identity=_text(public_key))
        self._members_call("Revoke", request, identity)

    def set_open(self, open: bool, *, identity: Identity | PublicKey | str | None = None) -> None:
        """Open the database or close it again (see ``Database.set_open``)."""
        if not isinstance(open, bool):
            raise InvalidInput(f"open must be True or False, got {open!r}")
        self._members_call("SetMode", mpb.SetModeRequest(dbID=self._raw, open=open), identity)

    def set_direct(
        self, direct: bool, *, identity: Identity | PublicKey | str | None = None
    ) -> None:
        """Require direct proof (see ``Database.set_direct``). Through a daemon only
        ``False`` can count, and only while direct proof is not required already: the
        change is itself attested."""
        if not isinstance(direct, bool):
            raise InvalidInput(f"direct must be True or False, got {direct!r}")
        request = mpb.SetModeRequest(dbID=self._raw, direct=direct)
        self._members_call("SetMode", request, identity)

    def members(self) -> pd.DataFrame:
        """Who holds which role: ``identity``, ``role``, ``granted_by``, ``when`` (UTC)."""
        import pandas as pd

        reply = self._members_call("ListMembers", mpb.ListMembersRequest(dbID=self._raw))
        rows = [
            {"identity": m.identity, "role": m.role, "granted_by": m.grantedBy,
             "when": pd.Timestamp(m.when, unit="ns", tz="UTC").to_pydatetime()}
            for m in reply.members
        ]  # fmt: skip
        return pd.DataFrame(rows, columns=["identity", "role", "granted_by", "when"])

    def role_of(self, public_key: PublicKey | str) -> str:
        """The role ``public_key`` holds now (``"none"`` without one)."""
        request = mpb.RoleOfRequest(dbID=self._raw, identity=_text(public_key))
        return str(self._members_call("RoleOf", request).role)


def _text(public_key: object) -> str:
    from threadkit.core.identity import Identity, PublicKey

    if isinstance(public_key, Identity):
        return str(public_key.public)
    if isinstance(public_key, PublicKey | str):
        return str(public_key)
    raise InvalidInput(f"expected a public key, got {type(public_key).__name__}")
