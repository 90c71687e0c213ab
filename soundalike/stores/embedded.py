"""The default embedded vector index: hnswlib plus a small planner.

One folder per library, holding per collection a generation-numbered hnswlib
graph (``.hnsw``), the live ids (``.ids.npy``) and a float16 copy of the
vectors (``.vecs.npy``), plus ``manifest.json``. Several processes can read
it while one writes (see ``FolderStore`` in ``exact.py``).

The planner, per ``search`` call (every query of the call shares ``allowed``):

- a collection of at most ``exact_below`` vectors: exact scan, so that small
  libraries get exact answers (it costs under 1 ms there);
- no filter: HNSW with ``ef = ef_search * sqrt(n / 100k)``, at least
  ``ef_search`` (128): recall@10 was 0.990 at 100k (ef 128) and 0.994 at 1M
  (ef 384) on clustered 200-d vectors, where a fixed ef 128 fell to 0.88;
- a filter leaving ``m`` live candidates out of ``n``: an exact scan of just
  those rows when ``m <= exact_factor * sqrt(k * n)``, where that scan costs
  about what the over-fetch below would; otherwise HNSW over-fetch: ask for
  ``overfetch_factor * k * n / m`` neighbours and keep the allowed ones, best
  first; the rare query left with fewer than k is answered by the exact scan.

hnswlib's filter callback was measured and rejected: it calls Python for every
visited node, and cost 5-30x the over-fetch for the same recall (see
``docs/stores.md``; ``bench/stores.py`` reproduces the figures).

Why a float16 copy: ``hnswlib.Index.get_items`` costs about 30 us per vector,
too slow for scanning candidate sets, and float16 is what the catalogue
stores. Exact-path scores therefore carry float16 rounding of the stored
vectors (exact when the vectors came from the catalogue).
"""

from __future__ import annotations

import logging
import math
import os
import struct

import numpy as np

from soundalike.errors import StoreError
from soundalike.stores.exact import REBUILD_HINT, FolderStore, Table, exact_topk, padded

__all__ = ["EmbeddedStore"]

log = logging.getLogger(__name__)

# hnswlib's file header: offsetLevel0, max_elements, cur_element_count,
# size_data_per_element, label_offset, offsetData (size_t), maxlevel (int),
# enterpoint_node (uint32), maxM, maxM0, M (size_t), mult (double), ef_construction.
_HEADER = struct.Struct("<QQQQQQiIQQQdQ")


def _hnswlib():
    try:
        import hnswlib
    except ImportError as exc:  # pragma: no cover - hnswlib is a core dependency
        raise StoreError("the embedded store needs hnswlib: pip install hnswlib") from exc
    return hnswlib


class _Collection:
    def __init__(self, table: Table, index, elements: int = 0) -> None:
        self.table = table
        self.index = index  # hnswlib.Index; holds live and deleted-marked labels
        self.elements = elements  # labels in the graph, deleted ones included

    @property
    def dead(self) -> int:
        return self.elements - len(self.table)


