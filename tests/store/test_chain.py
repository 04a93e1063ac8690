"""Growing a log: append (own records) and accept (received records)."""

from __future__ import annotations

import random

import pytest

from threadkit.core.cid import cid_to_string
from threadkit.core.records import Record
from threadkit.errors import (
    ChainError,
    LogGap,
    LogNotFound,
    MalformedRecord,
    ThreadNotFound,
)
from threadkit.store import Head, Repo

from .helpers import Writer, dump

STATE = ("heads", "records", "index")


def _state(repo: Repo) -> dict[str, list[tuple[bytes, bytes]]]:
    return dump(repo, *STATE)


# -- append ----------------------------------------------------------------------------------


def test_append_one_by_one(repo: Repo, writer: Writer) -> None:
    records = writer.chain(3)
    counters = [repo.append(writer.thread_id, writer.log_id, r) for r in records]
    assert counters == [1, 2, 3]
    assert repo.get_head(writer.thread_id, writer.log_id) == Head(records[-1].cid, 3)
    stored = repo.read_log(writer.thread_id, writer.log_id)
    assert [(s.cid, s.prev, s.counter) for s in stored] == [
        (r.cid, r.prev, i) for i, r in enumerate(records, 1)
    ]
    assert [s.blocks for s in stored] == [r.blocks for r in records]


def test_append_many_in_one_go(repo: Repo, writer: Writer) -> None:
    records = writer.chain(7)
    assert repo.append_many(writer.thread_id, writer.log_id, records[:5]) == 5
    assert repo.append_many(writer.thread_id, writer.log_id, iter(records[5:])) == 7
    assert repo.append_many(writer.thread_id, writer.log_id, []) == 7
    assert repo.get_head(writer.thread_id, writer.log_id) == Head(records[-1].cid, 7)


def test_append_refuses_a_record_that_does_not_link(repo: Repo, writer: Writer) -> None:
    records = writer.chain(3)
    with pytest.raises(ChainError, match="expected nothing"):
        repo.append(writer.thread_id, writer.log_id, records[1])
    repo.append(writer.thread_id, writer.log_id, records[0])
    with pytest.raises(ChainError, match=cid_to_string(records[0].cid)):
        repo.append(writer.thread_id, writer.log_id, records[2])
    with pytest.raises(ChainError):
        repo.append(writer.thread_id, writer.log_id, records[0])  # the head again
    assert repo.get_head(writer.thread_id, writer.log_id) == Head(records[0].cid, 1)


def test_append_many_is_all_or_nothing(repo: Repo, writer: Writer) -> None:
    records = writer.chain(5)
    repo.append(writer.thread_id, writer.log_id, records[0])
    before = _state(repo)
    with pytest.raises(ChainError):
        repo.append_many(writer.thread_id, writer.log_id, [records[1], records[2], records[4]])
    assert _state(repo) == before
    with pytest.raises(MalformedRecord, match="expected a Record"):
        repo.append_many(writer.thread_id, writer.log_id, [records[1], "junk"])  # type: ignore[list-item]
    assert _state(repo) == before


def test_append_refuses_a_record_held_in_another_log(repo: Repo, writer: Writer) -> None:
    record = writer.chain(1)[0]
    copy = Writer(log_key=writer.log_key)  # same log key, another thread
    copy.install(repo)
    repo.append(writer.thread_id, writer.log_id, record)
    with pytest.raises(ChainError, match="already in the repo"):
        repo.append(copy.thread_id, copy.log_id, record)
    assert repo.get_head(copy.thread_id, copy.log_id) == Head(None, 0)


def test_append_to_missing_thread_or_log(repo: Repo, writer: Writer) -> None:
    stranger = Writer()
    record = stranger.chain(1)[0]
    with pytest.raises(ThreadNotFound, match=str(stranger.thread_id)):
        repo.append(stranger.thread_id, stranger.log_id, record)
    with pytest.raises(LogNotFound, match=stranger.log_id):
        repo.append(writer.thread_id, stranger.log_id, record)
    with pytest.raises(LogNotFound):
        repo.accept(writer.thread_id, stranger.log_id, [record])


# -- accept ----------------------------------------------------------------------------------


def _in_order_state(writer: Writer, records: list[Record]) -> dict[str, list[tuple[bytes, bytes]]]:
    with Repo.temporary(durable=False) as other:
        writer.install(other)
        other.append_many(writer.thread_id, writer.log_id, records)
        return _state(other)


@pytest.mark.parametrize("order", ["in-order", "reversed", "shuffled", "duplicated"])
def test_accept_any_order_in_one_delivery(repo: Repo, writer: Writer, order: str) -> None:
    records = writer.chain(20)
    delivery = list(records)
    if order == "reversed":
        delivery.reverse()
    elif order == "shuffled":
        random.Random(7).shuffle(delivery)
    elif order == "duplicated":
        delivery = delivery + delivery[::2] + delivery[:3]
        random.Random(8).shuffle(delivery)
    result = repo.accept(writer.thread_id, writer.log_id, delivery)
    assert [(a.cid, a.counter) for a in result.added] == [
        (r.cid, i) for i, r in enumerate(records, 1)
    ]
    assert all(a.record is r for a, r in zip(result.added, records, strict=True))
    assert result.head == Head(records[-1].cid, 20)
    assert (result.gap, result.pending) == (None, [])
    result.raise_for_gap()  # no gap: nothing raised
    assert _state(repo) == _in_order_state(writer, records)


