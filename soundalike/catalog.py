"""The SQLite catalogue: the source of truth of a library.

One database per library, in WAL mode so that a reader (a search, the web
server) never blocks the indexer. It holds files, tracks, segments, their
vectors as float16 blobs and their tag probabilities, so that any vector
index can be rebuilt from it alone. The schema changes only through the
numbered migrations in ``MIGRATIONS``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import CatalogError
from .identify.landmarks import Landmarks
from .identify.prints import HOP_SECONDS as PRINT_HOP_SECONDS


def _m001_create_tables(db: sqlite3.Connection) -> None:
    db.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE files (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            size INTEGER NOT NULL,
            mtime REAL NOT NULL,
            sha256 TEXT,
            status TEXT NOT NULL,          -- 'ok' | 'error'
            error TEXT,
            indexed_at REAL NOT NULL
        );
        CREATE TABLE tracks (
            id INTEGER PRIMARY KEY,
            file_id INTEGER NOT NULL UNIQUE REFERENCES files(id) ON DELETE CASCADE,
            duration REAL NOT NULL,
            sample_rate INTEGER,
            channels INTEGER,
            codec TEXT,
            format TEXT,
            title TEXT,
            artist TEXT,
            album TEXT,
            model_id TEXT NOT NULL,
            model_version TEXT NOT NULL,
            vector BLOB,                   -- float16, L2-normalised mean of informative windows
            tags BLOB                      -- float16, mean tag probabilities
        );
        CREATE TABLE segments (
            id INTEGER PRIMARY KEY,
            track_id INTEGER NOT NULL REFERENCES tracks(id) ON DELETE CASCADE,
            start REAL NOT NULL,
            end REAL NOT NULL,
            informative INTEGER NOT NULL,
            level_db REAL NOT NULL,
            vector BLOB,                   -- float16, raw embedding; NULL when not informative
            tags BLOB                      -- float16 tag probabilities; NULL when not informative
        );
        CREATE INDEX segments_by_track ON segments(track_id);
        CREATE INDEX files_by_sha ON files(sha256);
        """
    )


def _m002_metadata_descriptors_labels(db: sqlite3.Connection) -> None:
    """Tags read from the file, measured descriptors, and user metadata (labels) keyed by path."""
    for column in (
        "genre TEXT", "year INTEGER", "comment TEXT", "tag_bpm REAL", "tag_key TEXT",
        "bpm REAL", "bpm_confidence REAL", "key TEXT", "key_confidence REAL",
        "loudness REAL", "true_peak REAL",
    ):
        db.execute(f"ALTER TABLE tracks ADD COLUMN {column}")
    db.executescript(
        """
        -- user metadata: one row per (file path, column name); values keep their type
        -- (numbers as numbers), so that filters compare them numerically. Keyed by
        -- path, not track id, so that it survives re-indexing a changed file.
        CREATE TABLE labels (
            path TEXT NOT NULL,
            name TEXT NOT NULL,
            value,
            PRIMARY KEY (path, name)
        );
        CREATE INDEX labels_by_name ON labels(name);
        """
    )


def _m003_landmarks(db: sqlite3.Connection) -> None:
    """Landmark hashes for identification (identify/landmarks.py): looked up by hash; each track's own list,
    so that deleting a track finds its rows by key."""
    db.executescript(
        """
        CREATE TABLE landmarks (
            hash INTEGER NOT NULL, track_id INTEGER NOT NULL, frame INTEGER NOT NULL,
            PRIMARY KEY (hash, track_id, frame)
        ) WITHOUT ROWID;
        CREATE TABLE track_landmarks (
            track_id INTEGER PRIMARY KEY REFERENCES tracks(id) ON DELETE CASCADE,
            hashes BLOB NOT NULL,
            frames BLOB NOT NULL
        );
        """
    )


def _m004_centred_short_clips(db: sqlite3.Connection) -> None:
    """Clips shorter than one window that die away are centred in silence from now on
    (``segment.pad_short``), no longer repeated: those indexed before this moment are embedded again
    (``stale_track_paths``)."""
    db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('short_clips_centred_since', ?)", (repr(time.time()),))


def _m005_scan_prints(db: sqlite3.Connection) -> None:
    """Each track's scan print (identify/prints.py) beside its landmarks; NULL for a track indexed before they
    existed, which the next index fills in with its landmarks (``paths_without_landmarks``)."""
    db.execute("ALTER TABLE track_landmarks ADD COLUMN prints BLOB")


