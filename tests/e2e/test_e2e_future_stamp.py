"""A member pushes one validly signed record stamped near the end of time, over libp2p.

The member is a raw node in this process holding the thread key: it announces its log
(``push_log``) and pushes one record whose event stamp is just below the clock's maximum.
The receiving peer process used to merge that stamp into its clock, after which every
write it made overflowed (``InvalidTimestamp``). Now the record is kept and applied, the
clock is not dragged along, and the peer goes on writing and replicating.
"""

from __future__ import annotations

import os
from typing import Any

import cbor2
from e2e_helpers import Cluster, new_shared_db

import threadkit as tk
from threadkit.core.clock import MAX_LOGICAL, MAX_WALL, Timestamp
from threadkit.core.identity import Identity, peer_id_bytes
from threadkit.core.records import create_record
from threadkit.core.writerproof import delegate
from threadkit.db.events import Action, RecordEvent, encode_body
from threadkit.net import protocol as p
from threadkit.net.framing import FrameReader, write_frame
from threadkit.net.node import Node


async def _ask(node: Node, peer_id: str, message: dict[str, Any]) -> dict[str, Any]:
    import trio

    with trio.fail_after(10):
        stream = await node.open_stream(peer_id, p.PROTOCOL_ID)
        try:
            await write_frame(stream, cbor2.dumps({"v": p.VERSION, **message}))
            reply = await FrameReader(stream).read_frame(p.MAX_FRAME)
        finally:
            await stream.close()
    assert reply is not None
    return p.decode_reply(reply)


def test_a_record_from_the_end_of_time_does_not_stop_writes() -> None:
    with Cluster() as cluster:
        a, b = cluster.start(2)
        db = new_shared_db(a, "future")
        b.call("join", addr=db["addrs"][0], key=db["key"])
        key = tk.ThreadKey.from_string(db["key"])
        tid = tk.ThreadID.from_string(db["id"]).to_bytes()
        node = Node(os.urandom(32)).start()
        try:
            node.call(node.connect, b.addrs[0], timeout=10)
            auth = p.auth_token(key.service, tid, peer_id_bytes(b.peer_id))
            member = Identity.generate()
            log_id = peer_id_bytes(member.public.peer_id)
            entry = p.LogEntry(log_id, member.public.to_bytes(), (), 0).to_node()
            announce = {"t": "push_log", "thread": tid, "auth": auth, "log": entry}
            node.call(_ask, node, b.peer_id, announce, timeout=15)
            far = Timestamp(MAX_WALL, MAX_LOGICAL - 1)  # one tick from overflow
            event = RecordEvent(far, Action.CREATE, "Items", "from-the-future", {"name": "future"})
            thread = tk.ThreadID.from_string(db["id"])
            proof = delegate(member, thread_id=thread, log=member.public).to_node()
            record = create_record(encode_body([event], proof), log_key=member, key=key)
            pushed = {
                "t": "push_records",
                "thread": tid,
                "auth": auth,
                "log": log_id,
                "records": [p.blocks_to_node(record.blocks)],
            }
            assert node.call(_ask, node, b.peer_id, pushed, timeout=15)["head"] == 1
        finally:
            node.stop()

        # the record is applied, as it would be on every peer ...
        assert b.call("wait_count", db=db["id"], coll="Items", n=1, timeout=10)["reached"]
        # ... and b still writes, and its writes still reach a (and a's reach b)
        b.call("create", db=db["id"], coll="Items", docs=[{"name": "from b"}])
        a.call("create", db=db["id"], coll="Items", docs=[{"name": "from a"}])

        names = ["from a", "from b"]
        for proc in (a, b):
            reply = proc.call("wait_names", db=db["id"], coll="Items", names=names, timeout=15)
            assert reply["reached"], proc.call("stats")
