"""Query by audio (a file or a time range of it) or by a catalogue track.

decode the query -> cut windows at the query hop -> drop silent windows ->
embed -> top-K catalogue segments per window (ANN) -> fuse per track.
The query hop is smaller than the catalogue hop by default, so that some
query window always lands close to a catalogue window.
"""

from __future__ import annotations

import os
import time

import numpy as np

from . import decode as decoding
from .catalog import Catalog
from .errors import QueryError
from .fusion import SegmentTable, Weights, fuse
from .ingest import normalize
from .models.base import Embedder
from .segment import DEFAULT_SILENCE_DB, windows
from .stores.base import VectorStore
from .types import Hit, QueryInfo, SearchResult


def source_name(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return "<bytes>" if isinstance(source, (bytes, bytearray, memoryview)) else "<file>"


class Searcher:
    def __init__(self, catalog: Catalog, store: VectorStore) -> None:
        self.catalog, self.store = catalog, store
        self._table: SegmentTable | None = None
        self._table_version: tuple | None = None

    def segment_table(self) -> SegmentTable:
        """Informative segments in memory, reloaded when the catalogue changed."""
        version = (self.catalog.data_version(), self.catalog.db.total_changes)
        if self._table is None or version != self._table_version:
            self._table = SegmentTable(*self.catalog.segment_table())
            self._table_version = version
        return self._table

    def embed_query(
        self, model: Embedder, source, *, start: float | None, end: float | None, hop: float,
        silence_db: float = DEFAULT_SILENCE_DB,
    ) -> tuple[QueryInfo, np.ndarray, np.ndarray, np.ndarray]:
        if start is not None and end is not None and end <= start:
            raise QueryError(f"--end ({end:g} s) must be after --start ({start:g} s)")
        n_samples = 0

        def blocks():
            nonlocal n_samples
            for block in decoding.stream(source, sample_rate=model.sample_rate, start=start, end=end):
                n_samples += len(block)
                yield block

        starts, ends, raw = [], [], []
        total = 0
        offset = start or 0.0
        for batch in windows(
            blocks(), sample_rate=model.sample_rate, window_seconds=model.window_seconds,
            hop_seconds=hop, silence_db=silence_db, time_offset=offset, max_windows=model.batch_size,
        ):
            total += len(batch.starts)
            keep = batch.informative
            if keep.any():
                raw.append(model.embed_only(model.features(batch.samples[keep])))
                starts.append(batch.starts[keep])
                ends.append(batch.ends[keep])
        name = source_name(source)
        if total == 0:
            raise QueryError(f"{name}: no audio in the requested range")
        if not raw:
            raise QueryError(f"{name}: the query is silent (no window above {silence_db:g} dBFS)")
        s, e = np.concatenate(starts), np.concatenate(ends)
        info = QueryInfo(source=name, start=offset, end=offset + n_samples / model.sample_rate, windows=total,
                         informative_windows=len(s), hop=hop)
        return info, s, e, np.concatenate(raw)

    def rank(
        self,
        query: QueryInfo,
        starts: np.ndarray,
        ends: np.ndarray,
        raw: np.ndarray,
        *,
        top: int,
        k: int,
        weights: Weights,
        exclude: frozenset[int] = frozenset(),
        offset_tolerance: float,
        timings: dict[str, float] | None = None,
    ) -> SearchResult:
        timings = {} if timings is None else timings
        t0 = time.perf_counter()
        q = normalize(raw)
        ids, scores = self.store.search("segments", q, k)
        track_vec = normalize(raw.mean(axis=0))[None, :]
        tids, tscores = self.store.search("tracks", track_vec, top + len(exclude))
        t1 = time.perf_counter()
        cos = {int(t): float(s) for t, s in zip(tids[0], tscores[0]) if t >= 0}
        table = self.segment_table()
        fused = fuse(
            query_starts=starts, query_ends=ends, hit_ids=ids, hit_scores=scores, segments=table,
            track_cosines=cos, weights=weights, offset_tolerance=offset_tolerance, exclude=exclude,
        )[:top]
        # the track cosine of candidates that came only from segment hits
        for f in fused:
            if f.track_id not in cos:
                v = self.catalog.track_vector(f.track_id)
                f.track_cosine = float(v @ track_vec[0]) if v is not None else 0.0
        rows = {t.id: t for t in self.catalog.tracks([f.track_id for f in fused])}
        hits = []
        for f in fused:
            t = rows.get(f.track_id)
            if t is None:  # deleted while we searched
                continue
            hits.append(
                Hit(
                    track_id=f.track_id, path=t.path, score=round(f.score, 4), votes=f.votes,
                    similarity=round(f.similarity, 4), track_cosine=round(f.track_cosine, 4),
                    offset=None if f.offset is None else round(f.offset, 2), offset_votes=f.offset_votes,
                    duration=round(t.duration, 3), title=t.title, artist=t.artist, matches=f.matches,
                )
            )
        t2 = time.perf_counter()
        timings["ann_ms"] = (t1 - t0) * 1000
        timings["fusion_ms"] = (t2 - t1) * 1000
        return SearchResult(query=query, hits=hits, timings_ms={k: round(v, 2) for k, v in timings.items()})
