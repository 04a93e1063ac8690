"""LAN discovery: peers on the same network find each other by mDNS (py-libp2p's).

A peer with LAN discovery on announces itself as a ``_p2p._udp.local.`` service (the
libp2p mDNS spec: its addresses in ``dnsaddr`` TXT records) and browses for the others.
:class:`LanDiscovery` keeps what it found: ``peers()`` maps each peer id seen on the LAN
to its addresses. It uses py-libp2p's :class:`~libp2p.discovery.mdns.mdns.MDNSDiscovery`
(on python-zeroconf, which runs on threads of its own) with three changes of how it is
driven:

- the addresses announced are the node's advertised ones (wildcard binds expanded,
  :mod:`threadkit.net.addrs`) without loopback; py-libp2p would announce the host's
  transport addresses, ``0.0.0.0`` included, which nobody can dial;
- registering the service (zeroconf waits for its probes and announcements, about 2 s)
  and unregistering run on a daemon thread, so the peer's start is not held up;
- the peers found come from py-libp2p's process-wide ``peerDiscovery`` event, which
  every mDNS instance of the process emits: each :class:`LanDiscovery` keeps only peers
  other than its own node.

:func:`join_on_lan` joins a database by thread id alone: it asks the LAN peers found so
far, one after another, and joins through the first that serves the thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from threadkit.errors import InvalidThreadKey, NetworkError, ThreadkitError, Timeout
from threadkit.net.addrs import is_loopback

if TYPE_CHECKING:
    from threadkit.core.addr import ThreadAddr
    from threadkit.core.ids import ThreadID
    from threadkit.net.node import Node

__all__ = ["LanDiscovery", "join_on_lan", "lan_addrs"]

log = logging.getLogger(__name__)

_POLL = 0.2  # seconds between looks at the peers found, while joining


def lan_addrs(addrs: list[str]) -> list[str]:
    """The addresses worth announcing on a LAN: not loopback, without ``/p2p/<id>``.

    Examples
    --------
    >>> lan_addrs(["/ip4/10.0.0.2/tcp/4006/p2p/12D3KooWx", "/ip4/127.0.0.1/tcp/4006/p2p/12D3KooWx"])
    ['/ip4/10.0.0.2/tcp/4006']
    """
    out = []
    for addr in addrs:
        if is_loopback(addr):
            continue
        out.append(addr.split("/p2p/")[0])
    return out


class LanDiscovery:
    """mDNS announce and browse for one node.

    Parameters
    ----------
    node : Node
        The started node; its advertised addresses (:attr:`Node.addrs`) are announced.
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        self._found: dict[str, tuple[list[str], float]] = {}
        self._lock = threading.Lock()
        self._mdns: Any = None
        self._handler: Any = None
        self._registered = threading.Event()
        self.error: str | None = None

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop` (when there was something to announce)."""
        return self._mdns is not None

    def start(self) -> None:
        """Start browsing at once; announce this node on a daemon thread.

        A node with only loopback addresses has nothing to announce and starts nothing.
        """
        from libp2p.discovery.events.peerDiscovery import peerDiscovery
        from libp2p.discovery.mdns.mdns import MDNSDiscovery

        addrs = lan_addrs(self.node.addrs)
        if not addrs:
            self.error = "only loopback addresses: nothing to announce on a LAN"
            return
        port = int(addrs[0].split("/tcp/")[1].split("/")[0]) if "/tcp/" in addrs[0] else 0
        own = self.node.peer_id

        def found(info: Any) -> None:
            peer_id = str(info.peer_id)
            if peer_id == own:
                return
            peer_addrs = lan_addrs([str(a) for a in info.addrs])
            if peer_addrs:
                with self._lock:
                    self._found[peer_id] = (peer_addrs, time.monotonic())
                log.debug("found %s on the LAN at %s", peer_id, peer_addrs)

        # zeroconf logs its own warnings (a failed send, a busy port): never on a notebook's
        # stderr through logging's last-resort handler; an application's handlers still see them
        zeroconf_log = logging.getLogger("zeroconf")
        if not zeroconf_log.handlers:
            zeroconf_log.addHandler(logging.NullHandler())
        self._handler = found
        peerDiscovery.register_peer_discovered_handler(found)
        try:
            self._mdns = MDNSDiscovery(self.node.host.get_network(), port=port, listen_addrs=addrs)
        except BaseException:
            peerDiscovery.unregister_peer_discovered_handler(found)
            raise
        mdns = self._mdns

        def register() -> None:
            try:
                mdns.broadcaster.register()
            except Exception as exc:  # zeroconf closed under it, or no multicast
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("mDNS announce failed: %s", self.error)
            finally:
                self._registered.set()

        threading.Thread(target=register, name="threadkit-mdns", daemon=True).start()

    def peers(self) -> dict[str, list[str]]:
        """Peer id → LAN addresses (without ``/p2p/``) of every peer found so far."""
        with self._lock:
            return {pid: list(addrs) for pid, (addrs, _) in self._found.items()}

    def stop(self) -> None:
        """Unannounce, stop browsing and close zeroconf (waits for the announce to end)."""
        from libp2p.discovery.events.peerDiscovery import peerDiscovery

        mdns, self._mdns = self._mdns, None
        if self._handler is not None:
            peerDiscovery.unregister_peer_discovered_handler(self._handler)
            self._handler = None
        if mdns is None:
            return
        self._registered.wait(timeout=10)
        try:
            mdns.broadcaster.unregister()
            mdns.listener.stop()
            mdns.zeroconf.close()
        except Exception as exc:  # stopping anyway
            log.debug("mDNS stop: %s", exc)


async def join_on_lan(
    lan: LanDiscovery | None,
    thread_id: ThreadID,
    join: Callable[[ThreadAddr], Awaitable[Any]],
    timeout: float,
) -> Any:
    """Join through the first LAN peer that serves ``thread_id``; returns what ``join`` does.

    Peers are asked as mDNS finds them (each once, on each of its addresses in turn),
    until one serves the thread or ``timeout`` seconds have passed.

    Raises
    ------
    NetworkError
        LAN discovery is off on this peer.
    InvalidThreadKey
        A peer serves the thread and the key's read key does not open it.
    Timeout
        No LAN peer served the thread in time; the message names the peers asked and
        what each answered.
    """
    import trio

    from threadkit.core.addr import ThreadAddr

    if lan is None or not lan.running:
        reason = f" ({lan.error})" if lan is not None and lan.error else ""
        raise NetworkError(
            f"LAN discovery is off on this peer{reason}: open it with mdns=True and a "
            "listen address on the LAN (/ip4/0.0.0.0/tcp/0), or join with a full address"
        )
    deadline = trio.current_time() + timeout
    asked: dict[str, str] = {}
    while trio.current_time() < deadline:
        for peer_id, addrs in lan.peers().items():
            if peer_id in asked:
                continue
            for addr in addrs:
                target = ThreadAddr(addr, peer_id, thread_id)
                try:
                    with trio.fail_after(max(0.1, deadline - trio.current_time())):
                        return await join(target)
                except trio.TooSlowError:
                    asked[peer_id] = "no answer in time"
                except InvalidThreadKey:
                    raise  # the thread is there, the key is wrong: asking on will not help
                except ThreadkitError as exc:
                    asked[peer_id] = f"{type(exc).__name__}: {exc}"
                    log.debug("%s does not serve %s: %s", peer_id, thread_id, exc)
        await trio.sleep(_POLL)
    tried = "; ".join(f"{pid}: {why}" for pid, why in asked.items()) or "none found"
    raise Timeout(f"no peer on the LAN served thread {thread_id} within {timeout:g} s ({tried})")
