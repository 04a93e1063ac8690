"""DAG-CBOR nodes: the strict subset of CBOR that IPLD (and ThreadDB) hash.

Writing: maps have string keys sorted length-first then bytewise (RFC 7049
canonical order), floats are always 64-bit, integers fit in 64 bits, and the
only tag is 42 (a CID, ``0x00 ‖ binary CID``). Values outside the data model
(sets, dates, NaN, …) are refused with MalformedRecord.

Reading is as strict: exactly one item, no trailing bytes, no indefinite
lengths, no duplicate or non-string keys, no tag but 42. A CID comes back as
the binary CID wrapped in :class:`Link`, so links stay distinct from bytes.
"""

from __future__ import annotations

import io
import math
from typing import Any

import cbor2

from threadkit.errors import MalformedRecord

__all__ = ["Link", "decode", "encode", "link_tag"]

_CID_TAG = 42
_CBORTag = cbor2.CBORTag
_INT_MIN, _INT_MAX = -(2**64), 2**64 - 1


class Link(bytes):
    """A binary CID found in a decoded node (a ``bytes`` subclass)."""

    __slots__ = ()


def link_tag(cid: bytes) -> cbor2.CBORTag:
    """The tag-42 form of a binary CID, for building nodes by hand on hot paths."""
    return _CBORTag(_CID_TAG, b"\x00" + cid)


def encode(node: Any) -> bytes:
    """Encode a node as DAG-CBOR; anything outside the data model is MalformedRecord."""
    # cbor2 writes floats as 64-bit unless canonical=True, which would shorten them,
    # so maps are put in canonical key order here and written non-canonically.
    return cbor2.dumps(_prepare(node))


def _prepare(node: Any) -> Any:
    kind = type(node)
    if kind is Link:
        return link_tag(bytes(node))
    if kind is dict:
        for key in node:
            if type(key) is not str:
                raise MalformedRecord(f"DAG-CBOR map keys must be strings, got {key!r}")
        ordered = sorted(node, key=lambda k: (len(k.encode()), k.encode()))
        return {k: _prepare(node[k]) for k in ordered}
    if kind is list or kind is tuple:
        return [_prepare(v) for v in node]
    if kind is str or kind is bytes or kind is bool or node is None:
        return node
    if kind is int:
        if not _INT_MIN <= node <= _INT_MAX:
            raise MalformedRecord(f"integer {node} does not fit in 64 bits")
        return node
    if kind is float:
        if math.isnan(node) or math.isinf(node):
            raise MalformedRecord(f"DAG-CBOR cannot hold {node}")
        return node
    raise MalformedRecord(f"cannot encode {kind.__name__} in a DAG-CBOR node")


def _tag_hook(first: Any, second: Any) -> Any:
    # cbor2 6 calls (tag, immutable); the documented form is (decoder, tag)
    tag = first if isinstance(first, cbor2.CBORTag) else second
    if tag.tag != _CID_TAG:
        raise MalformedRecord(f"unexpected CBOR tag {tag.tag} in a DAG-CBOR node")
    value = tag.value
    if not isinstance(value, bytes) or not value.startswith(b"\x00"):
        raise MalformedRecord("CID tag 42 must hold 0x00 followed by a binary CID")
    return Link(value[1:])


def _refuse_tag(*args: Any) -> Any:
    raise ValueError("only tag 42 (CID) is allowed in DAG-CBOR")


class _OnlyCidTag(dict[int, Any]):
    """Semantic decoders for cbor2: every tag but 42 refused (42 goes to the tag hook)."""

    def __missing__(self, tag: int) -> Any:
        if tag == _CID_TAG:
            raise KeyError(tag)
        return _refuse_tag


_SEMANTIC = _OnlyCidTag()


def decode(data: bytes, what: str = "node") -> Any:
    """Decode exactly one node; anything malformed or outside the data model is MalformedRecord."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedRecord(f"{what} must be bytes, got {type(data).__name__}")
    stream = io.BytesIO(data)
    try:
        decoder = cbor2.CBORDecoder(
            stream,
            tag_hook=_tag_hook,
            semantic_decoders=_SEMANTIC,
            allow_indefinite=False,
            allow_duplicate_keys=False,
        )
        node = decoder.decode()
    except MalformedRecord:
        raise
    except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError, RecursionError) as exc:
        raise MalformedRecord(f"{what} is not valid CBOR: {exc}") from None
    if stream.tell() != len(data):
        raise MalformedRecord(f"{what} has {len(data) - stream.tell()} bytes after its end")
    _check_model(node, what)
    return node


def _check_model(node: Any, what: str) -> None:
    """Refuse what cbor2's built-in tag decoders produce (dates, sets, bignums, …)."""
    kind = type(node)
    if kind is dict:
        for key, value in node.items():
            if type(key) is not str:
                raise MalformedRecord(f"{what} has a non-string map key {key!r}")
            _check_model(value, what)
    elif kind is list:
        for value in node:
            _check_model(value, what)
    elif kind is int:
        if not _INT_MIN <= node <= _INT_MAX:
            raise MalformedRecord(f"{what} holds an integer beyond 64 bits")
    elif kind not in (str, bytes, bool, float, Link) and node is not None:
        raise MalformedRecord(f"{what} holds a {kind.__name__}, outside the DAG-CBOR data model")
