"""DAG-CBOR nodes: canonical CBOR with CIDs as tag 42.

Maps are written with keys sorted length-first then bytewise (RFC 7049
canonical order, as DAG-CBOR and ThreadDB's refmt require). A CID is tag 42
around ``0x00 ‖ binary CID``; :func:`decode` turns it back into the binary
CID wrapped in :class:`Link`, so links stay distinct from byte strings.
"""

from __future__ import annotations

from typing import Any

import cbor2

from threadkit.errors import MalformedRecord

__all__ = ["Link", "decode", "encode"]

_CID_TAG = 42
_CBORTag = cbor2.CBORTag


class Link(bytes):
    """A binary CID found in a decoded node (a ``bytes`` subclass)."""

    __slots__ = ()


def _default(encoder: Any, value: Any) -> None:
    raise TypeError(f"cannot encode {type(value).__name__} in a DAG-CBOR node")


def encode(node: Any) -> bytes:
    """Encode a node canonically; ``Link`` values become tag 42."""
    return cbor2.dumps(_links_to_tags(node), canonical=True, default=_default)


def link_tag(cid: bytes) -> cbor2.CBORTag:
    """The tag-42 form of a binary CID, for building nodes by hand on hot paths."""
    return _CBORTag(_CID_TAG, b"\x00" + cid)


def _tag_hook(first: Any, second: Any) -> Any:
    # cbor2 6 calls (tag, immutable); the documented form is (decoder, tag)
    tag = first if isinstance(first, cbor2.CBORTag) else second
    if tag.tag != _CID_TAG:
        raise MalformedRecord(f"unexpected CBOR tag {tag.tag} in a DAG-CBOR node")
    value = tag.value
    if not isinstance(value, bytes) or not value.startswith(b"\x00"):
        raise MalformedRecord("CID tag 42 must hold 0x00 followed by a binary CID")
    return Link(value[1:])


def decode(data: bytes, what: str = "node") -> Any:
    """Decode one node; any malformed input is MalformedRecord."""
    try:
        return cbor2.loads(
            data, tag_hook=_tag_hook, allow_indefinite=False, allow_duplicate_keys=False
        )
    except MalformedRecord:
        raise
    except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError, RecursionError) as exc:
        raise MalformedRecord(f"{what} is not valid CBOR: {exc}") from None


def _links_to_tags(node: Any) -> Any:
    if isinstance(node, Link):
        return link_tag(bytes(node))
    if isinstance(node, dict):
        return {k: _links_to_tags(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_links_to_tags(v) for v in node]
    return node
