"""The document store: collections, schema, indexes, scripts, queries, transactions, listen."""