def _m006_postings_in_arrays(db: sqlite3.Connection) -> None:
    """Landmark lookups go through arrays derived from ``track_landmarks`` (identify/postings.py), not a
    hash-keyed table: a 1,000-hour catalogue's 238 M rows cost 3-4 CPU s a query as Python tuples."""
    db.execute("DROP TABLE IF EXISTS landmarks")
    # a new random stamp whenever a track's landmarks are written, so that postings written before know
    # they no longer count, even where SQLite gives a new track the id of a deleted one
    db.execute("ALTER TABLE track_landmarks ADD COLUMN stamp INTEGER NOT NULL DEFAULT 0")


def _m007_label_provenance(db: sqlite3.Connection) -> None:
    """Where a label's value came from (organise/classify.py): 'user' (imported or set by hand; every
    label before this migration) or 'predicted' (``soundalike classify``), with a prediction's confidence
    and margin (0-1) and how it was made. A user value replaces a prediction (``set_labels``'s INSERT OR
    REPLACE takes the defaults); a prediction never replaces a user value (``set_predictions``)."""
    have = {r[1] for r in db.execute("PRAGMA table_info(labels)")}  # a catalogue told it is older than it is
    for column in ("source TEXT NOT NULL DEFAULT 'user'", "confidence REAL", "margin REAL", "method TEXT"):
        if column.split()[0] not in have:
            db.execute(f"ALTER TABLE labels ADD COLUMN {column}")


def _m008_paths_relative_to_roots(db: sqlite3.Connection) -> None:
    """Each file records the indexed folder it lies under (``roots``) and its path relative to it (``rel``), so
    that a library and its music can move and libraries built elsewhere can merge (catalog_roots.py,
    catalog_merge.py). ``files.path`` stays the absolute path under the root's current location: a move rewrites
    it from ``rel``. ``from_library`` is the root relative to the library folder, so that a library folder moved
    together with its music finds it again. A file indexed on its own, outside every root, keeps no root."""
    from .catalog_roots import assign_files, relative_to

    db.execute("BEGIN")  # DDL and data in one transaction with the version bump that follows
    db.execute("CREATE TABLE IF NOT EXISTS roots (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, "
               "from_library TEXT)")
    have = {r[1] for r in db.execute("PRAGMA table_info(files)")}  # idempotent: a version set back migrates again
    if "root_id" not in have:
        db.execute("ALTER TABLE files ADD COLUMN root_id INTEGER REFERENCES roots(id)")
        db.execute("ALTER TABLE files ADD COLUMN rel TEXT")
    db.execute("CREATE INDEX IF NOT EXISTS files_by_root ON files(root_id, rel)")
    row = db.execute("SELECT value FROM meta WHERE key = 'roots'").fetchone()
    roots = json.loads(row[0]) if row else []
    if not roots:  # indexed before roots were recorded: the fewest folders that hold every file
        dirs = sorted({os.path.dirname(p) for (p,) in db.execute("SELECT path FROM files")})
        for d in dirs:
            if not (roots and (d == roots[-1] or d.startswith(roots[-1].rstrip("/") + "/"))):
                roots.append(d)
    name = db.execute("PRAGMA database_list").fetchone()[2]
    here = os.path.dirname(os.path.realpath(name)) if name else None
    for root in roots:
        db.execute("INSERT OR IGNORE INTO roots(path, from_library) VALUES (?, ?)",
                   (root, relative_to(root, here) if here else None))
    assign_files(db)
    db.execute("DELETE FROM meta WHERE key = 'roots'")


