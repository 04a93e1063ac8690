"""threadkit's network side: py-libp2p embedded on a background trio thread.

- :mod:`threadkit.net.node` — ``Node``: a libp2p host (Noise, Yamux, a stable Ed25519
  identity) on its own trio thread, with a sync bridge (``call``/``submit``/``spawn``)
  and async helpers for protocol code (``connect``, ``open_stream``, ``set_handler``,
  ``publish``, ``subscribe``).
- :mod:`threadkit.net.framing` — uvarint length-prefixed messages on a stream, read
  through a buffered ``FrameReader``.
- :mod:`threadkit.net.streams` — ``StreamPool``: long-lived request/response streams per
  remote peer (reuse, retry on a broken stream, idle close).
- :mod:`threadkit.net.service` — ``ThreadService``: replication of threads over
  ``/threadkit`` (docs/protocol.md), with its parts in :mod:`~threadkit.net.serve`,
  :mod:`~threadkit.net.push`, :mod:`~threadkit.net.pull`, :mod:`~threadkit.net.receive`,
  :mod:`~threadkit.net.gossip`, :mod:`~threadkit.net.bare`, :mod:`~threadkit.net.client`
  and :mod:`~threadkit.net.context`.

Nothing here is imported by ``import threadkit``; trio and libp2p load when a node starts.
"""
