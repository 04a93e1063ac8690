"""ThreadDB's Net API on a peer: threads without a database, their records and tokens.

``tk.Peer`` has these methods (``peer.get_thread(...)``, ``peer.create_record(...)``…) as
``threadsd`` has its Net API; the daemon serves them over gRPC (docs/wire-contract.md).
They work on the peer's repo and, for what goes to other peers, its thread service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from threadkit.core.cid import cid_from_string, cid_to_string
from threadkit.core.identity import Identity
from threadkit.core.ids import ThreadID as ThreadIDType
from threadkit.core.ids import Variant
from threadkit.core.keys import ThreadKey as ThreadKeyType
from threadkit.core.records import open_record
from threadkit.core.tokens import TokenIssuer, new_challenge
from threadkit.errors import DBNotFound, InvalidInput
from threadkit.net.subscription import RecordFeed

if TYPE_CHECKING:
    from threadkit.core.ids import ThreadID
    from threadkit.core.keys import ThreadKey
    from threadkit.db.manager import Manager
    from threadkit.store.repo import Repo

__all__ = ["ThreadsAPI"]


class _PeerParts(Protocol):
    """What the Net API methods use of a :class:`threadkit.peer.Peer`."""

    identity: Identity

    @property
    def repo(self) -> Repo: ...

    @property
    def manager(self) -> Manager: ...

    @property
    def _service(self) -> Any: ...

    def _online_service(self) -> Any: ...

    def get_thread(self, thread_id: ThreadID | str) -> dict[str, Any]: ...


class ThreadsAPI:
    """The Net API methods of :class:`threadkit.peer.Peer` (a mixin)."""

    def get_thread(self: _PeerParts, thread_id: ThreadID | str) -> dict[str, Any]:
        """A thread's logs (id, public key, addresses, head, counter, own), key and addresses."""
        if isinstance(thread_id, str):
            thread_id = ThreadIDType.from_string(thread_id)
        info = self.repo.get_thread(thread_id)
        logs = [
            {
                "id": log.id,
                "public": str(log.public),
                "addrs": list(log.addrs),
                "head": cid_to_string(log.head) if log.head else None,
                "counter": log.counter,
                "own": log.private is not None,
            }
            for log in self.repo.list_logs(thread_id)
        ]
        addrs = self._service.thread_addrs(thread_id) if self._service is not None else []
        return {"id": str(thread_id), "key": str(info.key), "logs": logs, "addrs": addrs}

    def create_thread(
        self: _PeerParts, thread_id: ThreadID | None = None, key: ThreadKey | None = None
    ) -> dict[str, Any]:
        """ThreadDB's CreateThread: a thread with no database, and this peer's log in it.

        Records go in with :meth:`create_record`; other peers join with :meth:`add_thread`.
        """
        service = self._online_service()
        thread_id = thread_id or ThreadIDType.new(Variant.RAW)
        service.new_thread(thread_id, key or ThreadKeyType.new())
        return self.get_thread(thread_id)

    def add_thread(
        self: _PeerParts, addr: str, key: ThreadKey, timeout: float | None = None
    ) -> dict[str, Any]:
        """ThreadDB's AddThread: keep a thread another peer serves (no database); pull its logs."""
        thread_id = self._online_service().add_thread(addr, key, timeout)
        return self.get_thread(thread_id)

    def delete_thread(self: _PeerParts, thread_id: ThreadID | str) -> None:
        """Delete a thread (and its database, if it has one) from this repo."""
        if isinstance(thread_id, str):
            thread_id = ThreadIDType.from_string(thread_id)
        try:
            self.manager.get_db(thread_id)
        except DBNotFound:
            self.repo.delete_thread(thread_id)
            return
        self.manager.delete_db(thread_id)

    def create_record(self: _PeerParts, thread_id: ThreadID | str, body: bytes) -> Any:
        """ThreadDB's CreateRecord, for threads without a database: ``body`` is a DAG-CBOR node.

        A database's own records are made by its transactions; writing raw records into
        its log would give its peers bodies they cannot apply, so that is refused.
        """
        if isinstance(thread_id, str):
            thread_id = ThreadIDType.from_string(thread_id)
        try:
            self.manager.get_db(thread_id)
        except DBNotFound:
            return self._online_service().create_record(thread_id, bytes(body))
        raise InvalidInput("this thread is a database: write through its collections")

    def add_record(self: _PeerParts, thread_id: ThreadID | str, log_id: str, record: Any) -> None:
        """ThreadDB's AddRecord: a record made elsewhere with its log's keys (checked first)."""
        if isinstance(thread_id, str):
            thread_id = ThreadIDType.from_string(thread_id)
        self._online_service().add_record(thread_id, log_id, record)

    def get_record(self: _PeerParts, thread_id: ThreadID | str, cid: bytes | str) -> Any:
        """A record of a thread, checked (``threadkit.core.records.Record``)."""
        if isinstance(thread_id, str):
            thread_id = ThreadIDType.from_string(thread_id)
        raw = cid_from_string(cid) if isinstance(cid, str) else cid
        stored = self.repo.get_record(raw)
        key = self.repo.get_thread(thread_id).key
        public = self.repo.get_log(thread_id, stored.log_id).public
        return open_record(stored.blocks, service_key=key, log_key=public, cid=stored.cid)

    def subscribe(
        self: _PeerParts, thread_ids: list[ThreadID] | None = None, maxsize: int = 10_000
    ) -> Any:
        """An iterator of ``(thread_id, log_id, record)`` for new records, local and received.

        Close it with ``.close()``; a slow reader gets a ``Lagged`` marker, never a silent drop.
        """

        service = self._online_service()
        return RecordFeed(service, set(thread_ids) if thread_ids else None, maxsize)

    def get_token(self: _PeerParts, identity: Identity) -> str:
        """A token for ``identity`` issued by this peer (the GetToken challenge, done locally)."""
        challenge = new_challenge()
        issuer = TokenIssuer(self.identity)
        return issuer.issue(str(identity.public), challenge, identity.sign(challenge))
