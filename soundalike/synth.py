"""Music the project synthesises: test fixtures, the demo fallback and benchmarks.

``render_track(seed, seconds=...)`` returns a deterministic little piece of music.
Each seed picks a tempo, a key and scale, a chord progression, instruments
(an additive piano, a Karplus-Strong plucked string, a detuned pad, a bass and
noise-based kick, snare and hat) and several sections that differ in
progression, register, density and arrangement, so that two 3 s windows of the
same track differ and two seeds differ clearly.

The piece is *prefix-stable*: ``render_track(s, seconds=10)`` equals the first
10 s of ``render_track(s, seconds=60)`` (every random choice is keyed on the
seed and the bar number, never on the length), which lets tests cut excerpts
from a long render and find them again.

``encode()`` writes samples to any format the decoder reads (through PyAV),
and ``add_noise()`` / ``excerpt()`` degrade a signal the way queries are
degraded in tests.

Everything is numpy: rendering runs at several hundred times realtime.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import UserError

__all__ = [
    "render_track", "encode", "add_noise", "excerpt", "ENCODINGS",
    "GMNote", "GM_DRUMS", "GM_FAMILIES", "GM_SOUNDFONT", "render_gm", "render_gm_family", "gm_phrase", "write_midi",
    "fluidsynth_missing",
]  # fmt: skip

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------
# music theory
# --------------------------------------------------------------------------

_SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
}

# Chord progressions as scale degrees (0-based); each chord lasts one bar.
_PROGRESSIONS: tuple[tuple[int, ...], ...] = (
    (0, 4, 5, 3),
    (0, 5, 3, 4),
    (0, 3, 4, 4),
    (5, 3, 0, 4),
    (0, 1, 4, 0),
    (0, 3, 0, 4),
    (1, 4, 0, 0),
    (0, 6, 5, 4),
    (3, 4, 2, 5),
    (0, 2, 3, 1),
)

_LEADS = ("piano", "pluck", "pad_lead", "square")


def _midi_hz(m: float) -> float:
    return 440.0 * 2.0 ** ((m - 69.0) / 12.0)


def _degree_midi(root: int, scale: tuple[int, ...], degree: int) -> int:
    octave, step = divmod(degree, len(scale))
    return root + 12 * octave + scale[step]


# --------------------------------------------------------------------------
# instruments: each returns a float64 mono note of ``n`` samples
# --------------------------------------------------------------------------


def _env_adsr(n: int, sr: int, attack: float, decay: float, sustain: float, release: float) -> np.ndarray:
    t = np.arange(n) / sr
    a = max(attack, 1e-4)
    env = np.where(t < a, t / a, sustain + (1 - sustain) * np.exp(-(t - a) / max(decay, 1e-4)))
    r = max(int(release * sr), 1)
    if n > r:
        env[-r:] *= np.linspace(1.0, 0.0, r)
    return env


def _piano(f: float, n: int, sr: int, bright: float) -> np.ndarray:
    t = np.arange(n) / sr
    out = np.zeros(n)
    B = 0.0004  # string inharmonicity
    for k in range(1, 10):
        fk = k * f * np.sqrt(1 + B * k * k)
        if fk > sr * 0.45:
            break
        amp = (1.0 / k**1.4) * (bright if k > 3 else 1.0)
        out += amp * np.exp(-t * (1.2 + 0.9 * k)) * np.sin(2 * np.pi * fk * t + 0.3 * k)
    att = np.minimum(t / 0.004, 1.0)
    return out * att * 0.6


def _pluck(f: float, n: int, sr: int, rng: np.random.Generator, damp: float) -> np.ndarray:
    """Karplus-Strong: a noise burst through a delay line with an averaging loss filter.

    Vectorised one period at a time: every sample of a period depends only on
    the previous period, so each step is one numpy expression.
    """
    N = max(int(round(sr / f)), 2)
    y = np.zeros(n + N + 1)
    burst = rng.uniform(-1, 1, N)
    burst -= burst.mean()
    y[1 : N + 1] = burst
    g = 0.5 * damp
    s = N + 1
    while s < len(y):
        e = min(s + N, len(y))
        y[s:e] = g * (y[s - N : e - N] + y[s - N - 1 : e - N - 1])
        s = e
    out = y[N + 1 :]
    # a short release so long notes do not click when cut
    r = min(int(0.01 * sr), n)
    if r:
        out[-r:] *= np.linspace(1, 0, r)
    return out * 0.7


def _pad(f: float, n: int, sr: int, detune: float) -> np.ndarray:
    t = np.arange(n) / sr
    out = np.zeros(n)
    for d in (-detune, 0.0, detune):
        fd = f * 2 ** (d / 1200)
        for k in range(1, 6):  # soft saw: a few harmonics
            if k * fd > sr * 0.45:
                break
            out += np.sin(2 * np.pi * k * fd * t + d) / (k * 1.5)
    env = _env_adsr(n, sr, attack=min(0.35, n / sr / 3), decay=0.8, sustain=0.7, release=min(0.3, n / sr / 3))
    trem = 1 + 0.15 * np.sin(2 * np.pi * 4.5 * t)
    return out * env * trem * 0.12


def _square(f: float, n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    out = np.zeros(n)
    for k in range(1, 16, 2):
        if k * f > sr * 0.45:
            break
        out += np.sin(2 * np.pi * k * f * t) / k
    vib = 1 + 0.004 * np.sin(2 * np.pi * 5.5 * t)
    return out * vib * _env_adsr(n, sr, 0.01, 0.25, 0.5, min(0.05, n / sr / 4)) * 0.35


def _bass(f: float, n: int, sr: int, grit: float) -> np.ndarray:
    t = np.arange(n) / sr
    ph = 2 * np.pi * f * t
    out = np.sin(ph) + 0.35 * np.sin(2 * ph) + grit * np.sin(3 * ph) / 3
    return np.tanh(1.5 * out) * _env_adsr(n, sr, 0.005, 0.3, 0.6, min(0.04, n / sr / 4)) * 0.55


def _kick(sr: int, tone: float) -> np.ndarray:
    n = int(0.35 * sr)
    t = np.arange(n) / sr
    fr = tone * 0.4 + tone * 2.5 * np.exp(-t * 30)
    ph = 2 * np.pi * np.cumsum(fr) / sr
    return np.sin(ph) * np.exp(-t * 9) * 0.9


def _snare(sr: int, rng: np.random.Generator, tone: float) -> np.ndarray:
    n = int(0.22 * sr)
    t = np.arange(n) / sr
    noise = np.diff(rng.standard_normal(n + 1))  # first difference: brighter noise
    body = np.sin(2 * np.pi * tone * t) * np.exp(-t * 35)
    return (0.35 * noise * np.exp(-t * 18) + 0.6 * body) * 0.7


def _hat(sr: int, rng: np.random.Generator, length: float) -> np.ndarray:
    n = int(length * sr)
    t = np.arange(n) / sr
    noise = np.diff(rng.standard_normal(n + 2), n=2)  # second difference: high-passed
    return noise * np.exp(-t / (length / 5)) * 0.12


# --------------------------------------------------------------------------
# the arrangement
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Section:
    progression: tuple[int, ...]
    bars: int
    lead: str
    lead_octave: int
    density: float  # probability a melody step sounds
    steps_per_note: int  # 1 = sixteenths, 2 = eighths, 4 = quarters
    drums: int  # 0 none, 1 hats only, 2 full
    kick_pattern: tuple[int, ...]
    snare_pattern: tuple[int, ...]
    hat_pattern: tuple[int, ...]
    pad: bool
    bass_pattern: tuple[int, ...]
    arp: bool


@dataclass(frozen=True)
class _Plan:
    bpm: float
    root: int
    scale: tuple[int, ...]
    sections: tuple[_Section, ...]
    order: tuple[int, ...]
    timbre: dict


def _plan(seed: int) -> _Plan:
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5A11])
    bpm = float(rng.uniform(68, 168))
    root = int(rng.integers(36, 48))  # bass register root
    scale = _SCALES[list(_SCALES)[int(rng.integers(len(_SCALES)))]]
    n_sections = int(rng.integers(3, 5))
    sections = []
    for i in range(n_sections):
        prog = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
        if rng.random() < 0.5:
            prog = prog + _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
        kick = tuple(int(v) for v in (rng.random(16) < [0.9, 0, 0.1, 0.1, 0.2, 0, 0.3, 0.1, 0.7, 0, 0.2, 0.2, 0.3, 0, 0.3, 0.1]))
        snare = tuple(int(v) for v in (rng.random(16) < [0, 0, 0, 0, 0.9, 0, 0, 0.1, 0, 0.1, 0, 0, 0.9, 0, 0.2, 0.2]))
        hat_density = rng.uniform(0.2, 1.0)
        hat = tuple(int(v) for v in (rng.random(16) < hat_density * np.tile([1.0, 0.5], 8)))
        bass = tuple(int(v) for v in (rng.random(8) < [1, 0.2, 0.5, 0.3, 0.7, 0.2, 0.5, 0.4]))
        sections.append(
            _Section(
                progression=prog,
                bars=len(prog) * int(rng.integers(1, 3)),
                lead=_LEADS[int(rng.integers(len(_LEADS)))],
                lead_octave=int(rng.integers(1, 4)),
                density=float(rng.uniform(0.35, 0.95)),
                steps_per_note=int(rng.choice([1, 2, 2, 4])),
                drums=int(rng.choice([0, 1, 2, 2, 2])) if i else int(rng.choice([0, 1, 2])),
                kick_pattern=kick,
                snare_pattern=snare,
                hat_pattern=hat,
                pad=bool(rng.random() < 0.6),
                bass_pattern=bass,
                arp=bool(rng.random() < 0.4),
            )
        )
    # a song form over the sections, then it repeats
    order = [0] + [int(v) for v in rng.integers(0, n_sections, size=7)]
    for k in range(n_sections):  # every section appears at least once
        if k not in order:
            order[1 + k] = k
    timbre = {
        "bright": float(rng.uniform(0.4, 1.4)),
        "damp": float(rng.uniform(0.985, 0.998)),
        "detune": float(rng.uniform(4, 18)),
        "grit": float(rng.uniform(0.0, 1.0)),
        "kick": float(rng.uniform(45, 70)),
        "snare": float(rng.uniform(160, 260)),
        "hat": float(rng.uniform(0.03, 0.09)),
        "swing": float(rng.uniform(0.0, 0.18)),
    }
    return _Plan(bpm, root, scale, tuple(sections), tuple(order), timbre)


class _Renderer:
    def __init__(self, plan: _Plan, seed: int, sr: int):
        self.plan, self.seed, self.sr = plan, seed, sr
        self.cache: dict[tuple, np.ndarray] = {}
        drng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0xD8])
        tb = plan.timbre
        self.drums = {
            "kick": _kick(sr, tb["kick"]),
            "snare": _snare(sr, drng, tb["snare"]),
            "hat": _hat(sr, drng, tb["hat"]),
        }

    def note(self, inst: str, midi: int, n: int) -> np.ndarray:
        key = (inst, midi, n)
        w = self.cache.get(key)
        if w is None:
            f, sr, tb = _midi_hz(midi), self.sr, self.plan.timbre
            if inst == "piano":
                w = _piano(f, n, sr, tb["bright"])
            elif inst == "pluck":
                w = _pluck(f, n, sr, np.random.default_rng([int(self.seed) & 0xFFFFFFFF, midi]), tb["damp"])
            elif inst in ("pad", "pad_lead"):
                w = _pad(f, n, sr, tb["detune"]) * (2.5 if inst == "pad_lead" else 1.0)
            elif inst == "square":
                w = _square(f, n, sr)
            else:
                w = _bass(f, n, sr, tb["grit"])
            if len(self.cache) > 4096:
                self.cache.clear()
            self.cache[key] = w
        return w


def _add(buf: np.ndarray, start: int, w: np.ndarray, gain: float) -> None:
    if start >= len(buf) or start + len(w) <= 0:
        return
    s0 = max(start, 0)
    e = min(start + len(w), len(buf))
    buf[s0:e] += gain * w[s0 - start : e - start]


def render_track(seed: int, *, seconds: float, sample_rate: int = 22050, channels: int = 1) -> np.ndarray:
    """Render ``seconds`` of the piece for ``seed`` as float32 in [-1, 1].

    Returns shape ``(n,)`` for ``channels=1`` and ``(2, n)`` for ``channels=2``
    (instruments panned apart). Deterministic and prefix-stable.
    """
    if seconds <= 0:
        raise UserError(f"seconds must be positive, got {seconds}")
    if channels not in (1, 2):
        raise UserError(f"channels must be 1 or 2, got {channels}")
    sr = int(sample_rate)
    plan = _plan(seed)
    r = _Renderer(plan, seed, sr)
    n_total = int(round(seconds * sr))
    step = 60.0 / plan.bpm / 4  # one sixteenth, in seconds
    bar_s = 16 * step
    pans = {"lead": 0.3, "pad": -0.4, "bass": 0.0, "kick": 0.0, "snare": 0.15, "hat": -0.5, "arp": 0.55}
    buses = {k: np.zeros(n_total + 1) for k in pans}
    tail = int(2.0 * sr)  # notes ring into the next bar; render with margin

    # the bar timeline: repeat the song form until the track is long enough
    n_bars = int(np.ceil(seconds / bar_s)) + 1
    bar_sections: list[tuple[int, int]] = []  # (section index, bar within section)
    form_pos = 0
    while len(bar_sections) < n_bars:
        si = plan.order[form_pos % len(plan.order)]
        sec = plan.sections[si]
        bar_sections.extend((si, b) for b in range(sec.bars))
        form_pos += 1

    scale, root = plan.scale, plan.root
    swing = plan.timbre["swing"]
    for bar in range(n_bars):
        si, b = bar_sections[bar]
        sec = plan.sections[si]
        # a bar's randomness depends on seed, section and position: prefix-stable
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, bar, si])
        motif_rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 1000 + si, b % 2])
        t0 = bar * bar_s
        s0 = int(round(t0 * sr))
        if s0 >= n_total:
            break
        deg = sec.progression[b % len(sec.progression)]
        chord = [deg, deg + 2, deg + 4]

        def at(stp: float) -> int:
            sw = swing * step if int(stp) % 2 == 1 else 0.0
            return s0 + int(round((stp * step + sw) * sr))

        # pad: the chord, held the whole bar
        if sec.pad:
            n = int(bar_s * sr) + int(0.25 * sr)
            for d in chord:
                m = _degree_midi(root + 12, scale, d)
                _add(buses["pad"], s0, r.note("pad", m, min(n, tail + n)), 1.0)
        # bass
        for i, on in enumerate(sec.bass_pattern):
            if on:
                d = deg if i % 4 != 3 or rng.random() < 0.6 else deg + 4
                m = _degree_midi(root, scale, d)
                n = int(step * 2 * sr * (1.6 if rng.random() < 0.5 else 0.9))
                _add(buses["bass"], at(2 * i), r.note("bass", m, n), 1.0)
        # melody: the section's motif, varied a little every bar
        spn = sec.steps_per_note
        motif = motif_rng.integers(-3, 5, size=16 // spn)
        hits = motif_rng.random(16 // spn) < sec.density
        for j in range(16 // spn):
            vary = rng.random() < 0.25
            if not (hits[j] ^ (vary and rng.random() < 0.3)):
                continue
            d = chord[j % 3] + int(motif[j]) + (int(rng.integers(-2, 3)) if vary else 0)
            m = _degree_midi(root + 12 * sec.lead_octave, scale, d)
            dur = spn * step * (1.0 if sec.lead != "pluck" else 2.5) * 0.95
            n = int(min(dur * sr, tail))
            vel = 0.6 + 0.4 * rng.random()
            _add(buses["lead"], at(j * spn), r.note(sec.lead, m, n), vel)
        # arpeggio on a second timbre
        if sec.arp:
            arp_inst = "pluck" if sec.lead != "pluck" else "piano"
            for j in range(8):
                d = chord[j % 3] + 7 * (j // 3 % 2)
                m = _degree_midi(root + 24, scale, d)
                _add(buses["arp"], at(2 * j), r.note(arp_inst, m, int(step * 3 * sr)), 0.45)
        # drums
        if sec.drums:
            fill = b == sec.bars - 1 and rng.random() < 0.5
            for i in range(16):
                if sec.hat_pattern[i] or (fill and i >= 12):
                    _add(buses["hat"], at(i), r.drums["hat"], 0.6 + 0.4 * rng.random())
                if sec.drums >= 2:
                    if sec.kick_pattern[i]:
                        _add(buses["kick"], at(i), r.drums["kick"], 1.0)
                    if sec.snare_pattern[i] or (fill and i >= 12 and i % 2 == 0):
                        _add(buses["snare"], at(i), r.drums["snare"], 0.8 + 0.2 * rng.random())

    def finish(x: np.ndarray) -> np.ndarray:
        return np.tanh(x[:n_total] * 0.7).astype(np.float32)

    if channels == 1:
        return finish(sum(buses.values()))
    left = sum(buses[k] * np.sqrt((1 - p) / 2) * np.sqrt(2) for k, p in pans.items())
    right = sum(buses[k] * np.sqrt((1 + p) / 2) * np.sqrt(2) for k, p in pans.items())
    return np.stack([finish(left), finish(right)])


# --------------------------------------------------------------------------
# degradations
# --------------------------------------------------------------------------


def add_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add white Gaussian noise so that signal power / noise power is ``snr_db``."""
    x = np.asarray(x, dtype=np.float32)
    p = float(np.mean(x.astype(np.float64) ** 2))
    if p == 0.0:
        return x.copy()
    sigma = np.sqrt(p / 10.0 ** (snr_db / 10.0))
    return (x + rng.standard_normal(x.shape) * sigma).astype(np.float32)


