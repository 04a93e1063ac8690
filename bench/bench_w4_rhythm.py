"""W4's push rhythm: CPU per document on both peers when pushes carry few or many records.

Run as a script (``python bench/bench_w4_rhythm.py --pace 0.0005 --writes 2000``) with
``PYTHONPATH`` naming the tree to measure, from a directory that holds no ``threadkit``
(the script's own directory comes first on ``sys.path``, then ``PYTHONPATH``): peer A (a
child process, tests/e2e/peer_child.py) makes ``writes`` single-document commits with
their own ``_id``, sleeping ``pace`` seconds after each, so that each push carries
about one record (a long pace), a few, or as many as queue up (no pace); peer B (this
process) joined A's database and listens on the collection. Prints one JSON line: docs/s
until the last reached B's listener, the CPU µs per document of A and of B (from
``/proc``) and of each of B's threads by name, and the pushes B received (records per
push). Without ``pace`` it is ``bench.run net``'s W4 with the push count added.
``--inline N`` sets B's ``INLINE_RECORDS`` (0: every push applied in a worker thread);
``--probe`` adds how late B's loop wakes a 1 ms sleep; ``W4_PROFILE=<file>`` dumps a
cProfile of B's loop thread (thread CPU time) during the writes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

__all__ = ["main"]


def _threads_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of a process so far, summed by thread name."""
    tick = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            head, tail = (task / "stat").read_text().rsplit(")", 1)
        except OSError:
            continue
        name = names.get(int(task.name)) or head.split("(", 1)[1]
        name = name.rstrip("0123456789- ")
        fields = tail.split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(
    writes: int, pace: float, inline: int | None = None, probe_loop: bool = False
) -> dict[str, Any]:
    """One round: A writes ``writes`` documents ``pace`` seconds apart; B listens.

    ``inline`` sets B's ``threadkit.net.receive.INLINE_RECORDS`` (0: every push is
    applied in a worker thread), where the tree has it. ``probe_loop`` measures how late
    B's event loop wakes a 1 ms sleep (``B_loop_late_ms``).
    """
    from procs import PeerProcess

    import threadkit as tk
    from threadkit.net import receive as receive_module

    if inline is not None and hasattr(receive_module, "INLINE_RECORDS"):
        receive_module.INLINE_RECORDS = inline  # type: ignore[attr-defined]

    with PeerProcess(pull_interval=2.0) as a, tk.Peer(memory=True, network=True) as b:
        shared = a.call("new_db", name="w4")
        a.call("new_collection", db=shared["id"], name="Docs")
        db = b.new_db_from_addr(shared["addrs"][0], tk.ThreadKey.from_string(shared["key"]))
        receiver = b._service._receiver  # type: ignore[union-attr]
        pushes = [0]
        receive = receiver.receive

        async def counted(*args: Any) -> int:
            pushes[0] += 1
            return await receive(*args)

        receiver.receive = counted  # type: ignore[method-assign]
        inline_ms: list[float] = []
        now = getattr(db, "apply_records_now", None)
        if now is not None:  # the tree applies small pushes on the loop: time each

            def timed(*args: Any) -> Any:
                started = time.perf_counter()
                try:
                    return now(*args)
                finally:
                    inline_ms.append((time.perf_counter() - started) * 1000)

            db.apply_records_now = timed  # type: ignore[method-assign]
        feed = db.listen(collection="Docs", actions=["create"])
        done = threading.Event()
        seen = [0]

        def collect() -> None:
            for event in feed:
                if isinstance(event, tk.Event) and event.document is not None:
                    seen[0] += 1
                    if seen[0] >= writes:
                        done.set()

        threading.Thread(target=collect, daemon=True, name="listener").start()
        docs = [{"_id": f"w4-{i:06d}", "i": i} for i in range(writes)]
        me = os.getpid()
        cpu_a, cpu_b, threads_b = _cpu(a.proc.pid), _cpu(me), _threads_cpu(me)
        inline_ms.clear()
        lateness: list[float] = []
        probing = [True]

        async def probe() -> None:  # how late B's event loop wakes a 1 ms sleep
            import trio

            while probing[0]:
                asked = trio.current_time()
                await trio.sleep(0.001)
                lateness.append(trio.current_time() - asked - 0.001)

        if probe_loop:  # off by default: its 1,000 wake-ups a second cost B CPU too
            b._node.spawn(probe)  # type: ignore[union-attr]
        pushes[0] = 0
        profile = os.environ.get("W4_PROFILE")
        if profile:
            import cProfile

            prof = cProfile.Profile(time.thread_time)

            async def enable() -> None:
                prof.enable()

            b._node.call(enable, timeout=10)  # type: ignore[union-attr]
        start = time.time()
        a.call("create_each", db=shared["id"], coll="Docs", docs=docs, pace=pace, timeout=600)
        done.wait(timeout=120)
        elapsed = time.time() - start
        cpu_a, cpu_b = _cpu(a.proc.pid) - cpu_a, _cpu(me) - cpu_b
        after = _threads_cpu(me)
        probing[0] = False
        if profile:

            async def disable() -> None:
                prof.disable()

            b._node.call(disable, timeout=10)  # type: ignore[union-attr]
            prof.dump_stats(profile)
        feed.close()
    per_thread = {
        name: round((after[name] - threads_b.get(name, 0.0)) / writes * 1e6)
        for name in after
        if after[name] - threads_b.get(name, 0.0) > 0
    }
    return {
        "tree": str(Path(tk.__file__).parents[1]),
        "pace_ms": pace * 1000,
        "inline_records": getattr(receive_module, "INLINE_RECORDS", None),
        "docs_per_s": round(seen[0] / elapsed),
        "cpu_us_A": round(cpu_a / writes * 1e6),
        "cpu_us_B": round(cpu_b / writes * 1e6),
        "pushes": pushes[0],
        "records_per_push": round(writes / max(pushes[0], 1), 1),
        "B_threads_us": per_thread,
        "B_loop_late_ms": {
            "p50": round(statistics.median(lateness) * 1000, 2),
            "p99": round(sorted(lateness)[int(len(lateness) * 0.99)] * 1000, 2),
            "max": round(max(lateness) * 1000, 2),
        }
        if lateness
        else None,
        "B_inline_apply_ms": {
            "n": len(inline_ms),
            "p50": round(statistics.median(inline_ms), 2) if inline_ms else None,
            "max": round(max(inline_ms), 2) if inline_ms else None,
            "over_5ms": sum(1 for ms in inline_ms if ms > 5),
        },
        "load": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    """Parse the arguments, run one round, print its JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--pace", type=float, default=0.0, help="seconds after each commit")
    parser.add_argument("--inline", type=int, default=None, help="B's INLINE_RECORDS")
    parser.add_argument("--probe", action="store_true", help="measure B's loop lateness")
    args = parser.parse_args()
    print(json.dumps(run(args.writes, args.pace, args.inline, args.probe)), flush=True)


if __name__ == "__main__":
    main()
