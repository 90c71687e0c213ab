"""musicnn's log-mel front end in plain numpy.

Why not librosa: it would be a heavy dependency for one filterbank. This
reproduces what musicnn 0.1.0's ``batch_data`` computed with the librosa of
its time (0.6/0.7):

* STFT: n_fft 512, hop 256, periodic Hann window, centred with **reflect**
  padding (librosa >= 0.10 pads with zeros by default; musicnn's did not);
* power spectrogram (|X|^2), 96 Slaney-scale mel bands from 0 to 8 kHz with
  Slaney area normalisation (librosa's ``htk=False, norm="slaney"``);
* ``astype(float16)`` (the training data was stored as float16), then
  ``log10(10000 x + 1)`` in float32. numpy 1.x promoted ``10000 * float16``
  to float32; numpy 2 keeps float16 and overflows to inf above x = 6.55, so
  the upcast is explicit here.

A window is 48000 samples at 16 kHz, which gives 188 centred frames; the
network takes the first 187, as musicnn's patching did. Shorter clips are
repeat-padded (tiled and cut), because the original crashes on them.

``log_mel(windows, level_db=-20)`` adds one step that musicnn did not have:
each window is brought to ``level_db`` dBFS RMS before the log compression,
so that an excerpt played 12 dB louder or quieter gives the same patch (the
network's input is ``log10(10000 mel + 1)``: not level-invariant). The mel is
linear in power, so the gain multiplies the mel power (the same as scaling
the samples, up to float16 rounding). The boost is capped at ``max_gain_db``
so that near-silence is not lifted to music level; an all-zero window stays
zero. Without ``level_db`` the front end is musicnn's, as the parity tests
check it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from ...errors import UserError
from ...types import ModelOutput
from ..base import Embedder

__all__ = [
    "SR", "N_FFT", "HOP", "N_MELS", "N_FRAMES", "N_SAMPLES", "LEVEL_DB", "MAX_GAIN_DB",
    "mel_filterbank", "log_mel", "level_gains", "repeat_pad",
]

SR = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
N_SAMPLES = 48000  # 3 s
N_FRAMES = 187  # librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1
#: the RMS level (dBFS) every window is brought to before the log (``Musicnn``'s default)
LEVEL_DB = -20.0
#: the largest boost (dB): a window quieter than LEVEL_DB - MAX_GAIN_DB is lifted by this much only
MAX_GAIN_DB = 24.0


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's auditory-toolbox mel scale: linear below 1 kHz, log above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@lru_cache(maxsize=4)
def mel_filterbank(*, sr: int = SR, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """(n_mels, 1 + n_fft // 2) float32 triangles, as ``librosa.filters.mel`` (Slaney, norm="slaney")."""
    fft_freqs = np.linspace(0.0, sr / 2.0, 1 + n_fft // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2.0), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    out = weights.astype(np.float32)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=4)
def _hann(n: int) -> np.ndarray:
    """Periodic Hann window (scipy ``get_window("hann", n, fftbins=True)``)."""
    w = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)
    w.flags.writeable = False
    return w


def repeat_pad(x: np.ndarray, n: int = N_SAMPLES) -> np.ndarray:
    """Tile a short 1-D clip until it is ``n`` samples long (``np.resize`` semantics)."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) == 0:
        raise UserError("musicnn: cannot analyse an empty clip")
    if len(x) >= n:
        return x[:n]
    return np.tile(x, -(-n // len(x)))[:n]


def _as_windows(windows: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """(n, 48000) float32 from a 2-D array or a list of 1-D clips, repeat-padding short ones."""
    if isinstance(windows, np.ndarray) and windows.ndim == 2:
        if windows.shape[1] > N_SAMPLES:
            raise UserError(f"musicnn: windows must be at most {N_SAMPLES} samples (3 s at 16 kHz), got {windows.shape[1]}")
        if windows.shape[1] == N_SAMPLES:
            return np.ascontiguousarray(windows, dtype=np.float32)
        if windows.shape[1] == 0:
            raise UserError("musicnn: cannot analyse empty windows")
        reps = -(-N_SAMPLES // windows.shape[1])
        return np.ascontiguousarray(np.tile(windows.astype(np.float32, copy=False), (1, reps))[:, :N_SAMPLES])
    if isinstance(windows, np.ndarray) and windows.dtype != object:
        raise UserError(f"musicnn: expected (n, samples) windows or a list of clips, got an array of shape {windows.shape}")
    rows = [np.asarray(w, dtype=np.float32) for w in windows]
    for w in rows:
        if w.ndim != 1 or len(w) > N_SAMPLES:
            raise UserError(f"musicnn: each clip must be 1-D and at most {N_SAMPLES} samples, got shape {w.shape}")
    if not rows:
        return np.zeros((0, N_SAMPLES), np.float32)
    return np.stack([repeat_pad(w) for w in rows])


def level_gains(x: np.ndarray, level_db: float = LEVEL_DB, max_gain_db: float = MAX_GAIN_DB) -> np.ndarray:
    """(n, samples) windows -> (n,) float32 **power** gains that bring each to ``level_db`` dBFS RMS.

    dBFS here is ``10 log10(mean(x^2))`` (a full-scale sine is -3 dBFS). Boosts
    are capped at ``max_gain_db``; cuts are not capped.
    """
    x = np.asarray(x, dtype=np.float32)
    ms = np.einsum("ij,ij->i", x, x, dtype=np.float64) / max(1, x.shape[1])
    gain_db = np.minimum(level_db - 10.0 * np.log10(np.maximum(ms, 1e-20)), max_gain_db)
    return np.power(10.0, gain_db / 10.0).astype(np.float32)


def log_mel(
    windows: np.ndarray | Sequence[np.ndarray], *, level_db: float | None = None, max_gain_db: float = MAX_GAIN_DB
) -> np.ndarray:
    """(n, 48000) float32 audio at 16 kHz -> (n, 187, 96) float32 log-mel patches.

    ``level_db``: bring each window to this RMS level first (see the module
    docstring); ``None`` (the default here) is musicnn's own front end.
    """
    x = _as_windows(windows)
    n = len(x)
    if n == 0:
        return np.zeros((0, N_FRAMES, N_MELS), np.float32)
    pad = N_FFT // 2
    padded = np.pad(x, ((0, 0), (pad, pad)), mode="reflect")
    # only the 187 frames the network uses (of the 188 centred frames)
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT, axis=1)[:, : N_FRAMES * HOP : HOP]
    # float32 FFT (numpy >= 2 keeps the precision): librosa's float64 FFT rounded
    # to complex64 agrees to ~1e-7 relative, far below the float16 rounding below
    spec = np.fft.rfft(frames * _hann(N_FFT), axis=-1)
    power = np.square(spec.real) + np.square(spec.imag)
    mel = power @ mel_filterbank().T  # (n, 187, 96) float32
    if level_db is not None:
        mel *= level_gains(x, level_db, max_gain_db)[:, None, None]
    mel = mel.astype(np.float16).astype(np.float32)
    return np.log10(np.float32(10000.0) * mel + np.float32(1.0))


class MusicnnFrontEnd(Embedder):
    """``Musicnn.features`` without the networks (and without torch): the same attributes and log-mel, small
    enough to pickle; what a Ray run's decode tasks load (``Embedder.front_end``)."""

    model_id = "musicnn"
    sample_rate = SR
    window_seconds = 3.0
    dim = 200

    def __init__(self, *, version: str, tag_names: tuple[str, ...], batch_size: int, level_db: float | None) -> None:
        self.version, self.tag_names, self.batch_size, self.level_db = version, tag_names, batch_size, level_db

    def features(self, windows: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        return log_mel(windows, level_db=self.level_db, max_gain_db=MAX_GAIN_DB)

    def embed_batch(self, features: np.ndarray) -> ModelOutput:
        raise UserError("musicnn: the front end alone has no network (use Musicnn)")
