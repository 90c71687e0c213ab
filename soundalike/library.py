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
from .blas import one_thread as one_blas_thread
from .catalog import Catalog, FileRow, TrackRow
from .errors import CatalogError, QueryError, StoreError, UserError
from .fusion import Weights
from .identify.postings import Postings
from .identify.postings import summary as postings_summary
from .ingest import Indexer, Progress, drop_from_store, normalize, sampled_track_paths
from .models import Embedder, load_model
from .search import Query, Searcher
from .segment import check_hop
from .stores.base import VectorStore
from .stores.remote import redact
from .types import QueryInfo, SearchResult

log = logging.getLogger("soundalike")

SERVER_KINDS = ("qdrant", "pgvector")


def check_store_kind(kind: str) -> None:
    from .stores import KINDS

    if kind not in KINDS:
        raise UserError(f"unknown vector store kind {kind!r}; expected one of {', '.join(KINDS)}")


def store_prefix_for(path: Path) -> str:
    """A new library's collection/table prefix: its folder's name and a random tag, so that libraries
    sharing a server never share collections (lower case, at most 33 characters, as pgvector needs)."""
    import re
    import uuid

    name = re.sub(r"[^a-z0-9]+", "_", path.name.lower()).strip("_")[:20] or "library"
    return f"sl_{name}_{uuid.uuid4().hex[:8]}"


def without_password(url: str) -> str:
    """``url`` with any password removed (``postgresql://me@host/db``): what the catalogue records."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=user + host))


def store_args(path: Path, kind: str, url: str | None, prefix: str) -> tuple[str, Path | None, dict]:
    """(kind, folder, options) for ``open_store``: folder stores live in ``path/index``; qdrant without a
    URL uses qdrant-client's local mode in ``path/index-qdrant``; pgvector needs a URL."""
    if kind == "qdrant":
        if not url:
            return kind, path / "index-qdrant", {"prefix": prefix}
        return kind, None, {"url": url, "prefix": prefix}
    if kind == "pgvector":
        if not url:
            raise UserError(f"library {path} keeps its vectors in PostgreSQL but no URL is known: pass "
                            "--store-url postgresql://... or set SOUNDALIKE_STORE_URL")
        return kind, None, {"url": url, "prefix": prefix}
    return kind, path / "index", {}


#: the largest id SQLite holds (and the largest offset it takes)
MAX_ID = 2**63 - 1

#: bounds on a search's counts, so that a typo (--top 100000000000) is a one-line error rather than a
#: 745 GiB allocation: results (``top``; an evaluation asks for every track of its set), and segments per
#: query window (``k``) and re-ranked candidates (``rerank``), whose cost grows with the query's length
MAX_TOP = 100_000
MAX_K = 1_000


