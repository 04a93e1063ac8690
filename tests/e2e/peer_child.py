"""A threadkit peer in its own process, driven by JSON lines on stdin (for end-to-end tests).

Each input line is ``{"cmd": ..., ...}``; each reply is one JSON line on stdout:
``{"ok": true, ...}`` or ``{"ok": false, "error": <class name>, "message": ...}``.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from typing import Any

import threadkit as tk
from threadkit.db.database import Database

peer: tk.Peer | None = None


def _db(msg: dict[str, Any]) -> Database:
    assert peer is not None
    return peer.get_db(msg["db"])


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def handle(msg: dict[str, Any]) -> dict[str, Any]:
    global peer
    cmd = msg["cmd"]
    if cmd == "open":
        peer = tk.Peer(
            msg.get("path"),
            memory=msg.get("path") is None,
            network=True,
            pull_interval=msg.get("pull_interval", 10.0),
            timeout=msg.get("timeout", 10.0),
        )
        return {"peer_id": peer.id, "addrs": peer.addrs}
    assert peer is not None
    if cmd == "new_db":
        db = peer.new_db(msg.get("name"))
        return {"id": str(db.id), "key": str(db.key), "addrs": db.info().addrs}
    if cmd == "join":
        db = peer.new_db_from_addr(msg["addr"], tk.ThreadKey.from_string(msg["key"]))
        return {"id": str(db.id), "name": db.name}
    if cmd == "info":
        info = _db(msg).info()
        return {"name": info.name, "addrs": info.addrs, "key": str(info.key)}
    if cmd == "new_collection":
        _db(msg).new_collection(
            msg["name"], schema=msg.get("schema"), indexes=msg.get("indexes", ())
        )
        return {}
    if cmd == "collections":
        return {"names": [c.name for c in _db(msg).list_collections()]}
    if cmd == "create":
        return {"ids": _db(msg)[msg["coll"]].create(msg["docs"])}
    if cmd == "create_each":
        coll = _db(msg)[msg["coll"]]
        return {"ids": [coll.create(doc)[0] for doc in msg["docs"]]}
    if cmd == "save":
        _db(msg)[msg["coll"]].save(msg["docs"])
        return {}
    if cmd == "delete":
        _db(msg)[msg["coll"]].delete(msg["ids"])
        return {}
    if cmd == "find":
        query = tk.Query.from_json(msg["query"]) if msg.get("query") else None
        return {"docs": _db(msg)[msg["coll"]].find(query)}
    if cmd == "snapshot":
        db = _db(msg)
        docs = {c.name: c.find() for c in db.list_collections()}
        lost = [
            {k: (v.hex() if isinstance(v, bytes) else v) for k, v in entry.items()}
            for entry in db.lost_writes()
        ]
        return {"docs": docs, "lost": lost}
    if cmd == "wait_count":
        db = _db(msg)

        def enough() -> bool:
            return msg["coll"] in db and db[msg["coll"]].count() >= msg["n"]

        return {"reached": _wait(enough, msg.get("timeout", 10.0))}
    if cmd == "pull":
        return {"records": peer.pull(_db(msg), timeout=msg.get("timeout"))}
    if cmd == "add_replicator":
        return {"peer_id": peer.add_replicator(_db(msg), msg["addr"])}
    if cmd == "stats":
        stats = peer.sync_stats
        return {
            "pushed": stats.pushed,
            "received": stats.received,
            "rejected": stats.rejected,
            "pulls": stats.pulls,
            "errors": stats.errors,
        }
    if cmd == "close":
        peer.close()
        return {}
    raise ValueError(f"unknown command {cmd!r}")


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        try:
            reply = {"ok": True, **handle(msg)}
        except Exception as exc:  # the parent test decides what an error means
            reply = {
                "ok": False,
                "error": type(exc).__name__,
                "message": str(exc),
                "trace": traceback.format_exc(limit=5),
            }
        sys.stdout.write(json.dumps(reply, default=str) + "\n")
        sys.stdout.flush()
        if msg.get("cmd") == "close" and reply["ok"]:
            return


if __name__ == "__main__":
    main()
