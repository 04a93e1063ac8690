"""A full disk is reported as DiskFull, and the repo works again once space is freed.

The disk is a small tmpfs the test mounts (``small_disk`` in tests/conftest.py: root
only, skipped elsewhere) and fills with a file.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from threadkit.errors import DiskFull, StoreError
from threadkit.store import Repo
from threadkit.store.repo import LOW_DISK_SPACE

from .helpers import Writer

MiB = 1024**2


@pytest.mark.parametrize("leave", [0, 40_000, 300_000], ids=["no-room", "40k", "300k"])
def test_full_disk_is_disk_full_then_the_repo_works_again(
    small_disk: Callable[[int], Any], leave: int
) -> None:
    disk = small_disk(8 * MiB)
    path = disk.path / "repo"
    writer = Writer()
    with Repo(path) as repo:
        writer.install(repo)
        records = writer.chain(3)
        repo.append(writer.thread_id, writer.log_id, records[0])
        repo.put_meta("kept", b"before")
        disk.fill(leave)
        causes = set()
        for attempt in range(3):  # and again: a failed commit breaks nothing
            with pytest.raises(DiskFull) as caught:
                repo.put_meta(f"big-{attempt}", bytes(2 * MiB))
            message = str(caught.value)
            assert "disk is full" in message and str(path) in message
            causes.add(getattr(caught.value.__cause__, "code", None))
        assert causes <= {errno.EIO, errno.ENOSPC}
        with pytest.raises(DiskFull):
            repo.append_many(writer.thread_id, writer.log_id, writer.chain(400, records[0].cid))
        assert repo.get_meta("kept") == b"before"
        assert repo.get_head(writer.thread_id, writer.log_id).counter == 1
        disk.make_room()
        repo.put_meta("big", bytes(2 * MiB))
        repo.append(writer.thread_id, writer.log_id, records[1])
    with Repo(path) as repo:
        assert repo.get_meta("big") == bytes(2 * MiB)
        assert repo.get_meta("big-0") is None
        assert [r.counter for r in repo.read_log(writer.thread_id, writer.log_id)] == [1, 2]


def test_full_map_with_room_on_disk_is_not_disk_full(tmp_path: Path) -> None:
    if shutil.disk_usage(tmp_path).free < 2 * LOW_DISK_SPACE:
        pytest.skip("the disk of the temporary directory is itself nearly full")
    with Repo(tmp_path / "repo", map_size=256 * 1024, durable=False) as repo:
        with pytest.raises(StoreError, match="larger map_size") as caught:
            repo.put_meta("big", bytes(MiB))
        assert not isinstance(caught.value, DiskFull)
