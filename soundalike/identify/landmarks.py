"""Landmark hashes: a second way to find a query's source, for identification under noise and filtering.

The embedding finds tracks that *sound* like a query, and under 0-10 dB of
noise, a phone band or a short excerpt the true source can drop out of its
leading candidates, where the fingerprint re-rank (identify/align.py) never sees it.
Landmarks (Wang, "An industrial-strength audio search algorithm", ISMIR
2003) look the source up directly:

* a spectrogram (64 ms FFT, 16 ms hop, 300-4000 Hz) is whitened per
  frequency bin (its median over ``CHUNK`` frames subtracted), so that
  stationary noise and any static filter drop out;
* its local maxima over ±``PEAK_FRAMES`` frames and ±``PEAK_BINS`` bins, at
  most ``PEAKS_PER_SECOND`` per second (the strongest), are the peaks: the
  loud points of the music survive noise that buries the rest;
* each peak is paired with the next ``FANOUT`` peaks within ``MAX_DT``
  frames and ±``MAX_DF`` bins, and a pair is a 21-bit hash of (bin of the
  first, bin difference, frame difference), stored with the first peak's frame.

A query's hashes are looked up in the catalogue (``Catalog.landmark_hits``);
a copy of a stretch of a track has many hits at **one** time difference
(catalogue frame - query frame), chance hits scatter. ``rank`` counts, per
track, the hits at the best difference (±1 frame) and returns the tracks
with at least ``MIN_VOTES``, their offsets and how far their votes stand
above chance (``match``), which search adds to the re-rank's candidates.
A query keeps ``QUERY_DENSITY`` times the peaks and pairs of a catalogue
track, so that more of the catalogue's pairs are among its own under noise.
A pitch shift or tempo change moves every peak, so a query is also looked
up under ``WARPS`` (``query_looks``): its peaks, with their bins refined to a
fraction, scaled back by ±1 and ±2 semitones or 5 and 10 % in time and
rounded as the catalogue's were. docs/quality.md measures all of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HOP_SECONDS = 0.016
FFT_SECONDS = 0.064
F_LO, F_HI = 300.0, 4000.0
CHUNK = 512  # frames whitened and searched for peaks at a time (8.2 s)
PEAK_FRAMES, PEAK_BINS = 5, 10  # a peak is the maximum of (2x+1) frames x (2x+1) bins around it
PEAKS_PER_SECOND = 16
MIN_PROMINENCE_DB = 3.0  # above the bin's median
FANOUT, MAX_DT, MAX_DF = 4, 63, 63
MIN_VOTES = 8  # hits at one time difference that make a candidate
MAX_CANDIDATES = 5  # landmark candidates a search aligns (identify/align.py), besides the embedding's leading ones
QUERY_DENSITY = 2.0  # a query keeps twice the peaks and pairs of a catalogue track: more of its hashes survive noise
WARP_DENSITY = 1.0  # its warped looks (``query_looks``) keep the catalogue's density: a quarter of the hashes


def frames_of(carry: np.ndarray, block: np.ndarray, n_fft: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """The whole frames (``n_fft`` samples every ``hop``) of ``carry`` followed by ``block``, and the samples
    left for the next block: a stream framed block by block gives the frames of the whole signal."""
    x = np.concatenate([carry, np.asarray(block, np.float32)])
    n = 0 if len(x) < n_fft else 1 + (len(x) - n_fft) // hop
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop][:n] if n else np.zeros((0, n_fft), np.float32)
    return frames, x[n * hop :]


def _max_filter(a: np.ndarray, axis: int, half: int) -> np.ndarray:
    """Maximum over a window of 2*half+1 along ``axis`` (edges padded with -inf).

    By doubling: maxima over 2, 4, 8, ... elements, then the window as two
    overlapping power-of-two spans; log2(window) + 1 passes instead of a
    reduction over every window.
    """
    w = 2 * half + 1
    pad = [(0, 0)] * a.ndim
    pad[axis] = (half, half)
    m = np.moveaxis(np.pad(a, pad, constant_values=-np.inf), axis, 0)
    n = m.shape[0] - w + 1
    span = 1
    while span * 2 <= w:
        m = np.maximum(m[:-span], m[span:])
        span *= 2
    return np.moveaxis(np.maximum(m[:n], m[w - span : w - span + n]), 0, axis)


@dataclass
class Landmarks:
    """Hashes and the frame (``HOP_SECONDS``) of each one's first peak, both int64, sorted by frame."""

    hashes: np.ndarray
    frames: np.ndarray

    def __len__(self) -> int:
        return len(self.hashes)


