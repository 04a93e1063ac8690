"""The script worker: a child process that runs write validators and read filters.

The parent (:mod:`threadkit.db.scriptpool`) starts this file with the same Python
interpreter and talks to it over its standard input and output, one request at a time.
Nothing a script does can reach the parent: a script that crashes the engine (QuickJS
recurses without a stack check inside ``JSON.stringify``) ends this process only, and a
built-in that never checks the engine's interrupt (a backtracking regular expression,
``indexOf`` over an array of length 2**32-1) is stopped by the parent killing this
process at its wall-clock limit.

This module imports nothing from threadkit (the parent also imports it, for the
protocol below, and must not pay for QuickJS when no script exists).

Protocol
--------
Every message is a frame: a 4-byte big-endian length, then that many bytes. The worker
first sends ``b"ready"``. Requests:

- ``L`` load: ``b"L" + >QdQB(id, time_limit, memory_limit, kind) + source`` (UTF-8).
  The reply is ``b"K"`` (compiled) or ``b"X" + message`` (does not compile).
- ``C`` call: ``b"C" + >QI(id, n)`` then ``n`` times ``>I(length) + text``, each text
  the JSON array of the call's arguments. The reply is ``n`` frames, one report each,
  sent as each call ends; or one frame ``b"?"`` when the script is not loaded here.

A report is UTF-8 text starting with a tag: ``P`` passed (a validator returned
``true``), ``R…`` returned something else (shown), ``{…}`` the object a filter returned,
as JSON, ``H`` hidden (a filter returned null or undefined), ``J…`` the object a filter
returned cannot cross (``J`` then an error report), ``E…`` threw, ``M`` out of memory,
``N`` threw null, ``!T`` interrupted at the time limit, ``!M`` out of memory in the
engine, ``!E…`` any other engine failure.
"""

from __future__ import annotations

import json
import os
import re
import struct
import sys
from collections import OrderedDict
from typing import IO, Any, Final

HEAD: Final = struct.Struct(">I")
LOAD: Final = struct.Struct(">QdQB")
CALL: Final = struct.Struct(">QI")

KIND_VALIDATE: Final = 0
KIND_FILTER: Final = 1

MAX_RESULT_DEPTH: Final = 512
"""Deepest object a read filter may return (levels of nesting, the instance itself is 1)."""

MAX_RESULT_SIZE: Final = 8 * 1024 * 1024
"""Longest JSON text (in characters) of the object a read filter may return."""

MAX_LOADED: Final = 256
"""Compiled scripts one worker keeps (least recently used dropped first)."""

# what each kind is called: (function name, parameters, harness kind, name in messages)
KINDS: Final = {
    KIND_VALIDATE: ("_validate", "writer, event, instance", "validate", "write validator"),
    KIND_FILTER: ("_filter", "reader, instance", "filter", "read filter"),
}

# Run before the user's source: returns a function that reads the compiled function's
# source text with the original Function.prototype.toString, so that a body which closes
# the wrapper early (and so runs code outside it) is detected.
_SOURCE_OF: Final = """(function (apply, toString, global, name) {
  return function () {
    try { return apply(toString, global[name], []); } catch (e) { return null; }
  };
})(Reflect.apply, Function.prototype.toString, globalThis, %s)"""

# The call harness, built once per runtime around the user's function. It decodes the
# JSON argument text, calls the function and returns a report (see the module docstring).
# The object a filter returns is written as JSON through a replacer that refuses nesting
# deeper than MAX_RESULT_DEPTH before the engine's own recursion could overflow the C
# stack; the text must be at most MAX_RESULT_SIZE characters. Only uncatchable errors
# (the interrupt at the time limit) reach the worker as exceptions. Strings returned are
# short (but for the filter's JSON) and well-formed UTF-16.
_HARNESS: Final = r"""(function (fn, kind, maxDepth, maxSize) {
  "use strict";
  var parse = JSON.parse, stringify = JSON.stringify, isArray = Array.isArray;
  var ErrorType = Error, InternalErrorType = InternalError, toText = String;
  var WeakMapType = WeakMap, mapGet = WeakMap.prototype.get, mapSet = WeakMap.prototype.set;
  var apply = Reflect.apply;
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
  function TooDeep() {}
  function bounded(v) {
    var depths = new WeakMapType();
    function replacer(key, value) {
      if (value !== null && typeof value === "object") {
        var above = apply(mapGet, depths, [this]);
        var depth = above === undefined ? 1 : above + 1;
        if (depth > maxDepth) { throw new TooDeep(); }
        apply(mapSet, depths, [value, depth]);
      }
      return value;
    }
    return stringify(v, replacer);
  }
  function show(v) {
    var t = typeof v, s;
    if (v === undefined) { return "undefined"; }
    if (t === "function") { return "a function"; }
    if (t === "symbol") { return "a symbol"; }
    if (t === "bigint") { return clip(toText(v)) + "n"; }
    try { s = bounded(v); if (typeof s === "string") { return clip(s); } } catch (e) {}
    try { return clip(toText(v)); } catch (e) { return "an unprintable " + t; }
  }
  function thrown(e) {
    try {
      if (e === null) { return "N"; }
      if (e instanceof InternalErrorType && e.message === "out of memory") { return "M"; }
      if (e instanceof TooDeep) { return "Eit is nested deeper than " + maxDepth + " levels"; }
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
      return r === true ? "P" : "R" + show(r);
    };
  }
  return function (text) {
    var a = parse(text), r, s;
    try { r = fn(a[0] === null ? undefined : a[0], a[1]); } catch (e) { return thrown(e); }
    if (r === null || r === undefined) { return "H"; }
    if (typeof r !== "object" || isArray(r)) { return "R" + show(r); }
    try { s = bounded(r); } catch (e) { return "J" + thrown(e); }
    if (typeof s !== "string" || s.charAt(0) !== "{") { return "R" + show(r); }
    if (s.length > maxSize) { return "JEits JSON text is longer than " + maxSize + " characters"; }
    return s;
  };
})"""


