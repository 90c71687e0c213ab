"""scan -> hash -> decode -> segment -> features -> embed -> store, as a generator of progress events.

Worker threads hash, decode, cut windows and compute the model's front end;
the calling thread runs the network in batches and writes the catalogue and
the vector index. A bounded queue between them keeps memory flat whatever
the file lengths, and lets decoding overlap with inference.

Incremental by content: a file whose size and mtime are unchanged is skipped
without reading it; a file whose bytes hash to what the catalogue holds is
only touched; a file that moved keeps its vectors; a deleted file is removed.
A file that fails is recorded with its reason and the batch goes on.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from . import decode as decoding
from . import descriptors
from .blas import one_thread as one_blas_thread
from .catalog import Catalog, FileRow, NewSegment, as_stored
from .errors import DecodeError, UserError
from .identify.features import Features
from .metadata import read_tags
from .models.base import Embedder
from .segment import DEFAULT_SILENCE_DB, coverage_indices, windows
from .stores.base import VectorStore
from .types import ModelOutput

log = logging.getLogger("soundalike")

AUDIO_EXTENSIONS = frozenset(
    ".mp3 .wav .wave .flac .aif .aiff .aifc .m4a .mp4 .aac .ogg .oga .opus .wma .webm .mka".split()
)


@dataclass
class Progress:
    """One progress event of an indexing run. ``event`` says what happened to ``path``.

    events: ``scan`` (totals known), ``progress`` (inside a long file),
    ``indexed``, ``landmarks`` (only the landmarks of an unchanged track
    indexed before they existed were added), ``unchanged``, ``moved``,
    ``removed``, ``error``, ``done``
    (the run is over; ``error_list`` lists the failures).
    """

    event: str
    path: str | None = None
    message: str | None = None
    files_total: int = 0
    files_done: int = 0
    files_todo: int = 0
    errors: int = 0
    audio_seconds: float = 0.0
    elapsed: float = 0.0
    error_list: list[tuple[str, str]] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    #: (path, reason) of what the scan found and left out: symbolic links out of the roots, tracker modules where
    #: the decoder cannot read them; on ``scan`` and ``done``
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def realtime(self) -> float:
        return self.audio_seconds / self.elapsed if self.elapsed > 0 else 0.0


def scan(
    paths: Iterable[str | Path], *, follow_links: bool = False, skipped: list[tuple[str, str]] | None = None
) -> tuple[list[Path], list[Path]]:
    """Expand paths into (roots, audio files). Missing paths raise UserError.

    Symbolic links: a link (to a file or a folder) inside a root that leads out of every root is not
    followed unless ``follow_links``; it is appended to ``skipped`` as (path, reason). Links that stay
    inside the roots are followed for files (the folder they lead to is walked anyway). With
    ``follow_links`` linked folders are walked too, each real folder once (so a link cycle ends).

    Tracker modules in a folder are read where the decoder can (``decoding.tracker_support``) and
    otherwise appended to ``skipped`` with the reason; one named on its own is tried, and fails with it.
    """
    roots, files = [], []
    skipped = [] if skipped is None else skipped
    trackers = decoding.TRACKER_EXTENSIONS if decoding.tracker_support() else frozenset()
    for p in paths:
        path = Path(p).expanduser()
        if not path.exists():
            raise UserError(f"no such file or folder: {path}")
        roots.append(path.resolve())

    def outside(link: Path) -> Path | None:
        """The target of ``link`` when it lies outside every root (None when inside)."""
        target = link.resolve()
        return None if any(target == r or target.is_relative_to(r) for r in roots) else target

    def skip(link: Path, target: Path) -> None:
        skipped.append((str(link), f"symbolic link to {target}, outside the indexed folders "
                                   "(--follow-links or SOUNDALIKE_FOLLOW_LINKS=1 indexes it)"))

    for path in roots:
        if path.is_file():
            files.append(path)
            continue
        walked: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(path, followlinks=follow_links):
            if follow_links:
                real = os.path.realpath(dirpath)
                if real in walked:  # reached again through a link: a cycle, or walked already
                    dirnames[:] = []
                    continue
                walked.add(real)
            kept = []
            for d in sorted(dirnames):
                if d.startswith("."):
                    continue
                full = Path(dirpath) / d
                if not follow_links and full.is_symlink() and (target := outside(full)) is not None:
                    skip(full, target)
                    continue
                kept.append(d)
            dirnames[:] = kept
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                full = Path(dirpath) / name
                ext = full.suffix.lower()
                if ext in AUDIO_EXTENSIONS or ext in trackers:
                    if not follow_links and full.is_symlink() and (target := outside(full)) is not None:
                        skip(full, target)
                        continue
                    files.append(full)
                elif ext in decoding.TRACKER_EXTENSIONS:
                    skipped.append((str(full), decoding.TRACKER_REASON))
    if not files:
        why = f" (skipped {len(skipped)}: {skipped[0][1]}{', …' if len(skipped) > 1 else ''})" if skipped else ""
        raise UserError(f"no audio files found in {', '.join(str(r) for r in roots)}{why}")
    return roots, files


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class _Job:
    path: Path
    size: int
    mtime: float
    old: FileRow | None
    landmarks_only: bool = False  # an unchanged track indexed before landmarks existed: only they are added
    stale: bool = False  # its track was embedded by another model version or sampled by --coverage: redo it


@dataclass
class _FileResult:
    """What the worker produced for one file, filled in as chunks are embedded."""

    job: _Job
    sha256: str | None = None
    info: dict = field(default_factory=dict)
    segments: list[NewSegment] = field(default_factory=list)
    raw: list[np.ndarray] = field(default_factory=list)
    tags: list[np.ndarray] = field(default_factory=list)
    done_seconds: float = 0.0


@dataclass(frozen=True)
class FileWork:
    """How one file becomes events: the settings every worker needs, a thread of a local run or a task on a
    Ray node (``soundalike.ray_ingest``). Picklable; the model is passed beside it."""

    hop: float
    silence_db: float = DEFAULT_SILENCE_DB
    coverage: int | None = None  # embed at most this many evenly spaced windows per track; None: all
    descriptors: bool = False  # measure loudness, tempo, key
    landmarks: bool = True  # landmark hashes and the scan print, for identification

    def keep(self, model: Embedder, path: Path, duration: float | None) -> frozenset[int] | None:
        """The windows a coverage run embeds, from the header's duration (or one counting decode)."""
        if not self.coverage:
            return None
        sr = model.sample_rate
        if duration:
            n = round(duration * sr)
        else:
            n = sum(len(b) for b in decoding.stream(path, sample_rate=sr))
        return coverage_indices(n, window=model.window_samples, hop=max(1, round(self.hop * sr)), coverage=self.coverage)


