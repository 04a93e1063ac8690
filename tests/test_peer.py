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


# ------------------------------------------------------------ the sharing seam


def test_a_database_is_given_its_sharing_at_construction_and_reprs_never_act() -> None:
    """db.info() and db.sync() ask the peer's Sharing; a repr asks with start=False."""
    from threadkit.db.sharing import Sharing

    with tk.Peer(memory=True) as peer:
        db = peer.new_db("shared")
        for name in ("share_hook", "addrs_provider", "sync_provider"):
            assert not hasattr(db, name)  # no public callables patched on from above
        sharing: Sharing | None = db._sharing
        assert sharing is not None and sharing is peer.manager.sharing
        assert sharing.addrs(db, start=False) == [] and not peer.online
        assert "not shared yet" in db._repr_html_() and not peer.online
        addrs = db.info().addrs
        assert peer.online and addrs and addrs[0].endswith(f"/thread/{db.id}")
        assert addrs[0] in db._repr_html_()
        peer.stop_network()
        assert "not shared yet" in db._repr_html_() and not peer.online
        assert db.info().addrs and peer.online  # info() starts it again


def test_a_peer_without_a_network_shares_nothing() -> None:
    with tk.Peer(memory=True, network=False) as peer:
        db = peer.new_db("alone")
        assert db.info().addrs == [] and not peer.online
        with pytest.raises(tk.errors.NetworkError, match="without a network"):
            db.sync()


def test_a_store_database_without_sharing_shares_nothing(tmp_path: Path) -> None:
    from threadkit.core.identity import Identity
    from threadkit.db.manager import Manager
    from threadkit.store.repo import Repo

    with Repo(tmp_path / "repo") as repo:
        manager = Manager(repo, Identity.generate())
        db = manager.new_db("plain")
        assert type(db).__module__ == "threadkit.db.database"  # the store's class, no views
        assert db.info().addrs == []
        with pytest.raises(tk.errors.NetworkError, match="without a network"):
            db.sync()
        manager.close()