class CompileError(Exception):
    """A script that does not compile; the message says why."""


def read_frame(stream: IO[bytes]) -> bytes | None:
    """The next frame's payload, or None at the end of the stream."""
    head = stream.read(HEAD.size)
    if len(head) < HEAD.size:
        return None
    (size,) = HEAD.unpack(head)
    data = stream.read(size)
    return data if len(data) == size else None


def frame(payload: bytes) -> bytes:
    """``payload`` with its length in front."""
    return HEAD.pack(len(payload)) + payload


def _first_line(message: str) -> str:
    return message.split("\n", 1)[0].strip()


def _show_bytes(n: int) -> str:
    mib = 1024 * 1024
    return f"{n // mib} MiB" if n % mib == 0 else f"{n} bytes"


class _Loaded:
    """One compiled script: its runtime and call harness (rebuilt after a runaway call)."""

    def __init__(self, kind: int, source: str, time_limit: float, memory_limit: int) -> None:
        self.kind = kind
        self.source = source
        self.time_limit = time_limit
        self.memory_limit = memory_limit
        self.harness = self.build()

    def build(self) -> Any:
        import quickjs

        function, _params, harness_kind, what = KINDS[self.kind]
        ctx = quickjs.Context()
        ctx.set_time_limit(self.time_limit)
        ctx.set_memory_limit(self.memory_limit)
        try:
            source_of = ctx.eval(_SOURCE_OF % json.dumps(function))
            ctx.eval(self.source)
            if source_of() != self.source:
                raise CompileError(
                    f"{what} is not a function body: it closes the {function} function early"
                )
            harness = ctx.eval(_HARNESS)(
                ctx.get(function), harness_kind, MAX_RESULT_DEPTH, MAX_RESULT_SIZE
            )
        except quickjs.JSException as err:
            raise CompileError(self._compile_message(str(err))) from None
        if not isinstance(harness, quickjs.Object):  # pragma: no cover - engine contract
            raise CompileError(f"{what} could not be compiled")
        return harness

    def _compile_message(self, message: str) -> str:
        what = KINDS[self.kind][3]
        first = _first_line(message)
        if first.startswith("InternalError: interrupted"):
            return (
                f"{what} does not compile: it ran longer than {self.time_limit!r} s "
                "while being loaded"
            )
        if first in ("", "null") or "out of memory" in first:
            return (
                f"{what} does not compile: it does not fit in its memory limit "
                f"of {_show_bytes(self.memory_limit)}"
            )
        line = re.search(r"<input>:(\d+)", message)
        where = f" (line {line.group(1)})" if line else ""
        return f"{what} does not compile: {first}{where}"

    def call(self, text: str) -> str:
        """Run the script on one argument text; return its report."""
        import quickjs

        try:
            report = self.harness(text)
        except quickjs.JSException as err:
            first = _first_line(str(err))
            if first.startswith("InternalError: interrupted"):
                self.harness = self.build()
                return "!T"
            if first in ("", "null") or "out of memory" in first:
                self.harness = self.build()
                return "!M"
            return "!E" + first
        if not isinstance(report, str) or not report:  # pragma: no cover - harness contract
            return "!Ethe harness returned " + repr(report)[:80]
        if report[0] in "MN" or report[:2] in ("JM", "JN"):
            # an out-of-memory heap may hold garbage the next call would trip on
            self.harness = self.build()
        return report


def serve(inp: IO[bytes], out: IO[bytes]) -> None:
    """Answer requests from ``inp`` on ``out`` until ``inp`` ends."""
    loaded: OrderedDict[int, _Loaded] = OrderedDict()
    out.write(frame(b"ready"))
    out.flush()
    while True:
        request = read_frame(inp)
        if request is None:
            return
        op = request[:1]
        if op == b"L":
            script_id, time_limit, memory_limit, kind = LOAD.unpack_from(request, 1)
            source = request[1 + LOAD.size :].decode("utf-8")
            try:
                loaded[script_id] = _Loaded(kind, source, time_limit, memory_limit)
            except CompileError as err:
                out.write(frame(b"X" + str(err).encode("utf-8")))
            else:
                loaded.move_to_end(script_id)
                while len(loaded) > MAX_LOADED:
                    loaded.popitem(last=False)
                out.write(frame(b"K"))
            out.flush()
        elif op == b"C":
            script_id, count = CALL.unpack_from(request, 1)
            script = loaded.get(script_id)
            if script is None:
                out.write(frame(b"?"))
                out.flush()
                continue
            loaded.move_to_end(script_id)
            at = 1 + CALL.size
            for _ in range(count):
                (size,) = HEAD.unpack_from(request, at)
                at += HEAD.size
                text = request[at : at + size].decode("utf-8")
                at += size
                out.write(frame(script.call(text).encode("utf-8", "surrogatepass")))
                out.flush()
        else:  # pragma: no cover - the parent sends only L and C
            return


def main() -> None:
    """Entry point of the worker process."""
    try:
        import resource

        # a crash must not leave a core file behind
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):  # pragma: no cover - platform dependent
        pass
    # the protocol owns the original stdout; anything else printed goes to stderr
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, out)


if __name__ == "__main__":
    main()
