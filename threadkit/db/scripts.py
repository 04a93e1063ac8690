"""Write validators and read filters: ThreadDB's JavaScript hooks, run in QuickJS.

A collection may carry two scripts, stored as the *body* of a JavaScript function,
exactly as in ThreadDB:

- a **write validator**, wrapped as ``function _validate(writer, event, instance){…}``.
  A write passes only when it returns the boolean ``true``;
- a **read filter**, wrapped as ``function _filter(reader, instance){…}``. It returns the
  instance to show (possibly changed), or ``null``/``undefined`` to hide it.

``writer`` and ``reader`` are public-key strings (``undefined`` in JavaScript when there
is none); ``event`` has ThreadDB's shape ``{timestamp, _id, collection_name, patch: {type,
instance_id, json_patch}}`` and ``instance`` is the stored document before the event
(``null`` when there is none).

How a script runs
-----------------
Each :class:`WriteValidator` or :class:`ReadFilter` owns one QuickJS runtime, compiled
once when the object is made. Every call runs under a time limit (default 1 s) and a
memory limit (default 32 MiB): a runaway script is interrupted with
:class:`~threadkit.errors.ScriptTimeout` or :class:`~threadkit.errors.ScriptMemoryError`,
and the runtime is then rebuilt from the source so the next call starts clean (an
interrupted script may have left half-changed globals or a heap full of garbage).
The ``quickjs`` binding measures the time limit in process CPU time (C ``clock()``): other
busy threads of the process bring the limit closer in wall time, and a script starved of
CPU runs longer than the limit in wall time before it is cut off.

Values cross into JavaScript as one JSON text that the script side decodes with the
engine's own ``JSON.parse``; nothing is ever spliced into JavaScript source, so quotes,
backslashes, ``</script>`` or U+2028 in a document cannot change what runs (ThreadDB's
``JSON.parse('…')`` splice breaks on a quote). The body is compiled only as a function
body: text that closes the wrapper early to run code outside it is refused with
:class:`~threadkit.errors.InvalidScript`. A line break is put before the closing brace,
so a body may end with a ``//`` comment (ThreadDB's wrapper would not compile that).

Thread safety
-------------
A QuickJS runtime is not thread-safe, so every validator and filter holds a lock that
each call takes: calls from many threads are safe and run one at a time per script
(different scripts run in parallel; the engine releases the GIL while JavaScript runs).
The binding re-anchors the engine's stack check on every call, so a script may be called
from any thread, not only the one that compiled it.

Examples
--------
>>> v = WriteValidator("return event.patch.type !== 'delete'")
>>> event = {"timestamp": 1, "_id": "e1", "collection_name": "Dog",
...          "patch": {"type": "save", "instance_id": "d1", "json_patch": {}}}
>>> v("bafkwriter", event, {"_id": "d1"})
>>> f = ReadFilter("instance.Name = instance.Name.toUpperCase(); return instance")
>>> f(None, {"_id": "d1", "Name": "Fido"})
{'_id': 'd1', 'Name': 'FIDO'}
"""

from __future__ import annotations

import json
import math
import re
import threading
from typing import Any, Final

import quickjs

from threadkit.errors import (
    InvalidDocument,
    InvalidInput,
    InvalidScript,
    ScriptError,
    ScriptMemoryError,
    ScriptRejected,
    ScriptTimeout,
)

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "DEFAULT_TIME_LIMIT",
    "MIN_MEMORY_LIMIT",
    "ReadFilter",
    "WriteValidator",
]

DEFAULT_TIME_LIMIT: Final = 1.0
"""Seconds a validator or filter call may run before it is interrupted."""

DEFAULT_MEMORY_LIMIT: Final = 32 * 1024 * 1024
"""Bytes the QuickJS heap of one validator or filter may use."""

MIN_MEMORY_LIMIT: Final = 1024 * 1024
"""The smallest memory limit accepted (an empty runtime alone needs about 80 KB)."""

