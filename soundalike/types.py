"""Small dataclasses that cross stage boundaries."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Audio:
    """Mono float32 samples at ``sample_rate``."""

    samples: np.ndarray
    sample_rate: int
    source: str = "<memory>"

    @property
    def duration(self) -> float:
        return len(self.samples) / float(self.sample_rate)


@dataclass(frozen=True)
class Window:
    """One model window of a track or a query, in seconds."""

    start: float
    end: float
    informative: bool = True


@dataclass(frozen=True)
class ModelOutput:
    """What a model returns for a batch of windows.

    ``embeddings`` is (n, dim) float32, raw (not normalised).
    ``tags`` is (n, n_tags) float32 probabilities in ``Embedder.tag_names`` order.
    """

    embeddings: np.ndarray
    tags: np.ndarray


@dataclass(frozen=True)
class MatchedPair:
    """A query window that matched a catalogue segment."""

    query_start: float
    query_end: float
    track_start: float
    track_end: float
    similarity: float


@dataclass
class Hit:
    """One ranked track in a search result."""

    track_id: int
    path: str
    score: float
    votes: int
    similarity: float
    track_cosine: float
    offset: float | None
    offset_votes: int
    duration: float
    title: str | None = None
    artist: str | None = None
    matches: list[MatchedPair] = field(default_factory=list)
    # several seeds only: the positive seed whose votes, offset and matches are shown (0-based),
    # and the fused score per positive seed, then per negative seed
    seed: int | None = None
    seed_scores: list[float] | None = None
    # how surely the query is a copy of this track's audio (0 chance, 1 identical): the larger of the
    # re-rank's fingerprint alignment and its landmark votes (search.py, rerank.py, landmarks.py); None where
    # neither ran for it
    audio_match: float | None = None
    # the search judged the query a copy of this track: its audio match reaches rerank.CONFIRM, or under heavy
    # noise its alignment leads every other candidate's (rerank.copy_below_confirm); None where no match ran
    copy: bool | None = None
    # where the query's landmarks found this track: how the query is shifted against it, in semitones,
    # and how fast it plays (1.05: 5 % faster); 0 and 1 for a copy as it is; None where landmarks did not find it
    semitones: float | None = None
    tempo: float | None = None


@dataclass
class QueryInfo:
    """What a search actually used: the source, the range, and how it was cut."""

    source: str
    start: float
    end: float
    windows: int
    informative_windows: int
    hop: float


@dataclass
class SearchResult:
    query: QueryInfo
    hits: list[Hit]
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)
