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

from ulid import base32 as ulid_base32

from threadkit.errors import InvalidName

__all__ = ["NAME_PATTERN", "check_name", "new_instance_id"]

NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*")
"""ThreadDB's name rule ``^[A-Za-z0-9]+(?:[-][A-Za-z0-9]+)*$``, matched whole (``fullmatch``,
so a trailing newline does not slip through as it would with ``$``)."""

_RANDOM_BITS: Final = 80
_MAX_RANDOM: Final = (1 << _RANDOM_BITS) - 1


def check_name(name: object, what: str = "collection") -> str:
    """Return ``name`` if it is a valid DB or collection name, else raise InvalidName.

    A name is ASCII letters and digits in groups joined by single hyphens: no spaces,
    underscores, dots, leading, trailing or doubled hyphens, or non-ASCII letters.

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
        If ``name`` is not a string or does not follow the rule.

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

    def reset(self) -> None:
        """Forget the last id (used in a forked child, which must not repeat the parent)."""
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_random = 0

    def __call__(self) -> str:
        now = self._clock() // 1_000_000
        with self._lock:
            if now > self._last_ms:
                ms, random = now, int.from_bytes(self._randomness(10), "big")
            elif self._last_random < _MAX_RANDOM:
                ms, random = self._last_ms, self._last_random + 1
            else:
                ms, random = self._last_ms + 1, int.from_bytes(self._randomness(10), "big")
            self._last_ms, self._last_random = ms, random
        raw = ms.to_bytes(6, "big") + random.to_bytes(10, "big")
        return str(ulid_base32.encode(raw)).lower()


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
