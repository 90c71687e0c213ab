"""Second stage for identification: align the query's audio with each leading candidate's audio.

The embedding ranks by how a 3 s window *sounds*; under heavy noise, a
3 kHz low-pass or a phone band, another track that sounds alike can beat
the true source. Whether the query is a **copy** of a stretch of a track is
a sharper question, and the catalogue files are on disk: for each of the
leading candidates, decode the stretch around the offset the fusion
estimated (± ``MARGIN`` s) and slide the query along it.

The feature is a Philips-style fingerprint (Haitsma & Kalker, ISMIR 2002):
per 32 ms frame of a 256 ms FFT at 8 kHz, 16 log-spaced bands between
300 and 2000 Hz (inside the phone band and below a 3 kHz low-pass), and one
bit per pair of neighbouring bands: the sign of the change of their energy
difference from the frame 2 before (a 64 ms step; adjacent frames overlap
7/8 and differ little). It ignores level and any static filter, and
noise flips only the bits where the music is weak. Two unrelated stretches
agree on about half of the bits; ``agreement`` is the best mean agreement
over all lags of the query blocks, and the **match** is
``(agreement - 0.5) / 0.5`` (0 chance, 1 identical).

The query is cut into blocks of ``BLOCK_SECONDS``, each aligned on its
own; a block's lag must lie within ``drift`` of the median lag, so a
tempo change that drifts the alignment is followed, while chance
alignments of different blocks at scattered lags are not counted.

A pitch-shifted query matches nothing (the bands move), so a match only
*adds* to the fused score, and a candidate whose audio does not match keeps
its rank from the embedding; what a match makes of a candidate (a copy, a
boost) is the policy's (identify/policy.py).
On the small evaluation corpus (docs/quality.md) the true source matches
0.6-1.0 under MP3, gain, 20 dB noise, low-pass and phone band, 0.4-0.7 at
10 dB noise and under reverb, 0.1-0.3 under pitch shifts; other tracks
stay below 0.25 (99 %), except the same chorale rendered on another
instrument (the same notes): up to 0.44.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

log = logging.getLogger("soundalike")

SR = 8000
N_FFT = 2048  # 256 ms
HOP = 256  # 32 ms
STEP = 2  # frames between the two compared spectra (64 ms)
BANDS = (300.0, 2000.0, 17)  # edges: 17 log-spaced -> 16 bands -> 15 bits per frame
BLOCK_SECONDS = 2.5


@lru_cache(maxsize=4)
def band_matrix(sr: int = SR, n_fft: int = N_FFT, bands: tuple[float, float, int] = BANDS) -> np.ndarray:
    """(n_fft // 2 + 1, n - 1) float32: rectangular bands between ``n`` log-spaced edges from ``lo`` to ``hi``
    (``bands``); also the scan prints' (identify/prints.py). Shared and cached: read it, never write to it."""
    lo, hi, n = bands
    edges = np.geomspace(lo, hi, int(n))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    m = np.zeros((len(freqs), len(edges) - 1), np.float32)
    for b in range(len(edges) - 1):
        m[(freqs >= edges[b]) & (freqs < edges[b + 1]), b] = 1.0
    return m


@lru_cache(maxsize=2)
def _window(n: int = N_FFT) -> np.ndarray:
    return np.hanning(n).astype(np.float32)


def fingerprint(x: np.ndarray, sr: int = SR) -> np.ndarray:
    """Mono float32 at ``sr`` -> (frames, bits) int8 of +1/-1 (frames at HOP / sr s)."""
    if sr != SR:
        raise ValueError(f"rerank: fingerprints are computed at {SR} Hz, not {sr}")
    x = np.asarray(x, np.float32)
    if len(x) < N_FFT + STEP * HOP + HOP:
        return np.zeros((0, int(BANDS[2]) - 2), np.int8)
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * _window(), axis=1)) ** 2
    energy = np.log(power @ band_matrix() + 1e-10)
    diff = energy[:, :-1] - energy[:, 1:]
    change = diff[STEP:] - diff[:-STEP]
    return np.where(change > 0, 1, -1).astype(np.int8)


