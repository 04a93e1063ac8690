"""Hybrid logical clock: monotonic stamps, merging remote stamps, byte order, thread safety."""

from __future__ import annotations

import itertools
import sys
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threadkit.core.clock import HLC, MAX_DRIFT, MAX_LOGICAL, MAX_WALL, Timestamp, order_key
from threadkit.errors import InvalidTimestamp

walls = st.integers(0, MAX_WALL)
logicals = st.integers(0, MAX_LOGICAL)
stamps = st.builds(Timestamp, walls, logicals)
# small values make collisions (equal walls, equal logicals) likely
small_stamps = st.builds(Timestamp, st.integers(0, 50), st.integers(0, 5))


def _clock_from(values: list[int]) -> HLC:
    it = iter(values)
    last = [0]

    def physical() -> int:
        last[0] = next(it, last[0])
        return last[0]

    return HLC(physical=physical)


# -- Timestamp --------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(stamps, stamps)
def test_byte_order_is_time_order(a: Timestamp, b: Timestamp) -> None:
    assert (a.to_bytes() < b.to_bytes()) == (a < b)
    assert (a.to_bytes() == b.to_bytes()) == (a == b)


@settings(max_examples=500, deadline=None)
@given(stamps)
def test_bytes_round_trip(stamp: Timestamp) -> None:
    data = stamp.to_bytes()
    assert len(data) == 12
    assert Timestamp.from_bytes(data) == stamp
    assert Timestamp.checked(*stamp) == stamp


def test_known_bytes() -> None:
    assert Timestamp(1, 2).to_bytes() == bytes.fromhex("000000000000000100000002")
    assert Timestamp(7, 2).seconds == 7e-9


@pytest.mark.parametrize(
    ("wall", "logical"),
    [
        (-1, 0),
        (0, -1),
        (MAX_WALL + 1, 0),
        (0, MAX_LOGICAL + 1),
        (2**64, 0),
        (1.0, 0),
        (0, 1.0),
        (True, 0),
        (0, False),
        ("1", 0),
        (None, 0),
    ],
)
def test_checked_out_of_range(wall: object, logical: object) -> None:
    with pytest.raises(InvalidTimestamp):
        Timestamp.checked(wall, logical)  # type: ignore[arg-type]


def test_checked_bounds_are_inclusive() -> None:
    assert Timestamp.checked(MAX_WALL, MAX_LOGICAL) == (MAX_WALL, MAX_LOGICAL)
    assert Timestamp.checked(0, 0) == (0, 0)


@pytest.mark.parametrize("data", [b"", bytes(11), bytes(13), b"\xff" * 12])
def test_from_bytes_bad(data: bytes) -> None:
    with pytest.raises(InvalidTimestamp):
        Timestamp.from_bytes(data)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(stamps, st.binary(min_size=1, max_size=40)), min_size=2, max_size=20))
def test_order_key_sorts_by_stamp_then_log_id(events: list[tuple[Timestamp, bytes]]) -> None:
    by_key = sorted(events, key=lambda e: order_key(*e))
    assert by_key == sorted(events)


def test_order_key_tie_broken_by_log_id() -> None:
    stamp = Timestamp(10, 0)
    assert order_key(stamp, b"\x00\x24a") < order_key(stamp, b"\x00\x24b")
    assert order_key(Timestamp(10, 0), b"\xff") < order_key(Timestamp(10, 1), b"\x00")


# -- HLC.now ----------------------------------------------------------------------------


def test_physical_clock_standing_still() -> None:
    clock = HLC(physical=lambda: 100)
    got = [clock.now() for _ in range(1000)]
    assert got == [Timestamp(100, i) for i in range(1000)]


def test_physical_clock_going_backwards() -> None:
    clock = _clock_from([100, 200, 150, 50, 0, 199, 200, 201, 300])
    got = [clock.now() for _ in range(9)]
    assert all(a < b for a, b in itertools.pairwise(got))
    assert [s.wall for s in got] == [100, 200, 200, 200, 200, 200, 200, 201, 300]
    assert got[-2] == Timestamp(201, 0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=1, max_size=40), st.integers(0, 20))
def test_now_many_is_now_called_in_a_row(readings: list[int], split: int) -> None:
    one_by_one = _clock_from(readings)
    batched = _clock_from(readings)
    want = [one_by_one.now() for _ in range(len(readings))]
    split = min(split, len(readings))
    assert batched.now_many(split) + batched.now_many(len(readings) - split) == want
    assert batched.now_many(0) == []
    assert batched.last == one_by_one.last


