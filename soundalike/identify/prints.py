"""Scan prints: a coarse fingerprint of every track, swept end to end at query time.

Landmarks (identify/landmarks.py) find a copy by a few exact hash hits; under heavy
noise (0 dB SNR) most of a query's spectral peaks are the noise's, too few
hashes survive, and the copy is missed. What still survives is the coarse
shape of the music's spectrum over time, if it is compared at *every*
offset of *every* track, as Chromaprint's matcher does: the one true
alignment then stands out by summing weak agreement over the whole query.

A print frame is 256 ms of audio every 128 ms: the log energy in 24
log-spaced bands between 200 and 3500 Hz, and one bit per pair of
neighbouring bands, the sign of the change of their energy difference
from the frame before (Haitsma & Kalker, ISMIR 2002; identify/align.py uses the
same kind of bits, finer, for its alignment): 23 bits per frame, stored
in 4 bytes, 31 bytes per second of audio.

``PrintIndex.search`` standardises the query's bits per band (a band whose
sign the noise biases counts less), correlates them with the ±1 bits of
the catalogue at every frame offset (one matrix product and a shifted sum
per block of frames), and normalises by the query's length and the
stretch's norm. Each track keeps its best offset; the best tracks, with
their offsets, go to the audio alignment (``Searcher.rerank``), which
decides whether any is a copy: a library-wide sweep always finds *some*
best offset, so the sweep nominates and never confirms.

Cost: about 5 ms per hour of catalogue per 12 s query on one core, and
1 MB of memory per hour (docs/benchmarks.md, ``bench/sweep.py``);
``scan_hours`` (settings) caps the library it sweeps.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from .landmarks import frames_of
from .align import band_matrix

FRAME_SECONDS = 0.256
HOP_SECONDS = 0.128
BANDS = (200.0, 3500.0, 25)  # 25 log-spaced edges -> 24 bands -> 23 bits per frame
BITS = int(BANDS[2]) - 2
TOP = 3  # tracks the sweep hands to the audio alignment
BLOCK = 1 << 16  # catalogue frames per matrix product


def _sizes(sample_rate: int) -> tuple[int, int]:
    n_fft = round(FRAME_SECONDS * sample_rate)
    return n_fft, n_fft // 2


class Printer:
    """Print frames of a stream of mono float32 blocks at ``sample_rate``: ``push`` blocks, then ``finish()``
    -> (frames,) uint32, bit ``b`` set where band pair ``b``'s difference rose. Memory: one frame of samples."""

    def __init__(self, sample_rate: int) -> None:
        self.n_fft, self.hop = _sizes(sample_rate)
        self.bands = band_matrix(sample_rate, self.n_fft, BANDS)
        self.window = np.hanning(self.n_fft).astype(np.float32)
        self._samples = np.zeros(0, np.float32)
        self._last: np.ndarray | None = None  # the previous frame's band differences
        self._out: list[np.ndarray] = []

    def push(self, block: np.ndarray) -> None:
        frames, self._samples = frames_of(self._samples, block, self.n_fft, self.hop)
        if len(frames):
            energy = np.log(np.abs(np.fft.rfft(frames * self.window, axis=1)) ** 2 @ self.bands + 1e-10)
            diff = energy[:, :-1] - energy[:, 1:]
            if self._last is not None:
                diff = np.concatenate([self._last[None], diff])
            if len(diff) > 1:
                rose = (diff[1:] - diff[:-1]) > 0
                self._out.append((rose.astype(np.uint32) << np.arange(BITS, dtype=np.uint32)).sum(axis=1, dtype=np.uint32))
            self._last = diff[-1]

    def finish(self) -> np.ndarray:
        return np.concatenate(self._out) if self._out else np.zeros(0, np.uint32)


