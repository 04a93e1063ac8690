"""Fixtures shared by every test directory (at the root: with --doctest-modules a second
conftest.py under tests/ would be collected as a module beside tests/api/conftest.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

MiB = 1024**2

# no mDNS from the suite onto the machine's network: peers listening on 0.0.0.0 would
# announce themselves by default (tests/netlab turns it on inside its namespaces)
os.environ["THREADKIT_MDNS"] = "0"


class SmallDisk:
    """A tmpfs of a few MiB mounted for one test, with a file that fills it up.

    Parameters
    ----------
    path : Path
        The mount point.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fillers: list[Path] = []

    @property
    def free(self) -> int:
        """Bytes still free."""
        return shutil.disk_usage(self.path).free

    def fill(self, leave: int = 0) -> None:
        """Write a file that takes all the free space but ``leave`` bytes."""
        filler = self.path / f"filler-{uuid.uuid4().hex}"
        self._fillers.append(filler)
        # ENOSPC ends it: full, as wanted
        with open(filler, "wb", buffering=0) as out, contextlib.suppress(OSError):
            while self.free > leave:
                out.write(bytes(min(MiB, self.free - leave)))

    def make_room(self) -> None:
        """Delete what :meth:`fill` wrote."""
        while self._fillers:
            self._fillers.pop().unlink(missing_ok=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[int], SmallDisk]]:
    """``small_disk(size)``: a tmpfs of ``size`` bytes mounted under ``tmp_path``.

    Needs root (``mount -t tmpfs``); the test is skipped, with the reason, where it is
    not root or the mount fails. Everything mounted is unmounted when the test ends,
    failed or not.
    """
    mounted: list[Path] = []

    def mount(size: int) -> SmallDisk:
        if os.geteuid() != 0:
            pytest.skip("needs root to mount a small tmpfs and fill it")
        target = tmp_path / f"disk{len(mounted)}"
        target.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip() or done.returncode}")
        mounted.append(target)
        return SmallDisk(target)

    try:
        yield mount
    finally:
        for target in reversed(mounted):
            # lazily when busy: a peer process of a failed test may still hold a file open
            for args in (["umount", str(target)], ["umount", "-l", str(target)]):
                if subprocess.run(args, capture_output=True, check=False).returncode == 0:
                    break
