"""Logs: add, get, list, addresses, heads."""

from __future__ import annotations

import pytest

from threadkit.core.identity import Identity
from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.errors import (
    InvalidAddress,
    InvalidKey,
    LogExists,
    LogNotFound,
    ThreadNotFound,
    TooManyLogs,
)
from threadkit.store import Head, LogInfo, Repo
from threadkit.store.logs import MAX_ADDRS, MAX_LOGS

from .helpers import Writer

ADDR = "/ip4/127.0.0.1/tcp/4006"
ADDR2 = "/ip4/10.0.0.2/tcp/4006"


@pytest.fixture
def thread(repo: Repo) -> ThreadID:
    tid = ThreadID.new()
    repo.add_thread(tid, ThreadKey.new())
    return tid


def test_add_and_get_own_log(repo: Repo, thread: ThreadID) -> None:
    ident = Identity.generate()
    info = repo.add_log(thread, ident.public, ident, [ADDR])
    assert isinstance(info, LogInfo)
    assert info == LogInfo(ident.public.peer_id, ident.public, ident, (ADDR,), None, 0)
    assert repo.get_log(thread, info.id) == info
    assert repo.get_head(thread, info.id) == Head(None, 0)


def test_others_log_has_no_private_key_and_binary_addrs_work(repo: Repo, thread: ThreadID) -> None:
    public = Identity.generate().public
    from threadkit.core.addr import addr_to_bytes

    info = repo.add_log(thread, public, addrs=[addr_to_bytes(ADDR)])
    assert info.private is None and info.addrs == (ADDR,)


def test_list_logs(repo: Repo, thread: ThreadID) -> None:
    assert repo.list_logs(thread) == []
    idents = [Identity.generate() for _ in range(3)]
    infos = [repo.add_log(thread, i.public) for i in idents]
    writer = Writer(thread_id=thread, log_key=idents[0])
    records = writer.chain(2)
    repo.append_many(thread, writer.log_id, records)
    listed = repo.list_logs(thread)
    assert {log.id for log in listed} == {info.id for info in infos}
    by_id = {log.id: log for log in listed}
    assert (by_id[writer.log_id].head, by_id[writer.log_id].counter) == (records[-1].cid, 2)
    other = repo.add_thread(ThreadID.new(), ThreadKey.new())
    assert repo.list_logs(other.id) == []


def test_log_exists(repo: Repo, thread: ThreadID) -> None:
    ident = Identity.generate()
    repo.add_log(thread, ident.public, ident, [ADDR])
    with pytest.raises(LogExists, match=ident.public.peer_id):
        repo.add_log(thread, ident.public)
    assert repo.get_log(thread, ident.public.peer_id).private == ident


def test_same_log_in_two_threads(repo: Repo, thread: ThreadID) -> None:
    ident = Identity.generate()
    other = repo.add_thread(ThreadID.new(), ThreadKey.new()).id
    repo.add_log(thread, ident.public, ident)
    repo.add_log(other, ident.public)
    assert repo.get_log(other, ident.public.peer_id).private is None


def test_missing_thread_and_log(repo: Repo, thread: ThreadID) -> None:
    ident = Identity.generate()
    missing = ThreadID.new()
    with pytest.raises(ThreadNotFound, match=str(missing)):
        repo.add_log(missing, ident.public)
    for call in (repo.get_log, repo.get_head, lambda t, i: repo.add_addrs(t, i, [ADDR])):
        with pytest.raises(ThreadNotFound, match=str(missing)):
            call(missing, ident.public.peer_id)
        with pytest.raises(LogNotFound, match=ident.public.peer_id) as info:
            call(thread, ident.public.peer_id)
        assert str(thread) in str(info.value)


def test_private_key_must_match(repo: Repo, thread: ThreadID) -> None:
    with pytest.raises(InvalidKey, match="private half"):
        repo.add_log(thread, Identity.generate().public, Identity.generate())
    with pytest.raises(InvalidKey):
        repo.add_log(thread, "not a key")  # type: ignore[arg-type]
    with pytest.raises(InvalidKey):
        repo.get_log(thread, "0OIl not base58")
    assert repo.list_logs(thread) == []


