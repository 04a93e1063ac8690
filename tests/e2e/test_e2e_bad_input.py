"""Bad input on ``/threadkit/1.0.0`` from a raw client, while two honest peers keep syncing.

The raw client is a threadkit ``Node`` in this (the test) process that opens streams to a
peer process and writes frames by hand; after each bad request the receiver must still
sync with its honest peer (a new write on A reaches B).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cbor2
import pytest
from e2e_helpers import Cluster, assert_converged, new_shared_db, seqs, snapshot
from multiformats import varint
from procs import PeerProcess, PeerProcessError

import threadkit as tk
from threadkit.core import dagcbor
from threadkit.core.addr import addr_to_bytes
from threadkit.core.identity import Identity, peer_id_bytes
from threadkit.core.records import create_record
from threadkit.errors import ConnectionLost, ProtocolError
from threadkit.net import protocol as p
from threadkit.net.framing import FrameReader
from threadkit.net.node import Node

CLOSED = "closed"  # the peer ended the stream without a reply


@dataclass
class Env:
    cluster: Cluster
    a: PeerProcess
    b: PeerProcess
    node: Node
    dbid: str
    tid: bytes
    key: tk.ThreadKey
    a_log: str
    writes: int = 0

    def auth(self, proc: PeerProcess, key: tk.ThreadKey | None = None) -> bytes:
        """A valid credential for a call to ``proc`` (or one made with another key)."""
        service = (key or self.key).service
        return p.auth_token(service, self.tid, peer_id_bytes(proc.peer_id))

    def send(
        self, proc: PeerProcess, payload: bytes, *, raw: bool = False, eof: bool = False
    ) -> Any:
        """Open a stream to ``proc``, write one frame (or raw bytes), return the reply.

        ``eof`` closes the writing side after the bytes. The reply is the decoded CBOR
        map, or CLOSED when the peer ended the stream without one. Fails if the peer
        does not answer within 5 s.
        """
        data = payload if raw else varint.encode(len(payload)) + payload
        result = self.node.call(_exchange, self.node, proc.peer_id, data, eof, timeout=10)
        return CLOSED if result is None else cbor2.loads(result)

    def request(self, proc: PeerProcess, **message: Any) -> Any:
        return self.send(proc, cbor2.dumps({"v": 1, **message}))

    def b_state(self) -> tuple[dict[str, Any], dict[str, int]]:
        logs = {log["id"]: log["counter"] for log in self.b.call("logs", db=self.dbid)["logs"]}
        return snapshot(self.b, self.dbid), logs

    def still_syncs(self) -> None:
        """A new write on A reaches B (and one on B reaches A) by push, within seconds."""
        self.writes += 1
        for writer, reader in ((self.a, self.b), (self.b, self.a)):
            name = f"alive-{self.writes}-{writer.peer_id[-6:]}"
            writer.call("create", db=self.dbid, coll="Items", docs=[{"name": name}])
            arrived = reader.call(
                "wait_names", db=self.dbid, coll="Items", names=[name], timeout=10
            )["reached"]
            assert arrived, (name, reader.call("stats"))


async def _exchange(node: Node, peer_id: str, data: bytes, eof: bool) -> bytes | None:
    import trio

    with trio.fail_after(5):
        stream = await node.open_stream(peer_id, p.PROTOCOL_ID)
        try:
            await stream.write(data)
            if eof:
                await stream.close()  # half-close: the peer reads the end of the stream
            try:
                return await FrameReader(stream).read_frame(p.MAX_FRAME)
            except (ConnectionLost, ProtocolError):
                return None
        finally:
            with contextlib.suppress(Exception):
                await stream.close()


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with Cluster() as cluster:
        a, b = cluster.start(2)
        db = new_shared_db(a, "bad-input")
        a.call("create", db=db["id"], coll="Items", docs=[{"name": "first"}])
        (a_log,) = [log["id"] for log in a.call("logs", db=db["id"])["logs"]]  # A's own
        b.call("join", addr=db["addrs"][0], key=db["key"])
        assert b.call("wait_count", db=db["id"], coll="Items", n=1, timeout=10)["reached"]
        node = Node(os.urandom(32)).start()
        try:
            node.call(node.connect, a.addrs[0], timeout=10)
            node.call(node.connect, b.addrs[0], timeout=10)
            tid = tk.ThreadID.from_string(db["id"]).to_bytes()
            yield Env(
                cluster, a, b, node, db["id"], tid, tk.ThreadKey.from_string(db["key"]), a_log
            )
        finally:
            node.stop()


def _blocks(record: Any) -> list[bytes]:
    return list(record.blocks)


def _body() -> bytes:
    return dagcbor.encode([{"collection": "Items", "forged": True}])


def _assert_refused(reply: Any, code: str) -> None:
    assert reply != CLOSED, f"expected error {code!r}, the stream was closed without a reply"
    assert reply.get("ok") is False, reply
    assert reply.get("error") == code, reply


def test_forged_record_signed_by_another_key_is_refused_and_not_stored(env: Env) -> None:
    before = env.b_state()
    rejected = env.b.call("stats")["rejected"]
    forged = create_record(_body(), log_key=Identity.generate(), key=env.key)
    reply = env.request(
        env.b,
        t="push_records",
        thread=env.tid,
        auth=env.auth(env.b),
        log=peer_id_bytes(env.a_log),
        records=[_blocks(forged)],
    )
    _assert_refused(reply, "invalid_record")
    assert env.b_state() == before
    assert env.b.call("stats")["rejected"] == rejected + 1
    env.still_syncs()


def test_record_under_the_wrong_service_key_is_refused(env: Env) -> None:
    before = env.b_state()
    other = tk.ThreadKey.new()
    record = create_record(_body(), log_key=Identity.generate(), key=other)
    reply = env.request(
        env.b,
        t="push_records",
        thread=env.tid,
        auth=env.auth(env.b),
        log=peer_id_bytes(env.a_log),
        records=[_blocks(record)],
    )
    _assert_refused(reply, "invalid_record")
    assert env.b_state() == before
    env.still_syncs()


def test_genuine_records_replayed_reversed_and_duplicated_change_nothing(env: Env) -> None:
    # fetch A's real records with a valid credential, then push them back to B shuffled
    reply = env.request(
        env.a,
        t="get_records",
        thread=env.tid,
        auth=env.auth(env.a),
        logs=[{"id": peer_id_bytes(env.a_log), "after": 0, "limit": 1000}],
    )
    assert reply["ok"], reply
    records = reply["logs"][0]["records"]
    assert len(records) >= 2
    env.still_syncs()  # B has a log with records of its own too
    before = env.b_state()
    shuffled = list(reversed(records)) + records[:1] + records[:1]
    reply = env.request(
        env.b,
        t="push_records",
        thread=env.tid,
        auth=env.auth(env.b),
        log=peer_id_bytes(env.a_log),
        records=shuffled,
    )
    assert reply["ok"] is True, reply
    assert reply["head"] == before[1][env.a_log]
    assert env.b_state() == before
    # a genuine record of A's log presented as another log's: its signature does not verify
    b_log = next(log for log in before[1] if log != env.a_log and before[1][log] > 0)
    reply = env.request(
        env.b,
        t="push_records",
        thread=env.tid,
        auth=env.auth(env.b),
        log=peer_id_bytes(b_log),
        records=records[:1],
    )
    _assert_refused(reply, "invalid_record")
    assert env.b_state() == before
    env.still_syncs()


@pytest.mark.parametrize(
    "auth",
    [b"", os.urandom(32), "for another peer", "with another key"],
    ids=["empty", "random", "for-another-peer", "another-key"],
)
def test_wrong_auth_is_refused(env: Env, auth: Any) -> None:
    if auth == "for another peer":
        auth = env.auth(env.a)  # valid for A, useless at B
    elif auth == "with another key":
        auth = env.auth(env.b, tk.ThreadKey.new())
    before = env.b_state()
    for message in (
        {"t": "get_logs", "thread": env.tid, "auth": auth},
        {
            "t": "get_records",
            "thread": env.tid,
            "auth": auth,
            "logs": [{"id": peer_id_bytes(env.a_log), "after": 0, "limit": 10}],
        },
        {
            "t": "push_records",
            "thread": env.tid,
            "auth": auth,
            "log": peer_id_bytes(env.a_log),
            "records": [],
        },
    ):
        _assert_refused(env.request(env.b, **message), "auth")
    assert env.b_state() == before
    env.still_syncs()


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\xff\xfe not cbor at all", "malformed"),
        (b"\x9f\x01\x02", "malformed"),  # truncated indefinite CBOR array
        (cbor2.dumps([1, 2, 3]), "malformed"),
        (cbor2.dumps({"v": 2, "t": "get_logs"}), "version"),
        (cbor2.dumps({"v": 1, "t": "drop_tables"}), "malformed"),
        (cbor2.dumps({"v": 1, "t": "get_logs", "thread": b"\x01\x55short"}), "malformed"),
        (cbor2.dumps({"v": 1, "t": "push_records", "thread": b"x", "records": "no"}), "malformed"),
        (
            cbor2.dumps({"v": 1, "t": "get_records", "thread": b"x", "logs": [{"id": 5}]}),
            "malformed",
        ),
    ],
    ids=[
        "garbage",
        "truncated-cbor",
        "not-a-map",
        "version",
        "type",
        "thread-id",
        "records-type",
        "log-id-type",
    ],
)
def test_malformed_message_gets_an_error_reply(env: Env, payload: bytes, code: str) -> None:
    before = env.b_state()
    _assert_refused(env.send(env.b, payload), code)
    assert env.b_state() == before
    env.still_syncs()


def test_oversized_frame_is_refused_before_its_body_is_read(env: Env) -> None:
    # announce 33 MiB, send a few bytes: the peer must answer or close at once, not wait
    data = varint.encode(p.MAX_FRAME + 1024 * 1024) + b"\x00" * 64
    reply = env.send(env.b, data, raw=True)
    assert reply == CLOSED or (reply.get("ok") is False and reply.get("error") == "too_large")
    env.still_syncs()


def test_truncated_frame_changes_nothing(env: Env) -> None:
    before = env.b_state()
    payload = cbor2.dumps({"v": 1, "t": "get_logs", "thread": env.tid, "auth": env.auth(env.b)})
    data = varint.encode(len(payload) + 100) + payload  # the stream ends inside the frame
    reply = env.send(env.b, data, raw=True, eof=True)
    assert reply == CLOSED or (reply.get("ok") is False and reply.get("error") == "truncated")
    assert env.b_state() == before
    env.still_syncs()


@pytest.mark.parametrize("field", ["pub", "addrs"])
def test_push_log_with_a_malformed_log_entry_gets_an_error_reply(env: Env, field: str) -> None:
    """docs/protocol.md: a malformed message "ends the stream with an error reply"."""
    before = env.b_state()
    newcomer = Identity.generate()
    entry = {
        "id": peer_id_bytes(newcomer.public.peer_id),
        "pub": newcomer.public.to_bytes(),
        "addrs": [addr_to_bytes(env.a.addrs[0])],
        "counter": 0,
    }
    entry[field] = b"\x08\x01\x12\x20" + b"\x00" * 7 if field == "pub" else [b"\xffjunk"]
    reply = env.request(env.b, t="push_log", thread=env.tid, auth=env.auth(env.b), log=entry)
    _assert_refused(reply, "malformed")
    assert env.b_state() == before
    env.still_syncs()


@pytest.mark.parametrize("kind", ["get_records", "push_records"])
def test_garbage_log_id_gets_an_error_reply(env: Env, kind: str) -> None:
    """A log id that is not a peer id multihash is a malformed request, answered as one."""
    before = env.b_state()
    garbage = b"\xff\x00garbage"
    message: dict[str, Any] = {"t": kind, "thread": env.tid, "auth": env.auth(env.b)}
    if kind == "get_records":
        message["logs"] = [{"id": garbage, "after": 0, "limit": 10}]
    else:
        message |= {"log": garbage, "records": []}
    reply = env.request(env.b, **message)
    assert reply != CLOSED, "the stream was closed without a reply"
    assert reply.get("error") in ("malformed", "unknown_log") or reply.get("ok") is True, reply
    assert env.b_state() == before
    env.still_syncs()


def test_unauthenticated_push_log_with_a_made_up_skey_cannot_squat_a_thread(env: Env) -> None:
    """Anyone who knows a thread id (it is in every thread address) can send ``push_log``
    with ``skey`` = 32 random bytes to a peer that does not hold the thread yet: the peer
    registers the thread under the attacker's key, and its later legitimate join fails."""
    (x,) = env.cluster.start(1)
    entry = {
        "id": peer_id_bytes(env.a_log),
        "pub": b"",
        "addrs": [],
        "counter": 0,
    }
    logs = {log["id"]: log for log in env.a.call("logs", db=env.dbid)["logs"]}
    entry["pub"] = bytes.fromhex(logs[env.a_log]["pub"])
    env.node.call(env.node.connect, x.addrs[0], timeout=10)
    env.request(x, t="push_log", thread=env.tid, skey=os.urandom(32), log=entry)
    try:
        x.call("join", addr=f"{env.a.addrs[0]}/thread/{env.dbid}", key=str(env.key))
    except PeerProcessError as exc:
        pytest.fail(f"a stranger's push_log blocked a legitimate join: {exc.error}")
    assert x.call("wait_count", db=env.dbid, coll="Items", n=1, timeout=10)["reached"]


