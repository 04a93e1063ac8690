"""The ``threadkit`` command: ``demo``, ``info``, ``bench`` (``daemon`` comes with the API)."""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
from pathlib import Path

__all__ = ["main"]


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
    print(
        "threadkit daemon is not available yet: the remote API layer is not built", file=sys.stderr
    )
    return 2


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
    sub.add_parser("daemon", help="serve ThreadDB's remote API (not yet built)").set_defaults(
        func=_cmd_daemon
    )
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
