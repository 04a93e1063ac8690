"""ThreadDB's remote API: the gRPC server behind ``threadkit daemon`` and ``tk.Client``.

Public modules: :mod:`~threadkit.api.client` (``tk.Client`` and its remote classes),
:mod:`~threadkit.api.server` (:class:`~threadkit.api.server.APIServer`),
:mod:`~threadkit.api.daemon` (the daemon's configuration and life cycle),
:mod:`~threadkit.api.proxy` (the grpc-web/websocket proxy), :mod:`~threadkit.api.limits`
(stream and connection budgets) and :mod:`~threadkit.api.wire` (what both sides of the wire
agree on: the error table, metadata keys, the message limit). The ``_``-prefixed modules are
their parts, not an interface.
"""
