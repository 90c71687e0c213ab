"""What the stores backed by a database server share (``qdrant.py``, ``pgvector.py``).

``RemoteStore`` checks arguments exactly as the folder stores do (same
messages), drops repeated ids in a batch (the last vector wins), answers the
trivial cases (k = 0, empty ``allowed``) without a round trip, pads short
rows with id -1 / score -inf, and retries calls that fail because the server
cannot be reached before raising one ``StoreError`` that names it.

A subclass implements ``_upsert``, ``_delete``, ``_search`` (per call, with
``allowed`` sorted and unique), ``_count``, ``_clear`` and ``_close``, and
says which exceptions come from its client (``_client_error``) and which of
those mean "unreachable" (``_transient``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from soundalike.errors import StoreError
from soundalike.stores.base import COLLECTIONS, VectorStore
from soundalike.stores.exact import check_collection, check_ids, padded, search_args, upsert_batch

__all__ = ["RemoteStore", "redact"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def redact(url: str) -> str:
    """``url`` without its password (``postgresql://user:***@host/db``), for messages and the catalogue."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


class RemoteStore(VectorStore):
    """Argument checks, retries and padding around a server's client."""

    kind = ""
    concurrent_reads = False  # True: search and count run outside the handle's lock (the client is thread-safe)
    retries = 3  # attempts per call when the server cannot be reached
    retry_wait = 0.5  # seconds before the first retry; doubles each time

    def __init__(self, *, retries: int | None = None, retry_wait: float | None = None) -> None:
        if retries is not None:
            self.retries = max(1, int(retries))
        if retry_wait is not None:
            self.retry_wait = float(retry_wait)
        self._mutex = threading.RLock()
        self._closed = False
        self.dim = 0

    # subclass hooks

    where = ""  # the server, for messages (no password)

    def _transient(self, exc: BaseException) -> bool:  # pragma: no cover - abstract
        """The server could not be reached: worth retrying."""
        raise NotImplementedError

    def _client_error(self, exc: BaseException) -> bool:  # pragma: no cover - abstract
        """An error the client library raised about the server or the request (becomes a StoreError)."""
        raise NotImplementedError

    def _upsert(self, collection: str, ids: np.ndarray, vectors: np.ndarray) -> None:  # pragma: no cover
        raise NotImplementedError

    def _delete(self, collection: str, ids: np.ndarray) -> None:  # pragma: no cover
        raise NotImplementedError

    def _search(self, collection: str, queries: np.ndarray, k: int, allowed: np.ndarray | None):  # pragma: no cover
        raise NotImplementedError

    def _count(self, collection: str) -> int:  # pragma: no cover
        raise NotImplementedError

    def _clear(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def _close(self) -> None:  # pragma: no cover
        raise NotImplementedError

    # retries

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()``, retried while the server is unreachable; other errors become StoreError at once."""
        wait = self.retry_wait
        for attempt in range(1, self.retries + 1):
            try:
                return fn()
            except StoreError:
                raise
            except Exception as exc:
                if not self._client_error(exc):
                    raise  # a bug, not the server: keep its traceback
                if not self._transient(exc):
                    raise StoreError(f"{self.kind} store at {self.where}: {what} failed: {_one_line(exc)}") from exc
                if attempt == self.retries:
                    raise StoreError(
                        f"cannot reach the {self.kind} store at {self.where} ({what}, {self.retries} attempts): "
                        f"{_one_line(exc)}"
                    ) from exc
                log.warning("%s store at %s: %s failed (%s); retrying in %.1f s", self.kind, self.where, what,
                            _one_line(exc), wait)
                time.sleep(wait)
                wait *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    # VectorStore

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the vector store is closed")

    def upsert(self, collection: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        check_collection(collection)
        ids, vectors = upsert_batch(ids, vectors, self.dim)
        if len(ids) == 0:
            return
        with self._mutex:
            self._check_open()
            self._upsert(collection, ids, vectors)

    def delete(self, collection: str, ids: np.ndarray) -> None:
        check_collection(collection)
        ids = check_ids(ids)
        if len(ids) == 0:
            return
        with self._mutex:
            self._check_open()
            self._delete(collection, np.unique(ids))

    def search(
        self, collection: str, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        queries, allowed = search_args(collection, queries, k, allowed, self.dim)
        with self._reading():
            self._check_open()
            if k == 0 or len(queries) == 0 or (allowed is not None and len(allowed) == 0):
                return padded(len(queries), k)
            return self._search(collection, queries, k, allowed)

    def count(self, collection: str) -> int:
        check_collection(collection)
        with self._reading():
            self._check_open()
            return self._count(collection)

    def _reading(self):
        return contextlib.nullcontext() if self.concurrent_reads else self._mutex

    def clear(self) -> None:
        with self._mutex:
            self._check_open()
            self._clear()

    def counts(self) -> dict[str, int]:
        return {name: self.count(name) for name in COLLECTIONS}

    def close(self) -> None:
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            self._close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def fill(rows: list[list[tuple[int, float]]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query a list of (id, score), best first, into padded (ids, scores) arrays."""
    ids, scores = padded(len(rows), k)
    for i, row in enumerate(rows):
        n = min(k, len(row))
        if n:
            ids[i, :n] = [r[0] for r in row[:n]]
            scores[i, :n] = [r[1] for r in row[:n]]
    return ids, scores
