"""Vector stores: where segment and track vectors are indexed for search.

    open_store("embedded", path, dim)   hnswlib + planner, saved to a folder (the default)
    open_store("exact", path, dim)      brute-force numpy scan; the reference answer
    open_store("qdrant", path, dim, url=...)    a Qdrant server, or qdrant-client's local mode in ``path``
    open_store("pgvector", None, dim, url=...)  PostgreSQL with the pgvector extension

The folder stores keep everything in memory when ``path`` is None. ``dim``
may be omitted when the store already holds vectors. See docs/stores.md.
"""

from __future__ import annotations

import os

from soundalike.errors import UserError
from soundalike.stores.base import COLLECTIONS, VectorStore
from soundalike.stores.embedded import EmbeddedStore
from soundalike.stores.exact import ExactStore, Folder
from soundalike.stores.pgvector import PgvectorStore
from soundalike.stores.qdrant import QdrantStore

__all__ = [
    "COLLECTIONS", "KINDS", "EmbeddedStore", "ExactStore", "PgvectorStore", "QdrantStore", "VectorStore", "open_store",
    "reset_store",
]

KINDS = {"embedded": EmbeddedStore, "exact": ExactStore, "qdrant": QdrantStore, "pgvector": PgvectorStore}


def open_store(
    kind: str = "embedded", path: str | os.PathLike | None = None, dim: int | None = None, **options
) -> VectorStore:
    """Open (or create) a store of ``kind`` in the folder ``path``.

    ``options`` go to the store class, for example ``lock_timeout`` (seconds a
    writer waits for another process's write to finish) or the embedded
    store's planner thresholds; ``url`` and ``prefix`` for the server stores.
    """
    try:
        cls = KINDS[kind]
    except KeyError:
        raise UserError(f"unknown vector store kind {kind!r}; expected one of {', '.join(KINDS)}") from None
    return cls(path, dim, **options)


def reset_store(kind: str, path: str | os.PathLike) -> None:
    """Delete the data files and manifest of the store in ``path``, however damaged, so that a new empty
    one can be opened there (only for a rebuild from the catalogue)."""
    if kind not in KINDS:
        raise UserError(f"unknown vector store kind {kind!r}; expected one of {', '.join(KINDS)}")
    Folder(path, kind).reset()
