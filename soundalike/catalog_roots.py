"""Roots: the folders a library indexed, and each file's path relative to the one it lies under.

The catalogue keeps a ``roots`` table (id, current absolute path, and the path relative to the library folder
when it was recorded) and, for each file under a root, that root's id and the file's path relative to it
(``files.root_id``, ``files.rel``). ``files.path`` is the absolute path under the root's current place. A file
belongs to the innermost root that holds it; a file indexed on its own, outside every root, has none and keeps
its absolute path.

So music can move without re-indexing:

* ``relocate(catalog, old, new)``: every root at or under ``old`` now lies at the same place under ``new``;
  file paths and the path-keyed labels follow (``soundalike relocate OLD NEW``);
* ``follow_moved(catalog)``, on opening: a library folder moved together with its music (both inside one
  folder that moved, or copied together to another machine) finds it again. A root that no longer exists is
  re-pointed to the same place relative to the library folder, when the root's files are there.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import CatalogError, SoundalikeError, UserError

log = logging.getLogger("soundalike")


def prefix(root: str) -> str:
    """``root`` with one trailing slash: what every path under it starts with."""
    return root.rstrip("/") + "/"


def under(path: str, root: str) -> bool:
    return path == root or path.startswith(prefix(root))


def relative_to(path: str, base: str) -> str:
    return os.path.relpath(path, base)


def _under_sql(column: str) -> str:
    """SQL true when ``column`` is ?1 or lies under it (?2: the prefix, ?3: its length)."""
    return f"({column} = ?1 OR substr({column}, 1, ?3) = ?2)"


def _under_args(root: str) -> tuple[str, str, int]:
    p = prefix(root)
    return root, p, len(p)


def root_of(db: sqlite3.Connection, path: str) -> tuple[int | None, str | None]:
    """(root id, path relative to it) of the innermost root holding ``path``; (None, None) outside every root."""
    best: tuple[int, str] | None = None
    for rid, root in db.execute("SELECT id, path FROM roots"):
        if path.startswith(prefix(root)) and (best is None or len(root) > len(best[1])):
            best = (rid, root)
    if best is None:
        return None, None
    return best[0], path[len(prefix(best[1])):]


def assign_files(db: sqlite3.Connection, root_ids: Iterable[int] | None = None) -> None:
    """Give the files under these roots (default: every root) their innermost root and relative path."""
    rows = db.execute("SELECT id, path FROM roots").fetchall()
    wanted = None if root_ids is None else set(root_ids)
    for rid, root in sorted(rows, key=lambda r: len(r[1])):  # outer first: an inner root takes its files over
        if wanted is not None and rid not in wanted:
            continue
        p = prefix(root)
        db.execute(
            "UPDATE files SET root_id = ?1, rel = substr(path, ?3 + 1) WHERE substr(path, 1, ?3) = ?2 "
            "AND (root_id IS NULL OR (SELECT length(r.path) FROM roots r WHERE r.id = files.root_id) < ?4)",
            (rid, p, len(p), len(root)),
        )


def add_roots(db: sqlite3.Connection, roots: Iterable[str], *, library_dir: str) -> list[int]:
    """Record new roots (absolute folders) and move the files under them to them; the new roots' ids."""
    new = []
    for root in roots:
        root = str(root)
        if db.execute("SELECT 1 FROM roots WHERE path = ?", (root,)).fetchone() is None:
            cur = db.execute("INSERT INTO roots(path, from_library) VALUES (?, ?)",
                             (root, relative_to(root, library_dir)))
            new.append(cur.lastrowid)
    if new:
        assign_files(db, new)
    return new


@dataclass(frozen=True)
class RootInfo:
    """One root of a library: where it is now, whether it is there, and how much of the catalogue it holds."""

    id: int
    path: str
    exists: bool
    files: int
    tracks: int
    from_library: str | None

    def to_dict(self) -> dict:
        return {"id": self.id, "path": self.path, "exists": self.exists, "files": self.files,
                "tracks": self.tracks, "from_library": self.from_library}


