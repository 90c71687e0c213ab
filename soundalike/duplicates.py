"""Near-duplicate tracks: the same recording under another encoding, trim, fade, level or channel layout.

Three stages, all over what the catalogue holds (nothing is decoded):

1. candidates: each track's nearest tracks by track-vector cosine (the ANN
   ``tracks`` collection), kept when the cosine is at least ``min_cosine``, and
   given the landmark postings the tracks its landmarks hit most
   (``LANDMARK_NEIGHBOURS``), when the shorter track lasts at least
   ``min_ratio`` of the longer;
2. segment alignment: for every offset that some pair of windows suggests,
   each informative window of the shorter track takes its best cosine among
   the longer track's windows at that offset (within half a hop); windows
   with no counterpart count 0. The best offset's mean is the pair's score.

A different performance of the same piece, or another track in the same
style, agrees window by window far less than a re-encode of one recording,
which is what the alignment measures.

3. landmarks (identify/landmarks.py), where both tracks have them: the share of the
   shorter track's landmark hashes found in the other at one offset
   (``agreement_at``), counted only when that offset is within a hop of the
   windows' offset and the voting landmarks cover ``MIN_COVERAGE`` of the
   shorter track. Copies of one recording share some (0.02 for Opus 24k, up
   to 1.0) all along the track; different music almost none, at a random
   offset, or only in a few bars. A pair below ``MIN_LANDMARK_AGREEMENT`` is
   not a duplicate, and a pair above it needs only ``VERIFIED_THRESHOLD``.
   A pair whose windows align but whose landmarks disagree is tried again
   with the landmarks of the shorter warped by ``SPEEDS`` (a speed change
   moves every hash): ``DuplicatePair.speed``.

``group_copies`` applies the same rules to a search result: copies of one recording of nearly the same
length (``COPY_MIN_RATIO``) become one hit that lists the others (``Hit.copies``), so that two files of one
recording do not split the votes and fill the list.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .identify import landmarks as landmarking
from .catalog import Catalog
from .stores.base import VectorStore

__all__ = ["CopyTest", "DuplicatePair", "find_duplicates", "group_copies", "required_score", "pair_score", "DEFAULT_THRESHOLD"]

# From the small evaluation corpus (bench/quality.py; docs/quality.md), with musicnn 0.1.0-port.2
# (windows level-normalised): every true pair (re-encodes, trims, fades, +6/-10 dB, mono
# fold-downs) scores >= 0.967, different tracks (chorales on one instrument, tracks of one
# album) <= 0.946; the threshold sits between them. F1 1.00 there (0.88 at the old 0.93).
DEFAULT_THRESHOLD = 0.955
# With landmarks (full evaluation corpus, 240 true pairs among 424 files; docs/quality.md): different
# chorales on one instrument score up to 0.99 by their windows but agree on <= 0.08 of their landmarks
# (95 % <= 0.01); true pairs agree on >= 0.07. That first rule (alignment >= 0.92, agreement >= 0.05) missed
# low-bitrate re-encodes (Opus 24k: windows 0.61-0.99, agreement 0.03-0.2) and trims with fades (windows
# 0.89-0.99). bench/duplicates.py (issue 21; 44 music tracks, 88 hard variants, 883 candidate pairs), on its
# calibration half: false pairs agree on <= 0.0067 of their landmarks *at an offset within a hop of the
# windows' offset* (<= 0.0105 at any offset), true pairs on >= 0.0196; their windows score >= 0.607. So a
# pair needs agreement >= 0.015 at an offset the windows confirm, and its windows 0.5.
VERIFIED_THRESHOLD = 0.5
MIN_LANDMARK_AGREEMENT = 0.015
# A speed change (tape-style: pitch and tempo together) moves every landmark, so two copies of one
# recording at different speeds share almost none of their hashes. A pair whose windows align but whose
# landmarks disagree is tried again under these speed ratios (and the ratio of their durations): the
# stored hashes of one are decoded into (bin, bin difference, frame difference), scaled and re-hashed
# (``warped_agreement``). bench/duplicates.py measures it on +-3 % copies.
# Copies of one recording share landmarks all along; different tracks of one synthesiser can share a few bars
# note for note. The voting landmarks must fall in at least this share of the shorter track's 3 s stretches
# that have landmarks (``coverage``). bench/duplicates.py: true pairs >= 0.89 (warped or not), false pairs
# with agreement >= 0.01 <= 0.5; bench/duplicates_scale.py's synthesised tracks: one pair of different
# tracks agreeing on 0.025 at the windows' offset covered 0.29.
COVERAGE_SPAN = 3.0
MIN_COVERAGE = 0.7
# Warps are tried only for pairs whose windows score at least this: the +-3 % copies of bench/duplicates.py
# score >= 0.849; it skips 42 % of the candidate pairs there (different music whose windows disagree).
WARP_MIN_SCORE = 0.8
SPEEDS = tuple(round(1 + d, 3) for d in np.arange(-0.06, 0.0601, 0.01) if abs(d) > 1e-9)
# Search results: copies folded into one hit last nearly as long as each other (a re-encode, a level change, a
# channel fold-down); a trim to less than this share, or an excerpt, stays a hit of its own.
COPY_MIN_RATIO = 0.95


@dataclass(frozen=True)
class DuplicatePair:
    a: int  # track ids, a < b
    b: int
    score: float  # mean aligned window cosine, 0..1
    offset: float  # seconds: where the shorter track starts in the longer one
    track_cosine: float
    landmarks: float | None = None  # landmarks.agreement of the two; None when either has none
    speed: float = 1.0  # the shorter played this many times as fast agrees with the longer (warped landmarks)


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
    tol = hop / 2 + 1e-6
    # per candidate offset, each window of a takes its best among b's windows within tol of that offset: with b's
    # windows by start, those are a short run that a binary search finds (widened, then tested exactly as
    # |diff - offset| <= tol), not a pass over every window pair per offset
    order = np.argsort(starts_b, kind="stable")
    sb, sim = starts_b[order], sim[:, order]
    want = starts_a[None, :] + candidates[:, None]  # (offsets, na)
    lo = np.searchsorted(sb, want - 2 * tol, side="left")
    hi = np.searchsorted(sb, want + 2 * tol, side="right")
    rows = np.arange(len(starts_a))
    per_window = np.full(want.shape, -np.inf, sim.dtype)
    for k in range(int((hi - lo).max(initial=0))):
        j = np.minimum(lo + k, len(sb) - 1)
        near = (lo + k < hi) & (np.abs((sb[j] - starts_a[None, :]) - candidates[:, None]) <= tol)
        per_window = np.where(near, np.maximum(per_window, sim[rows, j]), per_window)
    scores = np.where(np.isfinite(per_window), np.maximum(per_window, 0), 0)
    best = (-1.0, 0.0)
    for off, row in zip(candidates, scores):
        score = float(row.mean())
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


@functools.lru_cache(maxsize=1)
def _first_bin() -> int:
    from .identify.align import SR

    n_fft = 1 << int(np.ceil(np.log2(landmarking.FFT_SECONDS * SR)))
    return int(np.flatnonzero(np.fft.rfftfreq(n_fft, 1.0 / SR) >= landmarking.F_LO)[0])


def warped(marks, speed: float):
    """``marks`` (stored landmarks) as they would be had the audio been played ``speed`` times as fast:
    every peak's frequency times ``speed``, every time divided by it, re-hashed as ``pair_hashes`` does."""
    h, t = marks.hashes, marks.frames
    first = _first_bin()
    f = h >> 13
    df = ((h >> 6) & 127) - 64
    dt = h & 63
    f2 = np.round((f + first) * speed - first).astype(np.int64)
    df2 = np.round((f + df + first) * speed - first).astype(np.int64) - f2
    dt2 = np.round(dt / speed).astype(np.int64)
    ok = (f2 >= 0) & (f2 < 1 << 8) & (np.abs(df2) <= landmarking.MAX_DF) & (dt2 >= 1) & (dt2 <= landmarking.MAX_DT)
    hashes = (f2[ok] << 13) | ((df2[ok] + 64) << 6) | dt2[ok]
    frames = np.round(t[ok] / speed).astype(np.int64)
    order = np.argsort(frames, kind="stable")
    return landmarking.Landmarks(hashes[order], frames[order])


