"""Decode a batch of CBOR documents straight into columns, without a Python object per document.

The documents of a collection are stored as CBOR maps (``cbor2.dumps`` of a JSON
object). Decoding them one by one into dicts costs several microseconds each;
this module instead concatenates the encoded documents into one byte buffer and
walks all of them **at once** with NumPy: step *k* reads the *k*-th key and
value of every document in a handful of vectorised operations. Each value
becomes a *cell* ``(row, kind, a, b)`` of the column named by its dot path:

=========== ============================== ===================================
kind        value                          ``a`` / ``b``
=========== ============================== ===================================
``NULL``    JSON null                      –
``FALSE``   false                          –
``TRUE``    true                           –
``INT``     integer in int64               the value / –
``FLOATI``  float with an integral value   the float64 bits / –
``FLOATF``  any other float                the float64 bits / –
``STR``     text                           byte offset / byte length
``OBJ``     array, big integer, other      byte offset / byte length of the
                                           whole CBOR item (decoded on demand)
=========== ============================== ===================================

Nested maps are not cells: their entries become cells of ``parent.child`` paths
(the flattening the DataFrame view uses). An empty nested map leaves no cell.

Anything the fast walk does not expect (indefinite lengths, non-text keys,
malformed data) makes :func:`decode` re-encode the batch's documents through
``cbor2`` once, which normalises them; a document that does not decode, or is not a
map with text keys at every level (only a repository written before values were
checked, :mod:`threadkit.db.values`, holds one), is left out with a warning, so the
batch can have fewer rows than ``values``.

Examples
--------
>>> import cbor2
>>> batch = decode([cbor2.dumps({"_id": "a", "n": 1, "m": {"x": "hi"}})])
>>> list(batch.columns), batch.text("m.x")[0]
(['_id', 'n', 'm.x'], 'hi')
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import cbor2
import numpy as np
import numpy.typing as npt

from threadkit.errors import StoreError

log = logging.getLogger("threadkit.frames")

__all__ = [
    "FALSE",
    "FLOATF",
    "FLOATI",
    "INT",
    "KIND_NAMES",
    "MISSING",
    "NULL",
    "OBJ",
    "STR",
    "STR_BAD",
    "TRUE",
    "Batch",
    "Cells",
    "decode",
]

IntArray: TypeAlias = npt.NDArray[np.int64]
U8Array: TypeAlias = npt.NDArray[Any]
U64Array: TypeAlias = npt.NDArray[np.uint64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]

MISSING, NULL, FALSE, TRUE, INT, FLOATI, FLOATF, STR, OBJ, STR_BAD = range(10)
"""Cell kinds. ``MISSING`` marks a row without the path; ``STR_BAD`` is set later, by
the column builder, for text that a date-time column could not parse."""

KIND_NAMES = ("missing", "null", "false", "true", "int", "float", "float", "str", "obj", "str")

_MAX_DEPTH = 64
_MAX_KEY_GROUPS = 32  # distinct keys at one step before grouping falls back to a dict
_PAD = 16  # zero bytes after the buffer so header reads never run off its end
_I64_LIMIT = np.uint64(1 << 63)
_PREFIX_MASKS = np.array([(1 << (8 * n)) - 1 for n in range(9)], dtype=np.uint64)


class _Irregular(Exception):
    """The fast walk met CBOR it does not handle; re-encode and retry."""


@dataclass
class Cells:
    """The cells of one column: parallel arrays, one entry per stored value."""

    rows: IntArray
    kinds: npt.NDArray[np.int8]
    a: IntArray
    b: IntArray


@dataclass
class Batch:
    """Decoded documents: their buffer and, per dot path, the cells found there.

    Attributes
    ----------
    n : int
        Number of documents (rows).
    raw : bytes
        The concatenated encoded documents, then 16 zero bytes (header reads of the walk
        never run off its end).
    columns : dict[str, Cells]
        Cells by dot path, in the order the paths were first met.
    """

    n: int
    raw: bytes
    columns: dict[str, Cells] = field(default_factory=dict)
    uniform: bool = True
    """Every document lists its keys in one order, at every level (each is a prefix of
    the longest), so the columns of any subset of rows come in the order of ``columns``."""

    def text(self, path: str) -> list[str | None]:
        """The text values of a column as Python strings (None elsewhere); for tests."""
        out: list[str | None] = [None] * self.n
        cells = self.columns.get(path)
        if cells is not None:
            for row, kind, a, b in zip(
                cells.rows.tolist(),
                cells.kinds.tolist(),
                cells.a.tolist(),
                cells.b.tolist(),
                strict=True,
            ):
                if kind == STR:
                    out[row] = self.raw[a : a + b].decode("utf-8")
        return out


class _Acc:
    """Cells collected for one path, in chunks."""

    __slots__ = ("a", "b", "kinds", "rows")

    def __init__(self) -> None:
        self.rows: list[IntArray] = []
        self.kinds: list[npt.NDArray[np.int8]] = []
        self.a: list[IntArray] = []
        self.b: list[IntArray] = []

    def add(self, rows: IntArray, kinds: npt.NDArray[np.int8], a: IntArray, b: IntArray) -> None:
        if rows.size:
            self.rows.append(rows)
            self.kinds.append(kinds)
            self.a.append(a)
            self.b.append(b)

    def cells(self) -> Cells:
        if len(self.rows) == 1:
            return Cells(self.rows[0], self.kinds[0], self.a[0], self.b[0])
        return Cells(
            np.concatenate(self.rows),
            np.concatenate(self.kinds),
            np.concatenate(self.a),
            np.concatenate(self.b),
        )


class _Walker:
    def __init__(self, padded: bytes, only: tuple[str, ...] | None = None) -> None:
        self.raw = padded  # the documents, then _PAD zero bytes
        self.only = None if only is None else frozenset(only)
        self.under = tuple(path + "." for path in only or ())
        parts = [path.split(".") for path in only or ()]
        self.above = frozenset(".".join(p[:i]) for p in parts for i in range(1, len(p)))
        self.buf: U8Array = np.frombuffer(padded, dtype=np.uint8)
        # unaligned big-endian words at every byte offset (stride 1): one gather per read
        self.words = {
            size: np.ndarray(
                shape=(len(padded) - size + 1,), dtype=f">u{size}", buffer=padded, strides=(1,)
            )
            for size in (2, 4, 8)
        }
        self.le8: npt.NDArray[np.uint64] = np.ndarray(
            shape=(len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,)
        )
        self.out: dict[str, _Acc] = {}
        self.uniform = True

    def wanted(self, path: str) -> bool:
        """Whether ``path`` holds cells asked for (its own, or under it)."""
        return self.only is None or path in self.only or path.startswith(self.under)

    # -- CBOR item heads --------------------------------------------------------------

    def _gather(self, pos: IntArray, size: int) -> U64Array:
        """Big-endian unsigned integers of ``size`` bytes starting at each position."""
        if size == 1:
            return self.buf[pos].astype(np.uint64)
        return self.words[size][pos].astype(np.uint64)

    def head(self, pos: IntArray) -> tuple[U8Array, U8Array, U64Array, IntArray]:
        """Major type, additional info, argument and head length of the items at ``pos``."""
        first = self.buf[pos]
        major = first >> 5
        info = first & 31
        arg = info.astype(np.uint64)
        hlen = np.ones(pos.shape, dtype=np.int64)
        for size, code in ((1, 24), (2, 25), (4, 26), (8, 27)):
            mask = info == code
            if mask.any():
                arg[mask] = self._gather(pos[mask] + 1, size)
                hlen[mask] = 1 + size
        if (info >= 28).any():  # reserved, or indefinite length: cbor2 never writes these
            raise _Irregular
        return major, info, arg, hlen

    def skip(self, pos: IntArray, depth: int) -> IntArray:
        """End positions of the (whole, nested) items starting at ``pos``."""
        if depth > _MAX_DEPTH:
            raise _Irregular
        major, _info, arg, hlen = self.head(pos)
        end = pos + hlen
        sized = (major == 2) | (major == 3)
        end[sized] += arg[sized].astype(np.int64)
        tagged = np.nonzero(major == 6)[0]
        if tagged.size:
            end[tagged] = self.skip(end[tagged], depth + 1)
        containers = np.nonzero((major == 4) | (major == 5))[0]
        if containers.size:
            items = arg[containers].astype(np.int64) * np.where(major[containers] == 5, 2, 1)
            cursor = end[containers]
            for k in range(int(items.max())):
                active = np.nonzero(items > k)[0]
                cursor[active] = self.skip(cursor[active], depth + 1)
            end[containers] = cursor
        return end

    # -- maps -------------------------------------------------------------------------

    def walk_map(self, rows: IntArray, pos: IntArray, prefix: str, depth: int) -> IntArray:
        """Emit the cells of the maps at ``pos`` (one per row); returns their end positions."""
        if depth > _MAX_DEPTH:
            raise _Irregular
        major, _info, arg, hlen = self.head(pos)
        if not (major == 5).all():
            raise _Irregular
        count = arg.astype(np.int64)
        pos = pos + hlen
        top = int(count.max()) if count.size else 0
        for k in range(top):
            active = np.nonzero(count > k)[0]
            kpos = pos[active]
            kmajor, _kinfo, karg, khlen = self.head(kpos)
            if not (kmajor == 3).all():
                raise _Irregular  # JSON documents only have text keys
            kstart = kpos + khlen
            klen = karg.astype(np.int64)
            vpos = kstart + klen
            vend = np.empty_like(vpos)
            groups = self.group_keys(kstart, klen)
            if len(groups) > 1:
                self.uniform = False
            for key, members in groups:
                vend[members] = self.values(
                    prefix + key, rows[active[members]], vpos[members], depth
                )
            pos[active] = vend
        return pos

    def group_keys(self, start: IntArray, length: IntArray) -> list[tuple[str, IntArray]]:
        """Split key positions into groups of equal keys, in order of first occurrence.

        Keys are told apart by their length and first 8 bytes; only longer keys that
        agree on those are compared byte by byte.
        """
        prints = self.le8[start] & _PREFIX_MASKS[np.minimum(length, 8)]
        groups: list[tuple[str, IntArray]] = []
        remaining = np.arange(start.size)
        while remaining.size:
            if len(groups) >= _MAX_KEY_GROUPS:
                groups.extend(self._group_slow(start, length, remaining))
                break
            first = int(remaining[0])
            s0, n0 = int(start[first]), int(length[first])
            same = (prints[remaining] == prints[first]) & (length[remaining] == n0)
            if n0 > 8:
                cand = remaining[same]
                tail = np.arange(8, n0, dtype=np.int64)
                block = self.buf[start[cand][:, None] + tail]
                same[same] = (block == self.buf[s0 + tail]).all(axis=1)
            groups.append((self._key(s0, n0), remaining[same]))
            remaining = remaining[~same]
        return groups

    def _group_slow(
        self, start: IntArray, length: IntArray, which: IntArray
    ) -> list[tuple[str, IntArray]]:
        found: dict[bytes, list[int]] = {}
        raw = self.raw
        for i, s, n in zip(
            which.tolist(), start[which].tolist(), length[which].tolist(), strict=True
        ):
            found.setdefault(raw[s : s + n], []).append(i)
        return [
            (self._key_bytes(key), np.asarray(idx, dtype=np.int64)) for key, idx in found.items()
        ]

    def _key(self, start: int, length: int) -> str:
        return self._key_bytes(self.raw[start : start + length])

    @staticmethod
    def _key_bytes(data: bytes) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise _Irregular from None

    # -- values -----------------------------------------------------------------------

    def values(self, path: str, rows: IntArray, pos: IntArray, depth: int) -> IntArray:
        """Emit the cells of the values at ``pos`` under ``path``; returns their ends."""
        if not self.wanted(path) and path not in self.above:
            return self.skip(pos, depth + 1)  # nothing asked for is here: no cells
        major, info, arg, hlen = self.head(pos)
        end = pos + hlen
        kinds = np.full(pos.shape, OBJ, dtype=np.int8)
        a = pos.copy()
        b = np.zeros(pos.shape, dtype=np.int64)

        small = arg < _I64_LIMIT
        unsigned = (major == 0) & small
        negative = (major == 1) & small
        kinds[unsigned | negative] = INT
        a[unsigned] = arg[unsigned].astype(np.int64)
        a[negative] = -1 - arg[negative].astype(np.int64)

        text = major == 3
        kinds[text] = STR
        a[text] = end[text]
        b[text] = arg[text].astype(np.int64)
        end[text] += b[text]

        simple = major == 7
        if simple.any():
            kinds[simple & (info == 20)] = FALSE
            kinds[simple & (info == 21)] = TRUE
            kinds[simple & (info == 22)] = NULL
            floats = simple & (info >= 25) & (info <= 27)
            if floats.any():
                values = self._floats(info[floats], arg[floats])
                integral = np.isfinite(values) & (values == np.floor(values))
                kinds[floats] = np.where(integral, FLOATI, FLOATF)
                a[floats] = values.view(np.int64)

        nested = np.nonzero(major == 5)[0]
        if nested.size:
            end[nested] = self.walk_map(rows[nested], pos[nested], path + ".", depth + 1)
        objects = np.nonzero(kinds == OBJ)[0]
        objects = objects[major[objects] != 5]
        if objects.size:
            # arrays, bytes, tags, big integers, other simple values: decoded on demand
            end[objects] = self.skip(pos[objects], depth + 1)
            b[objects] = end[objects] - pos[objects]
        keep = major != 5
        acc = self.out.get(path)
        if acc is None:
            acc = self.out[path] = _Acc()
        if keep.all():
            acc.add(rows, kinds, a, b)
        else:
            acc.add(rows[keep], kinds[keep], a[keep], b[keep])
        return end

    @staticmethod
    def _floats(info: U8Array, bits: U64Array) -> npt.NDArray[np.float64]:
        values = np.empty(bits.shape, dtype=np.float64)
        double = info == 27
        values[double] = bits[double].view(np.float64)
        single = info == 26
        if single.any():
            values[single] = bits[single].astype(np.uint32).view(np.float32).astype(np.float64)
        half = info == 25
        if half.any():
            values[half] = bits[half].astype(np.uint16).view(np.float16).astype(np.float64)
        return values


def _walk(values: Sequence[bytes], only: tuple[str, ...] | None = None) -> Batch:
    n = len(values)
    raw = b"".join([*values, bytes(_PAD)])  # one copy, padded
    batch = Batch(n, raw)
    if not n:
        return batch
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=n)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    walker = _Walker(raw, only)
    finish = walker.walk_map(np.arange(n, dtype=np.int64), starts, "", 0)
    if not np.array_equal(finish, ends):
        raise _Irregular  # trailing bytes, or a length that overran its document
    batch.columns = {
        path: acc.cells() for path, acc in walker.out.items() if acc.rows and walker.wanted(path)
    }
    batch.uniform = walker.uniform
    return batch


def decode(values: Sequence[bytes], only: Sequence[str] | None = None) -> Batch:
    """Decode encoded documents (CBOR maps) into per-path cells.

    Parameters
    ----------
    values : Sequence[bytes]
        One CBOR-encoded JSON object per row.
    only : Sequence[str], optional
        Only the cells of these paths and of the paths under them (``p.…``); values
        elsewhere (but on the way to them) are stepped over. All paths by default.

    Returns
    -------
    Batch
        Row ``i`` is ``values[i]`` (the rows of documents left out are dropped).

    Raises
    ------
    StoreError
        When even the normalised documents cannot be walked (a bug).
    """
    wanted = None if only is None else tuple(only)
    try:
        return _walk(values, wanted)
    except (_Irregular, IndexError):
        pass
    normalised = []
    for value in values:
        try:
            doc: Any = cbor2.loads(value)
        except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError, RecursionError) as exc:
            log.warning("a stored document that does not decode is left out: %s", exc)
            continue
        if not isinstance(doc, dict) or not all(type(k) is str for k in _keys(doc)):
            # only a repository written before values were checked holds one
            shown = doc.get("_id") if isinstance(doc, dict) else None
            log.warning("stored document %r is left out: not a JSON object with text keys", shown)
            continue
        normalised.append(cbor2.dumps(doc))
    try:
        return _walk(normalised, wanted)
    except (_Irregular, IndexError):
        raise StoreError("stored documents hold CBOR the column decoder cannot read") from None


def _keys(value: Any) -> list[Any]:
    """Every map key in a decoded value, nested ones included."""
    keys: list[Any] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            keys.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return keys
