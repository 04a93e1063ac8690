"""Supervised worker processes that run the JavaScript scripts (the parent's side).

Scripts never run in the process that holds the database: each call goes to one of a
small pool of long-lived worker processes (:mod:`threadkit.db.scriptworker`), started
on first use. The parent enforces a wall-clock limit on every call: a worker that has
not answered ``time_limit + max(WALL_GRACE, time_limit)`` seconds after the call began
is killed, and the call fails with ``ScriptTimeout``; a worker that dies (a crash in the
engine, SIGSEGV) fails its call with ``ScriptError``. Either way a fresh worker takes its
place on the next call, and the calls after the failed one in the same batch run there.

A batch of calls of one script crosses in one request and its reports come back one by
one, each under its own deadline.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Final

from threadkit.db import scriptworker as proto
from threadkit.errors import ScriptError

__all__ = ["MAX_WORKERS", "STARTUP_TIMEOUT", "WALL_GRACE", "ScriptSpec", "pool"]

MAX_WORKERS: Final = 4
"""Worker processes the pool runs at most; a call waits when all are busy."""

WALL_GRACE: Final = 1.0
"""Seconds of wall-clock time a call may run past its time limit (or its time limit, when
longer) before its worker is killed: the engine's own limit counts CPU time and cannot
stop a built-in that never checks it."""

STARTUP_TIMEOUT: Final = 60.0
"""Seconds a new worker may take to start (not counted against any script)."""

_WORKER_PATH: Final = proto.__file__
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class ScriptSpec:
    """What a worker needs to compile and run one script."""

    kind: int
    source: str
    time_limit: float
    memory_limit: int
    id: int = field(default_factory=lambda: next(_ids))

    @property
    def wall_limit(self) -> float:
        """Seconds of wall-clock time one call may take before its worker is killed."""
        return self.time_limit + max(WALL_GRACE, self.time_limit)


class _Dead(Exception):
    """The worker ended (crashed or was killed)."""


class _Late(Exception):
    """The worker did not answer in time."""


class _Worker:
    """One worker process and the scripts it has compiled."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, _WORKER_PATH],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin
        self._fd = self.proc.stdout.fileno()
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        self._buf = bytearray()
        self.loaded: set[int] = set()
        try:
            ready = self.recv(time.monotonic() + STARTUP_TIMEOUT)
        except (_Late, _Dead):
            ready = b""
        if ready != b"ready":
            raise _Dead(f"the script worker did not start ({self.end()})")

    def send(self, *frames: bytes) -> None:
        try:
            self._in.write(b"".join(proto.frame(f) for f in frames))
            self._in.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise _Dead("the script worker is gone") from None

    def _fill(self, size: int, deadline: float) -> None:
        while len(self._buf) < size:
            wait = deadline - time.monotonic()
            if wait <= 0 or not self._poll.poll(wait * 1000):
                raise _Late
            try:
                chunk = os.read(self._fd, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                raise _Dead("the script worker ended")
            self._buf += chunk

    def recv(self, deadline: float) -> bytes:
        """The next frame; _Late when it is not complete by ``deadline``, _Dead at EOF."""
        self._fill(proto.HEAD.size, deadline)
        (size,) = proto.HEAD.unpack_from(self._buf)
        end = proto.HEAD.size + size
        self._fill(end, deadline)
        data = bytes(self._buf[proto.HEAD.size : end])
        del self._buf[:end]
        return data

    def end(self) -> str:
        """Kill the process (if still running) and say how it ended."""
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if code < 0:
            try:
                return f"signal {signal.Signals(-code).name}"
            except ValueError:  # pragma: no cover - an unnamed signal
                return f"signal {-code}"
        return f"exit status {code}"

    def close(self) -> None:
        """Ask the worker to end (its input closes), then make sure it has."""
        with contextlib.suppress(OSError):
            self._in.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=1.0)
        self.end()


