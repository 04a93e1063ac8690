"""Fixtures of the store tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from threadkit.store import Repo

from .helpers import Writer


@pytest.fixture
def repo() -> Iterator[Repo]:
    """A temporary repo (not synced: these tests do not crash the machine)."""
    with Repo.temporary(durable=False) as repo:
        yield repo


@pytest.fixture
def writer(repo: Repo) -> Writer:
    """A thread with one own log, installed in ``repo``."""
    writer = Writer()
    writer.install(repo)
    return writer
