"""The pure parts of key epochs (threadkit.db.epochs): which keys a member holds, checks."""

from __future__ import annotations

from typing import Any

import pytest

from threadkit.core.identity import Identity
from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.core.records import create_record
from threadkit.core.symmetric import SymmetricKey
from threadkit.db import epochs
from threadkit.db.members import Entry
from threadkit.errors import DecryptionError, MalformedRecord

ADMIN, BOB, CAROL = Identity.generate(), Identity.generate(), Identity.generate()
TID = ThreadID.new()
THREAD_KEY = ThreadKey.new()


def revoke(counter: int, fields: dict[str, Any], author: Identity = ADMIN) -> Entry:
    return Entry("admin-log", counter, "revoke", counter, str(author.public), fields)


def ring(entries: list[Entry], rejected: dict[tuple[str, int], str], me: Identity) -> Any:
    return epochs.keyring(entries, rejected, me=me, thread_key=THREAD_KEY, thread_id=TID, opened={})


def test_a_member_holds_the_keys_sealed_to_it_by_accepted_rotations() -> None:
    key = SymmetricKey.new()
    fields = epochs.rotation(ADMIN, TID, 1, key, [ADMIN.public, BOB.public])
    entry = revoke(2, fields)
    verdicts = {("admin-log", 2): ""}
    assert ring([entry], verdicts, BOB).keys == {1: {fields["commit"]: key}}
    assert ring([entry], verdicts, CAROL).keys == {}  # not sealed to carol
    assert ring([entry], {("admin-log", 2): "not admin"}, BOB).keys == {}  # rejected


def test_a_key_without_an_accepted_rotation_of_its_commitment_is_not_held() -> None:
    real, other = SymmetricKey.new(), SymmetricKey.new()
    rotation = epochs.rotation(ADMIN, TID, 1, real, [BOB.public])
    # an accepted record handing bob a different key for epoch 1
    stray = epochs.rotation(ADMIN, TID, 1, other, [BOB.public])["keys"]
    entries = [revoke(2, rotation), Entry("admin-log", 3, "grant", 3, str(ADMIN.public),
                                         {"keys": stray})]  # fmt: skip
    verdicts = {("admin-log", 2): "", ("admin-log", 3): ""}
    assert ring(entries, verdicts, BOB).keys == {1: {rotation["commit"]: real}}


def test_the_newest_epoch_writes_and_reads_only_open_with_held_keys() -> None:
    k1, k2 = SymmetricKey.new(), SymmetricKey.new()
    held = epochs.Keyring(THREAD_KEY, {1: {b"a" * 32: k1}, 2: {b"b" * 32: k2}})
    epoch, commit, key = held.newest()
    assert (epoch, commit, key.read_key) == (2, b"b" * 32, k2)
    record = create_record(b"\xa0", log_key=ADMIN, key=key, epoch=epoch)
    assert held.read(record) == (b"\xa0", b"b" * 32)
    assert held.holds(2, b"b" * 32) and held.holds(0, b"") and not held.holds(2, b"c" * 32)
    with pytest.raises(DecryptionError):
        epochs.Keyring(THREAD_KEY, {1: {b"a" * 32: k1}}).read(record)
    assert epochs.Keyring(THREAD_KEY).newest() == (0, b"", THREAD_KEY)


def test_owed_keys_go_to_members_without_them() -> None:
    key = SymmetricKey.new()
    fields = epochs.rotation(ADMIN, TID, 1, key, [ADMIN.public])
    held = epochs.Keyring(THREAD_KEY, {1: {fields["commit"]: key}})
    have = {(str(ADMIN.public), 1, fields["commit"])}
    owed = epochs.seal_owed(ADMIN, TID, held, [ADMIN.public, CAROL.public], have)
    assert len(owed) == 1
    entry = Entry("admin-log", 3, "grant", 3, str(ADMIN.public), {"keys": owed})
    entries = [revoke(2, fields), entry]
    verdicts = {("admin-log", 2): "", ("admin-log", 3): ""}
    assert ring(entries, verdicts, CAROL).keys == {1: {fields["commit"]: key}}
    assert (str(CAROL.public), 1, fields["commit"]) in epochs.delivered(entries, verdicts)


def _node(**kw: Any) -> dict[str, Any]:
    return {"k": "revoke", **kw}


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (_node(epoch=1), "together"),
        (_node(epoch=0, commit=b"c" * 32), "from 1"),
        (_node(epoch=1, commit=b"short"), "32 bytes"),
        ({"k": "grant", "epoch": 1, "commit": b"c" * 32}, "only a revoke"),
        (_node(keys="nope"), "list"),
        (_node(keys=[b"not cbor"]), "sealed key"),
    ],
)
def test_malformed_epoch_parts_are_refused(node: dict[str, Any], message: str) -> None:
    with pytest.raises(MalformedRecord, match=message):
        epochs.check_node(node, thread_id=TID, author=ADMIN.public)


def test_sealed_keys_must_be_the_writers_for_this_thread_and_fit_the_rotation() -> None:
    fields = epochs.rotation(ADMIN, TID, 1, SymmetricKey.new(), [BOB.public])
    assert epochs.check_node(_node(**fields), thread_id=TID, author=ADMIN.public) == fields
    with pytest.raises(MalformedRecord, match="writer"):
        epochs.check_node(_node(**fields), thread_id=TID, author=BOB.public)
    with pytest.raises(MalformedRecord, match="thread"):
        epochs.check_node(_node(**fields), thread_id=ThreadID.new(), author=ADMIN.public)
    other = epochs.rotation(ADMIN, TID, 1, SymmetricKey.new(), [BOB.public])
    with pytest.raises(MalformedRecord, match="does not fit"):
        epochs.check_node(
            _node(epoch=1, commit=fields["commit"], keys=other["keys"]),
            thread_id=TID, author=ADMIN.public,
        )  # fmt: skip


def test_several_keys_of_the_newest_epoch_are_written_under_their_combination() -> None:
    k1, k2 = SymmetricKey.new(), SymmetricKey.new()
    c1, c2 = b"a" * 32, b"b" * 32
    both = epochs.Keyring(THREAD_KEY, {2: {c1: k1, c2: k2}})
    epoch, commits, key = both.newest()
    assert (epoch, commits) == (2, c1 + c2) and key.read_key not in (k1, k2)
    record = create_record(b"\xa0", log_key=ADMIN, key=key, epoch=epoch)
    assert both.read(record) == (b"\xa0", c1 + c2)
    assert both.holds(2, c1 + c2) and not both.holds(2, c1 + b"c" * 32)
    for one in ({c1: k1}, {c2: k2}):  # a member holding only one of them reads nothing
        with pytest.raises(DecryptionError):
            epochs.Keyring(THREAD_KEY, {2: one}).read(record)
    single = create_record(b"\xa0", log_key=ADMIN, key=ThreadKey(THREAD_KEY.service_key, k2),
                           epoch=2)  # fmt: skip
    assert both.read(single) == (b"\xa0", c2)  # by a writer holding only k2


def test_the_top_epoch_counts_rotations_whose_key_is_not_held() -> None:
    fields = epochs.rotation(ADMIN, TID, 4, SymmetricKey.new(), [BOB.public])
    held = ring([revoke(2, fields)], {("admin-log", 2): ""}, CAROL)
    assert held.keys == {} and held.top == 4
