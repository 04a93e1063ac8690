"""The daemon's network flags from threadsd: announceAddr, netPulling*, logFile (real daemon)."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_procs import Daemon

import threadkit as tk
from threadkit.net.pull import PullSettings


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        (["--netPullingLimit", "0"], {}, "netPullingLimit: '0' is not a whole number >= 1"),
        (["--netPullingLimit", "lots"], {}, "netPullingLimit: 'lots' is not a whole number"),
        (["--netPullingInterval", "0s"], {}, "netPullingInterval: must be greater than zero"),
        (["--netPullingStartAfter", "10"], {}, "netPullingStartAfter: '10' has no unit"),
        ([], {"THRDS_NETPULLINGINITIALINTERVAL": "-1s"}, "netPullingInitialInterval: '-1s'"),
        (["--announceAddr", "/ip4/0.0.0.0/tcp/4006"], {}, "is unspecified"),
        ([], {"THRDS_ANNOUNCEADDR": "/ip4/203.0.113.7/tcp/0"}, "has port 0"),
        (["--announceAddr", "nonsense"], {}, "not a multiaddr"),
    ],
)
def test_daemon_refuses_bad_network_flags(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    from threadkit.cli import main

    for name in ("NETPULLINGINITIALINTERVAL", "ANNOUNCEADDR", "LOGFILE"):
        monkeypatch.delenv(f"THRDS_{name}", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    repo = tmp_path / "repo"
    log_file = tmp_path / "logs" / "daemon.log"
    assert main(["daemon", "--repo", str(repo), "--logFile", str(log_file), *flags]) == 2
    err = capsys.readouterr().err
    assert "threadkit daemon: bad configuration:" in err and message in err
    assert not repo.exists() and not log_file.exists()  # refused before anything is written


def test_pulling_defaults_are_threadsds() -> None:
    from threadkit.api.daemon import NetSettings

    settings = NetSettings.from_config(
        {
            "connLowWater": "100",
            "connHighWater": "400",
            "connGracePeriod": "20s",
            "keepAliveInterval": "5s",
        }
    )
    assert settings.pulling == PullSettings(True, 10_000, 1.0, 1.0, 10.0)
    assert settings.announce == []
    off = NetSettings.from_config(
        {
            "connLowWater": "1",
            "connHighWater": "2",
            "connGracePeriod": "1s",
            "keepAliveInterval": "0",
            "disableNetPulling": True,
            "netPullingLimit": "50",
            "netPullingStartAfter": "2m",
            "netPullingInitialInterval": "500ms",
            "netPullingInterval": "1h",
            "announceAddr": "/dns4/lab.example.org/tcp/4006",
        }
    )
    assert off.pulling == PullSettings(False, 50, 120.0, 0.5, 3600.0)
    assert off.announce == ["/dns4/lab.example.org/tcp/4006"]


@pytest.mark.slow
def test_daemon_announces_and_logs_to_a_file(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "threads.log"
    daemon = Daemon(
        tmp_path / "d",
        "--disableNetPulling",
        "--logFile",
        str(log_file),
        env={"THRDS_ANNOUNCEADDR": "/ip4/203.0.113.7/tcp/4006"},
    ).wait_ready()
    try:
        client = tk.Client(daemon.target)
        try:
            db = client.new_db("announced")
            info = db.info()
            assert info.addrs == [f"/ip4/203.0.113.7/tcp/4006/p2p/{daemon.peer_id}/thread/{db.id}"]
        finally:
            client.close()
    finally:
        assert daemon.stop() == 0
    text = log_file.read_text()
    assert "config announceAddr: /ip4/203.0.113.7/tcp/4006" in text
    assert "config disableNetPulling: True" in text


def test_pulling_settings_checked() -> None:
    for bad in (
        {"limit": 0},
        {"limit": 2.5},
        {"limit": True},
        {"interval": 0},
        {"start_after": -1.0},
        {"initial_interval": float("inf")},
        {"enabled": "yes"},
    ):
        with pytest.raises(tk.errors.InvalidInput):
            PullSettings(**bad)  # type: ignore[arg-type]
    with pytest.raises(tk.errors.InvalidInput):
        tk.Peer(memory=True, network=False, pulling={"interval": 1})  # type: ignore[arg-type]
    assert PullSettings(limit=10).per_log(3) == 3
    assert PullSettings(limit=2).per_log(5) == 1
    assert PullSettings().per_log(1) == 1000  # the protocol's cap per log


def _requests(peer: tk.Peer) -> int:
    stats = peer._service.streams.stats
    return int(stats.opened + stats.reused)


@pytest.mark.slow
def test_pulling_limit_bounds_each_get_records() -> None:
    """``netPullingLimit`` 2 over two logs asks for one record at a time."""
    with tk.Peer(memory=True, network=True, pull_interval=0) as owner:
        db = owner.new_db("shared")
        notes = db.new_collection("Notes")
        for n in range(12):
            notes.create({"n": n})  # 13 records in the owner's log
        counts = {}
        for limit in (10_000, 2):
            with tk.Peer(
                memory=True, network=True, pulling=PullSettings(enabled=False, limit=limit)
            ) as joiner:
                before = _requests(joiner) if joiner.online else 0
                joined = joiner.new_db_from_addr(db.info().addrs[0], db.key)
                assert joined["Notes"].count() == 12
                counts[limit] = _requests(joiner) - before
        assert counts[10_000] <= 5
        assert counts[2] >= 13  # one get_records per record