def excerpt(x: np.ndarray, sr: int, start: float, seconds: float) -> np.ndarray:
    """The slice of ``x`` (last axis is time) from ``start`` for ``seconds``."""
    a = int(round(start * sr))
    b = a + int(round(seconds * sr))
    if a < 0 or a >= x.shape[-1]:
        raise UserError(f"excerpt start {start} s is outside the signal ({x.shape[-1] / sr:.2f} s)")
    return x[..., a:b].copy()


# --------------------------------------------------------------------------
# encoding
# --------------------------------------------------------------------------

# extension -> (container format, default codec)
ENCODINGS: dict[str, tuple[str, str]] = {
    ".wav": ("wav", "pcm_s16le"),
    ".flac": ("flac", "flac"),
    ".mp3": ("mp3", "libmp3lame"),
    ".aiff": ("aiff", "pcm_s16be"),
    ".aif": ("aiff", "pcm_s16be"),
    ".m4a": ("ipod", "aac"),
    ".mp4": ("mp4", "aac"),
    ".aac": ("adts", "aac"),
    ".ogg": ("ogg", "vorbis"),
    ".oga": ("ogg", "vorbis"),
    ".opus": ("opus", "libopus"),
    ".mka": ("matroska", "flac"),
}

_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 8: "7.1"}
_PREFERRED_FORMATS = ("fltp", "flt", "s32p", "s32", "s16p", "s16")
# FFmpeg's own Vorbis encoder (the wheel has no libvorbis) writes stereo only.
_STEREO_ONLY = {"vorbis"}