def _by_hash(b) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(b.hashes, kind="stable")
    return b.hashes[order], b.frames[order]


def pair_votes(a, b, *, sorted_b: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[int, float, np.ndarray]:
    """(votes, offset in seconds, frames of ``a``'s landmarks that voted) of two tracks' landmarks: the hashes they
    share at the one time difference (``b``'s frame - ``a``'s, ±1 frame) that most of them agree on. A sort-merge
    join of the two sets: a few hundred microseconds for two songs (``landmarks.rank``'s lookup tables, sized for
    a catalogue's postings, cost milliseconds to set up for every pair)."""
    none = (0, 0.0, np.zeros(0, np.int64))
    if not len(a) or not len(b):
        return none
    bh, bf = sorted_b if sorted_b is not None else _by_hash(b)
    lo = np.searchsorted(bh, a.hashes, side="left")
    n = np.searchsorted(bh, a.hashes, side="right") - lo
    total = int(n.sum())
    if not total:
        return none
    ai = np.repeat(np.arange(len(a.hashes)), n)
    bi = np.repeat(lo - np.cumsum(n) + n, n) + np.arange(total)
    diff = bf[bi] - a.frames[ai]
    base = int(diff.min()) - 1
    counts = np.bincount(diff - base, minlength=int(diff.max()) - base + 2)
    smooth = counts.copy()
    smooth[1:] += counts[:-1]
    smooth[:-1] += counts[1:]
    best = int(np.argmax(smooth))
    voted = np.abs(diff - (best + base)) <= 1
    return int(smooth[best]), float((best + base) * landmarking.HOP_SECONDS), a.frames[ai[voted]]


def coverage(voted: np.ndarray, frames: np.ndarray, *, span: float) -> float:
    """Share of the ``span``-second stretches holding any of a track's landmarks (``frames``) that hold one that
    voted (``voted``): silence, which has no landmarks in either copy, does not count."""
    def stretches(f):
        return np.unique((f * landmarking.HOP_SECONDS / span).astype(np.int64))

    have = stretches(frames)
    return len(np.intersect1d(stretches(voted), have)) / len(have) if len(have) else 0.0


def agreement_at(a, b, *, offset: float | None = None, tolerance: float = 0.0,
                 min_coverage: float = 0.0, sorted_b=None) -> tuple[float, float]:
    """(``landmarks.agreement`` of ``a`` and ``b``, the offset its votes peak at: ``b``'s time - ``a``'s), the
    agreement counted only when that offset is within ``tolerance`` seconds of ``offset`` (None: anywhere) and
    the votes cover at least ``min_coverage`` of ``a`` (``coverage``)."""
    votes, at, frames = pair_votes(a, b, sorted_b=sorted_b)
    if not votes or (offset is not None and abs(at - offset) > tolerance):
        return 0.0, 0.0
    if min_coverage and coverage(frames, a.frames, span=COVERAGE_SPAN) < min_coverage:
        return 0.0, 0.0
    return votes / min(len(a), len(b)), at


def warped_agreement(a, b, *, speeds, offset: float | None = None, tolerance: float = 0.0,
                     min_coverage: float = 0.0) -> tuple[float, float, float]:
    """(best ``agreement_at`` of ``a`` played at each of ``speeds`` with ``b``, that speed, the offset)."""
    best = (0.0, 1.0, 0.0)
    sorted_b = _by_hash(b)
    for s in speeds:
        agree, at = agreement_at(warped(a, s), b, offset=offset, tolerance=tolerance, min_coverage=min_coverage,
                                 sorted_b=sorted_b)
        if agree > best[0]:
            best = (agree, float(s), at)
    return best


class _Tracks:
    """Per-track data the pair tests read from the catalogue, each loaded once: informative windows, landmarks."""

    def __init__(self, catalog: Catalog, dim: int | None = None, *, speeds: tuple[float, ...] = SPEEDS) -> None:
        self.catalog, self.dim, self.speeds = catalog, dim, speeds
        self._windows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._marks: dict[int, object] = {}

    def windows(self, tid: int) -> tuple[np.ndarray, np.ndarray]:
        if tid not in self._windows:
            s = [(start, v) for _, start, _, informative, _, v in self.catalog.segments_of(tid)
                 if informative and v is not None]
            self._windows[tid] = (np.array([x for x, _ in s]), _unit(np.stack([v for _, v in s]).astype(np.float32))) \
                if s else (np.zeros(0), np.zeros((0, self.dim or 1), np.float32))
        return self._windows[tid]

    def marks(self, tid: int):
        if tid not in self._marks:
            self._marks[tid] = self.catalog.landmarks_of(tid)
        return self._marks[tid]

    def same_recording(self, a: int, b: int, *, hop: float, durations: tuple[float, float],
                       threshold: float | None = None) -> tuple[float, float, float | None] | None:
        """(alignment score, offset of the shorter in the longer, landmark agreement or None, speed) when ``a``
        and ``b`` pass the duplicate rules; else None. ``speed``: 1.0, or the speed at which the shorter track's
        landmarks agree with the longer's when they agree only once warped (``warped_agreement``).
        ``durations``: (a's, b's), to align the shorter within the longer."""
        short, long_ = (a, b) if durations[0] <= durations[1] else (b, a)
        floor = min(required_score(threshold, 1.0), required_score(threshold, None))  # before the landmarks are read
        score, offset = pair_score(*self.windows(short), *self.windows(long_), hop=hop)
        if score < floor:
            return None
        agree, speed = None, 1.0
        la, lb = self.marks(short), self.marks(long_)
        if la is not None and lb is not None:
            # the landmarks must agree where the windows align (a hop either way): chance agreement between
            # different music peaks at a random offset
            agree, at = agreement_at(la, lb, offset=offset, tolerance=hop, min_coverage=MIN_COVERAGE)
            if agree < MIN_LANDMARK_AGREEMENT and self.speeds and min(durations) > 0 and score >= WARP_MIN_SCORE:
                ratio = round(min(durations) / max(durations), 4)  # the short one played slower fills the long one
                agree, speed, at = warped_agreement(la, lb, offset=offset, tolerance=hop, min_coverage=MIN_COVERAGE,
                                                    speeds=(ratio, *self.speeds) if ratio < 0.999 else self.speeds)
            if agree < MIN_LANDMARK_AGREEMENT:
                return None
            offset = at  # the landmarks' offset: to a frame (16 ms), the windows' to a quarter hop
        return (score, offset, agree, speed) if score >= required_score(threshold, agree) else None


class CopyTest:
    """``test(a, b)``: whether tracks ``a`` and ``b`` are copies of one recording of nearly the same length: the
    same file content (sha256), or a pair passing ``find_duplicates``'s rules whose durations are within
    ``COPY_MIN_RATIO`` of each other and whose track vectors are within ``min_cosine`` (a cheap first test).
    Each pair is tested once; the catalogue's rows are read once per track."""

    def __init__(self, catalog: Catalog, *, hop: float, min_cosine: float = 0.9) -> None:
        self.catalog, self.hop, self.min_cosine = catalog, hop, min_cosine
        self._data = _Tracks(catalog)
        self._rows: dict[int, tuple[str | None, float, np.ndarray | None]] = {}  # sha256, duration, unit vector
        self._pairs: dict[tuple[int, int], bool] = {}

    def _row(self, tid: int) -> tuple[str | None, float, np.ndarray | None]:
        if tid not in self._rows:
            rows = self.catalog.tracks([tid])
            f = self.catalog.file_by_path(rows[0].path) if rows else None
            v = self.catalog.track_vector(tid)
            self._rows[tid] = (f.sha256 if f is not None and f.sha256 else None, rows[0].duration if rows else 0.0,
                               None if v is None else _unit(v.astype(np.float32)))
        return self._rows[tid]

    def __call__(self, a: int, b: int) -> bool:
        key = (min(a, b), max(a, b))
        if key not in self._pairs:
            self._pairs[key] = self._test(a, b)
        return self._pairs[key]

    def _test(self, a: int, b: int) -> bool:
        (sha_a, dur_a, va), (sha_b, dur_b, vb) = self._row(a), self._row(b)
        if sha_a is not None and sha_a == sha_b:
            return True
        if min(dur_a, dur_b) < COPY_MIN_RATIO * max(dur_a, dur_b):
            return False
        if va is None or vb is None or float(va @ vb) < self.min_cosine:
            return False
        return self._data.same_recording(a, b, hop=self.hop, durations=(dur_a, dur_b)) is not None


#: extra hits a search builds beyond ``top`` (at most this many), to fill the places of copies folded into others
SPARE_FOR_COPIES = 20


def group_copies(hits: list, catalog: Catalog, *, hop: float, min_cosine: float = 0.9,
                 same: CopyTest | None = None) -> list:
    """Fold each hit that is a copy of a better-ranked one (``CopyTest``) into it (``Hit.copies``), keeping the
    order. Each hit is compared with the hits kept so far. ``same``: a ``CopyTest`` that already tested some
    pairs (the re-rank's), instead of a new one."""
    from .types import TrackCopy

    if len(hits) < 2:
        return hits
    same = same or CopyTest(catalog, hop=hop, min_cosine=min_cosine)
    kept: list = []
    for h in hits:
        leader = next((g for g in kept if same(g.track_id, h.track_id)), None)
        if leader is None:
            kept.append(h)
        else:
            leader.copies.append(TrackCopy(track_id=h.track_id, path=h.path, title=h.title, score=h.score))
            leader.copies.extend(h.copies)
    return kept


# A copy whose embedding moved far (Opus 24k of a chorale: cosine 0.63 to its original, where other chorales on
# the instrument sit at 0.98) is not among its original's nearest track vectors. With the landmark postings,
# each track's landmarks (at most ``LOOKUP_HASHES``, evenly spaced, so a 4-minute track costs what 30 s does)
# are also looked up in the catalogue, and the ``LANDMARK_NEIGHBOURS`` tracks with most votes at one offset
# (at least ``landmarks.MIN_VOTES``) become candidates too, whatever their cosine.
LOOKUP_HASHES = 2000
LANDMARK_NEIGHBOURS = 5


def _landmark_neighbours(tid: int, marks, postings) -> list[int]:
    if marks is None or not len(marks):
        return []
    step = max(1, len(marks) // LOOKUP_HASHES)
    look = landmarking.Landmarks(marks.hashes[::step], marks.frames[::step])
    hits = postings.hits(look.hashes)
    hits = hits[hits[:, 1] != tid]
    return [c.track_id for c in landmarking.rank(look, hits, top=LANDMARK_NEIGHBOURS)]


def find_duplicates(
    catalog: Catalog, store: VectorStore, *, threshold: float | None = None, hop: float,
    neighbours: int = 10, min_cosine: float = 0.5, min_ratio: float = 0.5, postings=None, model_id: str | None = None,
) -> list[DuplicatePair]:
    """Pairs of tracks scoring at least ``required_score(threshold, their landmark agreement)``, best
    first; a pair whose landmarks disagree (below ``MIN_LANDMARK_AGREEMENT``) never is one.

    Candidates: each track's ``neighbours`` nearest track vectors (cosine at least ``min_cosine``) and, given
    the landmark ``postings`` (identify/postings.py, synced), the tracks its landmarks hit most. ``model_id``:
    only the tracks that model embedded, whose vectors ``store`` holds (a library of music and effects, kinds.py)."""
    tracks = {t: v for t, v in catalog.track_vectors(model_id=model_id)}
    if len(tracks) < 2:
        return []
    rows = {r.id: r for r in catalog.tracks(list(tracks))}
    ids = np.array(sorted(tracks), np.int64)
    q = _unit(np.stack([tracks[int(t)] for t in ids]).astype(np.float32))
    nn_ids, nn_scores = store.search("tracks", q, min(neighbours + 1, len(ids)))
    where = {int(t): i for i, t in enumerate(ids)}
    data = _Tracks(catalog, q.shape[1])
    out, seen = [], set()
    for i, tid in enumerate(ids):
        cands = [(int(o), float(c)) for o, c in zip(nn_ids[i], nn_scores[i]) if int(o) >= 0 and c >= min_cosine]
        if postings is not None:
            near = {o for o, _ in cands}
            heard = _landmark_neighbours(int(tid), catalog.landmarks_of(int(tid)), postings)
            cands += [(o, float(q[i] @ q[where[o]])) for o in heard if o in where and o not in near]
        for other, cos in cands:
            if other == tid:
                continue
            a, b = sorted((int(tid), other))
            if (a, b) in seen or a not in rows or b not in rows:
                continue
            seen.add((a, b))
            da, db = rows[a].duration, rows[b].duration
            if min(da, db) < min_ratio * max(da, db):
                continue
            same = data.same_recording(a, b, hop=hop, durations=(da, db), threshold=threshold)
            if same is not None:
                score, offset, agree, speed = same
                out.append(DuplicatePair(a, b, round(score, 4), round(offset, 2), round(float(cos), 4),
                                         None if agree is None else round(agree, 4), round(speed, 4)))
    out.sort(key=lambda p: (-p.score, p.a, p.b))
    return out
