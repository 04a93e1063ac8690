"""A threadkit Node in its own process, for tests/net/test_node.py.

Usage: ``python node_child.py SEED_HEX [--no-stop]``

Starts a Node with the framed echo protocol, prints one JSON line
``{"peer_id": ..., "addrs": [...]}`` and waits for stdin to close. Then it stops the node
and prints ``{"stopped": true, "port_free": ..., "threads": [...]}`` — or, with
``--no-stop``, exits with the node still running, leaving it to the atexit safety net.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from threadkit.net.framing import FrameReader, write_frame
from threadkit.net.node import Node

ECHO = "/threadkit-test/echo/1.0.0"


async def echo(stream: Any, remote_peer_id: str) -> None:
    reader = FrameReader(stream)
    while (payload := await reader.read_frame(1 << 24)) is not None:
        await write_frame(stream, payload)


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
    return True


def main() -> int:
    seed = bytes.fromhex(sys.argv[1])
    node = Node(seed)
    node.set_handler(ECHO, echo)
    node.start()
    print(json.dumps({"peer_id": node.peer_id, "addrs": node.addrs}), flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    if "--no-stop" in sys.argv:
        return 0
    port = int(node.addrs[0].split("/tcp/")[1].split("/")[0])
    node.stop()
    threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    print(json.dumps({"stopped": True, "port_free": port_free(port), "threads": threads}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