def _to_format(block: np.ndarray, fmt: str) -> np.ndarray:
    """(channels, n) float -> the array layout ``AudioFrame.from_ndarray`` wants for ``fmt``."""
    planar = fmt.endswith("p")
    base = fmt.rstrip("p")
    if base == "flt":
        a = block.astype(np.float32)
    elif base == "dbl":
        a = block.astype(np.float64)
    elif base == "s16":
        a = np.round(np.clip(block, -1.0, 1.0).astype(np.float64) * 32767.0).astype(np.int16)
    elif base == "s32":
        a = np.round(np.clip(block, -1.0, 1.0).astype(np.float64) * 2147483647.0).astype(np.int32)
    else:
        raise UserError(f"unsupported sample format {fmt}")
    if planar:
        return np.ascontiguousarray(a)
    return np.ascontiguousarray(a.T).reshape(1, -1)


def _blocks(samples: np.ndarray | Iterable[np.ndarray]) -> Iterable[np.ndarray]:
    if isinstance(samples, np.ndarray):
        yield samples
    else:
        yield from samples


def encode(
    samples: np.ndarray | Iterable[np.ndarray],
    sample_rate: int,
    path: str | os.PathLike | BinaryIO,
    *,
    format: str | None = None,
    codec: str | None = None,
    bitrate: int | None = None,
    channels: int = 1,
) -> int:
    """Write ``samples`` (float in [-1, 1]) to ``path`` with PyAV.

    ``samples`` is ``(n,)`` mono, ``(channels, n)``, or an iterable of such
    blocks (to write files larger than memory). Mono input is copied to
    ``channels`` channels. The container and codec come from the extension
    (see ``ENCODINGS``) unless ``format`` / ``codec`` say otherwise; e.g.
    ``codec="pcm_s24le"`` or ``"pcm_f32le"`` for 24-bit or float WAV.

    If the codec cannot run at ``sample_rate`` (Opus: 8/12/16/24/48 kHz,
    MP3: up to 48 kHz) the audio is resampled to the nearest rate it supports.
    FFmpeg's Vorbis encoder is stereo-only, so mono is written as two equal
    channels. Returns the sample rate actually written.
    """
    import av
    import soxr

    ext = Path(path).suffix.lower() if isinstance(path, (str, os.PathLike)) else ""
    fmt_default, codec_default = ENCODINGS.get(ext, (None, None))
    container_format = format or fmt_default
    codec_name = codec or codec_default
    if container_format is None or codec_name is None:
        raise UserError(f"cannot tell the format of {path!r}: pass format= and codec=")
    try:
        av_codec = av.codec.Codec(codec_name, "w")
    except Exception as exc:  # noqa: BLE001 - av raises several types here
        raise UserError(f"no encoder named {codec_name!r} in this FFmpeg build") from exc

    out_rate = int(sample_rate)
    rates = av_codec.audio_rates
    if rates and out_rate not in rates:
        out_rate = min(rates, key=lambda r: (abs(r - sample_rate), -r))
        log.info("%s cannot encode at %d Hz; resampling to %d Hz", codec_name, sample_rate, out_rate)
    out_channels = int(channels)
    if codec_name in _STEREO_ONLY and out_channels != 2:
        if out_channels > 2:
            raise UserError(f"{codec_name} encoder writes stereo only, not {out_channels} channels")
        out_channels = 2
    if out_channels not in _LAYOUTS:
        raise UserError(f"unsupported channel count {out_channels}")
    layout = _LAYOUTS[out_channels]
    formats = [f.name for f in (av_codec.audio_formats or [])]
    sample_fmt = next((f for f in _PREFERRED_FORMATS if f in formats), formats[0] if formats else "fltp")
    if codec_name == "flac":
        sample_fmt = "s16"  # 16-bit FLAC unless asked otherwise through codec options

    options = {"strict": "experimental"} if codec_name == "vorbis" else {}
    resampler = soxr.ResampleStream(sample_rate, out_rate, out_channels, dtype="float32") if out_rate != sample_rate else None
    container = av.open(path, mode="w", format=container_format)
    try:
        stream = container.add_stream(codec_name, rate=out_rate, options=options)
        stream.layout = layout
        stream.format = sample_fmt
        if bitrate:
            stream.bit_rate = int(bitrate)
        container.start_encoding()  # write the header even if no samples follow
        time_base = Fraction(1, out_rate)
        pts = 0

        def write(block: np.ndarray) -> None:
            nonlocal pts
            if block.shape[-1] == 0:
                return
            frame = av.AudioFrame.from_ndarray(_to_format(block, sample_fmt), format=sample_fmt, layout=layout)
            frame.sample_rate = out_rate
            frame.time_base = time_base
            frame.pts = pts
            pts += block.shape[-1]
            for packet in stream.encode(frame):
                container.mux(packet)

        for block in _blocks(samples):
            block = np.asarray(block, dtype=np.float32)
            if block.ndim == 1:
                block = np.broadcast_to(block, (out_channels, block.shape[0]))
            elif block.shape[0] != out_channels:
                if block.shape[0] == 1 or (codec_name in _STEREO_ONLY and block.shape[0] == 1):
                    block = np.broadcast_to(block[0], (out_channels, block.shape[1]))
                else:
                    raise UserError(f"samples have {block.shape[0]} channels, expected {out_channels}")
            if resampler is not None:
                block = resampler.resample_chunk(np.ascontiguousarray(block.T)).T
            for i in range(0, block.shape[-1], 65536):
                write(block[:, i : i + 65536])
        if resampler is not None:
            write(resampler.resample_chunk(np.zeros((0, out_channels), np.float32), last=True).T)
        if pts:  # flushing an encoder that never saw a frame hangs FFmpeg's Vorbis encoder
            for packet in stream.encode(None):
                container.mux(packet)
    finally:
        container.close()
    return out_rate


