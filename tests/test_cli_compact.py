"""``threadkit compact``: compact a database at a snapshot and shrink the repo's file, run
as a real process; a repo in use, a database without a snapshot or an unknown name are
one line on stderr (exit code 1 for the repo in use, 2 for bad input)."""

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
        [sys.executable, "-m", "threadkit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def _edited(repo: Path, snapshot: bool = True) -> tuple[str, list[dict[str, object]]]:
    with tk.Peer(repo, network=False) as peer:
        db = peer.new_db("notes")
        coll = db.new_collection("n")
        coll.create(*({"_id": f"n{i}", "v": 0, "p": "x" * 300} for i in range(500)))
        for v in range(1, 8):
            coll.save(*({"_id": f"n{i}", "v": v, "p": "x" * 300} for i in range(500)))
        if snapshot:
            db.snapshot()
        coll.save({"_id": "n1", "v": 100})
        return str(db.id), coll.find()


@pytest.mark.slow
def test_compact_shrinks_the_file_and_keeps_the_documents(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    thread, docs = _edited(repo)
    before = (repo / "data.mdb").stat().st_size
    done = run_cli("compact", "notes", "--repo", str(repo))
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout)
    assert line["thread"] == thread and line["records"] > 0 and line["events"] == 500 * 7
    assert line["before"] == before
    assert line["after"] == (repo / "data.mdb").stat().st_size < before / 3
    with tk.Peer(repo, network=False) as peer:
        db = peer.get_db(thread)
        assert db["n"].find() == docs
        assert len(db.snapshots()) == 1
        db["n"].save({"_id": "n2", "v": 200})  # and it takes writes
    again = run_cli("compact", thread, "--repo", str(repo))  # by thread id; nothing left
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["records"] == 0


@pytest.mark.slow
def test_compact_refuses_a_repo_in_use_and_bad_input(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    _edited(repo)
    with tk.Peer(repo, network=False):
        busy = run_cli("compact", "notes", "--repo", str(repo))
    assert busy.returncode == 1 and busy.stdout == ""
    assert busy.stderr.startswith("threadkit compact: ") and "in use" in busy.stderr
    unknown = run_cli("compact", "nothing", "--repo", str(repo))
    assert unknown.returncode == 2 and "no database 'nothing'" in unknown.stderr
    missing = run_cli("compact", "notes", "--repo", str(tmp_path / "none"))
    assert missing.returncode == 2 and "no repo" in missing.stderr
    bare = tmp_path / "bare"
    _edited(bare, snapshot=False)
    size = (bare / "data.mdb").stat().st_size
    none = run_cli("compact", "notes", "--repo", str(bare))
    assert none.returncode == 2 and "no snapshot" in none.stderr
    assert (bare / "data.mdb").stat().st_size == size
