"""The lab itself: hosts are isolated, NAT routers let connections out and none in."""

from __future__ import annotations

import os
import subprocess
import sys

import lab as netlab
import pytest

PROBE = """
import socket, sys
mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "serve":
    s = socket.socket(); s.bind((host, port)); s.listen(); print("ready", flush=True)
    c, (ip, _) = s.accept(); print(ip, flush=True)
else:
    try:
        socket.create_connection((host, port), timeout=2).close(); print("connected")
    except OSError as exc:
        print("failed", type(exc).__name__)
"""


def _serve(host: netlab.Host, port: int) -> subprocess.Popen[str]:
    proc = host.popen(
        [sys.executable, "-c", PROBE, "serve", "0.0.0.0", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _dial(host: netlab.Host, ip: str, port: int) -> str:
    return host.run(sys.executable, "-c", PROBE, "dial", ip, str(port)).stdout.strip()


def test_lan_hosts_reach_each_other_and_nothing_else(lab: netlab.Lab) -> None:
    a, b, _ = lab.lan()
    server = _serve(b, 7001)
    assert _dial(a, b.ip, 7001) == "connected"
    assert server.stdout is not None and server.stdout.readline().strip() == a.ip
    # the host's loopback is its own: b's server is not on a's 127.0.0.1
    assert _dial(a, "127.0.0.1", 7001).startswith("failed")
    interfaces = a.run("ip", "-o", "-4", "addr").stdout
    assert "10.77.1.11" in interfaces and "10.77.1.12" not in interfaces


def test_nat_lets_connections_out_masqueraded_and_none_in(lab: netlab.Lab) -> None:
    world = lab.nat_world()
    public, home1, home2 = world["public"], world["home1"], world["home2"]
    server = _serve(public, 7002)
    assert _dial(home1, public.ip, 7002) == "connected"
    # the public host sees the router's address, not the home host's private one
    assert server.stdout is not None and server.stdout.readline().strip() == "198.51.100.1"
    _serve(home2, 7003)
    assert _dial(public, home2.ip, 7003).startswith("failed")
    assert _dial(home1, home2.ip, 7003).startswith("failed")
    assert _dial(public, "198.51.100.2", 7003).startswith("failed")


def test_close_removes_every_namespace_and_process(lab: netlab.Lab) -> None:
    other = netlab.Lab()
    try:
        (host,) = other.lan(("solo",))
        proc = host.popen(["sleep", "60"])
        made = list(other.namespaces)
    finally:
        other.close()
    assert proc.poll() is not None
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(ns in listed for ns in made)


def test_leftovers_of_a_dead_run_are_cleaned(lab: netlab.Lab) -> None:
    # a namespace named as a crashed run's (a pid that is not running) with a process in it
    dead = subprocess.Popen(["true"])
    dead.wait()
    ns = f"{netlab.PREFIX}{dead.pid}-0-crashed"
    if os.path.exists(f"/proc/{dead.pid}"):
        pytest.skip("the pid was reused at once")
    subprocess.run(["ip", "netns", "add", ns], check=True)
    sleeper = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "60"])
    try:
        subprocess.run(["sleep", "0.2"], check=True)
        assert ns in netlab.clean_leftovers()
        sleeper.wait(timeout=10)
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert ns not in listed
        # the running test's own namespaces are kept
        assert all(n in listed for n in lab.namespaces)
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
