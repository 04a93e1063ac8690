"""Signed, encrypted records: ThreadDB's four-node layout (docs/design.md §4, §7.4).

A record travels as four blocks (:class:`RecordBlocks`):

- **body**: the payload node (raw DAG-CBOR from the layer above), AES-GCM
  encrypted under a fresh random key, stored as a CBOR byte string;
- **header**: ``{key: <body key>}``, encrypted under the thread's **read key**; a
  record sealed under a later **key epoch** (docs/access.md) stores its header block
  as the CBOR array ``[epoch, ciphertext]`` (encrypted under that epoch's key) instead
  of the bare byte string, which stays the form of epoch 0;
- **event**: plaintext ``{body: CID(body), header: CID(header)}``;
- **record**: ``{sig, prev?, block: CID(event), pubKey}``, encrypted under the
  thread's **service key**. The record's CID is the CID of this encrypted block,
  and ``prev`` is the CID of the log's previous record.

The signature, made with the log's private key, covers the event CID, ``prev``
(empty for a log's first record) and the author's public key, for every
record. ThreadDB signs only ``pubKey`` on a first record and never covers
``pubKey`` otherwise; here the writer seen by validators is attested by the log.

:func:`open_record` checks everything a service-key holder can check: sizes,
CIDs, decryption of the record node, its shape and its signature. Reading the
body needs the read key (:meth:`Record.read_body`).

Examples
--------
>>> from threadkit.core.identity import Identity
>>> from threadkit.core.keys import ThreadKey
>>> from threadkit.core import dagcbor
>>> log_key, key = Identity.generate(), ThreadKey.new()
>>> rec = create_record(dagcbor.encode({"hello": "world"}), log_key=log_key, key=key)
>>> opened = open_record(rec.blocks, service_key=key, log_key=log_key.public, cid=rec.cid)
>>> dagcbor.decode(opened.read_body(key))
{'hello': 'world'}
"""

from __future__ import annotations

import functools
import os
from typing import Any, NamedTuple

import cbor2
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from threadkit.core import dagcbor
from threadkit.core.cid import check_cid, cid_of, cid_to_string, verify_block
from threadkit.core.dagcbor import link_tag
from threadkit.core.identity import Identity, PublicKey
from threadkit.core.keys import ThreadKey
from threadkit.core.symmetric import KEY_SIZE, NONCE_SIZE, SymmetricKey
from threadkit.errors import (
    ChainError,
    IntegrityError,
    InvalidKey,
    InvalidThreadKey,
    MalformedRecord,
    OversizedRecord,
    SignatureError,
)

__all__ = [
    "MAX_BODY_SIZE",
    "MAX_EPOCH",
    "MAX_NODE_SIZE",
    "Record",
    "RecordBlocks",
    "check_link",
    "create_record",
    "open_record",
]

MAX_NODE_SIZE = 4096
"""Largest record, event or header block accepted (they hold a few CIDs and keys)."""

MAX_BODY_SIZE = 16 * 1024 * 1024
"""Largest body block accepted (one transaction's events)."""

MAX_EPOCH = 2**63 - 1
"""Largest key epoch a header may name."""

_SIG_DOMAIN = b"threadkit/record/1\x00"
_SIG_SIZE = 64
_PUBKEY_SIZE = 36
_RECORD_KEYS = frozenset({"sig", "prev", "block", "pubKey"})


class RecordBlocks(NamedTuple):
    """The four blocks of a record as they travel and are stored (ThreadDB's ``Log.Record``)."""

    record: bytes
    event: bytes
    header: bytes
    body: bytes

    def total_size(self) -> int:
        """Bytes in all four blocks."""
        return len(self.record) + len(self.event) + len(self.header) + len(self.body)


