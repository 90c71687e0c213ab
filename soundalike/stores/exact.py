"""The exact (brute-force) store, and the machinery every folder-backed store shares.

``ExactStore`` is the reference answer of the contract suite: a float32 matrix
per collection, scanned with one matrix product and ``argpartition``. It is
also a usable store for small libraries, in memory (``path=None``) or saved to
a folder.

Shared pieces, used by ``embedded.py`` too:

- ``exact_topk``: top-k by inner product over a set of rows, padded.
- ``Table``: vectors keyed by int64 id in a growable matrix, with a sorted id
  index for vectorised lookups.
- ``FolderStore``: a store saved to a folder. One process writes at a time
  (an ``fcntl`` lock taken on the first write and released by ``flush``);
  ``flush`` writes a new generation of files, then replaces ``manifest.json``
  atomically; readers stat the manifest on each ``search`` and reload when its
  generation changed.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import threading
import time
from pathlib import Path

import numpy as np

from soundalike.errors import StoreError
from soundalike.stores.base import COLLECTIONS, VectorStore

__all__ = ["ExactStore", "FolderStore", "Table", "exact_topk", "padded"]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
LOCK = "write.lock"
REBUILD_HINT = "run `soundalike rebuild-index` to rebuild it from the catalogue"
FORMAT = 1

# Score matrices are computed in blocks of at most this many floats (64 MB).
_BLOCK_FLOATS = 1 << 24


def padded(n_queries: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Result arrays full of padding: id -1, score -inf."""
    return (
        np.full((n_queries, k), -1, dtype=np.int64),
        np.full((n_queries, k), -np.inf, dtype=np.float32),
    )


