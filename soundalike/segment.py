"""Cut audio into model windows and mark the ones worth embedding. Pure numpy.

Windows have the model's native length and start every ``hop`` seconds. The
tail of a track is covered by one extra window aligned to its end, and a clip
shorter than one window is repeat-padded (musicnn cannot take less than 3 s).
A window whose level is below ``silence_db`` (dBFS RMS) is non-informative:
it is stored but never embedded, indexed or allowed to vote.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from .errors import UserError

DEFAULT_SILENCE_DB = -55.0


@dataclass(frozen=True)
class WindowBatch:
    """Consecutive windows of one source: starts/ends in seconds, samples (n, window_samples)."""

    starts: np.ndarray
    ends: np.ndarray
    samples: np.ndarray
    level_db: np.ndarray
    informative: np.ndarray


def level_db(windows: np.ndarray) -> np.ndarray:
    """RMS level of each row in dBFS (floored at -120)."""
    rms = np.sqrt(np.mean(np.square(windows, dtype=np.float64), axis=-1))
    return (20.0 * np.log10(np.maximum(rms, 1e-6))).astype(np.float32)


def repeat_pad(x: np.ndarray, n: int) -> np.ndarray:
    if len(x) >= n:
        return x[:n]
    if len(x) == 0:
        return np.zeros(n, np.float32)
    return np.tile(x, -(-n // len(x)))[:n]


def window_starts(n_samples: int, *, window: int, hop: int) -> np.ndarray:
    """Start sample of every window for a signal of n_samples."""
    if n_samples <= window:
        return np.zeros(1, np.int64)
    starts = np.arange(0, n_samples - window + 1, hop, dtype=np.int64)
    if n_samples - (starts[-1] + window) > hop // 2:
        starts = np.append(starts, n_samples - window)
    return starts


def check_hop(hop: float, window_seconds: float) -> None:
    if not (0 < hop <= window_seconds * 4):
        raise UserError(f"hop: must be between 0 and {window_seconds * 4:g} seconds, got {hop:g}")


def windows(
    blocks: Iterable[np.ndarray],
    *,
    sample_rate: int,
    window_seconds: float,
    hop_seconds: float,
    silence_db: float = DEFAULT_SILENCE_DB,
    time_offset: float = 0.0,
    max_windows: int = 64,
) -> Iterator[WindowBatch]:
    """Turn a stream of sample blocks into batches of at most ``max_windows`` windows.

    Memory stays bounded by one block plus one batch whatever the track length.
    """
    check_hop(hop_seconds, window_seconds)
    win = int(round(window_seconds * sample_rate))
    hop = max(1, int(round(hop_seconds * sample_rate)))
    buf = np.zeros(0, np.float32)
    consumed = 0  # absolute sample index of buf[0]
    next_start = 0
    pending: list[tuple[int, np.ndarray]] = []
    last_start = -1

    def flush(items: list[tuple[int, np.ndarray]], real_len: int | None = None) -> WindowBatch:
        starts = np.array([s for s, _ in items], np.int64)
        samples = np.stack([w for _, w in items]).astype(np.float32, copy=False)
        ends = starts + win if real_len is None else np.minimum(starts + win, real_len)
        lv = level_db(samples)
        return WindowBatch(
            starts=starts / sample_rate + time_offset,
            ends=ends / sample_rate + time_offset,
            samples=samples,
            level_db=lv,
            informative=lv > silence_db,
        )

    total = 0
    for block in blocks:
        total += len(block)
        buf = np.concatenate([buf, np.asarray(block, np.float32)])
        while next_start + win <= consumed + len(buf):
            a = next_start - consumed
            pending.append((next_start, buf[a : a + win].copy()))
            last_start = next_start
            next_start += hop
            if len(pending) >= max_windows:
                yield flush(pending)
                pending = []
        drop = max(0, min(next_start, total - win) - consumed)
        if drop:
            buf = buf[drop:]
            consumed += drop
    # tail: a window aligned to the end, or a repeat-padded short clip
    if total == 0:
        return
    if total < win:
        pending.append((0, repeat_pad(buf, win)))
        yield flush(pending, real_len=total)
        return
    if total - (last_start + win) > hop // 2:
        a = total - win - consumed
        pending.append((total - win, buf[a : a + win].copy()))
    if pending:
        yield flush(pending)
