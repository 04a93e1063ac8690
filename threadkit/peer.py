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
import os
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from threadkit.core.identity import Identity
from threadkit.errors import RepoClosed

if TYPE_CHECKING:
    from threadkit.core.ids import ThreadID
    from threadkit.core.keys import ThreadKey
    from threadkit.db.database import Database
    from threadkit.db.manager import Manager
    from threadkit.store.repo import Repo

__all__ = ["DEFAULT_REPO", "Peer"]

DEFAULT_REPO = Path(os.environ.get("THREADKIT_REPO", str(Path.home() / ".threadkit")))
"""Where ``tk.Peer()`` keeps its repo (``$THREADKIT_REPO`` or ``~/.threadkit``)."""

_IDENTITY_META = "peer.identity"


class Peer:
    """An embedded peer.

    Parameters
    ----------
    path : str or Path, optional
        The repo directory (default ``~/.threadkit``). One process at a time may
        open a repo: a second gets ``RepoInUse``.
    memory : bool
        Use a temporary repo, deleted on close (not synced to disk: faster).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, memory: bool = False) -> None:
        from threadkit.db.manager import Manager
        from threadkit.store.repo import Repo

        if memory:
            repo = Repo.temporary(durable=False)
        else:
            target = Path(path) if path is not None else DEFAULT_REPO
            target.mkdir(parents=True, exist_ok=True)
            repo = Repo(target)
        self._repo: Repo | None = repo
        try:
            self.identity = _load_identity(repo)
            self._manager: Manager | None = Manager(repo, self.identity)
        except BaseException:
            repo.close()
            raise
        self._finalizer = weakref.finalize(self, _close_quietly, repo)
        atexit.register(self._finalizer)

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
        """Close every database and the repo (releasing its lock). Safe to call twice."""
        if self._repo is None:
            return
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

    # -------------------------------------------------------------- databases

    def new_db(
        self,
        name: str | None = None,
        thread_id: ThreadID | None = None,
        key: ThreadKey | None = None,
    ) -> Database:
        """Create a database (a new thread). See :meth:`Manager.new_db`."""
        return self.manager.new_db(name, thread_id, key)

    def get_db(self, thread_id: ThreadID | str) -> Database:
        """An existing database by id."""
        return self.manager.get_db(thread_id)

    def list_dbs(self) -> list[Database]:
        """Every database in the repo."""
        return self.manager.list_dbs()

    def delete_db(self, thread_id: ThreadID | str) -> None:
        """Delete a database and everything in it from this repo."""
        self.manager.delete_db(thread_id)


def _load_identity(repo: Repo) -> Identity:
    raw = repo.get_meta(_IDENTITY_META)
    if raw is not None:
        return Identity.from_bytes(raw)
    identity = Identity.generate()
    repo.put_meta(_IDENTITY_META, identity.to_bytes())
    return identity


def _close_quietly(repo: Repo) -> None:
    repo.close()