class Record(NamedTuple):
    """A record whose record node was opened and checked.

    Attributes
    ----------
    cid : bytes
        Binary CID of the encrypted record block (the record's id).
    prev : bytes | None
        CID of the previous record in the log, None for the first.
    event_cid, header_cid, body_cid : bytes
        CIDs of the event node and the blocks it links.
    author : PublicKey
        The writer's identity (``pubKey``), covered by the log key's signature.
    sig : bytes
        The log key's signature.
    blocks : RecordBlocks
        The raw blocks.
    """

    cid: bytes
    prev: bytes | None
    event_cid: bytes
    header_cid: bytes
    body_cid: bytes
    author: PublicKey
    sig: bytes
    blocks: RecordBlocks

    @property
    def epoch(self) -> int:
        """The key epoch whose read key encrypts the header (0: the thread's own read key).

        Raises MalformedRecord when the header block is neither form.
        """
        return _header_parts(self.blocks.header)[0]

    def read_body(self, key: ThreadKey | SymmetricKey | bytes) -> bytes:
        """Decrypt the header with the read key, then the body; returns the raw body node.

        ``key`` is the read key of the record's :attr:`epoch`. Raises DecryptionError
        for a wrong read key and InvalidThreadKey for a service-only thread key.
        """
        read = _read_key(key)
        plain = read.decrypt(_header_parts(self.blocks.header)[1])
        if len(plain) == _HEADER_LEN and plain.startswith(_HEADER_START):
            # the exact form threadkit writes (``_header_node``): the key is the tail
            body_key = plain[len(_HEADER_START) :]
        else:
            header = dagcbor.decode(plain, "header")
            if not isinstance(header, dict) or set(header) != {"key"}:
                raise MalformedRecord("header node must be {key: <32 bytes>}")
            body_key = header["key"]
            if not isinstance(body_key, bytes) or len(body_key) != KEY_SIZE:
                raise MalformedRecord("header key must be 32 bytes")
        return SymmetricKey(body_key).decrypt(_block_bytes(self.blocks.body))

    def decode_body(self, key: ThreadKey | SymmetricKey | bytes) -> Any:
        """The body node decoded from DAG-CBOR."""
        return dagcbor.decode(self.read_body(key), "body")

    def __repr__(self) -> str:
        prev = cid_to_string(self.prev) if self.prev else None
        return f"Record({cid_to_string(self.cid)}, prev={prev}, author={self.author.peer_id})"


def _prefix_of(value: Any, tail: int) -> bytes:
    """The CBOR bytes cbor2 writes for ``value``, less its last ``tail`` bytes."""
    encoded = cbor2.dumps(value, canonical=True)
    return encoded[: len(encoded) - tail]


# The event and record nodes have a fixed shape, so they are assembled from
# pieces cbor2 encoded once: the same bytes as dagcbor.encode (tested), in a
# fraction of the time on the write path.
_LINK = _prefix_of(link_tag(b"\x00" * 36), 36)
_dumps = cbor2.dumps
_HEADER_START = _prefix_of({"key": b"\x00" * KEY_SIZE}, KEY_SIZE)
_HEADER_LEN = len(_HEADER_START) + KEY_SIZE
_MAP2, _MAP3, _MAP4 = (cbor2.dumps(dict.fromkeys(range(n), 0))[:1] for n in (2, 3, 4))
_EVENT_START = _MAP2 + cbor2.dumps("body")
_HEADER_KEY = cbor2.dumps("header")
_SIG_PART = _prefix_of("sig", 0) + _prefix_of(b"\x00" * _SIG_SIZE, _SIG_SIZE)
_PREV_KEY, _BLOCK_KEY = cbor2.dumps("prev"), cbor2.dumps("block")
_PUBKEY_PART = cbor2.dumps("pubKey") + _prefix_of(b"\x00" * _PUBKEY_SIZE, _PUBKEY_SIZE)


def _header_node(body_key: bytes) -> bytes:
    return _HEADER_START + body_key


def _event_node(body_cid: bytes, header_cid: bytes) -> bytes:
    return _EVENT_START + _LINK + body_cid + _HEADER_KEY + _LINK + header_cid


def _record_node(sig: bytes, prev: bytes | None, event_cid: bytes, pubkey: bytes) -> bytes:
    start = _MAP4 if prev is not None else _MAP3
    prev_part = _PREV_KEY + _LINK + prev if prev is not None else b""
    return (
        start + _SIG_PART + sig + prev_part + _BLOCK_KEY + _LINK + event_cid + _PUBKEY_PART + pubkey
    )


