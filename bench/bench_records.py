"""Record figures: created/s beside raw Ed25519 sign/s, verified+stored/s beside raw verify/s.

Goals (issue 2): create ≥ 60% of the raw sign rate; verify+store ≥ 60% of the raw
verify rate. The raw operations sign/verify a message of the same size as the
bytes a record signature covers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from bench.harness import Figure, figure, interleaved_rates
from threadkit.core import dagcbor
from threadkit.core.identity import Identity
from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.core.records import Record, create_record, open_record, signed_bytes

__all__ = ["run"]

BATCH = 500
"""Records per round (and per store transaction)."""


def _body(i: int) -> bytes:
    return dagcbor.encode({"patches": [{"_id": f"doc{i:08d}", "name": "Alice", "age": i % 90}]})


def _chain(log_key: Identity, key: ThreadKey, count: int) -> list[Record]:
    records: list[Record] = []
    prev = None
    for i in range(count):
        rec = create_record(_body(i), log_key=log_key, key=key, prev=prev)
        records.append(rec)
        prev = rec.cid
    return records


def bench_create(rounds: int) -> Figure:
    """Records created per second vs raw Ed25519 signatures per second."""
    log_key, key = Identity.generate(), ThreadKey.new()
    bodies = [_body(i) for i in range(BATCH)]
    first = create_record(bodies[0], log_key=log_key, key=key)
    message = signed_bytes(first.event_cid, first.cid, first.author)

    def work() -> int:
        prev = first.cid
        for body in bodies:
            prev = create_record(body, log_key=log_key, key=key, prev=prev).cid
        return len(bodies)

    def baseline() -> int:
        sign = log_key._key.sign
        for _ in range(BATCH):
            sign(message)
        return BATCH

    work_rates, base_rates = interleaved_rates(work, baseline, rounds)
    return figure(
        "record_create",
        "records/s",
        "raw Ed25519 sign",
        work_rates,
        base_rates,
        message_bytes=len(message),
        goal_ratio=0.6,
    )


def _verify_baseline(log_key: Identity, message: bytes) -> Iterator[int]:
    sig = log_key.sign(message)
    verify = log_key.public._key.verify
    while True:
        for _ in range(BATCH):
            verify(sig, message)
        yield BATCH


def bench_verify(rounds: int) -> Figure:
    """Records opened (decrypted, CIDs and signature checked) per second vs raw verify."""
    log_key, key = Identity.generate(), ThreadKey.new()
    records = _chain(log_key, key, BATCH)
    message = signed_bytes(records[1].event_cid, records[0].cid, records[1].author)
    base = _verify_baseline(log_key, message)

    def work() -> int:
        for rec in records:
            open_record(rec.blocks, service_key=key, log_key=log_key.public, cid=rec.cid)
        return len(records)

    work_rates, base_rates = interleaved_rates(work, lambda: next(base), rounds)
    return figure(
        "record_verify",
        "records/s",
        "raw Ed25519 verify",
        work_rates,
        base_rates,
        goal_ratio=0.6,
    )


def bench_verify_store(rounds: int) -> Figure:
    """Received records checked and stored per second (one durable txn per batch) vs raw verify."""
    from threadkit.store.repo import Repo

    log_key, key = Identity.generate(), ThreadKey.new()
    records = _chain(log_key, key, BATCH * (rounds + 1))
    message = signed_bytes(records[1].event_cid, records[0].cid, records[1].author)
    base = _verify_baseline(log_key, message)
    batches = iter([records[i : i + BATCH] for i in range(0, len(records), BATCH)])
    with Repo.temporary(durable=True) as repo:
        thread_id = ThreadID.new()
        repo.add_thread(thread_id, key)
        repo.add_log(thread_id, log_key.public)

        def work() -> int:
            batch = next(batches)
            opened = [
                open_record(r.blocks, service_key=key, log_key=log_key.public, cid=r.cid)
                for r in batch
            ]
            result = repo.accept(thread_id, log_key.public.peer_id, opened)
            assert len(result.added) == len(batch)
            return len(batch)

        work_rates, base_rates = interleaved_rates(work, lambda: next(base), rounds)
    return figure(
        "record_verify_store",
        "records/s",
        "raw Ed25519 verify",
        work_rates,
        base_rates,
        batch=BATCH,
        durable=True,
        goal_ratio=0.6,
    )


def bench_lmdb_put(rounds: int) -> Figure:
    """Raw LMDB: durable puts of record-sized values per second, BATCH per txn (a baseline)."""
    import tempfile

    import lmdb

    value = os.urandom(600)
    with tempfile.TemporaryDirectory() as tmp:
        env = lmdb.open(tmp, map_size=1 << 30, sync=True, metasync=True)
        counter = iter(range(10**9))

        def work() -> int:
            with env.begin(write=True) as txn:
                for _ in range(BATCH):
                    txn.put(next(counter).to_bytes(8, "big"), value)
            return BATCH

        def none() -> int:
            return BATCH

        work_rates, _ = interleaved_rates(work, none, rounds)
        env.close()
    return figure("lmdb_put_raw", "puts/s", "none", work_rates, work_rates, batch=BATCH)


def run(rounds: int = 7) -> list[Figure]:
    """All record figures."""
    return [
        bench_create(rounds),
        bench_verify(rounds),
        bench_verify_store(rounds),
        bench_lmdb_put(rounds),
    ]
