"""threadkit.api.limits: the budget's arithmetic, client addresses, the idle watchdog."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threadkit import errors
from threadkit.api.limits import APILimits, IdleWatch, StreamSlots, client_address

DEFAULTS = {
    "apiMaxStreams": "64",
    "apiMaxClientStreams": "32",
    "apiUnaryWorkers": "16",
    "apiStreamIdleTimeout": "60s",
    "proxyMaxConns": "256",
    "proxyMaxClientConns": "64",
    "proxyHeaderTimeout": "10s",
}


def test_defaults_parse_to_the_documented_numbers() -> None:
    limits = APILimits.parse(DEFAULTS)
    assert limits == APILimits()
    assert (limits.max_streams, limits.max_client_streams, limits.unary_workers) == (64, 32, 16)
    assert limits.workers == 80
    assert (limits.stream_idle, limits.header_timeout) == (60.0, 10.0)
    assert (limits.max_conns, limits.max_client_conns) == (256, 64)


@pytest.mark.parametrize(
    ("name", "value", "text"),
    [
        ("apiMaxStreams", "0", "apiMaxStreams: must be at least 1"),
        ("apiUnaryWorkers", "x", "apiUnaryWorkers: 'x' is not a whole number"),
        ("apiStreamIdleTimeout", "60", "apiStreamIdleTimeout: '60' has no unit"),
        ("proxyHeaderTimeout", "0s", "proxyHeaderTimeout: must be more than 0"),
        ("apiMaxClientStreams", "65", "must not exceed max_streams"),
        ("proxyMaxClientConns", "300", "must not exceed max_conns"),
    ],
)
def test_bad_settings_name_themselves(name: str, value: str, text: str) -> None:
    with pytest.raises(errors.InvalidInput, match=text):
        APILimits.parse({**DEFAULTS, name: value})


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "4"])
def test_bad_counts_are_refused(bad: object) -> None:
    with pytest.raises(errors.InvalidInput, match="max_streams"):
        APILimits(max_streams=bad)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    total=st.integers(1, 6),
    per_client=st.integers(1, 6),
    steps=st.lists(st.tuples(st.booleans(), st.sampled_from("abc")), max_size=60),
)
def test_slots_never_exceed_either_limit(
    total: int, per_client: int, steps: list[tuple[bool, str]]
) -> None:
    if per_client > total:
        with pytest.raises(errors.InvalidInput):
            APILimits(max_streams=total, max_client_streams=per_client)
        return
    slots = StreamSlots(APILimits(max_streams=total, max_client_streams=per_client))
    held = {"a": 0, "b": 0, "c": 0}
    for take, client in steps:
        if take:
            refused = slots.acquire(client)
            full = held[client] >= per_client or sum(held.values()) >= total
            assert (refused is not None) == full
            if refused is None:
                held[client] += 1
            else:
                assert "too many open streams" in refused
        elif held[client]:
            slots.release(client)
            held[client] -= 1
        assert slots.open == sum(held.values()) <= total


@pytest.mark.parametrize(
    ("peer", "meta", "expected"),
    [
        ("ipv4:10.0.0.7:5000", (), "10.0.0.7"),
        ("ipv6:[2001:db8::1]:443", (), "2001:db8::1"),
        ("unix:/tmp/sock", (), "unix:/tmp/sock"),
        (
            "ipv4:127.0.0.1:1",
            (("x-threadkit-client-addr", "192.0.2.9"), ("x-threadkit-proxy-secret", "s3")),
            "192.0.2.9",
        ),
        # a forged address without the secret (or with a wrong one) counts as the caller
        ("ipv4:127.0.0.1:1", (("x-threadkit-client-addr", "192.0.2.9"),), "127.0.0.1"),
        (
            "ipv4:127.0.0.1:1",
            (("x-threadkit-client-addr", "192.0.2.9"), ("x-threadkit-proxy-secret", "no")),
            "127.0.0.1",
        ),
    ],
)
def test_client_address(peer: str, meta: tuple[tuple[str, str], ...], expected: str) -> None:
    assert client_address(peer, meta, "s3") == expected


def test_idle_watch_expires_the_silent_and_spares_the_answered() -> None:
    watch = IdleWatch()
    try:
        expired = threading.Event()
        spared = threading.Event()
        handle = watch.expect(0.05, spared.set)
        watch.done(handle)
        watch.expect(0.1, expired.set)
        assert expired.wait(10)
        later = threading.Event()
        watch.expect(0.1, later.set)  # the watchdog keeps serving after an expiry
        assert later.wait(10)
        assert not spared.is_set()
    finally:
        watch.stop()