class Extractor:
    """Landmarks of a stream of mono float32 blocks at ``sample_rate``, in bounded memory.

    ``push`` blocks as they decode, then ``finish()``; a 2-hour file holds at
    most ``CHUNK`` + context frames of spectrogram at a time.
    """

    def __init__(self, sample_rate: int, *, density: float = 1.0, keep_peaks: bool = False) -> None:
        self.sr = sample_rate
        self.keep_peaks = keep_peaks  # a query's: every peak, its bin refined to a fraction (``peaks``)
        self.peaks: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # frames, fractional bins, strengths
        self.peaks_per_second = round(PEAKS_PER_SECOND * density)
        self.fanout = round(FANOUT * density)
        self.hop = max(1, round(HOP_SECONDS * sample_rate))
        self.n_fft = 1 << int(np.ceil(np.log2(FFT_SECONDS * sample_rate)))
        freqs = np.fft.rfftfreq(self.n_fft, 1.0 / sample_rate)
        self.bins = np.flatnonzero((freqs >= F_LO) & (freqs < F_HI))
        self.window = np.hanning(self.n_fft).astype(np.float32)
        self._samples = np.zeros(0, np.float32)  # not yet framed
        self._spec: list[np.ndarray] = []  # spectrogram frames not yet searched (dB), as row blocks
        self._spec_start = 0  # frame index of the first held row
        self._done_to = 0  # peaks are final before this frame
        self._peaks_t: list[np.ndarray] = []
        self._peaks_f: list[np.ndarray] = []
        self._kept: list[tuple[np.ndarray, ...]] = []  # (frames, fractional bins, strengths), with keep_peaks
        self._pending = (np.zeros(0, np.int64), np.zeros(0, np.int64))  # peaks not yet paired as anchors
        self._out_h: list[np.ndarray] = []
        self._out_t: list[np.ndarray] = []

    def push(self, block: np.ndarray) -> None:
        frames, self._samples = frames_of(self._samples, block, self.n_fft, self.hop)
        if len(frames):
            spec = np.abs(np.fft.rfft(frames * self.window, axis=1)[:, self.bins])
            self._spec.append((20.0 * np.log10(spec + 1e-6)).astype(np.float32))
        if sum(len(s) for s in self._spec) >= CHUNK + 2 * PEAK_FRAMES:
            self._search(final=False)

    def finish(self) -> Landmarks:
        self._search(final=True)
        self._pair(final=True)
        if self.keep_peaks:
            kept = self._kept or [(np.zeros(0, np.int64), np.zeros(0), np.zeros(0))]
            self.peaks = tuple(np.concatenate([k[i] for k in kept]) for i in range(3))
        if not self._out_h:
            return Landmarks(np.zeros(0, np.int64), np.zeros(0, np.int64))
        h, t = np.concatenate(self._out_h), np.concatenate(self._out_t)
        order = np.argsort(t, kind="stable")
        return Landmarks(h[order], t[order])

    def _search(self, *, final: bool) -> None:
        """Find the peaks of the held spectrogram, keeping PEAK_FRAMES of context on each side."""
        while self._spec:
            spec = np.concatenate(self._spec) if len(self._spec) > 1 else self._spec[0]
            self._spec = [spec]
            if not final and len(spec) < CHUNK + 2 * PEAK_FRAMES:
                return
            # rows [0, lead) are context already searched; search up to CHUNK rows after them
            lead = self._done_to - self._spec_start
            end = len(spec) if final else min(len(spec) - PEAK_FRAMES, lead + CHUNK)
            s = spec[: min(len(spec), end + PEAK_FRAMES)]
            white = s - np.median(s, axis=0, keepdims=True)
            local = _max_filter(_max_filter(white, 0, PEAK_FRAMES), 1, PEAK_BINS)
            t, f = np.nonzero((white == local) & (white > MIN_PROMINENCE_DB))
            keep = (t >= lead) & (t < end)
            t, f = t[keep], f[keep]
            keep = self._strongest(t + self._spec_start, f, white[t, f], self.peaks_per_second)
            if self.keep_peaks:
                self._kept.append((t[keep] + self._spec_start, self._refined(white, t[keep], f[keep]),
                                   white[t[keep], f[keep]]))
            t, f = (t[keep] + self._spec_start).astype(np.int64), f[keep].astype(np.int64)
            self._peaks_t.append(t)
            self._peaks_f.append(f)
            self._done_to = self._spec_start + end
            self._pair(final=False)
            drop = max(0, end - PEAK_FRAMES)  # keep PEAK_FRAMES of context before the next search
            self._spec = [spec[drop:]] if drop < len(spec) else []
            self._spec_start += drop
            if final and end >= len(spec):
                self._spec = []
                return

    @staticmethod
    def _strongest(t: np.ndarray, f: np.ndarray, v: np.ndarray, most: int) -> np.ndarray:
        """Indices of at most ``most`` peaks per second of frames, the strongest, by (t, f)."""
        second = t // round(1.0 / HOP_SECONDS)
        order = np.lexsort((-v, second))
        rank = np.arange(len(t)) - np.searchsorted(second[order], second[order], side="left")
        keep = order[rank < most]
        return keep[np.lexsort((f[keep], t[keep]))]

    @staticmethod
    def _refined(white: np.ndarray, t: np.ndarray, f: np.ndarray) -> np.ndarray:
        """Fractional bins of peaks: the vertex of the parabola through each peak and its two neighbours
        (within half a bin), where the peak lies between bins; a pitch shift moves it by a fraction."""
        v = white[t, f]
        up = white[t, np.minimum(f + 1, white.shape[1] - 1)]
        down = white[t, np.maximum(f - 1, 0)]
        curve = down - 2 * v + up
        frac = np.where(curve < 0, 0.5 * (down - up) / np.where(curve < 0, curve, -1.0), 0.0)
        return f + np.clip(frac, -0.5, 0.5)

    def _pair(self, *, final: bool) -> None:
        """Hash anchors whose MAX_DT frames of targets are all found."""
        t = np.concatenate([self._pending[0], *self._peaks_t])
        f = np.concatenate([self._pending[1], *self._peaks_f])
        self._peaks_t, self._peaks_f = [], []
        ready = len(t) if final else int(np.searchsorted(t, self._done_to - MAX_DT, side="left"))
        if ready:
            h, at = pair_hashes(t, f, anchors=ready, fanout=self.fanout)
            self._out_h.append(h)
            self._out_t.append(at)
        self._pending = (t[ready:], f[ready:])


