"""W4 across a relay: two peers behind separate NATs (the network lab), beside loopback.

Peer A writes 2,000 single-document transactions, peer B (bench/w4_receiver.py) joined
A's database and counts docs/s until all have arrived; then 200 writes paced 20 ms apart
and the p50/p95 time from a write's start on A to its arrival on B — as W4 in
bench/bench_net.py, but with both peers in child processes. Run twice in the same run:
on this machine's loopback, and in the lab (tests/netlab/lab.py) with A and B behind
their own NAT routers, connected only through a relay peer on the public host — and
once more in the lab over the direct connection DCUtR makes through the two NATs (the
relay is stopped once the routers show the direct flow, before the writes). The relayed
run uses routers that reset unsolicited SYNs, where hole punching fails (so its records
do cross the relay); the direct run routers that drop them, where it succeeds
(docs/networking.md). Needs root, ``ip`` and ``nft`` for the lab part (else only
loopback runs, said on stderr).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import Figure, figure

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "tests" / "netlab"))

__all__ = ["run"]

RECEIVER = Path(__file__).with_name("w4_receiver.py")
WILDCARD = ["/ip4/0.0.0.0/tcp/0"]


def _w4(
    a_wrap: list[str],
    b_wrap: list[str],
    listen: list[str],
    relays: list[str],
    writes: int = 2000,
    paced: int = 200,
    joined: Callable[[], None] | None = None,
) -> dict[str, float]:
    from procs import PeerProcess

    peer_args: dict[str, Any] = {"relays": relays} if relays else {}
    with PeerProcess(wrap=a_wrap, listen=listen, pull_interval=2.0, peer_args=peer_args) as a:
        shared = a.call("new_db", name="w4")
        a.call("new_collection", db=shared["id"], name="Docs")
        spec = {
            "addr": shared["addrs"][0],
            "key": shared["key"],
            "writes": writes,
            "paced": paced,
            "peer": {"listen": listen, **peer_args},
        }
        b = subprocess.Popen(
            [*b_wrap, sys.executable, str(RECEIVER), json.dumps(spec)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert b.stdout is not None
            assert json.loads(b.stdout.readline()).get("ready"), "receiver did not join"
            if joined is not None:
                joined()
            start = time.time()
            docs = [{"i": i} for i in range(writes)]
            a.call("create_each", db=shared["id"], coll="Docs", docs=docs, timeout=300)
            bulk_done = json.loads(b.stdout.readline())["bulk_done"]
            for i in range(paced):
                doc = {"paced": i, "t": time.time()}
                a.call("create_each", db=shared["id"], coll="Docs", docs=[doc])
                time.sleep(0.02)
            latencies = sorted(json.loads(b.stdout.readline())["latencies_ms"])
        finally:
            if b.poll() is None:
                b.kill()
            b.wait(timeout=30)
    return {
        "docs_per_s": writes / (bulk_done - start),
        "p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "p95_ms": latencies[int(len(latencies) * 0.95) - 1] if latencies else float("nan"),
        "visible": len(latencies),
    }


def _in_lab(direct: bool) -> dict[str, float] | None:
    """W4 between the two NATed homes: through the relay, or ``direct`` after a hole punch."""
    import lab as netlab
    from procs import PeerProcess

    reason = netlab.unavailable()
    if reason is not None:
        print(f"bench_relay: lab part skipped: {reason}", file=sys.stderr)
        return None
    netlab.clean_leftovers()
    with netlab.Lab() as lab:
        world = lab.nat_world(unsolicited="drop" if direct else "reset")
        relay = PeerProcess(
            wrap=world["public"].prefix(), listen=WILDCARD, peer_args={"relay_service": True}
        )
        lab.closers.append(relay.close)

        def punched() -> None:  # wait for the direct flow, then take the relay away
            wan1, wan2 = world["router1"].addrs["wan"], world["router2"].addrs["wan"]
            deadline = time.monotonic() + 60
            while not (
                any(f"dst={wan2} " in f for f in lab.flows(world["router1"]))
                and any(f"dst={wan1} " in f for f in lab.flows(world["router2"]))
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError("no direct connection between the NATs within 60 s")
                time.sleep(0.2)
            relay.close()

        return _w4(
            world["home1"].prefix(),
            world["home2"].prefix(),
            WILDCARD,
            [relay.addrs[0]],
            joined=punched if direct else None,
        )


def run(rounds: int = 1) -> list[Figure]:
    """W4 on loopback, then between two NATs through a relay, then direct (one round each)."""
    loopback = _w4([], [], ["/ip4/127.0.0.1/tcp/0"], [])
    relayed = _in_lab(direct=False)
    direct = _in_lab(direct=True) if relayed is not None else None
    figures = [
        figure(
            "W4_loopback_two_children",
            "docs/s",
            "none",
            [loopback["docs_per_s"]],
            [loopback["docs_per_s"]],
            p50_visible_ms=round(loopback["p50_ms"], 1),
            p95_visible_ms=round(loopback["p95_ms"], 1),
            paced_visible=loopback["visible"],
        )
    ]
    if relayed is not None:
        figures.append(
            figure(
                "W4_through_relay_two_nats",
                "docs/s",
                "W4 on loopback, same run",
                [relayed["docs_per_s"]],
                [loopback["docs_per_s"]],
                p50_visible_ms=round(relayed["p50_ms"], 1),
                p95_visible_ms=round(relayed["p95_ms"], 1),
                paced_visible=relayed["visible"],
            )
        )
    if direct is not None:
        figures.append(
            figure(
                "W4_direct_two_nats_after_hole_punch",
                "docs/s",
                "W4 on loopback, same run",
                [direct["docs_per_s"]],
                [loopback["docs_per_s"]],
                p50_visible_ms=round(direct["p50_ms"], 1),
                p95_visible_ms=round(direct["p95_ms"], 1),
                paced_visible=direct["visible"],
            )
        )
    return figures
