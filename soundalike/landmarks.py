"""Landmark hashes: a second way to find a query's source, for identification under noise and filtering.

The embedding finds tracks that *sound* like a query, and under 0-10 dB of
noise, a phone band or a short excerpt the true source can drop out of its
leading candidates, where the fingerprint re-rank (rerank.py) never sees it.
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
Pitch and tempo changes move the peaks: those queries are the embedding's
to find. docs/quality.md measures all of it.
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
MAX_CANDIDATES = 5  # landmark candidates a search aligns (rerank.py), besides the embedding's leading ones
QUERY_DENSITY = 2.0  # a query keeps twice the peaks and pairs of a catalogue track: more of its hashes survive noise


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

    def __init__(self, sample_rate: int, *, density: float = 1.0) -> None:
        self.sr = sample_rate
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
        self._pending = (np.zeros(0, np.int64), np.zeros(0, np.int64))  # peaks not yet paired as anchors
        self._out_h: list[np.ndarray] = []
        self._out_t: list[np.ndarray] = []

    def push(self, block: np.ndarray) -> None:
        x = np.concatenate([self._samples, np.asarray(block, np.float32)])
        n = 0 if len(x) < self.n_fft else 1 + (len(x) - self.n_fft) // self.hop
        if n:
            frames = np.lib.stride_tricks.sliding_window_view(x, self.n_fft)[:: self.hop][:n]
            spec = np.abs(np.fft.rfft(frames * self.window, axis=1)[:, self.bins])
            self._spec.append((20.0 * np.log10(spec + 1e-6)).astype(np.float32))
        self._samples = x[n * self.hop :]
        if sum(len(s) for s in self._spec) >= CHUNK + 2 * PEAK_FRAMES:
            self._search(final=False)

    def finish(self) -> Landmarks:
        self._search(final=True)
        self._pair(final=True)
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
            t, f = self._thin(t + self._spec_start, f, white[t, f], self.peaks_per_second)
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
    def _thin(t: np.ndarray, f: np.ndarray, v: np.ndarray, most: int) -> tuple[np.ndarray, np.ndarray]:
        """At most ``most`` peaks per second of frames, the strongest; sorted by (t, f)."""
        per = round(1.0 / HOP_SECONDS)
        second = t // per
        order = np.lexsort((-v, second))
        t, f, second = t[order], f[order], second[order]
        starts = np.searchsorted(second, second, side="left")
        rank = np.arange(len(t)) - starts
        keep = rank < most
        t, f = t[keep], f[keep]
        order = np.lexsort((f, t))
        return t[order].astype(np.int64), f[order].astype(np.int64)

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
    """Peaks sorted by frame -> (hashes, anchor frames) for the first ``anchors`` peaks as anchors."""
    n = len(t) if anchors is None else anchors
    hs, ts = [], []
    taken = np.zeros(n, np.int64)
    for k in range(1, 8 * fanout):  # look ahead far enough to find FANOUT targets in dense stretches
        j = np.arange(n) + k
        ok = j < len(t)
        if not ok.any():
            break
        i = np.flatnonzero(ok)
        j = j[ok]
        dt, df = t[j] - t[i], f[j] - f[i]
        good = (dt >= 1) & (dt <= MAX_DT) & (np.abs(df) <= MAX_DF) & (taken[i] < fanout)
        i, dt, df = i[good], dt[good], df[good]
        taken[i] += 1
        hs.append((f[i] << 13) | ((df + 64) << 6) | dt)
        ts.append(t[i])
    if not hs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(hs).astype(np.int64), np.concatenate(ts).astype(np.int64)


def extract(samples: np.ndarray, sample_rate: int, *, density: float = 1.0) -> Landmarks:
    """Landmarks of a whole mono clip (a query)."""
    ex = Extractor(sample_rate, density=density)
    ex.push(samples)
    return ex.finish()


@dataclass(frozen=True)
class Candidate:
    track_id: int
    votes: int  # hits at the best time difference (±1 frame)
    offset: float  # seconds: catalogue time - query time
    match: float  # 0..1: how far the votes stand above chance (``rank``)


def rank(
    query: Landmarks, hits: np.ndarray, *, min_votes: int = MIN_VOTES, top: int = MAX_CANDIDATES
) -> list[Candidate]:
    """The tracks with at least ``min_votes`` hits at one time difference, most votes first.

    ``hits``: (n, 3) int64 rows of (hash, track id, frame) from the catalogue
    for the query's hashes. Every track that shares a hash with the query has
    some votes by chance; ``chance`` is the median best count of the tracks
    after the leading ``top``, and a candidate's ``match`` is
    ``max(0, (votes - 2 * chance) / votes) * votes / most``, with ``most`` the
    leading candidate's votes: 0 at twice the chance count, towards 1 for a
    copy, and only as high as the track's evidence is next to the leader's
    (a track with the same synth voices or the same notes shares some hashes
    at one offset; two copies of one recording share them all).
    """
    if len(query) == 0 or len(hits) == 0:
        return []
    order = np.argsort(query.hashes, kind="stable")
    qh, qt = query.hashes[order], query.frames[order]
    lo = np.searchsorted(qh, hits[:, 0], side="left")
    reps = np.searchsorted(qh, hits[:, 0], side="right") - lo
    if not reps.sum():
        return []
    rows = np.repeat(np.arange(len(hits)), reps)
    qidx = np.repeat(lo, reps) + np.arange(len(rows)) - np.repeat(np.cumsum(reps) - reps, reps)
    keys = np.stack([hits[rows, 1], hits[rows, 2] - qt[qidx]], axis=1)  # (track, catalogue - query frame)
    uniq, counts = np.unique(keys, axis=0, return_counts=True)  # sorted by track, then difference
    smooth = counts.copy()  # each difference with its neighbours ±1 (a peak can fall between two frames)
    same = (uniq[1:, 0] == uniq[:-1, 0]) & (uniq[1:, 1] == uniq[:-1, 1] + 1)
    smooth[1:][same] += counts[:-1][same]
    smooth[:-1][same] += counts[1:][same]
    starts = np.flatnonzero(np.r_[True, uniq[1:, 0] != uniq[:-1, 0]])
    best = np.maximum.reduceat(smooth, starts)
    lead = np.argsort(-best, kind="stable")
    chance = max(2.0, float(np.median(best[lead[top:]]))) if len(lead) > top else 2.0
    out = []
    most = int(best[lead[0]])
    for i in lead[:top]:
        if best[i] < min_votes:
            break
        s, e = starts[i], starts[i + 1] if i + 1 < len(starts) else len(smooth)
        j = s + int(np.argmax(smooth[s:e]))
        votes = int(best[i])
        out.append(Candidate(int(uniq[s, 0]), votes, float(uniq[j, 1]) * HOP_SECONDS,
                             max(0.0, (votes - 2 * chance) / votes) * votes / most))
    return out


def agreement(a: Landmarks, b: Landmarks) -> float:
    """Share of the smaller set's landmarks that ``a`` and ``b`` have in common at one offset (±1 frame):
    near 1 for two copies of one recording, near 0 for different music, whatever it sounds like."""
    if not len(a) or not len(b):
        return 0.0
    hits = np.stack([b.hashes, np.zeros_like(b.hashes), b.frames], axis=1)
    best = rank(a, hits, min_votes=1, top=1)
    return best[0].votes / min(len(a), len(b)) if best else 0.0