def pair_hashes(
    t: np.ndarray, f: np.ndarray, *, anchors: int | None = None, fanout: int = FANOUT
) -> tuple[np.ndarray, np.ndarray]:
    """Peaks sorted by frame -> (hashes, anchor frames) for the first ``anchors`` peaks as anchors.

    Each anchor pairs with the first ``fanout`` of the next peaks (up to ``8 * fanout`` ahead, far enough in
    dense stretches) within ``MAX_DT`` frames and ``MAX_DF`` bins; hashes come out by distance (k-th next peak),
    then by anchor. All (distance, anchor) pairs at once: a loop over distances cost more in calls than in work."""
    n = len(t) if anchors is None else anchors
    if n == 0 or len(t) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    j = np.arange(n)[None, :] + np.arange(1, 8 * fanout)[:, None]  # (distance, anchor) -> target
    inside = j < len(t)
    j = np.minimum(j, len(t) - 1)
    dt, df = t[j] - t[:n], f[j] - f[:n]
    good = inside & (dt >= 1) & (dt <= MAX_DT) & (np.abs(df) <= MAX_DF)
    good &= np.cumsum(good, axis=0) <= fanout  # the first ``fanout`` of each anchor's
    k, i = np.nonzero(good)
    return ((f[i] << 13) | ((df[k, i] + 64) << 6) | dt[k, i]).astype(np.int64), t[i].astype(np.int64)


def extract(samples: np.ndarray, sample_rate: int, *, density: float = 1.0) -> Landmarks:
    """Landmarks of a whole mono clip."""
    ex = Extractor(sample_rate, density=density)
    ex.push(samples)
    return ex.finish()


