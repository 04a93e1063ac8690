"""Run the benchmarks: ``python -m bench.run [name ...] [--rounds N]``.

Prints one JSON line per figure, each beside a baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from bench.harness import emit

SUITES = {
    "records": "bench.bench_records",
    "db": "bench.bench_db",
    "net": "bench.bench_net",
    "frames": "bench.bench_frames",
    "relay": "bench.bench_relay",
    "archive": "bench.bench_archive",
    "lifecycle": "bench.bench_lifecycle",
    "access": "bench.bench_access",
    "startup": "bench.bench_startup",
    "scale": "bench.bench_scale",
    "arrow": "bench.bench_arrow",
    "w2layout": "bench.bench_w2layout",
}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument(
        "suites", nargs="*", help=f"suites to run, of {sorted(SUITES)} (default: all)"
    )
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per figure")
    args = parser.parse_args(argv)
    unknown = [name for name in args.suites if name not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {unknown}; choose from {sorted(SUITES)}")
    for name in args.suites or list(SUITES):
        module = importlib.import_module(SUITES[name])
        for fig in module.run(args.rounds):
            emit(fig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
