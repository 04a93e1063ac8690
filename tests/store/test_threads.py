"""Threads: add, get, has, list, delete (with everything under them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.errors import (
    BlockNotFound,
    InvalidInput,
    InvalidThreadID,
    InvalidThreadKey,
    LogNotFound,
    ThreadExists,
    ThreadNotFound,
)
from threadkit.store import Repo, ThreadInfo

from .helpers import Writer, dump


def test_add_get_has_list(repo: Repo) -> None:
    tid, key = ThreadID.new(), ThreadKey.new()
    assert not repo.has_thread(tid)
    info = repo.add_thread(tid, key, name="field-notes")
    assert isinstance(info, ThreadInfo)
    assert (info.id, info.key, info.name) == (tid, key, "field-notes")
    assert abs(datetime.now(UTC) - info.created) < timedelta(minutes=1)
    assert repo.get_thread(tid) == info
    assert repo.has_thread(tid)
    other = repo.add_thread(ThreadID.new(), ThreadKey.new(read=False))
    assert other.name is None and not other.key.can_read
    listed = repo.list_threads()
    assert sorted(t.id.to_bytes() for t in listed) == [t.id.to_bytes() for t in listed]
    assert {t.id for t in listed} == {tid, other.id}


def test_info_is_frozen(repo: Repo) -> None:
    info = repo.add_thread(ThreadID.new(), ThreadKey.new())
    with pytest.raises(AttributeError):
        info.name = "x"  # type: ignore[misc]


def test_thread_exists(repo: Repo) -> None:
    tid = ThreadID.new()
    repo.add_thread(tid, ThreadKey.new(), name="first")
    with pytest.raises(ThreadExists, match=str(tid)):
        repo.add_thread(tid, ThreadKey.new(), name="second")
    assert repo.get_thread(tid).name == "first"


def test_thread_not_found(repo: Repo) -> None:
    tid = ThreadID.new()
    for call in (repo.get_thread, repo.delete_thread, repo.list_logs):
        with pytest.raises(ThreadNotFound, match=str(tid)) as info:
            call(tid)
        assert isinstance(info.value, LookupError)


def test_bad_input(repo: Repo) -> None:
    with pytest.raises(InvalidThreadID):
        repo.add_thread("bafk", ThreadKey.new())  # type: ignore[arg-type]
    with pytest.raises(InvalidThreadKey):
        repo.add_thread(ThreadID.new(), b"k" * 32)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="name"):
        repo.add_thread(ThreadID.new(), ThreadKey.new(), name=5)  # type: ignore[arg-type]
    with pytest.raises(InvalidThreadID):
        repo.has_thread(None)  # type: ignore[arg-type]
    assert repo.list_threads() == []


def test_delete_removes_logs_index_and_records(repo: Repo) -> None:
    doomed, kept = Writer(), Writer()
    for writer in (doomed, kept):
        writer.install(repo)
        Writer(writer.thread_id, writer.key).install(repo)  # a second log in the thread
    doomed_records = doomed.chain(5)
    kept_records = kept.chain(3)
    repo.append_many(doomed.thread_id, doomed.log_id, doomed_records)
    repo.append_many(kept.thread_id, kept.log_id, kept_records)
    before = dump(repo, "logs", "heads", "records", "index")

    repo.delete_thread(doomed.thread_id)

    assert not repo.has_thread(doomed.thread_id)
    with pytest.raises(ThreadNotFound):
        repo.get_log(doomed.thread_id, doomed.log_id)
    for record in doomed_records:
        assert not repo.has_record(record.cid)
        with pytest.raises(BlockNotFound):
            repo.get_record(record.cid)
    after = dump(repo, "logs", "heads", "records", "index")
    assert len(after["logs"]) == len(after["heads"]) == 2
    assert len(after["records"]) == len(after["index"]) == 3
    assert all(set(after[t]) <= set(before[t]) for t in after)
    assert repo.read_log(kept.thread_id, kept.log_id)[-1].cid == kept_records[-1].cid
    with pytest.raises(ThreadNotFound):
        repo.delete_thread(doomed.thread_id)


def test_delete_spares_thread_whose_id_extends_the_deleted_one(repo: Repo) -> None:
    short = Writer(thread_id=ThreadID.new(size=16))
    longer = Writer(thread_id=ThreadID.from_bytes(short.thread_id.to_bytes() + b"\x00"))
    for writer in (short, longer):
        writer.install(repo)
        repo.append_many(writer.thread_id, writer.log_id, writer.chain(2))
    assert [log.id for log in repo.list_logs(short.thread_id)] == [short.log_id]
    repo.delete_thread(short.thread_id)
    assert repo.get_head(longer.thread_id, longer.log_id).counter == 2
    assert len(repo.read_log(longer.thread_id, longer.log_id)) == 2
    with pytest.raises(ThreadNotFound):
        repo.get_head(short.thread_id, short.log_id)
    with pytest.raises(LogNotFound):
        repo.get_head(longer.thread_id, short.log_id)
