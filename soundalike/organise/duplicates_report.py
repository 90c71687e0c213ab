"""The duplicate report: groups of copies, how each pair differs, and which file to keep.

``find_duplicates`` (soundalike/duplicates.py) gives pairs of tracks that are
one recording. This module turns them into what a library manager acts on,
from what the catalogue already holds (nothing is decoded):

* **groups**: the connected components of the pairs (a re-encode of a trim of
  X is in X's group even when the two copies were not paired directly);
* **relations** of each pair, measured, not guessed from names:

  - *re-encode*: the codecs, bitrates or channel layouts differ
    (bitrate = file size x 8 / duration);
  - *trim*: the shorter starts ``offset`` seconds into the longer (the
    windows' alignment), or ends before it, by more than ``TRIM_SECONDS``;
  - *level change*: the median difference of the aligned windows' levels
    (``segments.level_db``), when at least ``LEVEL_DB``;
  - *fade in / fade out*: a track's first or last window is quieter than its
    counterpart by ``FADE_DB`` more than the median difference;
  - *speed change*: the landmarks agree only once warped
    (``DuplicatePair.speed``): tempo in % and pitch in semitones, as a tape
    or resampling changes both together;

* **keep**: the best copy by ``KEEP_ORDER``: lossless over lossy, then the
  higher bitrate, then the longer (seconds of the recording it holds: a
  slowed-down copy is not longer), then the speed most copies share, then
  more channels, then the higher sample rate; the reason says which rule
  decided.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["CopyInfo", "Relation", "PairReport", "DuplicateGroup", "build_groups", "duplicate_report",
           "relation_of", "choose_keeper", "LOSSLESS_CODECS"]

LOSSLESS_CODECS = frozenset({"flac", "alac", "wavpack", "ape", "tta", "truehd", "mlp", "shorten"})
# thresholds of the relations (tests/test_duplicates_report.py makes each on real encodes)
TRIM_SECONDS = 0.75  # less than a quarter of a window's 3 s is alignment noise, not a trim
LEVEL_DB = 1.0  # a re-encode moves window levels by < 0.3 dB; a level change worth saying is 1 dB or more
FADE_DB = 3.0  # a 3 s linear fade lowers a 3 s window by 4.8 dB; a re-encode moves one edge window < 1 dB
SPEED_EPS = 0.002  # |speed - 1| below this is no speed change (0.2 %, the warp grid's rounding)
BITRATE_MARGIN = 0.1  # bitrates within 10 % are the same bitrate (container overhead, VBR)
KEEP_ORDER = ("lossless over lossy", "higher bitrate", "longer (more of the recording)",
              "at the speed most copies share",
              "more channels", "higher sample rate")


@dataclass(frozen=True)
class CopyInfo:
    """One file of a group, with what the keep rules read."""

    track_id: int
    path: str
    title: str | None
    duration: float
    codec: str | None
    lossless: bool
    bitrate_kbps: float | None  # file size x 8 / duration
    channels: int | None
    sample_rate: int | None
    loudness: float | None  # LUFS, when measured


@dataclass(frozen=True)
class Relation:
    """How ``b`` differs from ``a`` (``a``: the longer of the pair, or the better copy by ``KEEP_ORDER`` when they
    last about as long; ``offset``: where ``b`` starts in ``a``)."""

    kinds: tuple[str, ...]  # of: re-encode, trim, level, fade, speed; empty: the same audio in another file
    offset: float
    trim_start: float = 0.0  # seconds of a before b starts
    trim_end: float = 0.0  # seconds of a after b ends
    level_db: float | None = None  # b's level - a's
    fades: tuple[str, ...] = ()  # e.g. "b fades in", "a fades out"
    tempo_pct: float | None = None  # b's tempo relative to a's, in %
    semitones: float | None = None  # b's pitch relative to a's
    encoding: str | None = None  # "flac 1411 kbit/s -> opus 24 kbit/s"
    text: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kinds"], d["fades"] = list(self.kinds), list(self.fades)
        return d


@dataclass(frozen=True)
class PairReport:
    a: int  # the longer track (the better copy when about as long)
    b: int
    score: float
    landmarks: float | None
    relation: Relation

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "score": self.score, "landmarks": self.landmarks,
                "relation": self.relation.to_dict()}


@dataclass
class DuplicateGroup:
    copies: list[CopyInfo]  # the keeper first
    keep: int  # track id
    reason: str
    pairs: list[PairReport] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"keep": self.keep, "reason": self.reason, "copies": [asdict(c) for c in self.copies],
                "pairs": [p.to_dict() for p in self.pairs]}


# FFmpeg's decoder names -> the format's name
_CODEC_NAMES = {"mp3float": "mp3", "mp3": "mp3", "aac_fixed": "aac", "libopus": "opus", "libvorbis": "vorbis",
                "libfdk_aac": "aac", "mp2float": "mp2"}


def _codec(name: str | None) -> str | None:
    name = (name or "").lower()
    return _CODEC_NAMES.get(name, name) or None


def _copy_info(catalog, row) -> CopyInfo:
    codec = _codec(row.codec)
    lossless = codec is not None and (codec in LOSSLESS_CODECS or codec.startswith("pcm_"))
    f = catalog.file_by_path(row.path)
    size = f.size if f is not None else None
    if size is None:
        try:
            size = os.path.getsize(row.path)
        except OSError:
            size = None
    rate = round(size * 8 / row.duration / 1000, 1) if size and row.duration > 0 else None
    return CopyInfo(row.id, row.path, row.title, round(row.duration, 2), codec, lossless, rate, row.channels,
                    row.sample_rate, row.loudness)


def _encoding(c: CopyInfo) -> str:
    parts = [c.codec or "?"]
    if c.bitrate_kbps is not None:
        parts.append(f"{c.bitrate_kbps:.0f} kbit/s")
    if c.channels == 1:
        parts.append("mono")
    return " ".join(parts)


def _levels(catalog, tid: int) -> tuple[np.ndarray, np.ndarray]:
    rows = [(start, level) for _, start, _, _, level, _ in catalog.segments_of(tid) if level is not None]
    return np.array([r[0] for r in rows], float), np.array([r[1] for r in rows], float)


def relation_of(a: CopyInfo, b: CopyInfo, *, offset: float, speed: float = 1.0,
                levels_a: tuple[np.ndarray, np.ndarray] | None = None,
                levels_b: tuple[np.ndarray, np.ndarray] | None = None, hop: float = 3.0) -> Relation:
    """How ``b`` differs from ``a`` (``a`` the longer; ``offset``: where ``b`` starts in ``a``; ``speed``: ``b``
    played this many times as fast lines up with ``a``). ``levels_*``: (window starts, window levels in dB)."""
    kinds: list[str] = []
    texts: list[str] = []
    encoding = None
    lossy_pair = not (a.lossless and b.lossless)
    rate_differs = (a.bitrate_kbps is not None and b.bitrate_kbps is not None and lossy_pair
                    and abs(a.bitrate_kbps - b.bitrate_kbps) > BITRATE_MARGIN * max(a.bitrate_kbps, b.bitrate_kbps))
    if a.codec != b.codec or a.channels != b.channels or rate_differs:
        kinds.append("re-encode")
        encoding = f"{_encoding(a)} -> {_encoding(b)}"
        texts.append(f"re-encode ({encoding})")
    tempo = semis = None
    if abs(speed - 1.0) > SPEED_EPS:
        # b played ``speed`` times as fast matches a: b is a at 1/speed of its speed
        tempo = round((1.0 / speed - 1.0) * 100, 1)
        semis = round(12 * math.log2(1.0 / speed), 2)
        kinds.append("speed")
        texts.append(f"speed change (tempo {tempo:+.1f} %, pitch {semis:+.2f} semitones)")
    stretch = 1.0 / speed  # b seconds -> a seconds
    trim_start = max(0.0, offset)
    trim_end = max(0.0, a.duration - (offset + b.duration * stretch))
    if trim_start > TRIM_SECONDS or trim_end > TRIM_SECONDS:
        kinds.append("trim")
        cut = [f"starts {trim_start:.1f} s in" if trim_start > TRIM_SECONDS else "",
               f"ends {trim_end:.1f} s before the end" if trim_end > TRIM_SECONDS else ""]
        texts.append(f"trim ({', '.join(c for c in cut if c)})")
    level = None
    fades: list[str] = []
    if levels_a is not None and levels_b is not None and len(levels_a[0]) and len(levels_b[0]):
        (sa, la), (sb, lb) = levels_a, levels_b
        at = offset + sb * stretch  # b's windows in a's time
        j = np.abs(sa[None, :] - at[:, None]).argmin(axis=1)
        close = np.abs(sa[j] - at) <= hop / 2 + 1e-6
        loud = (la[j] > -60) | (lb > -60)
        both = close & loud
        if both.sum() >= 1:
            d = lb[both] - la[j][both]
            level = round(float(np.median(d)), 1) + 0.0  # no -0.0
            if abs(level) >= LEVEL_DB:
                kinds.append("level")
                texts.append(f"level change ({level:+.1f} dB)")
            idx = np.flatnonzero(both)
            # an edge window quieter than the median difference says: the track that is quieter there fades
            for k, where in ((idx[0], "in"), (idx[-1], "out")):
                e = float(lb[k] - la[j][k]) - level
                if e <= -FADE_DB and (k == 0 or k == len(sb) - 1):
                    fades.append(f"b fades {where}")
                elif e >= FADE_DB and (j[k] == 0 or j[k] == len(sa) - 1):
                    fades.append(f"a fades {where}")
            if fades:
                kinds.append("fade")
                texts.append(", ".join(fades))
    text = "; ".join(texts) if texts else "same audio in another file"
    return Relation(tuple(kinds), round(offset, 2) + 0.0, round(trim_start, 2), round(trim_end, 2), level, tuple(fades),
                    tempo, semis, encoding, text)


def _keep_key(c: CopyInfo, content: dict | None = None, common: dict | None = None) -> tuple:
    held = (content or {}).get(c.track_id, c.duration)
    return (c.lossless, 0.0 if c.lossless else (c.bitrate_kbps or 0.0), round(held), (common or {}).get(c.track_id, 1),
            c.channels or 0, c.sample_rate or 0, -c.track_id)


def choose_keeper(copies: Sequence[CopyInfo], *, content: dict | None = None,
                  common: dict | None = None) -> tuple[CopyInfo, str]:
    """The copy to keep and why: the first rule of ``KEEP_ORDER`` on which it beats the runner-up.

    ``content``: seconds of the recording each copy holds (its duration, corrected for a speed change, so that
    a slowed-down copy is not "longer"); ``common``: how many copies of the group play at its speed (a copy at
    the speed most share is kept over one at another speed)."""
    def key(c):
        return _keep_key(c, content, common)

    ranked = sorted(copies, key=key, reverse=True)
    best = ranked[0]
    if len(ranked) == 1:
        return best, "the only copy"
    other = ranked[1]
    kb, ko = key(best), key(other)
    if kb[0] != ko[0]:
        return best, f"lossless ({best.codec}) over lossy ({other.codec})"
    if kb[1] != ko[1] and other.bitrate_kbps and best.bitrate_kbps and \
            best.bitrate_kbps - other.bitrate_kbps > BITRATE_MARGIN * best.bitrate_kbps:
        return best, f"higher bitrate ({best.bitrate_kbps:.0f} over {other.bitrate_kbps:.0f} kbit/s)"
    if kb[2] != ko[2]:
        if content and abs(content.get(best.track_id, best.duration) - best.duration) > TRIM_SECONDS / 2:
            return best, f"longer ({kb[2]:.0f} s of the recording over {ko[2]:.0f} s)"
        return best, f"longer ({best.duration:.1f} s over {other.duration:.1f} s)"
    if kb[3] != ko[3]:
        return best, f"at the speed most copies share ({kb[3]} of {len(copies)}), not changed in speed"
    if kb[4] != ko[4]:
        return best, f"more channels ({best.channels} over {other.channels})"
    if kb[5] != ko[5]:
        return best, f"higher sample rate ({best.sample_rate} over {other.sample_rate} Hz)"
    if kb[1] != ko[1]:
        return best, f"higher bitrate ({best.bitrate_kbps:.0f} over {other.bitrate_kbps:.0f} kbit/s)"
    if content and any(abs(content.get(c.track_id, c.duration) - c.duration) > TRIM_SECONDS / 2 for c in copies):
        return best, "equal on every rule (which speed is the original's cannot be told): the first indexed"
    return best, "equal on every rule: the first indexed"


def _rates(group: Sequence[int], pairs: Sequence[PairReport]) -> dict[int, float]:
    """Each copy's playing speed relative to the group's first copy, through the pairs' tempo changes."""
    rate = {group[0]: 1.0}
    todo = True
    while todo:
        todo = False
        for p in pairs:
            f = 1.0 + (p.relation.tempo_pct or 0.0) / 100.0  # b plays f times as fast as a
            if p.a in rate and p.b not in rate:
                rate[p.b], todo = rate[p.a] * f, True
            elif p.b in rate and p.a not in rate:
                rate[p.a], todo = rate[p.b] / f, True
    return rate


