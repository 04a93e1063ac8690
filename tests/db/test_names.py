"""DB and collection names (ThreadDB's rule) and instance ids (monotonic lower-case ULIDs)."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ulid import ULID

import threadkit.db.names as names
from threadkit.db.names import check_name, new_instance_id, new_instance_ids
from threadkit.errors import InvalidInput, InvalidName

CROCKFORD = set("0123456789abcdefghjkmnpqrstvwxyz")


class TestCheckName:
    @pytest.mark.parametrize(
        "name",
        ["Dog", "Person", "a", "A1", "0", "books-2024", "a-b-c", "UPPER-lower-123", "x" * 64],
    )
    def test_valid_names(self, name: str) -> None:
        assert check_name(name) == name

    @pytest.mark.parametrize(
        "name",
        [
            "",
            "Not a URL-safe name",  # ThreadDB TestNewCollection/Fail/InvalidName
            " Dog",
            "Dog ",
            "my_books",
            "-dog",
            "dog-",
            "do--g",
            "-",
            "dog.cat",
            "dog/cat",
            "Dög",
            "名前",
            "dog\n",
            "dog\x00",
            "ｄｏｇ",  # fullwidth letters are not ASCII
            "١٢٣",  # Arabic-Indic digits are not ASCII digits
        ],
    )
    def test_invalid_names(self, name: str) -> None:
        with pytest.raises(InvalidName, match="invalid collection name"):
            check_name(name)

    @pytest.mark.parametrize("name", ["x" * 65, "a-" * 40 + "a", "x" * 600])
    def test_names_too_long(self, name: str) -> None:
        # part of every key of the collection's entries, which LMDB caps at 511 bytes
        with pytest.raises(InvalidName, match="at most 64 characters"):
            check_name(name)

    @pytest.mark.parametrize("name", [None, 5, b"Dog", ["Dog"]])
    def test_non_string_names(self, name: Any) -> None:
        with pytest.raises(InvalidName, match="must be a string"):
            check_name(name)

    def test_message_names_what_is_named(self) -> None:
        with pytest.raises(InvalidName, match="invalid database name 'my db'"):
            check_name("my db", "database")
        with pytest.raises(InvalidName, match="a database name must be a string"):
            check_name(3, what="database")

    def test_long_bad_name_is_shortened_in_the_message(self) -> None:
        with pytest.raises(InvalidName) as info:
            check_name("_" * 10_000)
        assert len(str(info.value)) < 300

    def test_invalid_name_is_a_value_error(self) -> None:
        with pytest.raises(ValueError):
            check_name("bad name")
        assert issubclass(InvalidName, InvalidInput)


class TestNewInstanceID:
    def test_shape(self) -> None:
        value = new_instance_id()
        assert len(value) == 26
        assert value == value.lower()
        assert set(value) <= CROCKFORD
        assert value[0] in "01234567"  # a 128-bit value: the first character carries 3 bits
        assert str(ULID.from_str(value.upper())).lower() == value

    @settings(max_examples=500, deadline=None)
    @given(st.integers(0, 2**128 - 1))
    def test_encoding_is_python_ulids(self, value: int) -> None:
        gen = names._MonotonicULID()
        want = str(ULID.from_int(value)).lower()
        assert gen._encode(value) == want
        # the cached first 24 characters are only reused for the same 118 high bits
        neighbour = value ^ 0x3FF
        assert gen._encode(neighbour) == str(ULID.from_int(neighbour)).lower()
        assert gen._encode(value) == want

    @settings(max_examples=100, deadline=None)
    @given(
        st.lists(st.integers(0, 5), min_size=1, max_size=30),
        st.integers(0, 30),
        st.binary(min_size=10, max_size=10),
    )
    def test_many_is_calls_in_a_row(self, ms: list[int], split: int, random: bytes) -> None:
        def make() -> names._MonotonicULID:
            clock = iter(ms)
            return names._MonotonicULID(
                clock=lambda: next(clock) * 1_000_000, randomness=lambda n: random[:n]
            )

        one_by_one = make()
        want = [one_by_one() for _ in ms]
        batched = make()
        split = min(split, len(ms))
        assert batched.many(split) + batched.many(len(ms) - split) == want
        assert want == sorted(want)

    def test_new_instance_ids(self) -> None:
        ids = [*new_instance_ids(2_000), new_instance_id()]
        assert ids == sorted(ids)
        assert len(set(ids)) == len(ids)
        assert all(str(ULID.from_str(i.upper())).lower() == i for i in ids)
        assert new_instance_ids(0) == []

    def test_time_part_is_now(self) -> None:
        import time

        before = time.time_ns() // 1_000_000
        value = new_instance_id()
        after = time.time_ns() // 1_000_000
        ms = ULID.from_str(value.upper()).milliseconds
        assert before <= ms <= after + 1

    def test_ids_sort_in_call_order(self) -> None:
        ids = [new_instance_id() for _ in range(10_000)]
        assert ids == sorted(ids)
        assert len(set(ids)) == len(ids)

    def test_same_millisecond_increments_the_random_part(self) -> None:
        gen = names._MonotonicULID(clock=lambda: 1_700_000_000_000 * 1_000_000)
        first, second, third = gen(), gen(), gen()
        assert first < second < third
        a, b, c = (ULID.from_str(x.upper()) for x in (first, second, third))
        assert a.milliseconds == b.milliseconds == c.milliseconds == 1_700_000_000_000
        assert int(b) == int(a) + 1 and int(c) == int(b) + 1

    def test_clock_stepping_back_stays_monotonic(self) -> None:
        clock = iter([2_000, 1_000, 1_500, 3_000])
        gen = names._MonotonicULID(clock=lambda: next(clock) * 1_000_000)
        ids = [gen() for _ in range(4)]
        assert ids == sorted(ids)
        assert ULID.from_str(ids[2].upper()).milliseconds == 2_000
        assert ULID.from_str(ids[3].upper()).milliseconds == 3_000

    def test_random_overflow_moves_time_ahead(self) -> None:
        gen = names._MonotonicULID(
            clock=lambda: 5_000 * 1_000_000, randomness=lambda n: b"\xff" * n
        )
        first, second = gen(), gen()
        assert first < second
        assert ULID.from_str(second.upper()).milliseconds == 5_001

    def test_thread_safe_and_unique(self) -> None:
        results: list[list[str]] = []
        lock = threading.Lock()

        def work() -> None:
            mine = [new_instance_id() for _ in range(2_000)]
            with lock:
                results.append(mine)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        every = [value for chunk in results for value in chunk]
        assert len(set(every)) == 8_000
        for chunk in results:
            assert chunk == sorted(chunk)  # each thread sees its own ids in order

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
    def test_forked_child_does_not_repeat_the_parent(self) -> None:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                os.write(write, "".join(new_instance_id() for _ in range(50)).encode())
            finally:
                os._exit(0)
        os.close(write)
        parent = {new_instance_id() for _ in range(50)}
        data = b""
        while chunk := os.read(read, 4096):
            data += chunk
        os.close(read)
        os.waitpid(pid, 0)
        child = {data[i : i + 26].decode() for i in range(0, len(data), 26)}
        assert len(child) == 50
        assert not parent & child
