"""The frame budget and stalled frames (threadkit.net.budget, FrameReader), on trio memory streams.

A mock clock that jumps ahead whenever every task waits makes the timeouts instant.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing
from multiformats import varint

from threadkit.errors import FrameTooLarge, InvalidInput, ProtocolError
from threadkit.net.budget import FrameBudget
from threadkit.net.framing import FrameReader


def run(afn: Callable[[], Awaitable[Any]]) -> Any:
    return trio.run(afn, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_frame_that_finds_no_room_waits_then_is_refused() -> None:
    async def main() -> tuple[float, int]:
        budget = FrameBudget(per_peer=100, total=1000, wait=5)
        await budget.reserve("a", 80)
        start = trio.current_time()
        with pytest.raises(ProtocolError) as err:
            await budget.reserve("a", 30)
        assert err.value.code == "busy"
        await budget.reserve("b", 30)  # another peer has its own share
        return trio.current_time() - start, budget.used()

    waited, used = run(main)
    assert waited == pytest.approx(5)
    assert used == 110


def test_a_release_lets_a_waiting_frame_in() -> None:
    async def main() -> list[str]:
        budget = FrameBudget(per_peer=100, total=150, wait=5)
        order: list[str] = []
        await budget.reserve("a", 100)
        await budget.reserve("b", 50)

        async def waiter() -> None:
            await budget.reserve("c", 50)  # the total is full until "a" gives back
            order.append("c in")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.sleep(1)
            order.append("a out")
            budget.release("a", 100)
        assert budget.used() == 100 and budget.used("a") == 0
        return order

    assert run(main) == ["a out", "c in"]


def test_budget_limits_are_checked() -> None:
    with pytest.raises(InvalidInput):
        FrameBudget(per_peer=0)
    with pytest.raises(InvalidInput):
        FrameBudget(per_peer=10, total=5)
    with pytest.raises(InvalidInput):
        FrameBudget(wait=-1)

    async def main() -> None:
        with pytest.raises(FrameTooLarge):
            await FrameBudget(per_peer=10, total=10).reserve("a", 11)

    run(main)


def _reader(budget: FrameBudget | None = None) -> tuple[Any, FrameReader]:
    left, right = trio.testing.memory_stream_pair()
    return left, FrameReader(right, budget=budget, peer="p", stall_timeout=10, min_rate=100)


def test_a_frame_that_stops_arriving_is_given_up_and_its_room_returned() -> None:
    async def main() -> float:
        budget = FrameBudget(per_peer=1000, total=1000)
        left, reader = _reader(budget)
        await left.send_all(varint.encode(500) + b"x" * 100)
        start = trio.current_time()
        with pytest.raises(ProtocolError) as err:
            await reader.read_frame(1000)
        assert err.value.code == "stalled"
        assert budget.used() == 0
        return trio.current_time() - start

    assert run(main) == pytest.approx(10)


def test_a_trickle_below_the_minimum_rate_is_given_up() -> None:
    async def main() -> float:
        left, reader = _reader()

        async def trickle() -> None:
            await left.send_all(varint.encode(1000))
            for _ in range(1000):
                await trio.sleep(5)  # never silent for the stall timeout, but far too slow
                await left.send_all(b"x")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(trickle)
            start = trio.current_time()
            with pytest.raises(ProtocolError) as err:
                await reader.read_frame(1000)
            nursery.cancel_scope.cancel()
        assert err.value.code == "stalled"
        return trio.current_time() - start

    # within stall_timeout + size / min_rate = 10 + 1000 / 100 seconds
    assert run(main) == pytest.approx(20, abs=5)


def test_waiting_for_a_frame_to_begin_is_not_a_stall() -> None:
    async def main() -> bytes | None:
        left, reader = _reader()

        async def late() -> None:
            await trio.sleep(60)
            await left.send_all(varint.encode(3) + b"abc")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(late)
            return await reader.read_frame(10)

    assert run(main) == b"abc"


def test_frames_reserve_while_read_and_give_back_after() -> None:
    async def main() -> None:
        budget = FrameBudget(per_peer=10, total=10, wait=1)
        left, reader = _reader(budget)
        await left.send_all(varint.encode(8) + b"12345678" + varint.encode(8) + b"abcd")
        assert await reader.read_frame(10) == b"12345678"
        assert budget.used() == 0
        other_left, other = _reader(budget)
        await other_left.send_all(varint.encode(4) + b"wxyz")

        async def second() -> None:
            with pytest.raises(ProtocolError):
                await reader.read_frame(10)  # half-sent: holds 8 bytes until it stalls

        async with trio.open_nursery() as nursery:
            nursery.start_soon(second)
            await trio.sleep(0.5)
            assert budget.used("p") == 8
            with pytest.raises(ProtocolError) as err:
                await other.read_frame(10)  # 8 + 4 > 10 for the same peer: no room
            assert err.value.code == "busy"
        assert budget.used() == 0

    run(main)
