"""Degradations a query goes through in the evaluation: codecs, noise, filters, reverb, tempo, pitch, length.

Every degradation is a ``Degradation`` with a name (the one the quality table
prints) and ``apply(x, sr, rng) -> y``: mono float32 in, mono float32 out, at
the same rate. ``DEGRADATIONS`` lists them in table order. ``write_query``
writes an already-degraded clip to disk, as the MP3 of the asked bitrate for
the codec degradations (so the search decodes a real MP3) and as FLAC otherwise.

Tempo and pitch go through Rubber Band (FFmpeg's ``rubberband`` filter) when
the system ``ffmpeg`` has it, else through librosa's phase vocoder;
``stretch_backend()`` says which one ran, and the corpus manifest records it.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import UserError

__all__ = ["Degradation", "DEGRADATIONS", "by_name", "write_query", "stretch_backend", "snr_db",
           "add_noise", "pink_noise", "gain", "lowpass", "bandpass", "reverb", "tempo", "pitch", "mp3_roundtrip"]


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    """Signal-to-noise ratio of ``noisy`` against ``clean`` in dB (the noise is their difference)."""
    noise = _power(np.asarray(noisy, np.float64) - np.asarray(clean, np.float64))
    return float("inf") if noise == 0 else 10.0 * np.log10(_power(clean) / noise)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance pink (1/f power) noise: white noise shaped by 1/sqrt(f) in the frequency domain."""
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.arange(n // 2 + 1, dtype=np.float64)
    f[0] = 1.0
    spec /= np.sqrt(f)
    spec[0] = 0.0
    y = np.fft.irfft(spec, n)
    return y / (np.std(y) or 1.0)


def add_noise(x: np.ndarray, snr: float, rng: np.random.Generator, *, color: str = "white") -> np.ndarray:
    """Add white or pink noise so that signal power / noise power is exactly ``snr`` dB."""
    x = np.asarray(x, np.float32)
    p = _power(x)
    if p == 0.0:
        return x.copy()
    noise = rng.standard_normal(len(x)) if color == "white" else pink_noise(len(x), rng)
    noise *= np.sqrt(p / 10.0 ** (snr / 10.0) / _power(noise))
    return (x + noise).astype(np.float32)


def gain(x: np.ndarray, db: float) -> np.ndarray:
    """Scale by ``db`` and clip to [-1, 1], as a file written with that gain would be."""
    return np.clip(np.asarray(x, np.float32) * np.float32(10.0 ** (db / 20.0)), -1.0, 1.0)


def lowpass(x: np.ndarray, sr: int, cutoff: float) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    return sosfiltfilt(butter(8, cutoff, "lowpass", fs=sr, output="sos"), x).astype(np.float32)


def bandpass(x: np.ndarray, sr: int, low: float, high: float) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    return sosfiltfilt(butter(6, [low, high], "bandpass", fs=sr, output="sos"), x).astype(np.float32)


def reverb(x: np.ndarray, sr: int, rng: np.random.Generator, *, rt60: float = 0.8, wet: float = 0.5) -> np.ndarray:
    """A room: the dry signal plus a convolution with exponentially decaying noise (RT60 ``rt60`` s).

    The output keeps the input's RMS level and length.
    """
    from scipy.signal import fftconvolve

    n = int(rt60 * sr)
    t = np.arange(n) / sr
    ir = rng.standard_normal(n) * np.exp(-6.91 * t / rt60)  # -60 dB at rt60
    ir[: int(0.01 * sr)] = 0.0  # 10 ms pre-delay before the diffuse tail
    ir /= np.sqrt(np.sum(ir**2))
    y = (1 - wet) * x + wet * fftconvolve(x, ir)[: len(x)]
    y *= np.sqrt(_power(x) / max(_power(y), 1e-20))
    return y.astype(np.float32)


@lru_cache(maxsize=1)
def stretch_backend() -> str:
    """"rubberband" (FFmpeg's filter, when the system ffmpeg has it) or "librosa" (phase vocoder)."""
    exe = shutil.which("ffmpeg")
    if exe:
        try:
            out = subprocess.run([exe, "-hide_banner", "-filters"], capture_output=True, text=True, timeout=20).stdout
            if " rubberband " in out:
                return "rubberband"
        except (OSError, subprocess.SubprocessError):
            pass
    return "librosa"


def _rubberband(x: np.ndarray, sr: int, **params: float) -> np.ndarray:
    opts = ":".join(f"{k}={v:.6f}" for k, v in params.items())
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "f32le", "-ar", str(sr), "-ac", "1", "-i", "pipe:0",
           "-af", f"rubberband={opts}", "-f", "f32le", "-ar", str(sr), "-ac", "1", "pipe:1"]
    out = subprocess.run(cmd, input=np.asarray(x, "<f4").tobytes(), capture_output=True, check=True, timeout=120)
    return np.frombuffer(out.stdout, "<f4").astype(np.float32)


