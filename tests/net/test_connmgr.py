"""Connection-manager limits (``ConnLimits``): validation, plumbing, and real trimming.

The trimming tests use real py-libp2p hosts on 127.0.0.1 (in-process nodes and peers, and
one node in its own process). What py-libp2p 0.8.1 does, measured: it runs its pruner only
when a new connection arrives, so on its own a burst of connections outlives its grace
period until the next newcomer; ``Node`` also runs the pruner on a timer (as go-libp2p's
connmgr does), which the first trimming test relies on. The pruner never closes a
connection with an open stream, so GossipSub peers (two long-lived streams each) are never
trimmed: the second trimming test pins that down.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import threadkit as tk
from tests.e2e.waits import poll_until, wait_for_docs
from threadkit.errors import InvalidInput
from threadkit.net.connmgr import (
    DEFAULT_GRACE_PERIOD,
    DEFAULT_HIGH_WATER,
    DEFAULT_LOW_WATER,
    MAX_CONNECTIONS,
    ConnLimits,
    parse_duration,
)
from threadkit.net.node import Node

CHILD = Path(__file__).with_name("node_child.py")


def seed(n: int) -> bytes:
    return bytes([n]) * 32


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    """For connection state, which no event announces (tests/e2e/waits.py)."""
    return poll_until(predicate, timeout)


async def _swarm_config(node: Node) -> dict[str, Any]:
    config = node.host.get_network().connection_config
    return {
        name: getattr(config, name)
        for name in (
            "low_watermark",
            "high_watermark",
            "grace_period",
            "max_connections",
            "min_connections",
        )
    }


async def _stream_counts(node: Node) -> list[int]:
    return [len(c.get_streams()) for c in node.host.get_network().get_connections()]


@pytest.fixture
def make_node() -> Iterator[Callable[..., Node]]:
    nodes: list[Node] = []

    def make(identity_seed: bytes, **options: Any) -> Node:
        node = Node(identity_seed, **options)
        nodes.append(node)
        return node.start()

    yield make
    for node in nodes:
        node.stop()


# ------------------------------------------------------------------ validation


def test_defaults_are_threadsds() -> None:
    limits = ConnLimits()
    assert (limits.low_water, limits.high_water, limits.grace_period) == (100, 400, 20.0)
    assert (DEFAULT_LOW_WATER, DEFAULT_HIGH_WATER, DEFAULT_GRACE_PERIOD) == (100, 400, 20.0)
    assert limits.trim_interval == 10.0  # go-libp2p connmgr's silence period
    assert ConnLimits(1, 1, 0).trim_interval == 0.25
    assert ConnLimits(1, 1, 3).grace_period == 3.0 and isinstance(
        ConnLimits(1, 1, 3).grace_period, float
    )
    with pytest.raises(AttributeError):
        limits.low_water = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 10, 1.0), "low_water must be positive"),
        ((1, 0, 1.0), "high_water must be positive"),
        ((-3, 10, 1.0), "low_water must be positive"),
        ((5, 2, 1.0), "low_water (5) must not exceed high_water (2)"),
        ((1, MAX_CONNECTIONS + 1, 1.0), "must not exceed 1000000"),
        ((1, 2, -1.0), "grace_period must be 0 or more"),
        ((1, 2, math.nan), "grace_period must be 0 or more"),
        ((1, 2, math.inf), "grace_period must be 0 or more"),
        ((1, 2, "20s"), "grace_period must be seconds"),
        (("1", 2, 1.0), "low_water must be an int"),
        ((1, 2.5, 1.0), "high_water must be an int"),
        ((True, 2, 1.0), "low_water must be an int"),
    ],
)
def test_invalid_limits_are_refused(args: tuple[Any, Any, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        ConnLimits(*args)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_parse_duration_takes_go_durations() -> None:
    cases = {"20s": 20.0, "1m": 60.0, "1m30s": 90.0, "500ms": 0.5, "1.5h": 5400.0, "0": 0.0}
    cases |= {".5s": 0.5, "250us": 0.00025, "2µs": 2e-6, " 3s ": 3.0}
    for text, seconds in cases.items():
        assert parse_duration(text) == pytest.approx(seconds), text
    for bad in ["20", "1.5", "", "s", "-1s", "1x", "1s2", "twenty seconds", "1e3s"]:
        with pytest.raises(InvalidInput):
            parse_duration(bad, "connGracePeriod")
    with pytest.raises(InvalidInput, match="connGracePeriod: '20' has no unit"):
        parse_duration("20", "connGracePeriod")


def test_parse_builds_limits_from_daemon_strings() -> None:
    assert ConnLimits.parse("7", "9", "1m") == ConnLimits(7, 9, 60.0)
    assert ConnLimits.parse(" 100 ", "400", "20s") == ConnLimits()
    with pytest.raises(InvalidInput, match="connLowWater: 'many' is not a whole number"):
        ConnLimits.parse("many", "9", "1s")
    with pytest.raises(InvalidInput, match=r"connHighWater: '9\.5'"):
        ConnLimits.parse("1", "9.5", "1s")
    with pytest.raises(InvalidInput, match="must not exceed high_water"):
        ConnLimits.parse("10", "9", "1s")
    with pytest.raises(InvalidInput, match="connGracePeriod"):
        ConnLimits.parse("1", "9", "20")


def test_node_and_peer_refuse_other_types() -> None:
    with pytest.raises(InvalidInput, match="conn_limits must be"):
        Node(seed(1), conn_limits=(1, 2, 3.0))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="conn_limits must be"):
        tk.Peer(memory=True, network=False, conn_limits={"low_water": 1})  # type: ignore[arg-type]


# ------------------------------------------------------------------- plumbing


def test_limits_reach_the_swarm_connection_config(make_node: Callable[..., Node]) -> None:
    default = make_node(seed(2))
    assert default.conn_limits == ConnLimits()
    assert default.call(_swarm_config, default, timeout=10) == {
        "low_watermark": 100,
        "high_watermark": 400,
        "grace_period": 20.0,
        "max_connections": MAX_CONNECTIONS,  # the 250-inbound-connection workaround stays
        "min_connections": 50,  # py-libp2p's own floor
    }
    small = make_node(seed(3), conn_limits=ConnLimits(3, 7, 1.5))
    assert small.call(_swarm_config, small, timeout=10) == {
        "low_watermark": 3,
        "high_watermark": 7,
        "grace_period": 1.5,
        "max_connections": MAX_CONNECTIONS,
        "min_connections": 3,  # lowered to the low watermark (py-libp2p requires min <= low)
    }

    async def inbound_capacity(node: Node) -> int:
        return int(node.host.get_network()._inbound_limiter.total_tokens)

    assert small.call(inbound_capacity, small, timeout=10) >= MAX_CONNECTIONS - 100


def test_peer_passes_its_limits_to_its_node() -> None:
    limits = ConnLimits(low_water=4, high_water=8, grace_period=2.5)
    with tk.Peer(memory=True, network=True, pull_interval=0, conn_limits=limits) as peer:
        assert peer.conn_limits is limits
        node = peer._node
        assert node.conn_limits is limits
        config = node.call(_swarm_config, node, timeout=10)
        assert (config["low_watermark"], config["high_watermark"]) == (4, 8)
        assert config["grace_period"] == 2.5
        assert config["max_connections"] == MAX_CONNECTIONS
    with tk.Peer(memory=True, network=True, pull_interval=0) as peer:
        assert peer.conn_limits == ConnLimits()
        config = peer._node.call(_swarm_config, peer._node, timeout=10)
        assert (config["low_watermark"], config["high_watermark"]) == (100, 400)
        assert config["grace_period"] == 20.0


# ------------------------------------------------------------------- behaviour


def test_trims_to_the_low_watermark_after_the_grace_period_and_keeps_replicating(
    make_node: Callable[..., Node],
) -> None:
    """A hub with low=1, high=2, grace 3 s, reached by 5 other peers and one replica.

    Four in-process nodes dial the hub, the hub dials a node in another process, and a
    replica joins one of the hub's databases. Nothing is trimmed inside the grace period;
    after it the hub closes connections down to the low watermark (the far sides see them
    close), and the database still replicates both ways: the service dials again.
    """
    limits = ConnLimits(low_water=1, high_water=2, grace_period=3.0)
    child = subprocess.Popen(
        [sys.executable, str(CHILD), seed(70).hex()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    hub = tk.Peer(memory=True, network=True, pull_interval=0, conn_limits=limits)
    replica = tk.Peer(memory=True, network=True, pull_interval=0)
    try:
        db = hub.new_db("trimmed")
        notes = db.new_collection("Notes")
        notes.create({"_id": "n0", "text": "before"})
        info = db.info()
        joined = replica.new_db_from_addr(info.addrs[0], info.key, timeout=10)
        assert joined["Notes"].count() == 1

        crowd = [make_node(seed(60 + i)) for i in range(4)]
        assert child.stdout is not None
        far = json.loads(child.stdout.readline())
        node = hub._node
        node.call(node.connect, far["addrs"][0], timeout=10)  # outbound from the hub
        for other in crowd:
            other.call(other.connect, hub.addrs[0], timeout=10)  # inbound to the hub
        everyone = {replica.id, far["peer_id"], *(n.peer_id for n in crowd)}
        connected_at = time.monotonic()

        # inside the grace period: py-libp2p's connection-time pruner ran, trimmed nothing
        # (the hub registers the last inbound connection a moment after its dialer)
        assert wait_for(lambda: set(hub.peers()) == everyone, limits.grace_period - 0.5), (
            hub.peers()
        )

        # after it: trimmed to the low watermark, by the node's periodic trim
        assert wait_for(lambda: len(hub.peers()) <= limits.low_water, 8.0), hub.peers()
        trimmed_after = time.monotonic() - connected_at
        assert trimmed_after >= limits.grace_period - 0.5  # not before (the replica came first)
        # the far ends see their connections close
        assert wait_for(
            lambda: sum(hub.id in n.connected_peers() for n in crowd) <= limits.low_water, 5.0
        )

        # the database still replicates both ways (pushes dial again when needed)
        joined["Notes"].create({"_id": "n1", "text": "from the replica"})
        assert wait_for_docs(db, lambda: notes.has("n1"), 10.0)
        notes.create({"_id": "n2", "text": "from the hub"})
        assert wait_for_docs(joined, lambda: joined["Notes"].has("n2"), 10.0)
        assert len(hub.peers()) <= limits.high_water
    finally:
        replica.close()
        hub.close()
        if child.stdin is not None:
            child.stdin.close()
        child.wait(timeout=20)


def test_connections_with_open_streams_are_never_trimmed(make_node: Callable[..., Node]) -> None:
    """py-libp2p 0.8.1's pruner skips every connection with an open stream (measured).

    With GossipSub on, each connection carries two long-lived pubsub streams, so a node
    run with ``enable_pubsub`` (the daemon's ``--enableNetPubsub``) keeps all of its
    connections whatever its limits. go-libp2p's connmgr would trim them (open streams
    only make a connection less likely to be chosen). If this test fails, py-libp2p has
    changed its rule: update docs/daemon.md.
    """
    limits = ConnLimits(low_water=1, high_water=1, grace_period=0.5)
    hub = make_node(seed(80), conn_limits=limits, enable_pubsub=True)
    others = [make_node(seed(81 + i), enable_pubsub=True) for i in range(2)]
    for other in others:
        other.call(other.connect, hub.addrs[0], timeout=10)
    assert wait_for(lambda: all(n > 0 for n in hub.call(_stream_counts, hub, timeout=5)), 5.0)
    time.sleep(limits.grace_period + 6 * limits.trim_interval)  # 2 s: six trim rounds
    assert sorted(hub.connected_peers()) == sorted(o.peer_id for o in others)
    assert all(n > 0 for n in hub.call(_stream_counts, hub, timeout=5))
