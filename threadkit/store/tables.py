"""The handles of the store's sub-databases in one LMDB environment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from threadkit.store import layout

__all__ = ["Tables", "open_tables"]


@dataclass(frozen=True, slots=True)
class Tables:
    """Open handles of the store's sub-databases (see :mod:`threadkit.store.layout`).

    Attributes
    ----------
    meta, threads, logs, heads, records, index : Any
        LMDB database handles for the tables of the same names (``index`` is ``log_index``).
    """

    meta: Any
    threads: Any
    logs: Any
    heads: Any
    records: Any
    index: Any


def open_tables(env: Any) -> Tables:
    """Open (creating when missing) every sub-database the store owns.

    Parameters
    ----------
    env : lmdb.Environment
        The repo's environment, opened with room for the tables.
    """
    return Tables(*(env.open_db(name) for name in layout.TABLES))
