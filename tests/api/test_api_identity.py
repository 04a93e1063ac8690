"""``identity=`` on tk.Client's collections means what it means on an embedded one."""

from __future__ import annotations

import pytest
from api_procs import Daemon

import threadkit as tk
from threadkit import errors

pytestmark = pytest.mark.slow


def test_calls_act_as_the_given_identity(daemon: Daemon) -> None:
    alice, bob = tk.Identity.generate(), tk.Identity.generate()
    validator = f'return writer === "{alice.public}"'
    only_alice = f'return reader === "{alice.public}" ? instance : null'
    with tk.Client(daemon.target, timeout=20) as client:
        db = client.new_db("identities")
        guarded = db.new_collection("Guarded", write_validator=validator, read_filter=only_alice)
        with pytest.raises(errors.WriteRejected):
            guarded.create({"x": 1})  # no token: the daemon's own identity
        (doc_id,) = guarded.create({"x": 2}, identity=alice)
        with pytest.raises(errors.WriteRejected):
            guarded.save({"_id": doc_id, "x": 3}, identity=bob)
        guarded.save({"_id": doc_id, "x": 4}, identity=alice)
        guarded.verify({"x": 5}, identity=alice)
        with pytest.raises(errors.WriteRejected):
            guarded.verify({"x": 5}, identity=bob)

        assert [d["x"] for d in guarded.find(identity=alice)] == [4]
        assert guarded.find(identity=bob) == [] == guarded.find()
        assert guarded.find_by_id(doc_id, identity=alice)["x"] == 4
        with pytest.raises(errors.InstanceNotFound):
            guarded.find_by_id(doc_id, identity=bob)
        assert guarded.has(doc_id, identity=alice)
        assert list(guarded.to_pandas(identity=alice)["x"]) == [4]
        assert guarded.to_pandas(identity=bob).empty
        assert list(guarded.query("x > 1", identity=alice)["x"]) == [4]

        with guarded.write_txn(identity=alice) as txn:
            txn.save({"_id": doc_id, "x": 6})
        with guarded.read_txn(identity=alice) as rtxn:
            assert rtxn.find_by_id(doc_id)["x"] == 6
        with guarded.read_txn(identity=bob) as rtxn:
            assert rtxn.find() == []

        # a public key only when the client acts as it: the daemon needs a proof of the key
        with pytest.raises(errors.InvalidInput, match="get_token"):
            guarded.find(identity=alice.public)
        with pytest.raises(errors.InvalidInput, match="get_token"):
            guarded.write_txn(identity=str(alice.public))
        client.get_token(alice)
        assert [d["x"] for d in guarded.find(identity=alice.public)] == [6]
        assert [d["x"] for d in guarded.find(identity=str(alice.public))] == [6]
        assert guarded.find(identity=bob) == []  # a given identity wins over the token

        plain = db.new_collection("Plain", write_validator=validator)
        (other,) = plain.create({"x": 1})  # the token's identity: alice
        plain.update(other, identity=alice, x=2)
        with pytest.raises(errors.WriteRejected):
            plain.update(other, identity=bob, x=3)
        with pytest.raises(errors.WriteRejected):
            plain.delete(other, identity=bob)
        plain.delete(other, identity=alice)
        assert not plain.has(other)
        client.delete_db(db.id)


def test_the_daemons_own_key_is_accepted_without_a_token(daemon: Daemon) -> None:
    with tk.Client(daemon.target, timeout=20) as client:
        own = tk.PublicKey.from_peer_id(client.host_id)
        assert client.acting_as() == str(own)
        db = client.new_db("own")
        coll = db.new_collection("Rows")
        coll.create({"a": 1}, identity=own)
        assert coll.count() == 1 == len(coll.find(identity=str(own)))
        client.delete_db(db.id)
