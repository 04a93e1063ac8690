"""The repo lock: exclusive per directory, released on release() and by process death."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from threadkit.errors import RepoInUse
from threadkit.store.lock import LOCK_FILE, RepoLock


def test_second_lock_in_process_is_refused(tmp_path: Path) -> None:
    first = RepoLock(tmp_path)
    assert first.held
    assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())
    with pytest.raises(RepoInUse) as info:
        RepoLock(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and f"process {os.getpid()}" in message
    first.release()
    assert not first.held


def test_release_is_idempotent_and_lock_can_be_taken_again(tmp_path: Path) -> None:
    first = RepoLock(tmp_path)
    first.release()
    first.release()
    second = RepoLock(tmp_path)
    second.release()


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        RepoLock(tmp_path / "nope")
