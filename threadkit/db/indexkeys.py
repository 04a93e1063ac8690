"""Order-preserving bytes encodings of index values and instance ids.

An index maps the value at a dot path of every document to the document's
``_id``. Its keys are :func:`encode_value` of the value followed by
:func:`encode_id` of the id, so a bytewise-ordered store (LMDB) keeps each index
sorted by value, then by id, and a value range is a key range.

Layout of an encoded value: one **type tag** byte, then the value.

======= ====== =============================================================
tag     type   value bytes
======= ====== =============================================================
``01``  other  one kind byte: ``00`` null, ``01`` array, ``02`` object
``02``  bool   ``00`` false, ``01`` true
``03``  number 8-byte IEEE-754 double (sign-flipped) ‖ exactness suffix
``04``  string UTF-8, each ``00`` written ``00 FF``, then terminator ``00``
======= ====== =============================================================

Within one type, bytes order equals value order:

- **numbers** — ints and floats share one type and compare by exact value
  (``3`` and ``3.0`` encode identically). The 8 bytes are the double nearest the
  value (round half to even, as ``float(n)`` does; an int beyond the double
  range uses the largest finite double of its sign), with the usual trick: flip
  the sign bit of a positive double, invert every bit of a negative one;
  ``-0.0`` is written as ``0.0``. The suffix makes ints that no double holds
  exactly (beyond 2**53) distinct and correctly ordered: it encodes the exact
  difference ``value - int(double)``, which is zero (the single byte ``80``) for
  every float and every int a double holds. A non-zero difference is written
  as one header byte, ``80 + n`` (or ``FF`` and a 4-byte length when ``n`` > 126)
  followed by the ``n`` big-endian bytes of a positive difference, or ``80 - n``
  (``00`` and the inverted length) followed by the inverted bytes of a negative
  one. So every Python int, however large, has its own key in exact numeric
  order, and the encoding is deterministic. ``±inf`` encode (after every
  finite number of their sign); NaN is refused.
- **strings** — UTF-8 (lone surrogates pass through, so any ``str`` encodes)
  with ``00`` escaped so the terminator keeps prefix order:
  ``"a" < "a\\x00" < "ab"``. UTF-8 byte order is code point order, which is how
  Python compares strings.
- **booleans** — false before true.

Arrays, objects and null are not indexable, but they are still recorded under
the *other* tag so an index can say which JSON types its path holds
(:func:`key_type`); a query compares only one type and must detect the others.

Every encoded value and id is prefix-free, so ``encode_value(v) + encode_id(i)``
sorts by ``(v, i)``.

Examples
--------
>>> encode_value(3) == encode_value(3.0)
True
>>> encode_value(-1) < encode_value(0.5) < encode_value(2**53 + 1) < encode_value(2.0**54)
True
>>> encode_value("a") < encode_value("a\\x00") < encode_value("ab")
True
>>> decode_value(encode_value("héllo"))
('héllo', 8)
>>> key_type(encode_value([1, 2]))
'array'
"""

from __future__ import annotations

import math
import struct
import sys
from collections.abc import Mapping
from typing import Any, NamedTuple

from threadkit.errors import InvalidInput

__all__ = [
    "JSON_TYPES",
    "TAG_BOOL",
    "TAG_NUMBER",
    "TAG_OTHER",
    "TAG_STRING",
    "OtherValue",
    "decode_id",
    "decode_value",
    "encode_id",
    "encode_value",
    "json_type",
    "key_type",
    "type_range",
    "value_end",
]

TAG_OTHER = 0x01
TAG_BOOL = 0x02
TAG_NUMBER = 0x03
TAG_STRING = 0x04

#: The JSON type names used throughout the query layer (JSON Schema's names).
JSON_TYPES = ("null", "boolean", "number", "string", "array", "object")

_OTHER_KINDS = {"null": 0x00, "array": 0x01, "object": 0x02}
_KIND_NAMES = {code: name for name, code in _OTHER_KINDS.items()}
_TAG_NAMES = {TAG_BOOL: "boolean", TAG_NUMBER: "number", TAG_STRING: "string"}

