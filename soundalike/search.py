"""Query by audio (a file or a time range of it) or by a catalogue track.

decode the query -> cut windows at the query hop -> drop silent windows ->
embed -> top-K catalogue segments per window (ANN) -> fuse per track.
The query hop is smaller than the catalogue hop by default, so that some
query window always lands close to a catalogue window.

Filters: ``allowed`` (track ids, from ``Library.allowed_tracks``) becomes the
store's ``allowed`` segment and track ids, so the ANN answers exactly among
them and a filtered search returns the top N allowed tracks, never fewer.
Several seeds: ``rank_seeds`` scores candidates against every positive and
negative seed and ``combine`` merges them (mean of positives minus the
weighted highest negative).

One audio seed: the ``rerank`` leading candidates, and the tracks the
query's landmark hashes point to (landmarks.py), are aligned with the
query's own audio (rerank.py), and a candidate whose audio the query is a
copy of moves up: identification under noise and filters. When none is a
copy, the query's scan print is swept over every track's (prints.py) and
the tracks it points to are aligned too: identification at 0 dB SNR.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from . import decode as decoding
from . import landmarks as landmarking
from . import prints as printing
from . import rerank as reranking
from .catalog import Catalog
from .errors import QueryError
from .fusion import FusedTrack, SegmentTable, Weights, _offset_peak, fuse
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
    def __init__(self, catalog: Catalog, store: VectorStore, *, scan_hours: float = 100.0) -> None:
        self.catalog, self.store = catalog, store
        self.scan_hours = scan_hours  # sweep the scan prints of libraries up to this size (prints.py); 0: never
        self._table: SegmentTable | None = None
        self._table_version: tuple | None = None
        self._prints = printing.Cache()

    def segment_table(self) -> SegmentTable:
        """Informative segments in memory, reloaded when the catalogue changed."""
        version = (self.catalog.data_version(), self.catalog.db.total_changes)
        if self._table is None or version != self._table_version:
            self._table = SegmentTable(*self.catalog.segment_table())
            self._table_version = version
        return self._table

    def embed_query(
        self, model: Embedder, source, *, start: float | None, end: float | None, hop: float,
        silence_db: float = DEFAULT_SILENCE_DB, audio_out: list[np.ndarray] | None = None,
    ) -> tuple[QueryInfo, np.ndarray, np.ndarray, np.ndarray]:
        """Decode and embed a query. ``audio_out``: a list that receives the first
        ``rerank.MAX_QUERY_SECONDS`` of the decoded audio (at the model's rate), for the re-rank."""
        if start is not None and end is not None and end <= start:
            raise QueryError(f"--end ({end:g} s) must be after --start ({start:g} s)")
        n_samples = 0
        keep = round(reranking.MAX_QUERY_SECONDS * model.sample_rate) if audio_out is not None else 0

        def blocks():
            nonlocal n_samples
            for block in decoding.stream(source, sample_rate=model.sample_rate, start=start, end=end):
                if n_samples < keep:
                    audio_out.append(block[: keep - n_samples].copy())
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

    def allowed_ids(self, allowed_tracks: frozenset[int] | None) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The store's ``allowed`` arrays (segment ids, track ids) for a set of allowed tracks."""
        if allowed_tracks is None:
            return None, None
        tracks = np.array(sorted(allowed_tracks), np.int64)
        table = self.segment_table()
        segs = table.ids[np.isin(table.track_ids, tracks)]
        return segs, tracks

    def candidates(
        self,
        query: Query,
        *,
        pool: int,
        k: int,
        weights: Weights,
        allowed: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
    ) -> list[FusedTrack]:
        """Every track the query's windows reach (top-k segments per window among the allowed
        ones, plus the ``pool`` nearest allowed track vectors), fused and sorted best first."""
        allowed_segs, allowed_tracks = allowed
        q = normalize(query.raw)
        ids, scores = self.store.search("segments", q, k, allowed_segs)
        track_vec = normalize(query.raw.mean(axis=0))[None, :]
        tids, tscores = self.store.search("tracks", track_vec, pool + len(query.exclude), allowed_tracks)
        cos = {int(t): float(s) for t, s in zip(tids[0], tscores[0]) if t >= 0}
        fused = fuse(
            query_starts=query.starts, query_ends=query.ends, hit_ids=ids, hit_scores=scores,
            segments=self.segment_table(), track_cosines=cos, weights=weights,
            offset_tolerance=query.offset_tolerance, exclude=query.exclude,
        )
        for f in fused:  # the track cosine of candidates that came only from segment hits
            if f.track_id not in cos:
                v = self.catalog.track_vector(f.track_id)
                f.track_cosine = float(v @ track_vec[0]) if v is not None else 0.0
        query.kth = scores[:, -1].astype(np.float64)  # each window's k-th best score: its vote threshold
        return fused

    def rescore(self, query: Query, vectors: dict[int, np.ndarray], weights: Weights) -> dict[int, float]:
        """The fused score of each track against ``query``, from all its segments: per window the
        best similarity to the track (not only among the k nearest), votes = the windows that
        have the track among their k nearest, plus the track cosine."""
        q = normalize(query.raw)
        track_vec = normalize(query.raw.mean(axis=0))
        w_offset = getattr(weights, "offset", 0.0)
        total_w = weights.votes + weights.similarity + weights.track + w_offset
        n = len(q)
        table = self.segment_table() if w_offset else None
        out = {}
        for tid, segs in vectors.items():
            sims = q @ normalize(segs).T  # (windows, the track's informative segments, by id)
            best = sims.max(axis=1)
            votes = int(np.sum(best >= query.kth))
            v = self.catalog.track_vector(tid) if weights.track else None
            cos = float(v @ track_vec) if v is not None else 0.0
            offset_sim = 0.0
            if w_offset:  # as fusion does, over each window's 3 best segments of the track
                starts = table.starts[table.track_ids == tid]
                if len(starts) == sims.shape[1]:
                    top3 = np.argsort(-sims, axis=1)[:, :3]
                    per_window = {qi: [(float(starts[j] - query.starts[qi]), float(sims[qi, j]), int(j)) for j in top3[qi]]
                                  for qi in range(n)}
                    _, _, chosen = _offset_peak(per_window, query.offset_tolerance)
                    offset_sim = sum(float(sims[qi, j]) for qi, j in chosen.items()) / n
            out[tid] = (weights.votes * votes / n + weights.similarity * float(best.mean())
                        + w_offset * offset_sim + weights.track * cos) / total_w
        return out

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
        allowed: frozenset[int] | None = None,
    ) -> SearchResult:
        """Rank tracks for one query. ``allowed``: the tracks a filter leaves (None: all).

        With a filter, the store searches only the allowed segments and tracks
        (exactly; see stores/embedded.py), so the result holds the top ``top``
        allowed tracks and never fewer than there are.
        """
        seed = Query(query, starts, ends, raw, exclude, offset_tolerance)
        return self.rank_seeds([seed], [], top=top, k=k, weights=weights, timings=timings, allowed=allowed)

    def rank_seeds(
        self,
        positives: list[Query],
        negatives: list[Query],
        *,
        top: int,
        k: int,
        weights: Weights,
        negative_weight: float = 1.0,
        timings: dict[str, float] | None = None,
        allowed: frozenset[int] | None = None,
        rerank: int = 0,
    ) -> SearchResult:
        """Rank tracks for several positive and negative seeds; see ``combine``.

        ``rerank``: with one positive seed that carries its audio (``Query.audio``)
        and no negative, align the audio of the leading ``rerank`` candidates with
        it (and the tracks its landmarks point to) and rescore them by how well they match
        (``rerank.rescored``, landmarks.py)."""
        timings = {} if timings is None else timings
        t0 = time.perf_counter()
        allowed_arrays = self.allowed_ids(allowed)
        exclude = frozenset().union(*(q.exclude for q in positives + negatives))
        pos = [self.candidates(q, pool=top, k=k, weights=weights, allowed=allowed_arrays) for q in positives]
        neg = [self.candidates(q, pool=top, k=k, weights=weights, allowed=allowed_arrays) for q in negatives]
        t1 = time.perf_counter()
        if len(positives) + len(negatives) == 1:
            ranked = combine(pos, [], exclude=exclude)
            if rerank > 0 and positives[0].audio is not None:
                t_r = time.perf_counter()
                ranked = self.rerank(positives[0], ranked, rerank, weights=weights, allowed=allowed)
                timings["rerank_ms"] = (time.perf_counter() - t_r) * 1000
            ranked = ranked[:top]
        else:
            # several seeds: the leading candidates of every positive seed (4 * top + 50 each, so
            # at least ``top`` whenever the filter allows that many) are scored against every seed
            lead = set()
            for fused in pos:
                lead |= {f.track_id for f in [f for f in fused if f.track_id not in exclude][: 4 * top + 50]}
            vectors = self.catalog.informative_vectors_of(sorted(lead))
            exact_pos = [self.rescore(q, vectors, weights) for q in positives]
            exact_neg = [self.rescore(q, vectors, weights) for q in negatives]
            ranked = combine(pos, neg, exclude=exclude, negative_weight=negative_weight,
                             exact=(exact_pos, exact_neg))[:top]
        rows = {t.id: t for t in self.catalog.tracks([r.track_id for r in ranked])}
        hits = []
        for r in ranked:
            t = rows.get(r.track_id)
            if t is None:  # deleted while we searched
                continue
            f = r.best
            hits.append(
                Hit(
                    track_id=r.track_id, path=t.path, score=round(r.score, 4), votes=f.votes,
                    similarity=round(f.similarity, 4), track_cosine=round(f.track_cosine, 4),
                    offset=None if f.offset is None else round(f.offset, 2), offset_votes=f.offset_votes,
                    duration=round(t.duration, 3), title=t.title, artist=t.artist, matches=f.matches,
                    audio_match=None if r.match is None else round(r.match, 4), copy=r.copy,
                    **({} if r.warp is None else {"semitones": r.warp.semitones, "tempo": r.warp.tempo}),
                    **({"seed": r.seed, "seed_scores": [round(x, 4) for x in r.seed_scores]}
                       if len(positives) + len(negatives) > 1 else {}),
                )
            )
        t2 = time.perf_counter()
        timings["ann_ms"] = (t1 - t0) * 1000
        timings["fusion_ms"] = (t2 - t1) * 1000 - timings.get("rerank_ms", 0.0)
        info = positives[0].info if len(positives) == 1 and not negatives else merged_info(positives, negatives)
        return SearchResult(query=info, hits=hits, timings_ms={k: round(v, 2) for k, v in timings.items()})

    def rerank(
        self, query: Query, ranked: list[Combined], n: int, *, weights: Weights,
        allowed: frozenset[int] | None = None,
    ) -> list[Combined]:
        """Align the audio of the leading ``n`` candidates, and of the tracks the query's landmarks
        point to (landmarks.py), with the query's; when none is a copy, also of the tracks the scan prints
        point to (prints.py). Score those that match up (``rerank.rescored``, ``rerank.copy_below_confirm``),
        re-sort.

        A candidate the embedding did not reach joins with its fused score from all its segments
        (``rescore``). Where landmarks or the sweep give an offset, the alignment starts there."""
        by_id = {c.track_id: c for c in ranked}
        offsets = {c.track_id: c.best.offset for c in ranked[:n] if c.best.offset is not None}
        order, matches = [], {}

        def place(c: Combined, offset: float) -> None:  # an offset better than the windows' guess
            c.best.offset = offset
            c.best.offset_votes = sum(abs(p.track_start - p.query_start - offset) <= query.offset_tolerance
                                      for p in c.best.matches)  # the matched windows that agree with it

        def joined(tid: int) -> Combined | None:
            nonlocal ranked
            c = by_id.get(tid)
            if c is None:
                c = self._rescored(query, tid, weights)
                if c is not None:
                    by_id[tid] = c
                    ranked = [*ranked, c]
            return c

        marked = self.landmark_candidates(query, allowed)
        for m in marked:
            c = joined(m.track_id)
            if c is None:
                continue
            offsets[m.track_id] = m.offset - query.info.start
            if c.best.offset is None or m.match > 0:  # the landmarks' offset (16 ms steps), not the windows'
                place(c, offsets[m.track_id])
            order.append(m.track_id)
            matches[m.track_id] = m.match
            c.warp = m.warp
        order += [tid for tid in offsets if tid not in order]  # strongest landmark evidence first
        found = self._aligned(query, order, offsets)
        for m in marked:  # landmark votes as the query is, for a track whose audio does not lead: no copy
            if m.warp == landmarking.SAME and reranking.unbacked(m.track_id, found):
                matches[m.track_id] = 0.0
        swept: list[printing.Found] = []
        if max([*matches.values(), *(al.match for al in found.values())], default=0.0) < reranking.CONFIRM:
            # no copy yet: sweep the scan prints, and align what they found where they found it
            swept = self.scan_candidates(query, allowed)
            again = [f for f in swept if (f.track_id not in found or found[f.track_id].match <= reranking.FLOOR)
                     and joined(f.track_id) is not None]
            offsets.update((f.track_id, f.offset - query.info.start) for f in again)
            for tid, al in self._aligned(query, [f.track_id for f in again], offsets).items():
                if tid not in found or al.match > found[tid].match:
                    found[tid] = al
        sure = reranking.copy_below_confirm(found, swept[0].track_id if swept else None,
                                            lead=printing.leader(swept) is not None)
        first = swept[0].track_id if swept and sure is None and reranking.agreed(found, swept[0].track_id) else None
        matches = {tid: max(matches.get(tid, 0.0), found[tid].match if tid in found else 0.0)
                   for tid in {*matches, *found}}
        for tid, match in matches.items():  # the surer of the two: fingerprint alignment, landmark votes
            c = by_id[tid]
            c.match = match
            c.copy = match >= reranking.CONFIRM or tid == sure
            c.score = reranking.rescored(c.score, match, copy=c.copy, first=tid == first)
        by_landmarks = {m.track_id for m in marked}
        if sure in {f.track_id for f in swept} and sure not in by_landmarks:
            by_id[sure].best.offset = offsets[sure]  # a copy the sweep found: its offset, not the windows' guess
        if first is not None and first not in by_landmarks:  # the sweep's offset, which the alignment confirmed
            place(by_id[first], swept[0].offset - query.info.start)
        ranked = sorted(ranked, key=lambda c: (-c.score, -c.best.track_cosine, c.track_id))
        for c in ranked:  # the displayed score stays within 0..1; the order is the boosted one
            c.score = min(c.score, 1.0)
        return ranked

    def _aligned(self, query: Query, order: list[int], offsets: dict[int, float]) -> dict[int, reranking.Alignment]:
        """The re-rank's audio alignment of these tracks at their offsets, in this order (``rerank.match_candidates``:
        it stops after the first group with a copy)."""
        rows = {t.id: t for t in self.catalog.tracks(order)}
        cands = [(tid, rows[tid].path, rows[tid].duration, offsets[tid]) for tid in order if tid in rows]
        return reranking.match_candidates(query.audio, query.info.start, cands, confirm=reranking.CONFIRM)

    def landmark_candidates(self, query: Query, allowed: frozenset[int] | None) -> list[landmarking.Candidate]:
        """Tracks whose landmarks agree with the query's at one offset (landmarks.py), best first."""
        looks = landmarking.query_looks(query.audio, reranking.SR)
        hashes = np.concatenate([marks.hashes for _, marks in looks])
        if not len(hashes):
            return []
        hits = self.catalog.landmark_hits(hashes)
        keep = ~np.isin(hits[:, 1], list(query.exclude))
        if allowed is not None:
            keep &= np.isin(hits[:, 1], list(allowed))
        return landmarking.rank(looks, hits[keep])

    def scan_candidates(self, query: Query, allowed: frozenset[int] | None) -> list[printing.Found]:
        """The tracks whose scan prints correlate best with the query's at one offset (prints.py), best first;
        none when the library holds more than ``scan_hours`` of prints."""
        if self.scan_hours <= 0 or query.audio is None:
            return []
        key = self.catalog.prints_key()
        if self.catalog.prints_hours(key) > self.scan_hours:
            return []
        index = self._prints.get(self.catalog, key)
        return index.search(printing.compute(query.audio, reranking.SR), exclude=query.exclude, allowed=allowed)

    def _rescored(self, query: Query, track_id: int, weights: Weights) -> Combined | None:
        """A track the query's windows did not reach, scored from all its segments (``rescore``)."""
        vectors = self.catalog.informative_vectors_of([track_id])
        if track_id not in vectors:
            return None
        score = self.rescore(query, vectors, weights)[track_id]
        best = (normalize(query.raw) @ normalize(vectors[track_id]).T).max(axis=1)
        v = self.catalog.track_vector(track_id)
        cos = float(v @ normalize(query.raw.mean(axis=0))) if v is not None else 0.0
        fused = FusedTrack(track_id, score, votes=int(np.sum(best >= query.kth)), similarity=float(best.mean()),
                           track_cosine=cos, offset=None, offset_votes=0)
        return Combined(track_id, score, 0, [score], fused)


