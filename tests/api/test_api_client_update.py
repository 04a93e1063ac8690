"""RemoteCollection.update: a partial save through tk.Client, as an embedded collection's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_procs import Daemon

import threadkit as tk
from threadkit import errors

pytestmark = pytest.mark.slow


@pytest.fixture
def client(daemon: Daemon) -> Iterator[tk.Client]:
    with tk.Client(daemon.target, timeout=20) as c:
        yield c


def test_update_through_a_client(client: tk.Client) -> None:
    db = client.new_db("remote-update")
    schema = {"type": "object", "properties": {"_id": {"type": "string"}, "n": {"type": "integer"}}}
    items = db.new_collection("Items", schema=schema)
    items.create({"_id": "a", "n": 1, "tag": "x"})
    with db.listen(collection="Items") as feed:
        items.update("a", {"n": 2}, note="hi")
        event = feed.get(timeout=10)
    doc = items.find_by_id("a")
    assert (doc["n"], doc["tag"], doc["note"]) == (2, "x", "hi")
    assert event.action is tk.Action.SAVE and event.instance_id == "a"
    with pytest.raises(errors.SchemaViolation):
        items.update("a", n="two")
    with pytest.raises(errors.InstanceNotFound):
        items.update("missing", n=3)
    with pytest.raises(errors.InvalidDocument):
        items.update("a", _mod=1)
    assert items.find_by_id("a")["n"] == 2
    filtered = db.new_collection("Filtered", read_filter="delete instance.secret; return instance;")
    filtered.create({"_id": "f", "secret": "kept", "v": 1})
    with pytest.raises(errors.InvalidInput, match="read filter"):
        filtered.update("f", v=2)
    assert filtered.find_by_id("f")["v"] == 1
