"""Fuse per-window ANN hits into one ranking of tracks. Pure numpy, no I/O.

For every query window we have the top-K catalogue segments. Per track:

* ``votes``: how many query windows have the track among their hits;
* ``similarity``: the best similarity per query window, averaged over all
  query windows (a window that missed the track adds 0);
* ``offset_similarity``: like ``similarity``, but each query window counts
  only its best hit at the track's peak offset (below), so hits scattered
  over unrelated parts of a track add nothing: temporal consistency;
* ``score`` = (w_votes * votes / n_windows + w_similarity * similarity
  + w_offset * offset_similarity + w_track * track_cosine) / (sum of weights),
  so 1.0 means every query window matched perfectly; it does not depend on
  the other results;
* ``offset``: the peak of the (catalogue time - query time) histogram, with
  ``offset_votes`` windows agreeing within the tolerance. It says where the
  query sits in the track ("your clip is at 1:23 of X").
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from .errors import UserError
from .types import MatchedPair


@dataclass(frozen=True)
class Weights:
    votes: float = 0.2
    similarity: float = 0.8
    track: float = 0.0
    offset: float = 0.0

    NAMES = ("votes", "similarity", "track", "offset")

    #: the largest weight accepted (they are relative: only their ratios matter)
    MAX = 1e6

    def __post_init__(self) -> None:
        for name in self.NAMES:
            v = getattr(self, name)
            try:
                ok = math.isfinite(float(v)) and 0 <= float(v) <= self.MAX
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise UserError(f"weights: {name} must be a number from 0 to {self.MAX:g}, got {v!r}")
        if self.total <= 0:
            raise UserError("weights: at least one weight must be > 0")

    @property
    def total(self) -> float:
        return self.votes + self.similarity + self.track + self.offset

    @classmethod
    def parse(cls, text: str) -> "Weights":
        """``"votes=0.2,similarity=0.8,track=0,offset=0"`` (any subset, the rest default)."""
        if len(text) > 200:
            raise UserError(f"weights: expected at most 200 characters, got {len(text)}")
        values = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, value = part.partition("=")
            name = name.strip()
            if name not in cls.NAMES or not value:
                raise UserError(f"weights: expected name=value with names votes, similarity, track, offset; got {part!r}")
            try:
                values[name] = float(value)
            except ValueError:
                raise UserError(f"weights: {name} is not a number: {value!r}") from None
        return cls(**values)


@dataclass
class FusedTrack:
    track_id: int
    score: float
    votes: int
    similarity: float
    track_cosine: float
    offset: float | None
    offset_votes: int
    matches: list[MatchedPair] = field(default_factory=list)
    offset_similarity: float = 0.0


@dataclass(frozen=True)
class SegmentTable:
    """Informative catalogue segments: ids sorted ascending, with their track and times."""

    ids: np.ndarray
    track_ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """Row index of each id, -1 where unknown."""
        if len(self.ids) == 0:
            return np.full(ids.shape, -1, np.int64)
        pos = np.clip(np.searchsorted(self.ids, ids), 0, len(self.ids) - 1)
        return np.where(self.ids[pos] == ids, pos, -1)


def _offset_peak(per_window: dict[int, list[tuple[float, float, int]]], tol: float) -> tuple[float | None, int, dict[int, int]]:
    """Find the offset most query windows agree on.

    per_window: query window -> [(offset, similarity, segment row)].
    Returns (offset, agreeing windows, chosen segment row per window).
    """
    qis = list(per_window)
    counts = np.array([len(per_window[q]) for q in qis])
    if not counts.sum():
        return None, 0, {}
    offs = np.array([o for q in qis for o, _, _ in per_window[q]], dtype=np.float64)
    sims = np.array([s for q in qis for _, s, _ in per_window[q]], dtype=np.float64)
    bounds = np.concatenate(([0], np.cumsum(counts)[:-1]))[counts > 0]
    candidates = np.unique(offs)
    support = np.empty(len(candidates))
    for a in range(0, len(candidates), 256):  # (candidates x hits) in slices: bounded memory
        c = candidates[a : a + 256, None]
        near = np.where(np.abs(offs[None, :] - c) <= tol, sims[None, :], -np.inf)
        best_per_window = np.maximum.reduceat(near, bounds, axis=1)
        support[a : a + 256] = np.where(np.isfinite(best_per_window), best_per_window, 0.0).sum(axis=1)
    center = float(candidates[int(np.argmax(support))])
    chosen, offs, ws = {}, [], []
    for qi, hits in per_window.items():
        near = [(s, o, row) for o, s, row in hits if abs(o - center) <= tol]
        if near:
            s, o, row = max(near)
            chosen[qi] = row
            offs.append(o)
            ws.append(s)
    offset = float(np.average(offs, weights=np.maximum(ws, 1e-6)))
    return offset, len(chosen), chosen


def fuse(
    *,
    query_starts: np.ndarray,
    query_ends: np.ndarray,
    hit_ids: np.ndarray,
    hit_scores: np.ndarray,
    segments: SegmentTable,
    track_cosines: dict[int, float],
    weights: Weights = Weights(),
    offset_tolerance: float = 1.5,
    exclude: set[int] | frozenset[int] = frozenset(),
) -> list[FusedTrack]:
    """Rank tracks from per-window hits; see the module docstring."""
    n_windows = len(query_starts)
    rows = segments.lookup(hit_ids.reshape(-1)).reshape(hit_ids.shape)
    # track -> query window -> [(offset, sim, row)]
    per_track: dict[int, dict[int, list[tuple[float, float, int]]]] = defaultdict(lambda: defaultdict(list))
    for qi in range(n_windows):
        for row, sim in zip(rows[qi], hit_scores[qi]):
            if row < 0 or not np.isfinite(sim):
                continue
            tid = int(segments.track_ids[row])
            if tid in exclude:
                continue
            per_track[tid][qi].append((float(segments.starts[row] - query_starts[qi]), float(sim), int(row)))

    total_w = weights.total
    fused = []
    for tid in set(per_track) | {t for t in track_cosines if t not in exclude}:
        windows = per_track.get(tid, {})
        best = {qi: max(h[1] for h in hits) for qi, hits in windows.items()}
        votes = len(best)
        similarity = sum(best.values()) / max(n_windows, 1)
        cos = float(track_cosines.get(tid, 0.0))
        offset, offset_votes, chosen = _offset_peak(windows, offset_tolerance) if windows else (None, 0, {})
        offset_sim = 0.0
        for qi, row in chosen.items():
            offset_sim += max(s for _, s, r in windows[qi] if r == row)
        offset_sim /= max(n_windows, 1)
        score = (weights.votes * votes / max(n_windows, 1) + weights.similarity * similarity
                 + weights.offset * offset_sim + weights.track * cos) / total_w
        matches = []
        for qi in sorted(windows):
            hits = windows[qi]
            row = chosen.get(qi)
            sim = next((s for _, s, r in hits if r == row), None) if row is not None else None
            if row is None:
                _, sim, row = max(hits, key=lambda h: h[1])
            matches.append(
                MatchedPair(
                    query_start=round(float(query_starts[qi]), 3),
                    query_end=round(float(query_ends[qi]), 3),
                    track_start=round(float(segments.starts[row]), 3),
                    track_end=round(float(segments.ends[row]), 3),
                    similarity=round(float(sim), 4),
                )
            )
        fused.append(FusedTrack(tid, score, votes, similarity, cos, offset, offset_votes, matches, offset_sim))
    fused.sort(key=lambda f: (-f.score, -f.track_cosine, f.track_id))
    return fused
