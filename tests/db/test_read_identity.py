"""Read filters run for an authenticated reader (docs/access.md): the peer's own identity,
a ``tk.Identity`` the process holds, or a client a daemon authenticated; a bare public key
of anyone else is refused, as for writes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import threadkit as tk
from threadkit.db.gate import Attested
from threadkit.errors import InvalidInput, PermissionDenied

MINE_ONLY = "return instance.owner === reader ? instance : null"


@pytest.fixture
def notes() -> Iterator[tuple[Any, tk.Identity]]:
    alice = tk.Identity.generate()
    with tk.Peer(memory=True) as peer:
        coll = peer.new_db("reads").new_collection("Notes", read_filter=MINE_ONLY)
        coll.create({"_id": "p", "owner": str(peer.identity.public)})
        coll.create({"_id": "a", "owner": str(alice.public)}, identity=alice)
        yield coll, alice


READS = {
    "find": lambda c, who: c.find(identity=who),
    "find_by_id": lambda c, who: c.find_by_id("a", identity=who),
    "has": lambda c, who: c.has("a", identity=who),
    "read_txn": lambda c, who: c.read_txn(who),
    "to_pandas": lambda c, who: c.to_pandas(identity=who),
    "query": lambda c, who: c.query("owner != ''", identity=who),
    "at": lambda c, who: c.at(c.db.heads(), identity=who),
    "diff": lambda c, who: c.diff(c.db.heads(), identity=who),
}


@pytest.mark.parametrize("read", sorted(READS))
def test_a_bare_public_key_cannot_read_as_another_identity(notes: Any, read: str) -> None:
    coll, alice = notes
    for bare in (alice.public, str(alice.public)):
        with pytest.raises(PermissionDenied, match="cannot read as"):
            READS[read](coll, bare)


@pytest.mark.parametrize("read", sorted(READS))
def test_bad_identity_types_are_refused(notes: Any, read: str) -> None:
    coll, _ = notes
    with pytest.raises(InvalidInput, match=r"tk\.Identity"):
        READS[read](coll, 42)


def test_the_reader_is_who_the_process_can_prove(notes: Any) -> None:
    coll, alice = notes
    own = coll.db.identity
    assert [d["_id"] for d in coll.find()] == ["p"]  # the peer's own identity
    assert [d["_id"] for d in coll.find(identity=own.public)] == ["p"]  # its own key
    assert [d["_id"] for d in coll.find(identity=alice)] == ["a"]  # an identity held here
    assert [d["_id"] for d in coll.find(identity=Attested(alice.public))] == ["a"]  # a daemon's
    assert list(coll.to_pandas(identity=alice).index) == ["a"]
    assert coll.has("a", identity=alice) and not coll.has("a")
    with coll.read_txn(alice) as txn:
        assert txn.find_by_id("a")["owner"] == str(alice.public)
