"""The notebook layer's data views: collections as pandas DataFrames and Arrow tables.

- :mod:`.frame` — ``to_pandas`` / ``to_arrow`` / ``to_parquet`` (cached, incremental), and
  ``frame_from_documents`` for documents fetched elsewhere (``tk.Client``);
- :mod:`.build` — the frame builder both use (documents + schema → DataFrame);
- :mod:`.ingest` — ``from_pandas`` / ``create_many`` (bulk, one transaction per chunk);
- :mod:`.dtypes` — the JSON Schema <-> dtype mapping;
- :mod:`.expr` — pandas ``query`` syntax compiled to :class:`threadkit.Query`;
- :mod:`.columns` — column expressions (``coll.c.age > 30``);
- :mod:`.lazy` — ``query_frame`` and :class:`~.lazy.LazyFrame`;
- :mod:`.export` — ``to_parquet(dir, partition_by=...)``: a hive-partitioned dataset, streamed.

pandas and pyarrow are imported only by the modules that need them, so importing
``threadkit`` stays cheap.
"""
