"""Start ``threadkit daemon`` as a real subprocess on loopback and any free ports."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

_API_LINE = re.compile(r"API listening on (\S+):(\d+)")
_PROXY_LINE = re.compile(r"Proxy listening on (\S+):(\d+)")


class Daemon:
    """A ``python -m threadkit.cli daemon`` child.

    :attr:`target` is its gRPC ``host:port``, :attr:`proxy` its grpc-web one.
    """

    def __init__(
        self, repo: str | Path | None, *extra: str, env: dict[str, str] | None = None
    ) -> None:
        """Start it; ``repo`` None leaves the repo to ``THRDS_REPO`` in ``env``."""
        command = [sys.executable, "-m", "threadkit.cli", "daemon"]
        if repo is not None:
            command += ["--repo", str(repo)]
        command += [
            "--hostAddr",
            "/ip4/127.0.0.1/tcp/0",
            "--apiAddr",
            "/ip4/127.0.0.1/tcp/0",
            *extra,
        ]
        if "THRDS_APIPROXYADDR" not in (env or {}) and "--apiProxyAddr" not in extra:
            command += ["--apiProxyAddr", "/ip4/127.0.0.1/tcp/0"]
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("THRDS_")}
        child_env.update(env or {}, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env,
        )
        self.stdout: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._pump_out, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()
        self.target = ""
        self.proxy = ""
        self.peer_id = ""
        self.repo_path = Path(repo) if repo is not None else None

    def _pump_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout.put(line)

    def _pump_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def wait_ready(self, timeout: float = 60.0) -> Daemon:
        """Block until the daemon prints its API and proxy addresses."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.stdout.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if line.startswith("Welcome to Threads!"):
                self.peer_id = line.split()[-1]
            match = _API_LINE.search(line)
            if match:
                self.target = f"{match.group(1)}:{match.group(2)}"
            match = _PROXY_LINE.search(line)
            if match:
                self.proxy = f"{match.group(1)}:{match.group(2)}"
                return self
        raise AssertionError("daemon did not start; stderr:\n" + "".join(self.stderr[-40:]))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the daemon and wait for it to exit; returns its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError("daemon did not stop on " + signal.Signals(sig).name) from None
        return self.proc.returncode

    def log(self) -> str:
        """Everything the daemon wrote to stderr so far."""
        return "".join(self.stderr)
