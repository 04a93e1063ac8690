"""The history of a collection's configs in total order.

Collection create, update and delete are events, so a collection's config at
any point of the order is the latest config event at or before it. A delete
ends an *epoch*; a create after it starts a new one, whose instances start
afresh (see :mod:`threadkit.db.reducer`). A migration is a config event that also
carries a transform of the documents (:mod:`threadkit.db.migrations`).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

import cbor2

from threadkit.db.config import CollectionConfig
from threadkit.db.transforms import Transform, parse_transform

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
    transforms : dict[bytes, Transform]
        The transform of each migration, by its key.
    """

    name: str
    keys: list[bytes] = field(default_factory=list)
    configs: list[CollectionConfig | None] = field(default_factory=list)
    transforms: dict[bytes, Transform] = field(default_factory=dict)
    stored: bytes | None = field(default=None, compare=False, repr=False)
    """The encoding this history was read from or last written as (None: not stored)."""

    def insert(
        self, key: bytes, config: CollectionConfig | None, transform: Transform | None = None
    ) -> bool:
        """Add a config event (a migration with its ``transform``); returns True when it is
        now the latest (and was new)."""
        at = bisect.bisect_left(self.keys, key)
        if at < len(self.keys) and self.keys[at] == key:
            return False
        self.keys.insert(at, key)
        self.configs.insert(at, config)
        if transform is not None:
            self.transforms[key] = transform
        return at == len(self.keys) - 1

    def copy(self) -> CollHistory:
        """A copy to change (the committed history changes only on commit)."""
        return CollHistory(self.name, list(self.keys), list(self.configs), dict(self.transforms))

    def migrations(self) -> list[tuple[bytes, bytes, Transform]]:
        """``(key, epoch, transform)`` of every migration, in order."""
        out = []
        for key in sorted(self.transforms):
            epoch = self.at(key)[1]
            if epoch is not None:
                out.append((key, epoch, self.transforms[key]))
        return out

    def latest_migration(self) -> bytes | None:
        """The key of the latest migration of the current epoch (what a local write saw)."""
        epoch = self.current_epoch
        keys = [k for k in self.transforms if epoch is not None and k >= epoch]
        return max(keys) if keys else None

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
        """CBOR ``[[key, config node | null (, transform node)], …]`` (a transform for a
        migration)."""
        entries: list[list[Any]] = []
        for key, config in zip(self.keys, self.configs, strict=True):
            entry: list[Any] = [key, config.to_node() if config else None]
            transform = self.transforms.get(key)
            if transform is not None:
                entry.append(transform.to_node())
            entries.append(entry)
        return cbor2.dumps(entries)

    @classmethod
    def decode(cls, name: str, data: bytes) -> CollHistory:
        """Inverse of :meth:`encode`."""
        entries: list[Any] = cbor2.loads(data)
        history = cls(name, stored=data)
        for key, node, *transform in entries:
            history.keys.append(key)
            history.configs.append(CollectionConfig.from_node(node) if node else None)
            if transform:
                history.transforms[key] = parse_transform(transform[0], compile_js=False)
        return history
