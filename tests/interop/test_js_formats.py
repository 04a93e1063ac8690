"""Cross-check threadkit's core formats against ThreadDB's published JavaScript packages.

Two node processes per run, one per direction:

- ``tests/js/generate.cjs`` makes thread ids, thread keys, private keys and signatures with
  ``@textile/threads-id``, ``@textile/security`` and ``@textile/crypto``; threadkit must parse
  them to the same bytes and re-encode them to the same strings (JS → Python).
- ``tests/js/check.cjs`` reads values threadkit made and reports what the JS packages parse
  them to, whether Python's signatures verify there, and JS signatures made with Python's
  private keys, which must verify here (Python → JS).

These checks are required: when node or ``tests/js/node_modules`` is missing the tests fail
and say to run ``npm ci --prefix tests/js``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from multiformats import multibase

import threadkit as tk
from threadkit import errors

pytestmark = pytest.mark.js

JS_DIR = Path(__file__).resolve().parent.parent / "js"
INSTALL_HINT = "run `npm ci --prefix tests/js` (needs node >= 18 on PATH)"
PACKAGES = ("@textile/threads-id", "@textile/crypto", "@textile/security")

KNOWN_ID_BYTES = bytes([1, 0x55]) + bytes(range(32))
KNOWN_ID_STRING = "bafkqaaicamcakbqhbaequcymbuha6earcijrifiwc4mbsgq3dqor4hy"

SIGN_MESSAGES = [b"threadkit cross-check", b"", bytes(range(256))]


class JsUnavailable(Exception):
    """node or the JS packages are missing, or a script failed."""


def _run_node(script: str, stdin: dict[str, Any] | None = None) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        raise JsUnavailable(f"node is not on PATH; install Node.js and {INSTALL_HINT}")
    missing = [p for p in PACKAGES if not (JS_DIR / "node_modules" / p / "package.json").is_file()]
    if missing:
        raise JsUnavailable(f"JS packages {', '.join(missing)} are not installed; {INSTALL_HINT}")
    try:
        proc = subprocess.run(
            [node, str(JS_DIR / script)],
            input=json.dumps(stdin) if stdin is not None else "",
            capture_output=True,
            text=True,
            cwd=JS_DIR,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JsUnavailable(f"running node {script} failed: {exc}; {INSTALL_HINT}") from None
    if proc.returncode != 0:
        raise JsUnavailable(
            f"node {script} exited with {proc.returncode}; {INSTALL_HINT}\n{proc.stderr}"
        )
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _need(value: dict[str, Any] | JsUnavailable) -> dict[str, Any]:
    """Fail (not skip, not error) the calling test when the JS side could not run."""
    if isinstance(value, JsUnavailable):
        pytest.fail(str(value), pytrace=False)
    return value


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def js_made() -> dict[str, Any] | JsUnavailable:
    """Values made by the JS packages (one node process)."""
    try:
        return _run_node("generate.cjs")
    except JsUnavailable as exc:
        return exc


@pytest.fixture(scope="module")
def py_made() -> dict[str, Any]:
    """Values made by threadkit, to hand to the JS side."""
    ids = [
        tk.ThreadID.new(variant, size)
        for variant in (tk.Variant.RAW, tk.Variant.ACCESS_CONTROLLED)
        for size in (32, 16, 32, 16)
    ]
    ids.append(tk.ThreadID.from_bytes(KNOWN_ID_BYTES))
    keys = [tk.ThreadKey.new(), tk.ThreadKey.new(), tk.ThreadKey.new(read=False)]
    keys.append(keys[0].service_only())
    identities = [tk.Identity.generate() for _ in range(3)]
    signatures = []
    for ident in identities:
        for message in SIGN_MESSAGES:
            sig = ident.sign(message)
            signatures.append((ident.public, message, sig, True))
            signatures.append((ident.public, message + b"!", sig, False))  # changed message
            bad = bytes([sig[0] ^ 1]) + sig[1:]
            signatures.append((ident.public, message, bad, False))  # changed signature
    # the signature of another key does not verify
    signatures.append(
        (identities[1].public, SIGN_MESSAGES[0], identities[0].sign(SIGN_MESSAGES[0]), False)
    )

    bad_ids = {
        "version 2": bytes([2, 0x55]) + bytes(32),
        "variant 0x71 (dag-cbor)": bytes([1, 0x71]) + bytes(32),
        "15 random bytes": bytes([1, 0x55]) + bytes(15),
    }
    bad_keys = {"16 bytes": bytes(16), "48 bytes": bytes(48), "96 bytes": bytes(96)}
    return {
        "ids": ids,
        "keys": keys,
        "identities": identities,
        "signatures": signatures,
        "bad_ids": bad_ids,
        "bad_keys": bad_keys,
    }


@pytest.fixture(scope="module")
def js_checked(py_made: dict[str, Any]) -> dict[str, Any] | JsUnavailable:
    """What the JS packages make of threadkit's values (one node process)."""
    ids: list[tk.ThreadID] = py_made["ids"]
    # Each id in base32 (threadkit's form) and in other multibases threadkit can write.
    id_strings = [str(i) for i in ids]
    other_bases = ["base58btc", "base16", "base64url"]
    id_strings += [str(multibase.encode(ids[0].to_bytes(), base)) for base in other_bases]
    payload = {
        "thread_ids": id_strings,
        "thread_id_bytes": [i.to_bytes().hex() for i in ids],
        "thread_keys": [str(k) for k in py_made["keys"]],
        "public_keys": [str(i.public) for i in py_made["identities"]],
        "signatures": [
            {"public": str(pub), "message": msg.hex(), "signature": sig.hex()}
            for pub, msg, sig, _ in py_made["signatures"]
        ],
        "private_keys": [str(i) for i in py_made["identities"]],
        "sign_messages": [m.hex() for m in SIGN_MESSAGES],
        "bad_thread_ids": [str(multibase.encode(b, "base32")) for b in py_made["bad_ids"].values()],
        "bad_thread_keys": [
            str(multibase.encode(b, "base32")) for b in py_made["bad_keys"].values()
        ],
    }
    try:
        out = _run_node("check.cjs", payload)
    except JsUnavailable as exc:
        return exc
    out["_id_strings"] = id_strings
    return out


