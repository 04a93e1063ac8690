"""W4's receiving peer in its own process (bench/bench_relay.py), on any lab host.

Arguments: one JSON object (``addr``, ``key``, ``writes``, ``paced``, ``peer``: keyword
arguments for ``tk.Peer``). Prints JSON lines on stdout: ``{"ready": true}`` once joined
and listening; ``{"bulk_done": <epoch s>}`` when the ``writes`` documents have arrived;
``{"latencies_ms": [...]}`` for the paced documents (each carries its send time ``t``).
"""

from __future__ import annotations

import json
import sys
import threading
import time

import threadkit as tk


def main() -> None:
    args = json.loads(sys.argv[1])
    with tk.Peer(memory=True, network=True, **args["peer"]) as peer:
        db = peer.new_db_from_addr(args["addr"], args["key"], timeout=60)
        feed = db.listen(collection="Docs", actions=["create"])
        bulk, paced = args["writes"], args["paced"]
        latencies: list[float] = []
        finished = threading.Event()

        def collect() -> None:
            count = 0
            for event in feed:
                if not isinstance(event, tk.Event) or event.document is None:
                    continue
                if "paced" in event.document:
                    latencies.append((time.time() - event.document["t"]) * 1000)
                    if len(latencies) >= paced:
                        finished.set()
                        return
                else:
                    count += 1
                    if count == bulk:
                        print(json.dumps({"bulk_done": time.time()}), flush=True)

        threading.Thread(target=collect, daemon=True).start()
        print(json.dumps({"ready": True}), flush=True)
        finished.wait(timeout=300)
        feed.close()
        print(json.dumps({"latencies_ms": latencies}), flush=True)


if __name__ == "__main__":
    main()
