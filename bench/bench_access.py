"""Writer proofs and sealed keys: what access control costs per record, beside raw Ed25519.

``python -m bench.bench_access [--rounds N]`` prints one JSON line per figure. Every
figure runs in rounds alternating with its baseline (bench/harness.py):

- ``writer_proof_direct_sign`` / ``_verify``: one direct proof (DAG-CBOR message and an
  Ed25519 signature) per record, against a raw Ed25519 sign / verify of a message of the
  same size;
- ``writer_proof_delegation_verify``: the per-record check of a delegation, signed once
  per log and verified once (then cached), against a raw verify;
- ``record_create_with_proof`` / ``record_open_with_proof``: a whole record (encrypted,
  signed by its log key) plus its direct proof, against the raw sign / verify, beside
  ``record_create_no_proof`` / ``record_open_no_proof``, the record alone;
- ``record_open_with_delegation``: a record opened plus its delegation checked;
- ``epoch_key_seal``: one read key sealed to one member (HPKE and the admin's signature),
  against a raw sign (a key rotation costs one seal per remaining member);
  ``epoch_key_seal_vs_x25519``: the same against a raw X25519 key generation and
  exchange (the Diffie-Hellman HPKE does once per seal);
- ``epoch_key_open``: a member opening its sealed key (signature checked, HPKE opened,
  commitment compared), against a raw verify.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from bench.harness import Figure, emit, figure, interleaved_rates
from threadkit.core import dagcbor
from threadkit.core.identity import Identity
from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.core.records import Record, create_record, open_record
from threadkit.core.sealing import open_epoch_key, seal_epoch_key
from threadkit.core.symmetric import SymmetricKey
from threadkit.core.writerproof import (
    ProofKind,
    WriterProof,
    delegate,
    proof_message,
    prove_direct,
    verify_proof,
)

__all__ = ["run"]

BATCH = 500
"""Items per round."""


class _Setup:
    def __init__(self) -> None:
        self.writer, self.log = Identity.generate(), Identity.generate()
        self.thread, self.key = ThreadID.new(), ThreadKey.new()
        self.records = _chain(self.log, self.key, self.writer, BATCH)
        self.cids = [r.event_cid for r in self.records]
        self.proofs = [self._direct(c) for c in self.cids]
        self.message = proof_message(
            ProofKind.DIRECT,
            thread_id=self.thread,
            log=self.log.public,
            content=self.cids[0],
        )
        self.sig = self.writer.sign(self.message)

    def _direct(self, content: bytes) -> WriterProof:
        return prove_direct(
            self.writer, thread_id=self.thread, log=self.log.public, content=content
        )

    def raw_sign(self) -> int:
        sign = self.writer._key.sign
        for _ in range(BATCH):
            sign(self.message)
        return BATCH

    def raw_verify(self) -> int:
        verify = self.writer.public._key.verify
        for _ in range(BATCH):
            verify(self.sig, self.message)
        return BATCH


def _body(i: int) -> bytes:
    return dagcbor.encode({"patches": [{"_id": f"doc{i:08d}", "name": "Alice", "age": i % 90}]})


def _chain(log: Identity, key: ThreadKey, author: Identity, count: int) -> list[Record]:
    out: list[Record] = []
    prev = None
    for i in range(count):
        rec = create_record(_body(i), log_key=log, key=key, prev=prev, author=author.public)
        out.append(rec)
        prev = rec.cid
    return out


def _measure(
    name: str,
    unit: str,
    base_name: str,
    work: Callable[[], int],
    base: Callable[[], int],
    rounds: int,
    batch: int = BATCH,
) -> Figure:
    work_rates, base_rates = interleaved_rates(work, base, rounds)
    return figure(name, unit, base_name, work_rates, base_rates, batch=batch)


def run(rounds: int = 7) -> list[Figure]:
    """All access-control figures."""
    s = _Setup()
    log_pub = s.log.public
    delegation = delegate(s.writer, thread_id=s.thread, log=log_pub)
    bodies = [_body(i) for i in range(BATCH)]

    def direct_sign() -> int:
        for cid in s.cids:
            s._direct(cid)
        return BATCH

    def direct_verify() -> int:
        for cid, proof in zip(s.cids, s.proofs, strict=True):
            verify_proof(proof, thread_id=s.thread, log=log_pub, content=cid)
        return BATCH

    def delegation_verify() -> int:
        for cid in s.cids:
            verify_proof(delegation, thread_id=s.thread, log=log_pub, content=cid)
        return BATCH

    def create_with_proof() -> int:
        prev = s.records[0].cid
        for body in bodies:
            rec = create_record(body, log_key=s.log, key=s.key, prev=prev, author=s.writer.public)
            s._direct(rec.event_cid)
            prev = rec.cid
        return BATCH

    def create_alone() -> int:
        prev = s.records[0].cid
        for body in bodies:
            prev = create_record(
                body, log_key=s.log, key=s.key, prev=prev, author=s.writer.public
            ).cid
        return BATCH

    def open_alone() -> int:
        for rec in s.records:
            open_record(rec.blocks, service_key=s.key, log_key=log_pub, cid=rec.cid)
        return BATCH

    def open_with_proof() -> int:
        for rec, proof in zip(s.records, s.proofs, strict=True):
            opened = open_record(rec.blocks, service_key=s.key, log_key=log_pub, cid=rec.cid)
            verify_proof(proof, thread_id=s.thread, log=log_pub, content=opened.event_cid)
        return BATCH

    def open_with_delegation() -> int:
        for rec in s.records:
            opened = open_record(rec.blocks, service_key=s.key, log_key=log_pub, cid=rec.cid)
            verify_proof(delegation, thread_id=s.thread, log=log_pub, content=opened.event_cid)
        return BATCH

    members = [Identity.generate().public for _ in range(50)]
    epoch_key = SymmetricKey.new()

    def seal() -> int:
        for member in members:
            seal_epoch_key(
                epoch_key, recipient=member, sender=s.writer, thread_id=s.thread, epoch=1
            )
        return len(members)

    peers = [X25519PrivateKey.generate().public_key() for _ in members]

    def raw_x25519() -> int:
        for peer in peers:
            X25519PrivateKey.generate().exchange(peer)
        return len(peers)

    recipient = Identity.generate()
    sealed = [
        seal_epoch_key(
            epoch_key, recipient=recipient.public, sender=s.writer, thread_id=s.thread, epoch=1
        )
        for _ in members
    ]

    def open_sealed() -> int:
        for box in sealed:
            open_epoch_key(box, recipient=recipient, thread_id=s.thread, epoch=1)
        return len(sealed)

    def raw_verify_members() -> int:
        verify = s.writer.public._key.verify
        for _ in members:
            verify(s.sig, s.message)
        return len(members)

    sign, verify = "raw Ed25519 sign", "raw Ed25519 verify"
    return [
        _measure("writer_proof_direct_sign", "proofs/s", sign, direct_sign, s.raw_sign, rounds),
        _measure(
            "writer_proof_direct_verify", "proofs/s", verify, direct_verify, s.raw_verify, rounds
        ),
        _measure(
            "writer_proof_delegation_verify",
            "records/s",
            verify,
            delegation_verify,
            s.raw_verify,
            rounds,
        ),
        _measure("record_create_no_proof", "records/s", sign, create_alone, s.raw_sign, rounds),
        _measure(
            "record_create_with_proof", "records/s", sign, create_with_proof, s.raw_sign, rounds
        ),
        _measure("record_open_no_proof", "records/s", verify, open_alone, s.raw_verify, rounds),
        _measure(
            "record_open_with_proof", "records/s", verify, open_with_proof, s.raw_verify, rounds
        ),
        _measure(
            "record_open_with_delegation",
            "records/s",
            verify,
            open_with_delegation,
            s.raw_verify,
            rounds,
        ),
        _measure("epoch_key_seal", "members/s", sign, seal, s.raw_sign, rounds, len(members)),
        _measure(
            "epoch_key_seal_vs_x25519",
            "members/s",
            "raw X25519 keygen + exchange",
            seal,
            raw_x25519,
            rounds,
            len(members),
        ),
        _measure(
            "epoch_key_open",
            "keys/s",
            verify,
            open_sealed,
            raw_verify_members,
            rounds,
            len(members),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    """Entry point: print the figures as JSON lines."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_access", description=__doc__)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per figure")
    args = parser.parse_args(argv)
    for fig in run(args.rounds):
        emit(fig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
