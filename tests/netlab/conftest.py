"""The ``lab`` fixture: a network lab (tests/netlab/lab.py) torn down when the test ends.

Skipped, with the reason, where the lab cannot run (not root, no ``ip``/``nft``, no
namespaces) — unless ``THREADKIT_NETLAB=require`` is set (``.ci/run`` sets it), in which
case that is a failure: CI must run these tests, not skip them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "e2e"))  # procs.PeerProcess, peer_child

import lab as netlab


@pytest.fixture
def lab() -> Iterator[netlab.Lab]:
    """A fresh :class:`lab.Lab`; leftovers of crashed earlier runs are removed first."""
    reason = netlab.unavailable()
    if reason is not None:
        if os.environ.get("THREADKIT_NETLAB") == "require":
            pytest.fail(f"THREADKIT_NETLAB=require but {reason}")
        pytest.skip(reason)
    netlab.clean_leftovers()
    the_lab = netlab.Lab()
    try:
        yield the_lab
    finally:
        the_lab.close()
