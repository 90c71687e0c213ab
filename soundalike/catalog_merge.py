"""Merging another library's catalogue into this one: libraries indexed on several machines join into one.

``merge(library, other)`` copies the other catalogue's tracks (their files' roots and relative paths, the
tracks' metadata and descriptors, segments with their vectors and tag probabilities, landmarks and scan
prints) and its user labels into ``library``, then brings the derived indexes up to date: the new vectors are
upserted into the vector store and the landmark postings refreshed, so nothing is decoded or embedded again.

* **Ids**: every copied track and segment gets a new id in this catalogue (the vector and landmark ids are
  these ids), so two libraries whose ids overlap never collide.
* **Paths**: a file keeps its path relative to its root; the root keeps its path on the other machine unless
  ``roots`` maps it (``{"/home/b/music": "/mnt/b-music"}``), and ``relocate`` can re-point it later.
* **Nothing twice**: a file whose path (its root and relative path) this library already holds with the same
  content is *present*; one whose content (sha256) this library holds under another path is a *copy*; both are
  left out, and their labels join the track this library has, without replacing any of its own. A path this
  library holds with other content is a *conflict*: this library's file is kept. Merging the same library
  twice adds nothing, and a merge interrupted half way is finished by running it again.
* **Comparable vectors only**: the two libraries must share the model, its version, the vector size, the
  window, the hop and the tag names; otherwise the merge is refused before anything is written. An empty
  library takes the other's settings.

The work is a generator of ``MergeProgress`` events, like indexing; the last has ``event == "done"`` and
carries the ``MergeReport``. Nothing prints.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .catalog import Catalog, from_blob
from .catalog_roots import add_roots, normal, prefix, root_of, under
from .errors import UserError
from .ingest import normalize

log = logging.getLogger("soundalike")

#: what must agree for two libraries' vectors to be comparable (meta keys)
COMPARABLE = ("model_id", "model_version", "dim", "window_seconds", "hop", "tag_names")
#: what an empty library takes from the other when it is merged into
ADOPTED = (*COMPARABLE, "created_at")
BATCH_TRACKS = 64  # tracks copied per transaction


@dataclass
class MergeReport:
    """What a merge did (or, with ``dry_run``, would do)."""

    other: str
    dry_run: bool
    tracks_added: int = 0
    segments_added: int = 0
    vectors_added: int = 0
    present: int = 0  # same root and relative path, same content: already here
    copies: int = 0  # same content under another path here
    conflicts: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): this library's file kept
    failed_there: int = 0  # files that had failed to index in the other library (re-index them here)
    labels_added: int = 0
    labels_kept: int = 0  # labels the other library set differently: this library's value kept
    roots_added: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["conflicts"] = [{"path": p, "reason": r} for p, r in self.conflicts]
        return out


@dataclass
class MergeProgress:
    """One event of a merge: ``plan`` (counts known), ``tracks`` (a batch copied), ``postings`` (the landmark
    postings are being written), ``done`` (the last; ``report`` says what happened)."""

    event: str
    done: int = 0
    total: int = 0
    message: str | None = None
    report: MergeReport | None = None


def parse_root_map(items) -> dict[str, str]:
    """``["OLD=NEW", ...]`` as {OLD: NEW} (absolute, normalised); a malformed item is a ``UserError``."""
    out = {}
    for item in items or ():
        old, sep, new = str(item).partition("=")
        if not sep or not old.strip() or not new.strip():
            raise UserError(f"--root: expected OLD=NEW (the other library's root, then where it is here), got {item!r}")
        out[os.path.normpath(os.path.abspath(os.path.expanduser(old.strip())))] = normal(new.strip())
    return out


def _mapped(path: str, roots: dict[str, str]) -> str:
    """``path`` with the longest ``roots`` key it lies under replaced by its value."""
    best = max((old for old in roots if under(path, old)), key=len, default=None)
    return path if best is None else roots[best] + path[len(best):]


def _check_comparable(ours: Catalog, theirs: Catalog, *, here: str, there: str) -> None:
    for key in COMPARABLE:
        a, b = ours.get_meta(key), theirs.get_meta(key)
        if key in ("dim", "window_seconds", "hop"):
            same = a is not None and b is not None and float(a) == float(b)
        else:
            same = a == b
        if not same:
            what = {"model_id": "model", "model_version": "model version", "dim": "vector size",
                    "window_seconds": "window (s)", "hop": "hop (s)", "tag_names": "tag names"}[key]
            values = "differ" if key == "tag_names" else f"{b!r} there, {a!r} here"
            raise UserError(f"merge: {there} and {here} have vectors that cannot be compared: {what} {values}; "
                            "re-index one of them with the other's settings ('soundalike index -L LIB' with no "
                            "path upgrades a model version)")


def _columns(db, table: str, *, leave_out: tuple[str, ...]) -> list[str]:
    return [r[1] for r in db.execute(f"PRAGMA table_info({table})") if r[1] not in leave_out]


def merge(library, other: str | os.PathLike, *, roots: dict[str, str] | None = None, dry_run: bool = False,
          batch: int = BATCH_TRACKS) -> Iterator[MergeProgress]:
    """Merge the library folder ``other`` into ``library`` (a ``Library``); see the module docstring.

    ``roots``: {the other library's root: where that music is on this machine} (``parse_root_map``).
    ``dry_run``: plan and report, write nothing.
    """
    t0 = time.perf_counter()
    other_path = Path(other).expanduser()
    if not (other_path / "catalog.sqlite").is_file():
        raise UserError(f"merge: no library at {other_path} (a library folder holds catalog.sqlite)")
    if other_path.resolve() == library.path.resolve():
        raise UserError(f"merge: {other_path} is the library itself")
    roots = dict(roots or {})
    theirs = Catalog(other_path / "catalog.sqlite")
    try:  # a merge writes like an index run: one writer at a time, from the plan on
        with nullcontext() if dry_run else library._writer_lock():
            yield from _merge(library, theirs, other_path, roots=roots, dry_run=dry_run, batch=batch, t0=t0)
    finally:
        theirs.close()


def _merge(library, theirs: Catalog, other_path: Path, *, roots, dry_run, batch, t0) -> Iterator[MergeProgress]:
    ours = library.catalog
    report = MergeReport(other=str(other_path), dry_run=dry_run)
    if theirs.get_meta("model_id") is None:  # nothing was ever indexed there
        report.seconds = round(time.perf_counter() - t0, 3)
        yield MergeProgress("done", message=f"{other_path} holds no tracks", report=report)
        return
    empty = ours.get_meta("model_id") is None
    if empty:
        requested = library._model.model_id if library._model is not None else None
        if requested is not None and requested != theirs.get_meta("model_id"):
            raise UserError(f"merge: {other_path} was built with model {theirs.get_meta('model_id')!r}, "
                            f"not {requested!r}")
    else:
        _check_comparable(ours, theirs, here=str(library.path), there=str(other_path))

    # the plan: where each of their files goes here, and what is already here
    their_roots = {rid: _mapped(path, roots) for rid, path in theirs.db.execute("SELECT id, path FROM roots")}
    rows = theirs.db.execute(
        "SELECT f.id, f.path, f.root_id, f.rel, f.sha256, f.status, t.id FROM files f "
        "LEFT JOIN tracks t ON t.file_id = f.id ORDER BY f.id").fetchall()
    todo: list[tuple[int, int, str]] = []  # (their file id, their track id, path here)
    label_target: dict[str, str] = {}  # their path -> the path here whose track their labels join
    todo_roots: set[int] = set()
    for fid, path, rid, rel, sha, status, tid in rows:
        here = (prefix(their_roots[rid]) + rel) if rid is not None else _mapped(path, roots)
        if status != "ok" or tid is None:
            report.failed_there += 1
            continue
        mine = ours.file_by_path(here)
        if mine is not None:
            if mine.status == "ok" and mine.sha256 == sha:
                report.present += 1
                label_target[path] = here
            elif mine.status == "ok":
                report.conflicts.append((here, "this library holds other content at this path; its file kept"))
            else:
                report.conflicts.append((here, f"this file failed to index here ({mine.error}); re-index it"))
            continue
        copy = ours.ok_file_by_sha(sha) if sha else None
        if copy is not None:
            report.copies += 1
            label_target[path] = copy.path
            continue
        todo.append((fid, tid, here))
        label_target[path] = here
        if rid is not None:
            todo_roots.add(rid)
    known_roots = set(ours.roots())  # their roots that receive a track become roots here
    report.roots_added = sorted({p for p in (their_roots[r] for r in todo_roots) if p not in known_roots})
    yield MergeProgress("plan", total=len(todo), message=(
        f"{len(todo)} tracks to add, {report.present} present, {report.copies} copies of tracks here, "
        f"{len(report.conflicts)} conflicts"))
    if dry_run:
        report.tracks_added = len(todo)
        ids = [tid for _, tid, _ in todo]
        report.segments_added = sum(theirs.db.execute(
            f"SELECT count(*) FROM segments WHERE track_id IN ({','.join('?' * len(ids[i:i + 500]))})",
            ids[i:i + 500]).fetchone()[0] for i in range(0, len(ids), 500))
        report.labels_added, report.labels_kept = _merge_labels(ours, theirs, label_target, roots, write=False)
        report.seconds = round(time.perf_counter() - t0, 3)
        yield MergeProgress("done", total=len(todo), report=report)
        return

    if empty:
        _adopt(library, theirs)
    if ours.get_meta("index_dirty") == "1":
        log.warning("the last run on %s did not finish; rebuilding the vector index", library.path)
        for _ in library._rebuild():
            pass
    with ours.db:
        add_roots(ours.db, report.roots_added, library_dir=ours.library_dir)
    store = library.store
    ours.set_meta("index_dirty", "1")
    copier = _Copier(ours, theirs)
    for i in range(0, len(todo), batch):
        part = todo[i:i + batch]
        seg_ids, seg_vecs, track_ids, track_vecs = copier.copy(part)
        if len(seg_ids):
            store.upsert("segments", seg_ids, normalize(seg_vecs))
        if len(track_ids):
            store.upsert("tracks", track_ids, normalize(track_vecs))
        report.tracks_added += len(part)
        report.segments_added += copier.segments
        report.vectors_added += len(seg_ids) + len(track_ids)
        copier.segments = 0
        yield MergeProgress("tracks", done=i + len(part), total=len(todo), message=part[-1][2])
    store.flush()
    ours.set_meta("index_dirty", "0")
    report.labels_added, report.labels_kept = _merge_labels(ours, theirs, label_target, roots, write=True)
    if todo:  # a large merge writes a generation of postings here (minutes at 1,000 hours): say so first
        yield MergeProgress("postings", done=len(todo), total=len(todo), message="landmark postings")
        library.postings.refresh(ours)
    report.seconds = round(time.perf_counter() - t0, 3)
    yield MergeProgress("done", done=len(todo), total=len(todo), report=report)


def _adopt(library, theirs: Catalog) -> None:
    """An empty library takes the other's model and settings, as its first index run would have recorded them."""
    for key in ADOPTED:
        value = theirs.get_meta(key)
        if value is not None:
            library.catalog.set_meta(key, value)
    library._model_name = theirs.get_meta("model_id")
    library.hop = float(theirs.get_meta("hop"))
    library._record_store()


class _Copier:
    """Copies their tracks (file, track, segments, landmarks) into ours with new ids, a batch per transaction."""

    def __init__(self, ours: Catalog, theirs: Catalog) -> None:
        self.ours, self.theirs = ours, theirs
        self.file_cols = _columns(ours.db, "files", leave_out=("id", "path", "root_id", "rel"))
        self.track_cols = _columns(ours.db, "tracks", leave_out=("id", "file_id"))
        self.seg_cols = _columns(ours.db, "segments", leave_out=("id", "track_id"))
        self.lm_cols = _columns(ours.db, "track_landmarks", leave_out=("track_id", "stamp"))
        for table, cols in (("files", self.file_cols), ("tracks", self.track_cols), ("segments", self.seg_cols),
                            ("track_landmarks", self.lm_cols)):
            missing = set(cols) - set(_columns(theirs.db, table, leave_out=()))
            if missing:
                raise UserError(f"merge: the other catalogue's {table} lack {', '.join(sorted(missing))}")
        # a short clip indexed after its library started centring them is not stale here either
        self.since_theirs = float(theirs.get_meta("short_clips_centred_since") or 0.0)
        self.since_ours = float(ours.get_meta("short_clips_centred_since") or 0.0)
        self.segments = 0

    def copy(self, part: list[tuple[int, int, str]]):
        ours, theirs = self.ours.db, self.theirs.db
        seg_ids: list[int] = []
        seg_vecs: list[np.ndarray] = []
        track_ids: list[int] = []
        track_vecs: list[np.ndarray] = []
        fc, tc, sc, lc = self.file_cols, self.track_cols, self.seg_cols, self.lm_cols
        vec_at = sc.index("vector")
        inf_at = sc.index("informative")
        with ours:
            for fid, tid, here in part:
                frow = dict(zip(fc, theirs.execute(f"SELECT {', '.join(fc)} FROM files WHERE id = ?",
                                                   (fid,)).fetchone()))
                if frow["indexed_at"] >= self.since_theirs:
                    frow["indexed_at"] = max(frow["indexed_at"], self.since_ours)
                rid, rel = root_of(ours, here)
                cur = ours.execute(
                    f"INSERT INTO files(path, root_id, rel, {', '.join(fc)}) VALUES (?, ?, ?{', ?' * len(fc)})",
                    (here, rid, rel, *frow.values()))
                new_fid = cur.lastrowid
                trow = theirs.execute(f"SELECT {', '.join(tc)} FROM tracks WHERE id = ?", (tid,)).fetchone()
                cur = ours.execute(f"INSERT INTO tracks(file_id, {', '.join(tc)}) VALUES (?{', ?' * len(tc)})",
                                   (new_fid, *trow))
                new_tid = cur.lastrowid
                vec = trow[tc.index("vector")]
                if vec is not None:
                    track_ids.append(new_tid)
                    track_vecs.append(from_blob(vec))
                segs = theirs.execute(f"SELECT {', '.join(sc)} FROM segments WHERE track_id = ? ORDER BY id",
                                      (tid,)).fetchall()
                if segs:
                    base = (ours.execute("SELECT max(id) FROM segments").fetchone()[0] or 0) + 1
                    ours.executemany(
                        f"INSERT INTO segments(id, track_id, {', '.join(sc)}) VALUES (?, ?{', ?' * len(sc)})",
                        [(base + k, new_tid, *s) for k, s in enumerate(segs)])
                    self.segments += len(segs)
                    for k, s in enumerate(segs):
                        if s[inf_at] and s[vec_at] is not None:
                            seg_ids.append(base + k)
                            seg_vecs.append(from_blob(s[vec_at]))
                lm = theirs.execute(f"SELECT {', '.join(lc)} FROM track_landmarks WHERE track_id = ?",
                                    (tid,)).fetchone()
                if lm is not None:  # a fresh stamp: postings written before for this id no longer count
                    ours.execute(
                        f"INSERT INTO track_landmarks(track_id, stamp, {', '.join(lc)}) VALUES (?, ?{', ?' * len(lc)})",
                        (new_tid, int.from_bytes(os.urandom(7), "little"), *lm))
        as_ids = (lambda v: np.array(v, np.int64))
        as_vecs = (lambda v: np.stack(v) if v else np.zeros((0, 0), np.float32))
        return as_ids(seg_ids), as_vecs(seg_vecs), as_ids(track_ids), as_vecs(track_vecs)


def _merge_labels(ours: Catalog, theirs: Catalog, target: dict[str, str], roots: dict[str, str], *,
                  write: bool) -> tuple[int, int]:
    """Their labels onto the tracks here (``target``: their path -> path here; a label of a path they never
    indexed follows the root map). A label this library already has is kept. (labels added, labels kept)."""
    added = kept = 0
    new: list[tuple[str, str, object]] = []
    for path, name, value in theirs.db.execute("SELECT path, name, value FROM labels ORDER BY path, name"):
        here = target.get(path)
        if here is None:
            if theirs.file_by_path(path) is not None:  # a conflict or a failed file: not theirs to label here
                continue
            here = _mapped(path, roots)
        row = ours.db.execute("SELECT value FROM labels WHERE path = ? AND name = ?", (here, name)).fetchone()
        if row is None:
            new.append((here, name, value))
            added += 1
        elif row[0] != value:
            kept += 1
    if write and new:
        with ours.db:
            ours.db.executemany("INSERT OR IGNORE INTO labels(path, name, value) VALUES (?, ?, ?)", new)
    return added, kept
