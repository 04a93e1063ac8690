"""ThreadDB's .proto files (``threads.pb``, ``threads.net.pb``) and protoc's Python output."""
