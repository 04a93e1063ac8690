"""The repo lock: one process, and one :class:`~threadkit.store.repo.Repo`, per directory.

LMDB itself lets several processes open an environment, so the repo holds an
exclusive, non-blocking ``flock`` on ``<repo>/repo.lock`` for as long as it is
open. Locks belong to an open file, so a second open in the same process fails
as well, and the operating system drops the lock when its process dies: a
crashed peer never leaves the repo locked. The holder writes its pid into the
file, for the error message of whoever comes next.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from threadkit.errors import RepoInUse

__all__ = ["LOCK_FILE", "RepoLock"]

LOCK_FILE = "repo.lock"
"""Name of the lock file inside the repo directory."""


class RepoLock:
    """An exclusive lock on a repo directory, taken on construction.

    Parameters
    ----------
    directory : Path
        The repo directory (it must exist).

    Raises
    ------
    RepoInUse
        When another process, or another open repo in this process, holds the lock.

    Examples
    --------
    >>> import tempfile
    >>> lock = RepoLock(Path(tempfile.mkdtemp()))
    >>> lock.release()
    """

    __slots__ = ("_fd", "path")

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_FILE
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            by = f" by process {holder}" if holder else ""
            raise RepoInUse(
                f"repo {directory} is in use{by}: close the other Repo or Peer "
                f"that has it open, or use another directory (lock file {self.path})"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        """True until :meth:`release`."""
        return self._fd is not None

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the file releases the flock


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""
