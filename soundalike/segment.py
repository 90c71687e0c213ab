"""Cut audio into model windows and mark the ones worth embedding. Pure numpy.

Windows have the model's native length and start every ``hop`` seconds. The
tail of a track is covered by one extra window aligned to its end, and a clip
shorter than one window (musicnn cannot take less than 3 s) is padded by
``pad_short``: a sound that dies away (a drum one-shot, an effect) is centred
in silence, so that it embeds as one hit and not as a loop of hits whose
rate depends on its length; a clip cut from the middle of something (a 2 s
excerpt of a song) is repeated, which keeps it nearer the catalogue's
windows of that song (docs/quality.md measures both). A window whose
level is below ``silence_db`` (dBFS RMS; a short clip's over its own
samples) is non-informative: it is stored but never embedded, indexed or
allowed to vote.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

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


FADE_DB = 20.0  # a short clip whose last 100 ms is this far below its loudest 100 ms dies away (``pad_short``)


def dies_away(x: np.ndarray, sample_rate: int) -> bool:
    """Whether a clip ends ``FADE_DB`` below its loudest 100 ms: a sound on its own, not a cut of something."""
    n = max(1, round(0.1 * sample_rate))
    if len(x) < 2 * n:
        return True
    lv = level_db(x[: len(x) // n * n].reshape(-1, n))
    return float(level_db(x[None, -n:])[0]) <= float(lv.max()) - FADE_DB


def pad_short(x: np.ndarray, n: int, sample_rate: int) -> np.ndarray:
    """A clip shorter than ``n`` samples made ``n`` long: centred in silence if it dies away, else repeated."""
    if len(x) >= n:
        return x[:n]
    if len(x) == 0:
        return np.zeros(n, np.float32)
    if not dies_away(x, sample_rate):
        return np.tile(x, -(-n // len(x)))[:n]
    out = np.zeros(n, np.float32)
    a = (n - len(x)) // 2
    out[a : a + len(x)] = x
    return out


def window_starts(n_samples: int, *, window: int, hop: int) -> np.ndarray:
    """Start sample of every window for a signal of n_samples."""
    if n_samples <= window:
        return np.zeros(1, np.int64)
    starts = np.arange(0, n_samples - window + 1, hop, dtype=np.int64)
    if n_samples - (starts[-1] + window) > hop // 2:
        starts = np.append(starts, n_samples - window)
    return starts


def coverage_indices(n_samples: int, *, window: int, hop: int, coverage: int) -> frozenset[int]:
    """Which windows a ``coverage`` of N keeps: at most N, evenly spaced over the dense sequence.

    Indices count the windows ``window_starts`` gives (the end-aligned tail is
    the last); the first and the last window are among them, or for N = 1 the
    middle one.
    """
    if coverage < 1:
        raise UserError(f"coverage: must be at least 1 window per track, got {coverage}")
    n = len(window_starts(n_samples, window=window, hop=hop))
    if coverage == 1:
        return frozenset({(n - 1) // 2})
    return frozenset(np.round(np.linspace(0, n - 1, min(n, coverage))).astype(int).tolist())


def check_hop(hop: float, window_seconds: float) -> None:
    if not (0 < hop <= window_seconds * 4):
        raise UserError(f"hop: must be between 0 and {window_seconds * 4:g} seconds, got {hop:g}")


def widened_hop(seconds: float | None, *, hop: float, window_seconds: float, max_windows: int) -> float:
    """The hop at which ``seconds`` of audio gives at most about ``max_windows`` windows: never narrower
    than ``hop`` nor wider than ``check_hop`` allows (4 windows), rounded up to 0.1 s. A query's cost
    then stays about the same whatever its length (search.py). ``seconds`` None or ``max_windows`` 0: ``hop``."""
    if not seconds or max_windows <= 1 or seconds <= window_seconds:
        return hop
    need = math.ceil((seconds - window_seconds) / (max_windows - 1) * 10) / 10
    return min(max(hop, need), window_seconds * 4)


def windows(
    blocks: Iterable[np.ndarray],
    *,
    sample_rate: int,
    window_seconds: float,
    hop_seconds: float,
    silence_db: float = DEFAULT_SILENCE_DB,
    time_offset: float = 0.0,
    max_windows: int = 64,
    keep: frozenset[int] | None = None,
) -> Iterator[WindowBatch]:
    """Turn a stream of sample blocks into batches of at most ``max_windows`` windows.

    Memory stays bounded by one block plus one batch whatever the track length.
    ``keep`` (from ``coverage_indices``) yields only those windows of the dense
    sequence; an end-aligned window stands in for any kept index the stream
    never reached, so a length estimate that was a little off still ends on
    the track's end.
    """
    check_hop(hop_seconds, window_seconds)
    win = int(round(window_seconds * sample_rate))
    hop = max(1, int(round(hop_seconds * sample_rate)))
    buf = np.zeros(0, np.float32)
    consumed = 0  # absolute sample index of buf[0]
    next_start = 0
    pending: list[tuple[int, np.ndarray]] = []
    last_start = -1
    index = 0  # of the next regular window in the dense sequence
    last_kept = -1

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
            if keep is None or index in keep:
                pending.append((next_start, buf[a : a + win].copy()))
                last_kept = next_start
            last_start = next_start
            next_start += hop
            index += 1
            if len(pending) >= max_windows:
                yield flush(pending)
                pending = []
        drop = max(0, min(next_start, total - win) - consumed)
        if drop:
            buf = buf[drop:]
            consumed += drop
    # tail: a window aligned to the end, or a short clip padded to one window
    if total == 0:
        return
    if total < win:
        pending.append((0, pad_short(buf[:total], win, sample_rate)))
        batch = flush(pending, real_len=total)
        lv = level_db(buf[None, :total])
        yield replace(batch, level_db=lv, informative=lv > silence_db)
        return
    if keep is None:
        end_window = total - (last_start + win) > hop // 2
    else:
        end_window = max(keep) >= index and total - win != last_kept
    if end_window:
        a = total - win - consumed
        pending.append((total - win, buf[a : a + win].copy()))
    if pending:
        yield flush(pending)
