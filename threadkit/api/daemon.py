"""``threadkit daemon``: its configuration (flags, ``THRDS_*`` variables, defaults) and life cycle.

Every setting is taken from its flag, else its environment variable, else its default
(:data:`SETTINGS`, :data:`SWITCHES`; the names are threadsd's). :class:`DaemonConfig`
parses and checks them all before anything is opened; :class:`Daemon` runs the peer, the
gRPC API and the web proxy in-process; :func:`main` is the command (logging, signals,
exit codes) that ``threadkit daemon`` runs.

Examples
--------
>>> import tempfile
>>> repo = tempfile.mkdtemp()
>>> config = DaemonConfig.from_argv(
...     ["--repo", repo, "--hostAddr", "/ip4/127.0.0.1/tcp/0", "--apiAddr", "/ip4/127.0.0.1/tcp/0",
...      "--apiProxyAddr", "/ip4/127.0.0.1/tcp/0", "--disableNetPulling"], environ={})
>>> config.api_port, config.pulling_enabled
(0, False)
>>> with Daemon(config) as daemon:
...     daemon.api_port > 0 and daemon.proxy_port > 0
True
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from threadkit.api.limits import APILimits
from threadkit.core.addr import host_port, listen_addr
from threadkit.core.identity import peer_id_bytes
from threadkit.errors import InvalidInput, NetworkError, RepoInUse
from threadkit.net.addrs import parse_announce
from threadkit.net.connmgr import ConnLimits, parse_duration
from threadkit.net.pull import PullSettings

if TYPE_CHECKING:
    from threadkit.api.proxy import WebProxy
    from threadkit.api.server import APIServer
    from threadkit.peer import Peer

__all__ = [
    "SETTINGS",
    "SWITCHES",
    "Daemon",
    "DaemonConfig",
    "NetSettings",
    "add_arguments",
    "main",
]

log = logging.getLogger("threadkit.daemon")

SETTINGS: tuple[tuple[str, str, str, str], ...] = (
    ("repo", "THRDS_REPO", "~/.threads", "repo directory"),
    ("hostAddr", "THRDS_HOSTADDR", "/ip4/0.0.0.0/tcp/4006", "libp2p listen multiaddr"),
    ("apiAddr", "THRDS_APIADDR", "/ip4/127.0.0.1/tcp/6006", "gRPC API multiaddr"),
    (
        "apiProxyAddr",
        "THRDS_APIPROXYADDR",
        "/ip4/127.0.0.1/tcp/6007",
        "grpc-web/websocket multiaddr",
    ),
    ("connLowWater", "THRDS_CONNLOWWATER", "100", "connection manager low water"),
    ("connHighWater", "THRDS_CONNHIGHWATER", "400", "connection manager high water"),
    ("connGracePeriod", "THRDS_CONNGRACEPERIOD", "20s", "connection grace period"),
    ("keepAliveInterval", "THRDS_KEEPALIVEINTERVAL", "5s", "websocket ping interval of the proxy"),
    ("announceAddr", "THRDS_ANNOUNCEADDR", "", "libp2p address to advertise instead"),
    ("netPullingLimit", "THRDS_NETPULLINGLIMIT", "10000", "records asked for in one pull"),
    ("netPullingStartAfter", "THRDS_NETPULLINGSTARTAFTER", "1s", "delay before the first pull"),
    (
        "netPullingInitialInterval",
        "THRDS_NETPULLINGINITIALINTERVAL",
        "1s",
        "from the first pull to the second",
    ),
    ("netPullingInterval", "THRDS_NETPULLINGINTERVAL", "10s", "between later pulls"),
    ("logFile", "THRDS_LOGFILE", "", "also write the log to this file"),
    ("apiMaxStreams", "THRDS_APIMAXSTREAMS", "64", "open API streams at once"),
    ("apiMaxClientStreams", "THRDS_APIMAXCLIENTSTREAMS", "32", "open API streams per client"),
    ("apiUnaryWorkers", "THRDS_APIUNARYWORKERS", "16", "workers kept for unary calls"),
    (
        "apiStreamIdleTimeout",
        "THRDS_APISTREAMIDLETIMEOUT",
        "60s",
        "end GetToken/transaction streams whose client sends nothing this long",
    ),
    ("proxyMaxConns", "THRDS_PROXYMAXCONNS", "256", "proxy connections at once"),
    ("proxyMaxClientConns", "THRDS_PROXYMAXCLIENTCONNS", "64", "proxy connections per client"),
    ("proxyHeaderTimeout", "THRDS_PROXYHEADERTIMEOUT", "10s", "time to send a request's head"),
    (
        "replicatorAllow",
        "THRDS_REPLICATORALLOW",
        "",
        "peer ids (comma-separated) whose threads are replicated, '*' any",
    ),
)
"""The daemon's settings: flag, environment variable, default, what it is (as threadsd's)."""


SWITCHES: tuple[tuple[str, str, str], ...] = (
    ("enableNetPubsub", "THRDS_ENABLENETPUBSUB", "also use GossipSub"),
    ("relay", "THRDS_RELAY", "serve circuit relay v2 for peers behind NATs"),
    ("disableNetPulling", "THRDS_DISABLENETPULLING", "no periodic pull from peers"),
    (
        "membersOnly",
        "THRDS_MEMBERSONLY",
        "NewDB makes databases with members, not open ones (docs/access.md)",
    ),
    ("debug", "THRDS_DEBUG", "debug logging"),
)
"""The daemon's on/off settings: flag, environment variable (on: 1, true, yes, on), what it
is. Off by default."""

_TRUE = frozenset({"1", "true", "yes", "on"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the daemon's flags to ``parser`` (each defaults to None: not given)."""
    for flag, env, default, what in SETTINGS:
        parser.add_argument(
            f"--{flag}",
            dest=flag,
            default=None,
            help=f"{what} (${env}; default {default or 'none'})",
        )
    for flag, env, what in SWITCHES:
        parser.add_argument(
            f"--{flag}",
            dest=flag,
            action="store_true",
            default=None,
            help=f"{what} (${env}; default off)",
        )


