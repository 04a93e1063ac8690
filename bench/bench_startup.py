"""Start-up: a fresh process to ``tk.Peer(path)`` with its network ready, beside ``import libp2p``.

Each round starts two child processes one after the other and times each from ``Popen``
to the line it prints when done (so interpreter teardown is not counted):

- baseline: ``python -c 'import libp2p'`` — the floor any py-libp2p peer pays;
- workload: ``import threadkit``, ``tk.Peer(path, network=True)`` on a repo created
  before the first round (a reopen, as a user's second session), until the node listens
  and ``peer.addrs`` is known.

The figure is 1 / seconds (higher is better, as every figure here); the seconds are in
``detail``. Rounds alternate so the machine's load drifts cancel.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import Figure, figure

__all__ = ["run"]

ROOT = Path(__file__).resolve().parents[1]

LIBP2P = "import libp2p; print('ready', flush=True)"

PEER = """
import sys
import threadkit as tk
peer = tk.Peer(sys.argv[1], network=True)
assert peer.online and peer.addrs
print('ready', flush=True)
peer.close()
"""


def _time_to_ready(args: list[str]) -> float:
    """Seconds from starting ``python args…`` to its first output line."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, env=env, text=True, cwd=ROOT
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - start
    proc.wait(timeout=30)
    if line.strip() != "ready" or proc.returncode != 0:
        raise RuntimeError(f"{args[:2]} did not get ready (exit {proc.returncode})")
    return elapsed


def run(rounds: int = 7) -> list[Figure]:
    """The start-up figure, ``rounds`` alternating rounds (best and median seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        repo = str(Path(tmp) / "repo")
        _time_to_ready(["-c", PEER, repo])  # creates the repo (and warms the file cache)
        peer_s: list[float] = []
        base_s: list[float] = []
        for _ in range(rounds):
            base_s.append(_time_to_ready(["-c", LIBP2P]))
            peer_s.append(_time_to_ready(["-c", PEER, repo]))
    return [
        figure(
            "startup_peer_network_ready",
            "1/s (1 / seconds from process start to network ready)",
            "python -c 'import libp2p' (1 / seconds)",
            [1 / s for s in peer_s],
            [1 / s for s in base_s],
            best_s=round(min(peer_s), 3),
            median_s=round(statistics.median(peer_s), 3),
            import_libp2p_best_s=round(min(base_s), 3),
            import_libp2p_median_s=round(statistics.median(base_s), 3),
        )
    ]
