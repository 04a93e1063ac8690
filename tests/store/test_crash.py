"""A writer killed mid-stream: every committed append survives, no half batch is visible.

A child process appends records to its own log, alternating one single
``append`` with one ``append_many`` of five, so committed counters are 1, 6, 7,
12, 13, …, and prints the counter after each commit. The parent kills it with
SIGKILL after at least 200 committed records, reopens the repo and checks it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from threadkit.core.identity import PublicKey
from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.core.records import open_record
from threadkit.store import Repo

CYCLE = 6  # one single append, then a batch of five

_CHILD = """
import sys
from threadkit.core import dagcbor
from threadkit.core.identity import Identity
from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.core.records import create_record
from threadkit.store import Repo

repo = Repo(sys.argv[1])  # durable
tid, key, log_key = ThreadID.new(), ThreadKey.new(), Identity.generate()
repo.add_thread(tid, key)
log_id = repo.add_log(tid, log_key.public, log_key).id
print("ready", tid, key, log_key.public, flush=True)
prev, counter = None, 0
while counter < 1_000_000:
    size = 1 if counter % 6 == 0 else 5
    batch = []
    for n in range(counter + 1, counter + size + 1):
        record = create_record(dagcbor.encode({"n": n}), log_key=log_key, key=key, prev=prev)
        batch.append(record)
        prev = record.cid
    if size == 1:
        counter = repo.append(tid, log_id, batch[0])
    else:
        counter = repo.append_many(tid, log_id, batch)
    print(counter, flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("linger", [0.0, 0.003, 0.02])
def test_killed_writer_leaves_only_whole_commits(tmp_path: Path, linger: float) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        ready = child.stdout.readline().split()
        assert ready[0] == "ready", ready
        tid, key, public = (
            ThreadID.from_string(ready[1]),
            ThreadKey.from_string(ready[2]),
            PublicKey.from_string(ready[3]),
        )
        printed = 0
        deadline = time.monotonic() + 30
        while printed < 200:
            line = child.stdout.readline()
            assert line and time.monotonic() < deadline, "child stopped early"
            printed = int(line)
        time.sleep(linger)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        rest = child.stdout.read()  # whole lines printed before the kill were committed too
        printed = max([printed, *(int(x) for x in rest.splitlines() if x.strip().isdigit())])
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL

    with Repo(tmp_path) as repo:  # the dead child's lock is gone
        log_id = public.peer_id
        head = repo.get_head(tid, log_id)
        assert printed <= head.counter <= printed + 5
        assert head.counter % CYCLE in (0, 1), f"partial batch visible: counter {head.counter}"
        stored = repo.read_log(tid, log_id)
        assert [s.counter for s in stored] == list(range(1, head.counter + 1))
        prev = None
        for s in stored:
            assert s.prev == prev
            assert repo.get_record(s.cid) == s
            record = open_record(s.blocks, service_key=key, log_key=public, cid=s.cid)
            assert record.prev == prev
            assert record.decode_body(key) == {"n": s.counter}
            prev = s.cid
        assert prev == head.cid