def compute(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """The print frames of a whole signal (``Printer`` in one go)."""
    p = Printer(sample_rate)
    p.push(samples)
    return p.finish()


def signs(packed: np.ndarray) -> np.ndarray:
    """(frames,) uint32 -> (frames, BITS) int8 of +1 / -1."""
    bits = (np.asarray(packed, np.uint32)[:, None] >> np.arange(BITS, dtype=np.uint32)) & 1
    return bits.astype(np.int8) * 2 - 1


@dataclass(frozen=True)
class Found:
    track_id: int
    offset: float  # seconds: where the query's first frame lies in the track
    score: float  # normalised correlation of the query's bits with the track's there (0: chance)


class PrintIndex:
    """Every track's print frames in one array, tracks apart by a gap of empty frames, for ``search``."""

    def __init__(self, tracks: list[tuple[int, np.ndarray]], *, gap: int = 128) -> None:
        self.gap = gap
        total = sum(len(p) + gap for _, p in tracks)
        self.signs = np.zeros((total, BITS), np.int8)  # 0 in the gaps
        self.owner = np.full(total, -1, np.int32)  # track id of each frame, -1 in the gaps
        self.start = np.zeros(total, np.int32)  # each frame's track's first frame
        self.length = np.zeros(total, np.int32)  # each frame's track's length in frames
        pos = 0
        for tid, packed in tracks:
            n = len(packed)
            self.signs[pos : pos + n] = signs(packed)
            self.owner[pos : pos + n] = tid
            self.start[pos : pos + n] = pos
            self.length[pos : pos + n] = n
            pos += n + gap
        self.frames = int((self.owner >= 0).sum())

    @property
    def hours(self) -> float:
        return self.frames * HOP_SECONDS / 3600

    def search(
        self, query: np.ndarray, *, top: int = TOP, exclude: frozenset[int] = frozenset(),
        allowed: frozenset[int] | None = None,
    ) -> list[Found]:
        """The ``top`` tracks whose prints correlate best with ``query``'s print frames (uint32), best first."""
        q = signs(query).astype(np.float32)
        m = len(q)
        if m < 4 or self.frames == 0:
            return []
        q -= q.mean(axis=0)
        q /= q.std(axis=0) + 1e-3
        qnorm = float(np.linalg.norm(q))
        best: dict[int, tuple[float, int]] = {}
        n_all = len(self.signs)
        for lo in range(0, max(1, n_all - m + 1), BLOCK):
            hi = min(n_all, lo + BLOCK + m - 1)
            f = self.signs[lo:hi].astype(np.float32)
            n = hi - lo - m + 1
            if n <= 0:
                break
            s = q @ f.T  # (m, frames): query frame i against catalogue frame j
            d = s[0, :n].copy()
            for i in range(1, m):  # the correlation at each offset: the shifted diagonal sum
                d += s[i, i : i + n]
            own = self.owner[lo : lo + n]
            start = self.start[lo : lo + n]
            length = self.length[lo : lo + n]
            at = np.arange(lo, lo + n)
            # a whole query inside the track, or a track shorter than the query inside the query
            ok = (own >= 0) & np.where(length < m, at == start, at + m <= start + length)
            if exclude:
                ok &= ~np.isin(own, list(exclude))
            if allowed is not None:
                ok &= np.isin(own, list(allowed))
            # the stretch's norm: BITS signs of +-1 a frame, over the query or the whole of a shorter track
            score = np.where(ok, d / (qnorm * np.sqrt(np.clip(length, 1, m) * BITS)), -np.inf)
            runs = np.concatenate([[0], np.flatnonzero(own[1:] != own[:-1]) + 1])  # a track's offsets are contiguous
            peaks = np.maximum.reduceat(score, runs)
            for r in np.flatnonzero(np.isfinite(peaks)).tolist():
                tid, sc = int(own[runs[r]]), float(peaks[r])
                if tid not in best or sc > best[tid][0]:
                    end = runs[r + 1] if r + 1 < len(runs) else n
                    k = runs[r] + int(np.argmax(score[runs[r] : end]))
                    best[tid] = (sc, int(at[k] - start[k]))
        ranked = sorted(best.items(), key=lambda kv: -kv[1][0])[:top]
        return [Found(tid, frame * HOP_SECONDS, sc) for tid, (sc, frame) in ranked]


def leader(found: list[Found], lead: float) -> Found | None:
    """The sweep's best track where it leads the second by ``lead`` (identify/policy.py: ``Policy.sweep_lead``;
    a lead alone never makes a copy: the track's alignment must agree), else None."""
    if len(found) < 2 or found[0].score <= 0:
        return None
    return found[0] if found[0].score >= lead * max(found[1].score, 0.0) else None


class Cache:
    """The catalogue's ``PrintIndex``, rebuilt when the catalogue's prints change (``Catalog.prints_key``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._index: PrintIndex | None = None

    def get(self, catalog, key: tuple) -> PrintIndex:
        """The index for ``key`` (``catalog.prints_key()``, read by the caller)."""
        with self._lock:
            if self._index is None or key != self._key:
                self._index = PrintIndex(list(catalog.all_prints()))
                self._key = key
            return self._index
