"""Shared fixtures. Audio fixtures are real files encoded with PyAV from synthesised music."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from soundalike.cli import main
from soundalike.synth import encode, render_track

def cli(capsys, *args):
    """Run the ``soundalike`` command in-process: (exit code, stdout, stderr)."""
    old = sys.argv
    sys.argv = ["soundalike", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return code, out.out, out.err


# --------------------------------------------------------------------------
# audio
# --------------------------------------------------------------------------

CLIP_SECONDS = 3.0


@dataclass(frozen=True)
class FormatCase:
    id: str
    ext: str
    codec: str | None
    sample_rate: int
    channels: int
    lossless: bool


# Every format the decoder promises, at rates from 8 to 96 kHz and 1, 2 or 6 channels.
FORMAT_CASES = [
    FormatCase("wav-s16-44k-stereo", ".wav", None, 44100, 2, True),
    FormatCase("wav-s24-96k-mono", ".wav", "pcm_s24le", 96000, 1, True),
    FormatCase("wav-f32-8k-mono", ".wav", "pcm_f32le", 8000, 1, True),
    FormatCase("flac-48k-6ch", ".flac", None, 48000, 6, True),
    FormatCase("aiff-22k-stereo", ".aiff", None, 22050, 2, True),
    FormatCase("mp3-44k-stereo", ".mp3", None, 44100, 2, False),
    FormatCase("mp3-8k-mono", ".mp3", None, 8000, 1, False),
    FormatCase("m4a-44k-stereo", ".m4a", None, 44100, 2, False),
    FormatCase("m4a-48k-6ch", ".m4a", None, 48000, 6, False),
    FormatCase("ogg-vorbis-32k-stereo", ".ogg", None, 32000, 2, False),
    FormatCase("ogg-opus-48k-stereo", ".ogg", "libopus", 48000, 2, False),
    FormatCase("opus-16k-mono", ".opus", None, 16000, 1, False),
    FormatCase("opus-48k-6ch", ".opus", None, 48000, 6, False),
]
FORMATS = {c.id: c for c in FORMAT_CASES}


@dataclass(frozen=True)
class EncodedClip:
    """A file on disk and the mono signal (at ``case.sample_rate``) it was made from."""

    case: FormatCase
    path: Path
    signal: np.ndarray

    @property
    def sample_rate(self) -> int:
        return self.case.sample_rate


SYNTH_SR = 22050  # the rate of the ``tracks`` fixture


@pytest.fixture(scope="session")
def tracks():
    """Four 40 s synthesised tracks (seed -> samples at ``SYNTH_SR``), rendered once per session and only
    read; a module that needs others defines its own ``tracks``."""
    return {seed: render_track(seed, seconds=40, sample_rate=SYNTH_SR) for seed in range(4)}


def at(x: np.ndarray, sr: int) -> np.ndarray:
    """A ``tracks`` signal (or a cut of one) resampled from ``SYNTH_SR`` to ``sr``."""
    import soxr

    return soxr.resample(x.astype(np.float32), SYNTH_SR, sr).astype(np.float32)


def multichannel(x: np.ndarray, channels: int) -> np.ndarray:
    """(channels, n) with unequal channels whose average is exactly ``x``."""
    if channels == 1:
        return x
    w = np.linspace(0.6, 1.4, channels, dtype=np.float32)
    return w[:, None] * x[None, :]


@pytest.fixture(scope="session")
def encoded_audio(tmp_path_factory):
    """``encoded_audio(case_id) -> EncodedClip``: encode once per session, on demand."""
    folder = tmp_path_factory.mktemp("audio")
    made: dict[str, EncodedClip] = {}

    def make(case_id: str) -> EncodedClip:
        if case_id not in made:
            case = FORMATS[case_id]
            x = render_track(11, seconds=CLIP_SECONDS, sample_rate=case.sample_rate) * np.float32(0.6)
            path = folder / f"{case.id}{case.ext}"
            rate = encode(multichannel(x, case.channels), case.sample_rate, path, codec=case.codec, channels=case.channels)
            assert rate == case.sample_rate
            made[case_id] = EncodedClip(case, path, x)
        return made[case_id]

    return make


@pytest.fixture(params=["path", "file", "bytes"])
def source_kind(request):
    """Turn a path into each kind of source the decoder accepts (librosa-style)."""
    kind = request.param
    opened: list = []

    def as_source(path: Path):
        if kind == "path":
            return str(path)
        if kind == "bytes":
            return Path(path).read_bytes()
        f = open(path, "rb")  # noqa: SIM115 - closed at teardown
        opened.append(f)
        return f

    as_source.kind = kind  # type: ignore[attr-defined]
    yield as_source
    for f in opened:
        f.close()


def make_png() -> bytes:
    """A valid 8x8 RGB PNG, built by hand."""
    import struct
    import zlib

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    raw = b"".join(b"\x00" + bytes(range(24)) for _ in range(8))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def make_video_only(path: Path) -> Path:
    """A tiny MPEG-4 video with no audio stream."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), i * 40, np.uint8), format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