# --------------------------------------------------------------------------
# real instruments: General MIDI phrases rendered by the fluidsynth CLI
# --------------------------------------------------------------------------

#: The SoundFont Debian's ``fluid-soundfont-gm`` package installs.
GM_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
#: Pass as ``program`` to play the notes on the GM percussion channel (MIDI channel 10).
GM_DRUMS = 128

#: Instrument families -> GM programs (0-based) that sound like them.
GM_FAMILIES: dict[str, tuple[int, ...]] = {
    "piano": (0, 1, 4),  # acoustic grand, bright acoustic, electric piano 1
    "strings": (48, 49, 44),  # string ensembles 1 and 2, tremolo strings
    "drums": (GM_DRUMS,),
    "synth": (80, 81, 90, 87),  # square lead, saw lead, polysynth pad, bass+lead
    "guitar": (24, 25, 29),  # nylon, steel, overdriven
    "organ": (16, 19),  # drawbar organ, church organ
    "flute": (73, 72),  # flute, piccolo
    "brass": (56, 61),  # trumpet, brass section
    "choir": (52, 53),  # choir aahs, voice oohs
    "harp": (46,),
    "violin": (40,),
    "cello": (42,),
    "harpsichord": (6,),
}


@dataclass(frozen=True)
class GMNote:
    """One note of a phrase: MIDI pitch (a GM drum key on the drums channel), times in seconds."""

    pitch: int
    start: float
    duration: float
    velocity: int = 96


