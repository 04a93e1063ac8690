"""Connection-manager limits (``ConnLimits``) and Go-style durations (``parse_duration``).

threadsd builds its libp2p host with ``connmgr.NewConnManager(low, high,
WithGracePeriod(grace))``: when a host holds more than ``high_water`` connections, the
oldest idle ones outside their grace period are closed until ``low_water`` remain.
:class:`ConnLimits` carries the same three settings from ``tk.Peer(conn_limits=...)``
(and ``threadkit daemon``'s ``THRDS_CONNLOWWATER``, ``THRDS_CONNHIGHWATER``,
``THRDS_CONNGRACEPERIOD``) down to the py-libp2p host (:mod:`threadkit.net.node`), which
maps them onto ``libp2p.network.config.ConnectionConfig`` and trims periodically.

This module imports neither trio nor libp2p.

Examples
--------
>>> from threadkit.net.connmgr import ConnLimits, parse_duration
>>> ConnLimits()
ConnLimits(low_water=100, high_water=400, grace_period=20.0)
>>> ConnLimits(10, 20, parse_duration("1m30s")).grace_period
90.0
>>> ConnLimits.parse("7", "9", "500ms")
ConnLimits(low_water=7, high_water=9, grace_period=0.5)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from threadkit.errors import InvalidInput

__all__ = [
    "DEFAULT_GRACE_PERIOD",
    "DEFAULT_HIGH_WATER",
    "DEFAULT_LOW_WATER",
    "MAX_CONNECTIONS",
    "TRIM_INTERVAL_MAX",
    "TRIM_INTERVAL_MIN",
    "ConnLimits",
    "parse_duration",
]

DEFAULT_LOW_WATER = 100
"""threadsd's default ``connLowWater``."""

DEFAULT_HIGH_WATER = 400
"""threadsd's default ``connHighWater``."""

DEFAULT_GRACE_PERIOD = 20.0
"""threadsd's default ``connGracePeriod`` (seconds)."""

MAX_CONNECTIONS = 1_000_000
"""``ConnectionConfig.max_connections``: lifts py-libp2p 0.8.1's 250-inbound-connection cap.

It stays this high whatever the watermarks: py-libp2p sizes its inbound limiter as
``max_connections - min_connections``, and every inbound connection keeps its slot until
the host stops (``docs/libp2p-notes.md`` §7). ``high_water`` may not exceed it.
"""

TRIM_INTERVAL_MAX = 10.0
"""Seconds between trims at most (go-libp2p's connmgr ``silencePeriod``)."""