# Offsets of the fixed-size fields in the record and event nodes threadkit writes
# (``_record_node``, ``_event_node``): received nodes in exactly that form are read by
# slicing instead of a general DAG-CBOR decode (see ``_fast_record_node``).
_CID_LEN = 36
_SIG_AT = 1 + len(_SIG_PART)
_PREV_PART_LEN = len(_PREV_KEY) + len(_LINK) + _CID_LEN
_RECORD_TAIL_LEN = len(_BLOCK_KEY) + len(_LINK) + _CID_LEN + len(_PUBKEY_PART) + _PUBKEY_SIZE
_RECORD3_LEN = _SIG_AT + _SIG_SIZE + _RECORD_TAIL_LEN
_EVENT_BODY_AT = len(_EVENT_START) + len(_LINK)
_EVENT_HEADER_AT = _EVENT_BODY_AT + _CID_LEN + len(_HEADER_KEY) + len(_LINK)
_EVENT_LEN = _EVENT_HEADER_AT + _CID_LEN


def _fast_record_node(plain: bytes) -> tuple[bytes, bytes | None, bytes, bytes] | None:
    """``(sig, prev, event CID, pubKey)`` of a record node in the exact form threadkit writes.

    None for any other encoding (the caller then decodes it in general): a node is
    taken only when re-assembling it from its fields gives back the same bytes, so
    the fields are exactly what a DAG-CBOR decode would yield.
    """
    size = len(plain)
    if size == _RECORD3_LEN:
        prev = None
        at = _SIG_AT + _SIG_SIZE
    elif size == _RECORD3_LEN + _PREV_PART_LEN:
        at = _SIG_AT + _SIG_SIZE + _PREV_PART_LEN
        prev = plain[at - _CID_LEN : at]
    else:
        return None
    sig = plain[_SIG_AT : _SIG_AT + _SIG_SIZE]
    at += len(_BLOCK_KEY) + len(_LINK)
    event_cid = plain[at : at + _CID_LEN]
    pub_bytes = plain[size - _PUBKEY_SIZE :]
    if _record_node(sig, prev, event_cid, pub_bytes) != plain:
        return None
    return sig, prev, event_cid, pub_bytes


def _fast_event_node(block: bytes) -> tuple[bytes, bytes] | None:
    """``(body CID, header CID)`` of an event node in the exact form threadkit writes, or None."""
    if len(block) != _EVENT_LEN:
        return None
    body_cid = block[_EVENT_BODY_AT : _EVENT_BODY_AT + _CID_LEN]
    header_cid = block[_EVENT_HEADER_AT:]
    if _event_node(body_cid, header_cid) != block:
        return None
    return body_cid, header_cid


@functools.lru_cache(maxsize=1024)
def _author_key(pub_bytes: bytes) -> PublicKey:
    """The author key of a record's ``pubKey`` bytes, shared between records of one writer.

    A log's records nearly always carry one or a few authors; sharing the parsed key
    saves parsing it again and keeps its cached string form (the engine stores it).
    """
    return PublicKey.from_bytes(pub_bytes)


def signed_bytes(event_cid: bytes, prev: bytes | None, author: PublicKey) -> bytes:
    """What the log key signs: domain ‖ event CID ‖ prev CID (or nothing) ‖ author key bytes.

    CIDs and keys have fixed sizes here, so the concatenation is unambiguous.
    """
    return _SIG_DOMAIN + event_cid + (prev or b"") + author.to_bytes()


