"""Records: the four-block layout, what each key holder can check, and tamper detection."""

from __future__ import annotations

import functools
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from threadkit.core import dagcbor, records
from threadkit.core.cid import cid_of
from threadkit.core.dagcbor import Link
from threadkit.core.identity import Identity, PublicKey
from threadkit.core.keys import ThreadKey
from threadkit.core.records import (
    MAX_BODY_SIZE,
    MAX_NODE_SIZE,
    Record,
    RecordBlocks,
    _event_node,
    _record_node,
    check_link,
    create_record,
    open_record,
    signed_bytes,
)
from threadkit.core.symmetric import OVERHEAD, SymmetricKey
from threadkit.errors import (
    ChainError,
    DecryptionError,
    IntegrityError,
    InvalidThreadKey,
    MalformedRecord,
    OversizedRecord,
    RecordError,
    SignatureError,
)

LOG_KEY = Identity(bytes(range(32)))
WRITER = Identity(bytes(range(1, 33)))
KEY = ThreadKey.from_bytes(bytes(range(100, 164)))
BODY = dagcbor.encode({"_id": "doc-1", "name": "Ada", "n": [1, 2, 3]})
BLOCK_NAMES = ("record", "event", "header", "body")
TRUNCATION_ERRORS = (MalformedRecord, DecryptionError, IntegrityError)


@functools.cache
def _chain() -> tuple[Record, Record]:
    first = create_record(BODY, log_key=LOG_KEY, key=KEY)
    second = create_record(dagcbor.encode({"v": 2}), log_key=LOG_KEY, key=KEY, prev=first.cid)
    return first, second


def _replace(blocks: RecordBlocks, **changes: bytes) -> RecordBlocks:
    fields = {name: getattr(blocks, name) for name in BLOCK_NAMES}
    fields.update(changes)
    return RecordBlocks(**fields)


def _open(rec: Record | RecordBlocks, **kwargs: Any) -> Record:
    blocks = rec.blocks if isinstance(rec, Record) else rec
    kwargs.setdefault("service_key", KEY)
    kwargs.setdefault("log_key", LOG_KEY.public)
    return open_record(blocks, **kwargs)


def _record_node_of(rec: Record, key: ThreadKey = KEY) -> dict[str, Any]:
    node = dagcbor.decode(key.service_key.decrypt(cbor2.loads(rec.blocks.record)))
    assert isinstance(node, dict)
    return node


def _rebuild(rec: Record, node: dict[str, Any], key: ThreadKey = KEY) -> RecordBlocks:
    """The record block re-made from ``node``, encrypted under the right service key."""
    sealed = key.service_key.encrypt(dagcbor.encode(node))
    return _replace(rec.blocks, record=dagcbor.encode(sealed))


# -- round trips ------------------------------------------------------------------------


def test_first_record_round_trip() -> None:
    rec = create_record(BODY, log_key=LOG_KEY, key=KEY)
    assert rec.prev is None
    assert rec.author == LOG_KEY.public
    opened = _open(rec, cid=rec.cid)
    assert opened == rec
    assert opened.prev is None
    assert opened.read_body(KEY) == BODY
    assert opened.decode_body(KEY) == dagcbor.decode(BODY)
    check_link(opened, None)


def test_chained_records_round_trip() -> None:
    prev = None
    bodies = [dagcbor.encode({"i": i}) for i in range(5)]
    for body in bodies:
        rec = create_record(body, log_key=LOG_KEY, key=KEY, prev=prev)
        opened = _open(rec, cid=rec.cid)
        assert opened.prev == prev
        check_link(opened, prev)
        assert opened.read_body(KEY) == body
        prev = rec.cid


