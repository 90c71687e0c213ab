"""The one interface every vector index implements.

A store holds named collections (``segments`` and ``tracks``) of float32
vectors keyed by int64 ids that come from the catalogue. It is derived data:
the catalogue can always rebuild it. Scores are cosine similarities (vectors
are L2-normalised by the caller before ``upsert`` and ``search``).

Filtering is done by the caller's planner, which resolves a filter to the set
of ids that may be returned (``allowed``); a store must return exactly the
top-k among those ids.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

COLLECTIONS = ("segments", "tracks")


class VectorStore(ABC):
    name: str = ""

    @abstractmethod
    def upsert(self, collection: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert or replace vectors. ids: (n,) int64; vectors: (n, dim) float32."""

    @abstractmethod
    def delete(self, collection: str, ids: np.ndarray) -> None:
        """Remove ids; unknown ids are ignored."""

    @abstractmethod
    def search(
        self, collection: str, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k per query: (ids (q, k) int64, scores (q, k) float32), best first.

        Rows are padded with id -1 and score -inf when fewer than k ids exist.
        ``allowed`` restricts results to those ids, exactly.
        """

    @abstractmethod
    def count(self, collection: str) -> int:
        """How many vectors the collection holds."""

    @abstractmethod
    def clear(self) -> None:
        """Drop every vector of every collection."""

    def ids(self, collection: str) -> np.ndarray | None:
        """The ids the collection holds, sorted; None when the store cannot list them cheaply (then a
        searcher cannot tell what the index lacks compared with the catalogue)."""
        return None

    def flush(self) -> None:
        """Persist pending writes. Default: nothing to do."""

    def close(self) -> None:
        self.flush()