_MIB: Final = 1024 * 1024

# One JSON encoder for every call: compact, ASCII-only (so the text handed to the engine
# holds no raw NUL, lone surrogate or line separator), and refusing NaN/Infinity, which
# are not JSON.
_ENCODER: Final = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"))

# Run before the user's source: returns a function that reads the compiled function's
# source text with the original Function.prototype.toString, so that a body which closes
# the wrapper early (and so runs code outside it) is detected.
_SOURCE_OF: Final = """(function (apply, toString, global, name) {
  return function () {
    try { return apply(toString, global[name], []); } catch (e) { return null; }
  };
})(Reflect.apply, Function.prototype.toString, globalThis, %s)"""

# The call harness, built once per runtime around the user's function. It decodes the
# JSON argument text, calls the function, and reports with a one-letter tag:
#   validator:  true (passed) | "R<what it returned>"
#   filter:     "{…}" (the object as JSON) | "H" (hidden) | "R<what it returned>"
#               | "J<tag>" (the object could not be turned into JSON)
#   both:       "E<error text>" (threw) | "M" (out of memory) | "N" (threw null: QuickJS
#               throws null when it cannot even allocate its out-of-memory error)
# Only uncatchable errors (the interrupt at the time limit) and failures of the harness
# itself reach Python as exceptions. Strings returned are short and well-formed UTF-16.
_HARNESS: Final = r"""(function (fn, kind) {
  "use strict";
  var parse = JSON.parse, stringify = JSON.stringify, isArray = Array.isArray;
  var ErrorType = Error, InternalErrorType = InternalError, toText = String;
  var LIMIT = 200;
  function clip(s) {
    if (s.length > LIMIT) { s = s.slice(0, LIMIT) + "\u2026"; }
    var out = "", i, c, d;
    for (i = 0; i < s.length; i++) {
      c = s.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
        d = s.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) { out += s.charAt(i) + s.charAt(i + 1); i++; continue; }
      }
      out += (c >= 0xd800 && c <= 0xdfff) ? "\ufffd" : s.charAt(i);
    }
    return out;
  }
  function show(v) {
    var t = typeof v, s;
    if (v === undefined) { return "undefined"; }
    if (t === "function") { return "a function"; }
    if (t === "symbol") { return "a symbol"; }
    if (t === "bigint") { return clip(toText(v)) + "n"; }
    try { s = stringify(v); if (typeof s === "string") { return clip(s); } } catch (e) {}
    try { return clip(toText(v)); } catch (e) { return "an unprintable " + t; }
  }
  function thrown(e) {
    try {
      if (e === null) { return "N"; }
      if (e instanceof InternalErrorType && e.message === "out of memory") { return "M"; }
      if (e instanceof ErrorType) { return "E" + clip(toText(e)); }
      return "E" + show(e);
    } catch (e2) {
      return "Ean exception that cannot be shown";
    }
  }
  if (kind === "validate") {
    return function (text) {
      var a = parse(text), r;
      try { r = fn(a[0] === null ? undefined : a[0], a[1], a[2]); } catch (e) { return thrown(e); }
      return r === true ? true : "R" + show(r);
    };
  }
  return function (text) {
    var a = parse(text), r, s;
    try { r = fn(a[0] === null ? undefined : a[0], a[1]); } catch (e) { return thrown(e); }
    if (r === null || r === undefined) { return "H"; }
    if (typeof r !== "object" || isArray(r)) { return "R" + show(r); }
    try { s = stringify(r); } catch (e) { return "J" + thrown(e); }
    if (typeof s !== "string" || s.charAt(0) !== "{") { return "R" + show(r); }
    return s;
  };
})"""

_LINE: Final = re.compile(r"<input>:(\d+)")