class _Pool:
    """Idle workers, started on demand up to MAX_WORKERS."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._count = 0

    def _take(self) -> _Worker:
        with self._cond:
            while not self._idle and self._count >= MAX_WORKERS:
                self._cond.wait()
            if self._idle:
                return self._idle.pop()
            self._count += 1
        try:
            return _Worker()
        except BaseException as exc:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            if isinstance(exc, _Dead | OSError):
                raise ScriptError(f"the script engine could not start: {exc}") from None
            raise

    def _give(self, worker: _Worker, alive: bool) -> None:
        with self._cond:
            if alive:
                self._idle.append(worker)
            else:
                self._count -= 1
            self._cond.notify()

    def load(self, spec: ScriptSpec) -> str | None:
        """Compile ``spec`` in a worker; the reason it does not compile, or None."""
        worker = self._take()
        alive = False
        try:
            worker.send(_load_frame(spec))
            reply = worker.recv(time.monotonic() + spec.wall_limit)
            alive = True
        except _Late:
            worker.end()
            return f"ran longer than {spec.time_limit!r} s while being loaded"
        except _Dead:
            return f"crashed the script engine while being loaded ({worker.end()})"
        finally:
            self._give(worker, alive)
        if reply == b"K":
            worker.loaded.add(spec.id)
            return None
        return reply[1:].decode("utf-8", "replace")

    def run(self, spec: ScriptSpec, texts: list[str]) -> list[str]:
        """One report per text (see :mod:`.scriptworker`), or ``!W`` (the wall-clock limit
        was reached) or ``!K<how it ended>`` (the worker died) for a call that failed."""
        reports: list[str] = []
        while len(reports) < len(texts):
            worker = self._take()
            alive = False
            try:
                alive = self._run_on(worker, spec, texts, reports)
            finally:
                self._give(worker, alive)
        return reports

    def _run_on(
        self, worker: _Worker, spec: ScriptSpec, texts: list[str], reports: list[str]
    ) -> bool:
        """Run the calls not reported yet on ``worker``; whether it is still usable."""
        start = len(reports)
        rest = [t.encode("utf-8", "surrogatepass") for t in texts[start:]]
        call = [proto.CALL.pack(spec.id, len(rest))]
        for data in rest:
            call.append(proto.HEAD.pack(len(data)))
            call.append(data)
        loading = spec.id not in worker.loaded
        try:
            frames = [_load_frame(spec)] if loading else []
            worker.send(*frames, b"C" + b"".join(call))
            if loading:
                reply = worker.recv(time.monotonic() + spec.wall_limit)
                if reply != b"K":  # compiled once already, so only a limit can refuse it now
                    reason = reply[1:].decode("utf-8", "replace")
                    reports.append("!E" + reason)
                    worker.recv(time.monotonic() + spec.wall_limit)  # the "?" of the call
                    return True
                worker.loaded.add(spec.id)
            for _ in rest:
                report = worker.recv(time.monotonic() + spec.wall_limit)
                if report == b"?":  # the worker dropped it: load it again
                    worker.loaded.discard(spec.id)
                    return True
                reports.append(report.decode("utf-8", "surrogatepass"))
        except _Late:
            worker.end()
            reports.append("!W")
            return False
        except _Dead:
            reports.append("!K" + worker.end())
            return False
        return True

    def close(self) -> None:
        """End every idle worker (busy ones end when their caller gives them back dead)."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._count -= len(idle)
        for worker in idle:
            worker.close()


def _load_frame(spec: ScriptSpec) -> bytes:
    head = proto.LOAD.pack(spec.id, spec.time_limit, spec.memory_limit, spec.kind)
    return b"L" + head + spec.source.encode("utf-8")


_pool: _Pool | None = None
_pool_lock = threading.Lock()


def pool() -> _Pool:
    """The process's worker pool (made on first use)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = _Pool()
        return _pool


def _forget_after_fork() -> None:
    # a forked child shares the parent's pipes: it must start workers of its own
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


def _close_at_exit() -> None:
    if _pool is not None:
        _pool.close()


os.register_at_fork(after_in_child=_forget_after_fork)
atexit.register(_close_at_exit)