def test_author_other_than_log_key() -> None:
    rec = create_record(BODY, log_key=LOG_KEY, key=KEY, author=WRITER.public)
    opened = _open(rec)
    assert opened.author == WRITER.public
    assert opened.read_body(KEY) == BODY


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=2048), st.booleans())
def test_any_body_round_trips(body: bytes, chained: bool) -> None:
    prev = _chain()[0].cid if chained else None
    rec = create_record(body, log_key=LOG_KEY, key=KEY, prev=prev)
    opened = _open(rec, cid=rec.cid)
    assert opened.read_body(KEY) == body
    assert opened.prev == prev


def test_body_as_bytearray_and_memoryview() -> None:
    for body in (bytearray(BODY), memoryview(BODY)):
        rec = create_record(body, log_key=LOG_KEY, key=KEY)  # type: ignore[arg-type]
        assert _open(rec).read_body(KEY) == BODY


@pytest.mark.parametrize("body", [None, "text", {"a": 1}, 5])
def test_body_must_be_bytes(body: object) -> None:
    with pytest.raises(MalformedRecord):
        create_record(body, log_key=LOG_KEY, key=KEY)  # type: ignore[arg-type]


def test_records_are_randomised() -> None:
    a = create_record(BODY, log_key=LOG_KEY, key=KEY)
    b = create_record(BODY, log_key=LOG_KEY, key=KEY)
    assert a.cid != b.cid
    assert a.body_cid != b.body_cid


def test_cids_name_the_blocks() -> None:
    rec = _chain()[1]
    assert rec.cid == cid_of(rec.blocks.record)
    assert rec.event_cid == cid_of(rec.blocks.event)
    assert rec.header_cid == cid_of(rec.blocks.header)
    assert rec.body_cid == cid_of(rec.blocks.body)
    event = dagcbor.decode(rec.blocks.event)
    assert event == {"body": rec.body_cid, "header": rec.header_cid}
    assert isinstance(event["body"], Link)


def test_record_node_shape() -> None:
    first, second = _chain()
    node = _record_node_of(first)
    assert set(node) == {"sig", "block", "pubKey"}
    assert node["block"] == first.event_cid
    assert node["pubKey"] == LOG_KEY.public.to_bytes()
    assert node["sig"] == first.sig
    node = _record_node_of(second)
    assert set(node) == {"sig", "prev", "block", "pubKey"}
    assert isinstance(node["prev"], Link)
    assert node["prev"] == first.cid


def test_signature_covers_event_prev_and_author() -> None:
    first, second = _chain()
    for rec in (first, second):
        msg = signed_bytes(rec.event_cid, rec.prev, rec.author)
        assert LOG_KEY.public.verify(msg, rec.sig)
        assert rec.event_cid in msg
        assert rec.author.to_bytes() in msg
        if rec.prev:
            assert rec.prev in msg


def test_blocks_are_cbor_byte_strings() -> None:
    rec = _chain()[0]
    for name in ("record", "header", "body"):
        value = cbor2.loads(getattr(rec.blocks, name))
        assert isinstance(value, bytes)
    assert len(cbor2.loads(rec.blocks.body)) == len(BODY) + OVERHEAD
    assert rec.blocks.total_size() == sum(len(getattr(rec.blocks, n)) for n in BLOCK_NAMES)


def test_repr() -> None:
    rec = _chain()[1]
    text = repr(rec)
    assert "bafyrei" in text
    assert LOG_KEY.public.peer_id in text


# -- fixed-template encoders ------------------------------------------------------------

cids = st.binary(max_size=8).map(cid_of)


@settings(max_examples=300, deadline=None)
@given(cids, cids)
def test_event_node_template(body_cid: bytes, header_cid: bytes) -> None:
    expected = dagcbor.encode({"body": Link(body_cid), "header": Link(header_cid)})
    assert _event_node(body_cid, header_cid) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.binary(min_size=64, max_size=64), st.none() | cids, cids, st.binary(min_size=32, max_size=32)
)
def test_record_node_template(sig: bytes, prev: bytes | None, event_cid: bytes, raw: bytes) -> None:
    pubkey = b"\x08\x01\x12\x20" + raw
    node: dict[str, Any] = {"sig": sig, "block": Link(event_cid), "pubKey": pubkey}
    if prev is not None:
        node["prev"] = Link(prev)
    assert _record_node(sig, prev, event_cid, pubkey) == dagcbor.encode(node)


