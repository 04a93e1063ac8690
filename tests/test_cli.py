"""The ``threadkit`` command: the demo runs end to end, share serves a CSV, info prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import threadkit as tk

ROOT = Path(__file__).resolve().parents[1]
CLI = (sys.executable, "-m", "threadkit.cli")
PIP_WHEEL = (sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation")


def run_cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "threadkit.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def _wheel_site(tmp_path: Path) -> Path:
    """threadkit built as a wheel (from a copy of the sources) and unpacked: an install."""
    import importlib.util
    import shutil
    import zipfile

    try:
        import setuptools
    except ImportError:
        pytest.skip("building the wheel needs setuptools>=68 (pip install -e '.[test]')")
    major = int(setuptools.__version__.split(".")[0])
    if major < 68 or importlib.util.find_spec("wheel") is None:
        pytest.skip("building the wheel needs setuptools>=68 and wheel (pip install -e '.[test]')")
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "threadkit", source / "threadkit", ignore=ignore)
    dist = tmp_path / "dist"
    built = subprocess.run(
        [*PIP_WHEEL, "-w", str(dist), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = dist.glob("threadkit-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


@pytest.mark.slow
def test_demo_from_an_installed_wheel_converges_and_writes_the_dag_picture(
    tmp_path: Path,
) -> None:
    """The wheel carries the datasets the demo needs (package data), and nothing of the
    source checkout is used: the demo runs from the unpacked wheel, elsewhere."""
    site = _wheel_site(tmp_path)
    assert (site / "threadkit" / "data" / "elements.csv").is_file()
    assert (site / "threadkit" / "data" / "README.md").is_file()  # the licences travel too
    run = (
        "import sys, threadkit; print(threadkit.__file__, flush=True); "
        "from threadkit.cli import main; sys.exit(main(['demo']))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "THREADKIT_DATASETS")}
    env["PYTHONPATH"] = str(site)
    result = subprocess.run(
        [sys.executable, "-c", run],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.splitlines()[0] == str(site / "threadkit" / "__init__.py")
    assert "Do A and B now hold exactly the same data? yes" in out
    assert "Does B list the same lost writes as A? yes" in out
    # the story in words, by member: the merge, the lost write and why
    assert "Oxygen keeps A's note and B's weight" in out
    assert "Fe's category: B's 'transition metal (B)' lost to A's 'metal (A)'." in out
    assert "The later write in the shared order wins" in out
    assert "12D3Koo" not in out.split("B joins", 1)[1]  # members are A and B, not peer ids
    assert "_mod" not in out
    picture = Path(out.rsplit("was written to ", 1)[1].strip())
    assert picture.is_file() and picture.read_bytes().startswith(b"\x89PNG")


def test_info_lists_the_public_names() -> None:
    result = run_cli("info")
    assert result.returncode == 0
    assert "ThreadID" in result.stdout and tk.__version__ in result.stdout


def test_unknown_command_fails() -> None:
    assert run_cli("no-such-command").returncode != 0


@pytest.mark.slow
def test_share_serves_a_csv_typed_like_the_dataset_and_says_how_to_join(tmp_path: Path) -> None:
    """penguins.csv has NA holes: the joiner gets numeric columns (as tk.datasets.load reads
    them) and joins with the key string share printed; stderr says how to join and stop."""
    server = subprocess.Popen(
        [*CLI, "share", "datasets/penguins.csv", "--seconds", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert server.stdout is not None
        shared = json.loads(server.stdout.readline())
        assert shared["count"] == 344 and shared["collection"] == "Rows"
        with tk.Peer(memory=True) as peer:
            db = peer.new_db_from_addr(shared["addrs"][0], shared["key"])
            rows = db["Rows"]
            heavy = rows.query("body_mass_g > 4000")
            expected = tk.datasets.load("penguins").query("body_mass_g > 4000")
            assert len(heavy) == len(expected) > 0
            assert str(rows.df["body_mass_g"].dtype) == "Int64"
            assert rows.df["sex"].isna().sum() == 11
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert "new_db_from_addr(" in err and shared["key"] in err and shared["addrs"][0] in err
    assert "Ctrl+C" in err and "Traceback" not in err


def test_version_and_help_with_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    from threadkit.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"threadkit {tk.__version__}"
    with pytest.raises(SystemExit):
        main(["share", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: Rows)" in text and "(default: /ip4/127.0.0.1/tcp/0)" in text
    with pytest.raises(SystemExit):
        main(["daemon", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "$THRDS_HOSTADDR; default /ip4/0.0.0.0/tcp/4006" in text
    assert "$THRDS_REPO; default ~/.threads" in text


def _bad_share(tmp_path: Path, case: str) -> list[str]:
    csv = tmp_path / "ok.csv"
    csv.write_text("a,b\n1,2\n")
    binary = tmp_path / "picture.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe\x00")
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    quick = ["--seconds", "1"]  # were a case not refused, share would stop by itself
    return {
        "missing": ["share", str(tmp_path / "missing.csv"), *quick],
        "directory": ["share", str(tmp_path), *quick],
        "binary": ["share", str(binary), *quick],
        "listen": ["share", str(csv), "--listen", "garbage", *quick],
        "listen-ip": ["share", str(csv), "--listen", "/ip4/1.2.3/tcp/1", *quick],
        "listen-port": ["share", str(csv), "--listen", "/ip4/127.0.0.1/tcp/99999", *quick],
        "repo-file": ["share", str(csv), "--repo", str(a_file), *quick],
        "name": ["share", str(csv), "--name", "no spaces allowed", *quick],
        "seconds": ["share", str(csv), "--seconds", "-1"],
        "host": ["daemon", "--repo", str(tmp_path / "r"), "--hostAddr", "localhost:4006"],
        "host-ip": ["daemon", "--repo", str(tmp_path / "r"), "--hostAddr", "/ip4/1.2.3.4.5/tcp/1"],
        "host-port": ["daemon", "--repo", str(tmp_path / "r"), "--hostAddr", "/ip4/0.0.0.0/tcp/x"],
        "host-udp": ["daemon", "--repo", str(tmp_path / "r"), "--hostAddr", "/ip4/0.0.0.0/udp/1"],
        "daemon-repo-file": ["daemon", "--repo", str(a_file)],
    }[case]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "no such file"),
        ("directory", "is a directory"),
        ("binary", "not UTF-8"),
        ("listen", "--listen: 'garbage'"),
        ("listen-ip", "'1.2.3' is not an ip4 address"),
        ("listen-port", "port '99999'"),
        ("repo-file", "is a file"),
        ("name", "no spaces allowed"),
        ("seconds", "--seconds"),
        ("host", "hostAddr: 'localhost:4006'"),
        ("host-ip", "'1.2.3.4.5' is not an ip4 address"),
        ("host-port", "port 'x'"),
        ("host-udp", "hostAddr"),
        ("daemon-repo-file", "is a file"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
    message: str,
) -> None:
    from threadkit.cli import main

    for name in ("REPO", "HOSTADDR", "APIADDR", "APIPROXYADDR"):
        monkeypatch.delenv(f"THRDS_{name}", raising=False)
    argv = _bad_share(tmp_path, case)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and captured.out == ""
    assert not (tmp_path / "r").exists()  # refused before a repo was opened


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
    from threadkit.api.daemon import NetSettings
    from threadkit.net.connmgr import ConnLimits

    settings = NetSettings.from_config(
        {
            "connLowWater": "7",
            "connHighWater": "9",
            "connGracePeriod": "1m30s",
            "keepAliveInterval": "500ms",
        }
    )
    assert settings.conn_limits == ConnLimits(7, 9, 90.0)
    assert settings.keep_alive == 0.5


def test_python_dash_m_threadkit_is_the_same_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "threadkit", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith(tk.__version__)
