"""tk.Peer's repo path (``~`` expanded, a file refused) and joining with a key string."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import threadkit as tk
from threadkit.errors import InvalidInput, InvalidThreadKey


def test_a_tilde_path_is_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    with tk.Peer("~/my-repo") as peer:
        assert peer.repo.path == home / "my-repo"
    assert (home / "my-repo").is_dir()
    assert os.listdir(cwd) == []  # no directory literally named "~"


def test_a_repo_path_naming_a_file_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("keep me")
    with pytest.raises(InvalidInput, match="is a file"):
        tk.Peer(file)
    assert file.read_text() == "keep me"


def test_joining_with_the_key_string_share_prints() -> None:
    with tk.Peer(memory=True) as owner, tk.Peer(memory=True) as joiner:
        db = owner.new_db("keyed")
        db.new_collection("Notes").create({"_id": "n", "text": "hi"})
        info = db.info()
        with pytest.raises(InvalidThreadKey):
            joiner.new_db_from_addr(info.addrs[0], "not a key")
        with pytest.raises(InvalidThreadKey, match="no read key"):
            joiner.new_db_from_addr(info.addrs[0], str(info.key.service_only()))
        with pytest.raises(InvalidThreadKey, match=r"tk\.ThreadKey or its string"):
            joiner.new_db_from_addr(info.addrs[0], info.key.to_bytes())  # type: ignore[arg-type]
        assert not joiner.online  # refused before the network started
        joined = joiner.new_db_from_addr(info.addrs[0], f" {info.key}\n")
        assert joined["Notes"].find_by_id("n")["text"] == "hi"