def test_bad_input_during_a_stream_of_writes_loses_nothing(env: Env) -> None:
    """Every kind of bad request, fired at B again and again while A streams 400 writes."""
    forged = create_record(_body(), log_key=Identity.generate(), key=env.key)
    other = create_record(_body(), log_key=Identity.generate(), key=tk.ThreadKey.new())
    push = {"t": "push_records", "thread": env.tid, "log": peer_id_bytes(env.a_log)}
    bad: list[tuple[bytes, bool]] = [
        (
            cbor2.dumps({"v": 1, **push, "auth": env.auth(env.b), "records": [_blocks(forged)]}),
            False,
        ),
        (
            cbor2.dumps({"v": 1, **push, "auth": env.auth(env.b), "records": [_blocks(other)]}),
            False,
        ),
        (cbor2.dumps({"v": 1, **push, "auth": os.urandom(32), "records": []}), False),
        (b"\xff\xfe garbage", False),
        (varint.encode(p.MAX_FRAME + 1) + b"\x00" * 16, True),
    ]
    env.a.call("create_bg", db=env.dbid, coll="Items", n=400, prefix="stream")
    rounds = 0
    while env.a.call("bg_status")["running"] and rounds < 40:
        for payload, raw in bad:
            reply = env.send(env.b, payload, raw=raw)
            assert reply == CLOSED or reply.get("ok") is False, reply
        rounds += 1
    status = env.a.call("wait_bg", n=400, timeout=30)
    assert status["done"] == 400 and status["error"] is None, status
    assert rounds >= 1

    assert_converged([env.a, env.b], env.dbid, timeout=15)
    assert seqs(snapshot(env.b, env.dbid), prefix="stream") == list(range(400))
    assert snapshot(env.a, env.dbid) == snapshot(env.b, env.dbid)
    env.still_syncs()


