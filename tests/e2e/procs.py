"""Run threadkit peers in separate processes (tests/e2e/peer_child.py) and talk to them."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CHILD = Path(__file__).with_name("peer_child.py")


class PeerProcessError(AssertionError):
    """A command failed in the child (carries the child's error class name)."""

    def __init__(self, reply: dict[str, Any]) -> None:
        super().__init__(f"{reply.get('error')}: {reply.get('message')}\n{reply.get('trace', '')}")
        self.error = reply.get("error")
        self.reply = reply


class PeerProcess:
    """A peer in a child process; ``call(cmd, **fields)`` returns the child's reply."""

    def __init__(
        self, path: str | Path | None = None, *, wrap: Sequence[str] = (), **open_args: Any
    ) -> None:
        # wrap: an argv prefix, e.g. ["ip", "netns", "exec", ns] to run it on a lab host
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [*wrap, sys.executable, str(CHILD)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._replies: queue.Queue[str] = queue.Queue()
        self._stderr: list[str] = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        reply = self.call("open", path=str(path) if path else None, **open_args)
        self.peer_id: str = reply["peer_id"]
        self.addrs: list[str] = reply["addrs"]

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._replies.put(line)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    def call(self, cmd: str, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        """Send one command; raise PeerProcessError when the child reports a failure.

        ``timeout`` goes to the child too (commands that wait use it); the reply is
        awaited that long plus 30 s (60 s when not given).
        """
        assert self.proc.stdin is not None
        if timeout is not None:
            fields["timeout"] = timeout
        wait = 60.0 if timeout is None else timeout + 30.0
        self.proc.stdin.write(json.dumps({"cmd": cmd, **fields}) + "\n")
        self.proc.stdin.flush()
        try:
            line = self._replies.get(timeout=wait)
        except queue.Empty:
            raise AssertionError(
                f"peer process did not answer {cmd!r} in {wait} s; stderr:\n"
                + "".join(self._stderr[-40:])
            ) from None
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            raise PeerProcessError(reply)
        return reply

    def kill(self) -> None:
        """SIGKILL the child (no clean shutdown)."""
        self.proc.kill()
        self.proc.wait(timeout=10)

    def close(self) -> None:
        """Ask the child to close, then make sure it is gone."""
        if self.proc.poll() is None:
            with contextlib.suppress(AssertionError, BrokenPipeError, OSError):
                self.call("close", timeout=20)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> PeerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