@dataclass
class Query:
    """One embedded seed: its windows' times and raw embeddings, and tracks it must not return."""

    info: QueryInfo
    starts: np.ndarray
    ends: np.ndarray
    raw: np.ndarray
    exclude: frozenset[int]
    offset_tolerance: float
    kth: np.ndarray | None = None  # set by Searcher.candidates: each window's k-th best segment score
    audio: np.ndarray | None = None  # the query's first seconds at rerank.SR, for the re-rank (None: no re-rank)


@dataclass
class Combined:
    track_id: int
    score: float
    seed: int  # the positive seed whose evidence (votes, offset, matches) the hit shows
    seed_scores: list[float]  # fused score per positive seed, then per negative seed
    best: FusedTrack
    match: float | None = None  # the re-rank's audio match (rerank.py), when it ran for this track
    warp: landmarking.Warp | None = None  # the query's pitch and tempo against the track, where landmarks found it
    copy: bool | None = None  # the re-rank judged the query a copy of this track (rerank.rescored); None: not run


def combine(
    positives: list[list[FusedTrack]],
    negatives: list[list[FusedTrack]],
    *,
    exclude: frozenset[int] = frozenset(),
    negative_weight: float = 1.0,
    exact: tuple[list[dict[int, float]], list[dict[int, float]]] | None = None,
) -> list[Combined]:
    """Several seeds -> one ranking.

    score = mean over positive seeds of the track's score against that seed
            - negative_weight * max over negative seeds of its score against it.

    A track's score against a seed is its fused score (``fusion.fuse``). With
    ``exact`` (per positive and per negative seed: track id -> score from all the
    track's segments, see ``Searcher.rescore``) those scores are used for the
    tracks they cover: the tracks near one seed but outside another seed's k
    nearest segments are then scored fairly against both. Otherwise a seed that
    does not reach a track counts 0 for it. Only tracks some positive seed
    reaches are ranked; a negative only pushes down the tracks close to it.
    """
    per_pos = [{f.track_id: f for f in fused} for fused in positives]
    per_neg = [{f.track_id: f.score for f in fused} for fused in negatives]
    exact_pos, exact_neg = exact if exact is not None else ([{} for _ in positives], [{} for _ in negatives])
    candidates = set().union(*per_pos) - exclude
    if exact is not None:
        candidates &= set().union(*exact_pos)
    out = []
    for tid in candidates:
        scores = [e.get(tid, p[tid].score if tid in p else 0.0) for p, e in zip(per_pos, exact_pos)]
        neg = [e.get(tid, n.get(tid, 0.0)) for n, e in zip(per_neg, exact_neg)]
        seed = max((i for i in range(len(per_pos)) if tid in per_pos[i]), key=lambda i: scores[i])
        score = sum(scores) / len(scores) - negative_weight * (max(neg) if neg else 0.0)
        out.append(Combined(tid, score, seed, scores + neg, per_pos[seed][tid]))
    out.sort(key=lambda c: (-c.score, -c.best.track_cosine, c.track_id))
    return out


def merged_info(positives: list[Query], negatives: list[Query]) -> QueryInfo:
    name = " + ".join(q.info.source for q in positives)
    if negatives:
        name += " not " + " + ".join(q.info.source for q in negatives)
    qs = positives + negatives
    return QueryInfo(
        source=name, start=0.0, end=max(q.info.end - q.info.start for q in qs),
        windows=sum(q.info.windows for q in qs), informative_windows=sum(q.info.informative_windows for q in qs),
        hop=positives[0].info.hop,
    )