def fluidsynth_missing(soundfont: str | os.PathLike | None = None) -> str | None:
    """Why ``render_gm`` cannot run here (a sentence naming the install), or None if it can."""
    import shutil

    if shutil.which("fluidsynth") is None:
        return "the fluidsynth CLI is not installed (apt-get install fluidsynth fluid-soundfont-gm)"
    sf = Path(soundfont or GM_SOUNDFONT)
    if not sf.is_file():
        return f"SoundFont {sf} not found (apt-get install fluid-soundfont-gm)"
    return None


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def write_midi(notes: Iterable[GMNote], program: int, path: str | os.PathLike, *, end: float | None = None) -> None:
    """Write a format-0 Standard MIDI File: ``program`` (0-127, or ``GM_DRUMS``) playing ``notes``.

    Plain ``struct``-free bytes, no MIDI library needed. Tempo is 120 BPM at 480
    ticks per beat, so one second is 960 ticks. ``end`` (seconds) places the
    end-of-track marker, which sets the rendered length.
    """
    if not (0 <= program <= 127 or program == GM_DRUMS):
        raise UserError(f"GM program must be 0-127 or GM_DRUMS, got {program}")
    channel = 9 if program == GM_DRUMS else 0
    tick = lambda s: max(int(round(s * 960)), 0)  # noqa: E731
    events: list[tuple[int, int, bytes]] = []  # (tick, order: offs before ons, bytes)
    for nt in notes:
        if not 0 <= nt.pitch <= 127:
            raise UserError(f"MIDI pitch must be 0-127, got {nt.pitch}")
        vel = min(max(int(nt.velocity), 1), 127)
        events.append((tick(nt.start), 1, bytes([0x90 | channel, nt.pitch, vel])))
        events.append((tick(nt.start + max(nt.duration, 0.01)), 0, bytes([0x80 | channel, nt.pitch, 0])))
    events.sort(key=lambda e: (e[0], e[1]))
    body = bytearray(b"\x00\xff\x51\x03\x07\xa1\x20")  # tempo 500000 us per beat
    if channel != 9:
        body += b"\x00" + bytes([0xC0 | channel, program])
    body += b"\x00" + bytes([0xB0 | channel, 7, 110])  # channel volume
    now = 0
    for t, _, msg in events:
        body += _vlq(t - now) + msg
        now = t
    last = max(now, tick(end) if end is not None else now)
    body += _vlq(last - now) + b"\xff\x2f\x00"
    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big") + (480).to_bytes(2, "big")
    Path(path).write_bytes(header + b"MTrk" + len(body).to_bytes(4, "big") + bytes(body))