def file_events(
    job: _Job, *, model: Embedder, work: FileWork, missing_by_sha: dict[str, FileRow],
    stage: dict[str, float], lock: threading.Lock | None = None,
) -> Iterator[tuple]:
    """Everything one file gives, as the events the catalogue writer consumes, computed from its path alone.

    ``(kind, job, a, b)``: ``touch`` (same bytes as the catalogue's row), ``moved`` (b: the missing row with
    these bytes, popped from ``missing_by_sha``), ``begin`` (a: sha256, b: container info and tags), one
    ``chunk`` per batch of windows (a: the windows' times and levels without their samples, b: the model's
    features of the informative ones, or None), ``end`` (a: seconds decoded, b: descriptors and landmarks),
    ``landmarks`` (a landmarks-only job: a: seconds, b: (landmarks, print)) or ``error`` (a: sha256, b: reason).
    Seconds per stage are added to ``stage`` (under ``lock``). The network is not run here: the caller
    batches chunks of several files through it (``Indexer._embedded``, or model actors on Ray).
    """
    lock = lock or threading.Lock()
    if job.landmarks_only:
        yield _landmarks_event(job, model=model, stage=stage, lock=lock)
        return
    t0 = time.perf_counter()
    try:
        sha = sha256_file(job.path)
    except OSError as exc:
        yield ("error", job, None, f"cannot read file: {exc.strerror or exc}")
        return
    t1 = time.perf_counter()
    with lock:
        stage["hash"] += t1 - t0
    old = job.old
    if old is not None and old.status == "ok" and old.sha256 == sha and not job.stale:
        yield ("touch", job, sha, None)
        return
    moved = missing_by_sha.pop(sha, None)  # one file takes a moved row (the others are decoded)
    if moved is not None:
        yield ("moved", job, sha, moved)
        return
    try:
        info = decoding.probe(job.path)
        meta = {  # the duration is what decodes, set at the end
            "sample_rate": info.sample_rate,
            "channels": info.channels,
            "codec": info.codec,
            "format": info.format,
            **read_tags(job.path),
        }
        yield ("begin", job, sha, meta)
        decoded = 0
        analyzer = _analyzer(work, model, info)
        marker = Features(model.sample_rate) if work.landmarks else None
        desc_s = land_s = 0.0  # seconds in the analyzer and the landmarks: not the decode stage's

        def blocks():
            nonlocal decoded, analyzer, desc_s, land_s
            side = analyzer.push_side if analyzer is not None and analyzer.wants_side else None
            for block in decoding.stream(job.path, sample_rate=model.sample_rate, side=side):
                decoded += len(block)
                if marker is not None:
                    tl = time.perf_counter()
                    marker.push(block)
                    land_s += time.perf_counter() - tl
                if analyzer is not None:
                    ta = time.perf_counter()
                    try:
                        analyzer.push(block)
                    except Exception:  # descriptors are a nicety: never fail a file for them
                        log.warning("descriptors of %s failed", job.path, exc_info=True)
                        analyzer.wants_side = False  # stop buffering the side signal
                        analyzer = None
                    desc_s += time.perf_counter() - ta
                yield block

        n = 0
        t = time.perf_counter()
        for batch in windows(
            blocks(),
            sample_rate=model.sample_rate,
            window_seconds=model.window_seconds,
            hop_seconds=work.hop,
            silence_db=work.silence_db,
            max_windows=model.batch_size,
            keep=work.keep(model, job.path, info.duration),
        ):
            t_feat = time.perf_counter()
            feats = model.features(batch.samples[batch.informative]) if batch.informative.any() else None
            n += len(batch.starts)
            now = time.perf_counter()
            with lock:
                stage["decode"] += t_feat - t - desc_s - land_s
                stage["descriptors"] += desc_s
                stage["landmarks"] += land_s
                stage["features"] += now - t_feat
            desc_s = land_s = 0.0
            # the consumer needs the features and the windows' times, not their samples (a new empty
            # array, not a view that would keep the whole block alive while the chunk waits)
            light = replace(batch, samples=np.empty((0, batch.samples.shape[1]), np.float32))
            yield ("chunk", job, light, feats)
            t = time.perf_counter()
        if n == 0:
            raise DecodeError(job.path, "no audio samples")
        measured = _describe(analyzer, job.path, stage=stage, lock=lock)
        if marker is not None:
            tl = time.perf_counter()
            found, prints = marker.finish()
            measured["landmarks"] = (found.hashes, found.frames, prints)
            with lock:
                stage["landmarks"] += time.perf_counter() - tl
        yield ("end", job, decoded / model.sample_rate, measured)
    except DecodeError as exc:
        yield ("error", job, sha, exc.reason)
    except Exception as exc:  # one bad file must not end the batch
        log.exception("unexpected failure on %s", job.path)
        yield ("error", job, sha, f"{type(exc).__name__}: {exc}")


