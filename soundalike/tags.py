"""A track's tags: the top tags overall and the tags over time.

The catalogue keeps musicnn's tag probabilities for every informative
segment (float16) and their mean for every track. Tags that both models have
("rock" from MSD and MTT) are shown once, as the mean of the two columns.
Over time, segments are grouped into spans (at most ``max_spans``, each a
whole number of seconds) and the spans' mean probabilities are reported.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import numpy as np

from .errors import QueryError

__all__ = ["TagSpan", "TrackTags", "track_tags"]


@dataclass(frozen=True)
class TagSpan:
    start: float
    end: float
    informative: bool  # False when every segment in the span is silence
    top: dict[str, float]  # the span's own top tags, best first


@dataclass(frozen=True)
class TrackTags:
    track_id: int
    top: dict[str, float]  # the track's top tags (mean over informative segments), best first
    span_seconds: float
    spans: tuple[TagSpan, ...]
    #: the probability over time of each of the track's top tags, one value per span (None: silent span)
    series: dict[str, list[float | None]]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Concepts:
    """Tag names merged across models: ``names[j]`` uses catalogue columns ``columns[j]``."""

    names: tuple[str, ...]
    columns: tuple[tuple[int, ...], ...]

    @property
    def phrases(self) -> frozenset[str]:
        return frozenset(n for n in self.names if " " in n)


def tag_concepts(tag_names: list[str] | tuple[str, ...]) -> Concepts:
    """Group catalogue tag columns ("msd:rock", "mtt:rock") by lower-cased tag name."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(tag_names):
        groups.setdefault(name.split(":", 1)[-1].lower(), []).append(i)
    return Concepts(tuple(groups), tuple(tuple(v) for v in groups.values()))


def track_tags(catalog, track_id: int, *, top: int = 10, per_span: int = 3, max_spans: int = 12) -> TrackTags:
    """Top tags of a track and its tags over time (see the module docstring)."""
    if top < 1 or per_span < 1 or max_spans < 1:
        raise QueryError("top, per_span and max_spans must be at least 1")
    names = json.loads(catalog.get_meta("tag_names") or "[]")
    row = catalog.db.execute("SELECT duration, tags FROM tracks WHERE id = ?", (int(track_id),)).fetchone()
    if row is None:
        raise QueryError(f"no track {track_id}")
    if not names:  # a model without tags
        return TrackTags(int(track_id), {}, 0.0, (), {})
    merged_names = tag_concepts(names)
    concepts, columns = merged_names.names, merged_names.columns
    duration, blob = row
    segs = catalog.db.execute(
        "SELECT start, end, tags FROM segments WHERE track_id = ? ORDER BY start", (int(track_id),)
    ).fetchall()

    def merged(p: np.ndarray) -> np.ndarray:  # (..., tags) -> (..., concepts)
        return np.stack([p[..., c].mean(-1) for c in columns], -1)

    if blob is not None and len(blob) == 2 * len(names):
        overall = merged(np.frombuffer(blob, np.float16).astype(np.float32))
    else:
        overall = np.zeros(len(concepts), np.float32)
    order = [j for j in np.argsort(-overall)[:top] if overall[j] > 0]
    top_tags = {concepts[j]: round(float(overall[j]), 3) for j in order}

    span = float(max(3, math.ceil((duration or 0.0) / max_spans)))
    n_spans = max(1, math.ceil((duration or 0.0) / span))
    sums = np.zeros((n_spans, len(concepts)), np.float64)
    counts = np.zeros(n_spans, np.int64)
    for start, end, tags in segs:
        if tags is None or len(tags) != 2 * len(names):
            continue
        k = min(int(((start + end) / 2) // span), n_spans - 1)
        sums[k] += merged(np.frombuffer(tags, np.float16).astype(np.float32))
        counts[k] += 1
    spans, series = [], {concepts[j]: [] for j in order}
    for k in range(n_spans):
        a, b = k * span, min((k + 1) * span, duration or (k + 1) * span)
        if counts[k] == 0:
            spans.append(TagSpan(round(a, 2), round(b, 2), False, {}))
            for name in series:
                series[name].append(None)
            continue
        mean = sums[k] / counts[k]
        best = np.argsort(-mean)[:per_span]
        spans.append(TagSpan(round(a, 2), round(b, 2), True, {concepts[j]: round(float(mean[j]), 3) for j in best}))
        for j in order:
            series[concepts[j]].append(round(float(mean[j]), 3))
    return TrackTags(int(track_id), top_tags, span, tuple(spans), series)
