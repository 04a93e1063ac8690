"""The ``threadkit`` command: the demo runs end to end, share serves a CSV, info prints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import threadkit as tk

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "threadkit.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.mark.slow
def test_demo_converges_and_writes_the_dag_picture() -> None:
    result = run_cli("demo")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "replicas identical: True" in out
    assert "identical on B: True" in out
    assert "lost to" in out
    picture = Path(out.rsplit("was written to ", 1)[1].strip())
    assert picture.is_file() and picture.read_bytes().startswith(b"\x89PNG")


def test_info_lists_the_public_names() -> None:
    result = run_cli("info")
    assert result.returncode == 0
    assert "ThreadID" in result.stdout and tk.__version__ in result.stdout


def test_unknown_command_fails() -> None:
    assert run_cli("no-such-command").returncode != 0


def test_share_serves_a_csv_that_another_peer_joins(tmp_path: Path) -> None:
    csv = tmp_path / "rows.csv"
    csv.write_text("name,age\nAda,36\nGrace,85\n")
    server = subprocess.Popen(
        [sys.executable, "-m", "threadkit.cli", "share", str(csv), "--seconds", "60"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert server.stdout is not None
        shared = json.loads(server.stdout.readline())
        assert shared["count"] == 2
        with tk.Peer(memory=True) as peer:
            db = peer.new_db_from_addr(shared["addrs"][0], tk.ThreadKey.from_string(shared["key"]))
            rows = sorted((d["name"], d["age"]) for d in db["Rows"].find())
            assert rows == [("Ada", 36), ("Grace", 85)]
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--connLowWater", "9", "--connHighWater", "3"], "low_water (9) must not exceed"),
        (["--connLowWater", "0"], "low_water must be positive"),
        (["--connHighWater", "lots"], "connHighWater: 'lots' is not a whole number"),
        (["--connGracePeriod", "20"], "connGracePeriod: '20' has no unit"),
        (["--connGracePeriod=-1s"], "connGracePeriod: '-1s' is negative"),
        (["--keepAliveInterval", "often"], "keepAliveInterval: 'often' is not a duration"),
    ],
)
def test_daemon_refuses_bad_connection_settings(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    message: str,
) -> None:
    from threadkit.cli import main

    for name in ("CONNLOWWATER", "CONNHIGHWATER", "CONNGRACEPERIOD", "KEEPALIVEINTERVAL"):
        monkeypatch.delenv(f"THRDS_{name}", raising=False)
    repo = tmp_path / "repo"
    assert main(["daemon", "--repo", str(repo), *flags]) == 2
    err = capsys.readouterr().err
    assert "threadkit daemon: bad configuration:" in err and message in err
    assert not repo.exists()  # refused before the repo is opened


def test_daemon_parses_its_network_settings() -> None:
    from threadkit.cli import _NetSettings
    from threadkit.net.connmgr import ConnLimits

    settings = _NetSettings.from_config(
        {
            "connLowWater": "7",
            "connHighWater": "9",
            "connGracePeriod": "1m30s",
            "keepAliveInterval": "500ms",
        }
    )
    assert settings.conn_limits == ConnLimits(7, 9, 90.0)
    assert settings.keep_alive == 0.5
