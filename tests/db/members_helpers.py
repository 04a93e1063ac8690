"""Test harness for members and writer proofs: records built by hand, as modified code would."""

from __future__ import annotations

from typing import Any

from replicas import know_log, log_records

from threadkit.core.identity import Identity, PublicKey
from threadkit.core.records import create_record
from threadkit.core.writerproof import delegate
from threadkit.db import epochs, members, received
from threadkit.db.database import Database
from threadkit.db.events import Action, RecordEvent, encode_body
from threadkit.db.members import member_node
from threadkit.store import chain
from threadkit.store.logs import read_head

__all__ = [
    "NO_PROOF",
    "forge",
    "forged_create",
    "forged_grant",
    "forged_strip",
    "handoff_all",
    "state",
]

NO_PROOF = object()
"""Pass as ``proof=`` to :func:`forge` for a body without a writer proof."""


def forge(
    db: Database,
    events: list[RecordEvent],
    *,
    signer: Identity | None = None,
    author: PublicKey | None = None,
    member: dict[str, Any] | None = None,
    proof: Any = None,
) -> None:
    """Append a record built by hand to ``db``'s own log, skipping every local check.

    ``signer`` makes the delegation (the peer's identity by default), ``author`` is the
    ``pubKey`` the record names (the signer's by default); ``proof=NO_PROOF`` leaves the
    proof out, any other ``proof`` replaces it.
    """
    signer = signer or db.identity
    author = author or signer.public
    if proof is None:
        proof = delegate(signer, thread_id=db.id, log=db.log_key.public).to_node()
    body = encode_body(events, None if proof is NO_PROOF else proof, member=member)
    with db._repo.transaction(write=True) as txn:
        head = read_head(txn, db._repo.tables, db.id, db.log_id)
        record = create_record(body, log_key=db.log_key, key=db.key, prev=head.cid, author=author)
        chain.append(txn, db._repo.tables, db.id, db.log_id, [record])
    received.catch_up(db)  # the forger judges its own record as on a restart (it stays in its log)


def forged_create(db: Database, collection: str, instance_id: str, **kw: Any) -> None:
    """A hand-built create of ``{"n": 1}``."""
    event = RecordEvent(db.hlc.now(), Action.CREATE, collection, instance_id, {"n": 1})
    forge(db, [event], **kw)


def forged_strip(db: Database, collection: str, **kw: Any) -> None:
    """A hand-built update of ``collection`` without its write validator."""
    node = db.engine.config(collection).to_node()
    node.pop("writeValidator", None)
    event = RecordEvent(db.hlc.now(), Action.UPDATE_COLLECTION, collection, "", node)
    forge(db, [event], **kw)


def forged_grant(db: Database, target: PublicKey, role: str, **kw: Any) -> None:
    """A hand-built grant by ``db``'s identity, whatever its role."""
    with db._repo.transaction() as txn:
        heads = db.gate.heads(txn)
    node = member_node("grant", db.hlc.now(), heads, target=target, role=role)
    forge(db, [], member=node, **kw)


def handoff_all(target: Database, *sources: Database) -> None:
    """Give ``target`` every record of each source's own log it lacks."""
    for source in sources:
        know_log(target, source)
        have = target._repo.get_head(target.id, source.log_id).counter
        records = log_records(source, after=have)
        if records:
            result = target.apply_records(source.log_id, records)
            assert result.gap is None


def state(db: Database) -> tuple[Any, ...]:
    """Documents, rejections and members of a replica, for comparing peers."""
    docs = {c.name: c.find() for c in db.list_collections()}
    rejected = db.rejected().drop(columns=["when"]).to_dict("records")
    members = db.members().to_dict("records")
    configs = {c.name: c.config.write_validator for c in db.list_collections()}
    return docs, rejected, members, configs


def assert_settled(db: Database) -> None:
    """Every stored ``ok`` flag is the entry's verdict over all entries, and that verdict is
    the one over the membership entries and the entry alone (what the gate computes)."""
    with db._repo.transaction() as txn:
        entries = list(members.iter_entries(txn, db._tables.access, db.prefix))
        base = db.gate.membership(txn)
    full = members.verdicts(entries)
    assert [(e.log, e.counter) for e in base] == [
        (e.log, e.counter) for e in entries if e.kind in epochs.MEMBERSHIP
    ]
    for e in entries:
        place = (e.log, e.counter)
        assert e.ok == (not full[place]), (e, full[place])
        if e.kind not in epochs.MEMBERSHIP:
            assert members.verdicts([*base, e])[place] == full[place]