def _ok(entry: dict[str, Any]) -> dict[str, Any]:
    assert entry["ok"], f"JS rejected a threadkit value: {entry.get('error')}"
    return entry


# --------------------------------------------------------------------------- JS → Python


def test_js_thread_ids_parse_in_python(js_made: dict[str, Any] | JsUnavailable) -> None:
    data = _need(js_made)
    assert len(data["thread_ids"]) == 8
    seen = set()
    for item in data["thread_ids"]:
        tid = tk.ThreadID.from_string(item["string"])
        assert tid.to_bytes().hex() == item["bytes"]
        assert int(tid.variant) == item["variant"]
        assert tid.version == item["version"] == 1
        assert str(tid) == item["string"]
        assert len(tid.to_bytes()) == 2 + item["size"]
        assert tk.ThreadID.from_bytes(bytes.fromhex(item["bytes"])) == tid
        seen.add((tid.variant, item["size"]))
        # The same id written by JS in other multibases parses to the same id.
        for base, text in item["other_bases"].items():
            assert tk.ThreadID.from_string(text) == tid, base
    assert seen == {
        (v, s) for v in (tk.Variant.RAW, tk.Variant.ACCESS_CONTROLLED) for s in (16, 32)
    }


def test_js_thread_keys_parse_in_python(js_made: dict[str, Any] | JsUnavailable) -> None:
    data = _need(js_made)
    assert [k["can_read"] for k in data["thread_keys"]] == [True, True, False, False]
    for item in data["thread_keys"]:
        key = tk.ThreadKey.from_string(item["string"])
        assert key.to_bytes().hex() == item["bytes"]
        assert key.service.hex() == item["service"]
        assert (key.read.hex() if key.read is not None else None) == item["read"]
        assert key.can_read is item["can_read"]
        assert str(key) == item["string"]
        assert tk.ThreadKey.from_bytes(bytes.fromhex(item["bytes"])) == key
    helper = data["key_to_string"]
    assert str(tk.ThreadKey.from_bytes(bytes.fromhex(helper["bytes"]))) == helper["string"]


