"""Decode: a path, file object or bytes -> mono float32 at a requested rate.

Why PyAV: its wheels bundle FFmpeg, so every common format (MP3, WAV, FLAC,
AIFF, AAC/M4A, Ogg Vorbis, Opus, ...) decodes with no system dependency and
no subprocess. Why soxr: a fast, high-quality resampler with a streaming API
(``soxr.ResampleStream``), so a two-hour file is decoded, downmixed and
resampled block by block and never sits in memory at once.

Public API (options are keyword-only):

- ``probe(source) -> AudioInfo``: container metadata, without decoding.
- ``stream(source, *, sample_rate, start=None, end=None, block_seconds=20.0)``:
  an iterator of consecutive mono float32 blocks.
- ``decode(source, *, sample_rate, start=None, end=None) -> Audio``.

Channels are downmixed by averaging. ``start``/``end`` seek in the container
and then trim to the exact sample (at the file's own rate, before resampling).

Every failure is a ``DecodeError(path, reason)`` with a short reason; no
``av.error.*`` exception escapes. A file that decodes for a while and then
breaks (a truncated download) returns what decoded and logs a warning; a file
whose audio data is bad from the start raises.

Non-finite samples (NaN or infinity, which float WAV and AIFF-C can hold
and a damaged float file often does) raise ``DecodeError`` naming the
time of the first one: no later stage (levels, mel, the catalogue) can use
them, and silently zeroing them would index a different recording than the
file holds. Indexing records the error for that file and goes on.
"""

from __future__ import annotations

import io
import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Union

import numpy as np

from .errors import DecodeError, QueryError, TooLongError, UserError
from .types import Audio

__all__ = ["AudioInfo", "Source", "probe", "stream", "decode", "RESAMPLE_QUALITY", "MAX_SECONDS"]

log = logging.getLogger(__name__)

Source = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]

# soxr quality. Measured by bench/decode.py (44.1 kHz -> 16 kHz): soxr alone
# runs ~3000x realtime at "HQ" (20-bit) and ~2450x at "VHQ" (28-bit), but
# end to end decoding dominates (2 h FLAC: 405x vs 388x realtime per CPU), so
# the choice barely matters; HQ's precision is far beyond what a mel front end
# resolves.
RESAMPLE_QUALITY = "HQ"

#: the latest ``start``/``end`` accepted, in seconds (about 116 days: beyond any file, and far from
#: overflowing a 64-bit sample index at any rate)
MAX_SECONDS = 1e7

# Demuxers FFmpeg uses for images and text; a file they claim is not audio.
_NOT_AUDIO_FORMATS = {"tty", "image2", "image2pipe", "srt", "webvtt", "ass", "lrc", "mpl2", "subviewer", "jacosub"}
# Seconds decoded before a seek target with lossy codecs, then discarded.
_PREROLL = 0.5
_LOSSLESS = {"flac", "alac", "wavpack", "tta", "ape", "mlp", "truehd"}
# After this many consecutive undecodable packets, stop.
_MAX_BAD_PACKETS = 8


@dataclass(frozen=True)
class AudioInfo:
    """What the container says about its first audio stream.

    ``duration`` is in seconds and may be an estimate (from the stream header,
    or the bit rate for some MP3s); ``None`` when the container cannot tell.
    """

    duration: float | None
    sample_rate: int
    channels: int
    codec: str
    format: str
    bit_rate: int | None


# --------------------------------------------------------------------------
# opening sources
# --------------------------------------------------------------------------


# Tracker modules (MOD, XM, IT, S3M...): FFmpeg reads them only through libopenmpt, which PyAV's bundled FFmpeg
# is built without; with a PyAV that has it they decode like any audio file (``tracker_support``).
TRACKER_EXTENSIONS = frozenset(".mod .xm .it .s3m .mptm .mo3 .umx .669 .mtm .stm".split())
TRACKER_REASON = ("tracker module: PyAV's FFmpeg has no libopenmpt to read it; render it to WAV or FLAC first "
                  "(openmpt123 --render FILE)")


def tracker_support() -> bool:
    """Whether PyAV's FFmpeg reads tracker modules (it has the libopenmpt demuxer)."""
    import av

    return "libopenmpt" in av.formats_available