def render_gm(
    notes: Iterable[GMNote],
    program: int,
    path: str | os.PathLike,
    *,
    sample_rate: int = 22050,
    gain: float = 0.6,
    seconds: float | None = None,
    soundfont: str | os.PathLike | None = None,
) -> Path:
    """Render ``notes`` on GM ``program`` (or ``GM_DRUMS``) to the WAV file ``path`` with fluidsynth.

    The output is 16-bit stereo at ``sample_rate``; ``seconds`` fixes its length
    (default: until the last note has rung out). Raises
    UserError naming the install command when fluidsynth or the SoundFont is missing.
    """
    import subprocess
    import tempfile

    notes = list(notes)
    reason = fluidsynth_missing(soundfont)
    if reason:
        raise UserError(f"cannot render GM audio: {reason}")
    end = seconds if seconds is not None else max((n.start + n.duration for n in notes), default=0.0) + 1.0
    out = Path(path)
    with tempfile.TemporaryDirectory(prefix="soundalike-gm-") as tmp:
        mid = Path(tmp) / "phrase.mid"
        write_midi(notes, program, mid, end=end)
        cmd = ["fluidsynth", "-n", "-i", "-q", "-g", str(gain), "-r", str(int(sample_rate)),
               "-T", "wav", "-O", "s16", "-F", str(out), str(soundfont or GM_SOUNDFONT), str(mid)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 or not out.is_file() or out.stat().st_size <= 44:
        raise UserError(f"fluidsynth failed to render {out}: {(proc.stderr or proc.stdout).strip()[:300]}")
    if seconds is not None:  # fluidsynth lets voices ring out past the end: cut to length
        import wave

        with wave.open(str(out), "rb") as w:
            params, frames = w.getparams(), w.readframes(int(round(seconds * w.getframerate())))
        with wave.open(str(out), "wb") as w:
            w.setparams(params)
            w.writeframes(frames)
    return out


def gm_phrase(*, seconds: float, seed: int, drums: bool = False) -> list[GMNote]:
    """A deterministic phrase of ``seconds``: chords, bass and a melody, or a drum groove.

    The seed picks tempo, key, mode, progression and whether chords are held or
    arpeggiated, so clips with the same instrument still differ musically.
    """
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x6D])
    bpm = float(rng.uniform(78, 132))
    beat = 60.0 / bpm
    bar = 4 * beat
    n_bars = int(np.ceil(seconds / bar))
    notes: list[GMNote] = []
    if drums:
        kick = rng.random(8) < [0.95, 0.1, 0.25, 0.2, 0.6, 0.15, 0.35, 0.2]
        snare = rng.random(8) < [0, 0.05, 0.95, 0.1, 0, 0.1, 0.95, 0.25]
        ride = 51 if rng.random() < 0.3 else 42  # ride cymbal or closed hi-hat
        for b in range(n_bars):
            for i in range(8):
                t = b * bar + i * beat / 2
                if t >= seconds:
                    break
                if kick[i]:
                    notes.append(GMNote(36, t, 0.2, 110))
                if snare[i] or (b % 4 == 3 and i >= 6):
                    notes.append(GMNote(38, t, 0.2, 100))
                notes.append(GMNote(ride, t, 0.1, int(70 + 30 * rng.random())))
            if b % 4 == 0:
                notes.append(GMNote(49, b * bar, 1.0, 90))  # crash on the phrase start
        return notes
    root = int(rng.integers(48, 60))
    scale = _SCALES["major" if rng.random() < 0.5 else "minor"]
    prog = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    arpeggio = bool(rng.random() < 0.5)
    for b in range(n_bars):
        t0 = b * bar
        deg = prog[b % len(prog)]
        chord = [_degree_midi(root, scale, deg + k) for k in (0, 2, 4)]
        if arpeggio:
            for i in range(8):
                notes.append(GMNote(chord[i % 3] + 12 * (i // 3 % 2), t0 + i * beat / 2, beat / 2 * 0.95, 80))
        else:
            notes.extend(GMNote(p, t0, bar * 0.98, 72) for p in chord)
        notes.append(GMNote(chord[0] - 12, t0, bar * 0.9, 84))
        motif = rng.integers(-2, 5, size=4)
        for i in range(4):
            if rng.random() < 0.8:
                p = _degree_midi(root + 12, scale, deg + int(motif[i]))
                notes.append(GMNote(p, t0 + i * beat, beat * 0.9, int(90 + 20 * rng.random())))
    return [n for n in notes if n.start < seconds]


def render_gm_family(family: str, path: str | os.PathLike, *, seconds: float, seed: int, sample_rate: int = 22050) -> int:
    """Render a ``seconds`` phrase on one of ``GM_FAMILIES[family]`` (chosen by seed); returns the program."""
    if family not in GM_FAMILIES:
        raise UserError(f"unknown instrument family {family!r}; known: {', '.join(GM_FAMILIES)}")
    programs = GM_FAMILIES[family]
    program = programs[int(seed) % len(programs)]
    notes = gm_phrase(seconds=seconds, seed=seed, drums=program == GM_DRUMS)
    render_gm(notes, program, path, sample_rate=sample_rate, seconds=seconds)
    return program