async def _session(node: Node, peer_id: str, frames: list[bytes]) -> list[Any]:
    """Send frames one by one on one ``/threadkit/1.1.0`` stream; the decoded replies.

    A reply is CLOSED when the peer ended the stream instead (and then no more is sent).
    """
    import trio

    replies: list[Any] = []
    with trio.fail_after(10):
        stream = await node.open_stream(peer_id, p.PROTOCOL_ID_PERSISTENT)
        reader = FrameReader(stream)
        try:
            for data in frames:
                await stream.write(data)
                try:
                    reply = await reader.read_frame(p.MAX_FRAME)
                except (ConnectionLost, ProtocolError):
                    reply = None
                replies.append(CLOSED if reply is None else cbor2.loads(reply))
                if reply is None:
                    break
        finally:
            with contextlib.suppress(Exception):
                await stream.close()
    return replies


def test_a_long_lived_stream_survives_refused_requests_and_ends_at_a_bad_frame(
    env: Env,
) -> None:
    """On ``/threadkit/1.1.0`` a refused request gets its error reply and the stream goes
    on; a frame that breaks the framing (oversized) ends the stream without a reply."""

    def frame(message: dict[str, Any] | bytes) -> bytes:
        payload = message if isinstance(message, bytes) else cbor2.dumps({"v": 1, **message})
        return varint.encode(len(payload)) + payload

    before = env.b_state()
    good = {"t": "get_logs", "thread": env.tid, "auth": env.auth(env.b)}
    frames = [
        frame(good),
        frame(b"\xff\xfe not cbor at all"),
        frame(good),
        frame({**good, "auth": os.urandom(32)}),
        frame({"t": "drop_tables"}),
        frame(good),
        varint.encode(p.MAX_FRAME + 1) + b"\x00" * 16,
        frame(good),
    ]
    replies = env.node.call(_session, env.node, env.b.peer_id, frames, timeout=20)
    assert [r if r == CLOSED else r.get("ok") or r.get("error") for r in replies] == [
        True,
        "malformed",
        True,
        "auth",
        "malformed",
        True,
        CLOSED,
    ]
    assert env.b_state() == before
    env.still_syncs()
