"""Shared helpers for the multi-process end-to-end tests (not a test module)."""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from procs import PeerProcess

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "seq": {"type": "number"},
        "owner": {"type": "string"},
        "color": {"type": "string"},
        "note": {"type": "string"},
        "pad": {"type": "string"},
    },
    "required": ["name"],
}
"""The schema of the test collection (``name`` carries a unique index)."""

INDEXES: list[dict[str, Any]] = [{"path": "name", "unique": True}, {"path": "owner"}]


class Cluster:
    """Peer processes of one test: started in parallel, all stopped when the test ends."""

    def __init__(self) -> None:
        self.procs: list[PeerProcess] = []

    def start(self, count: int = 1, **open_args: Any) -> list[PeerProcess]:
        """Start ``count`` alike peer processes at once (each takes ~1-2 s to come up)."""
        return self.start_each([open_args] * count)

    def start_each(self, specs: list[dict[str, Any]]) -> list[PeerProcess]:
        """Start one peer process per dict of ``PeerProcess`` arguments, all at once."""
        with ThreadPoolExecutor(len(specs)) as pool:
            futures = [pool.submit(lambda kw: PeerProcess(**kw), spec) for spec in specs]
        started = [f.result() for f in futures if f.exception() is None]
        self.procs.extend(started)
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]
        return started

    def start_one(self, path: str | Path | None = None, **open_args: Any) -> PeerProcess:
        """Start one peer process (on a repo directory when ``path`` is given)."""
        proc = PeerProcess(path, **open_args)
        self.procs.append(proc)
        return proc

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        with ThreadPoolExecutor(max(1, len(self.procs))) as pool:
            list(pool.map(_stop, self.procs))


def _stop(proc: PeerProcess) -> None:
    with contextlib.suppress(Exception):
        proc.close()
    if proc.proc.poll() is None:
        with contextlib.suppress(Exception):
            proc.kill()


def snapshot(proc: PeerProcess, db: str) -> dict[str, Any]:
    """Every document of every collection and the lost writes of ``db`` on ``proc``."""
    reply = proc.call("snapshot", db=db)
    return {"docs": reply["docs"], "lost": reply["lost"]}


def doc_count(snap: dict[str, Any], coll: str) -> int:
    """Documents of ``coll`` in a snapshot."""
    return len(snap["docs"].get(coll, []))


def heads(proc: PeerProcess, db: str) -> dict[str, int]:
    """``{log id: counter}`` of ``db``'s thread on ``proc``."""
    return dict(proc.call("heads", db=db)["heads"])


def assert_converged(procs: list[PeerProcess], db: str, timeout: float = 20.0) -> dict[str, Any]:
    """Wait until every peer holds every record any of them holds; then their states must match.

    Nothing is pulled or pushed here: each peer waits, woken by each record it stores,
    for the replication under test to bring it the highest counter of every log. Then
    every peer must hold byte-identical state; returns it (fails with a diff).
    """
    target: dict[str, int] = {}
    for proc in procs:
        for log, counter in heads(proc, db).items():
            target[log] = max(counter, target.get(log, 0))
    deadline = time.monotonic() + timeout
    for proc in procs:
        remaining = max(0.1, deadline - time.monotonic())
        if not proc.call("wait_heads", db=db, heads=target, timeout=remaining)["reached"]:
            raise AssertionError(
                f"{proc.peer_id} did not get every record in {timeout} s: has {heads(proc, db)}, "
                f"wants {target}; stats {proc.call('stats')}"
            )
    snaps = [snapshot(p, db) for p in procs]
    if not all(s == snaps[0] for s in snaps[1:]):
        summary = [
            {c: len(d) for c, d in s["docs"].items()} | {"lost": len(s["lost"])} for s in snaps
        ]
        raise AssertionError(f"peers hold the same records but differ: counts {summary}")
    return snaps[0]


def new_shared_db(owner: PeerProcess, name: str = "e2e") -> dict[str, Any]:
    """A database on ``owner`` with the test collection ``Items``; its new_db reply."""
    reply = owner.call("new_db", name=name)
    owner.call("new_collection", db=reply["id"], name="Items", schema=SCHEMA, indexes=INDEXES)
    return reply


def seqs(snap: dict[str, Any], coll: str = "Items", prefix: str | None = None) -> list[int]:
    """The sorted ``seq`` values of a snapshot's documents (optionally by name prefix)."""
    return sorted(
        int(d["seq"])
        for d in snap["docs"].get(coll, [])
        if "seq" in d and (prefix is None or d["name"].startswith(prefix + "-"))
    )
