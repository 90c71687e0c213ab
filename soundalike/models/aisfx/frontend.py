"""aisfx's log-mel front end in plain numpy.

This reproduces the Essentia chain that aisfx 0.1.2 (Ma & Lerch, ISMIR 2022) computed its
spectrograms with (``aisfx/spectrogram/spectrogram_essentia.py``), which the paper's results use:

* audio at 44.1 kHz, mono;
* frames of 2048 samples every 1024 (Essentia's ``FrameCutter``: frame k starts at 1024 k - 1024, so the
  first is centred on sample 0 with zeros before it), a symmetric Hann window (``Windowing``, not
  normalised; its zero-phase rotation does not change a magnitude spectrum);
* the power spectrum's 1025 bins through 96 triangular HTK-mel bands from 0 to 22050 Hz, weighted on the
  mel scale (``weighting="warping"``) and each band scaled to sum to 1 (``normalize="unit_sum"``): the
  filterbank is built here with Essentia's own formula (``TriangularBands``);
* ``log10(10000 x + 1)``, then divided by 9.457798957824707 (aisfx's ``spec_norm="original"``: the maximum
  over all its training spectrograms).

The network reads blocks of 100 frames (2.32 s). A block of 100 frames spans 99 hops and one frame:
``N_SAMPLES`` = 103424 samples, so a window of that many samples starting at sample s gives exactly the block
whose first frame starts at s. The original blocks one spectrogram of the whole file with a hop of 50 frames;
``windows`` cut at s = 51200 i - 1024 (zeros before the file's start) reproduce it block for block
(tests/test_aisfx.py). Shorter clips are repeat-padded (tiled and cut), like musicnn's front end: the original
zero-pads, and a 0.3 s click would be mostly silence.

Why not Essentia or librosa: Essentia is AGPL and large, librosa's HTK filterbank weights bands in Hz; this is
one small matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from ...errors import UserError

__all__ = ["SR", "N_FFT", "HOP", "N_MELS", "N_FRAMES", "N_SAMPLES", "SPEC_MAX", "mel_filterbank", "log_mel",
           "repeat_pad"]

SR = 44100
N_FFT = 2048
HOP = 1024
N_MELS = 96
N_FRAMES = 100  # aisfx's EMB_BLOCK_LENGTH
N_SAMPLES = (N_FRAMES - 1) * HOP + N_FFT  # 103424 samples, 2.345 s
#: aisfx's ``spectrogram_normalize(spec_norm="original")``: the log-mel is divided by this
SPEC_MAX = 9.457798957824707


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """(1025, 96) float32: Essentia's ``MelBands`` weights for aisfx's settings (see the module docstring)."""
    n_bins = N_FFT // 2 + 1
    mels = np.linspace(_hz_to_mel(0.0), _hz_to_mel(SR / 2), N_MELS + 2)
    edges = _mel_to_hz(mels)
    scale = (SR / 2.0) / (n_bins - 1)
    bank = np.zeros((N_MELS, n_bins), np.float64)
    for i in range(N_MELS):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        step1 = _hz_to_mel(mid) - _hz_to_mel(lo)
        step2 = _hz_to_mel(hi) - _hz_to_mel(mid)
        for j in range(int(lo / scale + 0.5), min(int(hi / scale + 0.5) + 1, n_bins)):  # Essentia: j <= jend
            f = j * scale
            if lo <= f < mid:
                bank[i, j] = (_hz_to_mel(f) - _hz_to_mel(lo)) / step1
            elif mid <= f < hi:
                bank[i, j] = (_hz_to_mel(hi) - _hz_to_mel(f)) / step2
        total = bank[i].sum()
        if total > 0:
            bank[i] /= total
    return np.ascontiguousarray(bank.T.astype(np.float32))


@lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    n = np.arange(N_FFT)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / (N_FFT - 1))).astype(np.float32)


def repeat_pad(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` tiled to ``n`` samples (a silent or empty clip becomes zeros)."""
    x = np.asarray(x, np.float32).reshape(-1)
    if len(x) >= n:
        return x[:n]
    if len(x) == 0:
        return np.zeros(n, np.float32)
    return np.tile(x, -(-n // len(x)))[:n]


def log_mel(windows: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """(n, 103424) float32 audio at 44.1 kHz (or a list of clips, repeat-padded) -> (n, 100, 96) float32, the
    network's normalised input."""
    empty = np.zeros((0, N_SAMPLES), np.float32)
    if isinstance(windows, np.ndarray) and windows.ndim == 2 and windows.shape[1] == N_SAMPLES:
        x = np.ascontiguousarray(windows, np.float32)
    elif isinstance(windows, np.ndarray) and windows.ndim == 2 and windows.shape[1] < N_SAMPLES:
        x = np.stack([repeat_pad(w, N_SAMPLES) for w in windows]) if len(windows) else empty
    elif isinstance(windows, (list, tuple)):
        x = np.stack([repeat_pad(w, N_SAMPLES) for w in windows]) if windows else empty
    else:
        shape = getattr(windows, "shape", None)
        raise UserError(f"aisfx: expected windows of shape (n, {N_SAMPLES}) or a list of clips, got {shape}")
    n = len(x)
    if n == 0:
        return np.zeros((0, N_FRAMES, N_MELS), np.float32)
    frames = np.lib.stride_tricks.as_strided(
        x, shape=(n, N_FRAMES, N_FFT), strides=(x.strides[0], HOP * x.strides[1], x.strides[1]), writeable=False
    )
    spec = np.fft.rfft(frames * _hann(), axis=-1)
    power = (spec.real.astype(np.float32) ** 2 + spec.imag.astype(np.float32) ** 2)
    mel = power @ mel_filterbank()
    return (np.log10(10000.0 * mel + 1.0) / SPEC_MAX).astype(np.float32)
