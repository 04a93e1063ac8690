"""Reading records back: read_log, read_back, get_record, has_record."""

from __future__ import annotations

import pytest

from threadkit.core.cid import cid_of, cid_to_string
from threadkit.core.records import Record, open_record
from threadkit.errors import BlockNotFound, InvalidInput, LogNotFound, ThreadNotFound
from threadkit.store import Repo, StoredRecord

from .helpers import Writer


@pytest.fixture
def records(repo: Repo, writer: Writer) -> list[Record]:
    records = writer.chain(10)
    repo.append_many(writer.thread_id, writer.log_id, records)
    return records


def _cids(stored: list[StoredRecord]) -> list[bytes]:
    return [s.cid for s in stored]


def test_read_log_ranges(repo: Repo, writer: Writer, records: list[Record]) -> None:
    tid, lid = writer.thread_id, writer.log_id
    cids = [r.cid for r in records]
    assert _cids(repo.read_log(tid, lid)) == cids
    assert _cids(repo.read_log(tid, lid, after=3)) == cids[3:]
    assert _cids(repo.read_log(tid, lid, after=3, limit=4)) == cids[3:7]
    assert _cids(repo.read_log(tid, lid, limit=0)) == []
    assert _cids(repo.read_log(tid, lid, after=10)) == []
    assert _cids(repo.read_log(tid, lid, after=50, limit=5)) == []
    assert [s.counter for s in repo.read_log(tid, lid, after=8)] == [9, 10]


def test_read_log_of_an_empty_log(repo: Repo, writer: Writer) -> None:
    assert repo.read_log(writer.thread_id, writer.log_id) == []


def test_stored_records_open_with_their_keys(
    repo: Repo, writer: Writer, records: list[Record]
) -> None:
    for stored, record in zip(repo.read_log(writer.thread_id, writer.log_id), records, strict=True):
        assert (stored.thread_id, stored.log_id) == (writer.thread_id, writer.log_id)
        assert stored.prev == record.prev
        opened = open_record(
            stored.blocks, service_key=writer.key, log_key=writer.log_key.public, cid=stored.cid
        )
        assert opened.decode_body(writer.key) == record.decode_body(writer.key)
        assert cid_to_string(stored.cid) in repr(stored)


def test_read_back(repo: Repo, writer: Writer, records: list[Record]) -> None:
    tid, lid = writer.thread_id, writer.log_id
    cids = [r.cid for r in records]
    assert _cids(repo.read_back(tid, lid)) == cids
    assert _cids(repo.read_back(tid, lid, None, cids[3])) == cids[4:]
    assert _cids(repo.read_back(tid, lid, cids[7], cids[3])) == cids[4:8]
    assert _cids(repo.read_back(tid, lid, cids[7], cids[3], limit=2)) == cids[6:8]
    assert _cids(repo.read_back(tid, lid, limit=3)) == cids[7:]
    assert _cids(repo.read_back(tid, lid, cids[3], cids[7])) == []
    assert _cids(repo.read_back(tid, lid, cids[9], cids[9])) == []
    assert _cids(repo.read_back(tid, lid, limit=0)) == []
    unknown = cid_of(b"not a record")
    assert _cids(repo.read_back(tid, lid, offset_cid=unknown, limit=4)) == cids[6:]
    with pytest.raises(BlockNotFound, match=cid_to_string(unknown)):
        repo.read_back(tid, lid, head_cid=unknown)


def test_read_back_refuses_a_head_of_another_log(
    repo: Repo, writer: Writer, records: list[Record]
) -> None:
    neighbour = Writer(thread_id=writer.thread_id, key=writer.key)
    neighbour.install(repo)
    with pytest.raises(BlockNotFound, match=neighbour.log_id):
        repo.read_back(neighbour.thread_id, neighbour.log_id, head_cid=records[0].cid)
    # an offset from another log is unknown here: walk to the first record
    assert repo.read_back(neighbour.thread_id, neighbour.log_id, offset_cid=records[0].cid) == []


def test_get_record_and_has_record(repo: Repo, writer: Writer, records: list[Record]) -> None:
    stored = repo.get_record(records[4].cid)
    assert stored == repo.read_log(writer.thread_id, writer.log_id, after=4, limit=1)[0]
    assert (stored.thread_id, stored.log_id, stored.counter) == (
        writer.thread_id,
        writer.log_id,
        5,
    )
    assert repo.has_record(records[4].cid)
    assert repo.get_record(bytearray(records[0].cid)).prev is None
    unknown = cid_of(b"nothing")
    assert not repo.has_record(unknown)
    with pytest.raises(BlockNotFound, match=cid_to_string(unknown)):
        repo.get_record(unknown)
    assert not repo.has_record(b"x" * 600)
    with pytest.raises(BlockNotFound):
        repo.get_record(b"x" * 600)
    for bad in (b"", "bafy", None):
        with pytest.raises(InvalidInput):
            repo.has_record(bad)  # type: ignore[arg-type]


def test_bad_ranges(repo: Repo, writer: Writer) -> None:
    for kwargs in ({"after": -1}, {"limit": -1}, {"after": 1.5}, {"after": True}):
        with pytest.raises(InvalidInput):
            repo.read_log(writer.thread_id, writer.log_id, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        repo.read_back(writer.thread_id, writer.log_id, limit=-2)


def test_missing_thread_or_log(repo: Repo, writer: Writer) -> None:
    stranger = Writer()
    with pytest.raises(ThreadNotFound, match=str(stranger.thread_id)):
        repo.read_log(stranger.thread_id, stranger.log_id)
    with pytest.raises(LogNotFound, match=stranger.log_id):
        repo.read_log(writer.thread_id, stranger.log_id)
    with pytest.raises(LogNotFound, match=stranger.log_id):
        repo.read_back(writer.thread_id, stranger.log_id)