def list_roots(db: sqlite3.Connection) -> list[RootInfo]:
    """The library's roots, oldest first, with their file and track counts."""
    rows = db.execute(
        "SELECT r.id, r.path, r.from_library, "
        "(SELECT count(*) FROM files f WHERE f.root_id = r.id), "
        "(SELECT count(*) FROM files f JOIN tracks t ON t.file_id = f.id WHERE f.root_id = r.id) "
        "FROM roots r ORDER BY r.id"
    ).fetchall()
    return [RootInfo(rid, path, os.path.isdir(path), files, tracks, rel) for rid, path, rel, files, tracks in rows]


@dataclass(frozen=True)
class Relocation:
    """What ``relocate`` changed: (old, new) of each root, and how many file and label paths were rewritten."""

    roots: list[tuple[str, str]]
    files: int
    labels: int

    def to_dict(self) -> dict:
        return {"roots": [{"old": a, "new": b} for a, b in self.roots], "files": self.files, "labels": self.labels}


def normal(path: str | os.PathLike) -> str:
    """An absolute, normalised path (symbolic links resolved where it exists, as ``ingest.scan`` records roots)."""
    p = os.path.abspath(os.path.expanduser(os.fspath(path)))
    return os.path.realpath(p) if os.path.exists(p) else os.path.normpath(p)


def relocate(db: sqlite3.Connection, old: str | os.PathLike, new: str | os.PathLike, *, library_dir: str,
             must_exist: bool = True, library: str = "the library") -> Relocation:
    """Everything the catalogue holds at or under ``old`` (roots, files outside every root, labels) now lies at the
    same place under ``new``. Nothing is read from the files: their vectors, landmarks and ids are kept.

    ``old`` is taken as written (it may no longer exist); ``new`` must be an existing folder unless not
    ``must_exist``. One transaction: on any error nothing changes.
    """
    old_s = os.path.normpath(os.path.abspath(os.path.expanduser(os.fspath(old))))
    new_s = normal(new)
    if must_exist and not os.path.isdir(new_s):
        raise UserError(f"relocate: no such folder: {new_s} (--force records it all the same)")
    if old_s == new_s:
        raise UserError(f"relocate: {old_s} is already where the catalogue has it")
    db.execute("BEGIN IMMEDIATE")
    try:
        rows = db.execute("SELECT id, path FROM roots").fetchall()
        moved = [(rid, path, new_s + path[len(old_s):]) for rid, path in rows if under(path, old_s)]
        args = _under_args(old_s)
        moved_ids = {rid for rid, _, _ in moved}
        outer = {rid for (rid,) in db.execute(  # files under old whose root holds old: part of a root moved
            f"SELECT DISTINCT root_id FROM files WHERE root_id IS NOT NULL AND {_under_sql('path')}", args)
            if rid not in moved_ids}
        loose = db.execute(f"SELECT count(*) FROM files WHERE root_id IS NULL AND {_under_sql('path')}",
                           args).fetchone()[0]
        if not moved and not loose and not outer:
            known = ", ".join(p for _, p in rows) or "none"
            raise UserError(f"relocate: {library} holds nothing at or under {old_s} (its roots: {known})")
        staying = {path for _, path in rows if not under(path, old_s)}
        for _, _, target in moved:
            if target in staying:
                raise UserError(f"relocate: {target} is already another root of {library}")
        # two steps, through paths no file has (a leading \x01: absolute paths begin with /), so that the old and
        # the new places may overlap
        for rid, _, target in moved:
            db.execute("UPDATE roots SET path = char(1) || ?, from_library = ? WHERE id = ?",
                       (target, relative_to(target, library_dir), rid))
        db.execute("UPDATE roots SET path = substr(path, 2) WHERE substr(path, 1, 1) = char(1)")
        ids = [rid for rid, _, _ in moved]
        n_files = 0
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            n_files += db.execute(
                "UPDATE files SET path = char(1) || (SELECT rtrim(r.path, '/') FROM roots r "
                f"WHERE r.id = files.root_id) || '/' || rel WHERE root_id IN ({','.join('?' * len(part))})",
                part).rowcount
        n_files += db.execute(f"UPDATE files SET path = char(1) || ?4 || substr(path, length(?1) + 1) "
                              f"WHERE root_id IS NULL AND {_under_sql('path')}", (*args, new_s)).rowcount
        if outer:  # a folder inside a root moved out of it: it becomes a root of its own at its new place
            row = db.execute("SELECT id FROM roots WHERE path = ?", (new_s,)).fetchone()
            rid = row[0] if row else db.execute("INSERT INTO roots(path, from_library) VALUES (?, ?)",
                                                (new_s, relative_to(new_s, library_dir))).lastrowid
            n_files += db.execute(
                f"UPDATE files SET root_id = ?5, rel = substr(path, ?3 + 1), "
                f"path = char(1) || ?4 || substr(path, length(?1) + 1) "
                f"WHERE root_id IS NOT NULL AND substr(path, 1, 1) != char(1) AND {_under_sql('path')}",
                (*args, new_s, rid)).rowcount
            moved.append((rid, old_s, new_s))
        db.execute("UPDATE files SET path = substr(path, 2) WHERE substr(path, 1, 1) = char(1)")
        n_labels = db.execute(f"UPDATE labels SET path = char(1) || ?4 || substr(path, length(?1) + 1) "
                              f"WHERE {_under_sql('path')}", (*args, new_s)).rowcount
        # labels of the new place that no moved label replaces stay; a moved one wins over one of the same name
        db.execute("DELETE FROM labels WHERE substr(path, 1, 1) != char(1) AND EXISTS (SELECT 1 FROM labels m "
                   "WHERE m.path = char(1) || labels.path AND m.name = labels.name)")
        db.execute("UPDATE labels SET path = substr(path, 2) WHERE substr(path, 1, 1) = char(1)")
        db.commit()
    except sqlite3.IntegrityError as exc:
        db.rollback()
        raise CatalogError(f"relocate: a file under {new_s} is already in the catalogue of {library} as another "
                           f"file ({exc}); nothing was changed") from None
    except BaseException:
        db.rollback()
        raise
    return Relocation([(a, b) for _, a, b in moved], n_files, n_labels)