def test_created_nodes_are_canonical_dag_cbor() -> None:
    for rec in _chain():
        assert dagcbor.encode(dagcbor.decode(rec.blocks.event)) == rec.blocks.event
        plain = KEY.service_key.decrypt(cbor2.loads(rec.blocks.record))
        assert dagcbor.encode(dagcbor.decode(plain)) == plain


# -- who can read what ------------------------------------------------------------------


def test_service_only_key_verifies_but_cannot_read() -> None:
    first, second = _chain()
    service = KEY.service_only()
    for rec in (first, second):
        opened = _open(rec, service_key=service, cid=rec.cid)
        assert opened.prev == rec.prev
        assert opened.author == LOG_KEY.public
        with pytest.raises(InvalidThreadKey):
            opened.read_body(service)
        with pytest.raises(InvalidThreadKey):
            opened.decode_body(service)


def test_service_key_as_symmetric_key_or_bytes() -> None:
    rec = _chain()[1]
    assert _open(rec, service_key=KEY.service_key) == rec
    assert _open(rec, service_key=KEY.service) == rec


def test_read_key_as_symmetric_key_or_bytes() -> None:
    rec = _chain()[0]
    assert rec.read_body(KEY.read_key) == BODY  # type: ignore[arg-type]
    assert rec.read_body(KEY.read) == BODY  # type: ignore[arg-type]


def test_create_needs_read_key() -> None:
    with pytest.raises(InvalidThreadKey):
        create_record(BODY, log_key=LOG_KEY, key=KEY.service_only())


def test_wrong_read_key() -> None:
    rec = _chain()[0]
    other = ThreadKey(KEY.service_key, SymmetricKey.new())
    opened = _open(rec, service_key=other)  # same service key: opens
    with pytest.raises(DecryptionError):
        opened.read_body(other)
    with pytest.raises(DecryptionError):
        opened.read_body(KEY.service_key)  # the service key is not the read key


def test_wrong_service_key() -> None:
    rec = _chain()[1]
    with pytest.raises(DecryptionError):
        _open(rec, service_key=ThreadKey.new())
    with pytest.raises(DecryptionError):
        _open(rec, service_key=KEY.read_key)  # the read key is not the service key


def test_wrong_log_key() -> None:
    for rec in _chain():
        with pytest.raises(SignatureError):
            _open(rec, log_key=WRITER.public)


def test_verify_signature_false_skips_only_the_signature() -> None:
    rec = _chain()[1]
    assert _open(rec, log_key=WRITER.public, verify_signature=False) == rec
    with pytest.raises(DecryptionError):
        _open(rec, service_key=ThreadKey.new(), verify_signature=False)


# -- forged and altered signatures ------------------------------------------------------


@pytest.mark.parametrize("chained", [False, True])
def test_resigned_by_another_key(chained: bool) -> None:
    prev = _chain()[0].cid if chained else None
    forged = create_record(BODY, log_key=WRITER, key=KEY, prev=prev, author=LOG_KEY.public)
    with pytest.raises(SignatureError):
        _open(forged)
    assert _open(forged, log_key=WRITER.public).author == LOG_KEY.public


@pytest.mark.parametrize("index", [0, 1], ids=["first", "chained"])
def test_rebuilt_record_unchanged_still_opens(index: int) -> None:
    """Control for the tamper tests below: the rebuild itself is faithful."""
    rec = _chain()[index]
    blocks = _rebuild(rec, _record_node_of(rec))
    opened = _open(blocks)
    assert (opened.event_cid, opened.prev, opened.author, opened.sig) == (
        rec.event_cid,
        rec.prev,
        rec.author,
        rec.sig,
    )


