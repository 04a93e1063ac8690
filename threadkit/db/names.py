"""Names and ids: ThreadDB's rule for DB and collection names, and instance ids.

Examples
--------
>>> check_name("Books-2024")
'Books-2024'
>>> len(new_instance_id())
26
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from typing import Final

from threadkit.errors import InvalidName

__all__ = ["MAX_NAME_LENGTH", "NAME_PATTERN", "check_name", "new_instance_id", "new_instance_ids"]

MAX_NAME_LENGTH: Final = 64
"""Longest DB or collection name, in characters (ASCII, so also bytes). A collection name
is part of every key of its documents, events and index entries, which LMDB caps at 511
bytes; ThreadDB sets no limit, 64 leaves the rest of the key to ``_id`` and index values."""

NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*")
"""ThreadDB's name rule ``^[A-Za-z0-9]+(?:[-][A-Za-z0-9]+)*$``, matched whole (``fullmatch``,
so a trailing newline does not slip through as it would with ``$``)."""

_RANDOM_BITS: Final = 80
_MAX_RANDOM: Final = (1 << _RANDOM_BITS) - 1
_CROCKFORD: Final = "0123456789abcdefghjkmnpqrstvwxyz"
_PAIRS: Final = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)
"""Every ten-bit value as its two lower-case Crockford base32 characters."""
_HEAD_SHIFTS: Final = tuple(range(110, -1, -10))
"""Shifts of the ten-bit groups of a ULID without its last ten bits (24 characters)."""


def check_name(name: object, what: str = "collection") -> str:
    """Return ``name`` if it is a valid DB or collection name, else raise InvalidName.

    A name is ASCII letters and digits in groups joined by single hyphens: no spaces,
    underscores, dots, leading, trailing or doubled hyphens, or non-ASCII letters; at
    most :data:`MAX_NAME_LENGTH` characters.

    Parameters
    ----------
    name : object
        The name to check.
    what : str, optional
        What is being named, for the message (``"collection"``, ``"database"``…).

    Returns
    -------
    str
        ``name``, unchanged.

    Raises
    ------
    InvalidName
        If ``name`` is not a string, does not follow the rule or is too long.

    Examples
    --------
    >>> check_name("my_books")
    Traceback (most recent call last):
    ...
    threadkit.errors.InvalidName: invalid collection name 'my_books': use ASCII letters and \
digits, optionally in groups joined by single hyphens (like 'Books' or 'reading-list-2')
    """
    if not isinstance(name, str):
        raise InvalidName(f"a {what} name must be a string, not {type(name).__name__}")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(
            f"a {what} name is at most {MAX_NAME_LENGTH} characters, got {len(name)} "
            f"({name[:20]!r}...)"
        )
    if NAME_PATTERN.fullmatch(name) is None:
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise InvalidName(
            f"invalid {what} name {shown!r}: use ASCII letters and digits, optionally in "
            "groups joined by single hyphens (like 'Books' or 'reading-list-2')"
        )
    return name


class _MonotonicULID:
    """Lower-case ULIDs that sort in the order they were made, within one process.

    A ULID is a 48-bit millisecond time and 80 random bits. Within one millisecond (or
    when the clock steps back) the previous id's random part is incremented by one, as the
    ULID spec's monotonic mode says, so ids never go backwards; if the random part would
    overflow, the time part moves one millisecond ahead. This is done here rather than
    relying on a python-ulid version that implements it.

    Parameters
    ----------
    clock : callable, optional
        Returns the time in nanoseconds (default :func:`time.time_ns`).
    randomness : callable, optional
        Returns that many random bytes (default :func:`os.urandom`).
    """

    def __init__(
        self,
        clock: Callable[[], int] = time.time_ns,
        randomness: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._clock = clock
        self._randomness = randomness
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_random = 0
        self._head_value = -1
        self._head = ""

    def reset(self) -> None:
        """Forget the last id (used in a forked child, which must not repeat the parent)."""
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_random = 0
        self._head_value = -1
        self._head = ""

    def __call__(self) -> str:
        return self.many(1)[0]

    def many(self, count: int) -> list[str]:
        """``count`` new ids, the same as ``count`` calls in a row, under one lock."""
        out: list[str] = []
        with self._lock:
            for _ in range(count):
                now = self._clock() // 1_000_000
                if now > self._last_ms:
                    ms, random = now, int.from_bytes(self._randomness(10), "big")
                elif self._last_random < _MAX_RANDOM:
                    ms, random = self._last_ms, self._last_random + 1
                else:
                    ms, random = self._last_ms + 1, int.from_bytes(self._randomness(10), "big")
                self._last_ms, self._last_random = ms, random
                out.append(self._encode((ms << _RANDOM_BITS) | random))
        return out

    def _encode(self, value: int) -> str:
        """Lower-case Crockford base32 of a 128-bit value, 26 characters.

        Ids made in a row differ mostly in their last ten bits, so the first 24 characters
        (the value without those bits) are kept from the previous call when they match.
        """
        high = value >> 10
        if high != self._head_value:
            self._head_value = high
            self._head = _encode_pairs(high, _HEAD_SHIFTS)
        return self._head + _PAIRS[value & 0x3FF]


def _encode_pairs(value: int, shifts: tuple[int, ...]) -> str:
    """Base32 characters of ``value``, two (ten bits) per shift, most significant first."""
    return "".join([_PAIRS[(value >> shift) & 0x3FF] for shift in shifts])


_generator: Final = _MonotonicULID()
if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_generator.reset)


def new_instance_id() -> str:
    """A new instance id: a lower-case ULID, 26 characters of Crockford base32.

    Ids made in one process sort (as strings) in the order they were made, even within
    one millisecond or if the wall clock steps back; the function is thread-safe.

    Returns
    -------
    str
        For example ``"01hx2k3m4n5p6q7r8s9t0vwxyz"``.

    Examples
    --------
    >>> a, b = new_instance_id(), new_instance_id()
    >>> a < b
    True
    """
    return _generator()


def new_instance_ids(count: int) -> list[str]:
    """``count`` new instance ids, as ``count`` calls of :func:`new_instance_id` would give.

    Examples
    --------
    >>> a, b, c = new_instance_ids(3)
    >>> a < b < c
    True
    """
    return _generator.many(count)
