"""Text search, step 6: words -> the tracks the library names with them -> the tracks that sound like them.

A keyword match (``text.py``, step 5) says that a user label, a file tag or a file name calls a track
"explosion". Neither model has a class for that word (musicnn's tags are about music; the sound-effects model
ships no class names), but the library itself now holds examples of it. Those tracks become audio *seeds*:

1. A track's seed strength is its keyword score over ``KEYWORD_WEIGHT`` (the score of every query term found
   in a field of weight 1), clipped to [0, 1]: a title that says "explosion" is a full seed, a file name or a
   match on one term of two counts less. Tracks a negated term matched are not seeds.
2. Every track is compared with the seeds of its own model (musicnn vectors with musicnn's, the effect model's
   with its own; ``kinds.py``): the cosine of its track vector, centred on the mean of that model's tracks (what
   all tracks share says nothing about a category), to its ``k`` closest seeds, averaged with the seeds'
   strengths as weights, so weak seeds count less.
3. That mean is standardised over the model's tracks (z-score, with a floor on the spread), kept where it is
   above the mean (sounding like the named tracks is evidence for; not sounding like them says nothing), and
   multiplied by ``weight`` and by the strongest seed's strength (a query its named tracks only half match
   trusts them half as much) before it joins the tag and keyword scores. A seed itself scores as the track
   most like the seeds does, times its own strength: a track named so stays above the tracks that only sound
   like it.

With no keyword matches nothing changes. The constants of ``SEEDING`` were chosen on the similarity benchmark's
calibration half (``soundalike evaluate --similarity --named-half report``: the report half's items carry their
class name as a label, and the calibration half is searched); docs/quality.md has the sweep.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Seeding", "SEEDING", "TrackSpace", "SeedScores", "seed_scores"]


@dataclass(frozen=True)
class Seeding:
    """How much "sounds like the tracks named so" counts in a text search."""

    #: one standard deviation of seed similarity counts this many standard deviations of tag lift; chosen on the
    #: calibration half (bench/text_seeds.py: mean p@5 rose steadily from 0.5 to 24): where the library names
    #: tracks with the query's words, the likeness to them orders the tracks that have it, and tags the rest
    weight: float = 24.0
    #: a track's similarity to the seeds: the weighted mean cosine of its ``k`` closest ones (calibrated likewise)
    k: int = 3
    #: floor on the spread of that similarity over the library (cosine units), so small libraries stay sane
    min_spread: float = 0.02
    #: at most this many seeds (the strongest, then by track id): bounds the cost on a large library
    max_seeds: int = 256


SEEDING = Seeding()


class TrackSpace:
    """Every track's vector, grouped by the model that embedded it, centred on that model's mean."""

    def __init__(self, catalog, ids: np.ndarray) -> None:
        row_of = {int(t): r for r, t in enumerate(ids)}
        #: model -> (rows into ``ids``, unit vectors centred on the model's mean)
        self.models: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for model in catalog.model_counts():
            pairs = [(row_of[t], v) for t, v in catalog.track_vectors(model_id=model) if t in row_of]
            if not pairs:
                continue
            X = np.stack([v for _, v in pairs])
            if len(X) > 1:
                X = X - X.mean(0)
            X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-9)
            self.models[model] = (np.array([r for r, _ in pairs], np.int64), X)


@dataclass(frozen=True)
class SeedScores:
    """Per row of the searcher's track ids: what seeding adds (0 where nothing), the weighted mean cosine to the
    k closest seeds and its mean over the model's tracks (nan where the model has no seeds), and how many seeds
    of the row's model there are."""

    score: np.ndarray
    similarity: np.ndarray
    library_mean: np.ndarray
    seeds: np.ndarray


def seed_scores(space: TrackSpace, strength: np.ndarray, options: Seeding = SEEDING) -> SeedScores:
    """Seed scores for every row, from per-row seed ``strength`` in [0, 1] (0: not a seed)."""
    score = np.zeros(len(strength), np.float32)
    similarity = np.full(len(strength), np.nan, np.float32)
    means = np.full(len(strength), np.nan, np.float32)
    counts = np.zeros(len(strength), np.int64)
    for model, (rows, X) in space.models.items():
        w = strength[rows]
        seeds = np.flatnonzero(w > 0)
        if len(seeds) == 0:
            continue
        seeds = seeds[np.lexsort((rows[seeds], -w[seeds]))][: options.max_seeds]
        cos = X @ X[seeds].T  # (tracks of this model, seeds)
        k = min(options.k, len(seeds))
        near = np.argpartition(-cos, k - 1, axis=1)[:, :k]
        ws = w[seeds][near]
        sim = (np.take_along_axis(cos, near, 1) * ws).sum(1) / ws.sum(1)
        mu = float(sim.mean())
        z = (sim - mu) / np.sqrt(sim.std() ** 2 + options.min_spread**2)
        z = np.maximum(z, 0.0)
        z[seeds] = z.max()
        score[rows] = options.weight * np.where(w > 0, w, w.max()) * z
        similarity[rows] = sim
        means[rows] = mu
        counts[rows] = len(seeds)
    return SeedScores(score, similarity, means, counts)