@pytest.mark.parametrize("index", [0, 1], ids=["first", "chained"])
def test_author_swap(index: int) -> None:
    """The signature covers pubKey on every record, the first one included."""
    rec = _chain()[index]
    node = _record_node_of(rec)
    node["pubKey"] = WRITER.public.to_bytes()
    with pytest.raises(SignatureError):
        _open(_rebuild(rec, node))


@pytest.mark.parametrize("index", [0, 1], ids=["first", "chained"])
def test_missing_sig(index: int) -> None:
    rec = _chain()[index]
    node = _record_node_of(rec)
    del node["sig"]
    with pytest.raises(SignatureError):
        _open(_rebuild(rec, node))


@pytest.mark.parametrize("sig", [b"", bytes(63), bytes(65), "text", 5, None])
def test_malformed_sig(sig: object) -> None:
    rec = _chain()[1]
    node = _record_node_of(rec)
    node["sig"] = sig
    with pytest.raises(SignatureError):
        _open(_rebuild(rec, node))


def test_zero_sig() -> None:
    rec = _chain()[1]
    node = _record_node_of(rec)
    node["sig"] = bytes(64)
    with pytest.raises(SignatureError):
        _open(_rebuild(rec, node))


def test_prev_removed() -> None:
    rec = _chain()[1]
    node = _record_node_of(rec)
    del node["prev"]
    with pytest.raises(SignatureError):
        _open(_rebuild(rec, node))


def test_prev_added_to_first_record() -> None:
    rec = _chain()[0]
    node = _record_node_of(rec)
    node["prev"] = Link(_chain()[1].cid)
    with pytest.raises(SignatureError):
        _open(_rebuild(rec, node))


def test_prev_replaced() -> None:
    rec = _chain()[1]
    node = _record_node_of(rec)
    node["prev"] = Link(cid_of(b"elsewhere"))
    with pytest.raises(SignatureError):
        _open(_rebuild(rec, node))


def test_event_link_replaced() -> None:
    first, second = _chain()
    node = _record_node_of(second)
    node["block"] = Link(first.event_cid)
    blocks = _rebuild(second, node)
    with pytest.raises(SignatureError):
        _open(_replace(blocks, event=first.blocks.event))


# -- malformed record nodes -------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"extra": 1},
        {"block": None},
        {"block": b"\x00" * 36},  # bytes, not a link
        {"block": Link(b"\x01\x55\x12\x20" + bytes(32))},  # raw codec CID
        {"prev": None},
        {"prev": b"\x01\x71\x12\x20" + bytes(32)},
        {"pubKey": None},
        {"pubKey": bytes(36)},
        {"pubKey": b"\x08\x01\x12\x20" + bytes(31)},
        {"pubKey": "text"},
    ],
    ids=repr,
)
def test_malformed_record_node(change: dict[str, Any]) -> None:
    rec = _chain()[1]
    node = {**_record_node_of(rec), **change}
    with pytest.raises(RecordError):
        _open(_rebuild(rec, node))


@pytest.mark.parametrize(
    "node", [[], "text", 5, {}, {"sig": bytes(64)}], ids=["list", "str", "int", "empty", "sig"]
)
def test_record_node_wrong_shape(node: Any) -> None:
    rec = _chain()[0]
    sealed = KEY.service_key.encrypt(dagcbor.encode(node))
    with pytest.raises((MalformedRecord, SignatureError)):
        _open(_replace(rec.blocks, record=dagcbor.encode(sealed)))


def test_record_node_not_cbor() -> None:
    rec = _chain()[0]
    sealed = KEY.service_key.encrypt(b"\xff\xfe not cbor")
    with pytest.raises(MalformedRecord):
        _open(_replace(rec.blocks, record=dagcbor.encode(sealed)))


@pytest.mark.parametrize("block", [cbor2.dumps("text"), cbor2.dumps(5), b"\xff"])
def test_record_block_not_a_byte_string(block: bytes) -> None:
    rec = _chain()[0]
    with pytest.raises(MalformedRecord):
        _open(_replace(rec.blocks, record=block))


