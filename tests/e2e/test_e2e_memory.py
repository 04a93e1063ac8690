"""Frames that never finish: the victim's memory stays within its frame budget.

A raw libp2p node (in this process, no thread key, no authentication) opens many
``/threadkit/1.1.0`` streams to a peer process, announces a maximal frame on each and
sends most of it, then stops. The peer used to buffer all of it (12 x 30 MiB grew it by
~500 MiB); now every frame reserves its size in a budget shared by all streams
(``threadkit.net.budget``: 64 MiB per peer, 128 MiB for all), frames that find no room
are refused, and stalled frames have their streams reset. Meanwhile the peer keeps
replicating with its honest peer.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import Cluster, new_shared_db
from multiformats import varint
from procs import PeerProcess
from waits import poll_until

from threadkit.net import protocol as p
from threadkit.net.budget import MAX_BUFFERED_PER_PEER, STALL_TIMEOUT
from threadkit.net.node import Node

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the victim's RSS from /proc"
)

STREAMS = 12
ANNOUNCED = p.MAX_FRAME
SENT = 30 * 1024 * 1024
CHUNK = b"\x00" * (1024 * 1024)
MiB = 1024 * 1024
# The budget (64 MiB from one peer), plus the muxer's flow-control windows of the
# attacker's streams and allocator slack: a generous bound, still far below the 360 MiB
# the attacker sends.
RSS_BOUND = 2 * MAX_BUFFERED_PER_PEER + 64 * MiB


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class _Peak:
    """The highest RSS of a process, sampled every 50 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = _rss(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, _rss(self.pid))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


async def _attack(node: Node, victim: str, held: list[Any], sent: list[int]) -> None:
    """Open the streams, announce a maximal frame on each, send what gets through in 8 s."""
    import trio

    async def one() -> None:
        stream = await node.open_stream(victim, p.PROTOCOL_ID_PERSISTENT)
        held.append(stream)
        with trio.move_on_after(8):
            try:
                await stream.write(varint.encode(ANNOUNCED))
                for _ in range(SENT // len(CHUNK)):
                    await stream.write(CHUNK)
                    sent[0] += len(CHUNK)
            except Exception:  # the victim reset the stream, or held it back
                return

    async with trio.open_nursery() as nursery:
        for _ in range(STREAMS):
            nursery.start_soon(one)


async def _ended_count(streams: list[Any]) -> int:
    """How many of the attacker's streams the victim has ended (a read fails at once)."""
    import trio

    ended = 0
    for stream in streams:
        # a stream the victim reset (or closed) fails or ends the read at once
        with trio.move_on_after(0.2) as waiting, contextlib.suppress(Exception):
            await stream.read(1)
        ended += not waiting.cancelled_caught
    return ended


@pytest.fixture
def two_peers() -> Iterator[tuple[PeerProcess, PeerProcess, str]]:
    with Cluster() as cluster:
        a, b = cluster.start(2)
        db = new_shared_db(a, "memory")
        b.call("join", addr=db["addrs"][0], key=db["key"])
        yield a, b, db["id"]


def _still_syncs(a: PeerProcess, b: PeerProcess, db: str, name: str) -> None:
    a.call("create", db=db, coll="Items", docs=[{"name": name}])
    count = len(a.call("find", db=db, coll="Items")["docs"])
    assert b.call("wait_count", db=db, coll="Items", n=count, timeout=15)["reached"]


@pytest.mark.slow
def test_unfinished_frames_stay_within_the_budget(
    two_peers: tuple[PeerProcess, PeerProcess, str],
) -> None:
    a, b, db = two_peers
    _still_syncs(a, b, db, "before")
    node = Node(os.urandom(32)).start()
    try:
        node.call(node.connect, b.addrs[0], timeout=10)
        before = _rss(b.proc.pid)
        peak = _Peak(b.proc.pid)
        held: list[Any] = []
        sent = [0]
        try:
            node.call(_attack, node, b.peer_id, held, sent, timeout=40)
            _still_syncs(a, b, db, "under attack")
        finally:
            top = peak.stop()
        growth = top - before
        print(f"attacker sent {sent[0] / MiB:.0f} MiB; victim RSS grew {growth / MiB:.0f} MiB")
        assert growth < RSS_BOUND, f"victim grew {growth / MiB:.0f} MiB"
        # refused and stalled frames are given up: every stream the attacker holds ends
        assert poll_until(
            lambda: node.call(_ended_count, held, timeout=10) == len(held), 2 * STALL_TIMEOUT
        )
        _still_syncs(a, b, db, "after")
    finally:
        node.stop()
    assert b.call("stats")  # the victim is alive and answering


FLOOD = 256 * MiB
WINDOW_BOUND = 48 * MiB  # far below the flood; the muxer may hold 256 KiB per stream


async def _flood_past_the_window(node: Node, victim: str) -> int:
    """Fill this peer's frame budget, then flood a third stream, ignoring its Yamux window.

    Two streams announce maximal frames and send nothing more, so a third stream's
    frame waits for room and its stream is not read: what arrives on it stays in the
    victim's muxer. py-libp2p's own sender would stop at the window (256 KiB); this one
    writes raw DATA frames.
    """
    import struct

    import trio

    for _ in range(2):
        stream = await node.open_stream(victim, p.PROTOCOL_ID_PERSISTENT)
        await stream.write(varint.encode(ANNOUNCED))
    await trio.sleep(0.5)  # the victim reserves room for both frames
    stream = await node.open_stream(victim, p.PROTOCOL_ID_PERSISTENT)
    await stream.write(varint.encode(ANNOUNCED))
    await trio.sleep(0.5)  # the victim reads the prefix, then waits for room
    muxed = stream.muxed_stream
    chunk = b"\x00" * (60 * 1024)
    header = struct.pack("!BBHII", 0, 0, 0, muxed.stream_id, len(chunk))
    sent = 0
    with trio.move_on_after(10):
        try:
            while sent < FLOOD:
                await muxed.conn._write_frame(header + chunk)
                sent += len(chunk)
        except Exception:  # the victim closed the connection
            pass
    return sent


@pytest.mark.slow
def test_a_sender_ignoring_flow_control_is_cut_off(
    two_peers: tuple[PeerProcess, PeerProcess, str],
) -> None:
    a, b, db = two_peers
    node = Node(os.urandom(32)).start()
    try:
        node.call(node.connect, b.addrs[0], timeout=10)
        before = _rss(b.proc.pid)
        peak = _Peak(b.proc.pid)
        try:
            sent = node.call(_flood_past_the_window, node, b.peer_id, timeout=40)
            _still_syncs(a, b, db, "under attack")
        finally:
            top = peak.stop()
        growth = top - before
        print(f"attacker sent {sent / MiB:.0f} MiB; victim RSS grew {growth / MiB:.0f} MiB")
        # the victim closes the connection at the first excess (or, when the stream
        # is already gone, drops what comes for it): py-libp2p kept all of it
        assert growth < WINDOW_BOUND, f"victim grew {growth / MiB:.0f} MiB"
    finally:
        node.stop()
    _still_syncs(a, b, db, "after")