def _m009_map_points(db: sqlite3.Connection) -> None:
    """The library map (organise/map.py): each track's 2-D position, laid out by a fit (placed = 0) or placed
    later by its mapped neighbours (placed = 1); a deleted track leaves the map with it."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS map_points ("
        "track_id INTEGER PRIMARY KEY REFERENCES tracks(id) ON DELETE CASCADE, "
        "x REAL NOT NULL, y REAL NOT NULL, placed INTEGER NOT NULL DEFAULT 0)"
    )


MIGRATIONS = [
    _m001_create_tables, _m002_metadata_descriptors_labels, _m003_landmarks, _m004_centred_short_clips,
    _m005_scan_prints, _m006_postings_in_arrays, _m007_label_provenance, _m008_paths_relative_to_roots,
    _m009_map_points,
]

# track columns that ``replace_track`` fills from its ``info`` dict when present (beyond m001's)
INFO_COLUMNS = (
    "genre", "year", "comment", "tag_bpm", "tag_key",
    "bpm", "bpm_confidence", "key", "key_confidence", "loudness", "true_peak",
)


def f16_blob(x: np.ndarray) -> bytes:
    return np.ascontiguousarray(x, dtype=np.float16).tobytes()


def as_stored(x: np.ndarray) -> np.ndarray:
    """The float32 value of what ``f16_blob`` stores, so an index can hold exactly what a rebuild reads."""
    return np.asarray(x, np.float16).astype(np.float32)


def from_blob(blob: bytes | None, dim: int | None = None) -> np.ndarray | None:
    if blob is None:
        return None
    arr = np.frombuffer(blob, dtype=np.float16).astype(np.float32)
    return arr if dim is None else arr.reshape(-1, dim)


@dataclass(frozen=True)
class FileRow:
    id: int
    path: str
    size: int
    mtime: float
    sha256: str | None
    status: str
    error: str | None


@dataclass(frozen=True)
class TrackRow:
    id: int
    path: str
    duration: float
    sample_rate: int | None
    channels: int | None
    codec: str | None
    format: str | None
    title: str | None
    artist: str | None
    album: str | None
    model_id: str
    model_version: str
    n_segments: int = 0
    # tags read from the file (title, artist and album are above)
    genre: str | None = None
    year: int | None = None
    comment: str | None = None
    tag_bpm: float | None = None
    tag_key: str | None = None
    # measured descriptors (see descriptors.py)
    bpm: float | None = None
    bpm_confidence: float | None = None
    key: str | None = None
    key_confidence: float | None = None
    loudness: float | None = None
    true_peak: float | None = None


@dataclass(frozen=True)
class NewSegment:
    start: float
    end: float
    informative: bool
    level_db: float
    vector: np.ndarray | None
    tags: np.ndarray | None


def _tag_prob(blob: bytes | None, columns: str) -> float | None:
    """SQL ``tag_prob(tags, "3,53")``: the mean of those columns of a float16 tag vector (filters' ``tag.X``)."""
    if blob is None:
        return None
    idx = [int(i) for i in columns.split(",")]
    return float(np.frombuffer(blob, dtype=np.float16)[idx].astype(np.float32).mean())


class Catalog:
    """Thin, typed access to the library database. One connection per thread."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.create_function("tag_prob", 2, _tag_prob, deterministic=True)
            self._migrate()
            from .catalog_roots import follow_moved

            self.moved_roots = follow_moved(self)  # a library folder moved together with its music
        except sqlite3.DatabaseError as exc:
            raise CatalogError(f"cannot open catalogue {self.path}: {exc}") from exc

    def tag_names(self) -> list[str]:
        """The model's tag names, in the order of the stored tag vectors ("msd:rock", ...)."""
        import json

        return json.loads(self.get_meta("tag_names") or "[]")

    # -- schema -------------------------------------------------------------
    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise CatalogError(
                f"catalogue {self.path} has schema version {version}, newer than this soundalike "
                f"understands ({len(MIGRATIONS)}); upgrade soundalike"
            )
        for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.db:
                migration(self.db)
                self.db.execute(f"PRAGMA user_version = {number}")

    def close(self) -> None:
        self.db.close()

    # -- meta ---------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: object) -> None:
        text = value if isinstance(value, str) else json.dumps(value)
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, text))

    # -- files --------------------------------------------------------------
    def files_under(self, root: Path) -> dict[str, FileRow]:
        prefix = str(root).rstrip("/") + "/"
        rows = self.db.execute(
            "SELECT id, path, size, mtime, sha256, status, error FROM files "
            "WHERE path = ? OR substr(path, 1, ?) = ?",
            (str(root), len(prefix), prefix),
        )
        return {r[1]: FileRow(*r) for r in rows}

    def file_by_path(self, path: str) -> FileRow | None:
        r = self.db.execute(
            "SELECT id, path, size, mtime, sha256, status, error FROM files WHERE path = ?", (path,)
        ).fetchone()
        return None if r is None else FileRow(*r)

    def touch_file(self, file_id: int, *, size: int, mtime: float) -> None:
        with self.db:
            self.db.execute("UPDATE files SET size = ?, mtime = ? WHERE id = ?", (size, mtime, file_id))

    def move_file(self, file_id: int, new_path: str, *, size: int, mtime: float) -> None:
        with self.db:
            old = self.db.execute("SELECT path FROM files WHERE id = ?", (file_id,)).fetchone()
            self.db.execute(
                "UPDATE files SET path = ?, size = ?, mtime = ?, root_id = ?, rel = ? WHERE id = ?",
                (new_path, size, mtime, *self._root_of(new_path), file_id),
            )
            if old is not None:  # user metadata follows the file
                self.db.execute("UPDATE OR REPLACE labels SET path = ? WHERE path = ?", (new_path, old[0]))

    def ok_file_by_sha(self, sha256: str) -> FileRow | None:
        r = self.db.execute(
            "SELECT id, path, size, mtime, sha256, status, error FROM files "
            "WHERE sha256 = ? AND status = 'ok' LIMIT 1",
            (sha256,),
        ).fetchone()
        return None if r is None else FileRow(*r)

    def delete_files(self, file_ids: Iterable[int]) -> list[tuple[int, list[int]]]:
        """Delete files with their tracks and segments; return (track_id, segment_ids) removed."""
        removed = []
        with self.db:
            for fid in file_ids:
                tid = self.db.execute("SELECT id FROM tracks WHERE file_id = ?", (fid,)).fetchone()
                if tid is not None:
                    segs = [s for (s,) in self.db.execute("SELECT id FROM segments WHERE track_id = ?", tid)]
                    removed.append((tid[0], segs))
                    self._delete_landmarks(tid[0])
                self.db.execute("DELETE FROM files WHERE id = ?", (fid,))
        return removed

    def record_error(self, path: str, *, size: int, mtime: float, sha256: str | None, error: str) -> list[tuple[int, list[int]]]:
        """Mark a file as failed. Any track it had is removed (it no longer decodes)."""
        old = self.file_by_path(path)
        removed = self.delete_files([old.id]) if old else []
        with self.db:
            self.db.execute(
                "INSERT INTO files(path, size, mtime, sha256, status, error, indexed_at, root_id, rel) "
                "VALUES (?, ?, ?, ?, 'error', ?, ?, ?, ?)",
                (path, size, mtime, sha256, error, time.time(), *self._root_of(path)),
            )
        return removed

    def errors(self) -> list[FileRow]:
        rows = self.db.execute(
            "SELECT id, path, size, mtime, sha256, status, error FROM files WHERE status = 'error' ORDER BY path"
        )
        return [FileRow(*r) for r in rows]

    # -- tracks -------------------------------------------------------------
    def replace_track(
        self,
        path: str,
        *,
        size: int,
        mtime: float,
        sha256: str,
        info: dict,
        model_id: str,
        model_version: str,
        vector: np.ndarray | None,
        tags: np.ndarray | None,
        segments: list[NewSegment],
        landmarks: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> tuple[int, list[int], list[tuple[int, list[int]]]]:
        """Write a track, its segments and its landmarks ((hashes, frames) of identify/landmarks.py, and the
        scan print of identify/prints.py) in one transaction, replacing what the path had.

        Returns (track_id, new segment ids, removed (track_id, segment_ids)).
        """
        old = self.file_by_path(path)
        removed = self.delete_files([old.id]) if old else []
        with self.db:
            cur = self.db.execute(
                "INSERT INTO files(path, size, mtime, sha256, status, error, indexed_at, root_id, rel) "
                "VALUES (?, ?, ?, ?, 'ok', NULL, ?, ?, ?)",
                (path, size, mtime, sha256, time.time(), *self._root_of(path)),
            )
            file_id = cur.lastrowid
            cur = self.db.execute(
                "INSERT INTO tracks(file_id, duration, sample_rate, channels, codec, format, title, artist, album, "
                "model_id, model_version, vector, tags) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    file_id,
                    info.get("duration"),
                    info.get("sample_rate"),
                    info.get("channels"),
                    info.get("codec"),
                    info.get("format"),
                    info.get("title"),
                    info.get("artist"),
                    info.get("album"),
                    model_id,
                    model_version,
                    None if vector is None else f16_blob(vector),
                    None if tags is None else f16_blob(tags),
                ),
            )
            track_id = cur.lastrowid
            extra = {c: info[c] for c in INFO_COLUMNS if info.get(c) is not None}
            if extra:
                self.db.execute(
                    f"UPDATE tracks SET {', '.join(f'{c} = ?' for c in extra)} WHERE id = ?",
                    (*extra.values(), track_id),
                )
            seg_ids = []
            for s in segments:
                cur = self.db.execute(
                    "INSERT INTO segments(track_id, start, end, informative, level_db, vector, tags) "
                    "VALUES (?,?,?,?,?,?,?)",
                    (
                        track_id,
                        s.start,
                        s.end,
                        int(s.informative),
                        s.level_db,
                        None if s.vector is None else f16_blob(s.vector),
                        None if s.tags is None else f16_blob(s.tags),
                    ),
                )
                seg_ids.append(cur.lastrowid)
            if landmarks is not None:
                self._insert_landmarks(track_id, *landmarks)
        return track_id, seg_ids, removed

    def set_landmarks(self, track_id: int, hashes: np.ndarray, frames: np.ndarray, prints: np.ndarray) -> None:
        """Replace a track's landmarks and scan print (a library indexed before they existed gets them this way)."""
        with self.db:
            self._delete_landmarks(track_id)
            self._insert_landmarks(track_id, hashes, frames, prints)

    def _insert_landmarks(self, track_id: int, hashes: np.ndarray, frames: np.ndarray, prints: np.ndarray) -> None:
        hashes, frames = np.asarray(hashes, np.int64), np.asarray(frames, np.int64)
        self.db.execute(  # also when there are none (silence): the track is done
            "INSERT INTO track_landmarks(track_id, hashes, frames, prints, stamp) VALUES (?, ?, ?, ?, ?)",
            (track_id, hashes.astype("<u4").tobytes(), frames.astype("<u4").tobytes(),
             np.asarray(prints, "<u4").tobytes(), int.from_bytes(os.urandom(7), "little")),
        )

    def landmarks_of(self, track_id: int) -> Landmarks | None:
        """A track's landmarks (identify/landmarks.py), or None when it was indexed without them."""
        row = self.db.execute("SELECT hashes, frames FROM track_landmarks WHERE track_id = ?", (track_id,)).fetchone()
        if row is None:
            return None
        return Landmarks(*(np.frombuffer(b, "<u4").astype(np.int64) for b in row))

    def paths_without_landmarks(self) -> set[str]:
        """Tracks without landmarks or without a scan print (indexed before they existed)."""
        rows = self.db.execute(
            "SELECT f.path FROM tracks t JOIN files f ON f.id = t.file_id "
            "WHERE NOT EXISTS (SELECT 1 FROM track_landmarks l WHERE l.track_id = t.id AND l.prints IS NOT NULL)"
        )
        return {r[0] for r in rows}

    def prints_key(self) -> tuple:
        """Changes whenever a scan print is written or deleted (prints.Cache)."""
        return tuple(self.db.execute(
            "SELECT COUNT(*), MAX(track_id), SUM(LENGTH(prints)) FROM track_landmarks WHERE prints IS NOT NULL"
        ).fetchone())

    def prints_hours(self, key: tuple | None = None) -> float:
        """Hours of audio the stored scan prints cover (from ``prints_key()``, or the ``key`` already read)."""
        size = (key or self.prints_key())[2]
        return (size or 0) / 4 * PRINT_HOP_SECONDS / 3600

    def all_prints(self) -> Iterator[tuple[int, np.ndarray]]:
        """(track id, scan print frames) of every track that has one (identify/prints.py)."""
        rows = self.db.execute("SELECT track_id, prints FROM track_landmarks WHERE prints IS NOT NULL ORDER BY track_id")
        for tid, blob in rows:
            yield tid, np.frombuffer(blob, "<u4").astype(np.uint32)

    def _delete_landmarks(self, track_id: int) -> None:
        self.db.execute("DELETE FROM track_landmarks WHERE track_id = ?", (track_id,))

    def landmark_stamps(self) -> np.ndarray:
        """(n, 2) int64 (track id, stamp) of the tracks that have landmarks, by id (identify/postings.py)."""
        rows = self.db.execute("SELECT track_id, stamp FROM track_landmarks ORDER BY track_id").fetchall()
        return np.array(rows, np.int64).reshape(-1, 2)

    def landmark_postings(self, track_ids) -> int:
        """How many landmarks these tracks hold, from their blobs' sizes (nothing is read)."""
        ids = [int(t) for t in track_ids]
        total = 0
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            total += self.db.execute(f"SELECT COALESCE(SUM(LENGTH(hashes)), 0) / 4 FROM track_landmarks "
                                     f"WHERE track_id IN ({','.join('?' * len(part))})", part).fetchone()[0]
        return total

    def landmark_blobs(self, track_ids, *, batch: int = 256) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """(track id, stamp, hashes, frames) for these tracks, in the order given (missing ones left out)."""
        ids = [int(t) for t in track_ids]
        for i in range(0, len(ids), batch):
            part = ids[i : i + batch]
            rows = {r[0]: r[1:] for r in self.db.execute(
                "SELECT track_id, stamp, hashes, frames FROM track_landmarks "
                f"WHERE track_id IN ({','.join('?' * len(part))})", part)}
            for tid in part:
                if tid in rows:
                    stamp, h, f = rows[tid]
                    yield tid, stamp, np.frombuffer(h, "<u4").astype(np.int64), np.frombuffer(f, "<u4").astype(np.int64)

    def landmark_track_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM track_landmarks").fetchone()[0]

    _TRACK_SELECT = (
        "SELECT t.id, f.path, t.duration, t.sample_rate, t.channels, t.codec, t.format, t.title, t.artist, "
        "t.album, t.model_id, t.model_version, (SELECT count(*) FROM segments s WHERE s.track_id = t.id), "
        "t.genre, t.year, t.comment, t.tag_bpm, t.tag_key, t.bpm, t.bpm_confidence, t.key, t.key_confidence, "
        "t.loudness, t.true_peak "
        "FROM tracks t JOIN files f ON f.id = t.file_id "
    )

    def track(self, track_id: int) -> TrackRow | None:
        r = self.db.execute(self._TRACK_SELECT + "WHERE t.id = ?", (track_id,)).fetchone()
        return None if r is None else TrackRow(*r)

    def track_by_path(self, path: str) -> TrackRow | None:
        r = self.db.execute(self._TRACK_SELECT + "WHERE f.path = ?", (path,)).fetchone()
        return None if r is None else TrackRow(*r)

    def tracks(self, ids: Iterable[int] | None = None) -> list[TrackRow]:
        if ids is None:
            return [TrackRow(*r) for r in self.db.execute(self._TRACK_SELECT + "ORDER BY f.path")]
        ids = list(ids)
        out = []
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            q = self._TRACK_SELECT + f"WHERE t.id IN ({','.join('?' * len(chunk))})"
            out.extend(TrackRow(*r) for r in self.db.execute(q, chunk))
        return out

    def track_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM tracks").fetchone()[0]

    def model_counts(self) -> dict[str, int]:
        """How many tracks each model embedded (model id -> tracks)."""
        return dict(self.db.execute("SELECT model_id, count(*) FROM tracks GROUP BY model_id ORDER BY model_id"))

    def track_ids_of_model(self, model_id: str) -> frozenset[int]:
        return frozenset(r[0] for r in self.db.execute("SELECT id FROM tracks WHERE model_id = ?", (model_id,)))

    def stale_track_paths(self, model_id: str, model_version: str, window_seconds: float) -> set[str]:
        """Tracks to embed again: embedded by another model or version, or shorter than one window and
        indexed before short clips could be centred in silence (``_m004_centred_short_clips``)."""
        since = float(self.get_meta("short_clips_centred_since") or 0.0)
        rows = self.db.execute(
            "SELECT f.path FROM tracks t JOIN files f ON f.id = t.file_id "
            "WHERE t.model_id != ? OR t.model_version != ? OR (t.duration < ? AND f.indexed_at < ?)",
            (model_id, model_version, window_seconds, since),
        )
        return {r[0] for r in rows}

    def track_vector(self, track_id: int) -> np.ndarray | None:
        r = self.db.execute("SELECT vector FROM tracks WHERE id = ?", (track_id,)).fetchone()
        return None if r is None else from_blob(r[0])

    def track_vectors(self, *, model_id: str | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(track id, unit vector) of every track with one; with ``model_id``, only that model's tracks."""
        sql, params = "SELECT id, vector FROM tracks WHERE vector IS NOT NULL", ()
        if model_id is not None:
            sql, params = sql + " AND model_id = ?", (model_id,)
        for tid, blob in self.db.execute(sql, params):
            yield tid, from_blob(blob)

    def segment_vectors(
        self, *, batch: int = 20000, model_id: str | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Informative segment (ids, raw vectors) in batches, for rebuilding an index; with ``model_id``, only
        the segments of that model's tracks."""
        sql, params = "SELECT id, vector FROM segments WHERE informative = 1 AND vector IS NOT NULL", ()
        if model_id is not None:
            sql, params = sql + " AND track_id IN (SELECT id FROM tracks WHERE model_id = ?)", (model_id,)
        cur = self.db.execute(sql, params)
        while rows := cur.fetchmany(batch):
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            yield ids, np.stack([from_blob(r[1]) for r in rows])

    def informative_vectors_of(self, track_ids: Iterable[int]) -> dict[int, np.ndarray]:
        """track id -> (n, dim) raw vectors of its informative segments (tracks without any are left out)."""
        ids = list(track_ids)
        rows: dict[int, list[np.ndarray]] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            q = ("SELECT track_id, vector FROM segments WHERE informative = 1 AND vector IS NOT NULL "
                 f"AND track_id IN ({','.join('?' * len(chunk))}) ORDER BY id")
            for tid, blob in self.db.execute(q, chunk):
                rows.setdefault(tid, []).append(from_blob(blob))
        return {tid: np.stack(v) for tid, v in rows.items()}

    def segments_of(self, track_id: int) -> list[tuple[int, float, float, bool, float, np.ndarray | None]]:
        rows = self.db.execute(
            "SELECT id, start, end, informative, level_db, vector FROM segments WHERE track_id = ? ORDER BY start",
            (track_id,),
        )
        return [(r[0], r[1], r[2], bool(r[3]), r[4], from_blob(r[5])) for r in rows]

    def roots(self) -> list[str]:
        """The folders indexing runs were given (``add_roots``), at their current place, oldest first."""
        return [r[0] for r in self.db.execute("SELECT path FROM roots ORDER BY id")]

    def add_roots(self, roots: Iterable[str]) -> None:
        """Record indexed folders; files already under one (and under no root inside it) move to it."""
        from .catalog_roots import add_roots

        with self.db:
            add_roots(self.db, roots, library_dir=self.library_dir)

    @property
    def library_dir(self) -> str:
        """The folder that holds this catalogue, symbolic links resolved (as roots are): roots record where
        they are relative to it."""
        return os.path.dirname(os.path.realpath(self.path))

    def _root_of(self, path: str) -> tuple[int | None, str | None]:
        from .catalog_roots import root_of

        return root_of(self.db, path)

    def vectors_by_id(self, table: str, ids: np.ndarray) -> np.ndarray:
        """(len(ids), dim) raw vectors of ``table`` ("segments" or "tracks") rows, in the order of ``ids``
        (every id must have a vector)."""
        if table not in ("segments", "tracks"):
            raise ValueError(table)
        ids = [int(i) for i in ids]
        found: dict[int, np.ndarray] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            rows = self.db.execute(f"SELECT id, vector FROM {table} WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            found.update((rid, from_blob(blob)) for rid, blob in rows if blob is not None)
        return np.stack([found[i] for i in ids]) if ids else np.zeros((0, 0), np.float32)

    def vector_ids(self, table: str, *, model_id: str | None = None) -> np.ndarray:
        """Sorted ids of the ``table`` rows ("segments": informative ones) that have a vector: what a complete
        vector index holds; with ``model_id``, only those of tracks that model embedded (kinds.py)."""
        if table not in ("segments", "tracks"):
            raise ValueError(table)
        where = "informative = 1 AND vector IS NOT NULL" if table == "segments" else "vector IS NOT NULL"
        params: tuple = ()
        if model_id is not None:
            col = "track_id" if table == "segments" else "id"
            where += f" AND {col} IN (SELECT id FROM tracks WHERE model_id = ?)"
            params = (model_id,)
        rows = self.db.execute(f"SELECT id FROM {table} WHERE {where} ORDER BY id", params).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def segment_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(segment ids, track ids, starts, ends) of informative segments, sorted by id."""
        cur = self.db.execute("SELECT id, track_id, start, end FROM segments WHERE informative = 1 ORDER BY id")
        # in chunks: a Python tuple per row of 1.2 M (1,000 hours) held at once cost about 300 MB at the peak
        parts = [np.zeros((0, 4))]
        while rows := cur.fetchmany(65536):
            parts.append(np.array(rows, dtype=np.float64))
        a = np.concatenate(parts)
        return a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2], a[:, 3]

    def data_version(self) -> int:
        """Changes whenever another connection commits (cheap staleness check)."""
        return self.db.execute("PRAGMA data_version").fetchone()[0]

    # -- user metadata (labels) and filtered listings ---------------------------
    def label_names(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT name FROM labels ORDER BY name")]

    def labels_of(self, path: str) -> dict[str, object]:
        rows = self.db.execute("SELECT name, value FROM labels WHERE path = ? ORDER BY name", (path,))
        return dict(rows.fetchall())

    def all_labels(self, *, user_only: bool = False) -> dict[str, dict[str, object]]:
        """path -> {name: value}; ``user_only``: without predicted values (``soundalike classify``)."""
        out: dict[str, dict[str, object]] = {}
        where = " WHERE source = 'user'" if user_only else ""
        for path, name, value in self.db.execute(f"SELECT path, name, value FROM labels{where} ORDER BY path, name"):
            out.setdefault(path, {})[name] = value
        return out

    def label_rows(self, name: str) -> list[tuple[str, object, str, float | None, float | None, str | None]]:
        """(path, value, source, confidence, margin, method) of every value of label ``name``."""
        return self.db.execute(
            "SELECT path, value, source, confidence, margin, method FROM labels WHERE name = ? ORDER BY path", (name,)
        ).fetchall()

    def set_predictions(self, name: str, items: Iterable[tuple[str, object, float, float]], *, method: str) -> int:
        """Write predicted values of label ``name``: (path, value, confidence, margin). A path with a user value
        keeps it; an older prediction is replaced. Returns the values written."""
        n = 0
        with self.db:
            for path, value, confidence, margin in items:
                cur = self.db.execute(
                    "INSERT INTO labels(path, name, value, source, confidence, margin, method) "
                    "VALUES (?, ?, ?, 'predicted', ?, ?, ?) ON CONFLICT(path, name) DO UPDATE SET "
                    "value = excluded.value, source = 'predicted', confidence = excluded.confidence, "
                    "margin = excluded.margin, method = excluded.method WHERE labels.source = 'predicted'",
                    (path, name, value, float(confidence), float(margin), method),
                )
                n += cur.rowcount
        return n

    def clear_predictions(self, name: str) -> int:
        """Delete every predicted value of label ``name`` (user values stay); returns how many."""
        with self.db:
            return self.db.execute("DELETE FROM labels WHERE name = ? AND source = 'predicted'", (name,)).rowcount

    def set_labels(self, items: Iterable[tuple[str, dict[str, object]]]) -> int:
        """Merge (path, {name: value}) pairs; a value of None deletes that label. Returns values written."""
        n = 0
        with self.db:
            for path, values in items:
                for name, value in values.items():
                    if value is None:
                        self.db.execute("DELETE FROM labels WHERE path = ? AND name = ?", (path, name))
                    else:
                        self.db.execute(
                            "INSERT OR REPLACE INTO labels(path, name, value) VALUES (?, ?, ?)", (path, name, value)
                        )
                    n += 1
        return n

    _FROM = "FROM tracks t JOIN files f ON f.id = t.file_id "

    def track_ids_where(self, where_sql: str, params: tuple = ()) -> list[int]:
        return [r[0] for r in self.db.execute(f"SELECT t.id {self._FROM}WHERE {where_sql}", params)]

    def tracks_where(
        self, where_sql: str | None = None, params: tuple = (), *, order_sql: str | None = None,
        order_params: tuple = (), limit: int | None = None, offset: int = 0,
    ) -> list[TrackRow]:
        q = self._TRACK_SELECT + (f"WHERE {where_sql} " if where_sql else "")
        q += f"ORDER BY {order_sql}, f.path " if order_sql else "ORDER BY f.path "
        q += "LIMIT ? OFFSET ?"
        args = (*params, *order_params, -1 if limit is None else int(limit), int(offset))
        return [TrackRow(*r) for r in self.db.execute(q, args)]

    def count_where(self, where_sql: str | None = None, params: tuple = ()) -> int:
        q = f"SELECT count(*) {self._FROM}" + (f"WHERE {where_sql}" if where_sql else "")
        return self.db.execute(q, params).fetchone()[0]