def _settings(flags: Mapping[str, object], environ: Mapping[str, str]) -> dict[str, object]:
    """Every setting's value: its flag when given, else its variable, else its default."""
    values: dict[str, object] = {}
    for name, env, default, _ in SETTINGS:
        flag = flags.get(name)
        values[name] = str(flag) if flag is not None else environ.get(env, default)
    values["repo"] = str(Path(str(values["repo"])).expanduser())
    for name, env, _ in SWITCHES:
        values[name] = bool(flags.get(name)) or environ.get(env, "").strip().lower() in _TRUE
    return values


@dataclass(frozen=True)
class NetSettings:
    """The daemon's parsed network settings.

    Attributes
    ----------
    conn_limits : ConnLimits
        ``connLowWater``, ``connHighWater`` and ``connGracePeriod``, applied to the
        libp2p host.
    keep_alive : float
        ``keepAliveInterval`` in seconds.
    pulling : PullSettings
        ``disableNetPulling``, ``netPullingLimit``, ``netPullingStartAfter``,
        ``netPullingInitialInterval`` and ``netPullingInterval``.
    announce : list of str
        ``announceAddr`` (empty when not set).
    api_limits : APILimits
        The API's stream budget and the proxy's connection budget (``apiMaxStreams``,
        ``apiMaxClientStreams``, ``apiUnaryWorkers``, ``apiStreamIdleTimeout``,
        ``proxyMaxConns``, ``proxyMaxClientConns``, ``proxyHeaderTimeout``).
    replicator : bool or frozenset of str
        ``replicatorAllow``: the peers whose threads the daemon replicates (empty: none,
        ``*``: any).
    """

    conn_limits: ConnLimits
    keep_alive: float
    pulling: PullSettings
    announce: list[str]
    api_limits: APILimits
    replicator: bool | frozenset[str]

    @classmethod
    def from_config(cls, config: dict[str, object]) -> NetSettings:
        """Parse the string settings (``"100"``, ``"400"``, ``"20s"``, ``"5s"``).

        Raises
        ------
        InvalidInput
            A watermark, a limit or ``netPullingLimit`` is not a positive whole number, the
            low watermark exceeds the high one, a per-client limit its total, a duration is
            not a Go duration with a unit (``"20s"``, ``"1m"``), a pulling duration is 0, or
            ``replicatorAllow`` names something that is not a peer id.
        InvalidAddress
            ``announceAddr`` is not a dialable multiaddr (``0.0.0.0`` or port 0).
        """
        config = {**{name: default for name, _, default, _ in SETTINGS}, **config}

        def get(name: str) -> str:
            return str(config.get(name, ""))

        limit = get("netPullingLimit").strip()
        if not limit.isdigit() or int(limit) < 1:
            raise InvalidInput(f"netPullingLimit: {limit!r} is not a whole number >= 1")
        durations = {}
        for name in ("netPullingStartAfter", "netPullingInitialInterval", "netPullingInterval"):
            durations[name] = parse_duration(get(name), name)
            if durations[name] <= 0:
                raise InvalidInput(f"{name}: must be greater than zero, got {get(name)!r}")
        announce = get("announceAddr")
        allow = get("replicatorAllow").strip()
        replicator: bool | frozenset[str]
        if allow == "*":
            replicator = True
        else:
            replicator = frozenset(p.strip() for p in allow.split(",") if p.strip())
            for peer_id in replicator:
                peer_id_bytes(peer_id)  # InvalidKey (an InvalidInput) when it is not one

        return cls(
            conn_limits=ConnLimits.parse(
                str(config["connLowWater"]),
                str(config["connHighWater"]),
                str(config["connGracePeriod"]),
            ),
            keep_alive=parse_duration(str(config["keepAliveInterval"]), "keepAliveInterval"),
            pulling=PullSettings(
                enabled=not config.get("disableNetPulling", False),
                limit=int(limit),
                start_after=durations["netPullingStartAfter"],
                initial_interval=durations["netPullingInitialInterval"],
                interval=durations["netPullingInterval"],
            ),
            announce=list(parse_announce([announce], None)) if announce else [],
            api_limits=APILimits.parse(config),
            replicator=replicator or False,
        )