def _label(source: Source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(os.fspath(source))
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    return "<file>"


def _reason(exc: BaseException) -> str:
    """A short human reason for an av/OS exception."""
    import av

    if isinstance(exc, av.error.InvalidDataError):
        return "not an audio file or unsupported format"
    if isinstance(exc, (av.error.DecoderNotFoundError, av.error.DemuxerNotFoundError)):
        return "unsupported format (no decoder in this FFmpeg build)"
    if isinstance(exc, av.error.EOFError):
        return "unexpected end of file"
    if isinstance(exc, (av.error.PermissionError, PermissionError)):
        return "permission denied"
    if isinstance(exc, (av.error.FileNotFoundError, FileNotFoundError)):
        return "file not found"
    if isinstance(exc, (av.error.IsADirectoryError, IsADirectoryError)):
        return "is a directory"
    msg = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return msg.split(";")[0].strip()[:120]


def _open(source: Source):
    """Open ``source`` with PyAV: returns (container, audio stream, label)."""
    import av

    label = _label(source)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise DecodeError(label, "file not found")
        if os.path.isdir(path):
            raise DecodeError(label, "is a directory")
        if os.path.getsize(path) == 0:
            raise DecodeError(label, "file is empty")
        target: object = path
    elif isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise DecodeError(label, "file is empty")
        target = io.BytesIO(bytes(source))
    elif hasattr(source, "read"):
        target = source
        if _is_empty(source):
            raise DecodeError(label, "file is empty")
    else:
        raise UserError(f"cannot decode a {type(source).__name__}: pass a path, bytes or a binary file object")

    try:
        container = av.open(target, mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, ValueError, TypeError) as exc:
        if isinstance(exc, (av.error.PermissionError, PermissionError)):
            raise DecodeError(label, "permission denied") from exc
        kind = _sniff(target)
        if kind:  # it starts like an audio file FFmpeg knows, so it is damaged
            raise DecodeError(label, f"corrupt or truncated {kind} file") from exc
        if os.path.splitext(label)[1].lower() in TRACKER_EXTENSIONS:
            raise DecodeError(label, TRACKER_REASON) from exc
        raise DecodeError(label, "not an audio file") from exc
    if not container.streams.audio:
        fmt = container.format.name
        has_video = any(s.type == "video" for s in container.streams)
        container.close()
        if fmt in _NOT_AUDIO_FORMATS or fmt.endswith("_pipe") or not has_video:
            raise DecodeError(label, "not an audio file")
        raise DecodeError(label, "no audio stream")
    return container, container.streams.audio[0], label


def _sniff(target: object) -> str | None:
    """Name the audio format ``target``'s first bytes announce, if any."""
    try:
        if isinstance(target, str):
            with open(target, "rb") as f:
                head = f.read(16)
        else:
            target.seek(0)  # type: ignore[attr-defined]
            head = target.read(16)  # type: ignore[attr-defined]
    except (OSError, AttributeError, ValueError):
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "WAV"
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:4] == b"OggS":
        return "Ogg"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "AIFF"
    if head[4:8] == b"ftyp":
        return "MP4/M4A"
    if head[:3] == b"ID3":  # a bare MPEG sync word is too common in random data to count
        return "MP3"
    return None


def _is_empty(f: BinaryIO) -> bool:
    try:
        pos = f.tell()
        f.seek(0, io.SEEK_END)
        size = f.tell()
        f.seek(pos)
        return size - pos <= 0
    except (OSError, AttributeError, ValueError):
        return False  # not seekable: let FFmpeg find out


