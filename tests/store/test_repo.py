"""The repo: lifecycle, temp mode, persistence, repo lock, meta, errors of a closed repo."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lmdb
import pytest

from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.errors import (
    InvalidInput,
    RepoClosed,
    RepoFormatError,
    RepoInUse,
    StoreError,
)
from threadkit.store import Repo
from threadkit.store.layout import TABLES

from .helpers import Writer


def test_temporary_repo_is_deleted_on_close() -> None:
    repo = Repo.temporary()
    path = repo.path
    assert path.is_dir() and repo.is_temporary and repo.durable and not repo.closed
    assert (path / "data.mdb").exists() and (path / "repo.lock").exists()
    repo.close()
    assert repo.closed and not path.exists()
    repo.close()  # idempotent
    assert "closed" in repr(repo)


def test_repo_none_is_temporary() -> None:
    with Repo(None, durable=False) as repo:
        path = repo.path
        assert repo.is_temporary and not repo.durable
        assert "temporary" in repr(repo)
    assert not path.exists()


def test_directory_repo_is_kept_and_created(tmp_path: Path) -> None:
    where = tmp_path / "a" / "b"
    with Repo(where) as repo:
        assert repo.path == where and not repo.is_temporary
        assert "open" in repr(repo)
    assert (where / "data.mdb").exists()


def test_reopen_keeps_threads_logs_heads_and_records(tmp_path: Path) -> None:
    writer = Writer()
    records = writer.chain(7)
    with Repo(tmp_path) as repo:
        repo.add_thread(writer.thread_id, writer.key, name="field-notes")
        repo.add_log(
            writer.thread_id, writer.log_key.public, writer.log_key, ["/ip4/1.2.3.4/tcp/5"]
        )
        repo.append_many(writer.thread_id, writer.log_id, records[:4])
        repo.append(writer.thread_id, writer.log_id, records[4])
        repo.accept(writer.thread_id, writer.log_id, records[5:])
        repo.put_meta("host_key", b"secret")
        before = repo.list_threads(), repo.list_logs(writer.thread_id)
        stored = repo.read_log(writer.thread_id, writer.log_id)
    with Repo(tmp_path) as repo:
        assert (repo.list_threads(), repo.list_logs(writer.thread_id)) == before
        log = repo.get_log(writer.thread_id, writer.log_id)
        assert (log.head, log.counter, log.private) == (records[-1].cid, 7, writer.log_key)
        assert repo.read_log(writer.thread_id, writer.log_id) == stored
        assert all(repo.has_record(r.cid) for r in records)
        assert repo.get_meta("host_key") == b"secret"


def test_second_open_in_process_is_refused(tmp_path: Path) -> None:
    with Repo(tmp_path) as repo:
        with pytest.raises(RepoInUse, match=str(tmp_path)):
            Repo(tmp_path)
        assert not repo.closed and repo.list_threads() == []  # the failed open did no harm
    with Repo(tmp_path) as again:
        assert again.list_threads() == []


_OPEN_IN_CHILD = """
import sys
from threadkit.errors import ThreadkitError
from threadkit.store import Repo
try:
    Repo(sys.argv[1]).close()
except ThreadkitError as exc:
    print(type(exc).__name__)
    print(exc)
else:
    print("opened")