def create_record(
    body: bytes,
    *,
    log_key: Identity,
    key: ThreadKey,
    prev: bytes | None = None,
    author: PublicKey | None = None,
    epoch: int = 0,
) -> Record:
    """Make a record holding ``body`` (a raw DAG-CBOR node).

    Parameters
    ----------
    body : bytes
        The payload node, already encoded.
    log_key : Identity
        The log's private key; it signs the record.
    key : ThreadKey
        The thread key; it must hold a read key.
    prev : bytes, optional
        CID of the log's current head, None for the first record.
    author : PublicKey, optional
        The writer's identity; defaults to the log key's public key.
    epoch : int, optional
        The key epoch ``key``'s read key belongs to (0, the default: the thread's own;
        the header then has exactly the form it always had).
    """
    if type(body) is not bytes:
        if not isinstance(body, (bytearray, memoryview)):
            raise MalformedRecord(
                f"body must be an encoded node (bytes), got {type(body).__name__}"
            )
        body = bytes(body)
    read_key = key.read_key
    if read_key is None:
        raise InvalidThreadKey("creating a record needs a thread key with a read key")
    if prev is not None:
        check_cid(prev, "prev")
    author = author or log_key.public
    author_bytes = author.to_bytes()
    # one call for the body key and the three nonces
    rand = os.urandom(KEY_SIZE + 3 * NONCE_SIZE)
    body_key = rand[:KEY_SIZE]
    n1 = rand[KEY_SIZE : KEY_SIZE + NONCE_SIZE]
    n2 = rand[KEY_SIZE + NONCE_SIZE : KEY_SIZE + 2 * NONCE_SIZE]
    n3 = rand[KEY_SIZE + 2 * NONCE_SIZE :]
    body_block = _dumps(n1 + AESGCM(body_key).encrypt(n1, body, None))
    if len(body_block) > MAX_BODY_SIZE:
        raise OversizedRecord(f"body is {len(body_block)} bytes, over the {MAX_BODY_SIZE} limit")
    header_ct = read_key.encrypt(_header_node(body_key), n2)
    if type(epoch) is not int or not 0 <= epoch <= MAX_EPOCH:
        raise InvalidKey(f"epoch must be an int from 0 to {MAX_EPOCH}, got {epoch!r}")
    header_block = _dumps(header_ct) if epoch == 0 else _dumps([epoch, header_ct])
    body_cid, header_cid = cid_of(body_block), cid_of(header_block)
    event_block = _event_node(body_cid, header_cid)
    event_cid = cid_of(event_block)
    sig = log_key.sign(_SIG_DOMAIN + event_cid + (prev or b"") + author_bytes)
    node = _record_node(sig, prev, event_cid, author_bytes)
    record_block = _dumps(key.service_key.encrypt(node, n3))
    blocks = RecordBlocks(record_block, event_block, header_block, body_block)
    return Record(cid_of(record_block), prev, event_cid, header_cid, body_cid, author, sig, blocks)


def open_record(
    blocks: RecordBlocks,
    *,
    service_key: ThreadKey | SymmetricKey | bytes,
    log_key: PublicKey,
    cid: bytes | None = None,
    max_body_size: int = MAX_BODY_SIZE,
    verify_signature: bool = True,
) -> Record:
    """Check a received record with the service key and the log's public key.

    Checks, in order: block sizes; that the record block hashes to ``cid`` (when
    given); that it decrypts under the service key; the record node's shape; the
    signature under ``log_key``; that the event block hashes to the record's
    ``block`` link; the event node's shape; and that the header and body blocks
    hash to the event's links. The body is not decrypted (see
    :meth:`Record.read_body`).

    ``verify_signature=False`` skips only the signature check; it is for
    records read back from the local store, which were verified on the way in.

    Raises
    ------
    OversizedRecord, MalformedRecord, IntegrityError, DecryptionError, SignatureError
    """
    if not isinstance(blocks, RecordBlocks):
        raise MalformedRecord(f"expected RecordBlocks, got {type(blocks).__name__}")
    for name, block, limit in (
        ("record", blocks.record, MAX_NODE_SIZE),
        ("event", blocks.event, MAX_NODE_SIZE),
        ("header", blocks.header, MAX_NODE_SIZE),
        ("body", blocks.body, max_body_size),
    ):
        if not isinstance(block, bytes):
            raise MalformedRecord(f"{name} block must be bytes, got {type(block).__name__}")
        if len(block) > limit:
            raise OversizedRecord(f"{name} block is {len(block)} bytes, over the {limit} limit")
        if not block:
            raise MalformedRecord(f"{name} block is empty")
    record_cid = cid_of(blocks.record)
    if cid is not None and record_cid != cid:
        raise IntegrityError(f"record block does not hash to its CID {cid_to_string(cid)}")
    service = _service_key(service_key)
    plain = service.decrypt(_block_bytes(blocks.record))
    fields = _fast_record_node(plain)
    if fields is not None:
        sig, prev, event_cid, pub_bytes = fields
        check_cid(event_cid, "record block link")
        if prev is not None:
            check_cid(prev, "record prev link")
    else:
        sig, prev, event_cid, pub_bytes = _decode_record_node(plain)
    try:
        author = _author_key(pub_bytes)
    except InvalidKey as exc:
        raise MalformedRecord(f"record pubKey: {exc}") from None
    if verify_signature and not log_key.verify(signed_bytes(event_cid, prev, author), sig):
        raise SignatureError(f"record signature does not verify under log {log_key.peer_id}")
    verify_block(event_cid, blocks.event, "event block")
    links = _fast_event_node(blocks.event)
    if links is not None:
        body_cid = check_cid(links[0], "event body link")
        header_cid = check_cid(links[1], "event header link")
    else:
        event = dagcbor.decode(blocks.event, "event node")
        if not isinstance(event, dict) or set(event) != {"body", "header"}:
            raise MalformedRecord("event node must be a map {body, header}")
        body_cid = _link(event["body"], "event body link")
        header_cid = _link(event["header"], "event header link")
    verify_block(header_cid, blocks.header, "header block")
    verify_block(body_cid, blocks.body, "body block")
    return Record(record_cid, prev, event_cid, header_cid, body_cid, author, sig, blocks)