@dataclass(frozen=True)
class DaemonConfig:
    """The daemon's whole configuration, parsed and checked.

    Attributes
    ----------
    settings : dict
        Every setting by its flag name, as given (strings; the switches as bools), in
        :data:`SETTINGS` then :data:`SWITCHES` order; logged at start.
    repo : Path
        The repo directory (``~`` expanded).
    host_addr : str
        The libp2p listen multiaddr.
    api_host, proxy_host : str
        The API's and the proxy's listen hosts (an IPv6 address in brackets).
    api_port, proxy_port : int
        Their ports (0: any free port).
    net : NetSettings
        The connection, pulling, announce, limit and replicator settings.
    log_file : Path or None
        ``logFile``, when set.
    debug, pubsub, relay : bool
        ``debug``, ``enableNetPubsub`` and ``relay``.
    members_only : bool
        ``membersOnly``: databases made through NewDB have members (only roles count)
        instead of being open; the caller's token identity owns them either way.
    """

    settings: dict[str, object]
    repo: Path
    host_addr: str
    api_host: str
    api_port: int
    proxy_host: str
    proxy_port: int
    net: NetSettings
    log_file: Path | None
    debug: bool
    pubsub: bool
    relay: bool
    members_only: bool = False

    @property
    def pulling_enabled(self) -> bool:
        """False with ``disableNetPulling``."""
        return self.net.pulling.enabled

    @classmethod
    def from_flags(
        cls, flags: Mapping[str, object], environ: Mapping[str, str] | None = None
    ) -> DaemonConfig:
        """The configuration from parsed flags (None: not given) and the environment.

        Parameters
        ----------
        flags : Mapping
            Flag name to value (``vars()`` of :func:`add_arguments`' parse); a missing or
            None value falls back to the environment.
        environ : Mapping, optional
            The ``THRDS_*`` variables (default ``os.environ``).

        Raises
        ------
        InvalidInput
            A value is malformed or out of range (the message names the setting), or the
            repo path names a file. ``InvalidAddress`` (an InvalidInput) for an address.
        """
        values = _settings(flags, os.environ if environ is None else environ)
        host_addr = listen_addr(str(values["hostAddr"]), "hostAddr")
        api_host, api_port = host_port(str(values["apiAddr"]), "apiAddr")
        proxy_host, proxy_port = host_port(str(values["apiProxyAddr"]), "apiProxyAddr")
        net = NetSettings.from_config(values)
        repo = Path(str(values["repo"]))
        if repo.exists() and not repo.is_dir():
            raise InvalidInput(f"repo {values['repo']!r} is a file, not a directory")
        log_file = str(values["logFile"])
        return cls(
            settings=values,
            repo=repo,
            host_addr=host_addr,
            api_host=api_host,
            api_port=api_port,
            proxy_host=proxy_host,
            proxy_port=proxy_port,
            net=net,
            log_file=Path(log_file).expanduser() if log_file else None,
            debug=bool(values["debug"]),
            pubsub=bool(values["enableNetPubsub"]),
            relay=bool(values["relay"]),
            members_only=bool(values["membersOnly"]),
        )

    @classmethod
    def from_argv(
        cls, argv: Sequence[str], environ: Mapping[str, str] | None = None
    ) -> DaemonConfig:
        """The configuration from command-line arguments (``threadkit daemon``'s) and the
        environment.

        Raises
        ------
        SystemExit
            With code 2, for an unknown flag (argparse's usage error).
        InvalidInput
            As :meth:`from_flags`.
        """
        parser = argparse.ArgumentParser(prog="threadkit daemon")
        add_arguments(parser)
        return cls.from_flags(vars(parser.parse_args(list(argv))), environ)

    def log_summary(self, logger: logging.Logger) -> None:
        """Log every setting and what the parsed ones mean."""
        for key, value in self.settings.items():
            logger.info("config %s: %s", key, value)
        conn = self.net.conn_limits
        logger.info(
            "connection manager: low water %d, high water %d, grace period %gs (trimmed every %gs)",
            conn.low_water,
            conn.high_water,
            conn.grace_period,
            conn.trim_interval,
        )
        limits = self.net.api_limits
        logger.info(
            "API budget: %d streams (%d per client), %d more workers for unary calls, "
            "streams idle for %gs ended; proxy: %d connections (%d per client), headers "
            "within %gs",
            limits.max_streams,
            limits.max_client_streams,
            limits.unary_workers,
            limits.stream_idle,
            limits.max_conns,
            limits.max_client_conns,
            limits.header_timeout,
        )
        replicator = self.net.replicator
        if replicator is True:
            logger.info("replicator: replicates threads for any peer (replicatorAllow '*')")
        elif replicator:
            logger.info("replicator: replicates threads for %s", ", ".join(sorted(replicator)))
        else:
            logger.info("replicator: replicates threads for no peer (replicatorAllow is empty)")


