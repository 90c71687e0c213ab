"""Musical descriptors measured while a file is indexed: loudness, true peak, tempo, key.

They are computed from the stream the indexer already decodes (mono, at the
model's rate: 16 kHz for musicnn), so a file is decoded once. ``Analyzer`` is
fed the blocks as they come and keeps little:

- **Integrated loudness** (LUFS) per ITU-R BS.1770-4 / EBU R128: K-weighting
  (the two biquads of the standard, designed for the stream's rate with the
  same formulas as pyloudnorm), mean square per 100 ms, 400 ms gating blocks
  with 75 % overlap, absolute gate -70 LUFS, relative gate -10 LU. For a
  stereo file the decoder also streams the side signal (L - R) / 2, and the
  channel sum L^2 + R^2 = 2 (mid^2 + side^2) is measured exactly as the
  standard asks. The approximation is the band: the stream is resampled to
  16 kHz, so content above 8 kHz is not measured (on real music that changed
  the figure by under 0.1 dB; README gives the measurement). Files with more
  than two channels are measured on their mono downmix.
- **True peak** (dBTP): the peak of each channel (mid +/- side) oversampled 4x
  (48-tap polyphase FIR, BS.1770 annex 2), of the same 16 kHz stream, so it
  misses overshoots made by content above 8 kHz (measured in README).
- **Tempo** (BPM) and its confidence: the onset strength of librosa
  (spectral flux: mean positive increase of a 40-band log-mel spectrogram,
  10 ms hop), its autocorrelation weighted by librosa's tempo prior (log-normal
  around 120 BPM, one octave wide), the peak refined by parabolic
  interpolation. Confidence: the normalised autocorrelation at the chosen
  period, 0-1 (a steady click track scores about 0.9, noise near 0).
- **Key** and its confidence: a chroma (STFT power folded onto the 12 pitch
  classes, 55 Hz-5 kHz, each frame scaled to its maximum as librosa's
  ``chroma_stft``) averaged over the excerpt and correlated with the 24 rotated
  Krumhansl-Kessler key profiles; the best one wins, and its Pearson
  correlation (clipped to 0-1) is the confidence.

The spectra are computed here with numpy (the mel filters are librosa's
Slaney mel, rebuilt in a few lines) rather than by calling librosa:
librosa's first call costs about 2 s of start-up (numba) per process, and its
general functions about 4x the CPU of these for the same numbers. Accuracy on
synthetic clicks and cadences of known tempo and key is measured by
``bench/descriptors.py`` (figures in docs/benchmarks.md).

Tempo and key look at one excerpt of at most ``excerpt_seconds`` (30 s) from
the middle of the file (chosen from the container's duration), so their cost
per file is bounded; loudness and peak see every sample.

Needs scipy (the ``descriptors`` extra) for the filters. Without it the
indexer stores no descriptors and says so once in the log.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

__all__ = ["Descriptors", "Analyzer", "analyze", "estimate_tempo", "estimate_key", "available", "KEY_NAMES"]

log = logging.getLogger(__name__)

KEY_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# Krumhansl & Kessler (1982) probe-tone profiles, tonic first
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])

ABSOLUTE_GATE = -70.0
RELATIVE_GATE = -10.0


@dataclass(frozen=True)
class Descriptors:
    """What ``Analyzer`` measured; None where it could not (too short, silent)."""

    loudness: float | None = None  # integrated loudness, LUFS
    true_peak: float | None = None  # dBTP
    bpm: float | None = None
    bpm_confidence: float | None = None
    key: str | None = None  # "C major", "F# minor"
    key_confidence: float | None = None

    def as_info(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def available() -> bool:
    try:
        import scipy.signal  # noqa: F401
    except ImportError:
        return False
    return True


def _k_weighting(rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The two K-weighting biquads (high shelf, then high pass) for ``rate``, as (b, a)."""
    out = []
    for kind, gain, q, fc in (("shelf", 4.0, 1 / math.sqrt(2), 1500.0), ("pass", 0.0, 0.5, 38.0)):
        a_ = 10 ** (gain / 40.0)
        w0 = 2 * math.pi * fc / rate
        alpha = math.sin(w0) / (2 * q)
        c = math.cos(w0)
        if kind == "shelf":
            b = [a_ * ((a_ + 1) + (a_ - 1) * c + 2 * math.sqrt(a_) * alpha),
                 -2 * a_ * ((a_ - 1) + (a_ + 1) * c),
                 a_ * ((a_ + 1) + (a_ - 1) * c - 2 * math.sqrt(a_) * alpha)]
            a = [(a_ + 1) - (a_ - 1) * c + 2 * math.sqrt(a_) * alpha,
                 2 * ((a_ - 1) - (a_ + 1) * c),
                 (a_ + 1) - (a_ - 1) * c - 2 * math.sqrt(a_) * alpha]
        else:
            b = [(1 + c) / 2, -(1 + c), (1 + c) / 2]
            a = [1 + alpha, -2 * c, 1 - alpha]
        b, a = np.array(b) / a[0], np.array(a) / a[0]
        out.append((b, a))
    return out


