"""Vector stores: where segment and track vectors are indexed for search.

    open_store("embedded", path, dim)   hnswlib + planner, saved to a folder (the default)
    open_store("exact", path, dim)      brute-force numpy scan; the reference answer

Both keep everything in memory when ``path`` is None. ``dim`` may be omitted
when the folder already holds a store.
"""

from __future__ import annotations

import os

from soundalike.errors import UserError
from soundalike.stores.base import COLLECTIONS, VectorStore
from soundalike.stores.embedded import EmbeddedStore
from soundalike.stores.exact import ExactStore

__all__ = ["COLLECTIONS", "KINDS", "EmbeddedStore", "ExactStore", "VectorStore", "open_store"]

KINDS = {"embedded": EmbeddedStore, "exact": ExactStore}


def open_store(
    kind: str = "embedded", path: str | os.PathLike | None = None, dim: int | None = None, **options
) -> VectorStore:
    """Open (or create) a store of ``kind`` in the folder ``path``.

    ``options`` go to the store class, for example ``lock_timeout`` (seconds a
    writer waits for another process's write to finish) or the embedded
    store's planner thresholds.
    """
    try:
        cls = KINDS[kind]
    except KeyError:
        raise UserError(f"unknown vector store kind {kind!r}; expected one of {', '.join(KINDS)}") from None
    return cls(path, dim, **options)