_DOUBLE = struct.Struct(">d")
_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")
_SIGN = 1 << 63
_MASK = (1 << 64) - 1
_ZERO_DELTA = 0x80
_SHORT_MAX = 126  # longest difference (in bytes) with a one-byte header
_LONG_POS = 0xFF
_LONG_NEG = 0x00
_MAX_DOUBLE = sys.float_info.max
_STRING_TAG = bytes([TAG_STRING])
_NUMBER_TAG = bytes([TAG_NUMBER])


class OtherValue(NamedTuple):
    """A decoded non-indexable value: only its JSON type survives encoding.

    Attributes
    ----------
    kind : str
        ``"null"``, ``"array"`` or ``"object"``.
    """

    kind: str


def json_type(value: Any) -> str:
    """The JSON type name of a Python value.

    Parameters
    ----------
    value : Any
        A decoded JSON value.

    Returns
    -------
    str
        One of :data:`JSON_TYPES`; for a value JSON cannot hold, ``"non-JSON "``
        and the Python type name (so error messages still say what was found).

    Examples
    --------
    >>> json_type(True), json_type(3), json_type(2.5), json_type(None)
    ('boolean', 'number', 'number', 'null')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return f"non-JSON {type(value).__name__}"


def _escape(raw: bytes) -> bytes:
    return raw.replace(b"\x00", b"\x00\xff") + b"\x00"


def _unescape(data: bytes, offset: int) -> tuple[bytes, int]:
    out = bytearray()
    pos = offset
    while True:
        end = data.find(b"\x00", pos)
        if end < 0:
            raise InvalidInput("encoded string has no terminator")
        out += data[pos:end]
        if end + 1 < len(data) and data[end + 1] == 0xFF:
            out.append(0)
            pos = end + 2
            continue
        return bytes(out), end + 1


def _encode_delta(delta: int) -> bytes:
    if delta == 0:
        return bytes([_ZERO_DELTA])
    magnitude = abs(delta)
    size = (magnitude.bit_length() + 7) // 8
    raw = magnitude.to_bytes(size, "big")
    if delta > 0:
        if size <= _SHORT_MAX:
            return bytes([_ZERO_DELTA + size]) + raw
        return bytes([_LONG_POS]) + _U32.pack(size) + raw
    inverted = bytes(0xFF - b for b in raw)
    if size <= _SHORT_MAX:
        return bytes([_ZERO_DELTA - size]) + inverted
    return bytes([_LONG_NEG]) + _U32.pack(0xFFFFFFFF - size) + inverted


def _decode_delta(data: bytes, offset: int) -> tuple[int, int]:
    if offset >= len(data):
        raise InvalidInput("encoded number is truncated")
    head = data[offset]
    pos = offset + 1
    if head == _ZERO_DELTA:
        return 0, pos
    negative = head < _ZERO_DELTA
    if head in (_LONG_POS, _LONG_NEG):
        if pos + 4 > len(data):
            raise InvalidInput("encoded number is truncated")
        (size,) = _U32.unpack_from(data, pos)
        if negative:
            size = 0xFFFFFFFF - size
        pos += 4
        if size <= _SHORT_MAX:
            raise InvalidInput("encoded number has a non-canonical length")
    else:
        size = head - _ZERO_DELTA if not negative else _ZERO_DELTA - head
        if size > _SHORT_MAX:
            raise InvalidInput(f"encoded number has a bad suffix header {head:#04x}")
    raw = data[pos : pos + size]
    if len(raw) != size:
        raise InvalidInput("encoded number is truncated")
    if negative:
        raw = bytes(0xFF - b for b in raw)
    if raw[0] == 0:
        raise InvalidInput("encoded number has a non-canonical suffix")
    magnitude = int.from_bytes(raw, "big")
    return (-magnitude if negative else magnitude), pos + size


def _nearest_double(value: int | float) -> tuple[float, int]:
    """The double a number is filed under and the exact remainder (0 for floats)."""
    if isinstance(value, float):
        return (0.0 if value == 0 else value), 0
    try:
        nearest = float(value)
    except OverflowError:
        nearest = _MAX_DOUBLE if value > 0 else -_MAX_DOUBLE
    return nearest, value - int(nearest)


def _encode_number(value: int | float) -> bytes:
    if isinstance(value, float) and math.isnan(value):
        raise InvalidInput("NaN is not a JSON number and cannot be indexed")
    nearest, delta = _nearest_double(value)
    (bits,) = _U64.unpack(_DOUBLE.pack(nearest))
    bits = (~bits & _MASK) if bits & _SIGN else bits | _SIGN
    return _NUMBER_TAG + _U64.pack(bits) + _encode_delta(delta)


def encode_value(value: Any) -> bytes:
    """Encode a JSON value as an index key prefix that sorts by value within its type.

    Parameters
    ----------
    value : Any
        A JSON value: ``str``, ``int``, ``float``, ``bool``, ``None``, a list or
        a mapping. Lists, mappings and ``None`` encode as their *other* kind
        only.

    Returns
    -------
    bytes
        Type tag then value bytes; see the module docstring.

    Raises
    ------
    InvalidInput
        For NaN, or a value that is not JSON (a set, bytes, …).
    """
    if isinstance(value, bool):
        return bytes([TAG_BOOL, 1 if value else 0])
    if isinstance(value, int | float):
        return _encode_number(value)
    if isinstance(value, str):
        return _STRING_TAG + _escape(value.encode("utf-8", "surrogatepass"))
    kind = json_type(value)
    if kind in _OTHER_KINDS:
        return bytes([TAG_OTHER, _OTHER_KINDS[kind]])
    raise InvalidInput(f"a {kind} value cannot be indexed")


def decode_value(data: bytes, offset: int = 0) -> tuple[Any, int]:
    """Decode one value written by :func:`encode_value`.

    Parameters
    ----------
    data : bytes
        Bytes holding an encoded value at ``offset`` (more may follow).
    offset : int, optional
        Where the value starts.

    Returns
    -------
    tuple[Any, int]
        The value and the offset just past it. Numbers come back as ``float``,
        or as ``int`` when no double holds them exactly (so ``3`` decodes as
        ``3.0``, an equal number); arrays, objects and null as
        :class:`OtherValue`.

    Raises
    ------
    InvalidInput
        When the bytes are not a well-formed encoding.
    """
    if offset >= len(data):
        raise InvalidInput("no encoded value: the bytes are empty")
    tag = data[offset]
    pos = offset + 1
    if tag == TAG_STRING:
        raw, end = _unescape(data, pos)
        try:
            return raw.decode("utf-8", "surrogatepass"), end
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"encoded string is not UTF-8: {exc}") from None
    if tag == TAG_NUMBER:
        if pos + 8 > len(data):
            raise InvalidInput("encoded number is truncated")
        (bits,) = _U64.unpack_from(data, pos)
        bits = bits & ~_SIGN if bits & _SIGN else ~bits & _MASK
        (nearest,) = _DOUBLE.unpack(_U64.pack(bits))
        delta, end = _decode_delta(data, pos + 8)
        if delta == 0:
            return nearest, end
        return int(nearest) + delta, end
    if tag == TAG_BOOL:
        if pos >= len(data) or data[pos] not in (0, 1):
            raise InvalidInput("encoded boolean is truncated or not 0/1")
        return data[pos] == 1, pos + 1
    if tag == TAG_OTHER:
        if pos >= len(data) or data[pos] not in _KIND_NAMES:
            raise InvalidInput("encoded non-indexable value has no valid kind byte")
        return OtherValue(_KIND_NAMES[data[pos]]), pos + 1
    raise InvalidInput(f"unknown index type tag {tag:#04x}")


def value_end(data: bytes, offset: int = 0) -> int:
    """The offset just past the value :func:`encode_value` wrote at ``offset``.

    The same as ``decode_value(data, offset)[1]`` for a well-formed encoding, without
    decoding the value (a query reads the ids that follow values in index keys).

    Raises
    ------
    InvalidInput
        When the bytes are not a well-formed encoding.

    Examples
    --------
    >>> key = encode_value("a\\x00b") + encode_id("x")
    >>> value_end(key) == decode_value(key)[1]
    True
    """
    if offset >= len(data):
        raise InvalidInput("no encoded value: the bytes are empty")
    tag = data[offset]
    if tag == TAG_STRING:
        pos = offset + 1
        while True:
            end = data.find(b"\x00", pos)
            if end < 0:
                raise InvalidInput("encoded string has no terminator")
            if end + 1 < len(data) and data[end + 1] == 0xFF:
                pos = end + 2
                continue
            return end + 1
    if tag == TAG_NUMBER:
        pos = offset + 9
        if pos < len(data) and data[pos] == _ZERO_DELTA:
            return pos + 1
        return _decode_delta(data, pos)[1]
    return decode_value(data, offset)[1]


def key_type(data: bytes, offset: int = 0) -> str:
    """The JSON type of the encoded value at ``offset``, read from its tag alone.

    Parameters
    ----------
    data : bytes
        Bytes holding an encoded value at ``offset``.
    offset : int, optional
        Where the value starts.

    Returns
    -------
    str
        One of :data:`JSON_TYPES`.

    Raises
    ------
    InvalidInput
        For an unknown tag or a missing kind byte.
    """
    if offset >= len(data):
        raise InvalidInput("no encoded value: the bytes are empty")
    tag = data[offset]
    if tag in _TAG_NAMES:
        return _TAG_NAMES[tag]
    if tag == TAG_OTHER and offset + 1 < len(data) and data[offset + 1] in _KIND_NAMES:
        return _KIND_NAMES[data[offset + 1]]
    raise InvalidInput(f"unknown index type tag {tag:#04x}")


def type_range(kind: str) -> tuple[bytes, bytes]:
    """The key range ``[low, high)`` that holds every encoded value of one JSON type.

    Parameters
    ----------
    kind : str
        One of :data:`JSON_TYPES`.

    Returns
    -------
    tuple[bytes, bytes]
        ``low`` inclusive, ``high`` exclusive; with an id suffix the range still
        holds exactly that type's keys.

    Raises
    ------
    InvalidInput
        For an unknown type name.
    """
    for tag, name in _TAG_NAMES.items():
        if name == kind:
            return bytes([tag]), bytes([tag + 1])
    if kind in _OTHER_KINDS:
        code = _OTHER_KINDS[kind]
        return bytes([TAG_OTHER, code]), bytes([TAG_OTHER, code + 1])
    raise InvalidInput(f"unknown JSON type {kind!r}; expected one of {', '.join(JSON_TYPES)}")


def encode_id(instance_id: str) -> bytes:
    """Encode an instance id so bytes order is id order and the encoding is prefix-free.

    Parameters
    ----------
    instance_id : str
        Any string (ULIDs in practice).

    Returns
    -------
    bytes
        UTF-8 with ``00`` escaped as ``00 FF``, then a ``00`` terminator.

    Examples
    --------
    >>> encode_id("a") < encode_id("a\\x00") < encode_id("ab")
    True
    """
    if not isinstance(instance_id, str):
        raise InvalidInput(f"an instance id must be a string, not {type(instance_id).__name__}")
    return _escape(instance_id.encode("utf-8", "surrogatepass"))


def decode_id(data: bytes, offset: int = 0) -> tuple[str, int]:
    """Decode one id written by :func:`encode_id`.

    Parameters
    ----------
    data : bytes
        Bytes holding an encoded id at ``offset``.
    offset : int, optional
        Where the id starts.

    Returns
    -------
    tuple[str, int]
        The id and the offset just past its terminator.

    Raises
    ------
    InvalidInput
        When no terminator is found or the bytes are not UTF-8.
    """
    raw, end = _unescape(data, offset)
    try:
        return raw.decode("utf-8", "surrogatepass"), end
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"encoded id is not UTF-8: {exc}") from None
