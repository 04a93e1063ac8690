"""The ``threadkit`` command: ``demo``, ``share``, ``info``, ``bench``, ``daemon``, ``export``,
``import`` and ``compact`` (:mod:`threadkit.cli_compact`).

``export``/``import`` also count a missing database and a thread the repo already holds as
bad input (exit code 2).

Bad input (a missing or unreadable CSV, a malformed address, a repo path naming a
file) is refused with one line on stderr and exit code 2, before anything is
opened or written; a failure at run time (a port or repo in use) exits with 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import threadkit as tk
from threadkit import __version__
from threadkit.cli_compact import add_compact
from threadkit.datasets import read_csv
from threadkit.db.names import check_name
from threadkit.errors import AlreadyExists, InvalidArchive, InvalidInput, NotFound, ThreadkitError

__all__ = ["main"]


def _cmd_demo(args: argparse.Namespace) -> int:
    from threadkit.demo import run_demo

    return run_demo(out=sys.stdout)


def _cmd_share(args: argparse.Namespace) -> int:
    from threadkit.core.addr import listen_addr  # multiformats: not loaded for --help

    # everything is checked before the peer opens its repo or the network
    listen = listen_addr(args.listen, "--listen")
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

    print(f"threadkit {tk.__version__}")
    print(f"python {sys.version.split()[0]}")
    print(f"public names: {', '.join(tk.__all__)}")
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

    path = Path(repo).expanduser()
    if path.exists() and not path.is_dir():
        raise InvalidInput(f"repo {repo!r} is a file, not a directory")
    if must_exist and not path.is_dir():
        raise InvalidInput(f"no repo at {repo!r}")
    return tk.Peer(path, network=False)


def _cmd_export(args: argparse.Namespace) -> int:

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

    if not Path(args.car).is_file():
        raise InvalidArchive(f"no archive file at {args.car!r}")

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
    from threadkit.api.daemon import main as run_daemon

    return run_daemon(vars(args))


def main(argv: list[str] | None = None) -> int:
    """Run the ``threadkit`` command line; returns the exit code.

    A threadkit error is printed as one line (``threadkit <command>: <message>``), not a
    traceback: exit code 2 for bad input (``tk.errors.InvalidInput``), 1 for the rest.
    """
    from threadkit.api.daemon import add_arguments as add_daemon_arguments

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
    add_daemon_arguments(daemon)
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
    add_compact(sub)
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
