"""The history of a collection's configs in total order.

Collection create, update and delete are events, so a collection's config at
any point of the order is the latest config event at or before it. A delete
ends an *epoch*; a create after it starts a new one, whose instances start
afresh (see :mod:`threadkit.db.reducer`).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

import cbor2

from threadkit.db.config import CollectionConfig

__all__ = ["CollHistory"]


@dataclass
class CollHistory:
    """Config events of one collection, sorted by order key.

    Attributes
    ----------
    name : str
        The collection.
    keys : list[bytes]
        Order keys of its config events, ascending.
    configs : list[CollectionConfig | None]
        The config each event set (None for a delete).
    """

    name: str
    keys: list[bytes] = field(default_factory=list)
    configs: list[CollectionConfig | None] = field(default_factory=list)
    stored: bytes | None = field(default=None, compare=False, repr=False)
    """The encoding this history was read from or last written as (None: not stored)."""

    def insert(self, key: bytes, config: CollectionConfig | None) -> bool:
        """Add a config event; returns True when it is now the latest (and was new)."""
        at = bisect.bisect_left(self.keys, key)
        if at < len(self.keys) and self.keys[at] == key:
            return False
        self.keys.insert(at, key)
        self.configs.insert(at, config)
        return at == len(self.keys) - 1

    def at(self, key: bytes) -> tuple[CollectionConfig | None, bytes | None]:
        """The config in effect at ``key`` and the key that started its epoch."""
        at = bisect.bisect_right(self.keys, key) - 1
        if at < 0 or self.configs[at] is None:
            return None, None
        start = at
        while start > 0 and self.configs[start - 1] is not None:
            start -= 1
        return self.configs[at], self.keys[start]

    @property
    def current(self) -> CollectionConfig | None:
        """The latest config (None when deleted or never created)."""
        return self.configs[-1] if self.configs else None

    @property
    def current_epoch(self) -> bytes | None:
        """The key that started the current epoch."""
        return self.at(self.keys[-1])[1] if self.keys else None

    def encode(self) -> bytes:
        """CBOR ``[[key, config node | null], …]``."""
        return cbor2.dumps(
            [[k, c.to_node() if c else None] for k, c in zip(self.keys, self.configs, strict=True)]
        )

    @classmethod
    def decode(cls, name: str, data: bytes) -> CollHistory:
        """Inverse of :meth:`encode`."""
        entries: list[Any] = cbor2.loads(data)
        history = cls(name, stored=data)
        for key, node in entries:
            history.keys.append(key)
            history.configs.append(CollectionConfig.from_node(node) if node else None)
        return history