def exact_topk(
    queries: np.ndarray, vectors: np.ndarray, ids: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of ``queries @ vectors.T``, labelled by ``ids``, best first, padded.

    ``vectors`` may be float16; it is upcast block by block (numpy has no f16 BLAS).
    """
    out_ids, out_scores = padded(len(queries), k)
    m = len(ids)
    if m == 0 or k == 0 or len(queries) == 0:
        return out_ids, out_scores
    kk = min(k, m)
    row_block = max(1, _BLOCK_FLOATS // max(1, vectors.shape[1]))
    query_block = max(1, _BLOCK_FLOATS // m)
    for q0 in range(0, len(queries), query_block):
        q = queries[q0 : q0 + query_block]
        if m <= row_block:
            scores = q @ np.asarray(vectors[:m], dtype=np.float32).T
        else:
            scores = np.empty((len(q), m), dtype=np.float32)
            for r0 in range(0, m, row_block):
                chunk = np.asarray(vectors[r0 : r0 + row_block], dtype=np.float32)
                scores[:, r0 : r0 + len(chunk)] = q @ chunk.T
        if kk < m:
            part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        else:
            part = np.broadcast_to(np.arange(m), (len(q), m))
        top = np.take_along_axis(scores, part, axis=1)
        order = np.argsort(-top, axis=1, kind="stable")
        out_scores[q0 : q0 + len(q), :kk] = np.take_along_axis(top, order, axis=1)
        out_ids[q0 : q0 + len(q), :kk] = ids[np.take_along_axis(part, order, axis=1)]
    return out_ids, out_scores


class Table:
    """Vectors keyed by int64 id.

    Rows never move: a deleted row goes on a free list and is reused. ``keys``
    (sorted live ids) and ``key_rows`` (their rows) make lookups vectorised;
    both are kept sorted with ``np.insert``/``np.delete``, O(n) memmove per batch.
    """

    def __init__(self, dim: int, dtype: type = np.float32) -> None:
        self.dim = dim
        self.dtype = np.dtype(dtype)
        self.vecs = np.empty((0, dim), dtype=self.dtype)
        self.row_ids = np.empty(0, dtype=np.int64)  # id per row, -1 when free
        self.high = 0  # rows [0, high) are in use or free
        self.free: list[int] = []
        self.keys = np.empty(0, dtype=np.int64)
        self.key_rows = np.empty(0, dtype=np.int64)

    @classmethod
    def from_arrays(cls, ids: np.ndarray, vecs: np.ndarray) -> Table:
        table = cls(vecs.shape[1], vecs.dtype)
        table.vecs = vecs  # may be a read-only memory map until the first write
        table.row_ids = np.asarray(ids, dtype=np.int64)
        table.high = len(ids)
        order = np.argsort(table.row_ids, kind="stable")
        table.keys = table.row_ids[order]
        table.key_rows = order.astype(np.int64)
        if len(table.keys) > 1 and np.any(table.keys[1:] == table.keys[:-1]):
            raise ValueError("duplicate ids")
        return table

    def __len__(self) -> int:
        return len(self.keys)

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Row of each id, -1 where the id is absent."""
        if len(self.keys) == 0:
            return np.full(len(ids), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.keys, ids), len(self.keys) - 1)
        return np.where(self.keys[pos] == ids, self.key_rows[pos], -1)

    def live_rows(self) -> np.ndarray | slice:
        """Rows holding live vectors, as a slice when there are no holes."""
        if not self.free:
            return slice(0, self.high)
        return np.flatnonzero(self.row_ids[: self.high] >= 0)

    def _writable(self, extra: int) -> None:
        need = self.high + extra
        if need <= len(self.vecs) and self.vecs.flags.writeable and self.row_ids.flags.writeable:
            return
        cap = max(need, int(len(self.vecs) * 1.5), 1024) if need > len(self.vecs) else len(self.vecs)
        vecs = np.empty((cap, self.dim), dtype=self.dtype)
        vecs[: self.high] = self.vecs[: self.high]
        row_ids = np.full(cap, -1, dtype=np.int64)
        row_ids[: self.high] = self.row_ids[: self.high]
        self.vecs, self.row_ids = vecs, row_ids

    def upsert(self, ids: np.ndarray, vecs: np.ndarray) -> np.ndarray:
        """Insert or replace; returns the ids that were new. ``ids`` must be unique."""
        rows = self.rows_of(ids)
        new = rows < 0
        n_new = int(new.sum())
        self._writable(max(0, n_new - len(self.free)))
        old = ~new
        self.vecs[rows[old]] = vecs[old]
        if n_new:
            reuse = min(n_new, len(self.free))
            fresh = np.arange(self.high, self.high + n_new - reuse, dtype=np.int64)
            new_rows = np.concatenate([np.array(self.free[len(self.free) - reuse :], dtype=np.int64), fresh])
            del self.free[len(self.free) - reuse :]
            self.high += len(fresh)
            new_ids = ids[new]
            self.vecs[new_rows] = vecs[new]
            self.row_ids[new_rows] = new_ids
            order = np.argsort(new_ids, kind="stable")
            pos = np.searchsorted(self.keys, new_ids[order])
            self.keys = np.insert(self.keys, pos, new_ids[order])
            self.key_rows = np.insert(self.key_rows, pos, new_rows[order])
            return new_ids
        return ids[:0]

    def delete(self, ids: np.ndarray) -> np.ndarray:
        """Remove ids; returns those that were present."""
        if len(self.keys) == 0:
            return ids[:0]
        pos = np.minimum(np.searchsorted(self.keys, ids), len(self.keys) - 1)
        hit = self.keys[pos] == ids
        pos = np.unique(pos[hit])
        if len(pos) == 0:
            return ids[:0]
        if not self.row_ids.flags.writeable:  # only the ids change: a mapped vector file stays mapped
            self.row_ids = self.row_ids.copy()
        rows = self.key_rows[pos]
        gone = self.keys[pos]
        self.row_ids[rows] = -1
        self.free.extend(rows.tolist())
        self.keys = np.delete(self.keys, pos)
        self.key_rows = np.delete(self.key_rows, pos)
        if len(self.keys) == 0:  # forget the holes
            self.high, self.free = 0, []
        return gone

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of the live rows, compacted."""
        rows = self.live_rows()
        return self.row_ids[rows].copy(), np.ascontiguousarray(self.vecs[rows])


# --- input checks ---------------------------------------------------------------------


def check_collection(collection: str) -> None:
    if collection not in COLLECTIONS:
        raise StoreError(f"unknown collection {collection!r}; expected one of {', '.join(COLLECTIONS)}")


def check_ids(ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1 or not (ids.dtype.kind in "iu" or len(ids) == 0):
        raise StoreError(f"ids must be a 1-d integer array, got shape {ids.shape} dtype {ids.dtype}")
    ids = ids.astype(np.int64, copy=False)
    if len(ids) and ids.min() < 0:
        raise StoreError("ids must be non-negative catalogue row ids")
    return ids


def check_vectors(vectors: np.ndarray, dim: int, what: str = "vectors") -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise StoreError(f"{what} must have shape (n, {dim}), got {vectors.shape}")
    return np.ascontiguousarray(vectors)


def upsert_batch(ids: np.ndarray, vectors: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """An ``upsert``'s arguments checked (``check_ids``, ``check_vectors``, as many ids as vectors) and each
    repeated id kept once, with its last vector (``unique_last``); empty arrays for an empty batch."""
    ids = check_ids(ids)
    vectors = check_vectors(vectors, dim)
    if len(ids) != len(vectors):
        raise StoreError(f"{len(ids)} ids for {len(vectors)} vectors")
    return unique_last(ids, vectors)


def search_args(
    collection: str, queries: np.ndarray, k: int, allowed: np.ndarray | None, dim: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """A ``search``'s arguments checked: the queries as (q, dim) float32, and ``allowed`` as sorted unique
    int64 ids (None: no filter)."""
    check_collection(collection)
    queries = check_vectors(queries, dim, "queries")
    if k < 0:
        raise StoreError(f"k must be >= 0, got {k}")
    if allowed is not None:
        allowed = check_ids(allowed)
        if not (len(allowed) < 2 or np.all(allowed[1:] > allowed[:-1])):  # sorted unique already?
            allowed = np.unique(allowed)
    return queries, allowed


def unique_last(ids: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop repeated ids in one batch, keeping the last vector given for each."""
    if len(ids) < 2:
        return ids, vectors
    rev_ids = ids[::-1]
    _, first = np.unique(rev_ids, return_index=True)
    if len(first) == len(ids):
        return ids, vectors
    keep = np.sort(len(ids) - 1 - first)
    return ids[keep], vectors[keep]


