"""tk.Client's remote classes have the embedded classes' views themselves, not copies."""

from __future__ import annotations

import inspect

import pytest

import threadkit as tk
from threadkit.api.client import RemoteCollection, RemoteDatabase
from threadkit.frames.views import DatabaseViews, FrameViews, TimeViews
from threadkit.graph import GraphViews

COLLECTION_VIEWS = [
    "df",
    "to_pandas",
    "to_arrow",
    "to_parquet",
    "create_many",
    "query",
    "lazy",
    "c",
    "__getitem__",
    "at",
    "diff",
]
DATABASE_VIEWS = ["from_pandas", "history", "conflicts", "heads", "dag", "plot_dag", "logs"]


def _defined_in(cls: type, name: str) -> type:
    return next(base for base in cls.__mro__ if name in vars(base))


@pytest.mark.parametrize("name", COLLECTION_VIEWS)
def test_collection_views_are_shared(name: str) -> None:
    embedded = _defined_in(tk.Collection, name)
    assert embedded in (FrameViews, TimeViews), f"tk.Collection.{name} is not a shared view"
    assert _defined_in(RemoteCollection, name) is embedded, f"RemoteCollection.{name} is a copy"


@pytest.mark.parametrize("name", DATABASE_VIEWS)
def test_database_views_are_shared(name: str) -> None:
    embedded = _defined_in(tk.Database, name)
    assert embedded in (DatabaseViews, GraphViews), f"tk.Database.{name} is not a shared view"
    assert _defined_in(RemoteDatabase, name) is embedded, f"RemoteDatabase.{name} is a copy"


def test_every_public_view_is_listed() -> None:
    """A view added to a shared class is checked here too (and so reaches tk.Client)."""
    for views, listed in (
        ((FrameViews, TimeViews), COLLECTION_VIEWS),
        ((DatabaseViews, GraphViews), DATABASE_VIEWS),
    ):
        public = {
            n
            for cls in views
            for n, v in vars(cls).items()
            if (not n.startswith("_") or n == "__getitem__")
            and (inspect.isfunction(v) or isinstance(v, property))
        }
        assert public == set(listed)