def _stream_duration(container, st) -> float | None:
    if st.duration is not None and st.time_base is not None and st.duration > 0:
        return float(st.duration * st.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / 1_000_000.0
    return None


def probe(source: Source) -> AudioInfo:
    """Read the container header of ``source`` and describe its first audio stream."""
    container, st, _ = _open(source)
    try:
        cc = st.codec_context
        bit_rate = st.bit_rate or cc.bit_rate or container.bit_rate or None
        return AudioInfo(
            duration=_stream_duration(container, st),
            sample_rate=int(cc.sample_rate or st.rate or 0),
            channels=int(cc.channels),
            codec=cc.name,
            format=container.format.name,
            bit_rate=int(bit_rate) if bit_rate else None,
        )
    finally:
        container.close()


# --------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------

_SCALE = {"u8": 1 / 128.0, "s16": 1 / 32768.0, "s32": 1 / 2147483648.0, "s64": 1 / 9223372036854775808.0}


def _mono(a: np.ndarray, fmt: str, n_ch: int, side: bool = False):
    """The ``to_ndarray()`` of a batch of frames of one sample format and channel count -> mono
    float32 by averaging channels.

    Frames are downmixed in batches: per frame, the handful of numpy calls cost
    more than the codec's own decoding. Channels are summed with one strided add
    per channel (much faster than ``mean(axis=...)`` over a (channels, n) view),
    then scaled once. With ``side``, returns (mono, side) where side is
    (left - right) / 2 for two channels and None otherwise.
    """
    planar = fmt.endswith("p")
    base = fmt[:-1] if planar else fmt
    if planar:
        chans = [a[c] for c in range(a.shape[0])]
    else:
        flat = a.reshape(-1)  # packed: interleaved samples
        chans = [flat[c::n_ch] for c in range(n_ch)]
    x = chans[0].astype(np.float32)  # always a fresh array: safe to accumulate into
    for c in chans[1:]:
        x += c
    scale = _SCALE.get(base, 1.0) / len(chans)
    s = None
    if side and len(chans) == 2:
        s = chans[0].astype(np.float32)  # float32 in place: int32 - float32 would give float64
        s -= chans[1]  # the u8 offsets cancel
        s *= np.float32(scale)
    if base == "u8":
        x -= 128.0 * len(chans)
    if scale != 1.0:
        x *= np.float32(scale)
    return (x, s) if side else x


#: decoded frames are downmixed and resampled this many samples at a time (at the file's rate)
_BATCH_SAMPLES = 16384


class _Resampler:
    """soxr streaming resampler that copes with the input rate changing mid-file."""

    def __init__(self, out_rate: int):
        self.out_rate = out_rate
        self.in_rate: int | None = None
        self._rs = None

    def push(self, x: np.ndarray, in_rate: int) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        if in_rate != self.in_rate:
            out.extend(self.flush())
            self.in_rate = in_rate
            if in_rate != self.out_rate:
                import soxr

                self._rs = soxr.ResampleStream(in_rate, self.out_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY)
        if self._rs is None:
            out.append(x)
        elif len(x):
            out.append(self._rs.resample_chunk(x, last=False))
        return out

    def flush(self) -> list[np.ndarray]:
        if self._rs is None:
            return []
        y = self._rs.resample_chunk(np.zeros(0, np.float32), last=True)
        self._rs = None
        return [y]


def _validate(sample_rate: int, start: float | None, end: float | None, block_seconds: float) -> None:
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise UserError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    for name, v in (("start", start), ("end", end)):
        if v is not None and not 0 <= v <= MAX_SECONDS:  # NaN fails too
            raise UserError(f"{name} must be a number of seconds from 0 to {MAX_SECONDS:g}, got {v!r}")
    if start is not None and end is not None and end <= start:
        raise UserError(f"end ({end} s) must be after start ({start} s)")
    if not block_seconds > 0:
        raise UserError(f"block_seconds must be positive, got {block_seconds!r}")


def stream(
    source: Source,
    *,
    sample_rate: int,
    start: float | None = None,
    end: float | None = None,
    block_seconds: float = 20.0,
    side: Callable[[np.ndarray], None] | None = None,
    max_seconds: float | None = None,
) -> Iterator[np.ndarray]:
    """Yield consecutive mono float32 blocks of ``source`` at ``sample_rate``.

    Every block but the last has exactly ``round(block_seconds * sample_rate)``
    samples. ``side``: for a two-channel source, called with the side signal
    (left - right) / 2, resampled the same way, in order and always ahead of
    the mono blocks (the same samples, in chunks of other sizes), so that
    mid and side together give both channels (descriptors.py measures
    loudness and true peak per channel from them); never called otherwise. The source is opened (and arguments checked) before this returns,
    so a missing or non-audio file raises ``DecodeError`` at the call; decoding
    errors and ``QueryError`` (``start`` past the end) surface while iterating.

    ``max_seconds``: refuse audio (or the ``start``..``end`` range of it) longer
    than this with ``TooLongError``: at the call when the header says so, else
    as soon as that much has decoded (a header may lie, or not know), so a
    small file that decodes to hours (silence compresses to nothing) costs
    at most ``max_seconds`` of decoding.
    """
    return open_stream(source, sample_rate=sample_rate, start=start, end=end, block_seconds=block_seconds,
                       side=side, max_seconds=max_seconds)[1]


def open_stream(
    source: Source,
    *,
    sample_rate: int,
    start: float | None = None,
    end: float | None = None,
    block_seconds: float = 20.0,
    side: Callable[[np.ndarray], None] | None = None,
    max_seconds: float | None = None,
) -> tuple[float | None, Iterator[np.ndarray]]:
    """``stream``, with the length in seconds it will yield as the container tells it before
    decoding (``AudioInfo.duration`` cut to ``start``..``end``; an estimate; None when unknown)."""
    _validate(sample_rate, start, end, block_seconds)
    if max_seconds is not None and not max_seconds > 0:
        raise UserError(f"max_seconds must be positive, got {max_seconds!r}")
    container, st, label = _open(source)
    total = _stream_duration(container, st)
    length = None
    if total is not None:
        length = max(0.0, min(total, total if end is None else end) - (start or 0.0))
    if max_seconds is not None and length is not None and length > max_seconds + 1.0:  # a second's grace: headers round
        container.close()
        raise TooLongError(label, f"{_hours(length)} of audio; the limit is {_hours(max_seconds)}")
    blocks = _generate(container, st, label, int(sample_rate), start, end, block_seconds, side)
    return length, (blocks if max_seconds is None else _capped(blocks, label, int(sample_rate), max_seconds))


def _capped(blocks: Iterator[np.ndarray], label: str, sample_rate: int, max_seconds: float) -> Iterator[np.ndarray]:
    limit = int(max_seconds * sample_rate) + sample_rate  # the same grace as for the header
    n = 0
    try:
        for b in blocks:
            n += len(b)
            if n > limit:
                raise TooLongError(label, f"more than {_hours(max_seconds)} of audio; the limit is {_hours(max_seconds)}")
            yield b
    finally:
        blocks.close()


def _hours(seconds: float) -> str:
    """``seconds`` for a message: '7.0 h', '12.5 min', '40 s'."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


class _Progress:
    """How far decoding got, in seconds of the file (for error messages)."""

    def __init__(self) -> None:
        self.position = 0.0
        self.decoded_any = False


def _generate(container, st, label, sample_rate, start, end, block_seconds, side=None) -> Iterator[np.ndarray]:
    block_len = max(int(round(block_seconds * sample_rate)), 1)
    resampler = _Resampler(sample_rate)
    side_resampler = _Resampler(sample_rate) if side is not None else None
    progress = _Progress()
    pending: list[np.ndarray] = []
    n_pending = 0
    produced = 0

    def take(chunks: list[np.ndarray]) -> Iterator[np.ndarray]:
        nonlocal n_pending, produced
        for c in chunks:
            if len(c):
                _check_finite(c, label)  # finite in, infinite out: an overflow in the resampler
                pending.append(c)
                n_pending += len(c)
        if n_pending < block_len:
            return
        buf = np.concatenate(pending) if len(pending) > 1 else pending[0]
        i = 0
        while n_pending - i >= block_len:
            yield buf[i : i + block_len]
            i += block_len
            produced += block_len
        rest = buf[i:]
        pending[:] = [rest] if len(rest) else []
        n_pending = len(rest)

    expected = _stream_duration(container, st)
    try:
        # the side signal is resampled in batches (per-call overhead dominates with small frames),
        # always brought up to date before a mono block is yielded
        side_batch: list[np.ndarray] = []
        side_rate = side_n = 0

        def flush_side() -> None:
            nonlocal side_n
            if side_batch:
                for c in side_resampler.push(np.concatenate(side_batch), side_rate):
                    _check_finite(c, label)
                    side(c)
                side_batch.clear()
                side_n = 0

        native_s = float(start or 0.0)  # where x starts, in seconds of the file
        for x, rate, s in _native(container, st, label, start, end, progress, seek=bool(start), side=side is not None):
            _check_finite(x, label, at=native_s, rate=rate)
            native_s += len(x) / rate
            out = resampler.push(x, rate)
            if s is not None:
                if rate != side_rate:
                    flush_side()
                    side_rate = rate
                side_batch.append(s)
                side_n += len(s)
                if side_n >= rate or n_pending + sum(map(len, out)) >= block_len:
                    flush_side()
            yield from take(out)
        if side_resampler is not None:
            flush_side()
            for c in side_resampler.flush():
                _check_finite(c, label)
                side(c)
        yield from take(resampler.flush())
        if n_pending:
            yield np.concatenate(pending)
            produced += n_pending
        if produced == 0:
            if start:
                duration = progress.position if progress.decoded_any else (expected or 0.0)
                raise QueryError(f"{label}: start {start:.3f} s is beyond the end of the audio ({duration:.3f} s)")
            if expected and expected > 0.1 and not progress.decoded_any:
                raise DecodeError(label, f"corrupt data: nothing decodes (the header promises {expected:.1f} s)")
            raise DecodeError(label, "no audio samples")
        if start is None and end is None and expected and progress.position < 0.95 * expected - 0.5:
            log.warning(
                "%s: decoded %.1f s of the %.1f s the header promises (truncated file?)",
                label,
                progress.position,
                expected,
            )
    finally:
        container.close()


def _check_finite(x: np.ndarray, label: str, *, at: float | None = None, rate: int = 0) -> None:
    """Raise ``DecodeError`` if ``x`` holds NaN or inf; ``x[0]`` is ``at`` seconds into the output and
    ``rate`` its sample rate (None: position unknown, as for the resampled output, whose filter smears a bad
    sample over a few ms; the file's own samples are checked first, with their exact time).

    About 0.1 ms per 20 s block at 16 kHz: a rounding error next to decoding.
    """
    ok = np.isfinite(x)
    if ok.all():
        return
    i = int(np.argmin(ok))
    what = "NaN" if np.isnan(x[i]) else "infinite"
    where = f" at {at + i / rate:.3f} s" if at is not None and rate else ""
    raise DecodeError(label, f"{what} sample{where} (damaged float audio)")


def _native(
    container, st, label, start, end, progress: _Progress, *, seek: bool, side: bool = False
) -> Iterator[tuple[np.ndarray, int, np.ndarray | None]]:
    """Mono float32 chunks at the file's own rate, trimmed to [start, end).

    Yields (samples, rate, side samples or None; see ``_mono``). Positions are counted in samples from the first
    decoded frame (time 0, or the timestamp of the frame a seek landed on,
    relative to the stream's start time) rather than read from every frame,
    so chunks never overlap or leave gaps.
    """
    import av

    # Position of the next frame: sample index n at rate r. Counting integer
    # samples (and rounding start/end to samples the same way every time)
    # keeps the trim exact over hours of audio.
    n, r = 0, 0
    t_seek: float | None = None
    pos = 0.0
    start_s = start or 0.0
    t_origin = float(st.start_time * st.time_base) if st.start_time is not None and st.time_base else 0.0
    position_known = True
    if seek:
        # Lossy decoders need a little audio before the target to warm up (MP3's
        # bit reservoir, MDCT overlap, Opus pre-roll): seek early, trim later.
        target = start_s - (0.0 if _is_lossless(st.codec_context.name) else _PREROLL)
        if target > 0:
            position_known = not _seek(container, st, target)

    # consecutive frames of one rate, format and channel count, gathered in FFmpeg's own FIFO and
    # downmixed together (one array per batch: a to_ndarray per frame cost more than decoding);
    # n counts the samples before them
    batch = None
    batch_key = None
    batch_n = 0

    def emit() -> Iterator[tuple[np.ndarray, int, np.ndarray | None]]:
        nonlocal n, batch_n
        samples = batch.read().to_ndarray()
        x, sd = _mono(samples, *batch_key[1:], side=True) if side else (_mono(samples, *batch_key[1:]), None)
        batch_n = 0
        a, b = 0, len(x)
        if start:
            a = min(max(int(round(start * r)) - n, 0), len(x))
        if end is not None:
            b = min(b, max(int(round(end * r)) - n, 0))
        n += len(x)
        if b > a:
            yield x[a:b], r, (None if sd is None else sd[a:b])

    bad = 0
    packets = container.demux(st)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.error.FFmpegError as exc:  # broken container structure
            if progress.decoded_any:
                log.warning("%s: stopped at %.1f s: %s (truncated or corrupt file)", label, pos, _reason(exc))
                break
            raise DecodeError(label, f"corrupt or truncated data at {pos:.1f} s") from exc
        try:
            frames = packet.decode()
        except (av.error.InvalidDataError, av.error.EOFError, av.error.UndefinedError, ValueError) as exc:
            bad += 1
            if bad >= _MAX_BAD_PACKETS:
                if progress.decoded_any:
                    log.warning("%s: stopped at %.1f s: corrupt data (truncated or damaged file)", label, pos)
                    break
                raise DecodeError(label, f"corrupt or truncated data at {pos:.1f} s") from exc
            continue
        except av.error.FFmpegError as exc:
            if progress.decoded_any:
                log.warning("%s: stopped at %.1f s: %s", label, pos, _reason(exc))
                break
            raise DecodeError(label, f"cannot decode audio: {_reason(exc)}") from exc
        for frame in frames:
            if frame.samples == 0:
                continue
            bad = 0
            rate = int(frame.sample_rate)
            if not position_known:
                t = None if frame.time is None else float(frame.time) - t_origin
                if t is None or t > start_s + 1e-6:
                    # no timestamp, or the seek overshot: decode from the top instead
                    log.debug("%s: inexact seek, decoding from the start", label)
                    container.seek(0, stream=st)
                    yield from _native(container, st, label, start, end, progress, seek=False, side=side)
                    return
                t_seek = max(t, 0.0)
                position_known = True
            key = (rate, frame.format.name, frame.layout.nb_channels or 1)
            if batch_n and key != batch_key:
                yield from emit()
            if key != batch_key:
                batch, batch_key = av.AudioFifo(), key
            if rate != r:
                if t_seek is not None:
                    n = int(round(t_seek * rate))
                    t_seek = None
                elif r:
                    n = int(round(n * rate / r))
                r = rate
            frame.pts = None  # positions are counted here; the FIFO would check them against its own count
            batch.write(frame)
            batch_n += frame.samples
            progress.decoded_any = True
            pos = (n + batch_n) / r
            progress.position = pos
            if end is not None and pos >= end:
                yield from emit()
                return
            if batch_n >= _BATCH_SAMPLES:
                yield from emit()
    if batch_n:
        yield from emit()
    if not progress.decoded_any and bad:
        raise DecodeError(label, "corrupt or truncated data at 0.0 s")


def _is_lossless(codec: str) -> bool:
    return codec.startswith("pcm_") or codec in _LOSSLESS


def _seek(container, st, t: float) -> bool:
    """Seek to a keyframe at or before ``t`` seconds; False if the container cannot."""
    import av

    if st.time_base is None:
        return False
    try:
        offset = int(math.floor(t / st.time_base))
        if st.start_time:
            offset += st.start_time
        container.seek(offset, stream=st, backward=True, any_frame=False)
        return True
    except (av.error.FFmpegError, OverflowError, ValueError):
        try:
            container.seek(0, stream=st)
        except av.error.FFmpegError:
            pass
        return False


def decode(source: Source, *, sample_rate: int, start: float | None = None, end: float | None = None) -> Audio:
    """Decode ``source`` (or ``[start, end)`` of it) to mono float32 ``Audio`` at ``sample_rate``."""
    label = _label(source)
    blocks = list(stream(source, sample_rate=sample_rate, start=start, end=end, block_seconds=60.0))
    samples = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    return Audio(samples=samples, sample_rate=int(sample_rate), source=label)