def test_js_private_keys_load_in_python(js_made: dict[str, Any] | JsUnavailable) -> None:
    data = _need(js_made)
    for item in data["identities"]:
        ident = tk.Identity.from_string(item["private"])
        assert str(ident) == item["private"]
        assert ident.to_bytes().hex() == item["private_bytes"]
        assert ident.seed.hex() == item["seed"]
        assert str(ident.public) == item["public"]
        assert ident.public.to_bytes().hex() == item["public_bytes"]
        assert ident.public.raw.hex() == item["public_raw"]
        assert tk.PublicKey.from_string(item["public"]) == ident.public
        # Ed25519 is deterministic: same key, same message, same signature.
        for sig in item["signatures"]:
            message = bytes.fromhex(sig["message"])
            assert ident.sign(message).hex() == sig["signature"]


def test_js_signatures_verify_in_python(js_made: dict[str, Any] | JsUnavailable) -> None:
    data = _need(js_made)
    for item in data["identities"]:
        pub = tk.PublicKey.from_string(item["public"])
        for sig in item["signatures"]:
            message = bytes.fromhex(sig["message"])
            signature = bytes.fromhex(sig["signature"])
            assert pub.verify(message, signature) is True
            assert pub.verify(message + b"!", signature) is False
            assert pub.verify(message, bytes([signature[0] ^ 1]) + signature[1:]) is False
    # another key's signature does not verify
    first, second = data["identities"][:2]
    sig = first["signatures"][0]
    other = tk.PublicKey.from_string(second["public"])
    assert other.verify(bytes.fromhex(sig["message"]), bytes.fromhex(sig["signature"])) is False


def test_known_vector_js_side(js_made: dict[str, Any] | JsUnavailable) -> None:
    data = _need(js_made)
    assert data["known_vector"] == {"bytes": KNOWN_ID_BYTES.hex(), "string": KNOWN_ID_STRING}
    tid = tk.ThreadID.from_string(KNOWN_ID_STRING)
    assert tid.to_bytes() == KNOWN_ID_BYTES
    assert tid.variant is tk.Variant.RAW


# --------------------------------------------------------------------------- Python → JS


def test_python_thread_ids_parse_in_js(
    py_made: dict[str, Any], js_checked: dict[str, Any] | JsUnavailable
) -> None:
    out = _need(js_checked)
    ids: list[tk.ThreadID] = py_made["ids"]
    strings = out["_id_strings"]
    assert len(out["thread_ids"]) == len(strings)
    for text, entry in zip(strings, out["thread_ids"], strict=True):
        js = _ok(entry)
        tid = tk.ThreadID.from_string(text)
        assert js["bytes"] == tid.to_bytes().hex(), text
        assert js["variant"] == int(tid.variant)
        assert js["version"] == tid.version == 1
        assert js["string"] == str(tid)  # JS re-encodes in base32, as threadkit does
    for tid, entry in zip(ids, out["thread_id_bytes"], strict=True):
        js = _ok(entry)
        assert js["bytes"] == tid.to_bytes().hex()
        assert js["string"] == str(tid)
        assert js["variant"] == int(tid.variant)


