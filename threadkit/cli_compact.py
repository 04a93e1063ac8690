"""``threadkit compact``: compact a database of a repo at a snapshot and give the disk back.

Runs on a repo no other process holds (a running peer or daemon: stop it first; the repo
lock refuses otherwise, exit code 1): ``db.compact(before=...)`` at the snapshot named by
``--before`` or the newest one usable (held here, not found bad), then ``peer.reclaim()``
swaps the repo's LMDB file for a compacted copy (docs/lifecycle.md). Prints one JSON line:
the thread, the snapshot, records and events dropped, and ``data.mdb``'s size before and
after in bytes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from threadkit.errors import InvalidInput, NotFound

__all__ = ["add_compact"]


def add_compact(sub: Any) -> None:
    """Add the ``compact`` command to the ``threadkit`` subcommands."""
    parser = sub.add_parser(
        "compact",
        help="compact a database at a snapshot and shrink the repo's file (docs/lifecycle.md)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("db", help="the database's thread id or local name")
    parser.add_argument("--repo", default="~/.threadkit", help="repo directory")
    parser.add_argument(
        "--before", default=None, help="the snapshot's CID (default: the newest usable one)"
    )
    parser.add_argument(
        "--force", action="store_true", help="compact although a writer has not written since"
    )
    parser.add_argument(
        "--drop-blocks",
        action="store_true",
        help="drop the snapshot's blocks too (no joiner can then start from it here)",
    )
    parser.set_defaults(func=_cmd_compact)


def _cmd_compact(args: argparse.Namespace) -> int:
    import threadkit as tk

    path = Path(args.repo).expanduser()
    if not (path / "data.mdb").is_file():
        raise InvalidInput(f"no repo at {args.repo!r}")
    with tk.Peer(path, network=False) as peer:
        db = _find_db(peer, args.db)
        before = args.before if args.before is not None else _newest(db)
        done = db.compact(before, force=args.force, keep_blocks=not args.drop_blocks)
        sizes = peer.reclaim()
    line = {
        "thread": str(db.id),
        "snapshot": done.snapshot,
        "records": done.records,
        "events": done.events,
        "before": sizes.before,
        "after": sizes.after,
    }
    print(json.dumps(line))
    return 0


def _find_db(peer: Any, name: str) -> Any:
    """The database with thread id or local name ``name``."""
    try:
        return peer.get_db(name)
    except (NotFound, InvalidInput):
        named = [db for db in peer.list_dbs() if db.name == name]
        if len(named) == 1:
            return named[0]
        raise InvalidInput(
            f"no database {name!r} in the repo"
            if not named
            else f"{name!r} names several databases: give the thread id"
        ) from None


def _newest(db: Any) -> Any:
    """The newest snapshot this peer holds the blocks of and has not found bad."""
    usable = [s for s in db.snapshots() if s.held and s.status != "bad"]
    if not usable:
        raise InvalidInput(
            f"database {db.name!r} has no snapshot held here to compact at: take one "
            "(db.snapshot()) or name one with --before"
        )
    return usable[-1]
