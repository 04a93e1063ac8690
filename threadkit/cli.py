"""The ``threadkit`` command: ``demo``, ``share``, ``info``, ``bench``, ``daemon``, ``export``
and ``import``.

``export``/``import`` also count a missing database and a thread the repo already holds as
bad input (exit code 2).

Bad input (a missing or unreadable CSV, a malformed address, a repo path naming a
file) is refused with one line on stderr and exit code 2, before anything is
opened or written; a failure at run time (a port or repo in use) exits with 1.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from threadkit.api.limits import APILimits
    from threadkit.net.connmgr import ConnLimits
    from threadkit.net.pull import PullSettings

__all__ = ["main"]

_DAEMON_SETTINGS: tuple[tuple[str, str, str, str], ...] = (
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


def _host_port(addr: str, what: str) -> tuple[str, int]:
    """``host`` and ``port`` of ``/ip4/H/tcp/P`` (also ``/ip6`` and ``/dns*`` hosts).

    Raises
    ------
    InvalidAddress
        For anything else, a malformed IP address or a port outside 0–65535.
    """
    import ipaddress

    from threadkit.errors import InvalidAddress

    parts = addr.strip().strip("/").split("/")
    if (
        len(parts) != 4
        or parts[0] not in {"ip4", "ip6", "dns4", "dns6", "dns"}
        or parts[2] != "tcp"
        or not parts[1]
    ):
        raise InvalidAddress(f"{what}: {addr!r} is not an /ip4/<host>/tcp/<port> address")
    if parts[0] in ("ip4", "ip6"):
        parse = ipaddress.IPv4Address if parts[0] == "ip4" else ipaddress.IPv6Address
        try:
            parse(parts[1])
        except ValueError:
            raise InvalidAddress(f"{what}: {parts[1]!r} is not an {parts[0]} address") from None
    if not parts[3].isdigit() or not 0 <= int(parts[3]) <= 65535:
        raise InvalidAddress(f"{what}: port {parts[3]!r} is not a number from 0 to 65535")
    host = f"[{parts[1]}]" if parts[0] == "ip6" else parts[1]
    return host, int(parts[3])


def _listen_addr(addr: str, what: str) -> str:
    """A libp2p listen address: ``/ip4/<ip>/tcp/<port>`` or ``/ip6/<ip>/tcp/<port>``."""
    from threadkit.errors import InvalidAddress

    if not addr.strip().startswith(("/ip4/", "/ip6/")):
        raise InvalidAddress(f"{what}: {addr!r} is not an /ip4/<ip>/tcp/<port> address")
    _host_port(addr, what)
    return addr.strip()


"""threadsd's defaults of its ``netPulling*`` flags."""


@dataclass(frozen=True)
class _NetSettings:
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
    def from_config(cls, config: dict[str, object]) -> _NetSettings:
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
        from threadkit.api.limits import APILimits
        from threadkit.core.identity import peer_id_bytes
        from threadkit.errors import InvalidInput
        from threadkit.net.addrs import parse_announce
        from threadkit.net.connmgr import ConnLimits, parse_duration
        from threadkit.net.pull import PullSettings

        config = {**{name: default for name, _, default, _ in _DAEMON_SETTINGS}, **config}

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


def _cmd_demo(args: argparse.Namespace) -> int:
    from threadkit.demo import run_demo

    return run_demo(out=sys.stdout)


