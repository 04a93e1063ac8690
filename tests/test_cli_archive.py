"""``threadkit export`` / ``threadkit import``: a repo's database into a CAR file and back,
run as real processes; bad input is one line on stderr and exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import threadkit as tk

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "threadkit.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    repo = tmp_path_factory.mktemp("cli") / "a"
    with tk.Peer(repo, network=False) as peer:
        db = peer.new_db("books")
        db.new_collection("b").create(*({"_id": f"b{i}", "n": i} for i in range(4)))
        db.export(repo.parent / "books.car")
        return repo, str(db.id), str(db.key)


@pytest.mark.slow
def test_export_then_import_in_another_repo(tmp_path: Path, source: tuple[Path, str, str]) -> None:
    repo, thread, key = source
    out = tmp_path / "books.car"
    done = run_cli("export", thread, str(out), "--repo", str(repo))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["records"] == 2
    target = tmp_path / "b"
    done = run_cli("import", str(out), "--repo", str(target), "--key", key, "--thread", thread)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"thread": thread, "name": "books", "records": 2}
    with tk.Peer(target, network=False) as peer:
        assert peer.get_db(thread)["b"].count() == 4


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no key", "holds no thread key"),
        ("truncated", "truncated"),
        ("missing file", "no archive file"),
        ("unknown db", "no database"),
        ("twice", "already in this repo"),
    ],
)
def test_bad_input_exits_2(
    tmp_path: Path, source: tuple[Path, str, str], case: str, message: str
) -> None:
    repo, _, key = source
    out = tmp_path / "x.car"
    out.write_bytes((repo.parent / "books.car").read_bytes())
    target = str(tmp_path / "b")
    if case == "no key":
        done = run_cli("import", str(out), "--repo", target)
    elif case == "truncated":
        out.write_bytes(out.read_bytes()[:-10])
        done = run_cli("import", str(out), "--repo", target, "--key", key)
    elif case == "missing file":
        done = run_cli("import", str(tmp_path / "nope.car"), "--repo", target, "--key", key)
    elif case == "unknown db":
        done = run_cli("export", str(tk.ThreadID.new()), str(out), "--repo", str(repo))
    else:
        assert run_cli("import", str(out), "--repo", target, "--key", key).returncode == 0
        done = run_cli("import", str(out), "--repo", target, "--key", key)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
