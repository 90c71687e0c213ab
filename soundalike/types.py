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
class TrackCopy:
    """Another file of a hit's recording, folded into the hit (duplicates.group_copies)."""

    track_id: int
    path: str
    title: str | None
    score: float  # its own score, had it been listed


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
    # the query windows that matched the track: each window's best segment (at the offset where it agrees);
    # for a copy (``copy``), every window at ``offset`` instead (query t <-> track t + offset: Searcher.pairs_at)
    matches: list[MatchedPair] = field(default_factory=list)
    # several seeds only: the positive seed whose votes, offset and matches are shown (0-based),
    # and the fused score per positive seed, then per negative seed
    seed: int | None = None
    seed_scores: list[float] | None = None
    # how surely the query is a copy of this track's audio (0 chance, 1 identical): the larger of the
    # re-rank's fingerprint alignment and its landmark votes (search.py, identify/align.py, identify/landmarks.py); None where
    # neither ran for it
    audio_match: float | None = None
    # the search judged the query a copy of this track (identify/policy.py: its audio match reaches the policy's
    # ``confirm``, or under heavy noise its alignment leads every other recording's); None where no match ran
    copy: bool | None = None
    # how likely the query is a copy of this track's recording, 0..1 (identify/policy.py, copy_confidence: fitted on
    # the calibration half of the project's corpus); None where no match ran
    copy_confidence: float | None = None
    # the policy's rule that placed it above the hits ranked by score: "aligned" (its audio aligns with the query's),
    # "landmarks", "stands out" (its alignment leads every other's under noise), "sweep agrees" (a copy found by
    # the scan prints and the alignment together), "agreed" (not a copy, but two views pick it); None: by score
    identified_by: str | None = None
    # where the query's landmarks found this track: how the query is shifted against it, in semitones,
    # and how fast it plays (1.05: 5 % faster); 0 and 1 for a copy as it is; None where landmarks did not find it
    semitones: float | None = None
    tempo: float | None = None
    # other files of this recording (a re-encode, an identical copy) that would have been hits of their own,
    # best first: listed here instead of splitting the votes and filling the list (duplicates.group_copies)
    copies: list[TrackCopy] = field(default_factory=list)
    # with an aspect (``--like``, aspects.py): the hit's percentile among the ranked tracks in each feature group
    # the aspect weighs; ``score`` is then their weighted mean. None without an aspect
    aspect_scores: dict[str, float] | None = None

    @property
    def evidence(self) -> bool:
        """Whether anything matched: a window, the audio, or a score above 0. A track that only filled a place
        in the list (the nearest track vectors, or a filter's top N) has none; the CLI and the web app do not
        show it as a result (the JSON keeps it)."""
        return bool(self.votes or self.matches or self.copy or self.score >= 0.0005)


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
    #: things the user should know about these results (the vector index was behind the catalogue, ...)
    warnings: list[str] = field(default_factory=list)
    #: the aspect the hits were ranked by (``--like``, aspects.py); None: the default similarity
    like: str | None = None

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)