class _KEnergy:
    """K-weighted sum of squares per complete 100 ms sub-block of a streamed signal."""

    def __init__(self, sos: np.ndarray, sub: int, signal) -> None:
        self.sos, self.sub, self.signal = sos, sub, signal
        self.zi = np.zeros((len(sos), 2))
        self.parts: list[np.ndarray] = []
        self.rest = np.zeros(0, np.float64)  # K-weighted samples of an incomplete sub-block

    def push(self, x: np.ndarray) -> None:
        y, self.zi = self.signal.sosfilt(self.sos, x.astype(np.float64), zi=self.zi)
        y = np.concatenate([self.rest, y]) if len(self.rest) else y
        n = len(y) // self.sub * self.sub
        if n:
            r = y[:n].reshape(-1, self.sub)
            self.parts.append(np.einsum("ij,ij->i", r, r))
        self.rest = y[n:]

    def energy(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros(0)


class Analyzer:
    """Streaming descriptors of one file: ``push`` every mono block, then ``result()``.

    ``channels``: the file's channel count. For two channels, feed the side
    signal (left - right) / 2 to ``push_side`` ahead of the mono blocks (what
    ``decode.stream(side=...)`` does): loudness and true peak are then
    measured per channel, as BS.1770 asks, from mid and side. Without it, two
    channels are assumed equal (+3.01 dB on the mono loudness).
    ``expected_seconds``: the container's duration, to centre the tempo/key excerpt.
    """

    def __init__(
        self, sample_rate: int, *, channels: int = 1, expected_seconds: float | None = None,
        excerpt_seconds: float = 30.0,
    ) -> None:
        from scipy import signal

        self.rate = int(sample_rate)
        self.channels = int(channels or 1)
        self.sub = max(int(round(0.1 * self.rate)), 1)  # 100 ms sub-blocks
        sos = np.array([np.concatenate([b, a]) for b, a in _k_weighting(self.rate)])
        self._mid = _KEnergy(sos, self.sub, signal)
        self._side = _KEnergy(sos, self.sub, signal)
        self._tp = [_TruePeak(), _TruePeak()]  # mono, or left and right
        self.wants_side = self.channels == 2
        self._side_buf: deque[np.ndarray] = deque()
        self._side_n = 0
        self._stereo: bool | None = None  # decided at the first block: was side audio fed?
        self._pos = 0
        self.excerpt_seconds = float(excerpt_seconds)
        n_ex = int(excerpt_seconds * self.rate)
        mid_start = max(0.0, ((expected_seconds or 0.0) - excerpt_seconds) / 2)
        self._excerpt_from = int(mid_start * self.rate)  # stop collecting once past from + n_ex
        self._excerpt_len = n_ex
        self._excerpt: deque[np.ndarray] = deque()
        self._excerpt_n = 0

    # -- streaming -----------------------------------------------------------------
    def push_side(self, chunk: np.ndarray) -> None:
        """The side signal (left - right) / 2 of a two-channel file, at the same rate, in order."""
        if self.wants_side and len(chunk):
            self._side_buf.append(np.asarray(chunk, np.float32))
            self._side_n += len(chunk)

    def _take_side(self, n: int) -> np.ndarray:
        out, got = [], 0
        while got < n and self._side_buf:
            c = self._side_buf.popleft()
            if got + len(c) > n:
                self._side_buf.appendleft(c[n - got :])
                c = c[: n - got]
            out.append(c)
            got += len(c)
        self._side_n -= got
        if got < n:  # the resamplers' last samples may differ by a few: silence is the continuation
            out.append(np.zeros(n - got, np.float32))
        return np.concatenate(out) if len(out) > 1 else out[0]

    def push(self, block: np.ndarray) -> None:
        x = np.asarray(block, np.float32)
        if not len(x):
            return
        if self._stereo is None:
            self._stereo = self.wants_side and self._side_n > 0
        self._mid.push(x)
        if self._stereo:
            s = self._take_side(len(x))
            self._side.push(s)
            self._tp[0].push(x + s)
            self._tp[1].push(x - s)
        else:
            self._tp[0].push(x)
        # the tempo/key excerpt: keep the latest excerpt_seconds until past the target
        if self._pos < self._excerpt_from + self._excerpt_len:
            self._excerpt.append(x)
            self._excerpt_n += len(x)
            while self._excerpt and self._excerpt_n - len(self._excerpt[0]) >= self._excerpt_len:
                self._excerpt_n -= len(self._excerpt.popleft())
        self._pos += len(x)

    # -- results -----------------------------------------------------------------------
    def loudness(self) -> float | None:
        e = self._mid.energy()
        gain = 0.0
        if self._stereo:
            e = 2 * (e + self._side.energy())  # left^2 + right^2 = 2 (mid^2 + side^2)
        elif self.channels == 2:
            gain = 10 * math.log10(2)  # no side signal: assume two equal channels
        if len(e) < 4:
            return None
        blocks = (e[:-3] + e[1:-2] + e[2:-1] + e[3:]) / (4 * self.sub)  # 400 ms, 75 % overlap
        with np.errstate(divide="ignore"):
            lk = -0.691 + 10 * np.log10(blocks) + gain
        above = blocks[lk > ABSOLUTE_GATE]
        if not len(above):
            return None
        rel = -0.691 + 10 * math.log10(above.mean()) + gain + RELATIVE_GATE
        gated = blocks[(lk > ABSOLUTE_GATE) & (lk > rel)]
        return float(-0.691 + 10 * math.log10(gated.mean()) + gain)

    def true_peak(self) -> float | None:
        peak = max(tp.peak() for tp in self._tp)
        return None if peak <= 0 else float(20 * math.log10(peak))

    def excerpt(self) -> np.ndarray:
        if not self._excerpt:
            return np.zeros(0, np.float32)
        x = np.concatenate(list(self._excerpt))
        return x[-self._excerpt_len :]

    def result(self) -> Descriptors:
        x = self.excerpt()
        bpm, bpm_conf = estimate_tempo(x, self.rate)
        key, key_conf = estimate_key(x, self.rate)
        loud = self.loudness()
        return Descriptors(
            loudness=_round(loud, 2), true_peak=_round(self.true_peak(), 2),
            bpm=_round(bpm, 1), bpm_confidence=_round(bpm_conf, 3), key=key, key_confidence=_round(key_conf, 3),
        )


class _TruePeak:
    """Peak of the signal upsampled 4x by a 48-tap polyphase FIR (12 taps per phase), as in
    BS.1770-4 annex 2, evaluated only where it can matter.

    Upsampling everything costs about 35 ms of CPU per audio minute at 16 kHz; the
    peak is the same when we interpolate only around samples within 6 dB of the
    block's (or the running) peak, since a band-limited signal's inter-sample peak
    exceeds its neighbouring samples by far less than 6 dB (at most 3 dB for a
    sinusoid at 4x). That costs about 1 ms per minute. ``full_peak`` is the
    reference used by the tests.
    """

    KEEP = 24  # samples carried to the next block: the FIR reaches 11 back and 7 ahead

    def __init__(self) -> None:
        self.phases = _tp_phases()  # (4, 12): phases[p, k] = h[4k + p]
        self.buf = np.zeros(self.KEEP, np.float32)
        self.value = 0.0

    def push(self, x: np.ndarray, *, final: bool = False) -> None:
        buf = np.concatenate([self.buf, x])
        first, last = self.KEEP - 7, len(buf) - 8  # candidates not yet done, with 7 samples ahead
        if last >= first:
            seg = np.abs(buf[first : last + 1])
            thr = 0.5 * max(self.value, float(seg.max()))
            cand = np.flatnonzero(seg >= thr) + first if thr > 0 else []
            if len(cand):
                mark = np.zeros(len(buf), bool)
                for d in range(4, 8):  # the outputs around each candidate
                    mark[cand + d] = True
                n = np.flatnonzero(mark)
                win = np.lib.stride_tricks.sliding_window_view(buf, 12)[n - 11][:, ::-1]
                self.value = max(self.value, float(np.abs(np.einsum("ij,kj->ik", win, self.phases)).max()))
        self.buf = buf[-self.KEEP :] if len(buf) >= self.KEEP else np.concatenate(
            [np.zeros(self.KEEP - len(buf), np.float32), buf])

    def peak(self) -> float:
        """The peak so far, the signal's end included (it is followed by silence)."""
        saved_buf, saved = self.buf, self.value
        self.push(np.zeros(8, np.float32))
        out = self.value
        self.buf, self.value = saved_buf, saved
        return out


def _tp_phases() -> np.ndarray:
    from scipy.signal import firwin

    h = firwin(48, 0.25, window=("kaiser", 8.0)) * 4  # cut-off at the original Nyquist, unit gain
    return h.reshape(12, 4).T.astype(np.float64)


def full_peak(x: np.ndarray) -> float:
    """The same 4x oversampled peak computed over every sample (slow; the reference)."""
    from scipy.signal import firwin, upfirdn

    h = firwin(48, 0.25, window=("kaiser", 8.0)) * 4
    return float(np.abs(upfirdn(h, np.asarray(x, np.float64), 4)).max())


def _round(x: float | None, n: int) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), n)


