"""py-libp2p's log records, routed into ``logging`` under ``threadkit.net.libp2p``.

py-libp2p configures its ``libp2p`` logger when it is first imported: no handler, no
propagation (unless ``LIBP2P_DEBUG`` is set). A record on a logger without handlers goes
to Python's last-resort handler, which prints warnings and errors on stderr — in a
notebook, as red text under whatever cell ran last (``Failed to open TCP stream …``
every few seconds after a peer left). :func:`route_libp2p_logs` replaces that with one
handler that hands each record to the logger of the same name under ``threadkit.net``
(``libp2p.transport.tcp.tcp`` → ``threadkit.net.libp2p.transport.tcp.tcp``), where it
takes the normal path: shown only when the application configured logging (the
``threadkit`` logger has a ``NullHandler``, so the last-resort handler never fires).

Dial failures are threadkit's to report (:mod:`threadkit.net.reach`: one warning per
unreachable peer), so py-libp2p's own records about them — from its transports and its
swarm, at error level on every attempt — are passed on at debug level.

A few py-libp2p modules log through the *module-level* functions (``logging.debug(...)``
in ``libp2p.network.connection.swarm_connection``, run whenever a connection closes).
Those log on the root logger and, when the root logger has no handler — a notebook's
usual state — call ``logging.basicConfig()``, which installs a stderr handler on the root
logger: from then on every warning of every library is printed into the notebook. Those
modules get a ``logging`` that logs on their own named logger instead.

With ``LIBP2P_DEBUG`` set, py-libp2p's own logging setup (stderr and a file) is left as
it is.

Examples
--------
>>> import logging
>>> logging.getLogger("threadkit.net.libp2p").setLevel(logging.DEBUG)  # doctest: +SKIP
>>> # before the peer starts: py-libp2p's debug records then reach your handlers
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

__all__ = ["PREFIX", "route_libp2p_logs"]

PREFIX = "threadkit.net."
"""py-libp2p's logger ``libp2p.x`` is passed on to ``threadkit.net.libp2p.x``."""

_DIAL_LOGGERS = ("libp2p.transport", "libp2p.network", "libp2p.relay.circuit_v2.dcutr")
"""py-libp2p loggers whose records (dial failures, mostly) are passed on at debug level.

DCUtR's warn of every failed hole punch, while the relayed connection goes on working."""


_ROOT_LOGGING_MODULES = (
    "libp2p.network.connection.swarm_connection",
    "libp2p.tools.utils",
    "multiaddr.resolvers.dns",
)
"""Modules that call ``logging.debug(...)`` and the like (the root logger) directly."""


class _ModuleLogging:
    """Stands in for the ``logging`` module inside a module that logs on the root logger.

    ``logging.debug(...)`` there logs on the module's own logger (no ``basicConfig``);
    every other name is the real module's.
    """

    def __init__(self, name: str) -> None:
        logger = logging.getLogger(name)
        self.debug = logger.debug
        self.info = logger.info
        self.warning = logger.warning
        self.error = logger.error
        self.exception = logger.exception
        self.critical = logger.critical
        self.log = logger.log

    def __getattr__(self, name: str) -> Any:
        return getattr(logging, name)


class _Forward(logging.Handler):
    """Hands py-libp2p's records to the matching logger under ``threadkit.net``."""

    def emit(self, record: logging.LogRecord) -> None:
        target = logging.getLogger(PREFIX + record.name)
        level = record.levelno
        if record.name.startswith(_DIAL_LOGGERS):
            level = min(level, logging.DEBUG)
        if not target.isEnabledFor(level):
            return
        copy = logging.makeLogRecord(record.__dict__)
        copy.name = target.name
        copy.levelno = level
        copy.levelname = logging.getLevelName(level)
        target.handle(copy)


def route_libp2p_logs() -> None:
    """Route the ``libp2p`` logger into ``threadkit.net.libp2p`` (idempotent).

    Call after py-libp2p is imported (its import resets its logger). The ``libp2p``
    logger's level follows ``threadkit.net.libp2p``'s effective level at the time of
    the call, so py-libp2p does not even format records nobody would see.
    """
    import libp2p.network.connection.swarm_connection  # noqa: F401 - imported late otherwise

    for name in _ROOT_LOGGING_MODULES:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "logging", None) is logging:
            module.logging = _ModuleLogging(name)  # type: ignore[attr-defined]
    if os.environ.get("LIBP2P_DEBUG"):
        return
    source = logging.getLogger("libp2p")
    if not any(isinstance(h, _Forward) for h in source.handlers):
        source.handlers = [h for h in source.handlers if not isinstance(h, logging.NullHandler)]
        source.addHandler(_Forward())
    source.propagate = False
    source.setLevel(logging.getLogger(PREFIX + "libp2p").getEffectiveLevel())