TRIM_INTERVAL_MIN = 0.25
"""Seconds between trims at least, however short the grace period."""

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # U+00B5 micro sign
    "μs": 1e-6,  # U+03BC Greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds in a Go duration string, as threadsd's flags take them.

    Parameters
    ----------
    text : str
        A sequence of decimal numbers with units, e.g. ``"20s"``, ``"1m"``, ``"1m30s"``,
        ``"1.5h"``, ``"500ms"`` (units ``ns``, ``us``/``µs``, ``ms``, ``s``, ``m``,
        ``h``), or ``"0"``. A unit is required, as in Go's ``time.ParseDuration``.
    what : str
        What the value is, for the error message (e.g. ``"connGracePeriod"``).

    Returns
    -------
    float
        The duration in seconds (never negative).

    Raises
    ------
    InvalidInput
        ``text`` is not a duration, is negative, or lacks a unit.

    Examples
    --------
    >>> parse_duration("20s"), parse_duration("1m"), parse_duration("1h2m3.5s")
    (20.0, 60.0, 3723.5)
    >>> parse_duration("20")
    Traceback (most recent call last):
    ...
    threadkit.errors.InvalidInput: duration: '20' has no unit (write e.g. '20s', '1m' or '500ms')
    """
    if not isinstance(text, str):
        raise InvalidInput(f"{what}: expected a duration string such as '20s', got {text!r}")
    value = text.strip()
    if value.startswith("+"):
        value = value[1:]
    if value.startswith("-"):
        raise InvalidInput(f"{what}: {text!r} is negative")
    if value == "0":
        return 0.0
    example = "(write e.g. '20s', '1m' or '500ms')"
    if re.fullmatch(r"\d+\.?\d*|\.\d+", value):
        raise InvalidInput(f"{what}: {text!r} has no unit {example}")
    position, seconds = 0, 0.0
    while position < len(value):
        match = _PART.match(value, position)
        if match is None:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if not value or position < len(value) or not math.isfinite(seconds):
        raise InvalidInput(f"{what}: {text!r} is not a duration {example}")
    return seconds


def _whole_number(text: str, what: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise InvalidInput(f"{what}: {text!r} is not a whole number") from None


@dataclass(frozen=True)
class ConnLimits:
    """How many connections a host keeps: go-libp2p's ``NewConnManager(low, high, grace)``.

    When the host holds more than ``high_water`` connections, idle connections older than
    ``grace_period`` are closed, lowest-valued and oldest first, until ``low_water`` remain.
    The defaults are threadsd's (100, 400, 20 s).

    Parameters
    ----------
    low_water : int
        Connections kept when trimming (at least 1).
    high_water : int
        Trimming starts above this many connections (at least ``low_water``, at most
        :data:`MAX_CONNECTIONS`).
    grace_period : float
        Seconds a new connection is safe from trimming (0 or more).

    Raises
    ------
    InvalidInput
        A value out of range or of the wrong type.

    Notes
    -----
    What py-libp2p 0.8.1 does with these (measured, see ``docs/daemon.md``): it trims only
    when a *new* connection arrives (at most once a second), closes at most 20 per trim,
    and never closes a connection with an open stream, a protected peer's, or one to a
    peer with a positive tag value. :class:`threadkit.net.node.Node` therefore also trims
    on a timer, every ``trim_interval`` seconds, as go-libp2p's connmgr does.

    Examples
    --------
    >>> ConnLimits(low_water=1, high_water=2, grace_period=0.5).trim_interval
    0.25
    >>> ConnLimits(5, 2)
    Traceback (most recent call last):
    ...
    threadkit.errors.InvalidInput: connection limits: low_water (5) must not exceed high_water (2)
    """

    low_water: int = DEFAULT_LOW_WATER
    high_water: int = DEFAULT_HIGH_WATER
    grace_period: float = DEFAULT_GRACE_PERIOD

    def __post_init__(self) -> None:
        for name in ("low_water", "high_water"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidInput(f"connection limits: {name} must be an int, got {value!r}")
            if value < 1:
                raise InvalidInput(f"connection limits: {name} must be positive, got {value}")
        if self.low_water > self.high_water:
            raise InvalidInput(
                f"connection limits: low_water ({self.low_water}) must not exceed "
                f"high_water ({self.high_water})"
            )
        if self.high_water > MAX_CONNECTIONS:
            raise InvalidInput(
                f"connection limits: high_water ({self.high_water}) must not exceed "
                f"{MAX_CONNECTIONS}"
            )
        grace = self.grace_period
        if isinstance(grace, bool) or not isinstance(grace, int | float):
            raise InvalidInput(
                f"connection limits: grace_period must be seconds (a number), got {grace!r}"
            )
        if not math.isfinite(grace) or grace < 0:
            raise InvalidInput(
                f"connection limits: grace_period must be 0 or more seconds, got {grace}"
            )
        object.__setattr__(self, "grace_period", float(grace))

    @classmethod
    def parse(cls, low_water: str, high_water: str, grace_period: str) -> ConnLimits:
        """Limits from threadsd-style strings (``"100"``, ``"400"``, ``"20s"``).

        Raises
        ------
        InvalidInput
            A watermark is not a whole number, the grace period not a duration with a
            unit, or the values are out of range.
        """
        return cls(
            _whole_number(low_water, "connLowWater"),
            _whole_number(high_water, "connHighWater"),
            parse_duration(grace_period, "connGracePeriod"),
        )

    @property
    def trim_interval(self) -> float:
        """Seconds between periodic trims: half the grace period, within 0.25–10 s."""
        return min(TRIM_INTERVAL_MAX, max(TRIM_INTERVAL_MIN, self.grace_period / 2))
