"""A threadkit peer in its own process, driven by JSON lines on stdin (for end-to-end tests).

Each input line is ``{"cmd": ..., ...}``; each reply is one JSON line on stdout:
``{"ok": true, ...}`` or ``{"ok": false, "error": <class name>, "message": ...}``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
from typing import Any

from forger import forge, read_disk
from lifecycle_cmds import LIFECYCLE
from waits import poll_until, wait_for_docs, wait_for_heads

import threadkit as tk
from threadkit.db.database import Database

peer: tk.Peer | None = None
background: dict[str, Any] = {"done": 0, "error": None, "running": False}
background_changed = threading.Condition()


def _db(msg: dict[str, Any]) -> Database:
    assert peer is not None
    return peer.get_db(msg["db"])


def _speak_only_the_first_protocol(peer: tk.Peer) -> None:
    """Behave as a peer from before ``/threadkit/1.1.0``: one request per stream, both ways.

    The peer stops serving ``/threadkit/1.1.0`` (its ``/threadkit/1.0.0`` handler answers
    one request per stream) and offers only ``/threadkit/1.0.0`` when it calls others.
    """
    from threadkit.net import protocol as p

    node = peer._node

    async def drop_handler() -> None:
        from libp2p.custom_types import TProtocol

        node.host.remove_stream_handler(TProtocol(p.PROTOCOL_ID_PERSISTENT))

    node.call(drop_handler, timeout=5)
    peer._service.streams.protocols = (p.PROTOCOL_ID,)


def _stall_snapshot_check(peer: tk.Peer) -> None:
    """Hold this process's background snapshot checks forever, as if the records before
    the snapshot were still on the way when the process is killed (the check a restart
    resumes, net/backfill.py, runs in the next process, untouched)."""
    import trio

    async def never(db: Database) -> bool:
        await trio.sleep_forever()
        return False

    peer._service._puller.backfill.verify_quietly = never  # type: ignore[union-attr,method-assign]


async def _learned_addrs(node: Any) -> dict[str, list[str]]:
    store = node.host.get_peerstore()
    return {
        str(pid): [str(a) for a in store.addrs(pid)]
        for pid in node.host.get_connected_peers()
        if store.has_peer(pid) and store.peer_info(pid).addrs
    }


def handle(msg: dict[str, Any]) -> dict[str, Any]:
    global peer
    cmd = msg["cmd"]
    if cmd == "open":
        network = msg.get("network", True)
        peer = tk.Peer(
            msg.get("path"),
            memory=msg.get("path") is None,
            network=network,
            listen=msg.get("listen"),
            pull_interval=msg.get("pull_interval", 10.0),
            timeout=msg.get("timeout", 10.0),
            replicator=msg.get("replicator", False),
            **msg.get("peer_args", {}),
        )
        if msg.get("older_protocol"):
            _speak_only_the_first_protocol(peer)
        return {"peer_id": peer.id, "addrs": peer.addrs if network is not False else []}
    assert peer is not None
    if cmd == "new_db":
        db = peer.new_db(msg.get("name"), open=msg.get("open", True))
        return {"id": str(db.id), "key": str(db.key), "addrs": db.info().addrs}
    if cmd == "identity":
        return {"identity": str(peer.identity.public)}
    if cmd == "grant":
        _db(msg).grant(msg["identity"], msg["role"])
        return {}
    if cmd == "revoke":
        _db(msg).revoke(msg["identity"])
        return {}
    if cmd == "read_disk":
        # every record of the thread as stored here, read with the thread key this peer holds
        return {"records": read_disk(_db(msg))}
    if cmd == "access":
        db = _db(msg)
        rejected = db.rejected().drop(columns=["when"]).to_dict("records")
        members = db.members().drop(columns=["when"]).to_dict("records")
        return {"rejected": rejected, "members": members}
    if cmd == "forge":
        forge(_db(msg), msg["what"], msg)
        return {}
    if cmd == "join":
        if msg.get("stall_check"):
            _stall_snapshot_check(peer)
        db = peer.new_db_from_addr(
            msg["addr"],
            tk.ThreadKey.from_string(msg["key"]),
            timeout=msg.get("timeout"),
            trust=msg.get("trust"),
        )
        return {"id": str(db.id), "name": db.name}
    if cmd == "join_lan":
        db = peer.join(msg["db"], msg["key"], timeout=msg.get("timeout"))
        return {"id": str(db.id), "name": db.name}
    if cmd == "status":
        return {"status": peer.status()}
    if cmd == "learned_addrs":
        # what py-libp2p's peerstore holds of each connected peer (Identify, DCUtR)
        node = peer._node
        return {"learned": node.call(_learned_addrs, node, timeout=10)}
    if cmd == "info":
        info = _db(msg).info()
        return {"name": info.name, "addrs": info.addrs, "key": str(info.key)}
    if cmd == "new_collection":
        _db(msg).new_collection(
            msg["name"],
            schema=msg.get("schema"),
            indexes=msg.get("indexes", ()),
            write_validator=msg.get("write_validator"),
        )
        return {}
    if cmd == "collections":
        return {"names": [c.name for c in _db(msg).list_collections()]}
    if cmd == "create":
        return {"ids": _db(msg)[msg["coll"]].create(msg["docs"])}
    if cmd == "create_each":
        coll = _db(msg)[msg["coll"]]
        pace = msg.get("pace", 0.0)  # seconds between commits (bench/bench_w4_rhythm.py)
        ids = []
        for doc in msg["docs"]:
            ids.append(coll.create(doc)[0])
            if pace:
                time.sleep(pace)
        return {"ids": ids}
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

        timeout = msg.get("timeout", 10.0)
        return {"reached": wait_for_docs(db, enough, timeout, collection=msg["coll"])}
    if cmd == "wait_names":
        # until every name is in the collection, woken by each change in the database
        db, names = _db(msg), set(msg["names"])

        def present() -> bool:
            coll = msg["coll"]
            return coll in db and names <= {d.get("name") for d in db[coll].find()}

        timeout = msg.get("timeout", 10.0)
        return {"reached": wait_for_docs(db, present, timeout, collection=msg["coll"])}
    if cmd == "wait_idle":
        # until the connection to a (killed) peer is gone and no received batch is being
        # applied: nothing announces either, so this polls (tests/e2e/waits.py)
        assert peer is not None
        gone = msg["peer"]

        def idle() -> bool:
            assert peer is not None
            return gone not in peer.peers() and peer.sync_stats.receiving == 0

        return {"idle": poll_until(idle, msg.get("timeout", 10.0), interval=0.02)}
    if cmd == "heads":
        thread_id = tk.ThreadID.from_string(msg["db"])
        return {"heads": {info.id: info.counter for info in peer.repo.list_logs(thread_id)}}
    if cmd == "wait_heads":
        # until this peer holds at least these log counters, woken by each stored record
        reached = wait_for_heads(peer, msg["db"], msg["heads"], msg.get("timeout", 10.0))
        return {"reached": reached}
    if cmd == "sync":
        summary = _db(msg).sync(timeout=msg.get("timeout"))
        return {
            "peers": {k: {"pulled": v.pulled, "pushed": v.pushed} for k, v in summary.peers.items()}
        }
    if cmd == "pull":
        return {"records": peer.pull(_db(msg), timeout=msg.get("timeout"))}
    if cmd == "add_replicator":
        return {"peer_id": peer.add_replicator(_db(msg), msg["addr"])}
    if cmd == "stats":
        stats = peer.sync_stats
        pool = peer._service.streams if peer.online else None
        return {
            "streams_opened": pool.stats.opened if pool else 0,
            "streams_reused": pool.stats.reused if pool else 0,
            "pushed": stats.pushed,
            "received": stats.received,
            "rejected": stats.rejected,
            "pulls": stats.pulls,
            "errors": stats.errors,
        }
    if cmd == "collection_info":
        out = {}
        for coll in _db(msg).list_collections():
            config = coll.config
            out[coll.name] = {
                "schema": config.schema,
                "indexes": [{"path": i.path, "unique": i.unique} for i in config.indexes],
                "write_validator": config.write_validator,
            }
        return {"collections": out}
    if cmd == "try_create":
        # a create that may fail (e.g. a unique race): the error is data, not a failure
        try:
            return {"ids": _db(msg)[msg["coll"]].create(*msg["docs"]), "error": None}
        except tk.errors.ThreadkitError as exc:
            return {"ids": [], "error": type(exc).__name__}
    if cmd == "save_each":
        coll = _db(msg)[msg["coll"]]
        for doc in msg["docs"]:
            coll.save(doc)
        return {}
    if cmd == "logs":
        # works on a replicator too (a thread without a database)
        thread_id = tk.ThreadID.from_string(msg["db"])
        return {
            "logs": [
                {
                    "id": info.id,
                    "pub": info.public.to_bytes().hex(),
                    "counter": info.counter,
                    "addrs": list(info.addrs),
                }
                for info in peer.repo.list_logs(thread_id)
            ]
        }
    if cmd == "threads":
        return {"threads": [str(info.id) for info in peer.repo.list_threads()]}
    if cmd == "dbs":
        return {"dbs": [str(db.id) for db in peer.list_dbs()]}
    if cmd == "export":
        summary = _db(msg).export(msg["path"], keys=msg.get("keys", "none"))
        return {"records": summary.records, "logs": summary.logs}
    if cmd == "import_db":
        db = peer.import_db(msg["path"], key=msg.get("key"))
        return {"id": str(db.id), "name": db.name}
    if cmd == "history":
        return {
            "history": _db(msg).history(full=True).to_json(orient="records", default_handler=str)
        }
    if cmd == "migrate":
        _db(msg).migrate(msg["coll"], msg["transform"], schema=msg.get("schema"))
        return {}
    if cmd == "purge":
        _db(msg)[msg["coll"]].purge(msg["id"])
        return {}
    if cmd == "stored_text":
        # whether any entry of the document store's tables for the database holds the text
        db, needle = _db(msg), msg["text"].encode()
        found = False
        with db._repo.transaction() as txn:
            for name in ("docs", "events", "index", "lost", "colls"):
                cursor = txn.cursor(getattr(db._tables, name))
                if cursor.set_range(db.prefix):
                    for key, value in cursor:
                        if not bytes(key).startswith(db.prefix):
                            break
                        found = found or needle in bytes(key) + bytes(value)
        return {"found": found}
    if cmd == "reclaim":
        done = peer.reclaim()
        return {"before": done.before, "after": done.after, "addrs": peer.addrs}
    if cmd in LIFECYCLE:
        return LIFECYCLE[cmd](_db(msg), msg)
    if cmd == "repo_path":
        return {"path": str(peer.repo.path)}
    if cmd == "create_bg":
        # create n documents, one transaction each, in a background thread (reply at once)
        coll = _db(msg)[msg["coll"]]
        pad = "p" * msg.get("pad", 0)
        start, n, prefix = msg.get("start", 0), msg["n"], msg.get("prefix", "bg")

        def run() -> None:
            try:
                for seq in range(start, start + n):
                    coll.create({"name": f"{prefix}-{seq}", "seq": seq, "pad": pad})
                    with background_changed:
                        background["done"] += 1
                        background_changed.notify_all()
            except Exception as exc:  # reported through bg_status
                background["error"] = f"{type(exc).__name__}: {exc}"
            finally:
                with background_changed:
                    background["running"] = False
                    background_changed.notify_all()

        background.update(done=0, error=None, running=True)
        threading.Thread(target=run, daemon=True).start()
        return {}
    if cmd == "bg_status":
        return dict(background)
    if cmd == "wait_bg":

        def finished() -> bool:
            return not background["running"] or background["done"] >= msg.get("n", 1 << 60)

        with background_changed:
            background_changed.wait_for(finished, msg.get("timeout", 30.0))
            return dict(background)
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