def test_header_node_wrong_shape() -> None:
    """A header that decrypts but is not {key: 32 bytes} (only its writer could make one)."""
    rec = _chain()[0]
    for header in ({"key": bytes(16)}, {"nokey": bytes(32)}, [bytes(32)]):
        header_block = cbor2.dumps(KEY.read_key.encrypt(dagcbor.encode(header)))
        blocks = _replace(rec.blocks, header=header_block)
        opened = Record(
            rec.cid,
            None,
            rec.event_cid,
            cid_of(header_block),
            rec.body_cid,
            rec.author,
            rec.sig,
            blocks,
        )
        with pytest.raises(MalformedRecord):
            opened.read_body(KEY)


# -- chain ------------------------------------------------------------------------------


def test_check_link() -> None:
    first, second = _chain()
    check_link(first, None)
    check_link(second, first.cid)
    with pytest.raises(ChainError):
        check_link(first, second.cid)
    with pytest.raises(ChainError):
        check_link(second, None)
    with pytest.raises(ChainError):
        check_link(second, second.cid)
    with pytest.raises(ChainError):
        check_link(second, cid_of(b"other"))


@pytest.mark.parametrize("prev", [b"", b"short", cid_of(b"x")[:-1], "bafy", bytes(36)])
def test_create_with_bad_prev(prev: object) -> None:
    with pytest.raises(MalformedRecord):
        create_record(BODY, log_key=LOG_KEY, key=KEY, prev=prev)  # type: ignore[arg-type]


# -- sizes ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["record", "event", "header"])
def test_oversized_node(name: str) -> None:
    rec = _chain()[0]
    with pytest.raises(OversizedRecord):
        _open(_replace(rec.blocks, **{name: bytes(MAX_NODE_SIZE + 1)}))
    # the limit is inclusive of MAX_NODE_SIZE itself (then it fails later, not as oversized)
    with pytest.raises(RecordError) as info:
        _open(_replace(rec.blocks, **{name: bytes(MAX_NODE_SIZE)}))
    assert not isinstance(info.value, OversizedRecord)


def test_oversized_body_with_limit() -> None:
    rec = _chain()[0]
    size = len(rec.blocks.body)
    with pytest.raises(OversizedRecord):
        _open(rec, max_body_size=size - 1)
    assert _open(rec, max_body_size=size) == rec


def test_oversized_body_default_limit() -> None:
    rec = _chain()[0]
    with pytest.raises(OversizedRecord):
        _open(_replace(rec.blocks, body=bytes(MAX_BODY_SIZE + 1)))


def test_create_oversized_body() -> None:
    with pytest.raises(OversizedRecord):
        create_record(bytes(MAX_BODY_SIZE), log_key=LOG_KEY, key=KEY)


def test_oversized_is_malformed() -> None:
    assert issubclass(OversizedRecord, MalformedRecord)


# -- truncation, wrong cid, wrong types -------------------------------------------------


@pytest.mark.parametrize("name", BLOCK_NAMES)
def test_every_truncation(name: str) -> None:
    for index in (0, 1):
        rec = _chain()[index]
        block = getattr(rec.blocks, name)
        for cut in range(len(block)):
            blocks = _replace(rec.blocks, **{name: block[:cut]})
            with pytest.raises(TRUNCATION_ERRORS):
                _open(blocks).read_body(KEY)
            with pytest.raises(TRUNCATION_ERRORS):
                _open(blocks, cid=rec.cid).read_body(KEY)


def test_wrong_cid() -> None:
    first, second = _chain()
    with pytest.raises(IntegrityError):
        _open(second, cid=first.cid)
    with pytest.raises(IntegrityError):
        _open(second, cid=second.event_cid)
    with pytest.raises(IntegrityError):
        _open(second, cid=b"")


def test_swapped_blocks_between_records() -> None:
    first, second = _chain()
    for name in ("event", "header", "body"):
        with pytest.raises(IntegrityError):
            _open(_replace(second.blocks, **{name: getattr(first.blocks, name)}))


