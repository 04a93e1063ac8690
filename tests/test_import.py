"""``import threadkit`` is cheap: fast, no heavy dependencies, public names loaded lazily."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import threadkit

HEAVY = (
    "pandas",
    "pyarrow",
    "libp2p",
    "networkx",
    "matplotlib",
    "lmdb",
    "cryptography",
    "multiformats",
    "duckdb",
    "polars",
)
BUDGET = 0.3  # seconds

_CHILD = textwrap.dedent(
    """
    import json, sys, time
    t0 = time.perf_counter()
    import threadkit
    elapsed = time.perf_counter() - t0
    heavy = sorted(
        m for m in sys.modules
        if m.split(".")[0] in {heavy!r}
    )
    eager_core = sorted(m for m in sys.modules if m.startswith("threadkit.core."))
    print(json.dumps({{"elapsed": elapsed, "heavy": heavy, "eager_core": eager_core}}))
    """
)


def _child(code: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_is_fast_and_light() -> None:
    code = _CHILD.format(heavy=set(HEAVY))
    runs = [_child(code) for _ in range(3)]
    best = min(float(r["elapsed"]) for r in runs)  # type: ignore[arg-type]
    assert best < BUDGET, f"import threadkit took {best:.3f}s (best of 3), budget {BUDGET}s"
    for r in runs:
        assert r["heavy"] == [], f"import threadkit pulled in {r['heavy']}"
        assert r["eager_core"] == [], f"import threadkit loaded {r['eager_core']} eagerly"


def test_public_names_load_lazily() -> None:
    code = textwrap.dedent(
        """
        import json, sys
        import threadkit
        before = "threadkit.core.ids" in sys.modules
        tid_cls = threadkit.ThreadID
        after = "threadkit.core.ids" in sys.modules
        tid = tid_cls.new()
        ok = tid_cls.from_string(str(tid)) == tid
        same = threadkit.ThreadID is tid_cls
        print(json.dumps({"before": before, "after": after, "ok": ok, "same": same,
                          "name": tid_cls.__module__}))
        """
    )
    result = _child(code)
    assert result == {
        "before": False,
        "after": True,
        "ok": True,
        "same": True,
        "name": "threadkit.core.ids",
    }


@pytest.mark.parametrize("name", threadkit.__all__)
def test_all_names_resolve(name: str) -> None:
    assert getattr(threadkit, name) is not None


def test_all_names_in_dir() -> None:
    assert set(threadkit.__all__) <= set(dir(threadkit))


def test_lazy_names_are_the_real_objects() -> None:
    from threadkit.core import clock, identity, ids, keys

    assert threadkit.ThreadID is ids.ThreadID
    assert threadkit.Variant is ids.Variant
    assert threadkit.ThreadKey is keys.ThreadKey
    assert threadkit.Identity is identity.Identity
    assert threadkit.PublicKey is identity.PublicKey
    assert threadkit.HLC is clock.HLC
    assert threadkit.Timestamp is clock.Timestamp
    assert threadkit.errors.__name__ == "threadkit.errors"
    assert isinstance(threadkit.__version__, str)


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        threadkit.no_such_name  # noqa: B018
    assert not hasattr(threadkit, "also_missing")


_FIRST_CALLS = textwrap.dedent(
    """
    import json, sys
    import threadkit as tk
    late = ("jsonschema", "referencing", "rfc3987_syntax", "lark", "numpy", "pandas", "pyarrow")
    def loaded():
        return sorted(m for m in late if m in sys.modules)
    seen = {}
    with tk.Peer(memory=True, network=False) as peer:
        seen["peer"] = loaded()
        db = peer.new_db("notes")
        notes = db.new_collection("Notes", indexes=["n"])
        notes.create([{"n": i} for i in range(10)])
        hits = notes.find(tk.where("n").gt(4))
        seen["find"] = loaded()
        seen["hits"] = len(hits)
    print(json.dumps(seen))
    """
)


def test_first_calls_without_a_schema_import_no_schema_or_frame_library() -> None:
    """A peer, a schema-less collection, writes and a find load neither jsonschema nor numpy."""
    result = _child(_FIRST_CALLS)
    assert result["peer"] == []
    assert result["find"] == []
    assert result["hits"] == 5


_SCHEMA_FRESH = textwrap.dedent(
    """
    import json
    import threadkit as tk
    out = []
    with tk.Peer(memory=True, network=False) as peer:
        db = peer.new_db("people")
        for bad in ({"type": "objekt"}, {"properties": {"a": {"pattern": "("}}}):
            try:
                db.new_collection("Bad", schema=bad)
            except tk.errors.InvalidSchema as err:
                out.append(str(err))
        people = db.new_collection("People", schema={
            "properties": {"age": {"type": "integer", "minimum": 0},
                           "tags": {"type": "array", "items": {"type": "string"}}},
            "required": ["age"],
        })
        for doc in ({"age": -1}, {"tags": ["a"]}, {"age": 1, "tags": [1]}):
            try:
                people.create(doc)
            except tk.errors.SchemaViolation as err:
                out.append(str(err))
        people.create({"age": 3, "tags": ["x"]})
        out.append(len(people.find()))
    print(json.dumps(out))
    """
)


def test_schema_checks_in_a_fresh_process() -> None:
    """The first schema'd collection of a process imports jsonschema and gives its messages."""
    assert _child(_SCHEMA_FRESH) == [
        "not a valid JSON Schema at $.type: 'objekt' is not valid under any of the given schemas",
        "not a valid JSON Schema at $.properties.a.pattern: '(' is not a 'regex'",
        "document does not match the schema at $.age: -1 is less than the minimum of 0",
        "document does not match the schema at $: 'age' is a required property",
        "document does not match the schema at $.tags[0]: 1 is not of type 'string'",
        1,
    ]