def analyze(samples: np.ndarray, sample_rate: int, *, channels: int = 1, excerpt_seconds: float = 30.0) -> Descriptors:
    """Descriptors of a whole mono signal (the same computation the indexer streams)."""
    a = Analyzer(sample_rate, channels=channels, expected_seconds=len(samples) / sample_rate,
                 excerpt_seconds=excerpt_seconds)
    for i in range(0, len(samples), 20 * sample_rate):
        a.push(samples[i : i + 20 * sample_rate])
    return a.result()


def _is_silent(x: np.ndarray) -> bool:
    return len(x) == 0 or float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) < 1e-4


# Products here use einsum, not ``@``: BLAS would hand these small products to its
# thread pool, whose spinning threads cost more CPU than the products (measured
# while indexing, where the decode workers call this).


def _frames_power(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(n_frames, 1 + n_fft // 2) power spectra of Hann-windowed frames (centred, zero-padded)."""
    x = np.pad(np.asarray(x, np.float32), n_fft // 2)
    if len(x) < n_fft:
        return np.zeros((0, n_fft // 2 + 1), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    spec = np.fft.rfft(frames * _hann(n_fft), axis=1)
    return (spec.real**2 + spec.imag**2).astype(np.float32)


@lru_cache(maxsize=8)
def _hann(n: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)  # periodic, as librosa


def _hz_to_mel(f):
    """Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, np.float64)
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), f / (200.0 / 3))


def _mel_to_hz(m):
    m = np.asarray(m, np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp(np.log(6.4) / 27.0 * (m - 15.0)), m * (200.0 / 3))


@lru_cache(maxsize=8)
def _mel(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """(n_mels, bins) triangles of ``librosa.filters.mel`` (Slaney scale and area norm)."""
    fft_freqs = np.linspace(0.0, sr / 2.0, 1 + n_fft // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2.0), n_mels + 2))
    ramps = mel_f[:, None] - fft_freqs[None, :]
    fdiff = np.diff(mel_f)
    weights = np.maximum(0.0, np.minimum(-ramps[:-2] / fdiff[:-1, None], ramps[2:] / fdiff[1:, None]))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights.astype(np.float32)


@lru_cache(maxsize=8)
def _chroma_filter(sr: int, n_fft: int) -> np.ndarray:
    """(12, bins): each FFT bin from 55 Hz to 5 kHz votes for the pitch classes near it
    (a Gaussian of 0.5 semitone over the circular distance), C first."""
    f = np.arange(n_fft // 2 + 1) * sr / n_fft
    fb = np.zeros((12, len(f)), np.float32)
    ok = (f >= 55.0) & (f <= min(5000.0, sr / 2))
    pitch = 12 * np.log2(f[ok] / 440.0) + 9  # 0 = C
    for c in range(12):
        d = np.abs((pitch - c + 6) % 12 - 6)
        fb[c, ok] = np.exp(-0.5 * (d / 0.5) ** 2)
    return fb


def onset_strength(x: np.ndarray, sr: int, hop: int) -> np.ndarray:
    """Spectral flux on a log-mel spectrogram, as ``librosa.onset.onset_strength``
    (lag 1, mean over 40 mel bands of the positive dB increase, 80 dB range)."""
    n_fft = 1 << int(round(math.log2(sr * 0.032)))  # ~32 ms
    power = _frames_power(x, n_fft, hop)
    mel = np.einsum("fb,mb->fm", power, _mel(sr, n_fft, 40))
    db = 10 * np.log10(np.maximum(mel, 1e-10))
    db = np.maximum(db, db.max() - 80.0)
    return np.maximum(0.0, np.diff(db, axis=0)).mean(axis=1)


def estimate_tempo(
    x: np.ndarray, sr: int, *, min_bpm: float = 40.0, max_bpm: float = 240.0
) -> tuple[float | None, float | None]:
    """(BPM, confidence 0-1) of a mono signal; (None, None) when too short or silent."""
    if len(x) < 6 * sr or _is_silent(x):
        return None, None
    hop = max(int(round(sr / 100)), 1)  # 10 ms frames
    fps = sr / hop
    oenv = onset_strength(x, sr, hop)
    o = oenv - oenv.mean()
    if not np.any(o):
        return None, None
    n = len(o)
    spec = np.fft.rfft(o, 2 * n)
    ac = np.fft.irfft(spec * np.conj(spec))[:n]
    ac /= ac[0]
    lo = max(int(math.floor(60 * fps / max_bpm)), 1)
    hi = min(int(math.ceil(60 * fps / min_bpm)), n - 2)
    if hi <= lo + 1:
        return None, None
    lags = np.arange(lo, hi + 1)
    bpms = 60 * fps / lags
    prior = np.exp(-0.5 * (np.log2(bpms / 120.0) / 1.0) ** 2)  # librosa's tempo prior (std 1 octave)
    score = np.maximum(ac[lags], 0) * prior
    i = int(np.argmax(score))
    lag = float(lags[i])
    if 0 < i < len(lags) - 1:  # parabolic refinement of the autocorrelation peak
        a, b, c = ac[lags[i] - 1], ac[lags[i]], ac[lags[i] + 1]
        denom = a - 2 * b + c
        if denom < 0:
            lag += float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5))
    conf = float(np.clip(ac[lags[i]], 0.0, 1.0))
    return 60 * fps / lag, conf


def estimate_key(x: np.ndarray, sr: int) -> tuple[str | None, float | None]:
    """(key name like 'A minor', confidence 0-1) of a mono signal; (None, None) when too short or silent."""
    if len(x) < 2 * sr or _is_silent(x):
        return None, None
    n_fft = 1 << int(round(math.log2(sr * 0.256)))  # ~256 ms: enough resolution for low notes
    power = _frames_power(x, n_fft, n_fft // 2)
    chroma = np.einsum("fb,cb->fc", power, _chroma_filter(sr, n_fft))  # (frames, 12)
    peak = chroma.max(axis=1, keepdims=True)
    voiced = peak[:, 0] > 1e-8 * max(float(peak.max()), 1e-30)  # skip silent frames
    chroma = chroma[voiced] / peak[voiced]
    if not len(chroma):
        return None, None
    profile = chroma.mean(axis=0)
    best, best_r = None, -2.0
    for mode, template in (("major", _MAJOR), ("minor", _MINOR)):
        for tonic in range(12):
            r = float(np.corrcoef(profile, np.roll(template, tonic))[0, 1])
            if r > best_r:
                best, best_r = f"{KEY_NAMES[tonic]} {mode}", r
    return best, float(np.clip(best_r, 0.0, 1.0))
