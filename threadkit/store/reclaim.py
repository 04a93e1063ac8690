"""Giving disk back: swapping a repo's LMDB file for a compacted copy of itself.

LMDB never shrinks its file: the pages that deletes free (compaction, purges, deleted
databases) are reused by later writes but stay on disk. :func:`reclaim` writes a copy
without them (LMDB's copy with compaction, ``mdb_env_copy2(MDB_CP_COMPACT)``) and swaps
it in, holding the repo's write lock throughout (no write can fall between the copy and
the swap) and the repo lock (no other process opens the repo meanwhile):

1. :func:`write_copy`: the copy goes to ``data.mdb.compacting`` beside ``data.mdb`` (the
   same file system) and is synced to disk;
2. the environment is closed;
3. :func:`install`: the copy is renamed over ``data.mdb`` (``rename(2)`` replaces a file
   atomically) and the directory is synced, so the rename is on disk too;
4. the environment is opened again.

A process killed at any point leaves ``data.mdb`` whole: the old file until the rename,
the new one (already synced) from then on. A copy left behind by a killed process is
deleted the next time the repo opens (:func:`discard_copy`).

The copy needs free disk space up to the size of the live data; on a full disk it fails
with :class:`~threadkit.errors.DiskFull` and the repo is left as it was. Table handles
opened before belong to the closed environment and must be opened again: the peer does
this for its databases (:meth:`threadkit.peer.Peer.reclaim`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import lmdb

from threadkit.errors import StoreError

if TYPE_CHECKING:
    from threadkit.store.repo import Repo

__all__ = [
    "COPY_NAME",
    "DATA_NAME",
    "Reclaimed",
    "discard_copy",
    "install",
    "reclaim",
    "write_copy",
]

DATA_NAME = "data.mdb"
"""LMDB's data file in a repo directory."""

COPY_NAME = "data.mdb.compacting"
"""The compacted copy while it is written, before it replaces :data:`DATA_NAME`."""


@dataclass(frozen=True)
class Reclaimed:
    """The size of a repo's LMDB file before and after :func:`reclaim`.

    Attributes
    ----------
    before, after : int
        ``st_size`` of ``data.mdb``, in bytes.
    """

    before: int
    after: int

    @property
    def freed(self) -> int:
        """Bytes given back to the file system."""
        return self.before - self.after


def discard_copy(directory: Path) -> None:
    """Delete a copy a killed :func:`reclaim` left in a repo directory (the lock held)."""
    (directory / COPY_NAME).unlink(missing_ok=True)


def write_copy(repo: Repo) -> Path:
    """Write a compacted copy of the repo's environment beside it, synced; return its path.

    Raises
    ------
    DiskFull
        No room for the copy (nothing of it is left behind).
    StoreError
        The copy could not be written.
    """
    directory = repo.path
    target = directory / COPY_NAME
    discard_copy(directory)
    mode = (directory / DATA_NAME).stat().st_mode & 0o777
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        repo._live_env().copyfd(fd, compact=True)
        os.fsync(fd)
    except BaseException as exc:
        os.close(fd)
        target.unlink(missing_ok=True)
        if isinstance(exc, (OSError, lmdb.Error)):
            raise _copy_failed(repo, exc) from exc
        raise
    os.close(fd)
    return target


def _copy_failed(repo: Repo, exc: Exception) -> StoreError:
    """The store's error for a failed copy (a full disk is DiskFull)."""
    return repo._error(exc)


def install(directory: Path, copy: Path) -> None:
    """Rename ``copy`` over the repo's ``data.mdb`` and sync the directory (env closed)."""
    os.replace(copy, directory / DATA_NAME)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def reclaim(repo: Repo) -> Reclaimed:
    """Swap the repo's LMDB file for a compacted copy (module doc); return the sizes.

    Handles from :meth:`Repo.open_table <threadkit.store.repo.Repo.open_table>` taken
    before become invalid (using one raises :class:`~threadkit.errors.RepoClosed`).

    Raises
    ------
    RepoClosed
        The repo is closed.
    DiskFull
        No room for the copy; the repo is unchanged.
    """
    data = repo.path / DATA_NAME
    with repo._write_lock:
        repo._live_env()
        before = data.stat().st_size
        copy = write_copy(repo)
        try:
            repo._reopen(lambda: install(repo.path, copy))
        finally:
            discard_copy(repo.path)  # left only when the rename failed
        return Reclaimed(before, data.stat().st_size)
