"""``tk.Peer``: the embedded peer — a repo, its databases, and (later) its network side.

Examples
--------
>>> import threadkit as tk
>>> with tk.Peer(memory=True) as peer:
...     db = peer.new_db("notes")
...     people = db.new_collection("Persons")
...     ids = people.create({"name": "Alice"})
...     people.find_by_id(ids[0])["name"]
'Alice'
"""

from __future__ import annotations

import atexit
import contextlib
import html
import os
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from threadkit.core.addr import tcp_port
from threadkit.core.identity import Identity, PublicKey
from threadkit.core.ids import ThreadID as ThreadIDType
from threadkit.core.keys import ThreadKey as ThreadKeyType
from threadkit.db.archive import MAX_ARCHIVE_SIZE, export_thread, import_db
from threadkit.db.bootstrap import trusted_keys
from threadkit.db.manager import Manager
from threadkit.errors import DBNotFound, InvalidInput, InvalidThreadKey, NetworkError, RepoClosed
from threadkit.net.addrs import is_loopback, parse_announce
from threadkit.net.connmgr import ConnLimits
from threadkit.net.pull import PullSettings
from threadkit.net.relay import parse_relays
from threadkit.peer._network import _close_quietly, _Net, _PeerSharing, _replicator_policy
from threadkit.peer._reclaim import reclaim as _reclaim
from threadkit.peer._threads import ThreadsAPI
from threadkit.store.reclaim import Reclaimed
from threadkit.store.repo import Repo
from threadkit.views import Database

if TYPE_CHECKING:
    from collections.abc import Iterable

    from threadkit.core.ids import ThreadID
    from threadkit.core.keys import ThreadKey
    from threadkit.db.database import Database as StoreDatabase

__all__ = ["DEFAULT_REPO", "Peer"]

DEFAULT_REPO = Path(os.environ.get("THREADKIT_REPO", str(Path.home() / ".threadkit"))).expanduser()
"""Where ``tk.Peer()`` keeps its repo (``$THREADKIT_REPO`` or ``~/.threadkit``)."""

_IDENTITY_META = "peer.identity"
_PORT_META = "peer.port"


