"""Aspects: which way "sounds like" is meant (``--like rhythm``), as weights over feature groups.

The default search ranks by the model's window embeddings, one fixed notion of
similar. An aspect asks for another: the same instruments, the same groove, the
same key. Each aspect is a weighting over *feature groups*, each a view of what
the catalogue already stores for every track:

* ``embedding``: the track vector, centred on the mean of the tracks ranked
  (the ``centered`` space of ``evaluate/spaces.py``), by cosine;
* ``instrument_tags``, ``genre_tags``, ``mood_tags``, ``rhythm_tags``: subsets
  of the musicnn tag probabilities (MSD and MTT columns of one name averaged,
  as ``tags.tag_concepts``), each tag z-scored over the tracks ranked, by cosine;
* ``tempo``: the measured BPM, by the distance in octaves (``|log2(a / b)|``);
* ``key``: the measured key, by the distance on the circle of fifths, a minor
  key at the place of its relative major, plus half a step when the modes differ.

Groups do not share a scale (a cosine, an octave distance, a count of fifths), so
each group's similarities to the query become percentiles among the tracks
ranked (ties share the mean rank; a track missing the group's data, such as a
BPM, sits in the middle), and a track's score is the weighted mean of its
percentiles: 0.9 means "closer to the query than nine tracks in ten, on the
aspect's weighted features". Only the order within a group counts, so no group
needs a kernel width to be chosen.

The ranking scans every candidate track's stored features (an exact scan: it
reads one row per track from the catalogue), then the tracks it picks go through
the normal search, restricted to them, so that each hit still shows its votes and
matched windows; the aspect decides the order and the score. An audio reference is
decoded and embedded once more for its tags, BPM and key (the search embeds it
without tags).

The weights below are set by hand from what each group describes; none was
tuned on the similarity benchmark (its figures are in docs/benchmarks.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import QueryError, UserError

__all__ = ["Aspect", "ASPECTS", "GROUPS", "aspect", "FeatureTable", "SeedFeatures", "pick", "rank", "reorder"]

#: feature group -> what it compares (documentation and ``--help``)
GROUPS: dict[str, str] = {
    "embedding": "the model's track vector, centred",
    "instrument_tags": "instrument and voice tags",
    "genre_tags": "genre and era tags",
    "mood_tags": "mood and energy tags",
    "rhythm_tags": "beat, drums, dance, fast and slow tags",
    "tempo": "measured BPM",
    "key": "measured key, on the circle of fifths",
}

# tag names (lower case, as ``tags.tag_concepts`` merges them) of each tag group; a name the model lacks is skipped
TAG_GROUPS: dict[str, tuple[str, ...]] = {
    "instrument_tags": (
        "guitar", "strings", "drums", "piano", "violin", "synth", "harpsichord", "flute", "sitar", "harp",
        "cello", "acoustic", "instrumental", "vocal", "vocals", "voice", "singing", "choir", "choral", "opera",
        "no vocals", "no vocal", "no voice", "female vocalists", "male vocalists", "female vocalist", "female",
        "male", "woman", "man", "male vocal", "female vocal", "male voice", "female voice", "solo",
    ),
    "genre_tags": (
        "rock", "pop", "alternative", "indie", "electronic", "dance", "alternative rock", "jazz", "metal",
        "chillout", "classic rock", "soul", "indie rock", "electronica", "folk", "punk", "blues", "hard rock",
        "ambient", "experimental", "hip-hop", "country", "easy listening", "funk", "electro", "heavy metal",
        "progressive rock", "rnb", "indie pop", "house", "classical", "techno", "indian", "new age", "classic",
        "oldies", "60s", "70s", "80s", "90s", "00s",
    ),
    "mood_tags": (
        "beautiful", "mellow", "chill", "sad", "happy", "sexy", "catchy", "party", "easy listening", "slow",
        "fast", "loud", "quiet", "soft", "weird", "ambient", "chillout",
    ),
    "rhythm_tags": ("beat", "beats", "drums", "dance", "fast", "slow", "party", "techno", "house"),
}


@dataclass(frozen=True)
class Aspect:
    name: str
    help: str
    weights: dict[str, float]  # feature group -> weight (groups not named weigh 0)


# The embedding keeps a small weight in every aspect but timbre: among tracks that agree on the aspect's
# features (a shared tempo, a shared key), the one that also sounds alike should come first.
ASPECTS: dict[str, Aspect] = {a.name: a for a in (
    Aspect("timbre", "the overall sound, as the model hears it", {"embedding": 1.0}),
    Aspect("instruments", "the same instruments and voices", {"instrument_tags": 1.0, "embedding": 0.5}),
    Aspect("genre", "the same genre and era", {"genre_tags": 1.0, "embedding": 0.25}),
    Aspect("mood", "the same mood and energy", {"mood_tags": 1.0, "embedding": 0.25}),
    Aspect("rhythm", "the same groove: tempo and beat", {"tempo": 1.0, "rhythm_tags": 0.5, "embedding": 0.25}),
    Aspect("tonality", "the same key or a near one", {"key": 1.0, "embedding": 0.25}),
)}


def aspect(name: str) -> Aspect:
    """The aspect called ``name``; a one-line ``UserError`` naming the valid ones otherwise."""
    try:
        return ASPECTS[str(name).strip().lower()]
    except KeyError:
        raise UserError(f"unknown aspect {name!r}; --like takes one of {', '.join(ASPECTS)}") from None


# -- features -------------------------------------------------------------------------------------------------

_TONICS = {"C": 0, "C#": 1, "DB": 1, "D": 2, "D#": 3, "EB": 3, "E": 4, "F": 5, "F#": 6, "GB": 6, "G": 7,
           "G#": 8, "AB": 8, "A": 9, "A#": 10, "BB": 10, "B": 11}


def key_position(key: str | None) -> tuple[float, float]:
    """("A minor") -> (place on the circle of fifths 0-11 of it or its relative major, 1.0 for minor);
    NaNs for a key that is missing or unreadable."""
    parts = (key or "").split()
    if len(parts) != 2 or parts[0].upper() not in _TONICS or parts[1].lower() not in ("major", "minor"):
        return math.nan, math.nan
    minor = parts[1].lower() == "minor"
    tonic = (_TONICS[parts[0].upper()] + (3 if minor else 0)) % 12  # a minor key sits at its relative major
    return float(tonic * 7 % 12), float(minor)


@dataclass
class SeedFeatures:
    """One seed's features, in the table's layout (None or NaN where it has none)."""

    vector: np.ndarray | None  # unit track vector (raw, not centred)
    tags: np.ndarray | None  # tag probabilities, catalogue columns
    log_bpm: float = math.nan
    key: tuple[float, float] = (math.nan, math.nan)


@dataclass
class FeatureTable:
    """Every candidate track's stored features, one row per track in ``ids``."""

    ids: np.ndarray
    vectors: np.ndarray | None  # (n, d) unit track vectors
    tags: np.ndarray | None  # (n, tags) tag probabilities
    log_bpm: np.ndarray  # (n,) log2 BPM, NaN where none
    keys: np.ndarray  # (n, 2) key_position
    tag_names: tuple[str, ...]

    @classmethod
    def load(cls, catalog, *, model_id: str | None = None) -> "FeatureTable":
        """The features of the tracks of ``model_id`` (all tracks when None) that have a track vector."""
        sql = "SELECT id, vector, tags, bpm, key FROM tracks WHERE vector IS NOT NULL"
        params: tuple = ()
        if model_id is not None:
            sql, params = sql + " AND model_id = ?", (model_id,)
        rows = catalog.db.execute(sql + " ORDER BY id", params).fetchall()
        tag_names = tuple(json.loads(catalog.get_meta("tag_names") or "[]"))
        keys = {k: key_position(k) for k in {r[4] for r in rows}}  # 24 keys at most, and None
        return cls(
            ids=np.array([r[0] for r in rows], np.int64),
            vectors=_stacked([r[1] for r in rows], None),
            tags=_stacked([r[2] for r in rows], len(tag_names)) if tag_names else None,
            log_bpm=np.log2(np.array([r[3] if r[3] and r[3] > 0 else np.nan for r in rows], np.float64)),
            keys=np.array([keys[r[4]] for r in rows], np.float64).reshape(-1, 2),
            tag_names=tag_names,
        )

    def seed(self, track_id: int) -> SeedFeatures | None:
        """A catalogue track's features, when the table holds it."""
        hit = np.flatnonzero(self.ids == int(track_id))
        if not len(hit):
            return None
        i = int(hit[0])
        return SeedFeatures(None if self.vectors is None else self.vectors[i],
                            None if self.tags is None else self.tags[i], float(self.log_bpm[i]),
                            (float(self.keys[i, 0]), float(self.keys[i, 1])))