def test_add_addrs_merges(repo: Repo, thread: ThreadID) -> None:
    ident = Identity.generate()
    repo.add_log(thread, ident.public, addrs=[ADDR])
    info = repo.add_addrs(thread, ident.public.peer_id, [ADDR2, ADDR, ADDR2])
    assert info.addrs == (ADDR, ADDR2)
    assert repo.get_log(thread, ident.public.peer_id).addrs == (ADDR, ADDR2)
    assert repo.add_addrs(thread, ident.public.peer_id, []).addrs == (ADDR, ADDR2)


@pytest.mark.parametrize(
    "bad", [["not/an/addr"], ["/ip4/999.1.1.1/tcp/1"], [b"\xff\xff"], [5], ADDR]
)
def test_bad_addrs(repo: Repo, thread: ThreadID, bad: object) -> None:
    ident = Identity.generate()
    with pytest.raises(InvalidAddress):
        repo.add_log(thread, ident.public, addrs=bad)  # type: ignore[arg-type]
    repo.add_log(thread, ident.public, addrs=[ADDR])
    with pytest.raises(InvalidAddress):
        repo.add_addrs(thread, ident.public.peer_id, bad)  # type: ignore[arg-type]
    assert repo.get_log(thread, ident.public.peer_id).addrs == (ADDR,)


def test_a_thread_has_at_most_max_logs(repo: Repo, thread: ThreadID) -> None:
    other = ThreadID.new()
    repo.add_thread(other, ThreadKey.new())
    repo.add_log(other, Identity.generate().public)  # another thread's logs do not count
    for _ in range(MAX_LOGS):
        repo.add_log(thread, Identity.generate().public, addrs=[ADDR])
    extra = Identity.generate()
    with pytest.raises(TooManyLogs, match=f"already has {MAX_LOGS} logs"):
        repo.add_log(thread, extra.public, extra, [ADDR])
    assert len(repo.list_logs(thread)) == MAX_LOGS  # nothing of the refused log was written
    with pytest.raises(LogNotFound):
        repo.get_log(thread, extra.public.peer_id)
    with pytest.raises(LogNotFound):
        repo.get_head(thread, extra.public.peer_id)
    first = repo.list_logs(thread)[0]
    with pytest.raises(LogExists):  # a known log is still "exists", not "too many"
        repo.add_log(thread, first.public)
    repo.add_log(other, Identity.generate().public)


def _addr(n: int) -> str:
    return f"/ip4/10.0.{n // 256}.{n % 256}/tcp/4006"


def test_a_log_keeps_at_most_max_addrs_the_newest(repo: Repo, thread: ThreadID) -> None:
    ident = Identity.generate()
    log_id = ident.public.peer_id
    repo.add_log(thread, ident.public, addrs=[_addr(0)])
    for n in range(1, 3 * MAX_ADDRS, 5):  # five new addresses at a time, and the first again
        repo.add_addrs(thread, log_id, [_addr(0), *(_addr(n + i) for i in range(5))])
    addrs = repo.get_log(thread, log_id).addrs
    assert len(addrs) == MAX_ADDRS
    assert addrs[0] == _addr(0)  # mentioned every time: kept, in its first place
    newest = [_addr(n) for n in range(3 * MAX_ADDRS - MAX_ADDRS + 1, 3 * MAX_ADDRS + 4)]
    assert list(addrs[1:]) == newest[-(MAX_ADDRS - 1) :]
    # more given at once than a log keeps: the last of them
    many = [_addr(1000 + i) for i in range(MAX_ADDRS + 10)]
    assert repo.add_addrs(thread, log_id, many).addrs == tuple(many[-MAX_ADDRS:])
    assert repo.add_log(thread, Identity.generate().public, addrs=many).addrs == tuple(
        many[-MAX_ADDRS:]
    )
