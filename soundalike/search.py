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
query's landmark hashes point to (identify/landmarks.py), are aligned with the
query's own audio (identify/align.py), and a candidate whose audio the query is a
copy of moves up: identification under noise and filters. When none is a
copy, the query's scan print is swept over every track's (identify/prints.py) and
the tracks it points to are aligned too: identification at 0 dB SNR.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import numpy as np

from . import decode as decoding
from .identify import landmarks as landmarking
from .identify import prints as printing
from .identify import align as reranking
from .catalog import Catalog
from .duplicates import SPARE_FOR_COPIES, CopyTest, group_copies
from .errors import QueryError
from .identify import policy as judging
from .fusion import FusedTrack, SegmentTable, Weights, _offset_peak, fuse
from .identify.postings import Postings
from .ingest import normalize
from .models.base import Embedder
from .segment import DEFAULT_SILENCE_DB, widened_hop, windows
from .stores.base import VectorStore
from .stores.exact import exact_topk
from .types import Hit, MatchedPair, QueryInfo, SearchResult




def source_name(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return "<bytes>" if isinstance(source, (bytes, bytearray, memoryview)) else "<file>"


#: the most vectors the catalogue may hold beyond the index for a search to scan them exactly (about
#: 80 MB of float32 at 200-d); a bigger gap is only reported
MAX_GAP = 100_000

log = logging.getLogger("soundalike")


class Searcher:
    def __init__(self, catalog: Catalog, store: VectorStore, *, scan_hours: float = 100.0,
                 postings: Postings | None = None) -> None:
        self.catalog, self.store = catalog, store
        self.postings = postings  # the landmark postings (identify/postings.py); None: no landmark look-ups
        self.scan_hours = scan_hours  # sweep the scan prints of libraries up to this size (identify/prints.py); 0: never
        self._table: SegmentTable | None = None
        self._table_version: tuple | None = None
        self._prints = printing.Cache()
        hop = catalog.get_meta("hop")
        self.hop = float(hop) if hop else 3.0  # the catalogue's window hop (set when the library was created)
        self._gap: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # what the index lacks, scanned exactly
        self._gap_key: tuple | None = None
        self._gap_warning: str | None = None
        # in a library holding two models (kinds.py), the model whose vectors ``store`` holds: the index gap
        # is then looked for among that model's tracks only (None: every track's vectors are in ``store``)
        self.model_id: str | None = None

    def index_gap(self) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str | None]:
        """What the vector index lacks compared with the catalogue: per collection (ids, unit vectors), and
        a warning for the user (None when nothing is missing).

        Only looked for while the catalogue says the index may be behind (``index_dirty``: an indexing run
        is under way, or was killed before its last flush); then the catalogue's vector ids are compared
        with the index's, once per change of either. The missing vectors (up to ``MAX_GAP``) are searched
        exactly beside the index, so results are complete; more than that are only reported.
        """
        if self.catalog.get_meta("index_dirty") != "1":
            self._gap, self._gap_key, self._gap_warning = {}, None, None
            return {}, None
        key = (self.catalog.data_version(), self.catalog.db.total_changes,
               self.store.count("segments"), self.store.count("tracks"))
        if key == self._gap_key:
            return self._gap, self._gap_warning
        missing: dict[str, np.ndarray] = {}
        for name in ("segments", "tracks"):
            have = self.store.ids(name)
            if have is not None:
                missing[name] = np.setdiff1d(self.catalog.vector_ids(name, model_id=self.model_id), have,
                                             assume_unique=True)
        n_seg, n_tr = (len(missing.get(n, ())) for n in ("segments", "tracks"))
        gap, warning = {}, None
        if n_seg or n_tr:
            what = f"{n_seg} segment and {n_tr} track vectors of the catalogue"
            fix = "`soundalike rebuild-index` (or the next `soundalike index`) brings it up to date"
            if n_seg + n_tr <= MAX_GAP:
                gap = {name: (ids, normalize(self.catalog.vectors_by_id(name, ids)))
                       for name, ids in missing.items() if len(ids)}
                warning = (f"the vector index lacks {what} (an indexing run is under way or did not finish); "
                           f"they were searched exactly, so these results are complete; {fix}")
            else:
                warning = (f"the vector index lacks {what} (an indexing run is under way or did not finish): "
                           f"these results leave those out; {fix}")
            log.warning("%s", warning)
        self._gap, self._gap_key, self._gap_warning = gap, key, warning
        return gap, warning

    def _search(self, collection: str, queries: np.ndarray, k: int, allowed: np.ndarray | None):
        """The store's top k, merged with an exact scan of what the index lacks (``index_gap``)."""
        ids, scores = self.store.search(collection, queries, k, allowed)
        gap = self._gap.get(collection)
        if gap is None:
            return ids, scores
        gap_ids, gap_vecs = gap
        if allowed is not None:
            keep = np.isin(gap_ids, allowed)
            gap_ids, gap_vecs = gap_ids[keep], gap_vecs[keep]
        if len(gap_ids) == 0:
            return ids, scores
        more_ids, more_scores = exact_topk(queries, gap_vecs, gap_ids, k)
        all_ids, all_scores = np.concatenate([ids, more_ids], 1), np.concatenate([scores, more_scores], 1)
        order = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(all_ids, order, 1), np.take_along_axis(all_scores, order, 1)

    def segment_table(self) -> SegmentTable:
        """Informative segments in memory, reloaded when the catalogue changed."""
        version = (self.catalog.data_version(), self.catalog.db.total_changes)
        if self._table is None or version != self._table_version:
            self._table = SegmentTable(*self.catalog.segment_table())
            self._table_version = version
        return self._table

    def embed_query(
        self, model: Embedder, source, *, start: float | None, end: float | None, hop: float,
        silence_db: float = DEFAULT_SILENCE_DB, audio_out: list[np.ndarray] | None = None, max_windows: int = 0,
        max_seconds: float | None = None,
    ) -> tuple[QueryInfo, np.ndarray, np.ndarray, np.ndarray]:
        """Decode and embed a query, streaming: memory stays bounded whatever its length.

        ``max_windows``: when the source is longer than that many windows at ``hop``, the
        hop widens (``segment.widened_hop``; ``QueryInfo.hop`` says which), so that a whole
        song or an hour-long reference costs about what a few minutes do; 0: ``hop`` as given.
        ``audio_out``: a list that receives the first ``align.MAX_QUERY_SECONDS`` of the
        decoded audio (at the model's rate), for the re-rank.
        ``max_seconds``: refuse a longer query (``TooLongError``, see ``decode.stream``)."""
        if start is not None and end is not None and end <= start:
            raise QueryError(f"--end ({end:g} s) must be after --start ({start:g} s)")
        length, stream = decoding.open_stream(source, sample_rate=model.sample_rate, start=start, end=end,
                                              max_seconds=max_seconds)
        hop = widened_hop(length, hop=hop, window_seconds=model.window_seconds, max_windows=max_windows)
        n_samples = 0
        budget = round(reranking.MAX_QUERY_SECONDS * model.sample_rate) if audio_out is not None else 0

        def blocks():
            nonlocal n_samples
            for block in stream:
                if n_samples < budget:
                    audio_out.append(block[: budget - n_samples].copy())
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
            mask = batch.informative
            if mask.any():
                raw.append(model.embed_only(model.features(batch.samples[mask])))
                starts.append(batch.starts[mask])
                ends.append(batch.ends[mask])
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
        ids, scores = self._search("segments", q, k, allowed_segs)
        track_vec = normalize(query.raw.mean(axis=0))[None, :]
        tids, tscores = self._search("tracks", track_vec, pool + len(query.exclude), allowed_tracks)
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
        (identify/policy.py)."""
        timings = {} if timings is None else timings
        t0 = time.perf_counter()
        _, gap_warning = self.index_gap()
        allowed_arrays = self.allowed_ids(allowed)
        exclude = frozenset().union(*(q.exclude for q in positives + negatives))
        pos = [self.candidates(q, pool=top, k=k, weights=weights, allowed=allowed_arrays) for q in positives]
        neg = [self.candidates(q, pool=top, k=k, weights=weights, allowed=allowed_arrays) for q in negatives]
        t1 = time.perf_counter()
        listed = top + min(top, SPARE_FOR_COPIES)  # hits built, so that ``top`` remain once copies are folded in
        # copies of one recording: one candidate to the re-rank's rules, one hit in the result; each pair tested once
        same = CopyTest(self.catalog, hop=self.hop)
        if len(positives) + len(negatives) == 1:
            ranked = combine(pos, [], exclude=exclude)
            if rerank > 0 and positives[0].audio is not None:
                t_r = time.perf_counter()
                ranked = self.rerank(positives[0], ranked, rerank, weights=weights, allowed=allowed, same=same)
                timings["rerank_ms"] = (time.perf_counter() - t_r) * 1000
            ranked = ranked[:listed]
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
                             exact=(exact_pos, exact_neg))[:listed]
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
                    copy_confidence=None if r.verdict is None or r.verdict.confidence is None
                    else round(r.verdict.confidence, 4),
                    identified_by=r.verdict.reason or None if r.verdict is not None else None,
                    **({} if r.warp is None else {"semitones": r.warp.semitones, "tempo": r.warp.tempo}),
                    **({"seed": r.seed, "seed_scores": [round(x, 4) for x in r.seed_scores]}
                       if len(positives) + len(negatives) > 1 else {}),
                )
            )
        hits = group_copies(hits, self.catalog, hop=self.hop, same=same)[:top]
        t2 = time.perf_counter()
        timings["ann_ms"] = (t1 - t0) * 1000
        timings["fusion_ms"] = (t2 - t1) * 1000 - timings.get("rerank_ms", 0.0)
        info = positives[0].info if len(positives) == 1 and not negatives else merged_info(positives, negatives)
        return SearchResult(query=info, hits=hits, timings_ms={k: round(v, 2) for k, v in timings.items()},
                            warnings=[gap_warning] if gap_warning else [])

    def rerank(
        self, query: Query, ranked: list[Combined], n: int, *, weights: Weights,
        allowed: frozenset[int] | None = None, policy: judging.Policy = judging.DEFAULT, same: CopyTest | None = None,
    ) -> list[Combined]:
        """Gather identification evidence about the leading ``n`` candidates and the tracks the query's landmarks
        point to (identify/landmarks.py): align their audio with the query's (identify/align.py); when none is a
        copy yet, also align the tracks the scan prints point to (identify/prints.py). Then rank them all by the
        policy's verdicts (identify/policy.py): copies first, then the track two views agree on, then the rest by
        score.

        A candidate the embedding did not reach joins with its fused score from all its segments
        (``rescore``). Where landmarks or the sweep give an offset, the alignment starts there."""
        by_id = {c.track_id: c for c in ranked}
        offsets = {c.track_id: c.best.offset for c in ranked[:n] if c.best.offset is not None}
        marked = [m for m in self.landmark_candidates(query, allowed) if self._join(query, m.track_id, by_id, weights)]
        for m in marked:
            c = by_id[m.track_id]
            offsets[m.track_id] = m.offset - query.info.start
            if c.best.offset is None or m.match > 0:  # the landmarks' offset (16 ms steps), not the windows'
                self._place(query, c, offsets[m.track_id])
            c.warp = m.warp
        by_landmarks = {m.track_id: m for m in marked}
        found = self._aligned(query, [*by_landmarks, *(t for t in offsets if t not in by_landmarks)], offsets,
                              confirm=policy.confirm)
        same = same or CopyTest(self.catalog, hop=self.hop)  # copies of one recording are one candidate to the rules
        swept: list[printing.Found] = []
        if not judging.settled(self._evidence(by_id, by_landmarks, found, same, swept), policy):
            # no copy yet: sweep the scan prints, and align what they found where they found it
            swept = self.scan_candidates(query, allowed)
            again = [f for f in swept if (f.track_id not in found or found[f.track_id].match <= policy.floor)
                     and self._join(query, f.track_id, by_id, weights)]
            offsets.update((f.track_id, f.offset - query.info.start) for f in again)
            for tid, al in self._aligned(query, [f.track_id for f in again], offsets, confirm=policy.confirm).items():
                if tid not in found or al.match > found[tid].match:
                    found[tid] = al
        evidence = self._evidence(by_id, by_landmarks, found, same, swept)
        verdicts = judging.judge(evidence, sweep_lead=printing.leader(swept, policy.sweep_lead) is not None,
                                 policy=policy)
        _, rep = judging.recordings(evidence)
        for tid, v in verdicts.items():
            c = by_id[tid]
            c.score, c.match, c.verdict = v.shown, v.match, v
            c.copy = None if v.match is None else v.copy
            if tid in by_landmarks:
                continue
            if v.reason in ("stands out", "sweep agrees") and rep[tid] == tid and tid in {f.track_id for f in swept}:
                c.best.offset = offsets[tid]  # a copy the sweep found: its offset, not the windows' guess
            elif v.reason == "agreed":  # the sweep's offset, which the alignment confirmed
                self._place(query, c, swept[0].offset - query.info.start if tid == swept[0].track_id
                            else found[tid].lag - query.info.start)  # a copy of the swept track: where it aligned
        for c in by_id.values():  # a copy's matched pairs are where identification found it, not the windows' guesses
            if c.copy and c.best.offset is not None:
                c.best.matches = self.pairs_at(query, c.track_id, c.best.offset, tempo=c.warp.tempo if c.warp else 1.0)
        return [by_id[t] for t in judging.order(verdicts, {t: c.best.track_cosine for t, c in by_id.items()})]

    @staticmethod
    def _evidence(by_id: dict[int, Combined], by_landmarks: dict[int, landmarking.Candidate],
                  found: dict[int, reranking.Alignment], same: CopyTest,
                  swept: list[printing.Found]) -> list[judging.Evidence]:
        """Each candidate's evidence for the policy (identify/policy.py); copies of one recording share its
        best-aligned track as ``recording``."""
        _, rep = reranking.recordings(found, same)
        return [judging.Evidence(
            track_id=tid, fused=c.score, alignment=found[tid].match if tid in found else None,
            landmarks=by_landmarks[tid].match if tid in by_landmarks else None,
            unwarped=tid not in by_landmarks or by_landmarks[tid].warp == landmarking.SAME,
            recording=rep.get(tid), swept=bool(swept) and swept[0].track_id == tid) for tid, c in by_id.items()]

    def _join(self, query: Query, track_id: int, by_id: dict[int, Combined], weights: Weights) -> bool:
        """Whether ``track_id`` is a candidate, adding it (scored from all its segments) if the windows missed it."""
        if track_id not in by_id:
            c = self._rescored(query, track_id, weights)
            if c is None:
                return False
            by_id[track_id] = c
        return True

    @staticmethod
    def _place(query: Query, c: Combined, offset: float) -> None:
        """An offset better than the windows' guess, and the matched windows that agree with it."""
        c.best.offset = offset
        c.best.offset_votes = sum(abs(p.track_start - p.query_start - offset) <= query.offset_tolerance
                                  for p in c.best.matches)

    def pairs_at(self, query: Query, track_id: int, offset: float, *, tempo: float = 1.0) -> list[MatchedPair]:
        """The query's windows where the track holds them at ``offset`` (catalogue time - query time; for a tempo
        warp, at the query's start, then ``tempo`` track seconds per query second): query window t <-> track
        t + offset, so that playing either side plays the same passage. Each pair's similarity is the window's
        embedding against the track's informative segment nearest that place; windows outside the track, or
        with no informative segment within ``offset_tolerance``, are left out."""
        table = self.segment_table()
        mask = table.track_ids == track_id
        starts = table.starts[mask]
        vectors = self.catalog.informative_vectors_of([track_id]).get(track_id)
        rows = self.catalog.tracks([track_id])
        if vectors is None or len(vectors) != len(starts) or not rows:
            return []
        duration = rows[0].duration
        sims = normalize(query.raw) @ normalize(vectors).T
        pairs = []
        for qi, (qs, qe) in enumerate(zip(query.starts, query.ends)):
            ts = float(qs) + offset + (float(qs) - query.info.start) * (tempo - 1.0)
            te = ts + (float(qe) - float(qs)) * tempo
            if ts < -query.offset_tolerance or ts >= duration:
                continue
            j = int(np.argmin(np.abs(starts - ts)))
            if abs(starts[j] - ts) > query.offset_tolerance:
                continue
            pairs.append(MatchedPair(query_start=round(float(qs), 3), query_end=round(float(qe), 3),
                                     track_start=round(max(ts, 0.0), 3), track_end=round(min(te, duration), 3),
                                     similarity=round(float(sims[qi, j]), 4)))
        return pairs

    def _aligned(self, query: Query, order: list[int], offsets: dict[int, float], *,
                 confirm: float) -> dict[int, reranking.Alignment]:
        """The re-rank's audio alignment of these tracks at their offsets, in this order (``align.match_candidates``:
        it stops after the first group with a copy)."""
        rows = {t.id: t for t in self.catalog.tracks(order)}
        cands = [(tid, rows[tid].path, rows[tid].duration, offsets[tid]) for tid in order if tid in rows]
        return reranking.match_candidates(query.audio, query.info.start, cands, confirm=confirm)

    def landmark_candidates(self, query: Query, allowed: frozenset[int] | None) -> list[landmarking.Candidate]:
        """Tracks whose landmarks agree with the query's at one offset (identify/landmarks.py), best first."""
        if self.postings is None:
            return []
        looks = landmarking.query_looks(query.audio, reranking.SR)
        hashes = np.concatenate([marks.hashes for _, marks in looks])
        if not len(hashes):
            return []
        self.postings.sync(self.catalog)
        hits = self.postings.hits(hashes)
        keep = ~np.isin(hits[:, 1], list(query.exclude))
        if allowed is not None:
            keep &= np.isin(hits[:, 1], list(allowed))
        return landmarking.rank(looks, hits[keep])

    def scan_candidates(self, query: Query, allowed: frozenset[int] | None) -> list[printing.Found]:
        """The tracks whose scan prints correlate best with the query's at one offset (identify/prints.py), best first;
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
    audio: np.ndarray | None = None  # the query's first seconds at align.SR, for the re-rank (None: no re-rank)


@dataclass
class Combined:
    track_id: int
    score: float
    seed: int  # the positive seed whose evidence (votes, offset, matches) the hit shows
    seed_scores: list[float]  # fused score per positive seed, then per negative seed
    best: FusedTrack
    match: float | None = None  # the re-rank's audio match (identify/align.py), when it ran for this track
    warp: landmarking.Warp | None = None  # the query's pitch and tempo against the track, where landmarks found it
    copy: bool | None = None  # the policy judged the query a copy of this track; None: no match ran
    verdict: judging.Verdict | None = None  # the identification policy's verdict (identify/policy.py)


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