def _components(pairs: Iterable) -> list[list[int]]:
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in pairs:
        ra, rb = find(p.a), find(p.b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for x in parent:
        groups.setdefault(find(x), []).append(x)
    return [sorted(g) for g in groups.values()]


def build_groups(catalog, pairs: Sequence, *, hop: float) -> list[DuplicateGroup]:
    """Groups of copies from ``find_duplicates`` pairs, largest first, each with its keeper and relations."""
    ids = sorted({p.a for p in pairs} | {p.b for p in pairs})
    rows = {r.id: r for r in catalog.tracks(ids)}
    info = {t: _copy_info(catalog, rows[t]) for t in ids if t in rows}
    levels: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def lv(t: int):
        if t not in levels:
            levels[t] = _levels(catalog, t)
        return levels[t]

    by_group: dict[int, list] = {}
    comps = [[t for t in g if t in info] for g in _components(p for p in pairs if p.a in info and p.b in info)]
    where = {t: k for k, g in enumerate(comps) for t in g}
    for p in pairs:
        if p.a not in info or p.b not in info:
            continue
        da, db = info[p.a].duration, info[p.b].duration
        if abs(da - db) <= TRIM_SECONDS:  # about as long: the better copy is the reference
            long_, short = (p.a, p.b) if _keep_key(info[p.a]) >= _keep_key(info[p.b]) else (p.b, p.a)
        else:
            long_, short = (p.a, p.b) if da > db else (p.b, p.a)
        # find_duplicates aligns its shorter track (the first on a tie) within the other; turn it round when the
        # reference here is that one
        offset, speed = p.offset, getattr(p, "speed", 1.0)
        if short != (p.a if rows[p.a].duration <= rows[p.b].duration else p.b):
            offset, speed = -offset, 1.0 / speed
        rel = relation_of(info[long_], info[short], offset=offset, speed=speed,
                          levels_a=lv(long_), levels_b=lv(short), hop=hop)
        by_group.setdefault(where[p.a], []).append(PairReport(long_, short, p.score, p.landmarks, rel))
    out = []
    for k, g in enumerate(comps):
        rate = _rates(g, by_group.get(k, []))
        content = {t: info[t].duration * rate.get(t, 1.0) for t in g}
        speeds = [round(rate.get(t, 1.0), 2) for t in g]
        common = {t: speeds.count(sp) for t, sp in zip(g, speeds)}
        keeper, reason = choose_keeper([info[t] for t in g], content=content, common=common)
        copies = [keeper] + sorted((info[t] for t in g if t != keeper.track_id),
                                   key=lambda c: _keep_key(c, content, common), reverse=True)
        out.append(DuplicateGroup(copies, keeper.track_id, reason, by_group.get(k, [])))
    out.sort(key=lambda g: (-len(g.copies), g.keep))
    return out


def duplicate_report(library, *, min_score: float | None = None, neighbours: int = 10) -> list[DuplicateGroup]:
    """``library.duplicates(min_score)`` as groups of copies (``build_groups``)."""
    pairs = library.duplicates(min_score, neighbours=neighbours)
    return build_groups(library.catalog, pairs, hop=library.hop)
