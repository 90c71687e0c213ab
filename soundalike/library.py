"""``Library``: the Python API over one library folder.

A library folder holds ``catalog.sqlite`` (the source of truth) and
``index/`` (the vector index, derived and rebuildable). Long operations are
generators of progress events; nothing here prints.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from . import settings
from .catalog import Catalog, FileRow, TrackRow
from .errors import CatalogError, QueryError, UserError
from .fusion import Weights
from .ingest import Indexer, Progress, drop_from_store, normalize, sampled_track_paths
from .models import Embedder, load_model
from .search import Query, Searcher
from .segment import check_hop
from .stores.base import VectorStore
from .types import QueryInfo, SearchResult

log = logging.getLogger("soundalike")


def open(path: str | os.PathLike | None = None, **options) -> "Library":  # noqa: A001 - mirrors builtins.open
    """Open (creating if needed) the library at ``path``; see ``Library``."""
    return Library(path, **options)


class Library:
    """A folder of audio made searchable.

    ``model``: a model name or an ``Embedder``; a new library records it and
    an existing one refuses another. ``hop``: seconds between catalogue
    windows of a new library. ``create=False`` refuses to create a library.
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        model: str | Embedder | None = None,
        hop: float | None = None,
        store: str | None = None,
        create: bool = True,
    ) -> None:
        self.path = Path(path or settings.get("library")).expanduser()
        db_path = self.path / "catalog.sqlite"
        if not db_path.exists():
            if not create:
                raise UserError(f"no library at {self.path} (index some audio into it first)")
            if self.path.exists() and not self.path.is_dir():
                raise UserError(f"library path is a file, not a folder: {self.path}")
            self.path.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog(db_path)
        self._model: Embedder | None = model if isinstance(model, Embedder) else None
        requested = model.model_id if isinstance(model, Embedder) else model
        recorded = self.catalog.get_meta("model_id")
        if recorded is None:
            self._model_name = requested or settings.get("model")
            self.hop = float(hop if hop is not None else settings.get("hop"))
            self._store_kind = store or settings.get("store")
        else:
            if requested and requested != recorded:
                raise CatalogError(
                    f"library {self.path} was built with model {recorded!r}, not {requested!r}; "
                    "use another library folder for another model"
                )
            self._model_name = recorded
            self.hop = float(self.catalog.get_meta("hop"))
            if hop is not None and float(hop) != self.hop:
                raise UserError(f"hop: library {self.path} uses a hop of {self.hop:g} s, not {hop:g} s")
            self._store_kind = store or self.catalog.get_meta("store") or settings.get("store")
        self._store: VectorStore | None = None
        self._searcher: Searcher | None = None

    # -- parts, loaded when first needed --------------------------------------
    @property
    def model(self) -> Embedder:
        if self._model is None:
            self._model = load_model(self._model_name)
        return self._model

    @property
    def dim(self) -> int:
        recorded = self.catalog.get_meta("dim")
        return int(recorded) if recorded else self.model.dim

    @property
    def store(self) -> VectorStore:
        if self._store is None:
            from .stores import open_store

            self._store = open_store(self._store_kind, self.path / "index", self.dim)
        return self._store

    @property
    def searcher(self) -> Searcher:
        if self._searcher is None:
            self._searcher = Searcher(self.catalog, self.store, scan_hours=settings.get("scan_hours"))
        return self._searcher

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        self.catalog.close()

    def __enter__(self) -> "Library":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- indexing --------------------------------------------------------------
    @contextmanager
    def _writer_lock(self):
        f = (self.path / "index.lock").open("w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise UserError(f"another soundalike process is indexing {self.path}; wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
            f.close()

    def _record_model(self) -> None:
        m = self.model
        check_hop(self.hop, m.window_seconds)
        if self.catalog.get_meta("model_id") is None:
            for key, value in (
                ("model_id", m.model_id), ("model_version", m.version), ("dim", str(m.dim)),
                ("hop", repr(self.hop)), ("store", self._store_kind), ("tag_names", list(m.tag_names)),
                ("window_seconds", repr(m.window_seconds)), ("created_at", repr(time.time())),
            ):
                self.catalog.set_meta(key, value)

    def index(
        self, paths: Iterable[str | os.PathLike], *, workers: int | None = None, prune: bool = True,
        coverage: int | None = None,
    ) -> Iterator[Progress]:
        """Index files and folders. Yields ``Progress`` events; the last has ``event == "done"``.

        Unchanged files are skipped, changed ones re-embedded, files gone from
        an indexed folder removed (``prune=False`` keeps them). ``coverage=N``
        embeds at most N evenly spaced windows per new track (a fast first
        pass); a later run without it fills those tracks in densely.
        """
        paths = list(paths)
        if not paths:
            raise UserError("index: give at least one file or folder")
        with self._writer_lock():
            self._record_model()
            if self.catalog.get_meta("index_dirty") == "1":
                log.warning("the last indexing run of %s did not finish; rebuilding the vector index", self.path)
                for _ in self._rebuild():
                    pass
            indexer = Indexer(
                self.catalog, self.store, self.model, hop=self.hop,
                silence_db=settings.get("silence_db"), workers=workers or settings.get("workers"),
                coverage=coverage,
            )
            if not settings.get("descriptors"):
                indexer.descriptors = False
            indexer.landmarks = settings.get("landmarks")
            for event in indexer.run(paths, prune=prune):
                if event.event == "done" and not self.catalog.stale_track_paths(
                    self.model.model_id, self.model.version, self.model.window_seconds
                ):
                    self.catalog.set_meta("model_version", self.model.version)
                yield event  # "done" is the last: nothing may follow it, since callers stop there

    def indexed_folders(self) -> list[Path]:
        """The fewest folders that hold every file in the catalogue (those that still exist)."""
        dirs = sorted({str(Path(p).parent) for (p,) in self.catalog.db.execute("SELECT path FROM files")})
        out: list[str] = []
        for d in dirs:  # sorted: a folder comes right before its subfolders
            if not (out and (d == out[-1] or d.startswith(out[-1].rstrip("/") + "/"))):
                out.append(d)
        return [Path(d) for d in out if Path(d).is_dir()]

    def reindex(
        self, *, workers: int | None = None, prune: bool = True, coverage: int | None = None
    ) -> Iterator[Progress]:
        """``index`` the folders this library already holds (``indexed_folders``), e.g. after a model upgrade.

        Tracks embedded by another model version are re-embedded; files in
        folders that no longer exist are removed from the catalogue.
        """
        folders = self.indexed_folders()
        with self._writer_lock():
            gone = [r[0] for r in self.catalog.db.execute("SELECT id, path FROM files")
                    if prune and not any(Path(r[1]).is_relative_to(f) for f in folders)]
            drop_from_store(self.store, self.catalog.delete_files(gone))
            if gone:
                self.store.flush()
        if not folders:
            if self.catalog.track_count() == 0:
                self.catalog.set_meta("model_version", self.model.version)
            raise UserError(f"library {self.path}: none of the folders it indexed exist any more; "
                            "run `soundalike index FOLDER` on new ones")
        yield from self.index(folders, workers=workers, prune=prune, coverage=coverage)

    def rebuild_index(self) -> Iterator[tuple[int, int]]:
        """Rebuild the vector index from the catalogue. Yields (vectors done, vectors total)."""
        with self._writer_lock():
            yield from self._rebuild()

    def _rebuild(self) -> Iterator[tuple[int, int]]:
        store = self.store
        store.clear()
        total = self.catalog.db.execute(
            "SELECT (SELECT count(*) FROM segments WHERE informative = 1 AND vector IS NOT NULL) + "
            "(SELECT count(*) FROM tracks WHERE vector IS NOT NULL)"
        ).fetchone()[0]
        done = 0
        for ids, vecs in self.catalog.segment_vectors():
            store.upsert("segments", ids, normalize(vecs))
            done += len(ids)
            yield done, total
        tracks = list(self.catalog.track_vectors())
        if tracks:
            store.upsert("tracks", np.array([t for t, _ in tracks], np.int64), normalize(np.stack([v for _, v in tracks])))
            done += len(tracks)
        store.flush()
        self.catalog.set_meta("index_dirty", "0")
        yield done, total

    # -- looking things up -----------------------------------------------------
    def track(self, ref: int | str | os.PathLike) -> TrackRow:
        """A catalogue track by id, or by path (absolute or relative to the working directory)."""
        row = None
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            row = self.catalog.track(int(ref))
        if row is None and not isinstance(ref, int):
            row = self.catalog.track_by_path(str(Path(ref).expanduser().resolve()))
        if row is None:
            raise QueryError(f"no track {ref!s} in library {self.path}")
        return row

    def tracks(
        self, where: str | None = None, order_by: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[TrackRow]:
        """Catalogue tracks, optionally filtered (``where``, see ``soundalike.filters``), ordered
        (``order_by="bpm desc, title"``; default: path) and paged (``limit``, ``offset``)."""
        from .filters import compile_filter, compile_order

        labels = self.catalog.label_names()
        w = compile_filter(where, labels, self.catalog.tag_names()) if where else None
        o = compile_order(order_by, labels, self.catalog.tag_names()) if order_by else None
        if limit is not None and limit < 0 or offset < 0:
            raise UserError("limit and offset must be >= 0")
        return self.catalog.tracks_where(
            w.sql if w else None, w.params if w else (), order_sql=o.sql if o else None,
            order_params=o.params if o else (), limit=limit, offset=offset,
        )

    def count_tracks(self, where: str | None = None) -> int:
        """How many tracks ``where`` selects (all tracks when None)."""
        from .filters import compile_filter

        if not where:
            return self.catalog.track_count()
        w = compile_filter(where, self.catalog.label_names(), self.catalog.tag_names())
        return self.catalog.count_where(w.sql, w.params)

    def allowed_tracks(
        self, where: str | None = None, exclude_album_of: int | str | os.PathLike | None = None
    ) -> frozenset[int] | None:
        """Track ids a search may return: those ``where`` selects, minus the album of
        ``exclude_album_of`` (tracks with its album tag, or, when it has none, the tracks in its
        folder). None means no restriction."""
        from .filters import compile_filter

        if not where and exclude_album_of is None:
            return None
        if where:
            w = compile_filter(where, self.catalog.label_names(), self.catalog.tag_names())
            ids = set(self.catalog.track_ids_where(w.sql, w.params))
        else:
            ids = set(self.catalog.track_ids_where("1"))
        if exclude_album_of is not None:
            ids -= self.album_of(exclude_album_of)
        return frozenset(ids)

    def album_of(self, track: int | str | os.PathLike) -> set[int]:
        """The track ids of ``track``'s album (same album tag, ignoring case; else same folder)."""
        row = self.track(track)
        if row.album:
            return set(self.catalog.track_ids_where("t.album = ? COLLATE NOCASE", (row.album,)))
        folder = str(Path(row.path).parent).rstrip("/") + "/"
        return set(self.catalog.track_ids_where(
            "substr(f.path, 1, ?) = ? AND instr(substr(f.path, ?), '/') = 0",
            (len(folder), folder, len(folder) + 1),
        ))

    # -- user metadata -----------------------------------------------------------
    def labels(self, track: int | str | os.PathLike) -> dict[str, object]:
        """User metadata of a track (imported with ``import_labels``)."""
        return self.catalog.labels_of(self.track(track).path)

    def set_labels(self, track: int | str | os.PathLike, **values) -> None:
        """Set user metadata on a track; a value of None removes that column."""
        from .metadata import check_label_name

        for name in values:
            check_label_name(name)
        self.catalog.set_labels([(self.track(track).path, values)])

    def import_labels(self, source: str | os.PathLike, *, key: str | None = None):
        """Merge a CSV of user metadata; see ``soundalike.metadata.import_labels``."""
        from .metadata import import_labels

        return import_labels(self, source, key=key)

    def export_labels(self, target=None) -> int:
        """Write user metadata as CSV (path, track_id, one column per name) to a path or text file
        object (stdout when None). Returns the rows written."""
        from .metadata import export_labels

        return export_labels(self, target)

    def errors(self) -> list[FileRow]:
        return self.catalog.errors()

    def stats(self) -> dict:
        c = self.catalog
        n_segments, n_informative, seconds = c.db.execute(
            "SELECT count(*), coalesce(sum(informative), 0), "
            "(SELECT coalesce(sum(duration), 0) FROM tracks) FROM segments"
        ).fetchone()
        return {
            "library": str(self.path),
            "model": c.get_meta("model_id") or self._model_name,
            "model_version": c.get_meta("model_version"),
            "dim": int(c.get_meta("dim") or 0) or None,
            "hop": self.hop,
            "store": self._store_kind,
            "tracks": c.track_count(),
            "errors": len(c.errors()),
            "segments": n_segments,
            "informative_segments": n_informative,
            "sampled_tracks": len(sampled_track_paths(c, self.hop)),  # indexed with --coverage
            "audio_hours": round(seconds / 3600, 3),
            "index_dirty": c.get_meta("index_dirty") == "1",
        }

    # -- searching -------------------------------------------------------------
    def _check_searchable(self) -> None:
        if self.catalog.track_count() == 0:
            raise UserError(f"library {self.path} is empty; run `soundalike index FOLDER` first")
        recorded = self.catalog.get_meta("model_version")
        if recorded and recorded != self.model.version:
            raise CatalogError(
                f"library {self.path} was indexed with {self.model.model_id} {recorded}, this soundalike has "
                f"{self.model.version}; run `soundalike index -L {self.path}` to re-embed its tracks"
            )

    def _options(self, top, k, weights, query_hop):
        if top is None:
            top = settings.get("top")
        if top < 1:
            raise UserError("top: must be at least 1")
        k = k or settings.get("k")
        if isinstance(weights, str) or weights is None:
            weights = Weights.parse(weights or settings.get("weights"))
        if query_hop is None:
            query_hop = settings.get("query_hop") or self.hop * 2 / 3
        return top, k, weights, query_hop

    def _seed(self, source, *, start, end, query_hop, keep_audio: bool = False) -> Query:
        """Embed one seed: audio (path, bytes, file object) or a catalogue track (an int id).
        ``keep_audio``: keep the audio's first seconds for the re-rank (``Query.audio``)."""
        if isinstance(source, (int, np.integer)) and not isinstance(source, bool):
            return self._track_seed(self.track(int(source)), start=start, end=end)
        kept: list[np.ndarray] | None = [] if keep_audio else None
        info, starts, ends, raw = self.searcher.embed_query(
            self.model, source, start=start, end=end, hop=query_hop, silence_db=settings.get("silence_db"),
            audio_out=kept,
        )
        q = Query(info, starts, ends, raw, frozenset(), max(self.hop, query_hop) / 2 + 0.25)
        if kept:
            import soxr

            from .rerank import SR

            q.audio = soxr.resample(np.concatenate(kept), self.model.sample_rate, SR).astype(np.float32)
        return q

    def _track_seed(self, row: TrackRow, *, start: float | None = None, end: float | None = None) -> Query:
        """A catalogue track as a query: its stored windows (those whose middle is in start..end)."""
        duration = row.duration or 0.0
        lo, hi = start or 0.0, duration if end is None else end
        if start is not None and start >= duration:
            raise QueryError(f"--start {start:g} s is beyond the end of track {row.id} ({duration:.1f} s)")
        if hi <= lo:
            raise QueryError(f"--end {hi:g} s must be after --start {lo:g} s")
        segs = [s for s in self.catalog.segments_of(row.id)
                if s[3] and s[5] is not None and lo <= (s[1] + s[2]) / 2 <= hi]
        if not segs:
            where = "" if start is None and end is None else f" between {lo:g} and {hi:g} s"
            raise QueryError(f"track {row.id} ({row.path}) has no informative audio{where} to search with")
        starts = np.array([s[1] for s in segs])
        ends = np.array([s[2] for s in segs])
        raw = np.stack([s[5] for s in segs])
        info = QueryInfo(source=row.path, start=lo, end=min(hi, duration), windows=len(segs),
                         informative_windows=len(segs), hop=self.hop)
        return Query(info, starts, ends, raw, frozenset({row.id}), self.hop / 2 + 0.25)

    def search(
        self,
        source,
        *,
        start: float | None = None,
        end: float | None = None,
        top: int | None = None,
        k: int | None = None,
        weights: Weights | str | None = None,
        query_hop: float | None = None,
        where: str | None = None,
        exclude_album_of: int | str | os.PathLike | None = None,
        negatives: list | None = None,
        negative_weight: float = 1.0,
        rerank: int | None = None,
    ) -> SearchResult:
        """Tracks that sound like ``source`` (a path, bytes or a binary file), or its start..end seconds.

        ``rerank``: with one audio reference, align the audio of this many leading
        candidates with the query's (setting ``rerank``; 0: off; see rerank.py).

        ``source`` may be a list of seeds (audio, or catalogue track ids as ints), and
        ``negatives`` a list of seeds the results should not sound like: the score is
        the mean of the fused score over the positive seeds minus ``negative_weight``
        times the highest over the negative ones (see ``search.combine``). ``start`` and
        ``end`` apply to every seed (a track seed uses its stored windows in that range
        and leaves itself out of the results).

        ``where``: a filter (``"bpm between 90 and 110 and genre = 'jazz'"``);
        ``exclude_album_of``: a track whose album is left out. The result is
        exactly the top ``top`` tracks that satisfy them.
        """
        self._check_searchable()
        top, k, weights, query_hop = self._options(top, k, weights, query_hop)
        if start is not None and start < 0:
            raise QueryError("--start must be >= 0")
        if negative_weight < 0:
            raise UserError("negative_weight must be >= 0")
        seeds = list(source) if isinstance(source, (list, tuple)) else [source]
        if not seeds:
            raise UserError("search: give at least one reference")
        allowed = self.allowed_tracks(where, exclude_album_of)
        t0 = time.perf_counter()
        rerank = settings.get("rerank") if rerank is None else rerank
        if rerank < 0:
            raise UserError("rerank: must be >= 0")
        keep = bool(rerank) and len(seeds) == 1 and not negatives
        pos = [self._seed(s, start=start, end=end, query_hop=query_hop, keep_audio=keep) for s in seeds]
        neg = [self._seed(s, start=start, end=end, query_hop=query_hop) for s in negatives or []]
        timings = {"embed_ms": (time.perf_counter() - t0) * 1000}
        return self.searcher.rank_seeds(
            pos, neg, top=top, k=k, weights=weights, timings=timings, allowed=allowed,
            negative_weight=negative_weight, rerank=rerank,
        )

    def similar(
        self, track: int | str | os.PathLike, *, start: float | None = None, end: float | None = None,
        top: int | None = None, k: int | None = None,
        weights: Weights | str | None = None, where: str | None = None,
        exclude_album_of: int | str | os.PathLike | None = None,
    ) -> SearchResult:
        """Tracks that sound like a catalogue track, or its ``start``..``end`` seconds (its stored
        windows whose middle falls in the range; nothing is decoded). The track itself is left out.

        ``where`` and ``exclude_album_of`` filter the results as in ``search``.
        """
        self._check_searchable()
        row = self.track(track)
        top, k, weights, _ = self._options(top, k, weights, None)
        allowed = self.allowed_tracks(where, exclude_album_of)
        seed = self._track_seed(row, start=start, end=end)
        return self.searcher.rank_seeds(
            [seed], [], top=top, k=k, weights=weights, allowed=allowed, timings={"embed_ms": 0.0},
        )

    def text_search(
        self, query: str, *, top: int = 10, where: str | None = None,
        exclude_album_of: int | str | os.PathLike | None = None,
    ):
        """Tracks that match a text query ("dark:2 ambient -vocals"), through the tag vocabulary and
        keyword matches on metadata. Returns a ``soundalike.text.TextResult``; each hit explains
        itself, and a query the tags cannot express is flagged ``weak`` with a message.
        ``where`` and ``exclude_album_of`` filter the results as in ``search``.
        """
        from .text import TextSearcher

        if self.catalog.track_count() == 0:
            raise UserError(f"library {self.path} is empty; run `soundalike index FOLDER` first")
        if getattr(self, "_text", None) is None:
            self._text = TextSearcher(self.catalog, cache_dir=settings.get("cache"))
        allowed = self.allowed_tracks(where, exclude_album_of)
        return self._text.search(query, top=top, allowed=allowed)

    def track_tags(self, track: int | str | os.PathLike, *, top: int = 10, per_span: int = 3, max_spans: int = 12):
        """A track's top tags and its tags over time (``soundalike.tags.TrackTags``, with ``to_dict()``)."""
        from .tags import track_tags

        return track_tags(self.catalog, self.track(track).id, top=top, per_span=per_span, max_spans=max_spans)

    def duplicates(self, threshold: float | None = None, *, neighbours: int = 10):
        """Near-duplicate track pairs (re-encodes, trims, fades, level changes), best first.

        Returns ``soundalike.duplicates.DuplicatePair`` (a, b, score 0..1, offset,
        track_cosine, landmarks); ``threshold`` None: ``duplicates.VERIFIED_THRESHOLD``
        for pairs whose landmarks agree, ``duplicates.DEFAULT_THRESHOLD`` for tracks
        without landmarks. Pairs whose landmarks disagree are never returned.
        """
        from .duplicates import find_duplicates

        self._check_searchable()
        t = None if threshold is None else float(threshold)
        if t is not None and not 0 < t <= 1:
            raise UserError(f"threshold: must be in (0, 1], got {t:g}")
        return find_duplicates(self.catalog, self.store, threshold=t, hop=self.hop, neighbours=neighbours)

    # -- export ---------------------------------------------------------------
    def export(self, target: str | os.PathLike, *, format: str = "audiovector") -> Iterator[Path]:
        """Write vectors for other tools (``audiovector`` JSON per track, or one ``parquet`` file)."""
        import json

        from .export import export

        names = json.loads(self.catalog.get_meta("tag_names") or "[]")
        yield from export(self.catalog, target, format=format, tag_names=names)