def _decode_record_node(plain: bytes) -> tuple[bytes, bytes | None, bytes, bytes]:
    """``(sig, prev, event CID, pubKey bytes)`` of a record node in any DAG-CBOR encoding."""
    node = dagcbor.decode(plain, "record node")
    if not isinstance(node, dict) or not node.keys() <= _RECORD_KEYS:
        raise MalformedRecord("record node must be a map with keys sig, prev, block, pubKey")
    sig = node.get("sig")
    if sig is None:
        raise SignatureError("record has no signature")
    if not isinstance(sig, bytes) or len(sig) != _SIG_SIZE:
        raise SignatureError("record signature is not 64 bytes")
    event_cid = _link(node.get("block"), "record block link")
    prev = _link(node["prev"], "record prev link") if "prev" in node else None
    pub_bytes = node.get("pubKey")
    if not isinstance(pub_bytes, bytes) or len(pub_bytes) != _PUBKEY_SIZE:
        raise MalformedRecord("record pubKey is not a 36-byte libp2p public key")
    return sig, prev, event_cid, pub_bytes


def check_link(record: Record, expected_prev: bytes | None) -> None:
    """Raise ChainError unless ``record.prev`` is ``expected_prev``."""
    if record.prev != expected_prev:
        want = cid_to_string(expected_prev) if expected_prev else "nothing (first record)"
        got = cid_to_string(record.prev) if record.prev else "nothing"
        raise ChainError(f"record {cid_to_string(record.cid)} links to {got}, expected {want}")


def _link(value: object, what: str) -> bytes:
    if not isinstance(value, dagcbor.Link):
        raise MalformedRecord(f"{what} is not a CID link")
    return check_cid(bytes(value), what)


def _header_parts(block: bytes) -> tuple[int, bytes]:
    """``(epoch, ciphertext)`` of a header block: a CBOR byte string (epoch 0), or the
    array ``[epoch, byte string]`` with ``epoch`` from 1 (one form for each epoch)."""
    try:
        value = cbor2.loads(block)
    except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError) as exc:
        raise MalformedRecord(f"header block is not CBOR: {exc}") from None
    if isinstance(value, bytes):
        return 0, value
    if (
        isinstance(value, list)
        and len(value) == 2
        and type(value[0]) is int
        and 1 <= value[0] <= MAX_EPOCH
        and isinstance(value[1], bytes)
    ):
        return value[0], value[1]
    raise MalformedRecord("header block must be a byte string or [epoch >= 1, byte string]")


def _block_bytes(block: bytes) -> bytes:
    """The ciphertext inside an encrypted block (a CBOR byte string)."""
    try:
        value = cbor2.loads(block)
    except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError) as exc:
        raise MalformedRecord(f"encrypted block is not a CBOR byte string: {exc}") from None
    if not isinstance(value, bytes):
        raise MalformedRecord("encrypted block is not a CBOR byte string")
    return value


def _service_key(key: ThreadKey | SymmetricKey | bytes) -> SymmetricKey:
    if isinstance(key, ThreadKey):
        return key.service_key
    if isinstance(key, SymmetricKey):
        return key
    return SymmetricKey(bytes(key))


def _read_key(key: ThreadKey | SymmetricKey | bytes) -> SymmetricKey:
    if isinstance(key, ThreadKey):
        if key.read_key is None:
            raise InvalidThreadKey("this thread key has no read key: bodies cannot be read")
        return key.read_key
    if isinstance(key, SymmetricKey):
        return key
    return SymmetricKey(bytes(key))
