"""The evaluation's query and duplicate sets: built from catalogue files, with ground truth in CSV.

* ``make_queries``: excerpts at seeded random offsets, each under one
  degradation (``degrade.DEGRADATIONS``), written as files; ``queries.csv``
  holds query, track, degradation, start, seconds, tempo.
* ``make_duplicates``: re-encodes, trims, fades, loudness changes and mono
  fold-downs of some tracks; ``duplicates.csv`` holds file, original, kind.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from .degrade import DEGRADATIONS, Degradation, gain

__all__ = ["QueryCase", "DupCase", "make_queries", "make_duplicates", "write_csv", "read_csv", "read_stereo",
           "DUP_KINDS", "HARD_DUP_KINDS"]

QUERY_RATE = 22050


@dataclass
class QueryCase:
    query: str  # path of the degraded clip
    track: str  # the catalogue file it was cut from
    degradation: str
    start: float  # where the excerpt starts in the track, seconds
    seconds: float  # query length after the degradation
    tempo: float = 1.0


@dataclass
class DupCase:
    file: str
    original: str
    kind: str


def write_csv(path: Path, rows: Sequence) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[fl.name for fl in fields(rows[0])] if rows else [])
        w.writeheader()
        for r in rows:
            w.writerow(asdict(r))
    return path


def read_csv(path: Path, cls) -> list:
    types = {fl.name: fl.type for fl in fields(cls)}
    out = []
    with Path(path).open(newline="") as f:
        for row in csv.DictReader(f):
            out.append(cls(**{k: float(v) if types[k] in ("float", float) else v for k, v in row.items() if k in types}))
    return out


def read_stereo(path: str | Path, sample_rate: int = 44100) -> np.ndarray:
    """(2, n) float32 at ``sample_rate`` (mono files are duplicated), through PyAV."""
    import av

    chunks = []
    with av.open(str(path)) as c:
        st = c.streams.audio[0]
        rs = av.AudioResampler(format="fltp", layout="stereo", rate=sample_rate)
        for frame in c.decode(st):
            for f in rs.resample(frame):
                chunks.append(f.to_ndarray())
        for f in rs.resample(None):
            chunks.append(f.to_ndarray())
    if not chunks:
        return np.zeros((2, 0), np.float32)
    return np.concatenate(chunks, axis=1).astype(np.float32)


def _schedule(tracks: Sequence[str], n: int, rng: np.random.Generator) -> Iterator[str]:
    """n tracks, each used once before any repeats, in a seeded order."""
    order: list[str] = []
    while len(order) < n:
        order += [tracks[i] for i in rng.permutation(len(tracks))]
    return iter(order[:n])


def make_queries(
    tracks: Sequence[str],
    out_dir: Path,
    *,
    degradations: Sequence[Degradation] = DEGRADATIONS,
    per_degradation: int = 10,
    seed: int = 0,
    progress=None,
) -> list[QueryCase]:
    """Cut and degrade ``per_degradation`` excerpts per degradation from ``tracks`` (paths)."""
    from ..decode import decode

    rng = np.random.default_rng(seed)
    cache: dict[str, np.ndarray] = {}
    cases = []
    total = len(degradations) * per_degradation
    for deg in degradations:
        folder = out_dir / deg.name
        folder.mkdir(parents=True, exist_ok=True)
        for i, track in enumerate(_schedule(list(tracks), per_degradation, rng)):
            if track not in cache:
                if len(cache) > 64:
                    cache.clear()
                cache[track] = decode(track, sample_rate=QUERY_RATE).samples
            x = cache[track]
            need = deg.seconds * deg.tempo  # track seconds that become deg.seconds of query
            dur = len(x) / QUERY_RATE
            start = float(rng.uniform(0, max(dur - need - 0.25, 0.0)))
            a = int(round(start * QUERY_RATE))
            clip = x[a : a + int(round(need * QUERY_RATE))]
            path = _write(deg, clip, folder / f"{i:03d}", np.random.default_rng([seed, i, len(cases)]))
            cases.append(QueryCase(str(path), str(track), deg.name, round(start, 3),
                                   round(len(clip) / QUERY_RATE / deg.tempo, 3), deg.tempo))
            if progress:
                progress(len(cases), total)
    return cases


def _write(deg: Degradation, clip: np.ndarray, stem: Path, rng: np.random.Generator) -> Path:
    from .degrade import write_query

    return write_query(deg, clip, QUERY_RATE, stem, rng)


# kind -> how to make it from (2, n) float32 stereo at 44.1 kHz; returns (samples, extension, encode kwargs)
def _fade(x: np.ndarray, sr: int, seconds: float = 3.0) -> np.ndarray:
    n = min(int(seconds * sr), x.shape[1] // 3)
    env = np.ones(x.shape[1], np.float32)
    env[:n] = np.linspace(0, 1, n)
    env[-n:] = np.linspace(1, 0, n)
    return x * env


def _trim(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    n = x.shape[1]
    a = int(n * rng.uniform(0.03, 0.12))
    b = n - int(n * rng.uniform(0.03, 0.12))
    return x[:, a:b]


DUP_KINDS = {
    "mp3-128k": lambda x, sr, rng: (x, ".mp3", {"bitrate": 128000}),
    "aac-96k": lambda x, sr, rng: (x, ".m4a", {"bitrate": 96000}),
    "ogg": lambda x, sr, rng: (x, ".ogg", {}),
    "trim": lambda x, sr, rng: (_trim(x, sr, rng), ".flac", {}),
    "fade": lambda x, sr, rng: (_fade(x, sr), ".flac", {}),
    "louder-6dB": lambda x, sr, rng: (np.stack([gain(c, 6) for c in x]), ".flac", {}),
    "quieter-10dB": lambda x, sr, rng: (np.stack([gain(c, -10) for c in x]), ".flac", {}),
    "mono": lambda x, sr, rng: (x.mean(axis=0), ".mp3", {"bitrate": 160000}),
}


def _speed(x: np.ndarray, sr: int, factor: float) -> np.ndarray:
    """Played ``factor`` times as fast (tape-style: pitch and tempo together), by resampling."""
    import soxr

    return np.ascontiguousarray(soxr.resample(x.T, sr * factor, sr).T.astype(np.float32))


# The variants the first duplicate finder missed on an outside corpus (issue 21): low-bitrate lossy
# re-encodes, +-3 % speed changes, a trim with fades. ``make_duplicates(kinds=HARD_DUP_KINDS)``.
HARD_DUP_KINDS = {
    "opus-24k": lambda x, sr, rng: (x, ".opus", {"bitrate": 24000}),
    "aac-64k": lambda x, sr, rng: (x, ".m4a", {"bitrate": 64000}),
    # FFmpeg's own Vorbis encoder (the wheel has no libvorbis) ignores the bitrate: about 128 kbit/s comes out,
    # so this is not yet the Vorbis q0 (~64 kbit/s) of issue 21
    "vorbis-64k": lambda x, sr, rng: (x, ".ogg", {"bitrate": 64000}),
    "mp3-48k-mono": lambda x, sr, rng: (x.mean(axis=0), ".mp3", {"bitrate": 48000}),
    "faster-3pct": lambda x, sr, rng: (_speed(x, sr, 1.03), ".flac", {}),
    "slower-3pct": lambda x, sr, rng: (_speed(x, sr, 1 / 1.03), ".flac", {}),
    "trim-fade": lambda x, sr, rng: (_fade(_trim(x, sr, rng), sr), ".mp3", {"bitrate": 128000}),
}


def make_duplicates(
    originals: Sequence[str], out_dir: Path, *, variants: int = 2, seed: int = 0, progress=None,
    kinds: dict | None = None,
) -> list[DupCase]:
    """``variants`` near-copies of each original (kinds drawn without repeats per original) from ``kinds``
    (``DUP_KINDS`` unless given, e.g. ``HARD_DUP_KINDS``)."""
    from ..synth import encode

    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = DUP_KINDS if kinds is None else kinds
    names = list(table)
    cases = []
    for i, orig in enumerate(originals):
        x = read_stereo(orig, 44100)
        for kind in (names[j] for j in rng.choice(len(names), size=min(variants, len(names)), replace=False)):
            y, ext, kw = table[kind](x, 44100, rng)
            path = out_dir / f"dup{i:03d}-{kind}{ext}"
            encode(y, 44100, path, channels=1 if y.ndim == 1 else 2, **kw)
            cases.append(DupCase(str(path), str(orig), kind))
        if progress:
            progress(i + 1, len(originals))
    return cases