@pytest.mark.parametrize("name", BLOCK_NAMES)
@pytest.mark.parametrize("value", [None, "text", bytearray(b"abc")])
def test_block_not_bytes(name: str, value: object) -> None:
    rec = _chain()[0]
    with pytest.raises(MalformedRecord):
        _open(_replace(rec.blocks, **{name: value}))  # type: ignore[arg-type]


def test_not_record_blocks() -> None:
    rec = _chain()[0]
    with pytest.raises(MalformedRecord):
        open_record(  # type: ignore[arg-type]
            tuple(getattr(rec.blocks, n) for n in BLOCK_NAMES),
            service_key=KEY,
            log_key=LOG_KEY.public,
        )


# -- tamper detection (property) --------------------------------------------------------


def _tamper(rec: Record, name: str, index: int, mask: int) -> RecordBlocks:
    block = bytearray(getattr(rec.blocks, name))
    block[index] ^= mask
    return _replace(rec.blocks, **{name: bytes(block)})


def _assert_detected(rec: Record, blocks: RecordBlocks) -> None:
    try:
        opened = open_record(blocks, service_key=KEY, log_key=LOG_KEY.public, cid=rec.cid)
        body = opened.read_body(KEY)
    except RecordError:
        return
    raise AssertionError(f"tampered record opened and read as {body!r}")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([0, 1]), st.sampled_from(BLOCK_NAMES), st.data())
