"""ThreadDB's remote API: the gRPC server behind ``threadkit daemon`` and ``tk.Client``."""
