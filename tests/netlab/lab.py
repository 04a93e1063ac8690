"""A network lab: Linux network namespaces as hosts, veth pairs and bridges, NAT routers.

Each "host" is a network namespace of its own; peers run in it as separate processes
(``ip netns exec <ns> python ...``), so they see only that host's interfaces and reach
other hosts only through the lab's links, bridges and routers — there is no loopback
shortcut between hosts. A "switch" is a namespace holding one bridge; hosts plug into it
with a veth pair. A NAT router is a host with two links (LAN side, WAN side), IP
forwarding on and an nftables ``masquerade`` rule on its WAN side; it drops connections
that start on the WAN side, as a home router does.

Every namespace is named ``tklab<pid>-<n>-<name>``: unique per test process, so parallel
runs never touch each other's, and :func:`clean_leftovers` can delete the ones of a run
whose process is gone (a crashed earlier run). :meth:`Lab.close` kills the processes the
lab started and deletes its namespaces (with them every veth, bridge and nftables rule in
them); the ``lab`` fixture calls it when the test ends, passed or failed.

Needs root, ``ip`` (iproute2) and ``nft`` (nftables); :func:`unavailable` says why the lab
cannot run here, or returns ``None``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

PREFIX = "tklab"
"""Every lab namespace's name starts with this, then the pid of the test process."""

_counter = itertools.count()


class LabError(RuntimeError):
    """A lab command failed (carries the command and its stderr)."""


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done


def unavailable() -> str | None:
    """Why the lab cannot run on this machine, or ``None`` when it can."""
    if os.geteuid() != 0:
        return "the network lab needs root (network namespaces, veth pairs, nftables)"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"the network lab needs {tool!r} (install {package})"
    probe = f"{PREFIX}{os.getpid()}-probe{next(_counter)}"
    done = _run("ip", "netns", "add", probe, check=False)
    if done.returncode != 0:
        return f"cannot create a network namespace: {done.stderr.strip()}"
    try:
        table = _run("ip", "netns", "exec", probe, "nft", "add", "table", "ip", "t", check=False)
        if table.returncode != 0:
            return f"nftables does not work in a namespace: {table.stderr.strip()}"
    finally:
        _run("ip", "netns", "del", probe, check=False)
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_leftovers() -> list[str]:
    """Delete the lab namespaces of test processes that are gone; return their names.

    Processes still running inside such a namespace (peers of a crashed run) are killed
    first, by the pids ``ip netns pids`` lists for it.
    """
    done = _run("ip", "netns", "list", check=False)
    removed = []
    for line in done.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(PREFIX):
            continue
        owner = name[len(PREFIX) :].split("-", 1)[0]
        if not owner.isdigit() or _pid_alive(int(owner)):
            continue
        _kill_inside(name)
        _run("ip", "netns", "del", name, check=False)
        removed.append(name)
    return removed


def _kill_inside(ns: str) -> None:
    pids = _run("ip", "netns", "pids", ns, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), 9)


@dataclass
class Host:
    """One namespace of the lab.

    Attributes
    ----------
    lab : Lab
        The lab it belongs to.
    name : str
        Its short name in the lab (``"a"``, ``"home1"``).
    ns : str
        The namespace's name.
    addrs : dict[str, str]
        Interface name to its IPv4 address (without the prefix length).
    """

    lab: Lab
    name: str
    ns: str
    addrs: dict[str, str] = field(default_factory=dict)

    @property
    def ip(self) -> str:
        """The host's first address (its only one, for a host on one network)."""
        return next(iter(self.addrs.values()))

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command inside this host and wait for it."""
        return _run("ip", "netns", "exec", self.ns, *argv, check=check)

    def prefix(self) -> list[str]:
        """The argv prefix that runs a command inside this host."""
        return ["ip", "netns", "exec", self.ns]

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a process inside this host; the lab kills it when it closes."""
        proc: subprocess.Popen[Any] = subprocess.Popen([*self.prefix(), *argv], **kwargs)
        self.lab.procs.append(proc)
        return proc