def _stacked(blobs: list[bytes | None], width: int | None) -> np.ndarray | None:
    """float16 blobs of one length (``width`` values when given) as a float32 matrix; None when any is
    missing or the lengths differ (vectors of several models)."""
    if not blobs or any(b is None for b in blobs) or len({len(b) for b in blobs}) != 1:
        return None
    n = len(blobs[0]) // 2
    if width is not None and n != width:
        return None
    return np.frombuffer(b"".join(blobs), np.float16).reshape(len(blobs), n).astype(np.float32)


def audio_features(lib, source, *, start: float | None, end: float | None, max_seconds: float | None = None
                   ) -> SeedFeatures:
    """An audio reference's features, computed as indexing computes a track's: the model's windows at the
    library's hop (their mean embedding and tag probabilities), and the BPM and key of the samples."""
    from . import decode as decoding
    from . import descriptors, settings
    from .search import source_name
    from .segment import windows

    model = lib.model
    _, stream = decoding.open_stream(source, sample_rate=model.sample_rate, start=start, end=end,
                                     max_seconds=max_seconds)
    blocks: list[np.ndarray] = []
    emb, tags = [], []
    for batch in windows(_kept(stream, blocks), sample_rate=model.sample_rate, window_seconds=model.window_seconds,
                         hop_seconds=lib.hop, silence_db=settings.get("silence_db"), max_windows=model.batch_size):
        if batch.informative.any():
            out = model.embed_batch(model.features(batch.samples[batch.informative]))
            emb.append(out.embeddings)
            tags.append(out.tags)
    if hasattr(source, "seek"):  # the search reads the same file object next
        source.seek(0)
    if not emb:
        raise QueryError(f"{source_name(source)}: the query is silent; nothing to compare --like with")
    mean = np.concatenate(emb).mean(0)
    seed = SeedFeatures(mean / max(float(np.linalg.norm(mean)), 1e-9),
                        np.concatenate(tags).mean(0) if tags[0].shape[1] else None)
    if descriptors.available():
        d = descriptors.analyze(np.concatenate(blocks), model.sample_rate)
        seed.log_bpm = math.log2(d.bpm) if d.bpm else math.nan
        seed.key = key_position(d.key)
    return seed


