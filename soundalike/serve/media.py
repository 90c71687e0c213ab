"""Serving audio: catalogue files with HTTP Range support, and waveform peaks.

Only files recorded in the catalogue are ever opened, found by track id; no
path from the client reaches the filesystem. A file is streamed only while it
is still the file that was indexed: it must be a regular file whose size and
modification time match the catalogue (checked on the opened descriptor), so
that a catalogue path later replaced by a symlink to another file, or by
another file, is refused.
"""

from __future__ import annotations

import mimetypes
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from ..errors import UserError

CHUNK = 256 * 1024
_TYPES = {
    ".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".oga": "audio/ogg", ".opus": "audio/ogg", ".flac": "audio/flac",
    ".wav": "audio/wav", ".m4a": "audio/mp4", ".aac": "audio/aac", ".aif": "audio/aiff", ".aiff": "audio/aiff",
    ".webm": "audio/webm", ".wma": "audio/x-ms-wma",
}


class NotServable(UserError):
    """A catalogue file that is gone or is no longer the file that was indexed."""


class RangeNotSatisfiable(UserError):
    def __init__(self, size: int) -> None:
        self.size = size
        super().__init__(f"range not satisfiable (the file has {size} bytes)")


@dataclass
class OpenedAudio:
    file: BinaryIO  # closed by read_range, or by the garbage collector if the response never starts
    size: int
    media_type: str


def open_catalogue_file(path: str, *, size: int, mtime: float) -> OpenedAudio:
    """Open a catalogue file for streaming, refusing anything but the file that was indexed."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - handed to the response, which closes it
    except OSError as exc:
        raise NotServable(f"the file of this track is not readable any more ({exc.strerror}); re-index it") from None
    try:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise NotServable("the file of this track is not a regular file any more; re-index it")
        if st.st_size != size or abs(st.st_mtime - mtime) > 1e-3:
            raise NotServable("the file of this track changed since it was indexed; re-index it")
    except BaseException:
        f.close()
        raise
    ext = os.path.splitext(path)[1].lower()
    media_type = _TYPES.get(ext) or mimetypes.guess_type(path)[0] or "application/octet-stream"
    return OpenedAudio(f, st.st_size, media_type)


_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """A single ``bytes=a-b`` range as (first, last) inclusive; None for no (or an ignorable) header."""
    if not header:
        return None
    m = _RANGE.match(header)
    if m is None:  # multiple ranges or another unit: serve the whole file, as RFC 9110 allows
        return None
    first, last = m.group(1), m.group(2)
    if first == "" and last == "":
        return None
    if first == "":  # suffix: the last N bytes
        n = int(last)
        if n == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - n), size - 1
    a = int(first)
    b = size - 1 if last == "" else min(int(last), size - 1)
    if a >= size or b < a:
        raise RangeNotSatisfiable(size)
    return a, b


def read_range(f: BinaryIO, first: int, last: int) -> Iterator[bytes]:
    """Bytes first..last (inclusive) of ``f`` in chunks; closes ``f`` at the end."""
    try:
        pos, remaining = first, last - first + 1
        while remaining > 0:
            chunk = os.pread(f.fileno(), min(CHUNK, remaining), pos)
            if not chunk:
                break
            pos += len(chunk)
            remaining -= len(chunk)
            yield chunk
    finally:
        f.close()


def peaks(source, *, points: int = 1000, sample_rate: int = 4000, start: float | None = None,
          end: float | None = None) -> dict:
    """Waveform peaks for drawing: ``points`` (max |x|) values in 0..1 over the whole file, and its duration."""
    from ..decode import stream

    if not 16 <= points <= 10000:
        raise UserError("points: must be between 16 and 10000")
    blocks = [np.abs(b) for b in stream(source, sample_rate=sample_rate, start=start, end=end)]
    x = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    duration = len(x) / sample_rate
    if len(x) == 0:
        return {"duration": 0.0, "peaks": []}
    n = min(points, len(x))
    edges = np.linspace(0, len(x), n + 1).astype(np.int64)
    p = np.maximum.reduceat(x, edges[:-1])
    top = float(p.max()) or 1.0
    return {"duration": round(duration, 3), "peaks": [round(float(v), 3) for v in p / top]}
