"""The daemon's configuration and life cycle, in-process (threadkit.api.daemon)."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

import threadkit as tk
from threadkit import errors
from threadkit.api.daemon import SETTINGS, SWITCHES, Daemon, DaemonConfig, main

LOCAL = {
    "THRDS_HOSTADDR": "/ip4/127.0.0.1/tcp/0",
    "THRDS_APIADDR": "/ip4/127.0.0.1/tcp/0",
    "THRDS_APIPROXYADDR": "/ip4/127.0.0.1/tcp/0",
}


def test_defaults(tmp_path: Path) -> None:
    config = DaemonConfig.from_argv(["--repo", str(tmp_path / "r")], environ={})
    assert config.settings["repo"] == str(tmp_path / "r") and config.repo == tmp_path / "r"
    assert config.host_addr == "/ip4/0.0.0.0/tcp/4006"
    assert (config.api_host, config.api_port) == ("127.0.0.1", 6006)
    assert (config.proxy_host, config.proxy_port) == ("127.0.0.1", 6007)
    assert (config.debug, config.pubsub, config.relay, config.pulling_enabled) == (
        False,
        False,
        False,
        True,
    )
    assert config.log_file is None and config.net.announce == []
    assert config.net.replicator is False
    assert config.net.keep_alive == 5.0 and config.net.conn_limits.low_water == 100
    assert config.net.api_limits.max_streams == 64
    for flag, _, default, _ in SETTINGS:
        if flag != "repo":
            assert config.settings[flag] == default, flag
    assert list(config.settings) == [s[0] for s in SETTINGS] + [s[0] for s in SWITCHES]


def test_repo_default_expands_the_home_directory() -> None:
    config = DaemonConfig.from_flags({}, environ={})
    assert config.repo == Path("~/.threads").expanduser()


def test_flag_beats_environment_beats_default(tmp_path: Path) -> None:
    env = {"THRDS_REPO": str(tmp_path / "env"), "THRDS_APIADDR": "/ip4/127.0.0.1/tcp/8000"}
    assert DaemonConfig.from_argv([], environ=env).api_port == 8000
    assert DaemonConfig.from_argv([], environ=env).repo == tmp_path / "env"
    flagged = DaemonConfig.from_argv(
        ["--apiAddr", "/ip6/::1/tcp/7000", "--repo", str(tmp_path / "flag")], environ=env
    )
    assert (flagged.api_host, flagged.api_port) == ("[::1]", 7000)
    assert flagged.repo == tmp_path / "flag"
    limits = DaemonConfig.from_argv(
        ["--apiMaxStreams", "90"], environ={**env, "THRDS_APIMAXSTREAMS": "40"}
    ).net.api_limits
    assert limits.max_streams == 90


@pytest.mark.parametrize(
    ("value", "on"),
    [("1", True), ("true", True), (" YES ", True), ("on", True), ("0", False), ("no", False)],
)
def test_switches_from_the_environment(tmp_path: Path, value: str, on: bool) -> None:
    env = {f"THRDS_{flag.upper()}": value for flag, _, _ in SWITCHES}
    config = DaemonConfig.from_argv(["--repo", str(tmp_path)], environ=env)
    assert (config.debug, config.pubsub, config.relay) == (on, on, on)
    assert config.pulling_enabled is not on
    flagged = DaemonConfig.from_argv(["--repo", str(tmp_path), "--relay", "--debug"], environ={})
    assert flagged.relay and flagged.debug and not flagged.pubsub


@pytest.mark.parametrize(
    ("flags", "kind", "message"),
    [
        (["--hostAddr", "/dns4/x.org/tcp/1"], errors.InvalidAddress, "hostAddr"),
        (["--apiAddr", "127.0.0.1:6006"], errors.InvalidAddress, "apiAddr"),
        (["--apiProxyAddr", "/ip4/127.0.0.1/tcp/70000"], errors.InvalidAddress, "port"),
        (["--connLowWater", "9", "--connHighWater", "3"], errors.InvalidInput, "low_water"),
        (["--keepAliveInterval", "5"], errors.InvalidInput, "keepAliveInterval"),
        (["--netPullingLimit", "0"], errors.InvalidInput, "netPullingLimit"),
        (["--apiMaxStreams", "many"], errors.InvalidInput, "apiMaxStreams"),
        (["--replicatorAllow", "nobody"], errors.InvalidInput, ""),
    ],
)
def test_bad_values_are_refused(
    tmp_path: Path, flags: list[str], kind: type[Exception], message: str
) -> None:
    repo = tmp_path / "repo"
    with pytest.raises(kind, match=message or None):
        DaemonConfig.from_argv(["--repo", str(repo), *flags], environ={})
    err = io.StringIO()
    assert main({"repo": str(repo), **_pairs(flags)}, environ={}, err=err) == 2
    assert err.getvalue().startswith("threadkit daemon: bad configuration:")
    assert not repo.exists()  # refused before the repo is opened


def _pairs(flags: list[str]) -> dict[str, object]:
    return {flags[i].lstrip("-"): flags[i + 1] for i in range(0, len(flags), 2)}


def test_a_bad_environment_value_is_refused_too(tmp_path: Path) -> None:
    with pytest.raises(errors.InvalidInput, match="connGracePeriod"):
        DaemonConfig.from_argv(["--repo", str(tmp_path)], environ={"THRDS_CONNGRACEPERIOD": "soon"})


def test_a_repo_that_is_a_file_and_an_unknown_flag(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(errors.InvalidInput, match="is a file"):
        DaemonConfig.from_argv(["--repo", str(a_file)], environ={})
    with pytest.raises(SystemExit) as exit_info:
        DaemonConfig.from_argv(["--nope"], environ={})
    assert exit_info.value.code == 2


@pytest.mark.slow
def test_start_serve_and_stop(tmp_path: Path) -> None:
    config = DaemonConfig.from_argv(["--repo", str(tmp_path / "r"), "--disableNetPulling"], LOCAL)
    daemon = Daemon(config)
    assert daemon.api_port == 0 and daemon.peer_id == ""
    with daemon:
        assert daemon.api_port > 0 and daemon.proxy_port > 0
        with tk.Client(f"127.0.0.1:{daemon.api_port}", timeout=20) as client:
            assert client.host_id == daemon.peer_id
            client.new_db("kept")
        with pytest.raises(errors.RepoInUse):
            Daemon(config).start()  # the repo is held; nothing of the second is left running
    assert daemon.peer is None and daemon.server is None and daemon.proxy is None
    with Daemon(config) as again:  # the repo was released; the database is still there
        client = tk.Client(f"127.0.0.1:{again.api_port}", timeout=20)
        with client:
            assert [db.name for db in client.list_dbs()] == ["kept"]


@pytest.mark.slow
def test_main_runs_until_told_to_stop(tmp_path: Path) -> None:
    out, err, stop = io.StringIO(), io.StringIO(), threading.Event()
    flags = {"repo": str(tmp_path / "r"), "disableNetPulling": True}
    codes: list[int] = []
    runner = threading.Thread(target=lambda: codes.append(main(flags, LOCAL, out, err, stop)))
    runner.start()
    try:
        for _ in range(600):
            if "Proxy listening" in out.getvalue() or not runner.is_alive():
                break
            runner.join(0.1)
        lines = out.getvalue().splitlines()
        assert lines[0].startswith("Welcome to Threads! peer id 12D3KooW"), err.getvalue()
        assert lines[1].startswith("API listening on 127.0.0.1:")
        assert not lines[1].endswith(":0")
    finally:
        stop.set()
        runner.join()
    assert codes == [0]


def test_main_reports_a_repo_in_use(tmp_path: Path) -> None:
    config = DaemonConfig.from_argv(["--repo", str(tmp_path / "r")], LOCAL)
    with tk.Peer(config.repo, network=False):
        err = io.StringIO()
        flags = {"repo": str(config.repo), "disableNetPulling": True}
        assert main(flags, LOCAL, io.StringIO(), err, threading.Event()) == 1
    assert f"threadkit daemon: repo {config.repo} is in use" in err.getvalue()