def test_physical_clock_moving_forward_resets_logical() -> None:
    clock = _clock_from([5, 5, 5, 6])
    assert [clock.now() for _ in range(4)] == [(5, 0), (5, 1), (5, 2), (6, 0)]


def test_default_physical_clock_is_wall_time() -> None:
    import time

    before = time.time_ns()
    stamp = HLC().now()
    assert before <= stamp.wall <= time.time_ns()


def test_logical_overflow_moves_wall() -> None:
    clock = HLC(physical=lambda: 5, last=Timestamp(5, MAX_LOGICAL))
    assert clock.now() == Timestamp(6, 0)


def test_clock_overflow_is_invalid_timestamp() -> None:
    clock = HLC(physical=lambda: 5, last=Timestamp(MAX_WALL, MAX_LOGICAL))
    with pytest.raises(InvalidTimestamp):
        clock.now()


def test_restart_with_last_stays_monotonic() -> None:
    before = HLC(physical=lambda: 1_000)
    for _ in range(5):
        before.now()
    last = before.last
    # the machine's clock is now behind (it was reset)
    after = HLC(physical=lambda: 10, last=last)
    assert after.last == last
    stamps = [after.now() for _ in range(5)]
    assert stamps[0] > last
    assert all(a < b for a, b in itertools.pairwise(stamps))
    assert stamps[0] == Timestamp(1_000, 5)


def test_restart_with_last_behind_physical() -> None:
    clock = HLC(physical=lambda: 500, last=Timestamp(100, 9))
    assert clock.now() == Timestamp(500, 0)


def test_last_tracks_issued() -> None:
    clock = HLC(physical=lambda: 7)
    assert clock.last == Timestamp(0, 0)
    stamp = clock.now()
    assert clock.last == stamp


# -- HLC.update -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("physical", "local", "remote", "expected"),
    [
        # remote ahead of both
        (100, Timestamp(100, 3), Timestamp(500, 7), Timestamp(500, 8)),
        # remote behind
        (100, Timestamp(100, 3), Timestamp(50, 9), Timestamp(100, 4)),
        # remote equal wall, higher logical
        (100, Timestamp(100, 3), Timestamp(100, 9), Timestamp(100, 10)),
        # remote equal wall, lower logical
        (100, Timestamp(100, 3), Timestamp(100, 1), Timestamp(100, 4)),
        # remote exactly equal
        (100, Timestamp(100, 3), Timestamp(100, 3), Timestamp(100, 4)),
        # physical ahead of both
        (900, Timestamp(100, 3), Timestamp(500, 7), Timestamp(900, 0)),
        # physical equal to remote, local behind
        (500, Timestamp(100, 3), Timestamp(500, 7), Timestamp(500, 8)),
        # physical equal to local, remote behind
        (100, Timestamp(100, 3), Timestamp(99, 70), Timestamp(100, 4)),
        # local ahead of physical (clock went backwards)
        (10, Timestamp(100, 3), Timestamp(50, 1), Timestamp(100, 4)),
        # logical overflow on a remote stamp
        (10, Timestamp(5, 0), Timestamp(20, MAX_LOGICAL), Timestamp(21, 0)),
    ],
)
def test_update_cases(
    physical: int, local: Timestamp, remote: Timestamp, expected: Timestamp
) -> None:
    clock = HLC(physical=lambda: physical, last=local)
    got = clock.update(remote)
    assert got == expected
    assert got > local
    assert got > remote
    assert clock.last == got
    assert clock.now() > got


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 60), small_stamps, small_stamps)
def test_update_is_greater_than_both(physical: int, local: Timestamp, remote: Timestamp) -> None:
    clock = HLC(physical=lambda: physical, last=local)
    got = clock.update(remote)
    assert got > local
    assert got > remote
    assert got.wall == max(physical, local.wall, remote.wall)


@pytest.mark.parametrize(
    "remote",
    [(-1, 0), (0, -1), (MAX_WALL + 1, 0), (0, MAX_LOGICAL + 1), (1.5, 0), ("a", "b")],
)
def test_update_refuses_bad_remote(remote: tuple[object, object]) -> None:
    clock = HLC(physical=lambda: 5)
    with pytest.raises(InvalidTimestamp):
        clock.update(remote)  # type: ignore[arg-type]
    assert clock.last == Timestamp(0, 0)