def _landmarks_event(job: _Job, *, model: Embedder, stage: dict[str, float], lock: threading.Lock) -> tuple:
    """Decode a file only for its landmarks and scan print (its vectors are current), or say why it failed."""
    sha = job.old.sha256
    t = time.perf_counter()
    marker = Features(model.sample_rate)
    try:
        seconds = 0.0
        for block in decoding.stream(job.path, sample_rate=model.sample_rate):
            marker.push(block)
            seconds += len(block) / model.sample_rate
        found = marker.finish()
    except DecodeError as exc:
        return ("error", job, sha, exc.reason)
    except Exception as exc:  # one bad file must not end the batch
        log.exception("unexpected failure on %s", job.path)
        return ("error", job, sha, f"{type(exc).__name__}: {exc}")
    with lock:
        stage["landmarks"] += time.perf_counter() - t
    return ("landmarks", job, seconds, found)


def _analyzer(work: FileWork, model: Embedder, info):
    """A descriptors ``Analyzer`` for the file, or None when they are not measured."""
    if not work.descriptors:
        return None
    return descriptors.Analyzer(model.sample_rate, channels=info.channels, expected_seconds=info.duration)


def _describe(analyzer, path, *, stage: dict[str, float], lock: threading.Lock) -> dict:
    if analyzer is None:
        return {}
    t = time.perf_counter()
    try:
        return analyzer.result().as_info()
    except Exception:
        log.warning("descriptors of %s failed", path, exc_info=True)
        return {}
    finally:
        with lock:
            stage["descriptors"] += time.perf_counter() - t


