"""Pure values and codecs, no I/O: ids, keys, identities, tokens, records, clock, addresses."""
