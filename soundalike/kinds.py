"""Music and sound effects in one library: which model embeds each track, and how searches compare like with like.

A library has one model for music (setting ``model``, musicnn by default) and, when asked for, one for sound
effects (setting ``effect_model``, aisfx by default). Each track is embedded by its kind's model, and each model's
vectors live in a vector store of their own (``index/`` for the music model as always, ``index-<model>/`` beside
it, or ``<prefix>_<model>`` collections on a server), because their vectors have different sizes and meanings.

Which kind a file is, first rule that applies:

1. a user label ``kind`` on the file (``soundalike label`` / ``Library.set_labels(track, kind="effect")``; the
   next ``index`` run re-embeds it with the other model);
2. setting ``kinds``: ``GLOB=KIND`` entries separated by ``;`` (``*/sfx/*=effect; *.wav=effect``), fnmatch
   patterns matched against the file's absolute path (a pattern without ``/`` against its name); first match wins;
3. ``auto`` in ``kinds``: the measured rule, a file shorter than ``effect_seconds`` is an effect
   (docs/models.md has the calibration; bench/kinds.py measures it);
4. otherwise music.

With ``kinds`` empty (the default) every file is music and nothing here runs: a music library is indexed and
searched exactly as before, into the same store, with the same vectors and results.

Searching a library that holds both: the query is embedded by each model present, each model's collection ranks
its own tracks, and the results are merged like with like: first the hits of the query's kind, then the other
kind's. The query's kind: a catalogue track's own model; for audio, a linear head on the query's musicnn vector
(models/musicnn/kind_head.py: 386 of 395 right on the report half of bench/kind_head.py, effects 77/83 and
music excerpts of 3 to 20 s 309/312), or, when the music model is not musicnn, the duration rule. Scores of two models are not on one scale, so
they are never interleaved by score.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import settings
from .errors import StoreError, UserError
from .models import KINDS, Embedder, load_model, model_spec

if TYPE_CHECKING:
    from .library import Library
    from .stores.base import VectorStore

log = logging.getLogger("soundalike")

__all__ = ["KindRules", "parse_kinds", "side_store_args", "index_kinds", "rebuild_kinds", "merge_results"]

#: the label that overrides a file's kind
KIND_LABEL = "kind"


@dataclass(frozen=True)
class KindRules:
    """The parsed ``kinds`` setting: (glob, kind) pairs, whether ``auto`` applies, and its threshold."""

    globs: tuple[tuple[str, str], ...] = ()
    auto: bool = False
    effect_seconds: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.globs) or self.auto

    def kind_of(self, path: Path, *, label: object = None, duration: Callable[[], float | None] | None = None) -> str:
        """The kind of the file at ``path`` (see the module docstring); ``duration`` is called only for ``auto``."""
        if label is not None:
            value = str(label).strip().lower()
            if value not in KINDS:
                raise UserError(f"{path}: label {KIND_LABEL!r} must be one of {', '.join(KINDS)}, got {label!r}")
            return value
        text, name = path.as_posix(), path.name
        for pattern, kind in self.globs:
            if fnmatch.fnmatchcase(text if "/" in pattern else name, pattern):
                return kind
        if self.auto and duration is not None:
            seconds = duration()
            if seconds is not None and seconds < self.effect_seconds:
                return "effect"
        return "music"

    def query_kind(self, seconds: float | None) -> str:
        """The kind of a query of ``seconds`` of audio: the measured rule, whatever ``auto`` says."""
        return "effect" if seconds is not None and seconds < self.effect_seconds else "music"


def parse_kinds(text: str | None, *, effect_seconds: float | None = None) -> KindRules:
    """``"*/sfx/*=effect; *.wav=effect; auto"`` -> ``KindRules``; a bad entry is a ``UserError`` naming it."""
    seconds = float(settings.get("effect_seconds") if effect_seconds is None else effect_seconds)
    if not seconds >= 0:
        raise UserError(f"effect_seconds: must be >= 0, got {seconds:g}")
    globs: list[tuple[str, str]] = []
    auto = False
    for raw in (text or "").split(";"):
        entry = raw.strip()
        if not entry:
            continue
        if entry.lower() == "auto":
            auto = True
            continue
        pattern, sep, kind = entry.rpartition("=")
        kind = kind.strip().lower()
        if not sep or not pattern.strip() or kind not in KINDS:
            raise UserError(f"kinds: expected GLOB=KIND (KIND one of {', '.join(KINDS)}) or 'auto', got {entry!r}")
        globs.append((pattern.strip(), kind))
    return KindRules(tuple(globs), auto, seconds)


# -- one vector store per model ----------------------------------------------------------------------------
def side_store_args(lib: "Library", model_id: str) -> tuple[str, Path | None, dict]:
    """(kind, folder, options) of the store that holds ``model_id``'s vectors: the library's own store for its
    music model; for another model, ``index-<model>`` beside ``index`` (``index-qdrant-<model>`` for qdrant's
    local mode) or collections/tables named ``<prefix>_<model>`` on a server (hashed to pgvector's 33 characters)."""
    kind, folder, options = lib.store_args()
    if model_id == lib.model_id:
        return kind, folder, options
    safe = "".join(c if c.isalnum() else "_" for c in model_id.lower())
    if folder is not None:
        folder = folder.with_name(f"{folder.name}-{safe}")
    options = dict(options)
    if "prefix" in options:
        prefix = f"{options['prefix']}_{safe}"
        if len(prefix) > 33:
            prefix = f"{options['prefix'][:24]}_{hashlib.sha1(prefix.encode()).hexdigest()[:8]}"
        options["prefix"] = prefix
    return kind, folder, options


def effect_model(lib: "Library") -> Embedder:
    """The library's sound-effect model: the one it recorded, else the one it was opened with, else the
    ``effect_model`` setting's."""
    if lib._effect_model is None:
        name = lib.catalog.get_meta("effect_model_id") or lib._effect_model_name or settings.get("effect_model")
        spec = model_spec(name)
        if spec.kind != "effect":
            log.info("effect_model %s is registered for %s; using it for sound effects as asked", name, spec.kind)
        lib._effect_model = load_model(name)
    return lib._effect_model


def model_for(lib: "Library", model_id: str) -> Embedder:
    if model_id == lib.model_id:
        return lib.model
    m = effect_model(lib)
    if m.model_id != model_id:
        raise UserError(f"library {lib.path} holds tracks embedded by {model_id!r}, which is neither its music "
                        f"model {lib.model_id!r} nor its effect model {m.model_id!r}; re-index them")
    return m


def record_effect_model(lib: "Library", model: Embedder) -> None:
    """Remember the effect model a library uses (its id and size), once."""
    recorded = lib.catalog.get_meta("effect_model_id")
    if recorded is None:
        lib.catalog.set_meta("effect_model_id", model.model_id)
        lib.catalog.set_meta("effect_model_version", model.version)
        lib.catalog.set_meta("effect_dim", str(model.dim))
    elif recorded != model.model_id:
        raise UserError(f"library {lib.path} embeds its sound effects with {recorded!r}, not {model.model_id!r}")


def store_of(lib: "Library", model_id: str) -> "VectorStore":
    """The store of a model other than the library's music model, opened once (``Library._side_stores``, which the
    server shares between its threads)."""
    store = lib._side_stores.get(model_id)
    if store is None:
        from .stores import open_store

        kind, folder, options = side_store_args(lib, model_id)
        dim = int(lib.catalog.get_meta("effect_dim") or 0) or None
        store = lib._side_stores.setdefault(model_id, open_store(kind, folder, dim, **options))
    return store


def searcher_of(lib: "Library", model_id: str):
    """A searcher over ``model_id``'s store that looks for the index gap among that model's tracks only."""
    if model_id == lib.model_id:
        if lib.holds_effects():
            lib.searcher.model_id = model_id
        return lib.searcher
    if model_id not in lib._side_searchers:
        from .search import Searcher

        searcher = Searcher(lib.catalog, lib.store_of(model_id), scan_hours=settings.get("scan_hours"),
                            postings=lib.postings)
        searcher.model_id = model_id
        lib._side_searchers[model_id] = searcher
    return lib._side_searchers[model_id]


def stale_music(lib: "Library") -> set[str]:
    """Paths the music model must embed again; in a library with effects, its tracks are left out."""
    m = lib.model
    stale = lib.catalog.stale_track_paths(m.model_id, m.version, m.window_seconds)
    if stale and lib.holds_effects():
        effect_ids = lib.catalog.track_ids_of_model(lib.catalog.get_meta("effect_model_id"))
        stale -= {t.path for t in lib.catalog.tracks(sorted(effect_ids))}
    return stale


# -- indexing ------------------------------------------------------------------------------------------------
def classify(lib: "Library", rules: KindRules, files: list[Path]) -> dict[str, str]:
    """path -> kind for every scanned file (probing a file's duration only where ``auto`` needs it)."""
    from . import decode

    labels = {p: v.get(KIND_LABEL) for p, v in lib.catalog.all_labels().items() if KIND_LABEL in v}
    out: dict[str, str] = {}
    for f in files:
        def duration(f=f) -> float | None:
            row = lib.catalog.track_by_path(str(f))
            if row is not None and row.duration:
                return row.duration
            try:
                return decode.probe(f).duration
            except Exception:  # the indexer reports an unreadable file; its kind does not matter then
                return None

        out[str(f)] = rules.kind_of(f, label=labels.get(str(f)), duration=duration)
    return out


def index_kinds(lib: "Library", paths: list, rules: KindRules, make_indexer: Callable,
                follow_links: bool, prune: bool) -> Iterator:
    """Index ``paths`` with one ``Indexer`` per kind present (music first), each writing its model's store and
    dropping removed tracks from every store; one stream of progress events with one ``done`` at the end."""
    from .ingest import Progress, scan

    _, files = scan(paths, follow_links=follow_links, skipped=[])
    kinds = classify(lib, rules, files)
    present = set(lib.catalog.model_counts())
    models = {"music": lib.model}
    if "effect" in kinds.values() or (present - {lib.model_id}):
        models["effect"] = effect_model(lib)
        record_effect_model(lib, models["effect"])
        from .segment import check_hop

        check_hop(lib.hop, models["effect"].window_seconds)
    stores = {k: lib.store_of(m.model_id) for k, m in models.items()}
    runs = []
    for i, (kind, model) in enumerate(models.items()):
        indexer = make_indexer(stores[kind], model)
        indexer.accept = lambda f, kind=kind: kinds.get(str(f), "music") == kind
        indexer.drop_stores = list(stores.values())
        # the first run prunes for every kind (its scan sees every file; it drops from every store)
        runs.append((kind, indexer.run(paths, prune=prune and i == 0, follow_links=follow_links)))
    # each run's first event is its scan (nothing is written before it): one scan event with the totals
    scans = [next(run) for _, run in runs]
    scan_event = copy.copy(scans[0])
    scan_event.files_total = len(files)
    scan_event.files_done = sum(e.files_done for e in scans)
    scan_event.files_todo = sum(e.files_todo for e in scans)
    yield scan_event
    done: Progress | None = None
    sizes = [sum(1 for v in kinds.values() if v == kind) for kind, _ in runs]
    for i, (kind, run) in enumerate(runs):
        # files of the earlier kinds (all gone through) and the later kinds' unchanged ones (counted at the scan)
        offset = sum(sizes[:i]) + sum(e.files_done for e in scans[i + 1:])
        for event in run:
            event = copy.copy(event)
            event.files_total = len(files)
            event.files_done += offset
            if done is not None:
                event.errors += done.errors
            if event.event != "done":
                yield event
                continue
            if done is None:
                done = event
            else:  # one "done" for the whole run
                done.files_done = event.files_done
                done.errors = event.errors
                done.error_list = done.error_list + event.error_list
                done.audio_seconds += event.audio_seconds
                done.elapsed += event.elapsed
                for k, v in event.stage_seconds.items():
                    done.stage_seconds[k] = done.stage_seconds.get(k, 0.0) + v
    if done is not None:
        done.files_todo = scan_event.files_todo
        yield done


def rebuild_kinds(lib: "Library") -> Iterator[tuple[int, int]]:
    """Refill every model's store from the catalogue (the ``rebuild-index`` of a library holding two models)."""
    from .ingest import normalize

    counts = lib.catalog.model_counts()
    total = lib.catalog.db.execute(
        "SELECT (SELECT count(*) FROM segments WHERE informative = 1 AND vector IS NOT NULL) + "
        "(SELECT count(*) FROM tracks WHERE vector IS NOT NULL)").fetchone()[0]
    done = 0
    for model_id in sorted(counts, key=lambda m: m != lib.model_id):
        try:
            store = lib.store_of(model_id)
        except StoreError as exc:  # derived data: however damaged, start it afresh from the catalogue
            from .stores import reset_store

            log.warning("rebuilding the %s vector index from scratch: %s", model_id, exc)
            kind, folder, _ = side_store_args(lib, model_id)
            if folder is not None:
                reset_store(kind, folder)
            lib._searcher = None
            lib._side_searchers.pop(model_id, None)
            store = lib.store_of(model_id)
        store.clear()
        for ids, vecs in lib.catalog.segment_vectors(model_id=model_id):
            store.upsert("segments", ids, normalize(vecs))
            done += len(ids)
            yield done, total
        tracks = list(lib.catalog.track_vectors(model_id=model_id))
        if tracks:
            store.upsert("tracks", np.array([t for t, _ in tracks], np.int64),
                         normalize(np.stack([v for _, v in tracks])))
            done += len(tracks)
        store.flush()
    lib.catalog.set_meta("index_dirty", "0")
    yield done, total


# -- searching -----------------------------------------------------------------------------------------------
def merge_results(results: list, *, top: int):
    """Concatenate per-model ``SearchResult``s (the query's kind first), keeping each track once and ``top``
    hits; timings are summed and warnings kept."""
    first = results[0]
    hits, seen = [], set()
    for r in results:
        for h in r.hits:
            if h.track_id not in seen:
                seen.add(h.track_id)
                hits.append(h)
    timings: dict[str, float] = {}
    for r in results:
        for k, v in r.timings_ms.items():
            timings[k] = timings.get(k, 0.0) + v
    warnings = [w for r in results for w in r.warnings]
    return replace(first, hits=hits[:top], timings_ms=timings, warnings=list(dict.fromkeys(warnings)))


def search_kinds(lib: "Library", seeds: list, negatives: list, *, allowed: frozenset[int] | None, top: int,
                 seed_options: dict, rank_options: dict):
    """``Library.search`` in a library holding two models: each model's collection ranks its own tracks for the
    seeds (audio embedded by that model; a catalogue track only by its own model), and ``merge_results`` puts
    the query's kind first. ``seed_options`` go to ``Library._seed``, ``rank_options`` to ``rank_seeds``."""
    counts = lib.catalog.model_counts()
    track_models = {row.id: row.model_id for row in (lib.track(int(s)) for s in list(seeds) + list(negatives or [])
                                                     if isinstance(s, (int, np.integer)) and not isinstance(s, bool))}
    sides = sorted(set(track_models.values())) if track_models else sorted(counts)
    if len(sides) > 1 and track_models:
        raise UserError("search: the reference tracks were embedded by different models "
                        f"({', '.join(sides)}); give tracks of one kind")
    results, query_seconds, query_kind = {}, None, None
    # a file object is read by each model in turn: rewind it to where it stood
    starts = {id(x): x.tell() for x in list(seeds) + list(negatives or []) if hasattr(x, "seek") and hasattr(x, "tell")}
    for model_id in sides:
        for x in list(seeds) + list(negatives or []):
            if id(x) in starts:
                x.seek(starts[id(x)])
        model = model_for(lib, model_id)
        searcher = lib.searcher_of(model_id)
        side_allowed = narrow(lib, [], allowed, "search", model_id=model_id)[1]
        t0 = time.perf_counter()
        pos = [lib._seed(s, model=model, searcher=searcher, **seed_options) for s in seeds]
        opts = dict(seed_options, keep_audio=False)
        neg = [lib._seed(s, model=model, searcher=searcher, **opts) for s in negatives or []]
        if query_seconds is None and pos:
            query_seconds = pos[0].info.end - pos[0].info.start
        if query_kind is None and pos and len(pos[0].raw):
            query_kind = head_kind(model, pos[0].raw)
        ranking = dict(rank_options, timings={"embed_ms": (time.perf_counter() - t0) * 1000})  # each side its own
        results[model_id] = searcher.rank_seeds(pos, neg, top=top, allowed=frozenset(side_allowed), **ranking)
    if track_models:
        first = sides[0]
    else:
        want = query_kind or parse_kinds(settings.get("kinds")).query_kind(query_seconds)
        first = next((m for m in sides if side_kind(lib, m) == want), sides[0])
    order = [first] + [m for m in sides if m != first]
    return merge_results([results[m] for m in order], top=top)


def head_kind(model: Embedder, raw: np.ndarray) -> str | None:
    """The kind of a query from its musicnn windows (models/musicnn/kind_head.py, fitted and measured by
    bench/kind_head.py), or None when ``model`` is not the musicnn the head was fitted on."""
    from .models.musicnn import kind_head

    if model.model_id != "musicnn" or model.version != kind_head.MUSICNN_VERSION:
        return None
    v = np.asarray(raw, np.float32).mean(0)
    v = v / max(float(np.linalg.norm(v)), 1e-12)
    return "effect" if kind_head.effect_score(v) > 0 else "music"


def one_model(lib: "Library", track_ids: list[int], what: str) -> str:
    """The model that embedded every one of ``track_ids``; a ``UserError`` when they span two."""
    models = {lib.catalog.track(t).model_id for t in track_ids}
    if len(models) != 1:
        raise UserError(f"{what}: the tracks were embedded by different models ({', '.join(sorted(models))}); "
                        "give tracks of one kind")
    return models.pop()


def narrow(lib: "Library", track_ids: list[int], allowed: frozenset[int] | None, what: str, *,
           model_id: str | None = None):
    """(the model of ``track_ids`` (or ``model_id``), ``allowed`` narrowed to that model's tracks; None allowed:
    all of them)."""
    model_id = model_id or one_model(lib, track_ids, what)
    own = lib.catalog.track_ids_of_model(model_id)
    return model_id, own if allowed is None else allowed & own


def side_kind(lib: "Library", model_id: str) -> str:
    return "music" if model_id == lib.model_id else "effect"