def _kept(stream, blocks: list[np.ndarray]):
    for block in stream:
        blocks.append(block)
        yield block


# -- ranking --------------------------------------------------------------------------------------------------

def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)


def _percentiles(sim: np.ndarray) -> np.ndarray:
    """Each value's mid-rank among the finite values, 0 (least similar) to 1; 0.5 where not finite."""
    out = np.full(len(sim), 0.5)
    ok = np.isfinite(sim)
    if ok.sum() > 1:
        v = sim[ok]
        s = np.sort(v)
        out[ok] = (np.searchsorted(s, v, "left") + np.searchsorted(s, v, "right") - 1) / (2.0 * (len(v) - 1))
    return out


def _group_similarities(table: FeatureTable, seed: SeedFeatures, group: str) -> np.ndarray | None:
    """Similarity of every table row to ``seed`` in ``group`` (higher: closer; NaN: unknown); None when
    the group has no data here."""
    if group == "embedding":
        if table.vectors is None or seed.vector is None or len(seed.vector) != table.vectors.shape[1]:
            return None
        mean = table.vectors.mean(0)
        return _unit(table.vectors - mean) @ _unit(seed.vector - mean)
    if group in TAG_GROUPS:
        if table.tags is None or seed.tags is None or len(seed.tags) != table.tags.shape[1]:
            return None
        from .tags import tag_concepts

        concepts = tag_concepts(table.tag_names)
        wanted = set(TAG_GROUPS[group])
        cols = [c for name, c in zip(concepts.names, concepts.columns) if name in wanted]
        if not cols:
            return None

        def merged(p: np.ndarray) -> np.ndarray:
            return np.stack([p[..., list(c)].mean(-1) for c in cols], -1)

        rows, q = merged(table.tags), merged(seed.tags)
        mu, sd = rows.mean(0), rows.std(0) + 1e-3
        return _unit((rows - mu) / sd) @ _unit((q - mu) / sd)
    if group == "tempo":
        return -np.abs(table.log_bpm - seed.log_bpm)  # NaN where either is unknown
    if group == "key":
        d = np.abs(table.keys[:, 0] - seed.key[0])
        return -(np.minimum(d, 12 - d) + 0.5 * np.abs(table.keys[:, 1] - seed.key[1]))
    raise ValueError(f"unknown feature group {group!r}")