def test_accept_skips_records_already_held(repo: Repo, writer: Writer) -> None:
    records = writer.chain(6)
    repo.append_many(writer.thread_id, writer.log_id, records[:4])
    result = repo.accept(writer.thread_id, writer.log_id, records)
    assert [a.counter for a in result.added] == [5, 6]
    again = repo.accept(writer.thread_id, writer.log_id, reversed(records))
    assert again.added == [] and again.head == Head(records[-1].cid, 6) and again.gap is None
    assert repo.accept(writer.thread_id, writer.log_id, []).head == again.head


def test_accept_reports_a_gap_and_stores_nothing_past_it(repo: Repo, writer: Writer) -> None:
    records = writer.chain(8)
    result = repo.accept(writer.thread_id, writer.log_id, records[:2] + records[4:7])
    assert [a.counter for a in result.added] == [1, 2]
    assert result.gap == records[3].cid
    assert [r.cid for r in result.pending] == [r.cid for r in records[4:7]]
    assert not any(repo.has_record(r.cid) for r in records[2:])
    with pytest.raises(LogGap, match=cid_to_string(records[3].cid)) as info:
        result.raise_for_gap()
    assert info.value.missing == records[3].cid
    assert writer.log_id in str(info.value)

    # the gap's own record arrives, but its predecessor is still missing
    result = repo.accept(writer.thread_id, writer.log_id, [records[3], *result.pending])
    assert result.added == [] and result.gap == records[2].cid and len(result.pending) == 4

    # filled: everything links
    result = repo.accept(writer.thread_id, writer.log_id, [records[2], *result.pending])
    assert [a.counter for a in result.added] == [3, 4, 5, 6, 7]
    assert result.gap is None and result.pending == []
    assert repo.get_head(writer.thread_id, writer.log_id) == Head(records[6].cid, 7)


def test_accept_on_an_empty_log_with_the_first_record_missing(repo: Repo, writer: Writer) -> None:
    records = writer.chain(3)
    result = repo.accept(writer.thread_id, writer.log_id, records[1:])
    assert result.added == [] and result.gap == records[0].cid
    assert result.head == Head(None, 0)


def test_gap_names_the_fragment_received_first(repo: Repo, writer: Writer) -> None:
    records = writer.chain(9)
    result = repo.accept(writer.thread_id, writer.log_id, [records[6], records[7], records[3]])
    assert result.gap == records[5].cid  # records[6] arrived first; records[2] is missing too
    assert [r.cid for r in result.pending] == [records[i].cid for i in (6, 7, 3)]


def test_accept_refuses_a_fork_and_commits_nothing(repo: Repo, writer: Writer) -> None:
    records = writer.chain(5)
    repo.append_many(writer.thread_id, writer.log_id, records[:3])
    fork = writer.chain(2, prev=records[1].cid, tag="fork")  # claims records[1] as prev too
    before = _state(repo)
    with pytest.raises(ChainError, match=r"fork.*already has a successor"):
        repo.accept(writer.thread_id, writer.log_id, [records[3], records[4], fork[0]])
    with pytest.raises(ChainError, match="fork"):
        repo.accept(writer.thread_id, writer.log_id, fork)
    assert _state(repo) == before


def test_accept_refuses_two_records_with_the_same_prev(repo: Repo, writer: Writer) -> None:
    records = writer.chain(3)
    rival = writer.chain(1, prev=records[0].cid, tag="rival")[0]
    repo.append(writer.thread_id, writer.log_id, records[0])
    before = _state(repo)
    with pytest.raises(ChainError, match="both follow"):
        repo.accept(writer.thread_id, writer.log_id, [records[1], records[2], rival])
    beyond_gap = writer.chain(1, prev=records[1].cid, tag="beyond")[0]
    with pytest.raises(ChainError, match="both follow"):  # records[1] is missing
        repo.accept(writer.thread_id, writer.log_id, [records[2], beyond_gap])
    assert _state(repo) == before


def test_accept_refuses_a_second_first_record(repo: Repo, writer: Writer) -> None:
    records = writer.chain(2)
    repo.append(writer.thread_id, writer.log_id, records[0])
    other_first = writer.chain(1, tag="another genesis")[0]
    with pytest.raises(ChainError, match="starts the log"):
        repo.accept(writer.thread_id, writer.log_id, [records[1], other_first])
    assert repo.get_head(writer.thread_id, writer.log_id) == Head(records[0].cid, 1)


def test_accept_refuses_records_of_another_log(repo: Repo, writer: Writer) -> None:
    neighbour = Writer(thread_id=writer.thread_id, key=writer.key)
    neighbour.install(repo)
    theirs = neighbour.chain(2)
    repo.append(neighbour.thread_id, neighbour.log_id, theirs[0])
    before = _state(repo)
    with pytest.raises(ChainError, match="another log"):
        repo.accept(writer.thread_id, writer.log_id, [theirs[0]])
    linked_to_theirs = writer.chain(1, prev=theirs[0].cid)[0]
    with pytest.raises(ChainError, match="another log"):
        repo.accept(writer.thread_id, writer.log_id, [linked_to_theirs])
    assert _state(repo) == before


def test_accept_refuses_non_records(repo: Repo, writer: Writer) -> None:
    with pytest.raises(MalformedRecord, match="expected a Record"):
        repo.accept(writer.thread_id, writer.log_id, [b"bytes"])  # type: ignore[list-item]
