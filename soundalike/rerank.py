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

A pitch-shifted query matches nothing (the bands move), so the re-rank
only *adds* to the fused score: ``score + WEIGHT * max(0, match - FLOOR)``;
a candidate whose audio does not match keeps its rank from the embedding.
A match of at least ``CONFIRM`` is a copy, and ranks above the rest
(``rescored``).
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
    (``bands``); also the scan prints' (prints.py). Shared and cached: read it, never write to it."""
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


#: how much a match above FLOOR adds to the fused score (docs/quality.md measures it)
WEIGHT = 1.0
#: matches at or below this count for nothing (99 % of other tracks' stretches stay below it)
FLOOR = 0.25
#: seconds of the catalogue track aligned beyond each end of the query's estimated place
MARGIN = 4.0
#: a match this high is a copy (other tracks stay below 0.45 on the small corpus): Searcher.rerank
#: stops aligning further candidates once a leading one reaches it
CONFIRM = 0.6
#: a match at least this high that is at least ``STANDOUT`` times every other aligned candidate's is a
#: copy too (``standout``): at 0 dB SNR the true source aligns at 0.35-0.55, while the other candidates of
#: the same query stay near 0.1-0.2, and at most 0.35 on the full corpus with the source left out
SURE = 0.4
STANDOUT = 2.0
#: aligned candidates needed to judge that one stands out
MIN_ALIGNED = 3
#: the scan prints' best track (prints.py) is a copy when its alignment is the query's best and two of three
#: hold: it is above FLOOR, it is this many times the next, the sweep's lead is clear (``prints.leader``).
#: With the source left out of the full corpus, 1 of 280 searches (12 degradations) had such a track (above
#: FLOOR and 1.55x, pink 10 dB); of 430 more (22 degradations), 4 had one above FLOOR and ahead (the same
#: chorale on another instrument, or another chorale on the same one), none one ahead with a clear lead
#: (the lead reached 1.56). The sources that the other rules missed at 0 dB reached 1.6-1.9 (docs/quality.md)
AHEAD = 1.5
#: the query's audio that is kept for the re-rank (its first seconds)
MAX_QUERY_SECONDS = 12.0


def boost(match: float | None) -> float:
    """What a candidate's match adds to its fused score."""
    return 0.0 if match is None else WEIGHT * max(0.0, match - FLOOR)


def unbacked(track_id: int, found: dict[int, Alignment]) -> bool:
    """Whether the landmark votes that found ``track_id`` as the query is (no warp) fail to make it a copy,
    because its audio, aligned with the query's (``found``), does not lead: it is at or below ``FLOOR``
    (chance), or below ``CONFIRM`` and less than ``AHEAD`` times every other aligned candidate's.

    With the source left out of the full corpus, such votes went to another Bach chorale on the same
    instrument (docs/quality.md, "Copies that lead"): landmarks follow the notes, and these share style,
    harmony and instrument; every source found by landmark votes alone led by 1.65x or more."""
    al = found.get(track_id)
    if al is None or al.match >= CONFIRM:
        return False
    best_other = max((other.match for tid, other in found.items() if tid != track_id), default=0.0)
    return al.match <= FLOOR or al.match < AHEAD * best_other


def standout(found: dict[int, Alignment]) -> int | None:
    """The candidate whose alignment stands out from all the others of one query (``SURE``,
    ``STANDOUT``), or None: a copy under noise that keeps its match below ``CONFIRM``."""
    if len(found) < MIN_ALIGNED:
        return None
    (tid, best), (_, second) = sorted(found.items(), key=lambda kv: -kv[1].match)[:2]
    return tid if best.match >= SURE and best.match >= STANDOUT * second.match else None


def copy_below_confirm(found: dict[int, Alignment], swept: int | None = None, *, lead: bool = False) -> int | None:
    """The candidate a query is a copy of although its match stays below ``CONFIRM`` (heavy noise), or None:
    one whose alignment stands out from all the others (``standout``), or ``swept``, the scan prints' best
    track (prints.py), when its alignment is also the query's best (two views of one copy) and two of these
    hold: the alignment is above ``FLOOR``, it is ``AHEAD`` times the next, the sweep's lead is clear
    (``lead``)."""
    sure = standout(found)
    if sure is not None or swept not in found or len(found) < MIN_ALIGNED:
        return sure
    best, second = sorted(found.values(), key=lambda al: -al.match)[:2]
    if found[swept] is not best:
        return None
    above, ahead = best.match > FLOOR, best.match >= AHEAD * second.match
    return swept if above + ahead + lead >= 2 else None


def agreed(found: dict[int, Alignment], swept: int | None) -> bool:
    """Whether the scan prints' best track (``swept``, a sweep over the whole library) is also the best of
    the query's aligned candidates (at least ``MIN_ALIGNED``): two views of the audio pick the same track.
    Too weak to call it a copy (``copy_below_confirm`` wants more), strong enough to rank it first among
    the candidates that are not copies (``rescored``, ``first``): at 0 dB pink noise a source that aligns
    below ``FLOOR`` otherwise ranks by an embedding that hears mostly the noise (docs/quality.md)."""
    if swept not in found or len(found) < MIN_ALIGNED:
        return False
    return max(found.values(), key=lambda al: al.match) is found[swept]


def rescored(score: float, match: float | None, *, copy: bool = False, first: bool = False) -> float:
    """A candidate's score after the re-rank: a copy (``match >= CONFIRM``, or ``copy``: ``copy_below_confirm``)
    ranks above every candidate that is not one (those stay below 1 + CONFIRM - FLOOR), copies by their
    match; the others get ``boost(match)``, and ``first`` (``agreed``) puts one at the top of those.

    The fused score of a copy can be low: under heavy noise or a phone band
    the embedding sees little of the source, and landmarks may have found a
    track the embedding did not reach at all (search.py).
    """
    if match is not None and (copy or match >= CONFIRM):
        return 2.0 + match
    return max(score + boost(match), 1.0 + CONFIRM - FLOOR) if first else score + boost(match)


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

    from . import decode as decoding
    from .errors import SoundalikeError

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
