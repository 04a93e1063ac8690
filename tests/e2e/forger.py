"""Modified code for end-to-end tests: records built by hand with a peer's own keys.

A peer process running these skips every local check and appends the records to its
own log; the other peers must reject them (docs/access.md).
"""

from __future__ import annotations

from typing import Any

from threadkit.core.identity import Identity, PublicKey
from threadkit.core.records import create_record, open_record
from threadkit.core.writerproof import delegate
from threadkit.db.database import Database
from threadkit.db.events import Action, RecordEvent, encode_body
from threadkit.errors import DecryptionError
from threadkit.store import chain
from threadkit.store.logs import read_head

__all__ = ["forge", "read_disk"]


def _append(db: Database, events: list[RecordEvent], signer: Identity, author: PublicKey) -> None:
    proof = delegate(signer, thread_id=db.id, log=db.log_key.public).to_node()
    body = encode_body(events, proof)
    with db._repo.transaction(write=True) as txn:
        head = read_head(txn, db._repo.tables, db.id, db.log_id)
        record = create_record(body, log_key=db.log_key, key=db.key, prev=head.cid, author=author)
        chain.append(txn, db._repo.tables, db.id, db.log_id, [record])


def forge(db: Database, what: str, msg: dict[str, Any]) -> None:
    """Append a forged record: ``write`` (a document write whatever the role),
    ``strip`` (the collection's config without its write validator) or ``impersonate``
    (a write naming ``msg["as"]`` as its writer, with this peer's own delegation)."""
    own = db.identity
    coll = msg["coll"]
    stamp = db.hlc.now()
    if what == "strip":
        node = db.engine.config(coll).to_node()
        node.pop("writeValidator", None)
        _append(db, [RecordEvent(stamp, Action.UPDATE_COLLECTION, coll, "", node)], own, own.public)
        return
    event = RecordEvent(stamp, Action.CREATE, coll, msg["id"], msg["doc"])
    author = PublicKey.from_string(msg["as"]) if what == "impersonate" else own.public
    _append(db, [event], own, author)


def read_disk(db: Database) -> list[dict[str, Any]]:
    """Each record of ``db``'s thread stored on this peer: its log, counter, key epoch and
    whether the read key in the thread key this peer holds opens it."""
    out = []
    for info in db._repo.list_logs(db.id):
        for stored in db._repo.read_log(db.id, info.id):
            record = open_record(stored.blocks, service_key=db.key, log_key=info.public)
            try:
                record.read_body(db.key)
                readable = True
            except DecryptionError:
                readable = False
            out.append(
                {"log": info.id, "counter": stored.counter, "epoch": record.epoch,
                 "readable": readable}
            )  # fmt: skip
    return out
