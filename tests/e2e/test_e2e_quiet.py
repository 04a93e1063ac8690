"""Quiet, useful logging: nothing on stderr after a peer leaves; unreachable peers reported.

A notebook cell shows whatever the kernel writes on stderr. The child process here runs a
peer the way a notebook does (no logging configured) and pulls every second from a peer
that was killed; its stderr must stay empty, and ``peer.status()`` must name the peer.
"""

from __future__ import annotations

import logging
import time

import pytest
from e2e_helpers import Cluster

import threadkit as tk
from threadkit.net.reach import Reachability


@pytest.mark.slow
def test_nothing_on_stderr_after_the_other_side_left() -> None:
    with Cluster() as cluster:
        a, b = cluster.start(2, pull_interval=1.0)
        made = a.call("new_db", name="shared")
        a.call("new_collection", db=made["id"], name="Notes")
        b.call("join", addr=made["addrs"][0], key=made["key"], timeout=20)
        b.kill()
        cluster.procs.remove(b)
        a.call("create", db=made["id"], coll="Notes", docs=[{"text": "after b left"}])
        time.sleep(10)  # ~10 periodic pulls that cannot reach b, and a failed push
        assert "".join(a._stderr) == ""
        errors = a.call("stats")["errors"]
        assert any(b.peer_id in e for e in errors)  # the failures were seen, not printed


def test_status_lists_unreachable_peers_and_one_warning_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with tk.Peer(memory=True, network=True, pull_interval=0) as a:
        b = tk.Peer(memory=True, network=True, pull_interval=0)
        db = a.new_db("shared")
        joined = b.new_db_from_addr(db.info().addrs[0], db.key)
        b_id = b.id
        b.close()
        del joined
        with caplog.at_level(logging.DEBUG, logger="threadkit.net"):
            for _ in range(3):
                with pytest.raises(tk.errors.SyncTimeout):
                    db.sync(timeout=5)
                db.new_collection(f"C{_}")  # a push to b too, which must not dial again
        warnings = [
            r for r in caplog.records if r.levelno == logging.WARNING and b_id in r.getMessage()
        ]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        (entry,) = a.status()["unreachable"]
        assert entry["peer_id"] == b_id
        assert entry["failures"] >= 3 and entry["last_error"]
        from threadkit.widgets.status import PeerStatus

        widget = PeerStatus(a, every=60)
        try:
            assert b_id in widget.render()
        finally:
            widget.close()


def test_backoff_doubles_and_a_success_clears_it() -> None:
    reach = Reachability()
    for n, now in enumerate((0.0, 10.0, 20.0, 30.0), start=1):
        reach.failed("p", "refused", now=now)
        assert reach.wait_left("p", now=now) == min(300.0, 2.0 * 2 ** (n - 1))
    reach.retry_now("p")
    assert reach.wait_left("p", now=31.0) == 0.0
    reach.succeeded("p")
    assert reach.unreachable() == []
    for n in range(20):
        reach.failed("q", "refused", now=float(n))
    assert reach.wait_left("q", now=19.0) == 300.0


def test_libp2p_records_land_under_threadkit_net(caplog: pytest.LogCaptureFixture) -> None:
    with tk.Peer(memory=True, network=True):
        pass
    libp2p = logging.getLogger("libp2p")
    assert not libp2p.propagate
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("threadkit.net.libp2p").setLevel(logging.DEBUG)
        try:
            logging.getLogger("libp2p.host.basic_host").error("a libp2p error")
            logging.getLogger("libp2p.transport.tcp.tcp").error("Failed to open TCP stream")
        finally:
            logging.getLogger("threadkit.net.libp2p").setLevel(logging.NOTSET)
    got = {(r.name, r.levelname, r.getMessage()) for r in caplog.records}
    assert ("threadkit.net.libp2p.host.basic_host", "ERROR", "a libp2p error") in got
    # dial failures are threadkit's to report: passed on at debug level only
    assert (
        "threadkit.net.libp2p.transport.tcp.tcp",
        "DEBUG",
        "Failed to open TCP stream",
    ) in got