def new_stage_seconds() -> dict[str, float]:
    """Seconds per stage of an indexing run, summed over workers (they overlap with the network)."""
    return dict.fromkeys(("hash", "decode", "descriptors", "landmarks", "features", "network", "store"), 0.0)


class Indexer:
    def __init__(
        self,
        catalog: Catalog,
        store: VectorStore,
        model: Embedder,
        *,
        hop: float,
        silence_db: float = DEFAULT_SILENCE_DB,
        workers: int = 2,
        queue_chunks: int = 24,  # events (a file is begin, its chunks, end) between the workers and the network
        coverage: int | None = None,
    ) -> None:
        self.catalog, self.store, self.model = catalog, store, model
        self.hop, self.silence_db = hop, silence_db
        self.workers = max(1, workers)
        self.queue_chunks = queue_chunks
        if coverage is not None and coverage < 1:
            raise UserError(f"coverage: must be at least 1 window per track, got {coverage}")
        self.coverage = coverage  # embed at most this many evenly spaced windows per track; None: all
        self.descriptors: bool | None = None  # measure loudness, tempo, key (None: if the extra is installed)
        self.landmarks = True  # landmark hashes of every track, for identification (identify/landmarks.py)
        # a library holding two models (kinds.py): this run embeds only the files ``accept`` takes (the others are
        # still "seen", so never pruned), and a removed or re-embedded track leaves every store in ``drop_stores``
        self.accept = None
        self.drop_stores: list[VectorStore] = [store]
        self.stage = new_stage_seconds()
        self._lock = threading.Lock()

    # -- worker side ---------------------------------------------------------
    def _work(self, jobs: queue.Queue, out: queue.Queue, missing_by_sha: dict[str, FileRow], stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                job = jobs.get_nowait()
            except queue.Empty:
                return
            for event in file_events(job, model=self.model, work=self.work, missing_by_sha=missing_by_sha,
                                     stage=self.stage, lock=self._lock):
                out.put(event)
                if stop.is_set():
                    return

    def _local_events(self, jobs: list[_Job], missing_by_sha: dict[str, FileRow]) -> Iterator[tuple]:
        """The events of ``jobs`` from worker threads here, the network run in this thread (``_embedded``)."""
        todo: queue.Queue = queue.Queue()
        for job in jobs:
            todo.put(job)
        out: queue.Queue = queue.Queue(maxsize=self.queue_chunks)
        stop = threading.Event()
        threads = [
            threading.Thread(target=self._work, args=(todo, out, missing_by_sha, stop), daemon=True)
            for _ in range(min(self.workers, max(len(jobs), 1)))
        ]
        # The worker threads are the parallelism: numpy's BLAS (the mel's matrix product) on one thread
        # each, not a pool of its own per call that spins for work and fights the network for the cores.
        # docs/benchmarks.md measures it.
        with one_blas_thread():
            for t in threads:
                t.start()
            try:
                yield from self._embedded(out, threads)
            finally:
                stop.set()
                for t in threads:
                    t.join(timeout=5)

    # -- consumer side ------------------------------------------------------
    def run(
        self, paths: Iterable[str | Path], *, prune: bool = True, follow_links: bool = False, executor=None,
    ) -> Iterator[Progress]:
        """Index ``paths``: yields ``Progress`` events, the last ``done``.

        ``executor``: where files are decoded and embedded; None: threads here. Otherwise an object whose
        ``events(indexer, jobs, missing_by_sha)`` yields the events ``_embedded`` yields (a Ray cluster:
        ``soundalike.ray_ingest.RayExecutor``); this thread writes them to the catalogue either way.
        """
        t_start = time.perf_counter()
        skipped: list[tuple[str, str]] = []
        roots, files = scan(paths, follow_links=follow_links, skipped=skipped)
        self.catalog.add_roots([str(r) for r in roots if r.is_dir()])
        seen = {str(f) for f in files}
        if self.accept is not None:
            files = [f for f in files if self.accept(f)]
        model = self.model
        self._stale = self.catalog.stale_track_paths(model.model_id, model.version, model.window_seconds)
        if not self.coverage:  # a dense run fills in the tracks a --coverage run only sampled
            self._stale |= sampled_track_paths(self.catalog, self.hop)
        unmarked = self.catalog.paths_without_landmarks() - self._stale if self.landmarks else set()
        known: dict[str, FileRow] = {}
        for root in roots:
            known.update(self.catalog.files_under(root))
        missing = [row for p, row in known.items() if p not in seen] if prune else []
        missing_by_sha = {row.sha256: row for row in missing
                          if row.sha256 and row.status == "ok" and row.path not in self._stale}

        jobs: list[_Job] = []
        for f in files:
            old = known.get(str(f))
            stale = str(f) in self._stale
            try:
                st = f.stat()
            except OSError:
                jobs.append(_Job(f, 0, 0.0, old, stale=stale))  # the worker reports the read error
                continue
            if old is not None and old.size == st.st_size and old.mtime == st.st_mtime and not stale:
                if str(f) in unmarked:
                    jobs.append(_Job(f, st.st_size, st.st_mtime, old, landmarks_only=True))
                continue
            jobs.append(_Job(f, st.st_size, st.st_mtime, old, stale=stale))
        todo = len(jobs)
        if self.descriptors is None:
            self.descriptors = descriptors.available()
            if not self.descriptors and todo:
                log.warning("loudness, tempo and key are not measured: pip install 'soundalike[descriptors]'")
        self.work = FileWork(hop=self.hop, silence_db=self.silence_db, coverage=self.coverage,
                             descriptors=bool(self.descriptors), landmarks=bool(self.landmarks))

        p = Progress("scan", files_total=len(files), files_todo=todo, files_done=len(files) - todo, skipped=skipped)
        yield copy.copy(p)
        self.catalog.set_meta("index_dirty", "1")

        if not todo:
            source: Generator[tuple, None, None] = (e for e in ())
        elif executor is None:
            source = self._local_events(jobs, missing_by_sha)
        else:
            source = executor.events(self, jobs, missing_by_sha)
        results: dict[str, _FileResult] = {}
        errors: list[tuple[str, str]] = []
        remaining = todo
        last_flush = last_tick = time.perf_counter()
        done_audio = 0.0
        try:
            for kind, job, a, b in source:
                key = str(job.path)
                if kind == "begin":
                    results[key] = _FileResult(job, sha256=a, info=b)
                    continue
                if kind == "chunk":
                    res = results[key]
                    self._add_chunk(res, a, b)
                    res.done_seconds = float(a.ends[-1])
                    now = time.perf_counter()
                    if now - last_tick > 0.5:  # long files: show progress inside the file too
                        last_tick = now
                        p.event, p.path, p.message = "progress", key, None
                        p.elapsed = now - t_start
                        p.audio_seconds = done_audio + sum(r.done_seconds for r in results.values())
                        yield copy.copy(p)
                    continue
                remaining -= 1
                p.files_done += 1
                if kind == "end":
                    res = results.pop(key)
                    res.info["duration"] = a  # what was decoded, not what the container claims
                    res.info.update(b or {})  # descriptors
                    try:
                        self._write(res)
                    except sqlite3.IntegrityError as exc:  # a value the catalogue refuses: this file's, not the batch's
                        log.exception("cannot record %s", key)
                        kind, a, b = "error", res.sha256, f"cannot record it: {exc}"
                    else:
                        done_audio += a
                        p.event, p.path, p.message = "indexed", key, None
                elif kind == "landmarks":
                    t = time.perf_counter()
                    marks, prints = b
                    self.catalog.set_landmarks(self.catalog.track_by_path(key).id, marks.hashes, marks.frames, prints)
                    self.stage["store"] += time.perf_counter() - t
                    done_audio += a
                    p.event, p.path, p.message = "landmarks", key, "landmarks and scan print added (vectors unchanged)"
                elif kind == "touch":
                    self.catalog.touch_file(job.old.id, size=job.size, mtime=job.mtime)
                    p.event, p.path, p.message = "unchanged", key, "content unchanged"
                elif kind == "moved":
                    self.catalog.move_file(b.id, key, size=job.size, mtime=job.mtime)
                    missing = [m for m in missing if m.id != b.id]
                    p.event, p.path, p.message = "moved", key, f"moved from {b.path}"
                if kind == "error":
                    results.pop(key, None)
                    removed = self.catalog.record_error(key, size=job.size, mtime=job.mtime, sha256=a, error=b)
                    self._drop(removed)
                    errors.append((key, b))
                    p.errors += 1
                    p.event, p.path, p.message = "error", key, b
                p.elapsed = time.perf_counter() - t_start
                p.audio_seconds = done_audio + sum(r.done_seconds for r in results.values())
                yield copy.copy(p)
                if time.perf_counter() - last_flush > 30:
                    self._flush()
                    last_flush = time.perf_counter()
                if not remaining:
                    break
            for row in missing:
                self._drop(self.catalog.delete_files([row.id]))
                p.event, p.path, p.message = "removed", row.path, "file no longer exists"
                yield copy.copy(p)
        finally:
            source.close()  # stops the workers, here or on the cluster
            self._flush()
        self.catalog.set_meta("index_dirty", "0")
        p.event, p.path, p.message = "done", None, None
        p.elapsed = time.perf_counter() - t_start
        p.error_list = errors
        p.skipped = skipped
        p.stage_seconds = dict(self.stage)
        yield p

    def _embedded(self, out: queue.Queue, threads: list[threading.Thread]) -> Iterator[tuple]:
        """The workers' events in order, each ``chunk`` with its network output in place of its features.

        Chunks waiting in the queue go through the network together, up to
        ``batch_size`` windows, even when they come from different files: a
        library of short samples otherwise runs one window per call, on one
        core. The events behind a waiting chunk (its file's ``end``) wait with it.
        """
        held: list[list] = []  # events since the first chunk not yet embedded
        windows = 0
        while True:
            try:
                event = list(out.get_nowait() if held else out.get(timeout=0.5))
            except queue.Empty:
                if held:
                    yield from self._run_network(held)
                    held, windows = [], 0
                elif not any(t.is_alive() for t in threads) and out.empty():
                    return
                continue
            if event[0] != "chunk":
                if held:
                    held.append(event)
                else:
                    yield tuple(event)
                continue
            n = 0 if event[3] is None else len(event[3])
            if held and windows + n > self.model.batch_size:
                yield from self._run_network(held)
                held, windows = [], 0
            held.append(event)
            windows += n

    def _run_network(self, events: list[list]) -> Iterator[tuple]:
        chunks = [e for e in events if e[0] == "chunk" and e[3] is not None]
        if chunks:
            t = time.perf_counter()
            output = self.model.embed_batch(np.concatenate([e[3] for e in chunks]) if len(chunks) > 1 else chunks[0][3])
            self.stage["network"] += time.perf_counter() - t
            i = 0
            for e in chunks:
                n = len(e[3])
                e[3] = ModelOutput(output.embeddings[i : i + n], output.tags[i : i + n])
                i += n
        for e in events:
            yield tuple(e)

    def _add_chunk(self, res: _FileResult, batch, out: ModelOutput | None) -> None:
        j = 0
        for i in range(len(batch.starts)):
            if batch.informative[i]:
                vec, tags = out.embeddings[j], out.tags[j]
                res.raw.append(vec)
                res.tags.append(tags)
                j += 1
            else:
                vec = tags = None
            res.segments.append(
                NewSegment(float(batch.starts[i]), float(batch.ends[i]), bool(batch.informative[i]),
                           float(batch.level_db[i]), vec, tags)
            )

    def _write(self, res: _FileResult) -> None:
        t = time.perf_counter()
        vector = tags = None
        if res.raw:
            mean = np.mean(res.raw, axis=0)
            vector = as_stored(mean / max(float(np.linalg.norm(mean)), 1e-12))
            tags = np.mean(res.tags, axis=0)
        job = res.job
        track_id, seg_ids, removed = self.catalog.replace_track(
            str(job.path), size=job.size, mtime=job.mtime, sha256=res.sha256, info=res.info,
            model_id=self.model.model_id, model_version=self.model.version,
            vector=vector, tags=tags, segments=res.segments, landmarks=res.info.pop("landmarks", None),
        )
        self._drop(removed)
        informative = [(sid, s.vector) for sid, s in zip(seg_ids, res.segments) if s.informative]
        if informative:
            ids = np.array([sid for sid, _ in informative], np.int64)
            # index exactly what the catalogue keeps, so a rebuild gives the same answers
            self.store.upsert("segments", ids, normalize(as_stored(np.stack([v for _, v in informative]))))
        if vector is not None:
            self.store.upsert("tracks", np.array([track_id], np.int64), normalize(vector[None, :]))
        self.stage["store"] += time.perf_counter() - t

    def _drop(self, removed: list[tuple[int, list[int]]]) -> None:
        for store in self.drop_stores:
            drop_from_store(store, removed)

    def _flush(self) -> None:
        t = time.perf_counter()
        self.store.flush()
        self.stage["store"] += time.perf_counter() - t


def drop_from_store(store: VectorStore, removed: list[tuple[int, list[int]]]) -> None:
    """Delete from the vector index the tracks and segments the catalogue removed ((track id, segment ids))."""
    for track_id, seg_ids in removed:
        store.delete("tracks", np.array([track_id], np.int64))
        if seg_ids:
            store.delete("segments", np.array(seg_ids, np.int64))


def sampled_track_paths(catalog: Catalog, hop: float) -> set[str]:
    """Paths of tracks indexed with ``--coverage``: some gap between their windows exceeds the hop.

    A dense track's windows start every ``hop`` seconds (the end-aligned tail
    sooner); a sampled one skips at least one, so a gap is over 1.5 hops.
    """
    rows = catalog.db.execute(
        "SELECT DISTINCT f.path FROM (SELECT track_id, start - lag(start) OVER (PARTITION BY track_id ORDER BY start) "
        "AS gap FROM segments) s JOIN tracks t ON t.id = s.track_id JOIN files f ON f.id = t.file_id WHERE s.gap > ?",
        (hop * 1.25,),
    )
    return {r[0] for r in rows}


def normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
