"""Reclaiming disk (threadkit.store.reclaim): the LMDB file swapped for a compacted copy.

The file shrinks and every table holds what it held; a process killed at any point of
the swap (SIGKILL, in a child process) leaves the old file or the new one, whole, and no
copy behind once the repo is opened again.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from threadkit.core import dagcbor
from threadkit.core.identity import Identity
from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.core.records import create_record
from threadkit.errors import RepoClosed
from threadkit.store import Repo
from threadkit.store.reclaim import COPY_NAME, DATA_NAME, reclaim

KEPT = 50


def _fill(repo: Repo, tid: ThreadID, records: int, size: int) -> None:
    key, log_key = ThreadKey.new(), Identity.generate()
    repo.add_thread(tid, key)
    log_id = repo.add_log(tid, log_key.public, log_key).id
    prev = None
    batch = []
    for n in range(records):
        body = dagcbor.encode({"n": n, "pad": "x" * size})
        record = create_record(body, log_key=log_key, key=key, prev=prev)
        batch.append(record)
        prev = record.cid
    repo.append_many(tid, log_id, batch)


def _dump(repo: Repo) -> dict[str, list[tuple[bytes, bytes]]]:
    out = {}
    with repo.transaction() as txn:
        for name in repo.tables.__dataclass_fields__:
            out[name] = [(bytes(k), bytes(v)) for k, v in txn.cursor(getattr(repo.tables, name))]
    return out


@pytest.fixture
def loose(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A repo whose file holds many free pages: a big thread written, then deleted."""
    path = tmp_path / "repo"
    with Repo(path) as repo:
        _fill(repo, ThreadID.new(), KEPT, 100)
        big = ThreadID.new()
        _fill(repo, big, 2000, 2000)
        repo.delete_thread(big)
        state = _dump(repo)
    return path, state


def test_reclaim_shrinks_the_file_and_keeps_every_table(loose: tuple[Path, Any]) -> None:
    path, state = loose
    with Repo(path) as repo:
        handle = repo.open_table("later_layer")
        before = (path / DATA_NAME).stat().st_size
        done = reclaim(repo)
        assert done.before == before
        assert done.after == (path / DATA_NAME).stat().st_size < before / 4
        assert done.freed == before - done.after
        assert _dump(repo) == state
        assert not (path / COPY_NAME).exists()
        # a handle from before belongs to the closed environment: a clear error
        with pytest.raises(RepoClosed, match="reclaim"), repo.transaction() as txn:
            txn.get(b"k", db=handle)
        _fill(repo, ThreadID.new(), 3, 10)  # the reopened repo takes writes
        state = _dump(repo)
    with Repo(path) as repo:
        assert _dump(repo) == state


def test_a_closed_repo_is_not_reclaimed(loose: tuple[Path, Any]) -> None:
    path, _ = loose
    repo = Repo(path)
    repo.close()
    with pytest.raises(RepoClosed):
        reclaim(repo)


_CHILD = """
import os, signal, sys
from threadkit.store import Repo
from threadkit.store.reclaim import install, reclaim, write_copy

def die():
    os.kill(os.getpid(), signal.SIGKILL)

repo = Repo(sys.argv[1])
point = sys.argv[2]
print("ready", flush=True)
if point == "copied":
    write_copy(repo)
    die()
elif point == "renamed":
    copy = write_copy(repo)
    repo._reopen(lambda: (install(repo.path, copy), die()))
elif point == "reclaimed":
    reclaim(repo)
    die()
else:  # killed from outside, wherever it is
    while True:
        reclaim(repo)
"""


def _kill_at(path: Path, point: str, delay: float = 0.0) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path), point], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        if point == "anywhere":  # at a random moment of the reclaim loop
            time.sleep(delay)
            child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=120) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


@pytest.mark.slow
@pytest.mark.parametrize("point", ["copied", "renamed", "reclaimed", "anywhere"])
def test_a_process_killed_mid_swap_leaves_a_whole_file(loose: tuple[Path, Any], point: str) -> None:
    path, _ = loose
    with Repo(path) as repo:
        _fill(repo, ThreadID.new(), 2000, 2000)  # free pages again, and a bigger file
        last = ThreadID.new()
        _fill(repo, last, 2000, 2000)
        repo.delete_thread(last)
        state = _dump(repo)
    before = (path / DATA_NAME).stat().st_size
    rounds = 1 if point != "anywhere" else 5
    rng = random.Random(point)
    for _ in range(rounds):
        _kill_at(path, point, rng.uniform(0.0, 0.3))
        left = (path / COPY_NAME).exists()
        size = (path / DATA_NAME).stat().st_size
        if point == "copied":
            assert left and size == before
        elif point in ("renamed", "reclaimed"):
            assert not left and size < before
        with Repo(path) as repo:
            assert not (path / COPY_NAME).exists()
            assert _dump(repo) == state
