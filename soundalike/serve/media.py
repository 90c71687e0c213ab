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


def open_catalogue_file(
    path: str, *, size: int, mtime: float, roots: list | None = None, follow_links: bool = False
) -> OpenedAudio:
    """Open a catalogue file for streaming, refusing anything but the file that was indexed.

    ``roots``: the library's indexed folders. Unless ``follow_links``, a path that leads out of them
    through a symbolic link is refused (indexing skips those by default; one indexed by an older
    version, or with --follow-links, is served only with the setting on).
    """
    if roots is not None and not follow_links:
        real = os.path.realpath(path)
        if real != path and not any(_inside(real, str(r)) for r in roots):
            raise NotServable("the file of this track is a symbolic link out of the indexed folders; not served "
                              "(SOUNDALIKE_FOLLOW_LINKS=1 serves it)")
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


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


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
          end: float | None = None, max_seconds: float | None = None) -> dict:
    """Waveform peaks for drawing: ``points`` (max |x|) values in 0..1 over the whole file, and its duration.

    Computed while decoding, in memory bounded by ``points`` whatever the length (``_Bins``): 7 hours of
    silence in a 4.8 MB FLAC took the server from 0.69 to 1.4 GB when every sample was kept.
    ``max_seconds``: refuse longer audio (``TooLongError``; see ``decode.stream``).
    """
    from ..decode import stream

    if not 16 <= points <= 10000:
        raise UserError("points: must be between 16 and 10000")
    bins = _Bins(points)
    for block in stream(source, sample_rate=sample_rate, start=start, end=end, max_seconds=max_seconds):
        bins.push(np.abs(block))
    n, p = bins.result()
    if n == 0:
        return {"duration": 0.0, "peaks": []}
    top = float(p.max()) or 1.0
    return {"duration": round(n / sample_rate, 3), "peaks": [round(float(v), 3) for v in p / top]}


class _Bins:
    """Running maxima of consecutive runs of ``size`` samples, ``size`` doubling whenever there are more
    than ``64 * points`` of them: at most ``64 * points`` floats, whatever the length, and in the end every
    output bin's edge within 1/32 of a bin of the exact sample (exact while the audio has fewer than
    ``64 * points`` samples)."""

    def __init__(self, points: int) -> None:
        self.points = points
        self.cap = 64 * points
        self.size = 1
        self.done: list[np.ndarray] = []  # maxima of complete runs, in order
        self.n_done = 0
        self.part_max = 0.0  # the run being filled
        self.part_n = 0

    def push(self, x: np.ndarray) -> None:
        if len(x) == 0:
            return
        if self.part_n:
            head = x[: self.size - self.part_n]
            self.part_max = max(self.part_max, float(head.max()))
            self.part_n += len(head)
            x = x[len(head) :]
            if self.part_n == self.size:
                self.done.append(np.array([self.part_max], np.float32))
                self.n_done += 1
                self.part_max, self.part_n = 0.0, 0
        k = len(x) // self.size
        if k:
            self.done.append(x[: k * self.size].reshape(k, self.size).max(axis=1))
            self.n_done += k
        rest = x[k * self.size :]
        if len(rest):
            self.part_max, self.part_n = float(rest.max()), len(rest)
        while self.n_done > self.cap:
            self._halve()

    def _halve(self) -> None:
        runs = np.concatenate(self.done)
        if len(runs) % 2:  # the odd run out joins the run being filled (it precedes it)
            self.part_max = max(self.part_max, float(runs[-1]))
            self.part_n += self.size
            runs = runs[:-1]
        self.done = [runs.reshape(-1, 2).max(axis=1)]
        self.n_done = len(self.done[0])
        self.size *= 2

    def result(self) -> tuple[int, np.ndarray]:
        """(samples seen, ``min(points, samples)`` maxima over equal spans of them)."""
        runs = np.concatenate(self.done) if self.done else np.zeros(0, np.float32)
        n = self.n_done * self.size + self.part_n
        if self.part_n:
            runs = np.append(runs, np.float32(self.part_max))
        if n == 0:
            return 0, np.zeros(0, np.float32)
        m = min(self.points, n)
        edges = np.linspace(0, n, m + 1).astype(np.int64)
        starts = np.arange(len(runs), dtype=np.int64) * self.size
        out = np.zeros(m, np.float32)
        np.maximum.at(out, np.searchsorted(edges, starts, side="right") - 1, runs)
        return n, out