# --- folder-backed stores -------------------------------------------------------------


class Folder:
    """The files of one store: manifest, writer lock, generation-numbered data files."""

    def __init__(self, path: str | os.PathLike, kind: str) -> None:
        self.path = Path(path)
        self.kind = kind
        self._lock_fd: int | None = None
        self.stamp: tuple | None = None  # (inode, mtime_ns, size) of the manifest last read

    def file(self, name: str) -> Path:
        return self.path / name

    def manifest_stamp(self) -> tuple | None:
        try:
            st = os.stat(self.file(MANIFEST))
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def read_manifest(self) -> dict | None:
        """The manifest, or None for a new (empty) store."""
        path = self.file(MANIFEST)
        try:
            stamp = self.manifest_stamp()
            text = path.read_text()
        except FileNotFoundError:
            if self.path.is_dir() and any(p.suffix in (".hnsw", ".npy") for p in self.path.iterdir()):
                raise StoreError(f"vector index {self.path} has data files but no {MANIFEST}; {REBUILD_HINT}")
            self.stamp = None
            return None
        except OSError as exc:
            raise StoreError(f"cannot read vector index {path}: {exc.strerror}; {REBUILD_HINT}") from exc
        try:
            manifest = json.loads(text)
            ok = manifest["format"] == FORMAT and isinstance(manifest["generation"], int)
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise StoreError(f"vector index manifest {path} is corrupt; {REBUILD_HINT}")
        if manifest.get("kind") != self.kind:
            raise StoreError(
                f"vector index {self.path} was written by the {manifest.get('kind')!r} store, "
                f"not {self.kind!r}; open it with that kind or {REBUILD_HINT}"
            )
        self.stamp = stamp
        return manifest

    def check_file(self, name: str, size: int | None = None) -> Path:
        path = self.file(name)
        try:
            actual = path.stat().st_size
        except FileNotFoundError:
            raise StoreError(f"vector index file {path} is missing; {REBUILD_HINT}") from None
        if size is not None and actual != size:
            raise StoreError(
                f"vector index file {path} is corrupt ({actual} bytes, expected {size}); {REBUILD_HINT}"
            )
        return path

    # writer lock

    @property
    def locked(self) -> bool:
        return self._lock_fd is not None

    def lock(self, timeout: float) -> None:
        if self._lock_fd is not None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.file(LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() >= deadline:
                    os.close(fd)
                    raise StoreError(
                        f"another process is writing the vector index {self.path}; "
                        f"waited {timeout:g} s for it to finish"
                    ) from exc
                time.sleep(0.05)
        self._lock_fd = fd
        for stale in self.path.glob(".tmp-*"):  # left by a writer that died mid-flush
            stale.unlink(missing_ok=True)

    def unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __del__(self) -> None:  # a store dropped without flush/close must not keep the lock
        self.unlock()

    # writing

    def tmp(self, name: str) -> Path:
        return self.file(f".tmp-{os.getpid()}-{name}")

    def commit(self, tmp: Path, name: str) -> int:
        """Move a finished temporary file into place; returns its size."""
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.file(name))
        return self.file(name).stat().st_size

    def save_npy(self, name: str, array: np.ndarray) -> int:
        tmp = self.tmp(name)
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
        return self.commit(tmp, name)

    def write_manifest(self, manifest: dict, previous: dict | None) -> None:
        """Make ``manifest`` the current generation. Until its atomic rename an OSError leaves ``previous``
        current; after it nothing raises (a failed clean-up or directory sync is only logged)."""
        tmp = self.tmp(MANIFEST)
        with open(tmp, "w") as fh:
            fh.write(json.dumps(manifest, indent=1, sort_keys=True))
        self.commit(tmp, MANIFEST)
        try:
            dir_fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            log.warning("cannot sync the folder %s: %s", self.path, exc)
        self.stamp = self.manifest_stamp()
        # Keep the files of this and the previous generation (a reader may be loading
        # them right now); delete older ones.
        keep = {MANIFEST, LOCK} | _files_of(manifest) | _files_of(previous)
        try:
            for p in self.path.iterdir():
                if p.name not in keep and not p.name.startswith(".tmp-") and p.suffix in (".hnsw", ".npy"):
                    p.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot remove old generations from %s: %s", self.path, exc)

    def discard(self, generation: int, keep: set[str]) -> None:
        """Delete what a failed write of ``generation`` left behind (this process's temporary files and
        the generation's data files that no manifest names), to give back the space it took."""
        names = {f".{generation}.", f".tmp-{os.getpid()}-"}
        try:
            for p in self.path.iterdir():
                if p.name not in keep and any(n in p.name for n in names) and p.name != MANIFEST:
                    p.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot clean up after a failed write in %s: %s", self.path, exc)

    def reset(self) -> None:
        """Delete every file of the store (its manifest and generations; not the writer lock). Only for a
        rebuild, which replaces the contents anyway: used when they are too damaged to open."""
        if not self.path.is_dir():
            return
        for p in self.path.iterdir():
            if p.name == MANIFEST or p.name.startswith(".tmp-") or p.suffix in (".hnsw", ".npy"):
                if p.is_file() or p.is_symlink():
                    p.unlink(missing_ok=True)
        self.stamp = None

    def load_npy(self, name: str, mmap: bool) -> np.ndarray:
        path = self.check_file(name)
        try:
            return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise StoreError(f"vector index file {path} is corrupt ({exc}); {REBUILD_HINT}") from exc