class EmbeddedStore(FolderStore):
    """hnswlib graph + float16 copy + planner; persistent, multi-reader, single-writer."""

    name = "embedded"
    kind = "embedded"

    M = 16
    ef_construction = 200
    ef_search = 128
    ef_reference_n = 100_000  # ef grows as sqrt(n / ef_reference_n) above this size
    exact_below = 1_000
    exact_factor = 4.0
    overfetch_factor = 2.0
    compact_min_dead = 10_000  # rebuild the graph on flush when deleted labels exceed this and the live count

    _OPTIONS = (
        "ef_search",
        "ef_reference_n",
        "exact_below",
        "exact_factor",
        "overfetch_factor",
        "compact_min_dead",
    )

    def __init__(self, path: str | os.PathLike | None = None, dim: int | None = None, **options) -> None:
        for name in self._OPTIONS:
            if name in options:
                setattr(self, name, options.pop(name))
        super().__init__(path, dim, **options)

    # index lifecycle

    def _new_index(self, capacity: int):
        index = _hnswlib().Index(space="ip", dim=self.dim)
        index.init_index(max_elements=max(capacity, 1024), M=self.M, ef_construction=self.ef_construction)
        index.set_ef(self.ef_search)
        return index

    def _new_collection(self) -> _Collection:
        return _Collection(Table(self.dim, np.float16), self._new_index(1024))

    def _load_collection(self, entry: dict) -> _Collection:
        folder = self._folder
        files = entry["files"]
        path = folder.check_file(files["index"], entry.get("index_bytes"))
        with open(path, "rb") as fh:
            head = fh.read(_HEADER.size)
        if len(head) < _HEADER.size:
            raise StoreError(f"vector index file {path} is corrupt (truncated); {REBUILD_HINT}")
        fields = _HEADER.unpack(head)
        if fields[2] != entry["elements"] or fields[10] != entry["M"] or fields[1] < fields[2]:
            raise StoreError(f"vector index file {path} is corrupt (bad header); {REBUILD_HINT}")
        index = _hnswlib().Index(space="ip", dim=self.dim)
        try:
            index.load_index(str(path))
        except (RuntimeError, MemoryError, ValueError) as exc:
            raise StoreError(f"vector index file {path} is corrupt ({exc}); {REBUILD_HINT}") from exc
        index.set_ef(self.ef_search)
        ids = folder.load_npy(files["ids"], mmap=False)
        vecs = folder.load_npy(files["vectors"], mmap=True)
        if (
            ids.ndim != 1
            or len(ids) != entry["count"]
            or vecs.shape != (len(ids), self.dim)
            or vecs.dtype != np.float16
            or index.element_count != entry["elements"]
        ):
            raise StoreError(f"vector index {folder.path} is inconsistent with its manifest; {REBUILD_HINT}")
        try:
            table = Table.from_arrays(ids, vecs)
        except ValueError as exc:
            raise StoreError(f"vector index {folder.path} is corrupt ({exc}); {REBUILD_HINT}") from exc
        return _Collection(table, index, entry["elements"])

    def _save_collection(self, col: _Collection, stem: str) -> dict:
        if col.dead > max(len(col.table), self.compact_min_dead):
            self._compact(col)
        files = {"index": f"{stem}.hnsw", "ids": f"{stem}.ids.npy", "vectors": f"{stem}.vecs.npy"}
        tmp = self._folder.tmp(files["index"])
        col.index.save_index(str(tmp))
        index_bytes = self._folder.commit(tmp, files["index"])
        ids, vecs = col.table.arrays()
        self._folder.save_npy(files["ids"], ids)
        self._folder.save_npy(files["vectors"], vecs)
        return {
            "count": len(ids),
            "elements": col.elements,
            "index_bytes": index_bytes,
            "M": self.M,
            "ef_construction": self.ef_construction,
            "files": files,
        }

    def _compact(self, col: _Collection) -> None:
        """Rebuild the graph without its deleted labels (they are never reused)."""
        log.info("compacting: %d live, %d deleted", len(col.table), col.dead)
        ids, vecs = col.table.arrays()
        col.index = self._new_index(len(ids))
        if len(ids):
            col.index.add_items(vecs.astype(np.float32), ids)
        col.elements = len(ids)

    # writes

    def _upsert(self, col: _Collection, ids: np.ndarray, vectors: np.ndarray) -> None:
        index = col.index
        need = index.element_count + len(ids)
        if need > index.get_max_elements():
            index.resize_index(max(need, int(index.get_max_elements() * 1.5)))
        index.add_items(vectors, ids)  # replaces live labels, revives deleted ones
        col.table.upsert(ids, vectors)
        col.elements = index.element_count

    def _delete(self, col: _Collection, ids: np.ndarray) -> None:
        for label in col.table.delete(ids).tolist():
            col.index.mark_deleted(label)

    # search

    def _search(self, col: _Collection, queries: np.ndarray, k: int, allowed: np.ndarray | None):
        n = len(col.table)
        if n <= self.exact_below:
            return self._exact(col, queries, k, allowed)
        if allowed is None:
            return self._hnsw(col, queries, k)
        allowed = allowed[col.table.rows_of(allowed) >= 0]  # live candidates only
        m = len(allowed)
        if m == 0:
            return padded(len(queries), k)
        if m <= self.exact_factor * math.sqrt(k * n):
            return self._exact(col, queries, k, allowed)
        return self._overfetch(col, queries, k, allowed)

    def _exact(self, col: _Collection, queries: np.ndarray, k: int, allowed: np.ndarray | None):
        table = col.table
        if allowed is None:
            rows = table.live_rows()
            return exact_topk(queries, table.vecs[rows], table.row_ids[rows], k)
        rows = table.rows_of(allowed)
        rows = rows[rows >= 0]
        return exact_topk(queries, table.vecs[rows], table.row_ids[rows], k)

    def _ef(self, n: int) -> int:
        return max(self.ef_search, round(self.ef_search * math.sqrt(n / self.ef_reference_n)))

    def _knn(self, col: _Collection, queries: np.ndarray, k: int, ef: int):
        """hnswlib search as (ids, cosine scores); None when the graph cannot give k results."""
        index = col.index
        index.set_ef(max(ef, k))
        try:
            labels, dists = index.knn_query(queries, k=k)
        except RuntimeError as exc:
            log.debug("hnswlib could not return %d results (%s); scanning exactly", k, exc)
            return None
        finally:
            index.set_ef(self.ef_search)
        return labels.astype(np.int64), (1.0 - dists).astype(np.float32)

    def _hnsw(self, col: _Collection, queries: np.ndarray, k: int):
        kk = min(k, len(col.table))
        found = self._knn(col, queries, kk, self._ef(len(col.table)))
        if found is None:
            return self._exact(col, queries, k, None)
        out_ids, out_scores = padded(len(queries), k)
        out_ids[:, :kk], out_scores[:, :kk] = found
        return out_ids, out_scores

    def _overfetch(self, col: _Collection, queries: np.ndarray, k: int, allowed: np.ndarray):
        """HNSW for k * n / m * overfetch_factor neighbours, keeping the allowed ones.

        ``allowed``: sorted unique live ids.
        """
        n, m = len(col.table), len(allowed)
        kk = min(k, m)
        fetch = min(n, math.ceil(self.overfetch_factor * kk * n / m))
        found = self._knn(col, queries, fetch, max(self._ef(n), fetch))
        if found is None:
            return self._exact(col, queries, k, allowed)
        labels, scores = found
        pos = np.minimum(np.searchsorted(allowed, labels), m - 1)
        ok = allowed[pos] == labels
        first = np.argsort(~ok, axis=1, kind="stable")[:, :kk]  # allowed hits first, best first
        got = np.take_along_axis(ok, first, axis=1)
        out_ids, out_scores = padded(len(queries), k)
        out_ids[:, :kk] = np.where(got, np.take_along_axis(labels, first, axis=1), -1)
        out_scores[:, :kk] = np.where(got, np.take_along_axis(scores, first, axis=1), -np.inf)
        short = np.flatnonzero(~got.all(axis=1))
        if len(short):  # top up: these queries met fewer than k allowed ids
            out_ids[short], out_scores[short] = self._exact(col, queries[short], k, allowed)
        return out_ids, out_scores
