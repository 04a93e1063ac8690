"""Replication figures W4 and W5 (docs/design.md §9), beside raw py-libp2p from the same run.

- baseline: request/response round trips over py-libp2p between two processes (a
  threadkit ``Node`` here, tests/net/node_child.py there), one new stream per request as
  the threadkit protocol does, and on one long-lived stream.
- W4: peer A (a child process) makes 2,000 single-document writes, each document with
  its own ``_id`` (issue 16's definition); peer B (this process) joined A's database and
  listens on the collection (``db.listen``): docs/s until all have reached B's listener;
  then 200 writes paced 20 ms apart, and the p50/p95 time from a write's start on A to
  its event on B. Beside docs/s, the CPU seconds per document each process spent during
  the 2,000 (Linux, from ``/proc``): on a shared machine docs/s follows the load, the CPU
  cost per document much less; and the records per push B received (a push costs both
  sides ~1 ms of CPU whatever it carries: bench/bench_w4_rhythm.py).
- W5: three peers (child processes) make 500 writes each at the same time; seconds
  until every peer holds all 1,500 documents.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.harness import Figure, figure

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

__all__ = ["run"]

ECHO = "/threadkit-test/echo/1.0.0"


def _baseline(requests: int = 300) -> tuple[float, float]:
    """(new-stream round trips/s, same-stream round trips/s) to an echo peer in another process."""
    from threadkit.core.identity import Identity
    from threadkit.net.framing import FrameReader, write_frame
    from threadkit.net.node import Node

    child = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "net" / "node_child.py"), os.urandom(32).hex()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    remote = json.loads(child.stdout.readline())
    payload = os.urandom(200)
    with Node(Identity.generate().seed) as node:
        node.call(node.connect, remote["addrs"][0], timeout=10)

        async def new_streams() -> float:
            start = time.perf_counter()
            for _ in range(requests):
                stream = await node.open_stream(remote["peer_id"], ECHO)
                await write_frame(stream, payload)
                await FrameReader(stream).read_frame(1 << 20)
                await stream.close()
            return requests / (time.perf_counter() - start)

        async def one_stream() -> float:
            stream = await node.open_stream(remote["peer_id"], ECHO)
            reader = FrameReader(stream)
            start = time.perf_counter()
            for _ in range(requests):
                await write_frame(stream, payload)
                await reader.read_frame(1 << 20)
            rate = requests / (time.perf_counter() - start)
            await stream.close()
            return rate

        fresh = node.call(new_streams, timeout=120)
        same = node.call(one_stream, timeout=120)
    child.stdin.close()
    child.wait(timeout=30)
    return fresh, same


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (NaN where ``/proc`` is missing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _w4(writes: int = 2000, paced: int = 200) -> dict[str, float]:
    from procs import PeerProcess

    import threadkit as tk

    with PeerProcess(pull_interval=2.0) as a, tk.Peer(memory=True, network=True) as b:
        shared = a.call("new_db", name="w4")
        a.call("new_collection", db=shared["id"], name="Docs")
        db = b.new_db_from_addr(shared["addrs"][0], tk.ThreadKey.from_string(shared["key"]))
        arrivals: list[tuple[float, dict[str, Any]]] = []
        receiver = b._service._receiver  # type: ignore[union-attr]
        receive, pushes = receiver.receive, [0]

        async def counted(*args: Any) -> int:  # pushes (and pulls) B received
            pushes[0] += 1
            return await receive(*args)

        receiver.receive = counted  # type: ignore[method-assign]
        feed = db.listen(collection="Docs", actions=["create"])
        done = threading.Event()

        def collect() -> None:
            for event in feed:
                if isinstance(event, tk.Event) and event.document is not None:
                    arrivals.append((time.time(), event.document))
                    if len(arrivals) >= writes:
                        done.set()

        threading.Thread(target=collect, daemon=True).start()
        docs = [{"_id": f"w4-{i:06d}", "i": i} for i in range(writes)]
        cpu_a, cpu_b = _cpu_seconds(a.proc.pid), _cpu_seconds(os.getpid())
        pushes[0] = 0
        start = time.time()
        a.call("create_each", db=shared["id"], coll="Docs", docs=docs, timeout=300)
        done.wait(timeout=120)
        elapsed = time.time() - start
        cpu_a = _cpu_seconds(a.proc.pid) - cpu_a
        cpu_b = _cpu_seconds(os.getpid()) - cpu_b
        batches = pushes[0]
        throughput = len(arrivals) / elapsed
        arrivals.clear()
        done.clear()
        latencies = []
        for i in range(paced):
            sent = time.time()
            a.call(
                "create_each",
                db=shared["id"],
                coll="Docs",
                docs=[{"_id": f"w4-paced-{i:04d}", "paced": i, "t": sent}],
            )
            time.sleep(0.02)
        deadline = time.time() + 20
        while len([d for _, d in arrivals if "paced" in d]) < paced and time.time() < deadline:
            time.sleep(0.05)
        for arrived, doc in arrivals:
            if "paced" in doc:
                latencies.append((arrived - doc["t"]) * 1000)
        feed.close()
    latencies.sort()
    return {
        "docs_per_s": throughput,
        "p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "p95_ms": latencies[int(len(latencies) * 0.95) - 1] if latencies else float("nan"),
        "visible": len(latencies),
        "cpu_a_us": cpu_a / writes * 1e6,
        "cpu_b_us": cpu_b / writes * 1e6,
        "records_per_push": writes / max(batches, 1),
    }


def _w5(per_peer: int = 500) -> float:
    from procs import PeerProcess

    peers = [PeerProcess(pull_interval=1.0) for _ in range(3)]
    try:
        shared = peers[0].call("new_db", name="w5")
        peers[0].call("new_collection", db=shared["id"], name="Docs")
        for other in peers[1:]:
            other.call("join", addr=shared["addrs"][0], key=shared["key"])
        total = 3 * per_peer
        start = time.time()
        writers = [
            threading.Thread(
                target=peer.call,
                args=("create_each",),
                kwargs={
                    "db": shared["id"],
                    "coll": "Docs",
                    "docs": [{"peer": n, "i": i} for i in range(per_peer)],
                    "timeout": 300,
                },
            )
            for n, peer in enumerate(peers)
        ]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        for peer in peers:
            peer.call("wait_count", db=shared["id"], coll="Docs", n=total, timeout=120)
        return time.time() - start
    finally:
        for peer in peers:
            peer.close()


def run(rounds: int = 1) -> list[Figure]:
    """W4 and W5 (one round each: they take tens of seconds)."""
    fresh, same = _baseline()
    w4 = _w4()
    w5 = _w5()
    return [
        figure("libp2p_roundtrip_new_stream", "round trips/s", "none", [fresh], [fresh]),
        figure("libp2p_roundtrip_same_stream", "round trips/s", "none", [same], [same]),
        figure(
            "W4_two_peer_writes_supplied_ids_listener_on_B",
            "docs/s",
            "raw py-libp2p round trips/s (new stream each)",
            [w4["docs_per_s"]],
            [fresh],
            p50_visible_ms=round(w4["p50_ms"], 1),
            p95_visible_ms=round(w4["p95_ms"], 1),
            paced_visible=w4["visible"],
            cpu_us_per_doc_A=round(w4["cpu_a_us"]),
            cpu_us_per_doc_B=round(w4["cpu_b_us"]),
            records_per_push=round(w4["records_per_push"], 1),
            load=round(os.getloadavg()[0], 2),
        ),
        figure(
            "W5_three_peer_convergence",
            "1/s (1 / seconds to converge)",
            "raw py-libp2p round trips/s (new stream each)",
            [1 / w5],
            [fresh],
            seconds=round(w5, 2),
        ),
    ]
