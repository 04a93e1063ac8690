"""The ``threadkit`` command: ``demo``, ``info``, ``bench`` (``daemon`` comes with the API)."""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from threadkit.api.limits import APILimits
    from threadkit.net.connmgr import ConnLimits

__all__ = ["main"]


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
    api_limits: APILimits
    replicator: bool | frozenset[str]

    @classmethod
    def from_config(cls, config: dict[str, object]) -> _NetSettings:
        """Parse the string settings (``"100"``, ``"400"``, ``"20s"``, ``"5s"``).

        Raises
        ------
        InvalidInput
            A watermark or a limit is not a positive whole number, the low watermark exceeds
            the high one, a per-client limit its total, a duration is not a Go duration
            with a unit (``"20s"``, ``"1m"``), or ``replicatorAllow`` names something
            that is not a peer id.
        """
        from threadkit.api.limits import APILimits
        from threadkit.core.identity import peer_id_bytes
        from threadkit.net.connmgr import ConnLimits, parse_duration

        allow = str(config["replicatorAllow"]).strip()
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
    from threadkit.demo import load_csv

    docs = load_csv(Path(args.csv))
    peer = tk.Peer(args.repo, memory=args.repo is None, listen=[args.listen], network=True)
    try:
        db = peer.new_db(args.name)
        coll = db.new_collection(args.collection)
        coll.create(docs)
        info = db.info()
        print(
            json.dumps(
                {
                    "name": info.name,
                    "addrs": info.addrs,
                    "key": str(info.key),
                    "collection": args.collection,
                    "count": len(docs),
                }
            ),
            flush=True,
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait(args.seconds if args.seconds > 0 else None)
    finally:
        peer.close()
    return 0


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


def _cmd_daemon(args: argparse.Namespace) -> int:
    import logging
    import os
    import signal
    import threading

    from threadkit.errors import InvalidAddress, NetworkError, RepoInUse

    def setting(flag: object, env: str, default: str) -> str:
        if flag is not None:
            return str(flag)
        return os.environ.get(env, default)

    def flag_on(flag: bool | None, env: str) -> bool:
        if flag:
            return True
        return os.environ.get(env, "").strip().lower() in {"1", "true", "yes", "on"}

    def _multiaddr_host_port(addr: str) -> tuple[str, int]:
        """``host`` and ``port`` of ``/ip4/H/tcp/P`` (also ``/ip6`` and ``/dns4``)."""
        parts = addr.strip("/").split("/")
        if (
            len(parts) != 4
            or parts[0] not in {"ip4", "ip6", "dns4", "dns6", "dns"}
            or parts[2] != "tcp"
        ):
            raise InvalidAddress(f"{addr!r} is not an /ip4/<host>/tcp/<port> address")
        host = f"[{parts[1]}]" if parts[0] == "ip6" else parts[1]
        return host, int(parts[3])

    config = {
        "repo": setting(args.repo, "THRDS_REPO", str(Path.home() / ".threads")),
        "hostAddr": setting(args.hostAddr, "THRDS_HOSTADDR", "/ip4/0.0.0.0/tcp/4006"),
        "apiAddr": setting(args.apiAddr, "THRDS_APIADDR", "/ip4/127.0.0.1/tcp/6006"),
        "apiProxyAddr": setting(args.apiProxyAddr, "THRDS_APIPROXYADDR", "/ip4/127.0.0.1/tcp/6007"),
        "connLowWater": setting(args.connLowWater, "THRDS_CONNLOWWATER", "100"),
        "connHighWater": setting(args.connHighWater, "THRDS_CONNHIGHWATER", "400"),
        "connGracePeriod": setting(args.connGracePeriod, "THRDS_CONNGRACEPERIOD", "20s"),
        "keepAliveInterval": setting(args.keepAliveInterval, "THRDS_KEEPALIVEINTERVAL", "5s"),
        "apiMaxStreams": setting(args.apiMaxStreams, "THRDS_APIMAXSTREAMS", "64"),
        "apiMaxClientStreams": setting(args.apiMaxClientStreams, "THRDS_APIMAXCLIENTSTREAMS", "32"),
        "apiUnaryWorkers": setting(args.apiUnaryWorkers, "THRDS_APIUNARYWORKERS", "16"),
        "apiStreamIdleTimeout": setting(
            args.apiStreamIdleTimeout, "THRDS_APISTREAMIDLETIMEOUT", "60s"
        ),
        "proxyMaxConns": setting(args.proxyMaxConns, "THRDS_PROXYMAXCONNS", "256"),
        "proxyMaxClientConns": setting(args.proxyMaxClientConns, "THRDS_PROXYMAXCLIENTCONNS", "64"),
        "proxyHeaderTimeout": setting(args.proxyHeaderTimeout, "THRDS_PROXYHEADERTIMEOUT", "10s"),
        "replicatorAllow": setting(args.replicatorAllow, "THRDS_REPLICATORALLOW", ""),
        "enableNetPubsub": flag_on(args.enableNetPubsub, "THRDS_ENABLENETPUBSUB"),
        "debug": flag_on(args.debug, "THRDS_DEBUG"),
    }
    logging.basicConfig(
        level=logging.DEBUG if config["debug"] else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    log = logging.getLogger("threadkit.daemon")
    try:
        api_host, api_port = _multiaddr_host_port(str(config["apiAddr"]))
        proxy_host, proxy_port = _multiaddr_host_port(str(config["apiProxyAddr"]))
        net = _NetSettings.from_config(config)
    except ValueError as exc:  # InvalidInput and InvalidAddress are ValueErrors
        print(f"threadkit daemon: bad configuration: {exc}", file=sys.stderr)
        return 2
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
            conn_limits=net.conn_limits,
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
    """Run the ``threadkit`` command line; returns the exit code."""
    parser = argparse.ArgumentParser(prog="threadkit", description="ThreadDB for Python notebooks")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run the demonstration (no notebook needed)").set_defaults(
        func=_cmd_demo
    )
    sub.add_parser("info", help="print version and public names").set_defaults(func=_cmd_info)
    share = sub.add_parser(
        "share", help="serve a CSV file as a database; prints its address and key as JSON"
    )
    share.add_argument("csv", help="the CSV file (one document per row)")
    share.add_argument("--name", default="shared", help="database name")
    share.add_argument("--collection", default="Rows", help="collection name")
    share.add_argument("--repo", default=None, help="repo directory (default: a temporary one)")
    share.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0", help="listen multiaddr")
    share.add_argument("--seconds", type=float, default=0, help="stop after this long (0: never)")
    share.set_defaults(func=_cmd_share)
    bench = sub.add_parser("bench", help="run the benchmarks (source checkout)")
    bench.add_argument("suites", nargs="*")
    bench.add_argument("--rounds", type=int, default=7)
    bench.set_defaults(func=_cmd_bench)
    daemon = sub.add_parser("daemon", help="serve ThreadDB's remote API (gRPC)")
    for flag, help_text in (
        ("repo", "repo directory ($THRDS_REPO, default ~/.threads)"),
        ("hostAddr", "libp2p listen multiaddr ($THRDS_HOSTADDR)"),
        ("apiAddr", "gRPC API multiaddr ($THRDS_APIADDR)"),
        ("apiProxyAddr", "grpc-web/websocket multiaddr ($THRDS_APIPROXYADDR)"),
        ("connLowWater", "connection manager low water ($THRDS_CONNLOWWATER)"),
        ("connHighWater", "connection manager high water ($THRDS_CONNHIGHWATER)"),
        ("connGracePeriod", "connection grace period ($THRDS_CONNGRACEPERIOD)"),
        ("keepAliveInterval", "websocket ping interval of the proxy ($THRDS_KEEPALIVEINTERVAL)"),
        ("apiMaxStreams", "open API streams at once ($THRDS_APIMAXSTREAMS, 64)"),
        ("apiMaxClientStreams", "open API streams per client ($THRDS_APIMAXCLIENTSTREAMS, 32)"),
        ("apiUnaryWorkers", "workers kept for unary calls ($THRDS_APIUNARYWORKERS, 16)"),
        (
            "apiStreamIdleTimeout",
            "end streams whose client sends nothing this long ($THRDS_APISTREAMIDLETIMEOUT, 60s)",
        ),
        ("proxyMaxConns", "proxy connections at once ($THRDS_PROXYMAXCONNS, 256)"),
        ("proxyMaxClientConns", "proxy connections per client ($THRDS_PROXYMAXCLIENTCONNS, 64)"),
        (
            "proxyHeaderTimeout",
            "time to send a request's headers ($THRDS_PROXYHEADERTIMEOUT, 10s)",
        ),
        (
            "replicatorAllow",
            "peer ids (comma-separated) whose threads are replicated, '*' any "
            "($THRDS_REPLICATORALLOW, none)",
        ),
    ):
        daemon.add_argument(f"--{flag}", dest=flag, default=None, help=help_text)
    daemon.add_argument(
        "--enableNetPubsub",
        dest="enableNetPubsub",
        action="store_true",
        default=None,
        help="also use GossipSub ($THRDS_ENABLENETPUBSUB)",
    )
    daemon.add_argument(
        "--debug",
        dest="debug",
        action="store_true",
        default=None,
        help="debug logging ($THRDS_DEBUG)",
    )
    daemon.set_defaults(func=_cmd_daemon)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