def test_any_bit_flip_is_detected(index: int, name: str, data: st.DataObject) -> None:
    rec = _chain()[index]
    size = len(getattr(rec.blocks, name))
    bit = data.draw(st.integers(0, size * 8 - 1), label="bit")
    _assert_detected(rec, _tamper(rec, name, bit // 8, 1 << (bit % 8)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([0, 1]), st.sampled_from(BLOCK_NAMES), st.data())
def test_any_byte_change_is_detected(index: int, name: str, data: st.DataObject) -> None:
    rec = _chain()[index]
    size = len(getattr(rec.blocks, name))
    where = data.draw(st.integers(0, size - 1), label="index")
    mask = data.draw(st.integers(1, 255), label="mask")
    _assert_detected(rec, _tamper(rec, name, where, mask))


def test_every_bit_flip_of_the_first_record_is_detected() -> None:
    """Exhaustive, for the record a log starts with (a few thousand flips)."""
    rec = _chain()[0]
    for name in BLOCK_NAMES:
        for bit in range(len(getattr(rec.blocks, name)) * 8):
            _assert_detected(rec, _tamper(rec, name, bit // 8, 1 << (bit % 8)))


def test_tampering_without_cid_is_still_detected() -> None:
    """Without ``cid=`` the record block is still authenticated (AES-GCM, then signature)."""
    rec = _chain()[1]
    for bit in range(len(rec.blocks.record) * 8):
        blocks = _tamper(rec, "record", bit // 8, 1 << (bit % 8))
        with pytest.raises(RecordError):
            open_record(blocks, service_key=KEY, log_key=LOG_KEY.public).read_body(KEY)


def test_public_key_type() -> None:
    assert isinstance(_chain()[0].author, PublicKey)


# -- fixed-form fast paths ----------------------------------------------------------------
# open_record and read_body read nodes in the exact form threadkit writes by slicing, and
# decode anything else in general: both ways must give the same record and the same errors.


def _general_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Turn the fixed-form fast paths off: every node goes through the general decode."""
    monkeypatch.setattr(records, "_fast_record_node", lambda plain: None)
    monkeypatch.setattr(records, "_fast_event_node", lambda block: None)
    monkeypatch.setattr(records, "_HEADER_LEN", -1)


def _variants() -> list[Record]:
    first, second = _chain()
    other = create_record(BODY, log_key=LOG_KEY, key=KEY, prev=second.cid, author=WRITER.public)
    return [first, second, other]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["first", "chained", "other-author"])
def test_fast_paths_give_the_general_decode_result(
    index: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = _variants()[index]
    assert records._fast_record_node(KEY.service_key.decrypt(cbor2.loads(rec.blocks.record))) == (
        rec.sig,
        rec.prev,
        rec.event_cid,
        rec.author.to_bytes(),
    )
    assert records._fast_event_node(rec.blocks.event) == (rec.body_cid, rec.header_cid)
    fast = _open(rec, cid=rec.cid)
    fast_body = fast.read_body(KEY)
    _general_only(monkeypatch)
    general = _open(rec, cid=rec.cid)
    assert fast == general == rec
    assert fast_body == general.read_body(KEY)
    assert dagcbor.decode(fast_body) == ({"v": 2} if index == 1 else dagcbor.decode(BODY))


def test_other_encodings_take_the_general_decode() -> None:
    """A record node in another valid encoding (keys out of order) still opens alike."""
    rec = _chain()[1]
    node = _record_node_of(rec)
    shuffled = {k: node[k] for k in ("pubKey", "block", "prev", "sig")}
    plain = cbor2.dumps(
        {
            k: cbor2.CBORTag(42, b"\x00" + bytes(v)) if isinstance(v, Link) else v
            for k, v in shuffled.items()
        }
    )
    assert plain != dagcbor.encode(node)
    assert records._fast_record_node(plain) is None
    blocks = _replace(rec.blocks, record=cbor2.dumps(KEY.service_key.encrypt(plain)))
    opened = _open(blocks)
    assert (opened.sig, opened.prev, opened.event_cid, opened.author) == (
        rec.sig,
        rec.prev,
        rec.event_cid,
        rec.author,
    )
    event = cbor2.dumps(
        {
            "header": cbor2.CBORTag(42, b"\x00" + rec.header_cid),
            "body": cbor2.CBORTag(42, b"\x00" + rec.body_cid),
        }
    )
    assert event != rec.blocks.event
    assert records._fast_event_node(event) is None


def test_header_in_another_encoding_is_read_alike() -> None:
    """A header whose key length is written in a longer form than needed still reads."""
    rec = _chain()[0]
    plain = KEY.read_key.decrypt(cbor2.loads(rec.blocks.header))
    key_bytes = plain[-32:]
    longer = b"\xa1" + cbor2.dumps("key") + b"\x59\x00\x20" + key_bytes
    header_block = cbor2.dumps(KEY.read_key.encrypt(longer))
    blocks = _replace(rec.blocks, header=header_block)
    opened = rec._replace(header_cid=cid_of(header_block), blocks=blocks)
    assert opened.read_body(KEY) == BODY


@pytest.mark.parametrize("field", ["block", "prev"])
def test_fast_path_errors_match_the_general_decode(
    field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node in the fixed form with a 36-byte link that is not a threadkit CID."""
    rec = _chain()[1]
    node = _record_node_of(rec)
    node[field] = Link(b"\x01\x55\x12\x20" + bytes(32))
    blocks = _rebuild(rec, node)
    plain = KEY.service_key.decrypt(cbor2.loads(blocks.record))
    assert records._fast_record_node(plain) is not None
    with pytest.raises(MalformedRecord) as fast:
        _open(blocks)
    _general_only(monkeypatch)
    with pytest.raises(MalformedRecord) as general:
        _open(blocks)
    assert str(fast.value) == str(general.value)


def test_fast_event_node_refuses_near_misses() -> None:
    rec = _chain()[0]
    event = rec.blocks.event
    assert records._fast_event_node(event[:-1]) is None
    assert records._fast_event_node(event + b"\x00") is None
    flipped = bytes([event[0] ^ 1]) + event[1:]
    assert records._fast_event_node(flipped) is None


def test_authors_are_shared_between_records() -> None:
    """Records of one writer share one parsed author key (and its cached string)."""
    first, second = _chain()
    a, b = _open(first), _open(second)
    assert a.author is b.author
    assert a.author == LOG_KEY.public