def _files_of(manifest: dict | None) -> set[str]:
    if not manifest:
        return set()
    return {name for c in manifest.get("collections", {}).values() for name in c.get("files", {}).values()}


class FolderStore(VectorStore):
    """A store kept in memory and, when ``path`` is given, saved to a folder.

    Subclasses implement ``_new_collection``, ``_load_collection`` and
    ``_save_collection`` and the per-collection operations.
    """

    kind = ""

    def __init__(self, path: str | os.PathLike | None, dim: int | None, *, lock_timeout: float = 30.0) -> None:
        self._mutex = threading.RLock()
        self._folder = Folder(path, self.kind) if path is not None else None
        self.lock_timeout = lock_timeout
        self._closed = False
        self._dirty: set[str] = set()
        self._manifest: dict | None = None
        manifest = self._folder.read_manifest() if self._folder else None
        if manifest is not None:
            if dim is not None and manifest["dim"] != dim:
                raise StoreError(
                    f"vector index {self._folder.path} holds {manifest['dim']}-d vectors, not {dim}-d; {REBUILD_HINT}"
                )
            dim = manifest["dim"]
        if dim is None or int(dim) <= 0:
            raise StoreError("a new vector store needs its dimension (dim)")
        self.dim = int(dim)
        self._load(manifest)

    @property
    def path(self) -> Path | None:
        return self._folder.path if self._folder else None

    # loading and saving

    def _load(self, manifest: dict | None) -> None:
        cols = {}
        for name in COLLECTIONS:
            entry = (manifest or {}).get("collections", {}).get(name)
            cols[name] = self._load_collection(entry) if entry else self._new_collection()
        self._cols = cols
        self._manifest = manifest
        self._dirty.clear()

    def _refresh(self) -> None:
        """Reload if another process flushed a new generation (a stat when nothing changed)."""
        if self._folder is None or self._folder.locked:
            return
        if self._folder.manifest_stamp() == self._folder.stamp:
            return
        for attempt in range(3):
            manifest = self._folder.read_manifest()
            if manifest is None and self._manifest is None:
                return
            if manifest is not None and self._manifest is not None:
                if manifest["generation"] == self._manifest["generation"]:
                    return
            try:
                log.debug("reloading %s at generation %s", self._folder.path, manifest and manifest["generation"])
                self._load(manifest)
                return
            except StoreError:
                # The writer may have replaced these files while we read them; if not,
                # forget the stamp so that every later call reports the damage too.
                if attempt == 2 or self._folder.manifest_stamp() == self._folder.stamp:
                    self._folder.stamp = None
                    raise

    def _begin_write(self, collection: str) -> None:
        self._check_open()
        check_collection(collection)
        if self._folder is not None and not self._folder.locked:
            self._folder.lock(self.lock_timeout)
            try:
                manifest = self._folder.read_manifest()
                gen = manifest and manifest["generation"]
                if gen != (self._manifest and self._manifest["generation"]):
                    self._load(manifest)
            except BaseException:
                self._folder.unlock()
                raise
        self._dirty.add(collection)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the vector store is closed")

    # VectorStore

    def upsert(self, collection: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids, vectors = upsert_batch(ids, vectors, self.dim)
        if len(ids) == 0:
            return
        with self._mutex:
            self._begin_write(collection)
            self._upsert(self._cols[collection], ids, vectors)

    def delete(self, collection: str, ids: np.ndarray) -> None:
        ids = check_ids(ids)
        if len(ids) == 0:
            return
        with self._mutex:
            self._begin_write(collection)
            self._delete(self._cols[collection], np.unique(ids))

    def search(
        self, collection: str, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        queries, allowed = search_args(collection, queries, k, allowed, self.dim)
        with self._mutex:
            self._check_open()
            self._refresh()
            col = self._cols[collection]
            if k == 0 or len(col.table) == 0 or (allowed is not None and len(allowed) == 0):
                return padded(len(queries), k)
            return self._search(col, queries, k, allowed)

    def count(self, collection: str) -> int:
        check_collection(collection)
        with self._mutex:
            self._check_open()
            self._refresh()
            return len(self._cols[collection].table)

    def ids(self, collection: str) -> np.ndarray:
        check_collection(collection)
        with self._mutex:
            self._check_open()
            self._refresh()
            return self._cols[collection].table.keys.copy()

    def clear(self) -> None:
        with self._mutex:
            for name in COLLECTIONS:
                self._begin_write(name)
            self._cols = {name: self._new_collection() for name in COLLECTIONS}

    def flush(self) -> None:
        with self._mutex:
            if self._closed or self._folder is None:
                return
            try:
                if self._dirty:
                    self._write_generation()
            finally:
                self._folder.unlock()

    def close(self) -> None:
        with self._mutex:
            if self._closed:
                return
            try:
                self.flush()
            finally:
                self._closed = True
                self._cols = {}

    def __enter__(self) -> FolderStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write_generation(self) -> None:
        """Write the dirty collections as a new generation, then switch the manifest to it atomically.

        Every file is written to a temporary name, fsynced and renamed; the
        manifest goes last. If anything fails first (a full disk), the files
        of the new generation are deleted, the previous generation stays the
        current one on disk, and the changes stay in memory (a later flush
        tries again); the error is a ``StoreError`` that says so.
        """
        previous = self._manifest
        gen = (previous["generation"] if previous else 0) + 1
        collections = {}
        try:
            for name in COLLECTIONS:
                old = (previous or {}).get("collections", {}).get(name)
                if name not in self._dirty and old is not None:
                    collections[name] = old  # unchanged: keep its files
                else:
                    collections[name] = self._save_collection(self._cols[name], f"{name}.{gen}")
            manifest = {"format": FORMAT, "kind": self.kind, "dim": self.dim, "generation": gen,
                        "collections": collections}
            self._folder.write_manifest(manifest, previous)
        except OSError as exc:
            self._folder.discard(gen, keep=_files_of(previous))
            kept = f"generation {previous['generation']} is still the current one" if previous else "it is still empty"
            raise StoreError(
                f"cannot save the vector index {self._folder.path}: {exc.strerror or exc}; {kept} on disk "
                "(free some space and run the command again; the catalogue is intact)"
            ) from exc
        self._manifest = manifest
        self._dirty.clear()

    # subclass hooks

    def _new_collection(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _load_collection(self, entry: dict):  # pragma: no cover - abstract
        raise NotImplementedError

    def _save_collection(self, col, stem: str) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def _upsert(self, col, ids: np.ndarray, vectors: np.ndarray) -> None:  # pragma: no cover
        raise NotImplementedError

    def _delete(self, col, ids: np.ndarray) -> None:  # pragma: no cover
        raise NotImplementedError

    def _search(self, col, queries: np.ndarray, k: int, allowed: np.ndarray | None):  # pragma: no cover
        raise NotImplementedError


# --- the exact store ------------------------------------------------------------------


class _ExactCollection:
    def __init__(self, table: Table) -> None:
        self.table = table


class ExactStore(FolderStore):
    """Brute-force float32 scan: exact answers, O(n) per query.

    ``path=None`` keeps everything in memory; otherwise the folder holds
    ``{collection}.{generation}.ids.npy`` and ``.vecs.npy`` plus the manifest.
    Readers memory-map the vectors, so several processes share the page cache.
    """

    name = "exact"
    kind = "exact"

    def __init__(self, path: str | os.PathLike | None = None, dim: int | None = None, **options) -> None:
        super().__init__(path, dim, **options)

    def _new_collection(self) -> _ExactCollection:
        return _ExactCollection(Table(self.dim, np.float32))

    def _load_collection(self, entry: dict) -> _ExactCollection:
        files = entry["files"]
        ids = self._folder.load_npy(files["ids"], mmap=False)
        vecs = self._folder.load_npy(files["vectors"], mmap=True)
        if ids.ndim != 1 or vecs.shape != (len(ids), self.dim) or len(ids) != entry["count"]:
            raise StoreError(f"vector index {self._folder.path} is inconsistent with its manifest; {REBUILD_HINT}")
        try:
            return _ExactCollection(Table.from_arrays(ids, vecs))
        except ValueError as exc:
            raise StoreError(f"vector index {self._folder.path} is corrupt ({exc}); {REBUILD_HINT}") from exc

    def _save_collection(self, col: _ExactCollection, stem: str) -> dict:
        ids, vecs = col.table.arrays()
        files = {"ids": f"{stem}.ids.npy", "vectors": f"{stem}.vecs.npy"}
        self._folder.save_npy(files["ids"], ids)
        self._folder.save_npy(files["vectors"], vecs)
        return {"count": len(ids), "files": files}

    def _upsert(self, col: _ExactCollection, ids: np.ndarray, vectors: np.ndarray) -> None:
        col.table.upsert(ids, vectors)

    def _delete(self, col: _ExactCollection, ids: np.ndarray) -> None:
        col.table.delete(ids)

    def _search(self, col: _ExactCollection, queries: np.ndarray, k: int, allowed: np.ndarray | None):
        table = col.table
        if allowed is None:
            rows = table.live_rows()
        else:
            rows = table.rows_of(allowed)
            rows = rows[rows >= 0]
        return exact_topk(queries, table.vecs[rows], table.row_ids[rows], k)