"""


def _open_in_child(path: Path) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", _OPEN_IN_CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.splitlines()


@pytest.mark.slow
def test_second_process_gets_repo_in_use(tmp_path: Path) -> None:
    with Repo(tmp_path):
        lines = _open_in_child(tmp_path)
        assert lines[0] == "RepoInUse"
        assert str(tmp_path) in lines[1]
    assert _open_in_child(tmp_path) == ["opened"]


def test_format_version_is_checked(tmp_path: Path) -> None:
    Repo(tmp_path).close()
    env = lmdb.open(str(tmp_path), max_dbs=16)
    with env.begin(write=True) as txn:
        txn.put(b"format", b"99", db=env.open_db(b"meta", txn=txn))
    env.close()
    with pytest.raises(RepoFormatError, match="format '99'"):
        Repo(tmp_path)
    with pytest.raises(RepoFormatError):  # the lock was released by the failed open
        Repo(tmp_path)


def test_path_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(StoreError, match="cannot open repo"):
        Repo(target)


def test_full_repo_is_a_store_error() -> None:
    writer = Writer()
    with Repo.temporary(map_size=256 * 1024, durable=False) as repo:
        writer.install(repo)
        with pytest.raises(StoreError, match="full"):
            for i in range(1000):
                repo.put_meta(f"filler{i}", bytes(4000))


def test_meta() -> None:
    with Repo.temporary(durable=False) as repo:
        assert repo.get_meta("host_key") is None
        repo.put_meta("host_key", b"k1")
        repo.put_meta("host_key", bytearray(b"k2"))
        assert repo.get_meta("host_key") == b"k2"
        assert repo.get_meta("format") == b"1"
        assert repo.delete_meta("host_key") and not repo.delete_meta("host_key")
        for bad in ("", 3):
            with pytest.raises(InvalidInput):
                repo.get_meta(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="reserved"):
            repo.put_meta("format", b"2")
        with pytest.raises(InvalidInput, match="reserved"):
            repo.delete_meta("format")
        with pytest.raises(InvalidInput, match="bytes"):
            repo.put_meta("x", "text")  # type: ignore[arg-type]


def test_tables_and_transactions_for_later_layers() -> None:
    with Repo.temporary(durable=False) as repo:
        docs = repo.open_table("docs")
        with repo.transaction(write=True) as txn:
            txn.put(b"a", b"1", db=docs)
        with repo.transaction() as txn:
            assert txn.get(b"a", db=docs) == b"1"
        with pytest.raises(ValueError, match="boom"), repo.transaction(write=True) as txn:
            txn.put(b"b", b"2", db=docs)
            raise ValueError("boom")
        with repo.transaction(buffers=True) as txn:
            assert txn.get(b"b", db=docs) is None
            assert bytes(txn.get(b"a", db=docs)) == b"1"
        for name in [*(t.decode() for t in TABLES), ""]:
            with pytest.raises(InvalidInput):
                repo.open_table(name)


_tid = ThreadID.new()
_CALLS: list[Callable[[Repo], Any]] = [
    lambda r: r.add_thread(_tid, ThreadKey.new()),
    lambda r: r.get_thread(_tid),
    lambda r: r.has_thread(_tid),
    lambda r: r.list_threads(),
    lambda r: r.delete_thread(_tid),
    lambda r: r.add_log(_tid, Writer().log_key.public),
    lambda r: r.get_log(_tid, "12D3KooW"),
    lambda r: r.list_logs(_tid),
    lambda r: r.add_addrs(_tid, "12D3KooW", []),
    lambda r: r.get_head(_tid, "12D3KooW"),
    lambda r: r.append(_tid, "12D3KooW", None),
    lambda r: r.append_many(_tid, "12D3KooW", []),
    lambda r: r.accept(_tid, "12D3KooW", []),
    lambda r: r.read_log(_tid, "12D3KooW"),
    lambda r: r.read_back(_tid, "12D3KooW"),
    lambda r: r.get_record(b"x"),
    lambda r: r.has_record(b"x"),
    lambda r: r.get_meta("x"),
    lambda r: r.put_meta("x", b""),
    lambda r: r.delete_meta("x"),
    lambda r: r.open_table("x"),
    lambda r: r.transaction().__enter__(),
]


@pytest.mark.parametrize("call", _CALLS)
def test_closed_repo_raises_repo_closed(call: Callable[[Repo], Any]) -> None:
    repo = Repo.temporary(durable=False)
    repo.close()
    with pytest.raises(RepoClosed, match="closed"):
        call(repo)


def test_concurrent_readers_see_consistent_snapshots() -> None:
    writer = Writer()
    records = writer.chain(120)
    errors: list[BaseException] = []
    with Repo.temporary(durable=False) as repo:
        writer.install(repo)
        done = threading.Event()

        def read() -> None:
            try:
                while not done.is_set():
                    head = repo.get_head(writer.thread_id, writer.log_id)
                    got = repo.read_log(writer.thread_id, writer.log_id)
                    assert len(got) >= head.counter
                    assert [r.counter for r in got] == list(range(1, len(got) + 1))
                    assert all(b.prev == a.cid for a, b in itertools.pairwise(got))
            except BaseException as exc:
                errors.append(exc)

        readers = [threading.Thread(target=read) for _ in range(3)]
        for thread in readers:
            thread.start()
        for i in range(0, 60, 10):
            repo.append_many(writer.thread_id, writer.log_id, records[i : i + 10])
        for record in records[60:]:
            repo.append(writer.thread_id, writer.log_id, record)
        done.set()
        for thread in readers:
            thread.join()
        assert repo.get_head(writer.thread_id, writer.log_id).counter == 120
    assert not errors, errors


def test_writers_in_threads_are_serialized() -> None:
    writers = [Writer() for _ in range(4)]
    chains = [w.chain(30) for w in writers]
    errors: list[BaseException] = []
    with Repo.temporary(durable=False) as repo:
        for w in writers:
            w.install(repo)

        def write(w: Writer, chain: list[Any]) -> None:
            try:
                for record in chain[:15]:
                    repo.append(w.thread_id, w.log_id, record)
                repo.accept(w.thread_id, w.log_id, reversed(chain[15:]))
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=write, args=pair) for pair in zip(writers, chains, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        for w, chain in zip(writers, chains, strict=True):
            assert repo.get_head(w.thread_id, w.log_id).counter == 30
            assert [s.cid for s in repo.read_log(w.thread_id, w.log_id)] == [r.cid for r in chain]
