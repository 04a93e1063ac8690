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
Scripts never run in the calling process. Each call goes to one of a small pool of
long-lived worker processes (:mod:`threadkit.db.scriptpool`, at most
:data:`~threadkit.db.scriptpool.MAX_WORKERS`), where the script is compiled once per
worker into its own QuickJS runtime; the body is compiled (in a worker) when the
:class:`WriteValidator` or :class:`ReadFilter` is made, so a bad body fails there. Every
call runs under a time limit (default 1 s) and a memory limit (default 32 MiB):

- the engine interrupts ordinary JavaScript at the time limit (measured in the worker's
  CPU time), and stops allocations at the memory limit; the call fails with
  :class:`~threadkit.errors.ScriptTimeout` or :class:`~threadkit.errors.ScriptMemoryError`
  and the runtime is rebuilt from the source, so the next call starts clean;
- a built-in that never checks the engine's interrupt (a backtracking regular
  expression, ``indexOf`` over an array of length 2**32-1) is stopped by the parent,
  which kills the worker once the call has taken ``time_limit + max(1 s, time_limit)``
  of wall-clock time: :class:`~threadkit.errors.ScriptTimeout` as well;
- a script that crashes the engine (``JSON.stringify`` of an object nested 100,000
  deep overflows QuickJS's C stack) ends its worker only: the call fails with
  :class:`~threadkit.errors.ScriptError`, and a new worker takes its place.

The result crosses back as text: a validator's verdict, or the JSON text of the object
a filter returned, refused with :class:`~threadkit.errors.ScriptError` when it is
nested deeper than :data:`MAX_RESULT_DEPTH` levels or longer than
:data:`MAX_RESULT_SIZE` characters, and parsed with bounded depth.

Values cross into JavaScript as one JSON text that the script side decodes with the
engine's own ``JSON.parse``; nothing is ever spliced into JavaScript source, so quotes,
backslashes, ``</script>`` or U+2028 in a document cannot change what runs (ThreadDB's
``JSON.parse('…')`` splice breaks on a quote). The body is compiled only as a function
body: text that closes the wrapper early to run code outside it is refused with
:class:`~threadkit.errors.InvalidScript`. A line break is put before the closing brace,
so a body may end with a ``//`` comment (ThreadDB's wrapper would not compile that).

Thread safety
-------------
Calls from many threads are safe: each runs in a worker of its own while it lasts, and
several calls of one script may run at once in different workers, each with its own
globals. A script must therefore decide from its arguments alone: globals it keeps
between calls may start over at any time (a new worker, a rebuilt runtime), and every
peer must reach the same verdict on the same event.

Batches
-------
``encode`` makes a call's argument text, :meth:`run_texts` runs many texts in one round
trip, and ``interpret`` turns a report into the call's result or error; calling the
object does the three for one call. The commit path uses them to judge a whole
transaction at once, outside the database's write lock (:mod:`threadkit.db.scriptcalls`).

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
from typing import Any, Final, NoReturn

from threadkit.db import scriptworker
from threadkit.db.scriptpool import ScriptSpec, pool
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
    "MAX_RESULT_DEPTH",
    "MAX_RESULT_SIZE",
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

MAX_RESULT_DEPTH: Final = scriptworker.MAX_RESULT_DEPTH
"""Deepest object a read filter may return (the instance itself is one level)."""

MAX_RESULT_SIZE: Final = scriptworker.MAX_RESULT_SIZE
"""Longest JSON text, in characters, of the object a read filter may return."""

_MIB: Final = 1024 * 1024

# One JSON encoder for every call: compact, ASCII-only (so the text handed to the engine
# holds no raw NUL, lone surrogate or line separator), and refusing NaN/Infinity, which
# are not JSON.
_ENCODER: Final = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"))


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


class _Script:
    """The machinery shared by :class:`WriteValidator` and :class:`ReadFilter`."""

    _KIND: int
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
        function, params, _, _ = scriptworker.KINDS[self._KIND]
        source = f"function {function}({params}){{{body}\n}}"
        self._spec = ScriptSpec(self._KIND, source, self._time_limit, self._memory_limit)
        reason = pool().load(self._spec)
        if reason is not None:
            if not reason.startswith(self._WHAT):
                reason = f"{self._WHAT} does not compile: it {reason}"
            raise InvalidScript(reason)

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

    @property
    def identity(self) -> tuple[int, str, float, int]:
        """What decides the script's behaviour: kind, source and limits (equal for two
        objects made from the same body and limits)."""
        spec = self._spec
        return (spec.kind, spec.source, spec.time_limit, spec.memory_limit)

    def __repr__(self) -> str:
        body = self._body if len(self._body) <= 60 else self._body[:57] + "..."
        return (
            f"{type(self).__name__}({body!r}, time_limit={self._time_limit!r}, "
            f"memory_limit={self._memory_limit!r})"
        )

    def _encode(self, args: list[Any]) -> str:
        try:
            return _ENCODER.encode(args)
        except (TypeError, ValueError) as err:
            raise InvalidDocument(f"{self._WHAT} input is not JSON: {err}") from None
        except RecursionError:
            raise InvalidDocument(f"{self._WHAT} input is nested too deeply") from None

    def run_texts(self, texts: list[str]) -> list[str]:
        """Run the script once per argument text, all in one round trip to a worker.

        Parameters
        ----------
        texts : list of str
            Argument texts made by ``encode``.

        Returns
        -------
        list of str
            One report per text, to hand to ``interpret``. A report is kept as is by
            callers that replay a call (the same text gives the same verdict).
        """
        return pool().run(self._spec, texts) if texts else []

    def _raise_for(self, report: str) -> NoReturn:
        """Raise the error a failure report stands for."""
        tag, detail = report[:1], report[1:]
        if tag == "E":
            raise ScriptError(f"{self._WHAT} threw {detail}")
        if tag in ("M", "N"):
            raise ScriptMemoryError(self._memory_message(ambiguous=tag == "N"))
        if tag == "!":
            what, rest = detail[:1], detail[1:]
            if what in ("T", "W"):
                raise ScriptTimeout(
                    f"{self._WHAT} ran longer than {self._time_limit!r} s and was interrupted"
                )
            if what == "M":
                raise ScriptMemoryError(self._memory_message(ambiguous=False))
            if what == "K":
                raise ScriptError(
                    f"{self._WHAT} crashed the script engine ({rest}); the engine was restarted"
                )
            if what == "E":
                raise ScriptError(f"{self._WHAT} failed: {rest}")
        raise ScriptError(f"{self._WHAT} returned an unexpected report {report[:80]!r}")

    def _memory_message(self, *, ambiguous: bool) -> str:
        limit = _show_bytes(self._memory_limit)
        if ambiguous:
            # QuickJS throws null when it cannot allocate its own out-of-memory error, so a
            # script that throws null looks the same.
            return f"{self._WHAT} ran out of memory (limit {limit}) or threw null"
        return f"{self._WHAT} ran out of memory (limit {limit})"


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

    _KIND = scriptworker.KIND_VALIDATE
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
        self.interpret(self.run_texts([self.encode(writer, event, instance)])[0])

    def encode(
        self, writer: str | None, event: dict[str, Any], instance: dict[str, Any] | None
    ) -> str:
        """The argument text of one call (what :meth:`run_texts` takes).

        Raises
        ------
        InvalidInput
            If ``writer`` is not a string or None.
        InvalidDocument
            If ``event`` or ``instance`` is not JSON.
        """
        if writer is not None and not isinstance(writer, str):
            raise InvalidInput(f"writer must be a string or None, not {type(writer).__name__}")
        return self._encode([writer, event, instance])

    def interpret(self, report: str) -> None:
        """Return quietly for a report of ``true``; raise the verdict of any other report.

        Raises
        ------
        ScriptRejected, ScriptError, ScriptTimeout, ScriptMemoryError
            As :meth:`__call__` does.
        """
        if report == "P":
            return
        if report[:1] == "R":
            raise ScriptRejected(f"write rejected by the validator: it returned {report[1:]}")
        self._raise_for(report)


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

    _KIND = scriptworker.KIND_FILTER
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
        return self.interpret(self.run_texts([self.encode(reader, instance)])[0])

    def filter_many(
        self, reader: str | None, instances: list[dict[str, Any]]
    ) -> list[dict[str, Any] | None]:
        """Filter many instances for one reader in one round trip to a worker.

        Returns what :meth:`__call__` returns for each, in order; the first failure (in
        order) raises as :meth:`__call__` would.
        """
        texts = [self.encode(reader, instance) for instance in instances]
        return [self.interpret(report) for report in self.run_texts(texts)]

    def encode(self, reader: str | None, instance: dict[str, Any]) -> str:
        """The argument text of one call (what :meth:`run_texts` takes).

        Raises
        ------
        InvalidInput
            If ``reader`` is not a string or None.
        InvalidDocument
            If ``instance`` is not a JSON object.
        """
        if reader is not None and not isinstance(reader, str):
            raise InvalidInput(f"reader must be a string or None, not {type(reader).__name__}")
        if not isinstance(instance, dict):
            raise InvalidDocument(
                f"a read filter takes a JSON object, not {type(instance).__name__}"
            )
        return self._encode([reader, instance])

    def interpret(self, report: str) -> dict[str, Any] | None:
        """The instance a report carries (None when hidden); raise for any failure.

        The object crosses as JSON text, checked against :data:`MAX_RESULT_SIZE` and
        :data:`MAX_RESULT_DEPTH` before it is parsed.

        Raises
        ------
        ScriptError, ScriptTimeout, ScriptMemoryError
            As :meth:`__call__` does.
        """
        tag = report[:1]
        if tag == "{":
            return _parse_result(report)
        if tag == "H":
            return None
        if tag == "R":
            raise ScriptError(
                f"read filter must return an object, null or undefined; it returned {report[1:]}"
            )
        if tag == "J":
            inner = report[1:]
            if inner[:1] == "E":
                raise ScriptError(
                    f"read filter returned an object that cannot be written as JSON: {inner[1:]}"
                )
            self._raise_for(inner)
        self._raise_for(report)


def _parse_result(text: str) -> dict[str, Any]:
    """Parse a filter's JSON text with bounded size and depth.

    The worker refuses deeper or longer objects already; this side does not rely on it
    (Python's own parser stops deep nesting with RecursionError, never a crash).
    """
    what = "read filter returned an object that cannot be written as JSON"
    if len(text) > MAX_RESULT_SIZE:
        raise ScriptError(f"{what}: its JSON text is longer than {MAX_RESULT_SIZE} characters")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise ScriptError(f"{what}: {err}") from None
    if not isinstance(doc, dict):
        raise ScriptError(f"{what}: it is not an object")
    return doc
