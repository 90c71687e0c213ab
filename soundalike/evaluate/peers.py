"""The peers soundalike is measured against, in the same run.

* ``Chromaprint``: the AcoustID fingerprinter (Debian's ``libchromaprint-tools``:
  ``fpcalc -raw``), with a matcher of our own, since fpcalc only computes
  fingerprints: a query fingerprint slides over each catalogue fingerprint and
  the best alignment's bit agreement (1 - bit error rate) is the score, as
  AcoustID's own comparison does. A frame is 4096/3 samples at 11025 Hz
  (about 0.124 s).
* ``MfccBaseline``: the naive whole-track baseline: the mean of 20 MFCCs over
  the file (with ``spread=True`` also their standard deviation, the usual timbre
  statistics), z-scored with the catalogue's statistics, compared by cosine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable, Sequence

import numpy as np

from ..errors import UserError

__all__ = ["Chromaprint", "MfccBaseline", "fingerprint_similarity"]

FRAME_SECONDS = 4096 / 3 / 11025


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    return np.unpackbits(x.view(np.uint8).reshape(*x.shape, 4), axis=-1).sum(axis=-1)


def fingerprint_similarity(query: np.ndarray, ref: np.ndarray, *, min_overlap: float = 0.8) -> tuple[float, int]:
    """Best (1 - bit error rate, offset in frames of query[0] within ref) over alignments.

    The shorter fingerprint slides over the longer; at the ends an overlap of
    at least ``min_overlap`` of the shorter one is required. Random
    fingerprints agree on about half their bits, so unrelated audio scores ~0.5.
    """
    if len(query) == 0 or len(ref) == 0:
        return 0.0, 0
    flip = len(query) > len(ref)
    a, b = (ref, query) if flip else (query, ref)  # a is the shorter
    m, n = len(a), len(b)
    need = max(1, int(np.ceil(min_overlap * m)))
    pad = m - need
    bp = np.concatenate([np.zeros(pad, np.uint32), b, np.zeros(pad, np.uint32)])
    valid = np.concatenate([np.zeros(pad, bool), np.ones(n, bool), np.zeros(pad, bool)])
    view = np.lib.stride_tricks.sliding_window_view(bp, m)  # (n + 2 pad - m + 1, m)
    vview = np.lib.stride_tricks.sliding_window_view(valid, m)
    errors = (_popcount(view ^ a[None, :]) * vview).sum(axis=1)
    overlap = vview.sum(axis=1)
    ber = errors / np.maximum(overlap, 1) / 32.0
    ber[overlap < need] = 1.0
    best = int(np.argmin(ber))
    offset = best - pad
    return float(1.0 - ber[best]), (-offset if flip else offset)


class Chromaprint:
    name = "chromaprint"

    def __init__(self) -> None:
        if not shutil.which("fpcalc"):
            raise UserError("fpcalc not found: install Debian's libchromaprint-tools (apt-get install libchromaprint-tools)")
        self.refs: dict[str, np.ndarray] = {}

    @staticmethod
    def available() -> bool:
        return shutil.which("fpcalc") is not None

    @staticmethod
    def fingerprint(path: str, *, length: float = 0) -> np.ndarray:
        """Raw fingerprint (uint32 per frame) of a file; length 0 fingerprints the whole file."""
        out = subprocess.run(["fpcalc", "-raw", "-json", "-length", str(int(length)), str(path)],
                             capture_output=True, text=True, timeout=300)
        try:  # fpcalc exits non-zero on a harmless "End of file" at the end of some FLACs; trust its JSON
            fp = json.loads(out.stdout).get("fingerprint") or []
        except ValueError:
            fp = []
        return np.asarray(fp, np.int64).astype(np.uint32)

    def add(self, paths: Iterable[str]) -> None:
        for p in paths:
            self.refs[p] = self.fingerprint(p)

    def rank(self, query_path: str, top: int = 10) -> tuple[list[str], list[float], list[float]]:
        """Catalogue paths best first, their scores, and the offset (seconds) of the query in each."""
        q = self.fingerprint(query_path)
        scored = []
        for p, ref in self.refs.items():
            s, off = fingerprint_similarity(q, ref, min_overlap=1.0 if len(ref) >= len(q) else 0.5)
            scored.append((s, p, off * FRAME_SECONDS))
        scored.sort(key=lambda t: -t[0])
        return [p for _, p, _ in scored[:top]], [s for s, _, _ in scored[:top]], [o for _, _, o in scored[:top]]

    def pair_scores(self, paths: Sequence[str], *, min_ratio: float = 0.6) -> dict[tuple[str, str], float]:
        """Similarity of every pair of files (already ``add``-ed) whose durations are within ``min_ratio``."""
        out = {}
        for i, a in enumerate(paths):
            for b in paths[i + 1 :]:
                fa, fb = self.refs[a], self.refs[b]
                if min(len(fa), len(fb)) < min_ratio * max(len(fa), len(fb), 1):
                    continue
                out[(a, b)] = fingerprint_similarity(fa, fb, min_overlap=0.8)[0]
        return out


class MfccBaseline:
    name = "mfcc"

    def __init__(self, sample_rate: int = 22050, *, spread: bool = False) -> None:
        self.sample_rate = sample_rate
        self.spread = spread
        self.refs: dict[str, np.ndarray] = {}
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def raw(self, path: str) -> np.ndarray:
        import librosa

        from ..decode import decode

        x = decode(path, sample_rate=self.sample_rate).samples
        if len(x) < 2048:
            x = np.pad(x, (0, 2048 - len(x)))
        m = librosa.feature.mfcc(y=x, sr=self.sample_rate, n_mfcc=20)
        return np.concatenate([m.mean(axis=1), m.std(axis=1)]) if self.spread else m.mean(axis=1)

    def _unit(self, v: np.ndarray) -> np.ndarray:
        z = (v - self.mean) / self.std
        return z / (np.linalg.norm(z) or 1.0)

    def add(self, paths: Iterable[str]) -> None:
        raw = {p: self.raw(p) for p in paths}
        m = np.stack(list(raw.values()))
        self.mean, self.std = m.mean(axis=0), m.std(axis=0) + 1e-6
        self.refs = {p: self._unit(v) for p, v in raw.items()}

    def vector(self, path: str) -> np.ndarray:
        return self.refs[path] if path in self.refs else self._unit(self.raw(path))

    def rank(self, query_path: str, top: int = 10, *, exclude: str | None = None,
             among: Iterable[str] | None = None) -> tuple[list[str], list[float]]:
        """The ``top`` references (only those in ``among`` when given) by cosine to the query, best first."""
        q = self.vector(query_path)
        pool = self.refs if among is None else {p: self.refs[p] for p in among if p in self.refs}
        scored = sorted(((float(v @ q), p) for p, v in pool.items() if p != exclude), key=lambda t: -t[0])
        return [p for _, p in scored[:top]], [s for s, _ in scored[:top]]

    def pair_scores(self, paths: Sequence[str]) -> dict[tuple[str, str], float]:
        return {(a, b): float(self.refs[a] @ self.refs[b]) for i, a in enumerate(paths) for b in paths[i + 1 :]}
