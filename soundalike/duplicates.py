"""Near-duplicate tracks: the same recording under another encoding, trim, fade, level or channel layout.

Three stages, all over what the catalogue holds (nothing is decoded):

1. candidates: each track's nearest tracks by track-vector cosine (the ANN
   ``tracks`` collection), kept when the cosine is at least ``min_cosine`` and
   the shorter track lasts at least ``min_ratio`` of the longer;
2. segment alignment: for every offset that some pair of windows suggests,
   each informative window of the shorter track takes its best cosine among
   the longer track's windows at that offset (within half a hop); windows
   with no counterpart count 0. The best offset's mean is the pair's score.

A different performance of the same piece, or another track in the same
style, agrees window by window far less than a re-encode of one recording,
which is what the alignment measures.

3. landmarks (landmarks.py), where both tracks have them: the share of the
   shorter track's landmark hashes found in the other at one offset
   (``landmarks.agreement``). Copies of one recording share most of them
   (0.07-1.0, median 0.67, on the full evaluation corpus's true pairs);
   different music almost none (95 % below 0.01), even when it sounds alike
   (the same instrument, the same style). A pair below
   ``MIN_LANDMARK_AGREEMENT`` is not a duplicate, and a pair above it needs
   only ``VERIFIED_THRESHOLD``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import landmarks as landmarking
from .catalog import Catalog
from .stores.base import VectorStore

__all__ = ["DuplicatePair", "find_duplicates", "required_score", "pair_score", "DEFAULT_THRESHOLD"]

# From the small evaluation corpus (bench/quality.py; docs/quality.md), with musicnn 0.1.0-port.2
# (windows level-normalised): every true pair (re-encodes, trims, fades, +6/-10 dB, mono
# fold-downs) scores >= 0.967, different tracks (chorales on one instrument, tracks of one
# album) <= 0.946; the threshold sits between them. F1 1.00 there (0.88 at the old 0.93).
DEFAULT_THRESHOLD = 0.955
# With landmarks (full evaluation corpus, 240 true pairs among 424 files; docs/quality.md): different
# chorales on one instrument score up to 0.99 by their windows but agree on <= 0.08 of their landmarks
# (95 % <= 0.01); true pairs agree on >= 0.07. Alignment >= 0.92 and agreement >= 0.05: F1 0.96 (0.81
# by the windows alone at 0.955).
VERIFIED_THRESHOLD = 0.92
MIN_LANDMARK_AGREEMENT = 0.05


@dataclass(frozen=True)
class DuplicatePair:
    a: int  # track ids, a < b
    b: int
    score: float  # mean aligned window cosine, 0..1
    offset: float  # seconds: where the shorter track starts in the longer one
    track_cosine: float
    landmarks: float | None = None  # landmarks.agreement of the two; None when either has none


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def pair_score(
    starts_a: np.ndarray, vecs_a: np.ndarray, starts_b: np.ndarray, vecs_b: np.ndarray, *, hop: float
) -> tuple[float, float]:
    """(score, offset of a within b) of two tracks' informative windows (vectors unit-normalised)."""
    if len(vecs_a) == 0 or len(vecs_b) == 0:
        return 0.0, 0.0
    sim = vecs_a @ vecs_b.T  # (na, nb)
    diff = starts_b[None, :] - starts_a[:, None]  # offset each window pair suggests
    candidates = np.unique(np.round(diff[sim >= np.max(sim, axis=1, keepdims=True) - 1e-6] / (hop / 4)) * (hop / 4))
    best = (-1.0, 0.0)
    tol = hop / 2 + 1e-6
    for off in candidates:
        near = np.abs(diff - off) <= tol
        per_window = np.where(near, sim, -np.inf).max(axis=1)
        score = float(np.where(np.isfinite(per_window), np.maximum(per_window, 0), 0).mean())
        if score > best[0]:
            best = (score, float(off))
    return best


def required_score(threshold: float | None, landmarks: float | None) -> float:
    """The alignment a pair needs: ``threshold`` when given, else ``VERIFIED_THRESHOLD`` for a pair whose
    landmarks agree (``landmarks`` not None: the agreement, already at least ``MIN_LANDMARK_AGREEMENT``)
    and ``DEFAULT_THRESHOLD`` for one without landmarks."""
    if threshold is not None:
        return threshold
    return VERIFIED_THRESHOLD if landmarks is not None else DEFAULT_THRESHOLD


def find_duplicates(
    catalog: Catalog, store: VectorStore, *, threshold: float | None = None, hop: float,
    neighbours: int = 10, min_cosine: float = 0.8, min_ratio: float = 0.5,
) -> list[DuplicatePair]:
    """Pairs of tracks scoring at least ``required_score(threshold, their landmark agreement)``, best
    first; a pair whose landmarks disagree (below ``MIN_LANDMARK_AGREEMENT``) never is one."""
    tracks = {t: v for t, v in catalog.track_vectors()}
    if len(tracks) < 2:
        return []
    rows = {r.id: r for r in catalog.tracks(list(tracks))}
    ids = np.array(sorted(tracks), np.int64)
    q = _unit(np.stack([tracks[int(t)] for t in ids]).astype(np.float32))
    nn_ids, nn_scores = store.search("tracks", q, min(neighbours + 1, len(ids)))
    segs: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def windows(tid: int) -> tuple[np.ndarray, np.ndarray]:
        if tid not in segs:
            s = [(start, v) for _, start, _, informative, _, v in catalog.segments_of(tid) if informative and v is not None]
            segs[tid] = (np.array([x for x, _ in s]), _unit(np.stack([v for _, v in s]).astype(np.float32))) if s else (
                np.zeros(0), np.zeros((0, q.shape[1]), np.float32))
        return segs[tid]

    lms: dict[int, object] = {}

    def marks(tid: int):
        if tid not in lms:
            lms[tid] = catalog.landmarks_of(tid)
        return lms[tid]

    floor = min(required_score(threshold, 1.0), required_score(threshold, None))  # before the landmarks are read
    out, seen = [], set()
    for i, tid in enumerate(ids):
        for other, cos in zip(nn_ids[i], nn_scores[i]):
            other = int(other)
            if other < 0 or other == tid or cos < min_cosine:
                continue
            a, b = sorted((int(tid), other))
            if (a, b) in seen or a not in rows or b not in rows:
                continue
            seen.add((a, b))
            da, db = rows[a].duration, rows[b].duration
            if min(da, db) < min_ratio * max(da, db):
                continue
            short, long_ = (a, b) if da <= db else (b, a)
            score, offset = pair_score(*windows(short), *windows(long_), hop=hop)
            if score < floor:
                continue
            agree = None
            la, lb = marks(a), marks(b)
            if la is not None and lb is not None:
                agree = landmarking.agreement(la, lb)
                if agree < MIN_LANDMARK_AGREEMENT:
                    continue
            if score >= required_score(threshold, agree):
                out.append(DuplicatePair(a, b, round(score, 4), round(offset, 2), round(float(cos), 4),
                                         None if agree is None else round(agree, 4)))
    out.sort(key=lambda p: (-p.score, p.a, p.b))
    return out