def test_update_merges_a_stamp_up_to_max_drift_ahead() -> None:
    clock = HLC(physical=lambda: 5)
    assert clock.update(Timestamp(5 + MAX_DRIFT, 0)) == Timestamp(5 + MAX_DRIFT, 1)


@pytest.mark.parametrize("remote", [Timestamp(6 + MAX_DRIFT, 0), Timestamp(MAX_WALL, MAX_LOGICAL)])
def test_update_skips_a_stamp_beyond_max_drift(remote: Timestamp) -> None:
    clock = HLC(physical=lambda: 5, last=Timestamp(3, 2))
    assert clock.update(remote) == Timestamp(3, 2)  # unchanged, and below the remote stamp
    assert clock.last == Timestamp(3, 2)
    assert clock.now() == Timestamp(5, 0)


def test_skipped_stamp_is_merged_once_within_reach() -> None:
    physical = [0]
    clock = HLC(physical=lambda: physical[0], max_drift=100)
    assert clock.update(Timestamp(500, 0)) < Timestamp(500, 0)
    physical[0] = 400
    assert clock.update(Timestamp(500, 0)) == Timestamp(500, 1)


@pytest.mark.parametrize("drift", [-1, 1.5, None, True])
def test_max_drift_must_be_a_non_negative_int(drift: object) -> None:
    with pytest.raises(InvalidTimestamp):
        HLC(max_drift=drift)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.lists(stamps, max_size=20), st.integers(0, 2**62))
def test_no_remote_stamp_moves_the_clock_beyond_max_drift(
    remotes: list[Timestamp], physical: int
) -> None:
    clock = HLC(physical=lambda: physical)
    for remote in remotes:
        clock.update(remote)
        assert clock.last.wall <= physical + MAX_DRIFT
    assert clock.now().wall <= physical + MAX_DRIFT


def test_update_overflow() -> None:
    clock = HLC(physical=lambda: MAX_WALL)
    with pytest.raises(InvalidTimestamp):
        clock.update(Timestamp(MAX_WALL, MAX_LOGICAL))


# -- interleavings ----------------------------------------------------------------------

operations = st.lists(
    st.one_of(
        st.tuples(st.just("now"), st.integers(0, 40)),
        st.tuples(st.just("update"), st.integers(0, 40), small_stamps),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=500, deadline=None)
@given(operations, st.one_of(st.none(), small_stamps))
def test_any_interleaving_is_strictly_increasing(
    ops: list[tuple[object, ...]], last: Timestamp | None
) -> None:
    physical = [0]
    clock = HLC(physical=lambda: physical[0], last=last)
    previous = last if last is not None else Timestamp(0, 0)
    seen: list[Timestamp] = []
    for op in ops:
        physical[0] = op[1]  # type: ignore[assignment]
        if op[0] == "now":
            stamp = clock.now()
            assert stamp.wall >= physical[0]
        else:
            remote = op[2]
            assert isinstance(remote, Timestamp)
            stamp = clock.update(remote)
            assert stamp > remote
        assert stamp > previous
        assert clock.last == stamp
        assert Timestamp.checked(*stamp) == stamp
        previous = stamp
        seen.append(stamp)
    assert len(set(seen)) == len(seen)


# -- threads ----------------------------------------------------------------------------


@pytest.mark.parametrize("physical", [None, lambda: 42], ids=["real", "frozen"])
def test_concurrent_now_unique_and_ordered(physical: object) -> None:
    clock = HLC() if physical is None else HLC(physical=physical)  # type: ignore[arg-type]
    n_threads, per_thread = 8, 2000
    results: list[list[Timestamp]] = [[] for _ in range(n_threads)]
    barrier = threading.Barrier(n_threads)

    def work(out: list[Timestamp]) -> None:
        barrier.wait()
        for i in range(per_thread):
            out.append(clock.now())
            if i % 50 == 0:
                out.append(clock.update(Timestamp(out[-1].wall, out[-1].logical)))

    threads = [threading.Thread(target=work, args=(r,)) for r in results]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # force the threads to interleave
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    everything = [s for r in results for s in r]
    assert len(set(everything)) == len(everything)
    for r in results:
        assert all(a < b for a, b in itertools.pairwise(r))
    assert clock.last == max(everything)