@dataclass(frozen=True)
class Ranked:
    track_id: int
    score: float  # weighted mean percentile, 0-1
    groups: dict[str, float]  # the track's percentile in each group used


def rank(table: FeatureTable, like: Aspect, seeds: Sequence[SeedFeatures], *, allowed: frozenset[int] | None = None,
         exclude: frozenset[int] = frozenset(), limit: int | None = None) -> list[Ranked]:
    """The allowed tracks of ``table`` but ``exclude`` (the first ``limit``), best first, by ``like``'s weighted
    percentiles (several seeds: the mean over them)."""
    keep = np.array([(allowed is None or t in allowed) and t not in exclude for t in table.ids.tolist()], bool)
    if not keep.any():
        return []
    sub = FeatureTable(table.ids[keep], None if table.vectors is None else table.vectors[keep],
                       None if table.tags is None else table.tags[keep], table.log_bpm[keep], table.keys[keep],
                       table.tag_names)
    pct: dict[str, np.ndarray] = {}
    for group, w in like.weights.items():
        if w <= 0:
            continue
        per_seed = [s for seed in seeds if (s := _group_similarities(sub, seed, group)) is not None]
        if per_seed:
            pct[group] = np.mean([_percentiles(s) for s in per_seed], axis=0)
    if not pct:
        raise UserError(f"--like {like.name}: this library stores none of its features "
                        f"({', '.join(GROUPS[g] for g in like.weights)})")
    total = sum(like.weights[g] for g in pct)
    score = sum(like.weights[g] * p for g, p in pct.items()) / total
    tie = pct.get("embedding", np.zeros(len(score)))
    order = np.lexsort((-tie, -score))[:limit]
    return [Ranked(int(sub.ids[i]), round(float(score[i]), 4), {g: round(float(p[i]), 3) for g, p in pct.items()})
            for i in order]


def reorder(result, ranked: Sequence[Ranked], *, like: Aspect, top: int):
    """``result`` (the normal search over the tracks ``ranked`` picked) in the aspect's order, scored by it,
    cut to ``top``; each hit records its group percentiles, the result its aspect."""
    by_id = {r.track_id: (i, r) for i, r in enumerate(ranked)}
    hits = [h for h in result.hits if h.track_id in by_id]
    hits.sort(key=lambda h: by_id[h.track_id][0])
    for h in hits:
        r = by_id[h.track_id][1]
        h.score, h.aspect_scores = r.score, r.groups
    result.hits = hits[:top]
    result.like = like.name
    return result


def pick(lib, like: Aspect, seeds: Sequence, *, allowed: frozenset[int] | None, top: int, model_id: str | None,
         start: float | None = None, end: float | None = None, max_seconds: float | None = None
         ) -> tuple[list[Ranked], frozenset[int]]:
    """The tracks ``like`` ranks first for ``seeds`` (catalogue track ids as ints, or audio), among the tracks
    of ``model_id`` that ``allowed`` lets through; a few spare ones, so that ``top`` remain once copies are
    folded in (``duplicates.group_copies``). Returns them and their ids, the ``allowed`` of the search to run."""
    from .duplicates import SPARE_FOR_COPIES

    table = FeatureTable.load(lib.catalog, model_id=model_id)
    features, exclude = [], set()
    for s in seeds:
        if isinstance(s, (int, np.integer)) and not isinstance(s, bool):
            f = table.seed(int(s))
            if f is None:
                raise QueryError(f"track {int(s)} has no track vector to compare --like {like.name} with")
            exclude.add(int(s))
        else:
            f = audio_features(lib, s, start=start, end=end, max_seconds=max_seconds)
        features.append(f)
    ranked = rank(table, like, features, allowed=allowed, exclude=frozenset(exclude),
                  limit=top + min(top, SPARE_FOR_COPIES))
    return ranked, frozenset(r.track_id for r in ranked)
