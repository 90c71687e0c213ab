"""The default embedded vector index: hnswlib plus a small planner.

One folder per library, holding per collection a generation-numbered hnswlib
graph (``.hnsw``), the live ids (``.ids.npy``) and a float16 copy of the
vectors (``.vecs.npy``), plus ``manifest.json``. Several processes can read
it while one writes (see ``FolderStore`` in ``exact.py``).

Each collection is a **base** graph and a small **delta** graph. Writes go to
the delta (a replaced or deleted base vector is marked deleted in the base and
listed in ``.tombstones.npy``); a flush writes the delta, the tombstones and
the manifest, and the manifest keeps naming the base files of an earlier
generation. So adding a track costs what the delta costs, not what the library
costs (at 1M vectors: see ``docs/stores.md``), and a reader that already holds
the base reloads only the delta. Once the delta holds more than
``delta_min`` labels and ``delta_fraction`` of the base, a flush merges it:
the smaller part's vectors are inserted into the larger part's graph, which
is written as the new base. Searches query both parts and keep the best k.
A manifest entry without a delta is exactly the earlier single-graph layout.

The planner, per ``search`` call (every query of the call shares ``allowed``):

- a collection of at most ``exact_below`` vectors: exact scan, so that small
  libraries get exact answers (it costs under 1 ms there);
- no filter: HNSW with ``ef = ef_search * (n / 100k) ** 0.83``, at least
  ``ef_search`` (128), n being the part's size (base or delta): on 200-d
  vectors in 2,000 clusters recall@10 was 1.000 at 100k (ef 128), 0.9995 at
  1M (ef 768-1024, p50 1.45-1.93 ms) and 0.989 at 2M (ef 1536, p50 2.36 ms),
  where the earlier ``sqrt`` rule gave 0.969 at 1M (ef 405) and under 0.904 at 2M (ef 572);
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

import errno
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


def _check_saved(path) -> None:
    """Raise ``OSError(ENOSPC)`` unless the hnswlib file at ``path`` is complete.

    hnswlib's ``save_index`` writes through a C++ stream and never checks it,
    so a disk that fills up mid-write leaves a short file and no error. The
    file is the header, ``count`` fixed-size level-0 records, then per element
    a uint32 byte count and that many bytes of upper-level links: walking
    those counts must land exactly on the end of the file. (About 0.25 s per
    million vectors, against about 4 s for the save itself.)
    """
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(_HEADER.size)
        ok = len(head) == _HEADER.size
        if ok:
            fields = _HEADER.unpack(head)
            count, per_element = fields[2], fields[3]
            fh.seek(_HEADER.size + count * per_element)
            tail = fh.read()
            pos, read_u32 = 0, struct.Struct("<I").unpack_from
            for _ in range(count):
                if pos + 4 > len(tail):
                    ok = False
                    break
                pos += 4 + read_u32(tail, pos)[0]
            ok = ok and _HEADER.size + count * per_element + pos == size
    if not ok:
        log.warning("hnswlib wrote a short file (%d bytes) to %s: the disk is full", size, path)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


class _Part:
    """One hnswlib graph and the float16 table of its live vectors."""

    def __init__(self, table: Table, index, elements: int = 0) -> None:
        self.table = table
        self.index = index  # hnswlib.Index; holds live and deleted-marked labels
        self.elements = elements  # labels in the graph, deleted ones included

    @property
    def dead(self) -> int:
        return self.elements - len(self.table)


class _Keys:
    """What ``FolderStore`` reads of a collection's table: its size and sorted live ids, over both parts."""

    def __init__(self, col: _Collection) -> None:
        self._col = col

    def __len__(self) -> int:
        return len(self._col.base.table) + len(self._col.delta.table)

    @property
    def keys(self) -> np.ndarray:
        base, delta = self._col.base.table.keys, self._col.delta.table.keys
        if len(delta) == 0:
            return base
        return np.sort(np.concatenate([base, delta]), kind="stable")


