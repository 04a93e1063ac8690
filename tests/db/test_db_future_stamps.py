"""Event stamps far ahead of local time: applied alike everywhere, never dragging the clock.

A member can sign a record whose events carry any stamp. One stamped near the end of
the clock's range used to be merged into every receiving peer's clock, after which every
local write overflowed (``InvalidTimestamp``), on every peer, across restarts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.db.replicas import deliver, know_log, log_records, replica, snapshot, sync
from threadkit.core.clock import MAX_DRIFT, MAX_LOGICAL, MAX_WALL, Timestamp
from threadkit.core.records import Record, create_record
from threadkit.core.writerproof import delegate
from threadkit.db.database import Database
from threadkit.db.events import Action, RecordEvent, encode_body
from threadkit.errors import WriteRejected
from threadkit.peer import Peer

FAR = Timestamp(MAX_WALL, MAX_LOGICAL - 1)  # merged, it leaves the clock one tick from overflow


def _signed(member: Database, events: list[RecordEvent]) -> Record:
    """The member's next record holding ``events``, signed with its log key as any peer's."""
    head = member._repo.get_head(member.id, member.log_id).cid
    return create_record(
        encode_body(
            events,
            delegate(member.identity, thread_id=member.id, log=member.log_key.public).to_node(),
        ),
        log_key=member.log_key,
        key=member.key,
        prev=head,
        author=member.identity.public,
    )


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def _pair(stack: ExitStack, path: Path) -> tuple[Database, Database]:
    victim = stack.enter_context(Peer(path, network=False)).new_db("shared")
    notes = victim.new_collection("Notes")
    notes.create({"_id": "pinned", "text": "a"}, {"_id": "other", "text": "b"})
    member = replica(stack.enter_context(Peer(memory=True, network=False)), victim)
    sync(victim, member)
    return victim, member


def _save_at(victim: Database, stamp: Timestamp, instance_id: str, text: str) -> RecordEvent:
    with victim._repo.transaction() as txn:
        base = victim.engine.last_key(txn, "Notes", instance_id)
    return RecordEvent(stamp, Action.SAVE, "Notes", instance_id, {"text": text}, base)


def test_far_future_record_does_not_stop_writes(stack: ExitStack, tmp_path: Path) -> None:
    victim, member = _pair(stack, tmp_path / "victim")
    record = _signed(member, [_save_at(victim, FAR, "pinned", "from the future")])
    deliver(victim, member, [record])

    notes = victim["Notes"]
    # the record is applied as on every peer ...
    assert notes.find_by_id("pinned")["text"] == "from the future"
    # ... but the clock did not follow it: other writes go on
    assert victim.hlc.last.wall < time.time_ns() + MAX_DRIFT
    notes.create({"_id": "new", "text": "c"})
    notes.save({"_id": "other", "text": "b2"})
    victim.new_collection("More")
    # the instance it touched cannot be written to sort after it: a clear refusal
    with pytest.raises(WriteRejected, match="ahead of this peer's clock"):
        notes.save({"_id": "pinned", "text": "mine"})
    assert notes.find_by_id("pinned")["text"] == "from the future"
    assert notes.find_by_id("other")["text"] == "b2"


def test_far_future_collection_event_refuses_only_that_collection(
    stack: ExitStack, tmp_path: Path
) -> None:
    victim, member = _pair(stack, tmp_path / "victim")
    config = victim["Notes"].config.to_node()
    event = RecordEvent(FAR, Action.UPDATE_COLLECTION, "Notes", "", config)
    deliver(victim, member, [_signed(member, [event])])
    with pytest.raises(WriteRejected, match="collection 'Notes'"):
        victim.update_collection("Notes", indexes=[{"path": "text"}])
    victim["Notes"].create({"_id": "after", "text": "d"})
    victim.new_collection("Other").create({"text": "e"})


def test_reopening_with_a_far_future_stamp_stored_still_writes(
    stack: ExitStack, tmp_path: Path
) -> None:
    path = tmp_path / "victim"
    with ExitStack() as first:
        victim, member = _pair(first, path)
        deliver(victim, member, [_signed(member, [_save_at(victim, FAR, "pinned", "x")])])
        thread_id = victim.id
    with Peer(path, network=False) as reopened:
        db = reopened.get_db(thread_id)
        assert db.hlc.last.wall < time.time_ns() + MAX_DRIFT
        db["Notes"].create({"_id": "after-restart", "text": "f"})
        assert db["Notes"].find_by_id("pinned")["text"] == "x"


def test_every_peer_holds_the_same_documents(stack: ExitStack, tmp_path: Path) -> None:
    victim, member = _pair(stack, tmp_path / "victim")
    deliver(victim, member, [_signed(member, [_save_at(victim, FAR, "pinned", "x")])])
    victim["Notes"].save({"_id": "other", "text": "after"})
    late = replica(stack.enter_context(Peer(memory=True, network=False)), victim)
    know_log(late, member)
    know_log(late, victim)
    # the member's log first this time, then the victim's
    late.apply_records(member.log_id, log_records(victim, member.log_id))
    late.apply_records(victim.log_id, log_records(victim))
    assert snapshot(late) == snapshot(victim)


def test_stamp_within_drift_is_merged(stack: ExitStack, tmp_path: Path) -> None:
    victim, member = _pair(stack, tmp_path / "victim")
    soon = Timestamp(time.time_ns() + MAX_DRIFT // 2, 0)
    deliver(victim, member, [_signed(member, [_save_at(victim, soon, "pinned", "soon")])])
    assert victim.hlc.last > soon
    victim["Notes"].save({"_id": "pinned", "text": "later"})  # sorts after it
    assert victim["Notes"].find_by_id("pinned")["text"] == "later"