def _correlate(q: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Mean bit agreement (0..1) of ``q`` against ``c`` at every lag 0..len(c) - len(q)."""
    nq, nc = len(q), len(c)
    n = 1 << int(np.ceil(np.log2(nq + nc)))
    fq = np.fft.rfft(q.astype(np.float32), n, axis=0)
    fc = np.fft.rfft(c.astype(np.float32), n, axis=0)
    corr = np.fft.irfft((np.conj(fq) * fc).sum(axis=1), n)[: nc - nq + 1]
    return 0.5 + 0.5 * corr / (nq * q.shape[1])


@dataclass
class Alignment:
    match: float  # (agreement - 0.5) / 0.5: 0 chance, 1 identical
    lag: float  # seconds: where the query starts in the candidate (``align``: in the stretch given)
    blocks: int  # query blocks that agreed on the lag


def align(query: np.ndarray, candidate: np.ndarray, *, drift: float = 0.6) -> Alignment | None:
    """Slide fingerprint blocks of ``query`` along ``candidate`` (both (frames, bits)); None when too short."""
    frame = HOP / SR
    block = max(1, round(BLOCK_SECONDS / frame))
    nq, nc = len(query), len(candidate)
    if nq == 0 or nc < min(nq, block):
        return None
    starts = list(range(0, max(1, nq - block + 1), block)) if nq >= block else [0]
    best_lags, curves = [], []
    for s in starts:
        q = query[s : s + block]
        if len(q) > nc:
            continue
        curve = _correlate(q, candidate)
        curves.append((s, curve))
        best_lags.append(int(np.argmax(curve)) - s)
    if not curves:
        return None
    centre = float(np.median(best_lags))
    tol = round(drift / frame)
    total, used = 0.0, 0
    for s, curve in curves:
        lo, hi = max(0, int(centre) + s - tol), min(len(curve), int(centre) + s + tol + 1)
        if lo < hi:
            total += float(curve[lo:hi].max())
            used += 1
        else:  # the block falls outside the stretch at the common lag: chance
            total += 0.5
    if not used:
        return None
    agreement = total / len(curves)
    return Alignment(match=max(0.0, (agreement - 0.5) / 0.5), lag=centre * frame, blocks=used)


#: seconds of the catalogue track aligned beyond each end of the query's estimated place
MARGIN = 4.0
#: the query's audio that is kept for the re-rank (its first seconds)
MAX_QUERY_SECONDS = 12.0


def recordings(found: dict[int, Alignment], same) -> tuple[dict[int, Alignment], dict[int, int]]:
    """One candidate per recording: ``found`` without the candidates that are copies (``same(a, b)``,
    duplicates.CopyTest) of a better-aligned one, and each candidate's representative. The policy's rules
    (identify/policy.py) compare a candidate with the *other* recordings: in a catalogue that holds a recording
    several times, a source that stands out from everything else ties with its own copies, and ``standout``,
    ``ahead`` and ``agreed`` never held (issue 18: 34 of 37 degraded clips found in a library of 47 copies each)."""
    reps = {tid: tid for tid in found}
    if same is None or len(found) < 2:
        return found, reps
    kept: dict[int, Alignment] = {}
    for tid, al in sorted(found.items(), key=lambda kv: (-kv[1].match, kv[0])):
        rep = next((k for k in kept if same(k, tid)), None)
        if rep is None:
            kept[tid] = al
        else:
            reps[tid] = rep
    return kept, reps


def match_candidates(
    query: np.ndarray, query_start: float, candidates: list[tuple[int, str, float, float]], *, workers: int = 2,
    confirm: float | None = None,
) -> dict[int, Alignment]:
    """Align the query's audio (mono float32 at SR, from ``query_start`` s of the query) with each candidate.

    ``candidates``: (track id, path, duration, offset) with ``offset`` the
    fusion's (catalogue time - query time). Each track's stretch
    [query_start + offset - MARGIN, ... + query length + MARGIN] is decoded
    (``workers`` at a time, in the order given). A track that fails to decode
    is left out. ``confirm``: stop after the first group of candidates in
    which one matches at least this well (``CONFIRM``).
    """
    from concurrent.futures import ThreadPoolExecutor

    from .. import decode as decoding
    from ..errors import SoundalikeError

    qf = fingerprint(query)
    if len(qf) == 0:
        return {}
    seconds = len(query) / SR

    def one(c: tuple[int, str, float, float]) -> tuple[int, Alignment | None]:
        tid, path, duration, offset = c
        a = max(0.0, query_start + offset - MARGIN)
        b = min(duration, query_start + offset + seconds + MARGIN)
        if b - a < min(seconds, BLOCK_SECONDS):
            return tid, None
        try:
            audio = decoding.decode(path, sample_rate=SR, start=a, end=b).samples
        except (SoundalikeError, OSError) as exc:
            log.debug("rerank: %s: %s", path, exc)
            return tid, None
        al = align(qf, fingerprint(audio))
        return tid, None if al is None else Alignment(al.match, al.lag + a, al.blocks)

    found: dict[int, Alignment] = {}
    step = max(1, workers)
    with ThreadPoolExecutor(step) as pool:
        for i in range(0, len(candidates), step):  # in rank order, ``workers`` at a time
            found.update((tid, al) for tid, al in pool.map(one, candidates[i : i + step]) if al is not None)
            if confirm is not None and any(al.match >= confirm for al in found.values()):
                break  # the query is a copy of a leading candidate: the rest keep their fused rank
    return found