class _Collection:
    """A base graph, saved in full only when it changes, and a small delta graph of recent writes.

    Every live id is in exactly one part. ``base_entry`` is the manifest entry of the base files as they
    are on disk (None when the base changed in memory and must be written); ``tombstones`` are the ids
    that those files still hold but that were deleted or replaced since (marked deleted on load).
    """

    def __init__(self, base: _Part, delta: _Part, base_entry: dict | None = None,
                 tombstones: np.ndarray | None = None) -> None:
        self.base = base
        self.delta = delta
        self.base_entry = base_entry
        self.tombstones = np.empty(0, np.int64) if tombstones is None else tombstones
        self.table = _Keys(self)

    @property
    def parts(self) -> list[_Part]:
        return [p for p in (self.base, self.delta) if len(p.table)]


class EmbeddedStore(FolderStore):
    """hnswlib graphs (a base and a delta) + float16 copy + planner; persistent, multi-reader, single-writer."""

    name = "embedded"
    kind = "embedded"

    M = 16
    ef_construction = 200
    ef_search = 128
    ef_reference_n = 100_000  # above this size ef grows as (n / ef_reference_n) ** ef_exponent ...
    ef_exponent = 0.83  # ... 128 at 100k, 865 at 1M, 1538 at 2M, 2154 at 3M (bench/stores.py --scale; docs/stores.md)
    exact_below = 1_000
    exact_factor = 4.0
    overfetch_factor = 2.0
    compact_min_dead = 10_000  # rebuild the graph on flush when deleted labels exceed this and the live count
    delta_min = 20_000  # a flush merges the delta into the base once it holds more than this many labels ...
    delta_fraction = 0.1  # ... and more than this fraction of the base's live count

    _OPTIONS = (
        "M",
        "ef_construction",
        "ef_search",
        "ef_reference_n",
        "ef_exponent",
        "exact_below",
        "exact_factor",
        "overfetch_factor",
        "compact_min_dead",
        "delta_min",
        "delta_fraction",
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

    def _new_part(self) -> _Part:
        return _Part(Table(self.dim, np.float16), self._new_index(1024))

    def _new_collection(self) -> _Collection:
        return _Collection(self._new_part(), self._new_part())

    def _load(self, manifest: dict | None) -> None:
        # A reader keeps the base graphs it holds when the new generation only changed the deltas.
        self._loaded_bases = {
            name: col for name, col in getattr(self, "_cols", {}).items() if col.base_entry is not None
        }
        try:
            super()._load(manifest)
        finally:
            self._loaded_bases = {}

    def _load_part(self, files: dict, entry: dict, keys: tuple[str, str, str]) -> _Part:
        folder = self._folder
        index_name, ids_name, vecs_name = (files[k] for k in keys)
        path = folder.check_file(index_name, entry.get("index_bytes"))
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
        ids = folder.load_npy(ids_name, mmap=False)
        vecs = folder.load_npy(vecs_name, mmap=True)
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
        return _Part(table, index, entry["elements"])

    def _load_collection(self, entry: dict) -> _Collection:
        folder = self._folder
        files = entry["files"]
        delta_entry = entry.get("delta")
        base_entry = {k: v for k, v in entry.items() if k != "delta"}
        base_entry["files"] = {k: files[k] for k in ("index", "ids", "vectors")}
        if delta_entry:
            base_entry["count"] = delta_entry["base_count"]
        held = next((c for c in self._loaded_bases.values() if c.base_entry == base_entry), None)
        if held is not None:
            for name, size in base_entry.get("bytes", {}).items():  # the files must still be the ones held
                folder.check_file(base_entry["files"][name], size)
            base = held.base
            held_tombs = held.tombstones
        else:
            base = self._load_part(base_entry["files"], base_entry, ("index", "ids", "vectors"))
            held_tombs = np.empty(0, np.int64)
        if not delta_entry:
            if held is not None and len(held_tombs):  # the held base had deletions the files no longer have
                base = self._load_part(base_entry["files"], base_entry, ("index", "ids", "vectors"))
            return _Collection(base, self._new_part(), base_entry)
        tombstones = folder.load_npy(files["tombstones"], mmap=False)
        if tombstones.ndim != 1 or len(tombstones) != delta_entry["tombstones"]:
            raise StoreError(f"vector index {folder.path} is inconsistent with its manifest; {REBUILD_HINT}")
        if held is not None and not np.isin(held_tombs, tombstones).all():
            base = self._load_part(base_entry["files"], base_entry, ("index", "ids", "vectors"))
            held_tombs = np.empty(0, np.int64)
        fresh = np.setdiff1d(tombstones, held_tombs)
        for label in base.table.delete(fresh).tolist():
            base.index.mark_deleted(label)
        if delta_entry["elements"]:
            delta = self._load_part(
                files, {**delta_entry, "M": entry["M"]}, ("delta_index", "delta_ids", "delta_vectors")
            )
        else:
            delta = self._new_part()
        return _Collection(base, delta, base_entry, tombstones)

    def _merge(self, col: _Collection) -> None:
        """Insert the smaller part's live vectors into the larger part's graph; that becomes the base."""
        big, small = (col.base, col.delta) if len(col.base.table) >= len(col.delta.table) else (col.delta, col.base)
        log.info("merging %d vectors into a graph of %d", len(small.table), len(big.table))
        ids, vecs = small.table.arrays()
        if len(ids):
            self._insert(big, ids, vecs.astype(np.float32))
        col.base, col.delta = big, self._new_part()
        col.base_entry, col.tombstones = None, np.empty(0, np.int64)

    def _save_part(self, part: _Part, stem: str, suffix: str = "") -> tuple[dict, dict]:
        name = f"{stem}{suffix}"
        files = {"index": f"{name}.hnsw", "ids": f"{name}.ids.npy", "vectors": f"{name}.vecs.npy"}
        tmp = self._folder.tmp(files["index"])
        part.index.save_index(str(tmp))
        _check_saved(tmp)  # hnswlib ignores write errors: a full disk gave a short (even empty) file silently
        sizes = {"index": self._folder.commit(tmp, files["index"])}
        ids, vecs = part.table.arrays()
        sizes["ids"] = self._folder.save_npy(files["ids"], ids)
        sizes["vectors"] = self._folder.save_npy(files["vectors"], vecs)
        return files, {"count": len(ids), "elements": part.elements, "index_bytes": sizes["index"], "bytes": sizes}

    def _save_collection(self, col: _Collection, stem: str) -> dict:
        base, delta = col.base, col.delta
        if base.elements == 0 or delta.elements > max(self.delta_min, self.delta_fraction * len(base.table)):
            self._merge(col)
            base, delta = col.base, col.delta
        if base.dead > max(len(base.table), self.compact_min_dead):
            self._compact(base)
            col.base_entry, col.tombstones = None, np.empty(0, np.int64)
        if col.base_entry is None:
            files, info = self._save_part(base, stem)
            col.base_entry = {**info, "M": self.M, "ef_construction": self.ef_construction, "files": files}
            col.tombstones = np.empty(0, np.int64)
        entry = {**col.base_entry, "files": dict(col.base_entry["files"])}
        if delta.elements == 0 and len(col.tombstones) == 0:
            return entry  # the layout of a store without a delta, as earlier versions wrote it
        delta_info = {"elements": 0, "count": 0, "tombstones": len(col.tombstones), "base_count": entry["count"]}
        if delta.elements:
            files, info = self._save_part(delta, stem, ".delta")
            entry["files"].update({f"delta_{k}": v for k, v in files.items()})
            delta_info.update(info)
        entry["files"]["tombstones"] = f"{stem}.tombstones.npy"
        self._folder.save_npy(entry["files"]["tombstones"], col.tombstones)
        entry["delta"] = delta_info
        entry["count"] = len(col.table)  # every live vector: an earlier version reading this fails its check
        return entry

    def _compact(self, part: _Part) -> None:
        """Rebuild the graph without its deleted labels (they are never reused)."""
        log.info("compacting: %d live, %d deleted", len(part.table), part.dead)
        ids, vecs = part.table.arrays()
        part.index = self._new_index(len(ids))
        part.table = Table.from_arrays(ids, vecs)
        if len(ids):
            part.index.add_items(vecs.astype(np.float32), ids)
        part.elements = len(ids)

    # writes

    def _insert(self, part: _Part, ids: np.ndarray, vectors: np.ndarray) -> None:
        index = part.index
        need = index.element_count + len(ids)
        if need > index.get_max_elements():
            index.resize_index(max(need, int(index.get_max_elements() * 1.5)))
        index.add_items(vectors, ids)  # replaces live labels, revives deleted ones
        part.table.upsert(ids, vectors)
        part.elements = index.element_count

    def _delete_from_base(self, col: _Collection, ids: np.ndarray) -> None:
        gone = col.base.table.delete(ids)
        for label in gone.tolist():
            col.base.index.mark_deleted(label)
        if len(gone) and col.base_entry is not None:
            col.tombstones = np.union1d(col.tombstones, gone)

    def _upsert(self, col: _Collection, ids: np.ndarray, vectors: np.ndarray) -> None:
        # New and replaced vectors go to the delta; a replaced base vector is deleted from the base.
        self._delete_from_base(col, ids)
        self._insert(col.delta, ids, vectors)

    def _delete(self, col: _Collection, ids: np.ndarray) -> None:
        self._delete_from_base(col, ids)
        for label in col.delta.table.delete(ids).tolist():
            col.delta.index.mark_deleted(label)

    # search

    def _write_generation(self) -> None:
        before = {name: col.base_entry for name, col in self._cols.items()}
        try:
            super()._write_generation()
        except StoreError:  # the new generation's files were deleted: a base saved in it must be saved again
            for name, col in self._cols.items():
                if col.base_entry is not before[name]:
                    col.base_entry = None
            raise

    def _search(self, col: _Collection, queries: np.ndarray, k: int, allowed: np.ndarray | None):
        found = [self._search_part(part, queries, k, allowed) for part in col.parts]
        if len(found) == 1:
            return found[0]
        ids = np.concatenate([f[0] for f in found], axis=1)
        scores = np.concatenate([f[1] for f in found], axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # padding (-inf) sorts last
        return np.take_along_axis(ids, order, axis=1), np.take_along_axis(scores, order, axis=1)

    def _search_part(self, col: _Part, queries: np.ndarray, k: int, allowed: np.ndarray | None):
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

    def _exact(self, col: _Part, queries: np.ndarray, k: int, allowed: np.ndarray | None):
        table = col.table
        if allowed is None:
            rows = table.live_rows()
            return exact_topk(queries, table.vecs[rows], table.row_ids[rows], k)
        rows = table.rows_of(allowed)
        rows = rows[rows >= 0]
        return exact_topk(queries, table.vecs[rows], table.row_ids[rows], k)

    def _ef(self, n: int) -> int:
        """The graph search's ef for a part of n vectors: ``ef_search * (n / ef_reference_n) ** ef_exponent``."""
        return max(self.ef_search, round(self.ef_search * (n / self.ef_reference_n) ** self.ef_exponent))

    def _knn(self, col: _Part, queries: np.ndarray, k: int, ef: int):
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

    def _hnsw(self, col: _Part, queries: np.ndarray, k: int):
        kk = min(k, len(col.table))
        found = self._knn(col, queries, kk, self._ef(len(col.table)))
        if found is None:
            return self._exact(col, queries, k, None)
        out_ids, out_scores = padded(len(queries), k)
        out_ids[:, :kk], out_scores[:, :kk] = found
        return out_ids, out_scores

    def _overfetch(self, col: _Part, queries: np.ndarray, k: int, allowed: np.ndarray):
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