def follow_moved(catalog) -> list[tuple[str, str]]:
    """Re-point roots that no longer exist to the same place relative to the library folder, when their files
    are there (a library folder moved or copied together with its music); then record each existing root's
    place relative to the library folder, when the library folder itself moved. Returns (old, new) per root
    re-pointed. A catalogue that cannot be written (read-only, busy) is left as it is."""
    db, here = catalog.db, catalog.library_dir
    moved: list[tuple[str, str]] = []
    try:
        for rid, path, rel in db.execute("SELECT id, path, from_library FROM roots ORDER BY length(path)").fetchall():
            if rel is None or os.path.isdir(path):
                continue
            current = db.execute("SELECT path FROM roots WHERE id = ?", (rid,)).fetchone()[0]
            if current != path:  # moved along with an outer root just now
                continue
            candidate = os.path.normpath(os.path.join(here, rel))
            if candidate == path or not os.path.isdir(candidate):
                continue
            sample = [r[0] for r in db.execute(
                "SELECT rel FROM files WHERE root_id = ? AND status = 'ok' LIMIT 3", (rid,))]
            if not all(os.path.isfile(os.path.join(candidate, s)) for s in sample):
                continue
            relocate(db, path, candidate, library_dir=here, library=str(catalog.path.parent))
            log.info("root %s moved with the library: now %s", path, candidate)
            moved.append((path, candidate))
        if catalog.get_meta("library_dir") != here:
            with db:
                for rid, path in db.execute("SELECT id, path FROM roots").fetchall():
                    if os.path.isdir(path):
                        db.execute("UPDATE roots SET from_library = ? WHERE id = ?", (relative_to(path, here), rid))
                db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('library_dir', ?)", (here,))
    except (sqlite3.OperationalError, SoundalikeError) as exc:  # opening goes on: `soundalike relocate` remains
        if db.in_transaction:
            db.rollback()
        log.warning("catalogue %s: could not record where its roots are (%s)", catalog.path, exc)
    return moved