@dataclass(frozen=True)
class Warp:
    """A pitch shift or tempo change a query may have gone through, relative to its source."""

    semitones: float = 0.0
    tempo: float = 1.0  # query seconds x tempo = track seconds

    def __str__(self) -> str:
        if self.semitones:
            return f"{self.semitones:+g} st"
        return f"tempo x{self.tempo:g}" if self.tempo != 1.0 else "as is"


SAME = Warp()
# the query as it is, then as if shifted back by a semitone or two, or played 5 or 10 % slower or faster
WARPS = (SAME, *(Warp(semitones=s) for s in (1, -1, 2, -2)), *(Warp(tempo=t) for t in (1.05, 0.95, 1.1, 0.9)))


def query_looks(
    samples: np.ndarray, sample_rate: int, *, density: float = QUERY_DENSITY, warps: tuple[Warp, ...] | None = None
) -> list[tuple[Warp, Landmarks]]:
    """A query's landmarks under each of ``warps``: the hashes its source would have, were it warped so.

    A semitone moves every peak by 2^(1/12), about 6 %, which changes every
    hash's bins. The query's peaks are found once, their bins refined to a
    fraction, then scaled back by each pitch shift (and their frames by each
    tempo) and rounded, as the catalogue's own peaks were.
    """
    ex = Extractor(sample_rate, density=density, keep_peaks=True)
    ex.push(samples)
    own = ex.finish()
    warps = WARPS if warps is None else warps
    t, f, v = ex.peaks
    keep = ex._strongest(t, np.round(f), v, round(PEAKS_PER_SECOND * WARP_DENSITY))
    t, f = t[keep], f[keep]
    fanout = round(FANOUT * WARP_DENSITY)
    first = int(ex.bins[0]) if len(ex.bins) else 0
    out = []
    for w in warps:
        if w == SAME:
            out.append((w, own))
            continue
        tw = np.round(t * w.tempo).astype(np.int64)
        fw = np.round((f + first) * 2.0 ** (-w.semitones / 12.0) - first).astype(np.int64)
        ok = (fw >= 0) & (fw < len(ex.bins))
        order = np.lexsort((fw[ok], tw[ok]))
        h, at = pair_hashes(tw[ok][order], fw[ok][order], fanout=fanout)
        order = np.argsort(at, kind="stable")
        out.append((w, Landmarks(h[order], at[order])))
    return out


@dataclass(frozen=True)
class Candidate:
    track_id: int
    votes: int  # hits at the best time difference (±1 frame)
    offset: float  # seconds: catalogue time - query time (at the query's start, for a tempo warp)
    match: float  # 0..1: how far the votes stand above chance (``rank``)
    warp: Warp = SAME  # the look that found it


def rank(
    looks: list[tuple[Warp, Landmarks]] | Landmarks, hits: np.ndarray, *,
    min_votes: int = MIN_VOTES, top: int = MAX_CANDIDATES,
) -> list[Candidate]:
    """The tracks with at least ``min_votes`` hits at one time difference, most votes first.

    ``looks``: the query's landmarks, or its landmarks under several warps
    (``query_looks``); a track counts under the warp that gives it most votes.
    ``hits``: (n, 3) int64 rows of (hash, track id, frame) from the catalogue
    for the query's hashes. Every track that shares a hash with the query has
    some votes by chance; ``chance`` is the median best count of the tracks
    after the leading ``top`` (at least 2), and a candidate's ``match`` is
    ``max(0, (votes - 2 * chance) / votes) * votes / most``, with ``most`` the
    leading candidate's votes: 0 at twice the chance count, towards 1 for a
    copy, and only as high as the track's evidence is next to the leader's
    (a track with the same synth voices or the same notes shares some hashes
    at one offset; two copies of one recording share them all).
    """
    if isinstance(looks, Landmarks):
        looks = [(SAME, looks)]
    look, tracks, votes, diffs = _votes([q for _, q in looks], hits)
    if not len(tracks):
        return []
    order = np.lexsort((-votes, tracks))  # each track's best look first (the first look on a tie)
    order = order[np.r_[True, tracks[order][1:] != tracks[order][:-1]]]
    lead = order[np.lexsort((tracks[order], -votes[order]))]
    rest = votes[lead[top:]]
    chance = max(2.0, float(np.median(rest))) if len(rest) else 2.0
    most = int(votes[lead[0]])
    out = []
    for i in lead[:top]:
        v = int(votes[i])
        if v < min_votes:
            break
        out.append(Candidate(int(tracks[i]), v, int(diffs[i]) * HOP_SECONDS,
                             max(0.0, (v - 2 * chance) / v) * v / most, looks[int(look[i])][0]))
    return out


