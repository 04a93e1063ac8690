"""A daemon shared by the tests of a module (started once: it takes a second or two)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_procs import Daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    child = Daemon(Path(tmp_path_factory.mktemp("daemon")) / "repo").wait_ready()
    yield child
    assert child.stop() == 0, child.log()
