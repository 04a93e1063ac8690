"""Property: any delivery of a chain (any order, duplicates, batches) ends as in-order delivery.

The caller keeps what :meth:`Repo.accept` reports as pending and offers it again
with the next batch, as the net layer does; a gap is reported exactly while some
delivered record is not yet held.
"""

from __future__ import annotations

import itertools
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from threadkit.core.records import Record
from threadkit.errors import LogGap
from threadkit.store import Head, Repo

from .helpers import Writer, dump

N = 12
WRITER = Writer()
CHAIN: list[Record] = WRITER.chain(N)
INDEX = {record.cid: i for i, record in enumerate(CHAIN)}
STATE = ("heads", "records", "index")


@cache
def in_order_state(n: int) -> dict[str, list[tuple[bytes, bytes]]]:
    with Repo.temporary(durable=False) as repo:
        WRITER.install(repo)
        for record in CHAIN[:n]:
            repo.append(WRITER.thread_id, WRITER.log_id, record)
        return dump(repo, *STATE)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[int, list[list[int]]]:
    """A chain length n and batches of indices covering 0..n-1, with duplicates."""
    n = draw(st.integers(1, N))
    extra = draw(st.lists(st.integers(0, n - 1), max_size=n))
    order = draw(st.permutations([*range(n), *extra]))
    cuts = sorted(draw(st.lists(st.integers(0, len(order)), max_size=6)))
    bounds = [0, *cuts, len(order)]
    return n, [order[a:b] for a, b in itertools.pairwise(bounds)]


@given(deliveries())
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_delivery_ends_as_in_order_delivery(delivery: tuple[int, list[list[int]]]) -> None:
    n, batches = delivery
    tid, lid = WRITER.thread_id, WRITER.log_id
    with Repo.temporary(durable=False) as repo:
        WRITER.install(repo)
        pending: list[Record] = []
        delivered: set[int] = set()
        for batch in batches:
            delivered.update(batch)
            before = repo.get_head(tid, lid).counter
            result = repo.accept(tid, lid, [*pending, *(CHAIN[i] for i in batch)])
            held = result.head.counter
            assert repo.get_head(tid, lid) == result.head
            assert [a.counter for a in result.added] == list(range(before + 1, held + 1))
            assert [a.cid for a in result.added] == [r.cid for r in CHAIN[before:held]]
            waiting = delivered - set(range(held))
            assert {INDEX[r.cid] for r in result.pending} == waiting
            if waiting:
                missing = INDEX.get(result.gap) if result.gap is not None else None
                assert missing is not None and missing >= held and missing not in delivered
                with pytest.raises(LogGap):
                    result.raise_for_gap()
            else:
                assert result.gap is None
            pending = result.pending
        assert pending == []
        assert repo.get_head(tid, lid) == Head(CHAIN[n - 1].cid, n)
        assert dump(repo, *STATE) == in_order_state(n)
