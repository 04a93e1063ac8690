"""Backup and restore (threadkit.db.archive): db.export → peer.import_db.

The restored database must be byte-identical to the original in every table that
folds its records (documents, instances, events, indexes, collection configs,
lost writes), and an archive is untrusted input: each kind of bad file is refused
with its own error before the repo changes.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snapshot_helpers import FOLDED_TABLES, state

import threadkit as tk
from threadkit import errors
from threadkit.core import dagcbor
from threadkit.core.cid import cid_of
from threadkit.core.identity import Identity
from threadkit.db.archive import read_archive
from threadkit.store import car


def _state(db: Any) -> dict[str, dict[bytes, bytes]]:
    """Every folded table's entries under the database's prefix, prefix stripped."""
    return state(db, FOLDED_TABLES)


def _assert_same(a: Any, b: Any) -> None:
    assert a.id == b.id
    assert _state(a) == _state(b)
    assert a.history().equals(b.history())
    for coll in a.list_collections():
        assert b.collection_info(coll.name) == a.collection_info(coll.name)
        assert list(b[coll.name].find()) == list(coll.find())


def _write(db: Any) -> None:
    people = db.new_collection("people", indexes=[{"path": "age"}])
    for i in range(8):
        people.create({"_id": f"p{i}", "age": i, "tags": ["a"] * (i % 3)})
    people.save({"_id": "p1", "age": 41})
    people.delete("p2")
    notes = db.new_collection("notes")
    notes.create(*[{"_id": f"n{i}", "text": "é" * i} for i in range(5)])
    db.delete_collection("notes")


@pytest.mark.parametrize("keys", ["full", "service", "none"])
def test_export_import_gives_identical_state(tmp_path: Path, keys: str) -> None:
    path = tmp_path / "db.car"
    with tk.Peer(memory=True) as a, tk.Peer(memory=True) as b:
        db = a.new_db("shop")
        _write(db)
        summary = db.export(path, keys=keys)
        assert summary.records == sum(db.heads().values()) and summary.logs == 1
        restored = b.import_db(path, key=None if keys == "full" else db.key)
        assert restored.name == "shop" and restored.log_id != db.log_id
        _assert_same(db, restored)
        assert len(b.get_thread(db.id)["logs"]) == 2  # the original's and a new own log


def test_an_archive_holds_no_plaintext(tmp_path: Path) -> None:
    path = tmp_path / "db.car"
    with tk.Peer(memory=True) as a:
        db = a.new_db("secret")
        db.new_collection("c").create({"_id": "x", "word": "plaintext-marker-123"})
        db.export(path)
    data = path.read_bytes()
    assert b"plaintext-marker-123" not in data
    assert db.key.service not in data and db.key.read not in data


def test_several_logs_and_a_second_generation(tmp_path: Path) -> None:
    """A restored database writes in its own log; its export carries both logs on."""
    first, second = tmp_path / "1.car", tmp_path / "2.car"
    with tk.Peer(memory=True) as a, tk.Peer(memory=True) as b, tk.Peer(memory=True) as c:
        db = a.new_db("gen")
        _write(db)
        db.export(first, keys="full")
        mid = b.import_db(first)
        mid["people"].save({"_id": "p0", "age": 99})
        mid["people"].create({"_id": "q", "age": 5})
        assert mid.export(second, keys="full").logs == 2
        last = c.import_db(second, name="again")
        _assert_same(mid, last)
        assert last["people"].find_by_id("p0")["age"] == 99


ops = st.lists(
    st.tuples(
        st.sampled_from(["create", "save", "delete"]),
        st.sampled_from(["a", "b"]),
        st.integers(0, 4),
        st.one_of(st.integers(-5, 5), st.text(max_size=4), st.none()),
    ),
    max_size=25,
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops)
def test_property_any_history_round_trips(tmp_path: Path, steps: list[Any]) -> None:
    path = tmp_path / "p.car"
    with tk.Peer(memory=True) as a, tk.Peer(memory=True) as b:
        db = a.new_db("prop")
        colls = {name: db.new_collection(name) for name in ("a", "b")}
        for op, coll_name, n, value in steps:
            coll, doc_id = colls[coll_name], f"d{n}"
            exists = coll.has(doc_id)
            if op == "create" and not exists:
                coll.create({"_id": doc_id, "v": value})
            elif op == "save" and exists:
                coll.save({"_id": doc_id, "v": value, "w": [value]})
            elif op == "delete" and exists:
                coll.delete(doc_id)
        db.export(path, keys="full")
        _assert_same(db, b.import_db(path))


# ------------------------------------------------------------------ bad archives


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Path, Any]:
    path = tmp_path / "good.car"
    with tk.Peer(memory=True) as a:
        db = a.new_db("good")
        _write(db)
        db.export(path, keys="full")
        return path, db.key


def _threads(peer: Any) -> int:
    return len(peer.repo.list_threads())


def _refused(path: Path, error: type[Exception], match: str | None = None, **kwargs: Any) -> None:
    with tk.Peer(memory=True) as b:
        before = _threads(b)
        with pytest.raises(error, match=match):
            b.import_db(path, **kwargs)
        assert _threads(b) == before and b.list_dbs() == []


def _rewrite(src: Path, dst: Path, edit: Any) -> Path:
    """Re-frame an archive after ``edit(manifest, blocks)`` changed its manifest or blocks."""
    with src.open("rb") as handle:
        _, blocks = car.read_car(handle)
    manifest = dagcbor.decode(blocks[0][1])
    rest = blocks[1:]
    rest = edit(manifest, rest) or rest
    block = dagcbor.encode(manifest)
    with dst.open("wb") as out:
        car.write_car(out, [cid_of(block)], [(cid_of(block), block), *rest])
    return dst


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.5, 0.999])
def test_truncated_archive(exported: tuple[Path, Any], tmp_path: Path, fraction: float) -> None:
    data = exported[0].read_bytes()
    cut = tmp_path / "cut.car"
    cut.write_bytes(data[: int(len(data) * fraction)])
    _refused(cut, errors.InvalidArchive)


def test_corrupt_block(exported: tuple[Path, Any], tmp_path: Path) -> None:
    data = bytearray(exported[0].read_bytes())
    data[len(data) // 2] ^= 0x40
    bad = tmp_path / "bad.car"
    bad.write_bytes(bytes(data))
    _refused(bad, errors.RecordError)


def test_block_bytes_not_hashing_to_their_cid(exported: tuple[Path, Any], tmp_path: Path) -> None:
    with exported[0].open("rb") as handle:
        roots, blocks = car.read_car(handle)
    cid, block = blocks[-1]
    out = io.BytesIO()
    car.write_car(out, roots, [*blocks[:-1], (cid, block[:-1] + bytes([block[-1] ^ 1]))])
    bad = tmp_path / "hash.car"
    bad.write_bytes(out.getvalue())
    _refused(bad, errors.IntegrityError, "hash")


def test_missing_block(exported: tuple[Path, Any], tmp_path: Path) -> None:
    bad = _rewrite(exported[0], tmp_path / "gap.car", lambda m, rest: rest[:-1])
    _refused(bad, errors.InvalidArchive, "missing")


def test_missing_key(tmp_path: Path) -> None:
    path = tmp_path / "nokey.car"
    with tk.Peer(memory=True) as a:
        db = a.new_db("k")
        _write(db)
        db.export(path)  # keys="none" by default
        db.export(tmp_path / "service.car", keys="service")
        key = db.key
    _refused(path, errors.InvalidThreadKey, "holds no thread key")
    _refused(tmp_path / "service.car", errors.InvalidThreadKey, "read key")
    _refused(path, errors.InvalidThreadKey, "read key", key=key.service_only())


def test_another_threads_key_or_id(exported: tuple[Path, Any]) -> None:
    path, key = exported
    other = tk.ThreadKey.new()
    _refused(path, errors.InvalidThreadKey, "not the key stored", key=other)
    with tk.Peer(memory=True) as a:
        db = a.new_db("x")
        db.new_collection("c").create({"_id": "z"})
        nokey = path.parent / "other.car"
        db.export(nokey)
    _refused(nokey, errors.InvalidThreadKey, "does not open", key=key)
    _refused(path, errors.InvalidArchive, "not", thread_id=tk.ThreadID.new())


def test_forged_log_key_fails_the_signature(exported: tuple[Path, Any], tmp_path: Path) -> None:
    def forge(manifest: dict[str, Any], rest: Any) -> None:
        manifest["logs"][0]["pubKey"] = Identity.generate().public.to_bytes()

    _refused(_rewrite(exported[0], tmp_path / "sig.car", forge), errors.SignatureError)


def test_a_log_listed_twice(exported: tuple[Path, Any], tmp_path: Path) -> None:
    def twice(manifest: dict[str, Any], rest: Any) -> None:
        manifest["logs"].append(manifest["logs"][0])

    _refused(_rewrite(exported[0], tmp_path / "twice.car", twice), errors.InvalidArchive, "twice")


def test_reordered_records_break_the_chain(exported: tuple[Path, Any], tmp_path: Path) -> None:
    def swap(manifest: dict[str, Any], rest: Any) -> None:
        records = manifest["logs"][0]["records"]
        records[1], records[2] = records[2], records[1]

    _refused(_rewrite(exported[0], tmp_path / "chain.car", swap), errors.ChainError)


def test_not_a_threadkit_export(tmp_path: Path) -> None:
    block = dagcbor.encode({"hello": "world"})
    path = tmp_path / "other.car"
    with path.open("wb") as out:
        car.write_car(out, [cid_of(block)], [(cid_of(block), block)])
    _refused(path, errors.InvalidArchive, "not a threadkit export")
    _refused(tmp_path / "absent.car", errors.InvalidArchive, "cannot read")


def test_an_archive_over_the_size_limit(exported: tuple[Path, Any]) -> None:
    size = exported[0].stat().st_size
    _refused(exported[0], errors.InvalidArchive, "limit", max_size=size - 1)
    with tk.Peer(memory=True) as b:
        assert b.import_db(exported[0], max_size=size).name == "good"


def test_importing_a_thread_the_repo_holds(exported: tuple[Path, Any]) -> None:
    with tk.Peer(memory=True) as b:
        b.import_db(exported[0])
        with pytest.raises(errors.ThreadExists):
            b.import_db(exported[0])
        assert len(b.list_dbs()) == 1


def test_bad_export_arguments(tmp_path: Path) -> None:
    with tk.Peer(memory=True) as a:
        db = a.new_db("args")
        with pytest.raises(errors.InvalidInput, match="keys must be"):
            db.export(tmp_path / "x.car", keys="read")
        with pytest.raises(errors.InvalidInput, match="directory"):
            db.export(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_read_archive_writes_nothing_and_counts(exported: tuple[Path, Any]) -> None:
    _, name, key, logs, summary = read_archive(exported[0])
    assert name == "good" and key == exported[1] and len(logs) == 1
    assert summary.blocks == 1 + 4 * summary.records


def test_a_replicator_exports_ciphertext_that_restores_with_the_key(tmp_path: Path) -> None:
    from threadkit.store import chain, logs, threads

    first, second = tmp_path / "1.car", tmp_path / "2.car"
    with tk.Peer(memory=True) as a, tk.Peer(memory=True) as r, tk.Peer(memory=True) as b:
        db = a.new_db("kept")
        _write(db)
        db["people"].create({"_id": "m", "word": "plaintext-marker-456"})
        db.export(first, keys="full")
        # r keeps the thread as a replicator does: service key, logs, records, no database
        thread_id, _, key, entries, _ = read_archive(first)
        with r.repo.transaction(write=True) as txn:
            threads.add_thread(txn, r.repo.tables, thread_id, key.service_only(), None)
            for entry in entries:
                logs.add_log(txn, r.repo.tables, thread_id, entry.public, None, ())
                chain.accept(txn, r.repo.tables, thread_id, entry.public.peer_id, entry.records)
        with pytest.raises(errors.InvalidThreadKey, match="only the service key"):
            r.export_thread(str(thread_id), second, keys="full")
        assert not second.exists()
        r.export_thread(thread_id, second, keys="service")
        data = second.read_bytes()
        assert b"plaintext-marker-456" not in data and db.key.read not in data
        _refused(second, errors.InvalidThreadKey, "read key")
        restored = b.import_db(second, key=db.key)
        assert restored.name == "unnamed"
        _assert_same(db, restored)