class Daemon:
    """A running daemon: the peer, the gRPC API over it and the web proxy in front.

    Parameters
    ----------
    config : DaemonConfig
        What to run.

    Attributes
    ----------
    peer : Peer or None
        The peer, while started.
    server : APIServer or None
        The gRPC server, while started.
    proxy : WebProxy or None
        The grpc-web/websocket proxy, while started.
    """

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.peer: Peer | None = None
        self.server: APIServer | None = None
        self.proxy: WebProxy | None = None

    @property
    def peer_id(self) -> str:
        """The peer's id (empty until started)."""
        return self.peer.id if self.peer is not None else ""

    @property
    def api_port(self) -> int:
        """The port the API listens on (0 until started)."""
        return self.server.port if self.server is not None else 0

    @property
    def proxy_port(self) -> int:
        """The port the proxy listens on (0 until started)."""
        return self.proxy.port if self.proxy is not None else 0

    def start(self) -> None:
        """Open the repo and the host, then serve the API and the proxy.

        Raises
        ------
        RepoInUse
            Another process holds the repo.
        NetworkError
            The host, the API or the proxy cannot listen (nothing is left running).
        """
        from threadkit.api.proxy import WebProxy
        from threadkit.api.server import APIServer
        from threadkit.peer import Peer

        config = self.config
        if self.peer is not None:
            raise InvalidInput("this daemon is already started")
        net = config.net
        try:
            self.peer = Peer(
                str(config.repo),
                listen=[config.host_addr],
                network=True,
                replicator=net.replicator,
                pubsub=config.pubsub,
                relay_service=config.relay,
                conn_limits=net.conn_limits,
                announce=net.announce,
                pulling=net.pulling,
            )
        except NetworkError as exc:
            raise NetworkError(f"cannot start the host: {exc}") from None
        try:
            self.server = APIServer(
                self.peer,
                f"{config.api_host}:{config.api_port}",
                limits=net.api_limits,
                members_only=config.members_only,
            )
            self.server.start()
            local = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(config.api_host, config.api_host)
            self.proxy = WebProxy(
                f"{local}:{self.server.port}",
                config.proxy_host.strip("[]"),
                config.proxy_port,
                keep_alive=net.keep_alive,
                limits=net.api_limits,
                forward_secret=self.server.proxy_secret,
            )
            self.proxy.start()
        except BaseException:
            self.stop(0)
            raise
        log.info("peer id: %s", self.peer.id)
        for addr in self.peer.addrs:
            log.info("host address: %s", addr)

    def stop(self, grace: float = 1.0) -> None:
        """Stop the proxy, the API (open streams cancelled after ``grace`` s) and the peer."""
        proxy, server, peer = self.proxy, self.server, self.peer
        self.proxy = self.server = self.peer = None
        try:
            if proxy is not None:
                proxy.stop(grace)
            if server is not None:
                server.stop(grace)
        finally:
            if peer is not None:
                peer.close()

    def __enter__(self) -> Daemon:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(
    flags: Mapping[str, object],
    environ: Mapping[str, str] | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Run the daemon until SIGTERM or SIGINT (or ``stop`` is set); the exit code.

    Bad configuration is one line on ``err`` and exit code 2, before anything is opened; a
    repo in use or an address that cannot be bound, exit code 1.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        config = DaemonConfig.from_flags(flags, environ)
    except ValueError as exc:  # InvalidInput and InvalidAddress are ValueErrors
        print(f"threadkit daemon: bad configuration: {exc}", file=err)
        return 2
    handlers: list[logging.Handler] = [logging.StreamHandler(err)]
    if config.log_file is not None:
        try:
            config.log_file.parent.mkdir(parents=True, exist_ok=True)
            handlers.append(logging.FileHandler(config.log_file))
        except OSError as exc:
            print(f"threadkit daemon: cannot write the log file: {exc}", file=err)
            return 2
    logging.basicConfig(
        level=logging.DEBUG if config.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
    )
    config.log_summary(log)
    if stop is None:
        stop = event = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: event.set())
        signal.signal(signal.SIGINT, lambda *_: event.set())
    daemon = Daemon(config)
    try:
        daemon.start()
    except RepoInUse as exc:
        print(f"threadkit daemon: repo {config.repo} is in use: {exc}", file=err)
        return 1
    except NetworkError as exc:
        print(f"threadkit daemon: {exc}", file=err)
        return 1
    try:
        print(f"Welcome to Threads! peer id {daemon.peer_id}", file=out, flush=True)
        print(f"API listening on {config.api_host}:{daemon.api_port}", file=out, flush=True)
        print(f"Proxy listening on {config.proxy_host}:{daemon.proxy_port}", file=out, flush=True)
        while not stop.wait(1.0):
            pass
        log.info("shutting down")
    finally:
        daemon.stop()
    log.info("stopped")
    return 0