def _check_time_limit(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"time_limit must be a number of seconds, not {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidInput(f"time_limit must be a positive number of seconds, not {value!r}")
    return seconds


def _check_memory_limit(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"memory_limit must be a whole number of bytes, not {value!r}")
    if value < MIN_MEMORY_LIMIT:
        raise InvalidInput(f"memory_limit must be at least {MIN_MEMORY_LIMIT} bytes, not {value}")
    return value


def _show_bytes(n: int) -> str:
    return f"{n // _MIB} MiB" if n % _MIB == 0 else f"{n} bytes"


def _first_line(message: str) -> str:
    return message.split("\n", 1)[0].strip()


class _Script:
    """The machinery shared by :class:`WriteValidator` and :class:`ReadFilter`."""

    _FUNCTION: str
    _PARAMS: str
    _KIND: str
    _WHAT: str

    def __init__(self, body: str, time_limit: float, memory_limit: int) -> None:
        if not isinstance(body, str):
            raise InvalidScript(f"a {self._WHAT} must be a string, not {type(body).__name__}")
        if "\x00" in body:
            raise InvalidScript(f"{self._WHAT} contains a NUL character")
        try:
            body.encode("utf-8")
        except UnicodeEncodeError as err:
            raise InvalidScript(f"{self._WHAT} is not valid Unicode: {err.reason}") from None
        self._body = body
        self._time_limit = _check_time_limit(time_limit)
        self._memory_limit = _check_memory_limit(memory_limit)
        self._source = f"function {self._FUNCTION}({self._PARAMS}){{{body}\n}}"
        self._lock = threading.Lock()
        self._call = self._build()

    @property
    def body(self) -> str:
        """The function body as stored (the text between the wrapper's braces)."""
        return self._body

    @property
    def time_limit(self) -> float:
        """Seconds a call may run before it is interrupted."""
        return self._time_limit

    @property
    def memory_limit(self) -> int:
        """Bytes the script's QuickJS heap may use."""
        return self._memory_limit

    def __repr__(self) -> str:
        body = self._body if len(self._body) <= 60 else self._body[:57] + "..."
        return (
            f"{type(self).__name__}({body!r}, time_limit={self._time_limit!r}, "
            f"memory_limit={self._memory_limit!r})"
        )

    def _build(self) -> quickjs.Object:
        """Make a fresh runtime holding the compiled script; return its call harness."""
        ctx = quickjs.Context()
        ctx.set_time_limit(self._time_limit)
        ctx.set_memory_limit(self._memory_limit)
        try:
            source_of = ctx.eval(_SOURCE_OF % json.dumps(self._FUNCTION))
            ctx.eval(self._source)
            compiled = source_of()
            if compiled != self._source:
                raise InvalidScript(
                    f"{self._WHAT} is not a function body: it closes the "
                    f"{self._FUNCTION} function early"
                )
            harness = ctx.eval(_HARNESS)(ctx.get(self._FUNCTION), self._KIND)
        except quickjs.JSException as err:
            raise InvalidScript(self._compile_message(str(err))) from None
        if not isinstance(harness, quickjs.Object):  # pragma: no cover - engine contract
            raise InvalidScript(f"{self._WHAT} could not be compiled")
        return harness

    def _compile_message(self, message: str) -> str:
        first = _first_line(message)
        if first.startswith("InternalError: interrupted"):
            return (
                f"{self._WHAT} does not compile: it ran longer than "
                f"{self._time_limit!r} s while being loaded"
            )
        if first in ("", "null") or "out of memory" in first:
            return (
                f"{self._WHAT} does not compile: it does not fit in its memory limit "
                f"of {_show_bytes(self._memory_limit)}"
            )
        line = _LINE.search(message)
        where = f" (line {line.group(1)})" if line else ""
        return f"{self._WHAT} does not compile: {first}{where}"

    def _run(self, args: list[Any]) -> Any:
        """Call the harness with ``args`` as JSON; map engine failures to threadkit errors."""
        try:
            text = _ENCODER.encode(args)
        except (TypeError, ValueError) as err:
            raise InvalidDocument(f"{self._WHAT} input is not JSON: {err}") from None
        except RecursionError:
            raise InvalidDocument(f"{self._WHAT} input is nested too deeply") from None
        with self._lock:
            try:
                return self._call(text)
            except quickjs.JSException as err:
                first = _first_line(str(err))
                if first.startswith("InternalError: interrupted"):
                    self._call = self._build()
                    raise ScriptTimeout(
                        f"{self._WHAT} ran longer than {self._time_limit!r} s and was interrupted"
                    ) from None
                if first in ("", "null") or "out of memory" in first:
                    self._call = self._build()
                    raise ScriptMemoryError(self._memory_message(ambiguous=False)) from None
                raise ScriptError(f"{self._WHAT} failed: {first}") from None
            except UnicodeDecodeError:  # pragma: no cover - the harness sends well-formed text
                raise ScriptError(f"{self._WHAT} produced text that is not valid Unicode") from None

    def _memory_message(self, *, ambiguous: bool) -> str:
        limit = _show_bytes(self._memory_limit)
        if ambiguous:
            # QuickJS throws null when it cannot allocate its own out-of-memory error, so a
            # script that throws null looks the same.
            return f"{self._WHAT} ran out of memory (limit {limit}) or threw null"
        return f"{self._WHAT} ran out of memory (limit {limit})"

    def _raise_for(self, tag: str, detail: str) -> None:
        """Raise the error for a failure the harness reported (tags E, M, N)."""
        if tag == "E":
            raise ScriptError(f"{self._WHAT} threw {detail}")
        if tag in ("M", "N"):
            with self._lock:
                self._call = self._build()
            raise ScriptMemoryError(self._memory_message(ambiguous=tag == "N"))
        raise ScriptError(f"{self._WHAT} returned an unexpected report {tag + detail!r}")


class WriteValidator(_Script):
    """A collection's write validator: ``function _validate(writer, event, instance){body}``.

    Parameters
    ----------
    body : str
        The function body, as ThreadDB stores it, e.g. ``"return event.patch.type !==
        'delete'"``. It is compiled once, here.
    time_limit : float, optional
        Seconds one call may run before it is interrupted (default 1.0).
    memory_limit : int, optional
        Bytes the script's heap may use (default 32 MiB, at least 1 MiB).

    Raises
    ------
    InvalidScript
        If the body does not compile (the message carries QuickJS's reason and line), or
        closes the wrapper function early.
    InvalidInput
        If a limit is not a positive number.

    Notes
    -----
    An empty body compiles to a function that returns ``undefined`` and so rejects every
    write; a collection without a validator should simply not make one.

    Examples
    --------
    >>> v = WriteValidator("return instance === null || instance.Owner === writer")
    >>> v("bafkalice", {"patch": {"type": "create"}}, None)
    >>> v("bafkbob", {"patch": {"type": "save"}}, {"Owner": "bafkalice"})
    Traceback (most recent call last):
    ...
    threadkit.errors.ScriptRejected: write rejected by the validator: it returned false
    """

    _FUNCTION = "_validate"
    _PARAMS = "writer, event, instance"
    _KIND = "validate"
    _WHAT = "write validator"

    def __init__(
        self,
        body: str,
        *,
        time_limit: float = DEFAULT_TIME_LIMIT,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
    ) -> None:
        super().__init__(body, time_limit, memory_limit)

    def __call__(
        self,
        writer: str | None,
        event: dict[str, Any],
        instance: dict[str, Any] | None,
    ) -> None:
        """Judge one write; return quietly when the script returns ``true``.

        Parameters
        ----------
        writer : str or None
            The writer's public key string; ``undefined`` in JavaScript when None.
        event : dict
            The event, in ThreadDB's shape ``{timestamp, _id, collection_name,
            patch: {type, instance_id, json_patch}}``.
        instance : dict or None
            The stored instance before the event; ``null`` in JavaScript when None.

        Raises
        ------
        ScriptRejected
            If the script returned anything but ``true`` (the message says what).
        ScriptError
            If the script threw (the message carries the JavaScript error).
        ScriptTimeout
            If the call ran past the time limit and was interrupted.
        ScriptMemoryError
            If the call used more memory than allowed.
        InvalidDocument
            If ``writer``, ``event`` or ``instance`` is not JSON.
        """
        if writer is not None and not isinstance(writer, str):
            raise InvalidInput(f"writer must be a string or None, not {type(writer).__name__}")
        result = self._run([writer, event, instance])
        if result is True:
            return
        if isinstance(result, str) and result[:1] == "R":
            raise ScriptRejected(f"write rejected by the validator: it returned {result[1:]}")
        if isinstance(result, str) and result:
            self._raise_for(result[0], result[1:])
        raise ScriptError(f"{self._WHAT} returned an unexpected report {result!r}")


class ReadFilter(_Script):
    """A collection's read filter: ``function _filter(reader, instance){body}``.

    Parameters
    ----------
    body : str
        The function body, as ThreadDB stores it, e.g. ``"return instance"``. It is
        compiled once, here.
    time_limit : float, optional
        Seconds one call may run before it is interrupted (default 1.0).
    memory_limit : int, optional
        Bytes the script's heap may use (default 32 MiB, at least 1 MiB).

    Raises
    ------
    InvalidScript
        If the body does not compile, or closes the wrapper function early.
    InvalidInput
        If a limit is not a positive number.

    Examples
    --------
    >>> f = ReadFilter("return instance.Public ? instance : null")
    >>> f("bafkreader", {"_id": "a", "Public": True})
    {'_id': 'a', 'Public': True}
    >>> f("bafkreader", {"_id": "b", "Public": False}) is None
    True
    """

    _FUNCTION = "_filter"
    _PARAMS = "reader, instance"
    _KIND = "filter"
    _WHAT = "read filter"

    def __init__(
        self,
        body: str,
        *,
        time_limit: float = DEFAULT_TIME_LIMIT,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
    ) -> None:
        super().__init__(body, time_limit, memory_limit)

    def __call__(self, reader: str | None, instance: dict[str, Any]) -> dict[str, Any] | None:
        """Filter one instance for one reader.

        Parameters
        ----------
        reader : str or None
            The reader's public key string; ``undefined`` in JavaScript when None.
        instance : dict
            The stored instance. It is copied into JavaScript; this dict is not changed.

        Returns
        -------
        dict or None
            The instance the script returned (possibly changed), or None when it returned
            ``null`` or ``undefined`` (the instance is hidden).

        Raises
        ------
        ScriptError
            If the script threw, or returned something that is not an object (a number,
            a string, an array…) or an object that cannot be written as JSON.
        ScriptTimeout
            If the call ran past the time limit and was interrupted.
        ScriptMemoryError
            If the call used more memory than allowed.
        InvalidDocument
            If ``instance`` is not a JSON object.
        """
        if reader is not None and not isinstance(reader, str):
            raise InvalidInput(f"reader must be a string or None, not {type(reader).__name__}")
        if not isinstance(instance, dict):
            raise InvalidDocument(
                f"a read filter takes a JSON object, not {type(instance).__name__}"
            )
        result = self._run([reader, instance])
        if isinstance(result, str) and result:
            tag = result[0]
            if tag == "{":
                doc: dict[str, Any] = json.loads(result)
                return doc
            if tag == "H":
                return None
            if tag == "R":
                raise ScriptError(
                    f"read filter must return an object, null or undefined; it returned "
                    f"{result[1:]}"
                )
            if tag == "J":
                inner = result[1:]
                if inner[:1] == "E":
                    raise ScriptError(
                        f"read filter returned an object that cannot be written as JSON: "
                        f"{inner[1:]}"
                    )
                self._raise_for(inner[:1], inner[1:])
            self._raise_for(tag, result[1:])
        raise ScriptError(f"{self._WHAT} returned an unexpected report {result!r}")
