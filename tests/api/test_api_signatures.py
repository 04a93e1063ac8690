"""tk.Client's remote classes keep the embedded classes' signatures: drift fails here."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from threadkit.api.client import RemoteCollection, RemoteDatabase, RemoteReadTxn, RemoteWriteTxn
from threadkit.db.txn import ReadTxn, WriteTxn
from threadkit.views import Collection, Database

PAIRS = [
    (Collection, RemoteCollection),
    (Database, RemoteDatabase),
    (ReadTxn, RemoteReadTxn),
    (WriteTxn, RemoteWriteTxn),
]

NOT_REMOTE = {
    # the store's own plumbing, which a daemon's API has no call for (the source
    # protocol the embedded views read through, threadkit/frames/source.py, among it)
    Collection: {
        "config",
        "db_reader",
        "raw_batches",
        "raw_documents",
        "raw_documents_by_id",
        "stored_documents",
        "visible",
        "visible_documents",
    },
    Database: {
        "apply_records",
        "apply_records_now",
        "close",
        "collection_class",
        "commit",
        "on_record",
        "read_txn",  # a snapshot over every collection; the API's transactions are per collection
        "sync",
        "timeline",
    }
    # rejected records are read from the record log, which the daemon's API does not serve
    | {"rejected"}
    # where the embedded peer's network fetches records for a snapshot check; the daemon
    # runs those checks itself
    | {"history_source"}
    # writes an archive where the database lives, a path a remote caller cannot name
    # safely (docs/daemon.md, "Life cycle")
    | {"export"},
    # a read transaction's writes only raise ReadOnlyTransaction; the remote one has none
    ReadTxn: {"create", "delete", "save", "verify"},
    # the API's WriteTransaction commits on the client's half-close and has no partial save
    WriteTxn: {"commit", "update"},
}
"""Public methods of an embedded class its remote twin lacks, on purpose."""

DUNDERS = ("__len__", "__iter__", "__contains__", "__getitem__", "__enter__", "__exit__")


def _public(cls: type) -> list[str]:
    return sorted(n for n in dir(cls) if not n.startswith("_") or n in DUNDERS)


def _shape(fn: Any) -> list[tuple[str, str, Any]]:
    """Parameter names, kinds and defaults (annotations may differ: a remote call also
    takes a ``tk.Identity``)."""
    params = inspect.signature(fn).parameters.values()
    return [(p.name, p.kind.name, p.default) for p in params]


@pytest.mark.parametrize(("embedded", "remote"), PAIRS, ids=lambda c: c.__name__)
def test_remote_methods_match_the_embedded_ones(embedded: type, remote: type) -> None:
    missing, different = [], []
    for name in _public(embedded):
        if name in NOT_REMOTE.get(embedded, set()):
            continue
        if not hasattr(remote, name):
            missing.append(name)
            continue
        mine, theirs = getattr(embedded, name), getattr(remote, name)
        if isinstance(mine, property) or not callable(mine):
            assert isinstance(getattr(remote, name), property) or not callable(theirs), name
            continue
        if name in ("__enter__", "__exit__"):
            continue  # the context protocol, not an API method
        if _shape(mine) != _shape(theirs):
            different.append((name, _shape(mine), _shape(theirs)))
    assert missing == [], f"{remote.__name__} lacks {missing}"
    assert different == [], different


@pytest.mark.parametrize(("embedded", "remote"), PAIRS, ids=lambda c: c.__name__)
def test_the_exceptions_are_still_exceptions(embedded: type, remote: type) -> None:
    """An entry of NOT_REMOTE that the remote class gained (or the embedded one lost) goes."""
    for name in NOT_REMOTE.get(embedded, set()):
        assert hasattr(embedded, name), f"{embedded.__name__}.{name} is gone"
        assert not hasattr(remote, name), f"{remote.__name__}.{name} exists: compare it"


def test_identity_is_taken_wherever_the_embedded_collection_takes_it() -> None:
    takes = [
        name
        for name in _public(Collection)
        if callable(getattr(Collection, name))
        and name not in NOT_REMOTE[Collection]
        and "identity" in inspect.signature(getattr(Collection, name)).parameters
    ]
    assert len(takes) >= 16  # writes, reads, transactions, frames, at and diff
    for name in takes:
        assert "identity" in inspect.signature(getattr(RemoteCollection, name)).parameters, name
