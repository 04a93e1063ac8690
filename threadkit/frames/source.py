"""What a view needs from a collection or a database: the source protocols.

The notebook views (``coll.df``, ``coll.query``, ``coll.at``, ``db.history()``,
the record DAG…) are written once against these protocols, not against the
store's classes; ``threadkit.views`` attaches them to the store's
``Collection`` and ``Database``. The store's classes satisfy them
structurally.

Three more protocols carry what differs between a collection of the store and
one a daemon serves (``tk.Client``): :class:`CollectionFrames` (how documents become
a frame, an expression a query), :class:`CollectionLog` and :class:`DatabaseLog`
(where the record log is read, or why it cannot be). The views written against
them (:class:`threadkit.frames.views.FrameViews`, ``TimeViews``, ``DatabaseViews``,
:class:`threadkit.graph.GraphViews`) are the same on both sides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd

    from threadkit.core.identity import Identity, PublicKey
    from threadkit.core.ids import ThreadID
    from threadkit.core.keys import ThreadKey
    from threadkit.db.config import CollectionConfig, Index
    from threadkit.db.listen import Feed
    from threadkit.db.query import Query
    from threadkit.db.readside import Timeline
    from threadkit.db.txn import ReadTxn, WriteTxn

__all__ = ["CollectionFrames", "CollectionLog", "CollectionSource", "DatabaseLog", "DatabaseSource"]


class DatabaseSource(Protocol):
    """What the database views need from a database."""

    @property
    def id(self) -> ThreadID:
        """The thread id."""
        ...

    @property
    def name(self) -> str:
        """The database's name."""
        ...

    @property
    def key(self) -> ThreadKey:
        """The thread key."""
        ...

    @property
    def log_id(self) -> str:
        """This peer's log id in the database."""
        ...

    @property
    def identity(self) -> Identity:
        """The peer's identity (the default reader and writer)."""
        ...

    @property
    def timeline(self) -> Timeline:
        """The read side of the database's history."""
        ...

    @property
    def engine(self) -> Any:
        """The engine (read-only use: collection configs and their histories)."""
        ...

    def listen(
        self,
        collection: str | None = None,
        instance_id: str | None = None,
        actions: Any = None,
        maxsize: int = 10_000,
    ) -> Feed:
        """A feed of changes."""
        ...

    def lost_writes(self, collection: str | None = None) -> list[dict[str, Any]]:
        """The writes that lost a conflict."""
        ...

    def new_collection(
        self,
        name: str,
        schema: dict[str, Any] | None = None,
        indexes: Iterable[Index | str | dict[str, Any]] = (),
        write_validator: str | None = None,
        read_filter: str | None = None,
        identity: Any = None,
    ) -> Any:
        """Create a collection."""
        ...

    def delete_collection(self, name: str, identity: Any = None) -> None:
        """Delete a collection."""
        ...


class CollectionSource(Protocol):
    """What the collection views need from a collection."""

    @property
    def name(self) -> str:
        """The collection's name."""
        ...

    @property
    def db(self) -> DatabaseSource:
        """Its database."""
        ...

    @property
    def config(self) -> CollectionConfig:
        """Its current config."""
        ...

    def db_reader(self, identity: object = None) -> str:
        """The reader identity string for ``identity=`` (None: the default reader)."""
        ...

    def count(self, query: Query | None = None) -> int:
        """Number of documents, read filter applied."""
        ...

    def find(self, query: Query | None = None, identity: Any = None) -> list[dict[str, Any]]:
        """Documents matching ``query``, read filter applied."""
        ...

    def read_txn(self, identity: object = None) -> ReadTxn:
        """A read transaction over one snapshot."""
        ...

    def write_txn(self, identity: PublicKey | None = None) -> WriteTxn:
        """A write transaction."""
        ...

    def create(self, *docs: Any, identity: PublicKey | None = None) -> list[str]:
        """Create documents in one transaction."""
        ...

    def visible(self, doc: dict[str, Any] | None, reader: str | None) -> dict[str, Any] | None:
        """``doc`` as ``reader`` sees it through the read filter."""
        ...

    def visible_documents(self, reader: str | None) -> Iterator[dict[str, Any]]:
        """The documents ``reader`` sees, in ``_id`` order."""
        ...

    def stored_documents(self, instance_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """Stored documents by id, no read filter."""
        ...

    def raw_documents(self) -> list[bytes]:
        """Every stored document, CBOR-encoded, in ``_id`` order."""
        ...

    def raw_documents_by_id(self, instance_ids: Sequence[str]) -> list[bytes | None]:
        """Stored documents by id, CBOR-encoded."""
        ...

    def raw_batches(self, size: int) -> AbstractContextManager[Callable[[], Iterator[list[bytes]]]]:
        """One snapshot of the stored documents, readable ``size`` at a time."""
        ...


class CollectionFrames(Protocol):
    """What the frame views need: a collection's documents as frames, and its writes.

    ``tk.Collection`` reads them from the store's frame cache; ``tk.Client``'s
    ``RemoteCollection`` from the daemon's ``Find``, with the schema from
    ``GetCollectionInfo``.
    """

    @property
    def name(self) -> str:
        """The collection's name."""
        ...

    def _frame_of(
        self, expr: object, local_vars: Mapping[str, Any] | None, identity: Any
    ) -> pd.DataFrame:
        """The documents matching ``expr`` (None, a Query, query text or a column
        expression, ``@name`` from ``local_vars``) as ``identity`` sees them, as a frame."""
        ...

    def _compile(self, expr: object) -> Query:
        """``expr`` (None, a Query, query text or a column expression) as a Query."""
        ...

    def _frame_schema(self) -> dict[str, Any]:
        """The JSON Schema the frame's columns and ``c`` follow."""
        ...

    def _raw_snapshot(
        self, query: Query | None, batch_size: int
    ) -> AbstractContextManager[Callable[[], Iterator[list[bytes]]]] | None:
        """The stored documents an export of ``query``'s documents streams (one snapshot,
        in batches), or None when the export writes the frame of ``to_pandas``."""
        ...

    def to_pandas(self, query: Query | None = None, identity: Any = None) -> pd.DataFrame:
        """The documents matching ``query`` as a DataFrame."""
        ...

    def create(self, *docs: Any, identity: Any = None) -> list[str]:
        """Create documents in one transaction."""
        ...


class CollectionLog(Protocol):
    """Where a collection's time-travel views read the record log."""

    def _log_source(self, what: str) -> CollectionSource:
        """The collection whose database's log ``what`` reads; the error of the tree
        that says why when there is none to read."""
        ...


class DatabaseLog(Protocol):
    """Where a database's history and DAG views read the record log."""

    def _log_source(self, what: str) -> DatabaseSource:
        """The database whose log ``what`` reads; the error of the tree that says why
        when there is none to read."""
        ...