def _cmd_share(args: argparse.Namespace) -> int:
    import json
    import signal
    import threading

    import threadkit as tk
    from threadkit.datasets import read_csv
    from threadkit.db.names import check_name
    from threadkit.errors import InvalidInput

    # everything is checked before the peer opens its repo or the network
    listen = _listen_addr(args.listen, "--listen")
    check_name(args.name, "database")
    check_name(args.collection, "collection")
    if args.seconds < 0:
        raise InvalidInput(f"--seconds must be 0 (run until stopped) or more, got {args.seconds}")
    frame = read_csv(args.csv)
    peer = tk.Peer(args.repo, memory=args.repo is None, listen=[listen], network=True)
    try:
        db = peer.new_db(args.name)
        db.from_pandas(args.collection, frame, progress=False)
        info = db.info()
        print(
            json.dumps(
                {
                    "name": info.name,
                    "addrs": info.addrs,
                    "key": str(info.key),
                    "collection": args.collection,
                    "count": len(frame),
                }
            ),
            flush=True,
        )
        print(_join_help(args, len(frame), info.addrs, str(info.key)), file=sys.stderr, flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait(args.seconds if args.seconds > 0 else None)
    finally:
        peer.close()
    return 0


def _join_help(args: argparse.Namespace, rows: int, addrs: list[str], key: str) -> str:
    """What ``share`` tells a person: how to join, and how to stop."""
    addr = addrs[0] if addrs else "<no address: the peer is not listening>"
    stopping = (
        f"It stops by itself after {args.seconds:g} s, or "
        if args.seconds
        else "It runs until you stop it: "
    )
    kept = (
        f"the database stays in {args.repo}"
        if args.repo
        else "the temporary repo is deleted on exit (--repo keeps it)"
    )
    return (
        f"\nsharing {rows} rows of {Path(args.csv).name} as collection {args.collection!r} "
        f"of database {args.name!r}.\n"
        "Join from Python (on a machine that can reach the address):\n\n"
        "    import threadkit as tk\n"
        f"    db = tk.Peer(memory=True).new_db_from_addr(\n        {addr!r},\n        {key!r},\n"
        "    )\n"
        f"    db[{args.collection!r}].df\n\n"
        "The key lets whoever holds it read and write: share it like a password.\n"
        f"{stopping}press Ctrl+C (or send SIGTERM) to stop; {kept}.\n"
    )


def _cmd_info(args: argparse.Namespace) -> int:
    import threadkit

    print(f"threadkit {threadkit.__version__}")
    print(f"python {sys.version.split()[0]}")
    print(f"public names: {', '.join(threadkit.__all__)}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    root = Path(__file__).resolve().parents[1]
    if not (root / "bench" / "run.py").is_file():
        print(
            "threadkit bench needs a source checkout (bench/ beside the package)", file=sys.stderr
        )
        return 2
    command = [sys.executable, "-m", "bench.run", *args.suites, "--rounds", str(args.rounds)]
    return subprocess.call(command, cwd=root)


def _open_repo(repo: str, must_exist: bool) -> Any:
    import threadkit as tk
    from threadkit.errors import InvalidInput

    path = Path(repo).expanduser()
    if path.exists() and not path.is_dir():
        raise InvalidInput(f"repo {repo!r} is a file, not a directory")
    if must_exist and not path.is_dir():
        raise InvalidInput(f"no repo at {repo!r}")
    return tk.Peer(path, network=False)


def _cmd_export(args: argparse.Namespace) -> int:
    import json

    from threadkit.errors import NotFound

    with _open_repo(args.repo, must_exist=True) as peer:
        try:
            db = peer.get_db(args.db)
        except NotFound as exc:
            print(f"threadkit export: {exc}", file=sys.stderr)
            return 2
        summary = db.export(args.out, keys=args.keys)
    print(
        json.dumps(
            {
                "thread": str(summary.thread_id),
                "file": args.out,
                "logs": summary.logs,
                "records": summary.records,
                "bytes": summary.size,
            }
        )
    )
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    import json

    from threadkit.errors import InvalidArchive

    if not Path(args.car).is_file():
        raise InvalidArchive(f"no archive file at {args.car!r}")
    from threadkit.errors import AlreadyExists

    with _open_repo(args.repo, must_exist=False) as peer:
        try:
            db = peer.import_db(args.car, key=args.key, name=args.name, thread_id=args.thread)
        except AlreadyExists as exc:
            print(f"threadkit import: {exc}", file=sys.stderr)
            return 2
        print(
            json.dumps({"thread": str(db.id), "name": db.name, "records": sum(db.heads().values())})
        )
    return 0


def _cmd_daemon(args: argparse.Namespace) -> int:
    import logging
    import os
    import signal
    import threading

    from threadkit.errors import InvalidInput, NetworkError, RepoInUse

    def setting(flag: object, env: str, default: str) -> str:
        if flag is not None:
            return str(flag)
        return os.environ.get(env, default)

    def flag_on(flag: bool | None, env: str) -> bool:
        if flag:
            return True
        return os.environ.get(env, "").strip().lower() in {"1", "true", "yes", "on"}

    config: dict[str, object] = {
        name: setting(getattr(args, name), env, default)
        for name, env, default, _ in _DAEMON_SETTINGS
    }
    config["repo"] = str(Path(str(config["repo"])).expanduser())
    config["disableNetPulling"] = flag_on(args.disableNetPulling, "THRDS_DISABLENETPULLING")
    config["enableNetPubsub"] = flag_on(args.enableNetPubsub, "THRDS_ENABLENETPUBSUB")
    config["relay"] = flag_on(args.relay, "THRDS_RELAY")
    config["debug"] = flag_on(args.debug, "THRDS_DEBUG")
    try:
        _listen_addr(str(config["hostAddr"]), "hostAddr")
        api_host, api_port = _host_port(str(config["apiAddr"]), "apiAddr")
        proxy_host, proxy_port = _host_port(str(config["apiProxyAddr"]), "apiProxyAddr")
        net = _NetSettings.from_config(config)
        if Path(str(config["repo"])).exists() and not Path(str(config["repo"])).is_dir():
            raise InvalidInput(f"repo {config['repo']!r} is a file, not a directory")
    except ValueError as exc:  # InvalidInput and InvalidAddress are ValueErrors
        print(f"threadkit daemon: bad configuration: {exc}", file=sys.stderr)
        return 2
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if config["logFile"]:
        log_path = Path(str(config["logFile"])).expanduser()
        try:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            handlers.append(logging.FileHandler(log_path))
        except OSError as exc:
            print(f"threadkit daemon: cannot write the log file: {exc}", file=sys.stderr)
            return 2
    logging.basicConfig(
        level=logging.DEBUG if config["debug"] else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
    )
    log = logging.getLogger("threadkit.daemon")
    for key, value in config.items():
        log.info("config %s: %s", key, value)
    log.info(
        "connection manager: low water %d, high water %d, grace period %gs (trimmed every %gs)",
        net.conn_limits.low_water,
        net.conn_limits.high_water,
        net.conn_limits.grace_period,
        net.conn_limits.trim_interval,
    )
    limits = net.api_limits
    log.info(
        "API budget: %d streams (%d per client), %d more workers for unary calls, "
        "streams idle for %gs ended; proxy: %d connections (%d per client), headers within %gs",
        limits.max_streams,
        limits.max_client_streams,
        limits.unary_workers,
        limits.stream_idle,
        limits.max_conns,
        limits.max_client_conns,
        limits.header_timeout,
    )
    if net.replicator is True:
        log.info("replicator: replicates threads for any peer (replicatorAllow '*')")
    elif net.replicator:
        log.info("replicator: replicates threads for %s", ", ".join(sorted(net.replicator)))
    else:
        log.info("replicator: replicates threads for no peer (replicatorAllow is empty)")

    import threadkit as tk
    from threadkit.api.proxy import WebProxy
    from threadkit.api.server import APIServer

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        peer = tk.Peer(
            str(config["repo"]),
            listen=[str(config["hostAddr"])],
            network=True,
            replicator=net.replicator,
            pubsub=bool(config["enableNetPubsub"]),
            relay_service=bool(config["relay"]),
            conn_limits=net.conn_limits,
            announce=net.announce,
            pulling=net.pulling,
        )
    except RepoInUse as exc:
        print(f"threadkit daemon: repo {config['repo']} is in use: {exc}", file=sys.stderr)
        return 1
    except NetworkError as exc:
        print(f"threadkit daemon: cannot start the host: {exc}", file=sys.stderr)
        return 1
    try:
        server = APIServer(peer, f"{api_host}:{api_port}", limits=net.api_limits)
        try:
            server.start()
        except NetworkError as exc:
            print(f"threadkit daemon: {exc}", file=sys.stderr)
            return 1
        local = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(api_host, api_host)
        proxy = WebProxy(
            f"{local}:{server.port}",
            proxy_host.strip("[]"),
            proxy_port,
            keep_alive=net.keep_alive,
            limits=net.api_limits,
            forward_secret=server.proxy_secret,
        )
        try:
            proxy.start()
        except NetworkError as exc:
            server.stop(0)
            print(f"threadkit daemon: {exc}", file=sys.stderr)
            return 1
        log.info("peer id: %s", peer.id)
        for addr in peer.addrs:
            log.info("host address: %s", addr)
        print(f"Welcome to Threads! peer id {peer.id}", flush=True)
        print(f"API listening on {api_host}:{server.port}", flush=True)
        print(f"Proxy listening on {proxy_host}:{proxy.port}", flush=True)
        while not stop.wait(1.0):
            pass
        log.info("shutting down")
        proxy.stop(1.0)
        server.stop(1.0)
    finally:
        peer.close()
    log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the ``threadkit`` command line; returns the exit code.

    A threadkit error is printed as one line (``threadkit <command>: <message>``), not a
    traceback: exit code 2 for bad input (``tk.errors.InvalidInput``), 1 for the rest.
    """
    from threadkit import __version__
    from threadkit.errors import InvalidInput, ThreadkitError

    defaults = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="threadkit", description="ThreadDB for Python notebooks")
    parser.add_argument("--version", action="version", version=f"threadkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "demo", help="two peers share, edit offline and converge (no notebook needed)"
    ).set_defaults(func=_cmd_demo)
    sub.add_parser("info", help="print version and public names").set_defaults(func=_cmd_info)
    share = sub.add_parser(
        "share",
        help="serve a CSV file as a database; prints its address and key",
        description="Serve a CSV file as a database until stopped. The first line on stdout "
        "is JSON (name, addrs, key, collection, count); stderr says how to join and stop.",
        formatter_class=defaults,
    )
    share.add_argument("csv", help="the CSV file: UTF-8, a header row, one document per row")
    share.add_argument("--name", default="shared", help="database name")
    share.add_argument("--collection", default="Rows", help="collection name")
    share.add_argument(
        "--repo", default=None, help="repo directory to keep the database in (default: temporary)"
    )
    share.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0", help="libp2p listen multiaddr")
    share.add_argument("--seconds", type=float, default=0, help="stop after this long (0: never)")
    share.set_defaults(func=_cmd_share)
    bench = sub.add_parser(
        "bench", help="run the benchmarks (source checkout)", formatter_class=defaults
    )
    bench.add_argument("suites", nargs="*", help="suites to run (default: all)")
    bench.add_argument("--rounds", type=int, default=7, help="rounds per figure")
    bench.set_defaults(func=_cmd_bench)
    daemon = sub.add_parser(
        "daemon",
        help="serve ThreadDB's remote API (gRPC)",
        description="Serve ThreadDB's remote API over a long-lived peer. Each setting is "
        "taken from its flag, else its environment variable, else its default.",
    )
    for flag, env, default, what in _DAEMON_SETTINGS:
        daemon.add_argument(
            f"--{flag}",
            dest=flag,
            default=None,
            help=f"{what} (${env}; default {default or 'none'})",
        )
    daemon.add_argument(
        "--enableNetPubsub",
        dest="enableNetPubsub",
        action="store_true",
        default=None,
        help="also use GossipSub ($THRDS_ENABLENETPUBSUB; default off)",
    )
    daemon.add_argument(
        "--relay",
        dest="relay",
        action="store_true",
        default=None,
        help="serve circuit relay v2 for peers behind NATs ($THRDS_RELAY; default off)",
    )
    daemon.add_argument(
        "--disableNetPulling",
        dest="disableNetPulling",
        action="store_true",
        default=None,
        help="no periodic pull from peers ($THRDS_DISABLENETPULLING)",
    )
    daemon.add_argument(
        "--debug",
        dest="debug",
        action="store_true",
        default=None,
        help="debug logging ($THRDS_DEBUG; default off)",
    )
    daemon.set_defaults(func=_cmd_daemon)
    export = sub.add_parser(
        "export",
        help="write a database to a CAR file (docs/lifecycle.md)",
        formatter_class=defaults,
    )
    export.add_argument("db", help="the database's thread id")
    export.add_argument("out", help="the CAR file to write")
    export.add_argument("--repo", default="~/.threadkit", help="repo directory")
    export.add_argument(
        "--keys", default="none", choices=["none", "service", "full"], help="thread key in the file"
    )
    export.set_defaults(func=_cmd_export)
    restore = sub.add_parser(
        "import", help="restore a database from a CAR file", formatter_class=defaults
    )
    restore.add_argument("car", help="the CAR file written by threadkit export")
    restore.add_argument("--repo", default="~/.threadkit", help="repo directory")
    restore.add_argument("--key", default=None, help="the full thread key, if not in the file")
    restore.add_argument("--name", default=None, help="local database name")
    restore.add_argument("--thread", default=None, help="the thread id the file must hold")
    restore.set_defaults(func=_cmd_import)
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ThreadkitError as exc:
        print(f"threadkit {args.command}: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, InvalidInput) else 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
