"""Record figures: created/s beside raw Ed25519 sign/s, verified+stored/s beside raw verify/s.

Goals (issue 2): create ≥ 60% of the raw sign rate; verify+store ≥ 60% of the raw
verify rate. The raw operations sign/verify a message of the same size as the
bytes a record signature covers.
"""

from __future__ import annotations

from collections.abc import Iterator

from bench.harness import Figure, figure, interleaved_rates
from threadkit.core import dagcbor
from threadkit.core.identity import Identity
from threadkit.core.keys import ThreadKey
from threadkit.core.records import Record, create_record, open_record, signed_bytes

__all__ = ["run"]

BATCH = 200
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
        "record_create", "records/s", "raw Ed25519 sign", work_rates, base_rates,
        message_bytes=len(message), goal_ratio=0.6,
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
        "record_verify", "records/s", "raw Ed25519 verify", work_rates, base_rates,
        goal_ratio=0.6,
    )


def run(rounds: int = 7) -> list[Figure]:
    """All record figures."""
    return [bench_create(rounds), bench_verify(rounds)]