def tempo(x: np.ndarray, sr: int, factor: float) -> np.ndarray:
    """Play ``factor`` times as fast without changing the pitch (duration / factor)."""
    if stretch_backend() == "rubberband":
        return _rubberband(x, sr, tempo=factor)
    import librosa

    return librosa.effects.time_stretch(np.asarray(x, np.float32), rate=factor).astype(np.float32)


def pitch(x: np.ndarray, sr: int, semitones: float) -> np.ndarray:
    """Shift the pitch by ``semitones`` keeping the duration."""
    if stretch_backend() == "rubberband":
        y = _rubberband(x, sr, pitch=2.0 ** (semitones / 12.0))
        return y[: len(x)] if len(y) >= len(x) else np.pad(y, (0, len(x) - len(y)))
    import librosa

    return librosa.effects.pitch_shift(np.asarray(x, np.float32), sr=sr, n_steps=semitones).astype(np.float32)


def mp3_roundtrip(x: np.ndarray, sr: int, bitrate: int) -> np.ndarray:
    """Encode as MP3 at ``bitrate`` bit/s and decode again (the same rate and length as far as the codec allows)."""
    from ..decode import decode
    from ..synth import encode

    buf = io.BytesIO()
    encode(x, sr, buf, format="mp3", codec="libmp3lame", bitrate=bitrate)
    return decode(buf.getvalue(), sample_rate=sr).samples


@dataclass(frozen=True)
class Degradation:
    """One way a query is damaged. ``seconds`` is the excerpt length it is applied to."""

    name: str
    group: str
    apply: Callable[[np.ndarray, int, np.random.Generator], np.ndarray]
    seconds: float = 10.0
    bitrate: int | None = None  # MP3 degradations: the file is written at this bitrate
    tempo: float = 1.0  # query seconds x tempo = track seconds


def _mp3(kbps: int) -> Degradation:
    return Degradation(f"mp3-{kbps}k", "codec", lambda x, sr, rng: mp3_roundtrip(x, sr, kbps * 1000), bitrate=kbps * 1000)


def _noise(color: str, snr: int) -> Degradation:
    return Degradation(f"{color}-{snr}dB", "noise", lambda x, sr, rng: add_noise(x, snr, rng, color=color))


def _tempo(pct: int) -> Degradation:
    f = 1 + pct / 100
    return Degradation(f"tempo{pct:+d}%", "tempo", lambda x, sr, rng: tempo(x, sr, f), tempo=f)


def _pitch(st: int) -> Degradation:
    return Degradation(f"pitch{st:+d}st", "pitch", lambda x, sr, rng: pitch(x, sr, st))


DEGRADATIONS: list[Degradation] = [
    Degradation("clean", "clean", lambda x, sr, rng: np.asarray(x, np.float32).copy()),
    _mp3(64), _mp3(32),
    *[_noise(c, s) for c in ("white", "pink") for s in (20, 10, 0)],
    Degradation("gain+12dB", "gain", lambda x, sr, rng: gain(x, 12)),
    Degradation("gain-12dB", "gain", lambda x, sr, rng: gain(x, -12)),
    Degradation("lowpass-3k", "filter", lambda x, sr, rng: lowpass(x, sr, 3000)),
    Degradation("phone", "filter", lambda x, sr, rng: bandpass(x, sr, 300, 3400)),
    Degradation("reverb", "room", lambda x, sr, rng: reverb(x, sr, rng)),
    *[_tempo(p) for p in (5, -5, 10, -10)],
    *[_pitch(s) for s in (1, -1, 2, -2)],
    Degradation("excerpt-4s", "length", lambda x, sr, rng: np.asarray(x, np.float32).copy(), seconds=4.0),
    Degradation("excerpt-2s", "length", lambda x, sr, rng: np.asarray(x, np.float32).copy(), seconds=2.0),
]


def by_name(names: str | list[str] | None) -> list[Degradation]:
    """Degradations by name (comma-separated or a list); None or "all" gives every one."""
    if names is None or names == "all":
        return list(DEGRADATIONS)
    wanted = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    known = {d.name: d for d in DEGRADATIONS}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise UserError(f"degradations: unknown {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in wanted]


def write_query(deg: Degradation, clip: np.ndarray, sr: int, path_stem: Path, rng: np.random.Generator) -> Path:
    """Degrade ``clip`` (already cut to ``deg.seconds``) and write it next to ``path_stem``; returns the path."""
    from ..synth import encode

    if deg.bitrate:  # the query is the MP3 itself
        path = path_stem.with_suffix(".mp3")
        encode(clip, sr, path, bitrate=deg.bitrate)
        return path
    y = deg.apply(clip, sr, rng)
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if peak > 1.0:  # noise at 0 dB SNR can exceed full scale; keep its shape rather than clip
        y = y / np.float32(peak)
    path = path_stem.with_suffix(".flac")
    encode(y, sr, path)
    return path
