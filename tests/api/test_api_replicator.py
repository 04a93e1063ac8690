"""Who may make ``threadkit daemon`` a replicator: ``--replicatorAllow`` (default nobody).

Real daemons; the peers handing them threads are embedded ``tk.Peer`` s in this process,
over real libp2p on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from api_procs import Daemon

import threadkit as tk
from tests.e2e.waits import poll_until
from threadkit.api.proto import threadsnet_pb2 as netpb
from threadkit.api.proto import threadsnet_pb2_grpc as netpb_grpc
from threadkit.core.identity import peer_id_bytes

pytestmark = pytest.mark.slow


def host_addr(daemon: Daemon) -> str:
    """The daemon's libp2p address with its peer id (from its log)."""
    for line in daemon.log().splitlines():
        if "host address: " in line and "/p2p/" in line:
            return line.split("host address: ", 1)[1].strip()
    addr = next(
        line.split("host address: ", 1)[1].strip()
        for line in daemon.log().splitlines()
        if "host address: " in line
    )
    return f"{addr}/p2p/{daemon.peer_id}"


def held_counters(daemon: Daemon, thread_id: tk.ThreadID) -> dict[bytes, int] | None:
    """The daemon's log counters of a thread (Net API GetThread); None when it has none."""
    with grpc.insecure_channel(daemon.target) as channel:
        try:
            info = netpb_grpc.APIStub(channel).GetThread(
                netpb.GetThreadRequest(threadID=thread_id.to_bytes()), timeout=10
            )
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND, exc
            return None
    return {bytes(log.ID): _unzigzag(bytes(log.counter)) for log in info.logs}


def _unzigzag(raw: bytes) -> int:
    """Go's ``binary.Varint`` (the wire form of a log's counter)."""
    n = shift = 0
    for byte in raw:
        n |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            break
    return (n >> 1) ^ -(n & 1)


def shared_db(peer: tk.Peer, name: str, n: int) -> tk.Database:
    db = peer.new_db(name)
    db.new_collection("Items").create([{"n": i} for i in range(n)])
    return db


def test_daemon_replicates_for_allowed_peers_only(tmp_path: Path) -> None:
    with (
        tk.Peer(memory=True, network=True) as owner,
        tk.Peer(memory=True, network=True) as stranger,
    ):
        closed = Daemon(tmp_path / "default").wait_ready()
        allowing = Daemon(tmp_path / "allowing", "--replicatorAllow", owner.id).wait_ready()
        try:
            assert "replicates threads for no peer" in closed.log()
            assert f"replicates threads for {owner.id}" in allowing.log()
            junk = shared_db(stranger, "junk", 20)
            for daemon in (closed, allowing):
                refusal = f"peer refused: this peer does not replicate threads for {stranger.id}"
                with pytest.raises(tk.errors.ProtocolError, match=refusal):
                    stranger.add_replicator(junk, host_addr(daemon))
                assert held_counters(daemon, junk.id) is None  # nothing stored
            kept = shared_db(owner, "kept", 5)
            with pytest.raises(tk.errors.NetworkError, match="does not replicate threads"):
                owner.add_replicator(kept, host_addr(closed))
            assert owner.add_replicator(kept, host_addr(allowing)) == allowing.peer_id
            want = {
                peer_id_bytes(log["id"]): log["counter"]
                for log in owner.get_thread(kept.id)["logs"]
            }
            # the daemon's counters through its Net API: another process, no event to wait on
            arrived = poll_until(lambda: held_counters(allowing, kept.id) == want, 30, 0.2)
            assert arrived, "the allowed thread did not arrive"
            assert held_counters(allowing, junk.id) is None
        finally:
            assert closed.stop() == 0, closed.log()
            assert allowing.stop() == 0, allowing.log()


def test_replicator_setting_is_checked_before_the_repo_opens(tmp_path: Path) -> None:
    for bad in ("12D3KooW", ["not a peer id"], 3, "*"):
        with pytest.raises(tk.errors.InvalidInput):
            tk.Peer(tmp_path / "never", replicator=bad)  # type: ignore[arg-type]
    assert not (tmp_path / "never").exists()