class Lab:
    """Namespaces, links and routers made for one test; :meth:`close` removes them all."""

    def __init__(self) -> None:
        self.tag = f"{PREFIX}{os.getpid()}-{next(_counter)}"
        self.namespaces: list[str] = []
        self.hosts: dict[str, Host] = {}
        self.procs: list[subprocess.Popen[Any]] = []
        self.closers: list[Any] = []
        self._links = itertools.count()

    # -------------------------------------------------------------- building blocks

    def _namespace(self, name: str) -> str:
        ns = f"{self.tag}-{name}"
        _run("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        _run("ip", "-n", ns, "link", "set", "lo", "up")
        return ns

    def host(self, name: str) -> Host:
        """A new host without links yet (loopback up)."""
        if name in self.hosts:
            raise LabError(f"host {name!r} exists")
        host = Host(self, name, self._namespace(name))
        self.hosts[name] = host
        return host

    def switch(self, name: str) -> str:
        """A new switch (a namespace with bridge ``br0``); returns its namespace."""
        ns = self._namespace(f"sw-{name}")
        _run("ip", "-n", ns, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", ns, "link", "set", "br0", "up")
        return ns

    def plug(self, host: Host, switch: str, ifname: str, cidr: str) -> None:
        """Connect ``host`` to ``switch`` with a veth pair; ``ifname`` gets ``cidr``."""
        port = f"p{next(self._links)}"
        _run(
            "ip", "link", "add", "name", ifname, "netns", host.ns, "type", "veth",
            "peer", "name", port, "netns", switch,
        )  # fmt: skip
        _run("ip", "-n", switch, "link", "set", port, "master", "br0")
        _run("ip", "-n", switch, "link", "set", port, "up")
        _run("ip", "-n", host.ns, "addr", "add", cidr, "dev", ifname)
        _run("ip", "-n", host.ns, "link", "set", ifname, "up")
        host.addrs[ifname] = cidr.split("/")[0]

    def route_default(self, host: Host, via: str) -> None:
        """Send everything off-link through ``via``."""
        _run("ip", "-n", host.ns, "route", "add", "default", "via", via)

    def nat_router(self, router: Host, wan: str, unsolicited: str = "drop") -> None:
        """Make ``router`` a NAT router: forwarding, masquerade on ``wan``, no inbound starts.

        ``masquerade`` without ``random``/``fully-random`` keeps a connection's source
        port whenever it is free on the WAN address, as most home routers do: a host that
        dials from its listen port is seen outside on the same port, whoever it dials
        (endpoint-independent in effect). What starts on the WAN side and matches no
        mapping is dropped — forwarded or addressed to the router itself — with
        ``unsolicited="drop"`` (a home router's firewall, silent); ``"reset"`` answers a
        TCP SYN to the router with a RST instead (what the router's kernel does with no
        firewall, and what routers that "reject" do). Each rule counts what it hit:
        ``nft list chain ip lab input`` inside the router.
        """
        if unsolicited not in ("drop", "reset"):
            raise LabError(f"unsolicited must be 'drop' or 'reset', not {unsolicited!r}")
        verdict = "drop" if unsolicited == "drop" else "reject with tcp reset"
        router.run("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        rules = f"""
        table ip lab {{
            chain post {{
                type nat hook postrouting priority srcnat; policy accept;
                oifname "{wan}" masquerade
            }}
            chain forward {{
                type filter hook forward priority filter; policy drop;
                ct state established,related accept
                iifname != "{wan}" accept
            }}
            chain input {{
                type filter hook input priority filter; policy accept;
                iifname "{wan}" ct state new,invalid meta l4proto tcp counter {verdict}
                iifname "{wan}" ct state new,invalid counter drop
            }}
        }}
        """
        done = subprocess.run(
            [*router.prefix(), "nft", "-f", "-"],
            input=rules,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise LabError(f"nft on {router.name}: {done.stderr.strip()}")

    # -------------------------------------------------------------- topologies

    def lan(self, names: tuple[str, ...] = ("a", "b", "c"), net: str = "10.77.1") -> list[Host]:
        """Hosts on one LAN switch, ``<net>.11``, ``.12``, … (``eth0``)."""
        switch = self.switch("lan")
        hosts = []
        for i, name in enumerate(names):
            host = self.host(name)
            self.plug(host, switch, "eth0", f"{net}.{11 + i}/24")
            hosts.append(host)
        return hosts

    def nat_world(self, unsolicited: str = "drop") -> dict[str, Host]:
        """Two home networks, each behind its own NAT router, and a public host between.

        ``public`` (198.51.100.10) and the routers' WAN sides (.1, .2) share the "internet"
        switch; ``home1`` (10.1.0.10) sits behind ``router1`` (10.1.0.1), ``home2``
        (10.2.0.10) behind ``router2``. The public host has no route into the home
        networks, and the routers refuse connections that start outside (silently, or
        with a RST: ``unsolicited``, see :meth:`nat_router`): a home host can dial the
        public host, nothing can dial a home host.
        """
        internet = self.switch("inet")
        public = self.host("public")
        self.plug(public, internet, "eth0", "198.51.100.10/24")
        hosts = {"public": public}
        for n in (1, 2):
            router = self.host(f"router{n}")
            self.plug(router, internet, "wan", f"198.51.100.{n}/24")
            home_switch = self.switch(f"home{n}")
            self.plug(router, home_switch, "lan", f"10.{n}.0.1/24")
            self.nat_router(router, "wan", unsolicited)
            home = self.host(f"home{n}")
            self.plug(home, home_switch, "eth0", f"10.{n}.0.10/24")
            self.route_default(home, f"10.{n}.0.1")
            hosts[f"router{n}"] = router
            hosts[f"home{n}"] = home
        return hosts

    # -------------------------------------------------------------- inspection

    def flows(self, router: Host) -> list[str]:
        """The router's established TCP connections (conntrack), one line each."""
        done = router.run("cat", "/proc/net/nf_conntrack", check=False)
        lines = done.stdout.splitlines()
        return [line for line in lines if " tcp " in line and "ESTABLISHED" in line]

    def refused(self, router: Host) -> int:
        """How many unsolicited TCP packets on its WAN side ``router`` refused (RST or drop)."""
        done = router.run("nft", "list", "chain", "ip", "lab", "input")
        for line in done.stdout.splitlines():
            if "meta l4proto tcp" in line and "packets" in line:
                return int(line.split("packets")[1].split()[0])
        raise LabError(f"no TCP counter in {router.name}'s input chain:\n{done.stdout}")

    # -------------------------------------------------------------- teardown

    def close(self) -> None:
        """Stop what the lab started, then delete its namespaces (links and rules with them)."""
        for closer in reversed(self.closers):
            with contextlib.suppress(Exception):
                closer()
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
        for ns in reversed(self.namespaces):
            _kill_inside(ns)
            _run("ip", "netns", "del", ns, check=False)
        self.namespaces.clear()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