def _votes(looks: list[Landmarks], hits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(looks, tracks, votes, frame differences): for each look and each track it hits, the most hits at one
    time difference (±1 frame), ordered by look, then track. All looks in one pass over the hits."""
    none = np.zeros(0, np.int64)
    if not len(hits) or not sum(len(q) for q in looks):
        return none, none, none, none
    qh = np.concatenate([q.hashes for q in looks])
    qt = np.concatenate([q.frames for q in looks])
    ql = np.concatenate([np.full(len(q), k, np.int64) for k, q in enumerate(looks)])
    order = np.argsort(qh, kind="stable")
    qh, qt, ql = qh[order], qt[order], ql[order]
    lo, reps = _positions(qh, hits[:, 0])
    total = int(reps.sum())
    if not total:
        return none, none, none, none
    rows = np.repeat(np.arange(len(hits)), reps)
    qidx = np.repeat(lo - np.cumsum(reps) + reps, reps) + np.arange(total)
    diff = hits[rows, 2] - qt[qidx]  # catalogue - query frame
    base = int(diff.min()) - 1
    span = int(diff.max()) - base + 2
    n_tracks = int(hits[:, 1].max()) + 1
    group = ql[qidx] * n_tracks + hits[rows, 1]  # (look, track)
    keys, counts = np.unique(group * span + (diff - base), return_counts=True)  # by look and track, then difference
    group, diff = keys // span, keys % span + base
    smooth = counts.copy()  # each difference with its neighbours ±1 (a peak can fall between two frames)
    same = (group[1:] == group[:-1]) & (diff[1:] == diff[:-1] + 1)
    smooth[1:][same] += counts[:-1][same]
    smooth[:-1][same] += counts[1:][same]
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    best = np.maximum.reduceat(smooth, starts)
    # the difference at each group's best: the first position where smooth reaches it
    pos = np.arange(len(smooth))
    at = np.where(smooth == np.repeat(best, np.diff(np.r_[starts, len(smooth)])), pos, len(smooth))
    first = np.minimum.reduceat(at, starts)
    g = group[starts]
    return g // n_tracks, g % n_tracks, best.astype(np.int64), diff[first]


def _positions(sorted_hashes: np.ndarray, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``hashes``: where its run starts in ``sorted_hashes`` and how long it is (0: absent).
    Hashes fit in 21 bits, so two lookup tables indexed by hash do it in one gather per hit; a binary
    search per hit (searchsorted) took most of a 1,000-hour look-up's time."""
    if len(hashes) and len(sorted_hashes) and 0 <= sorted_hashes[0] and sorted_hashes[-1] < 1 << 22 \
            and hashes.min() >= 0 and hashes.max() < 1 << 22:
        uniq, first, n = np.unique(sorted_hashes, return_index=True, return_counts=True)
        size = int(max(uniq[-1], hashes.max())) + 1
        start, count = np.zeros(size, np.int64), np.zeros(size, np.int64)
        start[uniq], count[uniq] = first, n
        return start[hashes], count[hashes]
    lo = np.searchsorted(sorted_hashes, hashes, side="left")
    return lo, np.searchsorted(sorted_hashes, hashes, side="right") - lo


def agreement(a: Landmarks, b: Landmarks) -> float:
    """Share of the smaller set's landmarks that ``a`` and ``b`` have in common at one offset (±1 frame):
    near 1 for two copies of one recording, near 0 for different music, whatever it sounds like."""
    if not len(a) or not len(b):
        return 0.0
    hits = np.stack([b.hashes, np.zeros_like(b.hashes), b.frames], axis=1)
    best = rank(a, hits, min_votes=1, top=1)
    return best[0].votes / min(len(a), len(b)) if best else 0.0