def test_known_vector_python_side(
    py_made: dict[str, Any], js_checked: dict[str, Any] | JsUnavailable
) -> None:
    known = tk.ThreadID.from_bytes(KNOWN_ID_BYTES)
    assert str(known) == KNOWN_ID_STRING
    assert known.variant is tk.Variant.RAW
    out = _need(js_checked)
    index = py_made["ids"].index(known)
    assert _ok(out["thread_id_bytes"][index])["string"] == KNOWN_ID_STRING
    assert _ok(out["thread_ids"][index])["bytes"] == KNOWN_ID_BYTES.hex()


def test_python_thread_keys_parse_in_js(
    py_made: dict[str, Any], js_checked: dict[str, Any] | JsUnavailable
) -> None:
    out = _need(js_checked)
    keys: list[tk.ThreadKey] = py_made["keys"]
    assert [k.can_read for k in keys] == [True, True, False, False]
    for key, entry in zip(keys, out["thread_keys"], strict=True):
        js = _ok(entry)
        assert js["bytes"] == key.to_bytes().hex()
        assert js["service"] == key.service.hex()
        assert js["read"] == (key.read.hex() if key.read is not None else None)
        assert js["can_read"] is key.can_read
        assert js["string"] == str(key)


def test_python_keys_and_signatures_in_js(
    py_made: dict[str, Any], js_checked: dict[str, Any] | JsUnavailable
) -> None:
    out = _need(js_checked)
    identities: list[tk.Identity] = py_made["identities"]
    for ident, entry in zip(identities, out["public_keys"], strict=True):
        js = _ok(entry)
        assert js["bytes"] == ident.public.to_bytes().hex()
        assert js["raw"] == ident.public.raw.hex()
        assert js["string"] == str(ident.public)
    for (_, message, _, expected), entry in zip(
        py_made["signatures"], out["signatures"], strict=True
    ):
        assert _ok(entry)["valid"] is expected, (message, expected)


def test_python_private_keys_in_js(
    py_made: dict[str, Any], js_checked: dict[str, Any] | JsUnavailable
) -> None:
    out = _need(js_checked)
    identities: list[tk.Identity] = py_made["identities"]
    for ident, entry in zip(identities, out["private_keys"], strict=True):
        js = _ok(entry)
        assert js["seed"] == ident.seed.hex()
        assert js["bytes"] == ident.to_bytes().hex()
        assert js["string"] == str(ident)
        assert js["public"] == str(ident.public)
        assert js["public_bytes"] == ident.public.to_bytes().hex()
        assert [bytes.fromhex(s["message"]) for s in js["signatures"]] == SIGN_MESSAGES
        for sig in js["signatures"]:
            message = bytes.fromhex(sig["message"])
            signature = bytes.fromhex(sig["signature"])
            # a JS signature made with Python's private key verifies in Python ...
            assert ident.public.verify(message, signature) is True
            assert tk.PublicKey.from_string(js["public"]).verify(message, signature) is True
            assert ident.public.verify(message + b"!", signature) is False
            # ... and is byte-identical to Python's (Ed25519 is deterministic)
            assert signature == ident.sign(message)


def test_invalid_values_rejected_on_both_sides(
    py_made: dict[str, Any], js_checked: dict[str, Any] | JsUnavailable
) -> None:
    out = _need(js_checked)
    for (what, data), entry in zip(py_made["bad_ids"].items(), out["bad_thread_ids"], strict=True):
        assert not entry["ok"], f"JS accepted a thread id with {what}"
        with pytest.raises(errors.InvalidThreadID):
            tk.ThreadID.from_bytes(data)
        with pytest.raises(errors.InvalidThreadID):
            tk.ThreadID.from_string(str(multibase.encode(data, "base32")))
    for (what, data), entry in zip(
        py_made["bad_keys"].items(), out["bad_thread_keys"], strict=True
    ):
        assert not entry["ok"], f"JS accepted a thread key of {what}"
        with pytest.raises(errors.InvalidThreadKey):
            tk.ThreadKey.from_bytes(data)
