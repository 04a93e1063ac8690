"""Start-up and first-call costs, each beside the bare imports it needs, in the same run.

Each round starts child processes one after the other (never two at once):

- ``startup_peer_network_ready``: seconds from ``Popen`` to the line a child prints once
  ``tk.Peer(path, network=True)`` on a reopened repo listens and ``peer.addrs`` is known,
  beside ``python -c 'import libp2p'`` timed the same way (interpreter teardown is not
  counted). The floor any py-libp2p peer pays.
- ``first_find``: the first ``find`` in a fresh process (a peer just opened without the
  network), beside the same ``find`` on a twin collection (the same documents) right
  after it in the same process: a ``find`` needs no library the peer has not loaded, so
  the two should be equal.
- ``first_df``: the first ``coll.df`` in that process, beside ``import pandas`` timed in
  a fresh process of its own plus the twin collection's first ``.df`` (the frame built
  again with every module loaded): what a first ``.df`` cannot avoid paying. The first
  ``query`` after ``.df`` (on the cached frame) is in ``detail`` beside the twin's.
- ``first_query``: the first ``coll.query`` in a fresh process of its own, nothing read
  before it (a range without index, nothing cached: it scans), beside ``import pandas``
  in a fresh process plus the twin collection's first ``query`` right after it.

The figures are 1 / seconds (higher is better, as every figure here); the seconds are in
``detail``. Children run with Python's bytecode cache on (as an installed package has it;
the first, untimed, run writes it), so compiling threadkit's sources is not counted.
"""

from __future__ import annotations

import json
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
DOCS = 10_000

LIBP2P = "import libp2p; print('ready', flush=True)"

PEER = """
import sys
import threadkit as tk
peer = tk.Peer(sys.argv[1], network=True)
assert peer.online and peer.addrs
print('ready', flush=True)
peer.close()
"""

PANDAS = """
import json, time
t0 = time.perf_counter()
import pandas
print(json.dumps({"import_pandas": time.perf_counter() - t0}), flush=True)
"""

MAKE = """
import sys
import threadkit as tk
with tk.Peer(sys.argv[1], network=False) as peer:
    db = peer.new_db("bench")
    docs = [{"n": i, "name": f"user{i}", "score": i * 0.5} for i in range(int(sys.argv[2]))]
    for name in ("a", "b"):
        db.new_collection(name).create(docs)
    print(db.id, flush=True)
"""

READS = """
import json, sys, time
import threadkit as tk
peer = tk.Peer(sys.argv[1], network=False)
db = peer.get_db(sys.argv[2])
a, b = db["a"], db["b"]
out = {}
def timed(key, fn):
    t0 = time.perf_counter()
    fn()
    out[key] = time.perf_counter() - t0
query = tk.where("n").gt(100).and_("n").lt(1100)
timed("first_find", lambda: a.find(query))
timed("twin_find", lambda: b.find(query))
timed("first_df", lambda: a.df)
timed("twin_df", lambda: b.df)
timed("first_query", lambda: a.query("n > 5000"))
timed("twin_query", lambda: b.query("n > 5000"))
peer.close()
print(json.dumps(out), flush=True)
"""

FIRST_QUERY = """
import json, sys, time
import threadkit as tk
peer = tk.Peer(sys.argv[1], network=False)
db = peer.get_db(sys.argv[2])
out = {}
for key, name in (("first_query", "a"), ("twin_query", "b")):
    t0 = time.perf_counter()
    db[name].query("n > 100 and n < 1100")
    out[key] = time.perf_counter() - t0
peer.close()
print(json.dumps(out), flush=True)
"""


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _time_to_ready(args: list[str]) -> float:
    """Seconds from starting ``python args…`` to its first output line."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, env=_env(), text=True, cwd=ROOT
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - start
    proc.wait(timeout=60)
    if line.strip() != "ready" or proc.returncode != 0:
        raise RuntimeError(f"{args[:2]} did not get ready (exit {proc.returncode})")
    return elapsed


def _child(args: list[str]) -> str:
    """The last output line of ``python args…``."""
    out = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=300,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def _stats(prefix: str, seconds: list[float]) -> dict[str, float]:
    return {
        f"{prefix}_best_s": round(min(seconds), 4),
        f"{prefix}_median_s": round(statistics.median(seconds), 4),
    }


def run(rounds: int = 7) -> list[Figure]:
    """The start-up and first-call figures, ``rounds`` alternating rounds each."""
    with tempfile.TemporaryDirectory() as tmp:
        repo = str(Path(tmp) / "repo")
        _time_to_ready(["-c", PEER, repo])  # creates the repo (and the bytecode cache)
        reads_repo = str(Path(tmp) / "reads")
        thread = _child(["-c", MAKE, reads_repo, str(DOCS)])
        _child(["-c", READS, reads_repo, thread])  # warms the file and bytecode caches
        peer_s: list[float] = []
        libp2p_s: list[float] = []
        pandas_s: list[float] = []
        reads: list[dict[str, float]] = []
        queries: list[dict[str, float]] = []
        for _ in range(rounds):
            libp2p_s.append(_time_to_ready(["-c", LIBP2P]))
            peer_s.append(_time_to_ready(["-c", PEER, repo]))
            pandas_s.append(json.loads(_child(["-c", PANDAS]))["import_pandas"])
            reads.append(json.loads(_child(["-c", READS, reads_repo, thread])))
            queries.append(json.loads(_child(["-c", FIRST_QUERY, reads_repo, thread])))

    def col(key: str) -> list[float]:
        return [r[key] for r in reads]

    df_floor = [p + t for p, t in zip(pandas_s, col("twin_df"), strict=True)]
    first_query = [q["first_query"] for q in queries]
    twin_query = [q["twin_query"] for q in queries]
    query_floor = [p + t for p, t in zip(pandas_s, twin_query, strict=True)]
    return [
        figure(
            "startup_peer_network_ready",
            "1/s (1 / seconds from process start to network ready)",
            "python -c 'import libp2p' (1 / seconds)",
            [1 / s for s in peer_s],
            [1 / s for s in libp2p_s],
            **_stats("peer", peer_s),
            **_stats("import_libp2p", libp2p_s),
        ),
        figure(
            "first_find_fresh_process",
            f"1/s (1 / seconds of the first find, 1,000 of {DOCS:,} docs)",
            "the same find on a twin collection right after, same process (1 / seconds)",
            [1 / s for s in col("first_find")],
            [1 / s for s in col("twin_find")],
            **_stats("first_find", col("first_find")),
            **_stats("twin_find", col("twin_find")),
        ),
        figure(
            "first_df_fresh_process",
            f"1/s (1 / seconds of the first coll.df, {DOCS:,} docs)",
            "import pandas in a fresh process + the twin collection's first .df (1 / seconds)",
            [1 / s for s in col("first_df")],
            [1 / s for s in df_floor],
            **_stats("first_df", col("first_df")),
            **_stats("import_pandas", pandas_s),
            **_stats("twin_df", col("twin_df")),
            **_stats("first_query", col("first_query")),
            **_stats("twin_query", col("twin_query")),
        ),
        figure(
            "first_query_fresh_process",
            f"1/s (1 / seconds of the first coll.query, nothing before it, {DOCS:,} docs)",
            "import pandas in a fresh process + the twin collection's first query (1 / seconds)",
            [1 / s for s in first_query],
            [1 / s for s in query_floor],
            **_stats("first_query", first_query),
            **_stats("import_pandas", pandas_s),
            **_stats("twin_query", twin_query),
        ),
    ]