def check_count(name: str, value, *, low: int = 1, high: int = MAX_TOP) -> int:
    """``value`` as an int in [low, high], or a ``UserError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise UserError(f"{name}: expected a whole number from {low} to {high}, got {value!r}")
    if not low <= value <= high:
        raise UserError(f"{name}: must be from {low} to {high}, got {value}")
    return int(value)


def check_range(start, end) -> None:
    """``start`` and ``end`` (seconds, or None) finite, from 0 to ``decode.MAX_SECONDS``; else a ``QueryError``
    naming the option (1e308 overflowed on its way to a sample index)."""
    from .decode import MAX_SECONDS

    for name, v in (("start", start), ("end", end)):
        if v is not None and not (isinstance(v, (int, float, np.number)) and 0 <= v <= MAX_SECONDS):
            raise QueryError(f"--{name}: expected seconds from 0 to {MAX_SECONDS:g}, got {v!r}")


def open(path: str | os.PathLike | None = None, **options) -> "Library":  # noqa: A001 - mirrors builtins.open
    """Open (creating if needed) the library at ``path``; see ``Library``."""
    return Library(path, **options)


class Library:
    """A folder of audio made searchable.

    ``model``: a model name or an ``Embedder``; a new library records it and
    an existing one refuses another. ``hop``: seconds between catalogue
    windows of a new library. ``create=False`` refuses to create a library.
    ``store``: the vector store of a new library (``embedded``, ``exact``,
    ``qdrant``, ``pgvector``), recorded in it; ``store_url``: the server of a
    ``qdrant`` or ``pgvector`` store (a folder for qdrant-client's local mode),
    else the ``SOUNDALIKE_STORE_URL`` environment variable, else the URL the
    library recorded. A password in the URL is never recorded.
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        model: str | Embedder | None = None,
        hop: float | None = None,
        store: str | None = None,
        store_url: str | None = None,
        create: bool = True,
        effect_model: str | Embedder | None = None,
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
            self._store_prefix = store_prefix_for(self.path)
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
            recorded_store = self.catalog.get_meta("store") or settings.get("store")
            if store and store != recorded_store:
                raise UserError(f"library {self.path} uses the {recorded_store} store; to move it to {store}, run "
                                f"`soundalike rebuild-index -L {self.path} --store {store}`")
            self._store_kind = recorded_store
            self._store_prefix = self.catalog.get_meta("store_prefix") or "soundalike"
        check_store_kind(self._store_kind)
        self._store_url = store_url or settings.get("store_url") or self.catalog.get_meta("store_url")
        self._store: VectorStore | None = None
        self._searcher: Searcher | None = None
        self._postings: Postings | None = None
        # sound effects (kinds.py): the effect model, and the store + searcher of each model but the music one
        self._effect_model: Embedder | None = effect_model if isinstance(effect_model, Embedder) else None
        self._effect_model_name: str | None = effect_model if isinstance(effect_model, str) else None
        self._side_stores: dict[str, VectorStore] = {}  # the server shares one dict between its threads
        self._side_searchers: dict[str, Searcher] = {}

    # -- parts, loaded when first needed --------------------------------------
    @property
    def model(self) -> Embedder:
        if self._model is None:
            self._model = load_model(self._model_name)
        return self._model

    @property
    def model_id(self) -> str:
        """The id of the music model (the library's model), without loading it when the library recorded it."""
        return self.catalog.get_meta("model_id") or (self._model.model_id if self._model else self._model_name)

    def holds_effects(self) -> bool:
        """Whether this library embeds sound effects with a model of their own (kinds.py)."""
        return self.catalog.get_meta("effect_model_id") is not None

    def store_of(self, model_id: str) -> VectorStore:
        """The vector store of ``model_id``'s vectors (``store`` for the music model; kinds.py)."""
        from .kinds import store_of

        return self.store if model_id == self.model_id else store_of(self, model_id)

    def searcher_of(self, model_id: str) -> Searcher:
        """The searcher over ``model_id``'s store (``searcher`` for the music model; kinds.py)."""
        from .kinds import searcher_of

        return searcher_of(self, model_id)

    @property
    def dim(self) -> int:
        recorded = self.catalog.get_meta("dim")
        return int(recorded) if recorded else self.model.dim

    def store_args(self) -> tuple[str, Path | None, dict]:
        """(kind, folder, options) that ``open_store`` opens this library's vector store with."""
        return store_args(self.path, self._store_kind, self._store_url, self._store_prefix)

    @property
    def store(self) -> VectorStore:
        if self._store is None:
            from .stores import open_store

            kind, folder, options = self.store_args()
            self._store = open_store(kind, folder, self.dim, **options)
        return self._store

    def store_health(self) -> dict:
        """The store's kind and location, whether it answers, and how many vectors it holds."""
        from .errors import StoreError

        kind, folder, options = self.store_args()
        where = options.get("url") or (str(folder) if folder else None)
        out = {"kind": kind, "location": redact(where) if where else None, "prefix": options.get("prefix")}
        try:
            store = self.store
            out.update(reachable=True, segments=store.count("segments"), tracks=store.count("tracks"))
            if hasattr(store, "health"):
                out.update(store.health())
        except StoreError as exc:
            out.update(reachable=False, error=str(exc))
        return out

    @property
    def postings(self) -> Postings:
        """The landmark postings (identify/postings.py), derived from the catalogue like the vector index."""
        if self._postings is None:
            self._postings = Postings(self.path / "postings")
        return self._postings

    @property
    def searcher(self) -> Searcher:
        if self._searcher is None:
            self._searcher = Searcher(self.catalog, self.store, scan_hours=settings.get("scan_hours"),
                                      postings=self.postings)
        return self._searcher

    def close(self) -> None:
        try:
            for store in self._side_stores.values():
                store.close()
            if self._store is not None:
                self._store.close()
        finally:
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
                ("hop", repr(self.hop)), ("tag_names", list(m.tag_names)),
                ("window_seconds", repr(m.window_seconds)), ("created_at", repr(time.time())),
            ):
                self.catalog.set_meta(key, value)
            self._record_store()

    def _record_store(self) -> None:
        """Record the store's kind, prefix and URL (without its password) in the catalogue."""
        self.catalog.set_meta("store", self._store_kind)
        self.catalog.set_meta("store_prefix", self._store_prefix)
        url = self._store_url if self._store_kind in SERVER_KINDS else None
        self.catalog.set_meta("store_url", without_password(url) if url else "")

    def index(
        self, paths: Iterable[str | os.PathLike], *, workers: int | None = None, prune: bool = True,
        coverage: int | None = None, follow_links: bool | None = None, ray: str | None = None,
        ray_actors: int | None = None,
    ) -> Iterator[Progress]:
        """Index files and folders. Yields ``Progress`` events; the last has ``event == "done"``.

        Unchanged files are skipped, changed ones re-embedded, files gone from
        an indexed folder removed (``prune=False`` keeps them). ``coverage=N``
        embeds at most N evenly spaced windows per new track (a fast first
        pass); a later run without it fills those tracks in densely.
        ``follow_links`` (setting ``follow_links``, off by default): index symbolic
        links that lead out of the given folders; otherwise they are left out
        and listed in the events' ``skipped`` (and an earlier run's are removed).
        ``ray``: decode and embed on a Ray cluster at this address (``"auto"``: the one this machine is part
        of, else a local one), ``ray_actors`` model actors there; the catalogue is written here either way
        (soundalike/ray_ingest.py, docs/ray.md).
        """
        executor = None
        if ray_actors is not None and not ray:
            raise UserError("--ray-actors: only with --ray (the model actors run on a Ray cluster)")
        if ray:
            from .ray_ingest import RayExecutor

            executor = RayExecutor(ray, actors=ray_actors)
        if follow_links is None:
            follow_links = settings.get("follow_links")
        paths = list(paths)
        if not paths:
            raise UserError("index: give at least one file or folder")
        with self._writer_lock():
            self._record_model()
            if self.catalog.get_meta("index_dirty") == "1":
                log.warning("the last indexing run of %s did not finish; rebuilding the vector index", self.path)
                for _ in self._rebuild():
                    pass
            def make_indexer(store, model):
                indexer = Indexer(
                    self.catalog, store, model, hop=self.hop,
                    silence_db=settings.get("silence_db"), workers=workers or settings.get("workers"),
                    coverage=coverage,
                )
                if not settings.get("descriptors"):
                    indexer.descriptors = False
                indexer.landmarks = settings.get("landmarks")
                return indexer

            from .kinds import index_kinds, parse_kinds

            rules = parse_kinds(settings.get("kinds"))
            if rules.active or self.holds_effects():  # music and sound effects, each by its model (kinds.py)
                if executor is not None:
                    raise UserError("--ray: a library of music and sound effects (setting kinds) is indexed here, "
                                    "not on a Ray cluster, for now")
                events = index_kinds(self, paths, rules, make_indexer, follow_links, prune)
            else:
                events = make_indexer(self.store, self.model).run(paths, prune=prune, follow_links=follow_links,
                                                                  executor=executor)
            for event in events:
                if event.event == "done":
                    from .kinds import stale_music

                    if not stale_music(self):
                        self.catalog.set_meta("model_version", self.model.version)
                    plan = self.postings.plan(self.catalog)  # a new generation once the delta has grown
                    if plan is not None:  # at 1,000 hours a merge takes minutes: say so before it starts
                        merge, n = plan
                        yield Progress("postings", message=f"writing {n:,} landmark postings"
                                       + (" (all of them, merged into one generation)" if merge else ""),
                                       files_total=event.files_total, files_done=event.files_done,
                                       files_todo=event.files_todo, errors=event.errors,
                                       audio_seconds=event.audio_seconds, elapsed=event.elapsed)
                        self.postings.refresh(self.catalog)
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
        self, *, workers: int | None = None, prune: bool = True, coverage: int | None = None,
        follow_links: bool | None = None, ray: str | None = None, ray_actors: int | None = None,
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
        yield from self.index(folders, workers=workers, prune=prune, coverage=coverage, follow_links=follow_links,
                              ray=ray, ray_actors=ray_actors)

    def roots(self) -> list[Path]:
        """The folders indexing runs were given (for a library indexed before they were recorded: the
        folders that hold its files)."""
        recorded = self.catalog.roots()
        return [Path(r) for r in recorded] if recorded else self.indexed_folders()

    def relocate(self, old: str | os.PathLike, new: str | os.PathLike, *, must_exist: bool = True):
        """The music at or under ``old`` is now at ``new``: re-point roots, paths and labels, keeping every
        vector; see ``soundalike.catalog_roots.relocate``."""
        from .catalog_roots import relocate

        with self._writer_lock():
            return relocate(self.catalog.db, old, new, library_dir=self.catalog.library_dir,
                            must_exist=must_exist, library=str(self.path))

    def merge(self, other: str | os.PathLike, *, roots: dict[str, str] | None = None, dry_run: bool = False):
        """Merge the library folder ``other`` into this one (new ids, nothing twice); a generator of
        progress events, see ``soundalike.catalog_merge.merge``."""
        from .catalog_merge import merge

        return merge(self, other, roots=roots, dry_run=dry_run)

    def rebuild_index(self, *, store: str | None = None, store_url: str | None = None) -> Iterator[tuple[int, int]]:
        """Rebuild the vector index and the landmark postings from the catalogue. Yields (vectors done, vectors
        total).

        ``store`` (and ``store_url``) move the library to another vector store: it is filled from the
        catalogue and recorded once full; the old store is left as it was.
        """
        with self._writer_lock():
            if store is not None or store_url is not None:
                check_store_kind(store or self._store_kind)
                if self._store is not None:
                    self._store.close()
                    self._store = self._searcher = None
                for side in self._side_stores.values():  # sound effects' store moves too (kinds.py)
                    side.close()
                self._side_stores.clear()
                self._side_searchers.clear()
                self._store_kind = store or self._store_kind
                self._store_url = store_url or settings.get("store_url") or (
                    self._store_url if store is None else None)
            yield from self._rebuild()
            self.postings.refresh(self.catalog, force=True)
            if self.catalog.get_meta("model_id") is not None:
                self._record_store()

    def _rebuild(self) -> Iterator[tuple[int, int]]:
        from .stores import reset_store

        if self.holds_effects():
            from .kinds import rebuild_kinds

            yield from rebuild_kinds(self)
            return

        try:
            store = self.store
        except StoreError as exc:  # the index is derived: however damaged, start it afresh from the catalogue
            log.warning("rebuilding the vector index from scratch: %s", exc)
            reset_store(self._store_kind, self.path / "index")
            self._searcher = None
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
        if isinstance(ref, (int, np.integer)) or (isinstance(ref, str) and ref.isascii() and ref.isdigit()):
            tid = int(ref)
            row = self.catalog.track(tid) if 0 < tid <= MAX_ID else None  # SQLite's integers are 64-bit
        if row is None and not isinstance(ref, (int, np.integer)):
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
        if limit is not None and not 0 <= limit <= MAX_ID or not 0 <= offset <= MAX_ID:
            raise UserError(f"limit and offset must be from 0 to {MAX_ID}")
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
            "effect_model": c.get_meta("effect_model_id"),  # sound effects' model (kinds.py); None: music only
            "model_tracks": c.model_counts(),  # model id -> tracks it embedded
            "dim": int(c.get_meta("dim") or 0) or None,
            "hop": self.hop,
            "store": self._store_kind,
            "store_url": redact(self._store_url) if self._store_url and self._store_kind in SERVER_KINDS else None,
            "tracks": c.track_count(),
            "errors": len(c.errors()),
            "segments": n_segments,
            "informative_segments": n_informative,
            "sampled_tracks": len(sampled_track_paths(c, self.hop)),  # indexed with --coverage
            "audio_hours": round(seconds / 3600, 3),
            "index_dirty": c.get_meta("index_dirty") == "1",
            "landmark_postings": postings_summary(self.path / "postings"),  # identify/postings.py: on disk
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
        top = check_count("top", settings.get("top") if top is None else top)
        k = check_count("k", k or settings.get("k"), high=MAX_K)
        if isinstance(weights, str) or weights is None:
            weights = Weights.parse(weights or settings.get("weights"))
        if query_hop is None:
            query_hop = settings.get("query_hop") or self.hop * 2 / 3
        return top, k, weights, query_hop

    def _max_windows(self, query_hop: float | None) -> int:
        """The query window budget (setting ``query_windows``), or 0 when the caller chose the hop."""
        if query_hop is not None or settings.get("query_hop"):
            return 0
        n = settings.get("query_windows")
        if n < 0:
            raise UserError(f"query_windows: must be >= 0, got {n}")
        return n

    def _seed(self, source, *, start, end, query_hop, keep_audio: bool = False, max_windows: int = 0,
              max_seconds=None, model: Embedder | None = None, searcher: Searcher | None = None) -> Query:
        """Embed one seed: audio (path, bytes, file object) or a catalogue track (an int id).
        ``keep_audio``: keep the audio's first seconds for the re-rank (``Query.audio``).
        ``max_windows``: the seed's window budget (``Searcher.embed_query``, ``_track_seed``)."""
        model = model or self.model
        if isinstance(source, (int, np.integer)) and not isinstance(source, bool):
            return self._track_seed(self.track(int(source)), start=start, end=end, max_windows=max_windows,
                                    model=model)
        kept: list[np.ndarray] | None = [] if keep_audio else None
        info, starts, ends, raw = (searcher or self.searcher).embed_query(
            model, source, start=start, end=end, hop=query_hop, silence_db=settings.get("silence_db"),
            audio_out=kept, max_windows=max_windows, max_seconds=max_seconds,
        )
        q = Query(info, starts, ends, raw, frozenset(), max(self.hop, info.hop) / 2 + 0.25)
        if kept:
            import soxr

            from .identify.align import SR

            q.audio = soxr.resample(np.concatenate(kept), model.sample_rate, SR).astype(np.float32)
        return q

    def _track_seed(self, row: TrackRow, *, start: float | None = None, end: float | None = None,
                    max_windows: int = 0, model: Embedder | None = None) -> Query:
        """A catalogue track as a query: its stored windows (those whose middle is in start..end);
        with ``max_windows``, every n-th of them, so that at most about that many remain (n at most
        4 windows' length in hops, as ``segment.widened_hop``)."""
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
        stride = 1
        if max_windows > 0 and len(segs) > max_windows:
            widest = max(1, int((model or self.model).window_seconds * 4 // self.hop))
            stride = min(-(-len(segs) // max_windows), widest)
        segs = segs[::stride]
        starts = np.array([s[1] for s in segs])
        ends = np.array([s[2] for s in segs])
        raw = np.stack([s[5] for s in segs])
        info = QueryInfo(source=row.path, start=lo, end=min(hi, duration), windows=len(segs),
                         informative_windows=len(segs), hop=self.hop * stride)
        return Query(info, starts, ends, raw, frozenset({row.id}), self.hop / 2 + 0.25)

    @one_blas_thread()  # blas.py: the search's many small products, not OpenBLAS's spinning pool
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
        max_seconds: float | None = None,
        like: str | None = None,
    ) -> SearchResult:
        """Tracks that sound like ``source`` (a path, bytes or a binary file), or its start..end seconds.

        ``rerank``: with one audio reference, align the audio of this many leading
        candidates with the query's (setting ``rerank``; 0: off; see identify/align.py).

        ``source`` may be a list of seeds (audio, or catalogue track ids as ints), and
        ``negatives`` a list of seeds the results should not sound like: the score is
        the mean of the fused score over the positive seeds minus ``negative_weight``
        times the highest over the negative ones (see ``search.combine``). ``start`` and
        ``end`` apply to every seed (a track seed uses its stored windows in that range
        and leaves itself out of the results).

        ``where``: a filter (``"bpm between 90 and 110 and genre = 'jazz'"``);
        ``exclude_album_of``: a track whose album is left out. The result is
        exactly the top ``top`` tracks that satisfy them.

        ``max_seconds``: refuse an audio seed (or its start..end range) longer than this
        (``TooLongError``); the server sets it from ``max_upload_seconds``.

        ``like``: an aspect (``timbre``, ``instruments``, ``genre``, ``mood``, ``rhythm``,
        ``tonality``; aspects.py) that ranks the tracks instead of the default similarity;
        it does not combine with ``negatives`` and turns the re-rank off.
        """
        aspect = self._aspect(like)
        if aspect is not None and negatives:
            raise UserError(f"--like {aspect.name} does not combine with --not references")
        self._check_searchable()
        query_hop_given = query_hop
        top, k, weights, query_hop = self._options(top, k, weights, query_hop)
        check_range(start, end)
        if negative_weight < 0:
            raise UserError("negative_weight must be >= 0")
        seeds = list(source) if isinstance(source, (list, tuple)) else [source]
        if not seeds:
            raise UserError("search: give at least one reference")
        allowed = self.allowed_tracks(where, exclude_album_of)
        t0 = time.perf_counter()
        rerank = check_count("rerank", settings.get("rerank") if rerank is None else rerank, low=0, high=MAX_K)
        ranked, listed = None, top
        if aspect is not None:  # the aspect picks the tracks; the search below shows their evidence
            from . import aspects

            ranked, allowed = aspects.pick(self, aspect, seeds, allowed=allowed, top=top, model_id=self.model_id,
                                           start=start, end=end, max_seconds=max_seconds)
            listed, rerank = max(len(allowed), 1), 0
        keep = bool(rerank) and len(seeds) == 1 and not negatives
        budget = self._max_windows(query_hop_given)
        if self.holds_effects():  # music and sound effects: each model's collection, like with like (kinds.py)
            from .kinds import search_kinds

            result = search_kinds(
                self, seeds, negatives or [], allowed=allowed, top=listed,
                seed_options=dict(start=start, end=end, query_hop=query_hop, keep_audio=keep, max_windows=budget,
                                  max_seconds=max_seconds),
                rank_options=dict(k=k, weights=weights, negative_weight=negative_weight, rerank=rerank))
        else:
            pos = [self._seed(s, start=start, end=end, query_hop=query_hop, keep_audio=keep, max_windows=budget,
                              max_seconds=max_seconds) for s in seeds]
            neg = [self._seed(s, start=start, end=end, query_hop=query_hop, max_windows=budget,
                              max_seconds=max_seconds) for s in negatives or []]
            timings = {"embed_ms": (time.perf_counter() - t0) * 1000}
            result = self.searcher.rank_seeds(
                pos, neg, top=listed, k=k, weights=weights, timings=timings, allowed=allowed,
                negative_weight=negative_weight, rerank=rerank,
            )
        return result if ranked is None else aspects.reorder(result, ranked, like=aspect, top=top)

    def similar(
        self, track: int | str | os.PathLike, *, start: float | None = None, end: float | None = None,
        top: int | None = None, k: int | None = None,
        weights: Weights | str | None = None, where: str | None = None,
        exclude_album_of: int | str | os.PathLike | None = None, like: str | None = None,
    ) -> SearchResult:
        """Tracks that sound like a catalogue track, or its ``start``..``end`` seconds (its stored
        windows whose middle falls in the range; nothing is decoded). The track itself is left out.

        ``where`` and ``exclude_album_of`` filter the results as in ``search``; ``like``, an aspect,
        ranks them as in ``search`` (it compares whole tracks, whatever the range).
        """
        aspect = self._aspect(like)
        self._check_searchable()
        row = self.track(track)
        top, k, weights, _ = self._options(top, k, weights, None)
        check_range(start, end)
        allowed = self.allowed_tracks(where, exclude_album_of)
        ranked, listed = None, top
        if aspect is not None:  # the aspect picks the tracks; the search below shows their evidence
            from . import aspects

            ranked, allowed = aspects.pick(self, aspect, [row.id], allowed=allowed, top=top, model_id=row.model_id)
            listed = max(len(allowed), 1)
        searcher, model = self.searcher, None
        if self.holds_effects():  # the track's own model's collection (kinds.py)
            from .kinds import model_for, narrow

            model_id, allowed = narrow(self, [row.id], allowed, "similar")
            searcher, model = self.searcher_of(model_id), model_for(self, model_id)
        seed = self._track_seed(row, start=start, end=end, max_windows=self._max_windows(None), model=model)
        result = searcher.rank_seeds(
            [seed], [], top=listed, k=k, weights=weights, allowed=allowed, timings={"embed_ms": 0.0},
        )
        return result if ranked is None else aspects.reorder(result, ranked, like=aspect, top=top)

    @staticmethod
    def _aspect(like: str | None):
        """The aspect named ``like`` (aspects.py), checked before any work; None for the default similarity."""
        if like is None:
            return None
        from .aspects import aspect

        return aspect(like)

    def radio(self, seeds, *, n: int = 30, where: str | None = None, seed: int = 0):
        """A playlist of ``n`` tracks from seed tracks (ids or paths; the seeds first): varied, no copies,
        never two of one album in a row, the added tracks within ``where``; the same ``seed`` gives the same
        list. Returns a ``soundalike.organise.radio.Playlist`` (see that module)."""
        from .organise.radio import make_radio

        self._check_not_empty()
        refs = list(seeds) if isinstance(seeds, (list, tuple)) else [seeds]
        ids = [self.track(s).id for s in refs]
        store, allowed = self.store, self.allowed_tracks(where, None)
        if self.holds_effects():  # a playlist stays within the seeds' model (kinds.py)
            from .kinds import narrow

            model_id, allowed = narrow(self, ids, allowed, "radio")
            store = self.store_of(model_id)
        return make_radio(self.catalog, store, ids, n=n, allowed=allowed,
                          where=where, rng_seed=seed, hop=self.hop)

    def sonic_path(self, a, b, *, steps: int = 10, where: str | None = None):
        """A smooth walk of ``steps`` tracks from track ``a`` to track ``b`` (ids or paths), each step nearer
        B; the steps within ``where``. Returns a ``soundalike.organise.radio.Playlist``."""
        from .organise.radio import make_path

        self._check_not_empty()
        ra, rb = self.track(a), self.track(b)
        allowed = self.allowed_tracks(where, None)
        if self.holds_effects():  # a path stays within one model's tracks (kinds.py)
            from .kinds import narrow

            allowed = narrow(self, [ra.id, rb.id], allowed, "path")[1]
        return make_path(self.catalog, ra.id, rb.id, steps=steps, allowed=allowed, where=where, hop=self.hop)

    def classify(self, field: str, *, classes: dict[str, str] | None = None, k: int | None = None,
                 dry_run: bool = False):
        """Predict label ``field`` for the tracks without a user value of it: kNN votes of the labelled tracks,
        or ``classes`` defined by words ({value: "calm ambient piano"}). Stores the predictions (marked
        predicted, with confidence and margin) unless ``dry_run``; returns a
        ``soundalike.organise.classify.Classification``. Evaluation and review: that module."""
        from .organise import classify as C

        if classes is not None:
            return C.classify_by_words(self.catalog, field, classes, cache_dir=settings.get("cache"), dry_run=dry_run)
        return C.classify(self.catalog, field, options=C.ClassifyOptions(k=k), dry_run=dry_run)

    def clusters(self, *, k: int | None = None, k_max: int | None = None, field: str | None = "cluster",
                 replace: bool = False, seed: int = 0):
        """Group the library by sound into ``k`` clusters (chosen from the data when None), each named by its
        distinctive tags and metadata, and store each track's cluster in the label ``field`` (None: compute
        only). Returns a ``soundalike.organise.clusters.Clustering`` (see that module)."""
        from .organise.clusters import ClusterOptions, find_clusters, store_clusters

        self._check_not_empty()
        options = ClusterOptions() if k_max is None else ClusterOptions(k_max=k_max)
        result = find_clusters(self.catalog, k=k, seed=seed, options=options)
        if field is not None:
            store_clusters(self.catalog, result, field=field, replace=replace)
        return result

    def map(self, *, refit: bool = False, method: str | None = None, seed: int = 0):
        """The library map (``soundalike.organise.map``): lay it out (``refit``, or when there is none yet, by
        ``method``) or place the tracks indexed since; returns its ``MapInfo``."""
        from .organise.map import DEFAULT_METHOD, build_map, map_info, update_map

        self._check_not_empty()
        if refit:
            return build_map(self.catalog, method=method or map_info(self.catalog).method or DEFAULT_METHOD, seed=seed)
        update_map(self.catalog, method=method or DEFAULT_METHOD)
        return map_info(self.catalog)

    def _check_not_empty(self) -> None:
        if self.catalog.track_count() == 0:
            raise UserError(f"library {self.path} is empty; run `soundalike index FOLDER` first")

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
        return self._text.search(query, top=check_count("top", top), allowed=allowed)

    def track_tags(self, track: int | str | os.PathLike, *, top: int = 10, per_span: int = 3, max_spans: int = 12):
        """A track's top tags and its tags over time (``soundalike.tags.TrackTags``, with ``to_dict()``)."""
        from .tags import track_tags

        return track_tags(self.catalog, self.track(track).id, top=top, per_span=per_span, max_spans=max_spans)

    def duplicates(self, threshold: float | None = None, *, neighbours: int = 10):
        """Near-duplicate track pairs (re-encodes, trims, fades, level and speed changes), best first.

        Returns ``soundalike.duplicates.DuplicatePair`` (a, b, score 0..1, offset,
        track_cosine, landmarks, speed); groups, relations and the copy to keep:
        ``soundalike.organise.duplicates_report.duplicate_report(library)``.
        ``threshold`` None: ``duplicates.VERIFIED_THRESHOLD``
        for pairs whose landmarks agree, ``duplicates.DEFAULT_THRESHOLD`` for tracks
        without landmarks. Pairs whose landmarks disagree are never returned.
        """
        from .duplicates import find_duplicates

        self._check_searchable()
        t = None if threshold is None else float(threshold)
        if t is not None and not 0 < t <= 1:
            raise UserError(f"threshold: must be in (0, 1], got {t:g}")
        postings = self.postings  # landmark look-ups find copies whose embedding moved far
        postings.sync(self.catalog)
        if self.holds_effects():  # each model's tracks among themselves (kinds.py)
            return sorted((p for m in self.catalog.model_counts() for p in find_duplicates(
                self.catalog, self.store_of(m), threshold=t, hop=self.hop, neighbours=neighbours,
                postings=postings, model_id=m)), key=lambda p: (-p.score, p.a, p.b))
        return find_duplicates(self.catalog, self.store, threshold=t, hop=self.hop, neighbours=neighbours,
                               postings=postings)

    # -- export ---------------------------------------------------------------
    def export(self, target: str | os.PathLike, *, format: str = "audiovector") -> Iterator[Path]:
        """Write vectors for other tools (``audiovector`` JSON per track, or one ``parquet`` file)."""
        import json

        from .export import export

        names = json.loads(self.catalog.get_meta("tag_names") or "[]")
        yield from export(self.catalog, target, format=format, tag_names=names)