class Peer(ThreadsAPI):
    """An embedded peer.

    Parameters
    ----------
    path : str or Path, optional
        The repo directory (default ``~/.threadkit``; a leading ``~`` is the home
        directory, as in a shell). One process at a time may open a repo: a second
        gets ``RepoInUse``.
    memory : bool
        Use a temporary repo, deleted on close (not synced to disk: faster).
    listen : list of str
        Multiaddrs to listen on once the network starts (default loopback, any port).
        ``/ip4/0.0.0.0/tcp/0`` accepts other machines; it is advertised as the host's
        interface addresses, loopback last (docs/networking.md).
    announce : list of str, optional
        Addresses to advertise instead (``/ip4/<public ip>/tcp/<forwarded port>``) for a
        host behind a port forward: ``db.info().addrs`` then lists exactly these.
    network : bool or None
        True starts the libp2p side now; False never starts it; None (default) starts it
        when first needed (sharing or joining a database) or at once when the repo holds
        databases shared with other peers.
    pull_interval : float
        Seconds between periodic pulls that repair missed pushes (0: none); the first
        one comes that long after the network starts. ``pulling`` sets more.
    pulling : PullSettings, optional
        The periodic pull in full (:class:`threadkit.net.pull.PullSettings`: threadsd's
        ``netPulling*`` settings); replaces ``pull_interval`` when given.
    pubsub : bool
        Also fan new records out over GossipSub on each thread's topic (besides the
        direct pushes, which stay the reliable path).
    replicator : bool or iterable of str
        Accept threads other peers hand over with ``add_replicator`` (service key only:
        this peer stores and relays their records but cannot read them). True accepts
        them from any peer, False (default) from none, a collection of peer ids
        (``12D3KooW…``) only from those peers; others are refused and nothing is stored.
    timeout : float
        Seconds a network call may take before it raises ``tk.errors.Timeout``.
    relays : list of str, optional
        Circuit relays to reach this peer through, for a peer behind a NAT (addresses
        ``…/p2p/<relay id>`` of peers opened with ``relay_service=True``, e.g.
        ``threadkit daemon --relay`` on a host with a public address). The peer keeps a
        reservation on each and advertises ``<relay>/p2p-circuit/p2p/<its id>`` instead
        of its own (private) addresses (docs/networking.md).
    relay_service : bool
        Serve circuit relay v2: let peers behind NATs reserve a slot here and be
        reached through this peer.
    mdns : bool or None
        LAN discovery by mDNS: announce this peer on the LAN and find the others there,
        so :meth:`join` can join a database by thread id and key alone. None (default):
        on when the peer listens beyond loopback (``/ip4/0.0.0.0/tcp/0``, a LAN
        address), off for loopback-only peers and when the environment variable
        ``THREADKIT_MDNS`` is ``0`` (the test suite sets it).
    identity : Identity, optional
        The identity this peer writes as (its writer proofs are signed by it, and it owns
        the databases it creates), to use one identity across devices. Default: the
        repo's own key, which is also the peer's network key.
    conn_limits : ConnLimits, optional
        The libp2p connection manager's low and high watermarks and grace period
        (:class:`threadkit.net.connmgr.ConnLimits`). Default (None): threadsd's 100,
        400 and 20 s. Above the high watermark, idle connections past their grace
        period are closed down to the low watermark; replication dials again when it
        needs a closed peer.

    Raises
    ------
    InvalidInput
        ``conn_limits`` is neither None nor a ``ConnLimits``; ``pulling`` is neither
        None nor a ``PullSettings``; ``path`` is a file or cannot be created; ``replicator``
        is neither a bool nor a collection of peer ids (``InvalidKey`` for a malformed one).
    InvalidAddress
        An ``announce`` address is malformed, unspecified (``0.0.0.0``) or on port 0; a
        ``relays`` address does not end in ``/p2p/<relay id>`` or is not dialable.
    RepoInUse
        Another process holds the repo.

    Examples
    --------
    >>> from threadkit.net.connmgr import ConnLimits
    >>> with Peer(memory=True, conn_limits=ConnLimits(10, 50, 30.0)) as peer:
    ...     peer.conn_limits.high_water
    50
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        memory: bool = False,
        listen: list[str] | None = None,
        network: bool | None = None,
        pull_interval: float = 10.0,
        timeout: float = 10.0,
        pubsub: bool = False,
        replicator: bool | Iterable[str] = False,
        conn_limits: ConnLimits | None = None,
        announce: list[str] | None = None,
        pulling: PullSettings | None = None,
        mdns: bool | None = None,
        relays: list[str] | None = None,
        relay_service: bool = False,
        identity: Identity | None = None,
    ) -> None:
        if conn_limits is None:
            conn_limits = ConnLimits()
        elif not isinstance(conn_limits, ConnLimits):
            raise InvalidInput(
                f"conn_limits must be a threadkit.net.connmgr.ConnLimits, got {conn_limits!r}"
            )
        self._conn_limits = conn_limits
        if pulling is None:
            pulling = PullSettings.every(pull_interval)
        elif not isinstance(pulling, PullSettings):
            raise InvalidInput(
                f"pulling must be a threadkit.net.pull.PullSettings, got {pulling!r}"
            )
        self._pulling = pulling
        # checked now, before the repo is opened; the peer id is known only later
        self._announce = list(parse_announce(announce, None)) if announce is not None else []
        self._replicator = _replicator_policy(replicator)
        if memory:
            repo = Repo.temporary(durable=False)
        else:
            target = Path(path).expanduser() if path is not None else DEFAULT_REPO
            if target.exists() and not target.is_dir():
                raise InvalidInput(f"repo {str(target)!r} is a file, not a directory")
            try:
                target.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InvalidInput(
                    f"cannot create the repo directory {str(target)!r}: {exc.strerror or exc}"
                ) from None
            repo = Repo(target)
        self._repo: Repo | None = repo
        try:
            self.identity = _load_identity(repo)
            if announce is not None:
                self._announce = list(parse_announce(announce, self.identity.public.peer_id))
            self._net = _Net()
            sharing = _PeerSharing(self, self._net, allowed=network is not False)
            if identity is not None and not isinstance(identity, Identity):
                raise InvalidInput(f"identity must be a tk.Identity, got {type(identity).__name__}")
            self._manager: Manager | None = Manager(
                repo, identity or self.identity, database_class=Database, sharing=sharing
            )
        except BaseException:
            repo.close()
            raise
        self._listen = list(listen or ["/ip4/127.0.0.1/tcp/0"])
        self._network_allowed = network is not False
        self._timeout = timeout
        self._pubsub = pubsub
        if mdns is not None and not isinstance(mdns, bool):
            repo.close()
            raise InvalidInput(f"mdns must be True, False or None, got {mdns!r}")
        self._mdns = mdns
        if not isinstance(relay_service, bool):
            repo.close()
            raise InvalidInput(f"relay_service must be True or False, got {relay_service!r}")
        self._relay_service = relay_service
        try:
            self._relays = list(parse_relays(relays, self.identity.public.peer_id))
        except BaseException:
            repo.close()
            raise
        self._finalizer = weakref.finalize(self, _close_quietly, repo, self._net)
        atexit.register(self._finalizer)
        if network or (network is None and self._has_remote_peers()):
            self.start_network()

    # -------------------------------------------------------------- lifecycle

    @property
    def repo(self) -> Repo:
        """The peer's repo."""
        if self._repo is None:
            raise RepoClosed("this peer is closed")
        return self._repo

    @property
    def manager(self) -> Manager:
        """The peer's database manager."""
        if self._manager is None:
            raise RepoClosed("this peer is closed")
        return self._manager

    @property
    def id(self) -> str:
        """The peer's id (its identity's peer id)."""
        return self.identity.public.peer_id

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._repo is None

    def close(self) -> None:
        """Stop the network, close every database and the repo (releasing its lock).

        Safe to call twice; also runs at interpreter exit.
        """
        if self._repo is None:
            return
        self._stop_network()
        if self._manager is not None:
            self._manager.close()
        self._manager = None
        self._finalizer()
        atexit.unregister(self._finalizer)
        self._repo = None

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else str(self.repo.path)
        return f"Peer({self.id}, {state})"

    def _repr_html_(self) -> str:
        """Identity, repo, network state and databases (for notebooks)."""
        if self.closed:
            return f"<div><b>Peer</b> <code>{self.id}</code> (closed)</div>"
        dbs = "".join(
            f"<li>{html.escape(db.name)} <code>{db.id}</code></li>" for db in self.list_dbs()
        )
        online = ", ".join(self._node.addrs) if self._node is not None else "offline"
        return (
            f"<div><b>Peer</b> <code>{self.id}</code><br>repo: <code>"
            f"{html.escape(str(self.repo.path))}</code><br>network: <code>{html.escape(online)}"
            f"</code><ul>{dbs or '<li>no databases</li>'}</ul></div>"
        )

    # -------------------------------------------------------------- databases

    def new_db(
        self,
        name: str | None = None,
        thread_id: ThreadID | None = None,
        key: ThreadKey | None = None,
        *,
        open: bool = True,
    ) -> Database:
        """Create a database (a new thread). See :meth:`Manager.new_db`.

        ``open=False`` gives it members: this peer's identity owns it, and only the
        identities it grants a role may write (docs/access.md).
        """
        return _composed(self.manager.new_db(name, thread_id, key, open=open))

    def get_db(self, thread_id: ThreadID | str) -> Database:
        """An existing database by id."""
        return _composed(self.manager.get_db(thread_id))

    def list_dbs(self) -> list[Database]:
        """Every database in the repo."""
        return [_composed(db) for db in self.manager.list_dbs()]

    def export_thread(
        self, thread_id: ThreadID | str, path: str | os.PathLike[str], keys: str = "none"
    ) -> Any:
        """Write any thread this repo holds to a CAR archive, as ``db.export`` does.

        Also works for threads this peer keeps as a replicator (service key only): the
        file then holds only ciphertext, and ``keys="full"`` is refused
        (``InvalidThreadKey``). See docs/lifecycle.md.
        """
        if isinstance(thread_id, str):
            thread_id = ThreadIDType.from_string(thread_id)
        return export_thread(self.repo, thread_id, path, keys)

    def import_db(
        self,
        path: str | os.PathLike[str],
        key: ThreadKey | str | None = None,
        name: str | None = None,
        thread_id: ThreadID | str | None = None,
        max_size: int | None = None,
    ) -> Database:
        """Restore a database from an archive written by ``db.export`` (docs/lifecycle.md).

        The archive is untrusted input: every block, signature and chain link is
        checked, as for records received from a peer, before anything is written.
        The restored database has the same thread id, logs and records, and a new
        log of this peer's own; it replicates with the original's peers.

        Parameters
        ----------
        path : str or PathLike
            The CAR file.
        key : ThreadKey or str, optional
            The full thread key; needed when the archive was exported without it.
        name : str, optional
            Local name (default: the name in the archive).
        thread_id : ThreadID or str, optional
            The thread the archive must hold (``InvalidArchive`` otherwise).
        max_size : int, optional
            Largest file read, in bytes (default ``archive.MAX_ARCHIVE_SIZE``, 2 GiB).

        Raises
        ------
        InvalidArchive, IntegrityError, SignatureError, ChainError, InvalidThreadKey,
        ThreadExists
        """
        limit = MAX_ARCHIVE_SIZE if max_size is None else max_size
        return _composed(import_db(self.manager, path, key, name, thread_id, limit))

    def reclaim(self) -> Reclaimed:
        """Give back the disk compaction and purges freed: swap in a compacted LMDB file.

        Pauses a running network and reopens the databases: ``Database`` objects taken
        before are closed (``get_db`` again). Crash-safe: the old or the new file is whole
        (docs/lifecycle.md, :mod:`threadkit.peer._reclaim`). Returns ``before``/``after``.
        """
        return _reclaim(self)

    def delete_db(self, thread_id: ThreadID | str) -> None:
        """Delete a database and everything in it from this repo."""
        self.manager.delete_db(thread_id)

    # ---------------------------------------------------------------- network

    @property
    def _node(self) -> Any:
        return self._net.node

    @property
    def _service(self) -> Any:
        return self._net.service

    @property
    def conn_limits(self) -> ConnLimits:
        """The connection manager's watermarks and grace period (see ``conn_limits=``)."""
        return self._conn_limits

    @property
    def online(self) -> bool:
        """True while the libp2p side runs."""
        return self._node is not None

    def start_network(self) -> None:
        """Start the libp2p host and the thread service (idempotent)."""
        if self._node is not None:
            return
        if not self._network_allowed:
            raise NetworkError("this peer was opened with network=False")
        from threadkit.net.node import Node
        from threadkit.net.service import ThreadService

        node = self._start_node(Node)
        service = ThreadService(
            node,
            self.repo,
            self.manager,
            pulling=self._pulling,
            timeout=self._timeout,
            accept_replication=self._replicator,
        )
        self._net.node, self._net.service = node, service
        service.start()
        if self._mdns_wanted(node.addrs):
            from threadkit.net.lan import LanDiscovery

            self._net.lan = LanDiscovery(node)
            self._net.lan.start()

    def _mdns_wanted(self, addrs: list[str]) -> bool:
        """``mdns`` if given; by default on when the peer listens beyond loopback."""
        if self._mdns is not None:
            return self._mdns
        if os.environ.get("THREADKIT_MDNS", "").strip().lower() in ("0", "off", "false", "no"):
            return False
        return any(not is_loopback(a) for a in addrs)

    def _start_node(self, node_class: Any) -> Any:
        """Start the node, on last time's port when the repo is on disk and it is free."""
        listen = list(self._listen)
        saved = None if self.repo.is_temporary else self.repo.get_meta(_PORT_META)
        if saved and listen == ["/ip4/127.0.0.1/tcp/0"]:
            try:
                node = node_class(
                    self.identity.seed,
                    [f"/ip4/127.0.0.1/tcp/{int(saved)}"],
                    enable_pubsub=self._pubsub,
                    conn_limits=self._conn_limits,
                    announce=self._announce,
                    relays=self._relays,
                    relay_service=self._relay_service,
                )
                node.start(timeout=self._timeout)
                return node
            except (NetworkError, ValueError):
                pass  # taken by now: any port will do
        node = node_class(
            self.identity.seed,
            listen,
            enable_pubsub=self._pubsub,
            conn_limits=self._conn_limits,
            announce=self._announce,
            relays=self._relays,
            relay_service=self._relay_service,
        )
        node.start(timeout=self._timeout)
        if not self.repo.is_temporary:
            port = tcp_port(node.listen_addrs)
            if port is not None:
                self.repo.put_meta(_PORT_META, str(port).encode())
        return node

    def stop_network(self) -> None:
        """Go offline: stop the libp2p side (databases stay usable; writes are sent later)."""
        self._net.stop()

    def _stop_network(self) -> None:
        self._net.stop()

    def _online_service(self) -> Any:
        self.start_network()
        return self._service

    def _has_remote_peers(self) -> bool:
        mine = self.id
        for db in self.manager.list_dbs():
            for info in self.repo.list_logs(db.id):
                if any(not a.endswith("/p2p/" + mine) for a in info.addrs):
                    return True
        return False

    @property
    def addrs(self) -> list[str]:
        """This peer's listen addresses (``…/p2p/<id>``); starts the network if needed."""
        self.start_network()
        return list(self._node.addrs)

    def connect(self, addr: str) -> None:
        """Connect to another peer by multiaddr (``…/p2p/<id>``)."""
        service = self._online_service()
        self._node.call(self._node.connect, addr, timeout=self._timeout)
        del service

    def peers(self) -> list[str]:
        """Peer ids of the peers this one is connected to."""
        if self._node is None:
            return []
        return list(self._node.connected_peers())

    def new_db_from_addr(
        self,
        addr: str,
        key: ThreadKey | str,
        name: str | None = None,
        timeout: float | None = None,
        pull: bool = True,
        trust: Iterable[Identity | PublicKey | str] | None = None,
    ) -> Database:
        """Join a database another peer serves: connect, pull its logs and records, return it.

        Parameters
        ----------
        addr : str
            A thread address, ``…/p2p/<peer id>/thread/<thread id>`` (``db.info().addrs``),
            or ``/thread/<thread id>`` alone: then a peer on the LAN that has it is found
            by mDNS (:meth:`join`).
        key : ThreadKey or str
            The thread key, with its read key (``db.info().key``), or its string form
            (``str(key)``, as ``threadkit share`` prints it).
        name : str, optional
            Local name for the database (default: the name the other peer uses).
        timeout : float, optional
            Seconds to wait; ``tk.errors.Timeout`` after that.
        pull : bool
            False: return as soon as the database exists here, before its records have
            arrived (they are pulled in the background): open ``db.listen(...)`` to watch
            them come, ``db.sync()`` to wait for them.
        trust : iterable of Identity, PublicKey or str, optional
            Start from the peer's newest snapshot when one of these wrote it (checked,
            docs/lifecycle.md), then pull the records after it; else pull every record.
        """
        trusted = None if trust is None else trusted_keys(trust)
        if isinstance(key, str):
            key = ThreadKeyType.from_string(key.strip())
        if not isinstance(key, ThreadKeyType):
            raise InvalidThreadKey(
                f"a thread key is a tk.ThreadKey or its string, got {type(key).__name__}"
            )
        if not key.can_read:
            raise InvalidThreadKey(
                "this key has no read key (a service key only): joining a database "
                "needs the full key its owner shares (db.info().key)"
            )
        if not isinstance(pull, bool):
            raise InvalidInput(f"pull must be True or False, got {pull!r}")
        if isinstance(addr, str) and addr.strip().startswith("/thread/"):
            return self.join(
                addr.strip().removeprefix("/thread/").strip("/"), key, name, timeout, pull
            )
        return _composed(self._online_service().join(addr, key, name, timeout, pull, trusted))

    def join(
        self,
        thread_id: ThreadID | str,
        key: ThreadKey | str,
        name: str | None = None,
        timeout: float | None = None,
        pull: bool = True,
    ) -> Database:
        """Join a database by its thread id and key alone, from a peer on the LAN that has it.

        The LAN peers mDNS finds (``mdns=True``, docs/networking.md) are asked one after
        another; the first that serves the thread is joined as with
        :meth:`new_db_from_addr`. A database already here is returned as it is.

        Parameters
        ----------
        thread_id : ThreadID or str
            The database's thread id (``db.id``).
        key : ThreadKey or str
            Its full key (``db.info().key``).
        name, timeout, pull
            As for :meth:`new_db_from_addr`; ``timeout`` also bounds the wait for a LAN
            peer that has the thread (default three times the peer's ``timeout``).

        Raises
        ------
        InvalidThreadID, InvalidThreadKey
            Malformed input, or a read key that does not open the thread.
        NetworkError
            LAN discovery is off (``mdns=False``, or only loopback addresses).
        Timeout
            No LAN peer served the thread within ``timeout``.
        """
        if isinstance(thread_id, str):
            thread_id = ThreadIDType.from_string(thread_id.strip())
        if not isinstance(thread_id, ThreadIDType):
            raise InvalidInput(f"thread_id must be a tk.ThreadID or its string, got {thread_id!r}")
        if isinstance(key, str):
            key = ThreadKeyType.from_string(key.strip())
        if not isinstance(key, ThreadKeyType) or not key.can_read:
            raise InvalidThreadKey("joining a database needs its full key (db.info().key)")
        if not isinstance(pull, bool):
            raise InvalidInput(f"pull must be True or False, got {pull!r}")
        with contextlib.suppress(DBNotFound):
            return self.get_db(thread_id)  # already here
        service = self._online_service()
        return _composed(service.join_lan(self._net.lan, thread_id, key, name, timeout, pull))

    def pull(self, db: Database | ThreadID, timeout: float | None = None) -> int:
        """Pull from every peer of a database now; returns how many records came in."""
        thread_id = db if isinstance(db, ThreadIDType) else db.id
        count: int = self._online_service().pull_thread(thread_id, timeout)
        return count

    def add_replicator(self, db: Database, addr: str, timeout: float | None = None) -> str:
        """Have the peer at ``addr`` keep this database's records (service key only)."""
        peer_id: str = self._online_service().add_replicator(db, addr, timeout)
        return peer_id

    def status(self) -> dict[str, Any]:
        """The peer's network state at a glance.

        Returns
        -------
        dict
            ``online`` (bool), ``addrs`` (what others dial), ``lan`` (peers mDNS found:
            peer id → addresses), ``relays`` (relay address → ``reserved``, ``error``),
            ``connected`` (peer ids),
            ``unreachable`` (one dict per peer whose last dial failed: ``peer_id``,
            ``failures``, ``since`` (epoch seconds), ``last_error``, ``retry_in``
            seconds), and the sync counters ``pushed``, ``received``, ``rejected``,
            ``pulls``, ``last_sync`` and ``errors`` (the last few).

        Examples
        --------
        >>> with Peer(memory=True, network=False) as peer:
        ...     peer.status()["online"], peer.status()["unreachable"]
        (False, [])
        """
        service = self._service
        stats = None if service is None else service.stats
        return {
            "online": self.online,
            "addrs": list(self._node.addrs) if self._node is not None else [],
            "lan": {} if self._net.lan is None else self._net.lan.peers(),
            "relays": self._node.relays if self._node is not None else {},
            "connected": self.peers(),
            "unreachable": [] if service is None else service.unreachable(),
            "pushed": 0 if stats is None else stats.pushed,
            "pushing": 0 if stats is None else stats.pushing,
            "received": 0 if stats is None else stats.received,
            "rejected": 0 if stats is None else stats.rejected,
            "pulls": 0 if stats is None else stats.pulls,
            "last_sync": None if stats is None else stats.last_sync,
            "errors": [] if stats is None else list(stats.errors[-5:]),
        }

    @property
    def sync_stats(self) -> Any:
        """Counters of the thread service (pushed, received, rejected, pulls, errors)."""
        return None if self._service is None else self._service.stats


def _load_identity(repo: Repo) -> Identity:
    raw = repo.get_meta(_IDENTITY_META)
    if raw is not None:
        return Identity.from_bytes(raw)
    identity = Identity.generate()
    repo.put_meta(_IDENTITY_META, identity.to_bytes())
    return identity


def _composed(db: StoreDatabase) -> Database:
    """A database of the peer's manager, which opens them as ``tk.Database`` (with views)."""
    assert isinstance(db, Database), f"{db!r} was opened without its views"
    return db
