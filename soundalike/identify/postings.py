"""Landmark postings in arrays: a query's look-up costs what its hashes match, not what is indexed.

The catalogue keeps each track's landmarks (identify/landmarks.py) as two blobs in
``track_landmarks``, each row with a ``stamp`` that changes whenever the row is
written; the catalogue is the source of truth. This index is derived from it
and can be rebuilt at any time, like the vector index. It is a short list of
**generations**, folders of arrays memory-mapped by every reader (``serve``
and an ``index`` run share the pages instead of each holding a copy):

* ``offsets``: ``HASHES + 1`` int64; the postings of hash ``h`` are rows
  ``offsets[h]:offsets[h + 1]``;
* ``tracks`` and ``frames``: uint32 per posting, sorted by hash, then track;
* ``included``: (track id, stamp, postings) of each track it holds.

A generation's postings of a track count only while the catalogue holds that
track with that stamp (deleted or rewritten tracks are masked out). Tracks
that no generation holds (the **delta**) are read from their blobs into
memory, once each, as long as they are few (``DELTA_MAX`` postings); past
that, or at the end of an index run, they are written as a new small
generation, and the generations are merged into one when there are more than
``MAX_GENERATIONS`` or when masked postings pass ``STALE_SHARE``. So adding a
track costs about what the track costs, and each posting is rewritten a few
times over the catalogue's life. A list of generations is published by an
atomic rename of ``CURRENT``; a failed write leaves the previous list, and
readers that still map an old generation keep it until they move on.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

log = logging.getLogger("soundalike")

HASH_BITS = 21  # landmarks.pair_hashes: (bin << 13) | ((df + 64) << 6) | dt
HASHES = 1 << HASH_BITS
MIN_GENERATION = 200_000  # postings (about an hour of audio): fewer stay in memory, and no files are written
DELTA_MAX = 5_000_000  # postings held in memory (12 bytes each) before they are written as a generation
MAX_GENERATIONS = 4  # more are merged into one
STALE_SHARE = 0.2  # a generation list whose masked postings pass this share is merged (and cleaned) too
CHUNK_TRACKS = 512  # tracks read per step while writing a generation

Rows = Iterable[tuple[int, int, np.ndarray, np.ndarray]]  # (track id, stamp, hashes, frames)


class Generation:
    """One written generation, memory-mapped (read only)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = folder.name
        self.offsets = np.load(folder / "offsets.npy", mmap_mode="r")
        self.tracks = np.load(folder / "tracks.npy", mmap_mode="r")
        self.frames = np.load(folder / "frames.npy", mmap_mode="r")
        self.included = np.load(folder / "included.npy").reshape(-1, 3)  # (track id, stamp, postings)
        if len(self.offsets) != HASHES + 1 or not len(self.tracks) == len(self.frames) == int(self.offsets[-1]):
            raise ValueError(f"{folder}: inconsistent landmark postings")

    def __len__(self) -> int:
        return len(self.tracks)


def build(rows: Callable[[], Rows], folder: Path) -> Generation:
    """Write a generation into ``folder`` from ``rows()``: a counting sort by hash in two passes over the
    rows (``rows`` is called twice), a chunk of tracks at a time, so memory is the offsets and one chunk
    whatever the catalogue's size."""
    folder.mkdir(parents=True)
    counts = np.zeros(HASHES, np.int64)
    included: list[tuple[int, int, int]] = []
    for chunk in _chunks(rows()):
        included += [(tid, stamp, len(h)) for tid, stamp, h, _ in chunk]
        h = np.concatenate([h for _, _, h, _ in chunk])
        if len(h):
            counts += np.bincount(h, minlength=HASHES)
    total = int(counts.sum())
    offsets = np.zeros(HASHES + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    np.save(folder / "offsets.npy", offsets)
    tracks = np.lib.format.open_memmap(folder / "tracks.npy", mode="w+", dtype=np.uint32, shape=(total,))
    frames = np.lib.format.open_memmap(folder / "frames.npy", mode="w+", dtype=np.uint32, shape=(total,))
    cursor = offsets[:-1].copy()
    again: list[tuple[int, int, int]] = []
    for chunk in _chunks(rows()):
        again += [(tid, stamp, len(h)) for tid, stamp, h, _ in chunk]
        h = np.concatenate([h for _, _, h, _ in chunk])
        if not len(h):
            continue
        t = np.concatenate([np.full(len(h), tid, np.uint32) for tid, _, h, _ in chunk])
        f = np.concatenate([f for _, _, _, f in chunk])
        order = np.argsort(h, kind="stable")  # by hash, then track (rows come by track id)
        hs = h[order]
        uniq, first, n = np.unique(hs, return_index=True, return_counts=True)
        pos = cursor[hs] + (np.arange(len(hs)) - np.repeat(first, n))
        tracks[pos] = t[order]
        frames[pos] = f[order]
        cursor[uniq] += n
    if again != included or not np.array_equal(cursor, offsets[1:]):
        raise ValueError("landmark postings: the catalogue changed while they were written")
    tracks.flush()
    frames.flush()
    del tracks, frames
    np.save(folder / "included.npy", np.array(included, np.int64).reshape(-1, 3))
    return Generation(folder)


def _chunks(rows: Rows) -> Iterator[list[tuple[int, int, np.ndarray, np.ndarray]]]:
    chunk: list = []
    size = 0
    for row in rows:
        chunk.append(row)
        size += len(row[2])
        if len(chunk) >= CHUNK_TRACKS or size >= 4_000_000:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _gather(offsets, tracks, frames, uq: np.ndarray, max_bucket: int | None) -> np.ndarray:
    """(n, 3) int64 rows (hash, track, frame) of buckets ``uq`` (sorted, unique) of one generation."""
    lo = np.asarray(offsets[uq])
    n = np.asarray(offsets[uq + 1]) - lo
    if max_bucket is not None:
        keep = n <= max_bucket
        uq, lo, n = uq[keep], lo[keep], n[keep]
    total = int(n.sum())
    if not total:
        return np.zeros((0, 3), np.int64)
    idx = np.repeat(lo - np.cumsum(n) + n, n) + np.arange(total)
    return np.stack([np.repeat(uq, n), np.asarray(tracks[idx], np.int64), np.asarray(frames[idx], np.int64)], axis=1)


class Postings:
    """The landmark postings of a library: its generations on disk plus the delta in memory.

    ``hits(hashes)`` gives the (hash, track id, frame) rows ``landmarks.rank`` takes. Thread-safe."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self._lock = threading.RLock()
        self._gens: list[Generation] = []
        self._valid: list[np.ndarray] = []  # per generation, by track id: its postings of that track count
        self._key: tuple | None = None
        self._listed: list[str] | None = None
        self._delta: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}  # (id, stamp) -> hashes, frames
        self._delta_sorted: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # hashes, tracks, frames
        self._stale = 0  # postings of the generations that no longer count
        self._wanted: set[tuple[int, int]] = set()  # (track id, stamp) of the tracks no generation holds

    # -- reading ---------------------------------------------------------------------------------------------
    def _current(self) -> list[str]:
        try:
            return json.loads((self.folder / "CURRENT").read_text())["generations"]
        except FileNotFoundError:
            return []
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("landmark postings: unreadable %s (%s); reading the catalogue instead", self.folder, exc)
            return []

    def sync(self, catalog) -> None:
        """Follow the catalogue: map the current generations, read the blobs of tracks none holds (writing
        them as a generation instead when they hold more than ``DELTA_MAX`` postings), mask deleted and
        rewritten tracks. Cheap when nothing changed: a pointer read and the catalogue's change counters."""
        if self._follow(catalog, read=False) > DELTA_MAX and self._write(catalog, merge=not self._gens):
            return
        self._follow(catalog, read=True)

    def _follow(self, catalog, *, read: bool) -> int:
        """``sync``'s work; with ``read`` False, only counts the postings the delta would hold."""
        with self._lock:
            names = self._current()
            key = (tuple(names), catalog.data_version(), catalog.db.total_changes)
            if key == self._key:
                return self.delta_postings()
            if names != self._listed:
                gens = []
                for name in names:
                    try:
                        gens.append(Generation(self.folder / name))
                    except (OSError, ValueError) as exc:
                        log.warning("landmark postings: %s unusable (%s); its tracks are read from the catalogue",
                                    name, exc)
                self._gens, self._listed = gens, names
            stamps = catalog.landmark_stamps()  # (n, 2): track id, stamp
            size = int(stamps[:, 0].max()) + 1 if len(stamps) else 0
            now = np.full(size, -1, np.int64)
            now[stamps[:, 0]] = stamps[:, 1]
            covered = np.zeros(size, bool)
            self._valid, self._stale = [], 0
            for g in self._gens:
                ids, st, n = g.included[:, 0], g.included[:, 1], g.included[:, 2]
                inside = ids < size
                ok = np.zeros(len(ids), bool)
                ok[inside] = now[ids[inside]] == st[inside]
                valid = np.zeros(max(size, int(ids.max()) + 1 if len(ids) else 0), bool)
                valid[ids[ok]] = True
                covered[ids[ok]] = True
                self._valid.append(valid)
                self._stale += int(n[~ok].sum())
            wanted = {(int(t), int(s)) for t, s in stamps[~covered[stamps[:, 0]]]} if len(stamps) else set()
            self._wanted = wanted
            gone = [k for k in self._delta if k not in wanted]
            new = sorted(wanted - self._delta.keys())
            if not read:
                return sum(len(v[0]) for k, v in self._delta.items() if k in wanted) + \
                    catalog.landmark_postings([t for t, _ in new])
            for k in gone:
                del self._delta[k]
            for tid, stamp, h, f in catalog.landmark_blobs([t for t, _ in new]):
                if (tid, stamp) in wanted:
                    self._delta[(tid, stamp)] = (h.astype(np.uint32), f.astype(np.uint32))
            if gone or new:
                self._delta_sorted = None
            self._key = key
            return self.delta_postings()

    def _sorted_delta(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._delta_sorted is None:
            if self._delta:
                h = np.concatenate([v[0] for v in self._delta.values()])
                t = np.concatenate([np.full(len(v[0]), k[0], np.uint32) for k, v in self._delta.items()])
                f = np.concatenate([v[1] for v in self._delta.values()])
                order = np.argsort(h, kind="stable")
                self._delta_sorted = (h[order], t[order], f[order])
            else:
                none = np.zeros(0, np.uint32)
                self._delta_sorted = (none, none, none)
        return self._delta_sorted

    def delta_postings(self) -> int:
        return sum(len(v[0]) for v in self._delta.values())

    def generation_postings(self) -> int:
        return sum(len(g) for g in self._gens)

    def hits(self, hashes: np.ndarray, *, max_bucket: int | None = None) -> np.ndarray:
        """(n, 3) int64 rows (hash, track id, frame) of every posting of ``hashes`` in the catalogue as it is.

        ``max_bucket``: leave out a hash whose bucket in a generation holds more postings than this."""
        uq = np.unique(np.asarray(hashes, np.int64))
        uq = uq[(uq >= 0) & (uq < HASHES)]
        with self._lock:
            gens, valid = list(self._gens), list(self._valid)
            dh, dt, df = self._sorted_delta()
        parts = []
        for g, ok in zip(gens, valid):
            rows = _gather(g.offsets, g.tracks, g.frames, uq, max_bucket)
            t = rows[:, 1]
            keep = np.zeros(len(rows), bool)
            inside = t < len(ok)
            keep[inside] = ok[t[inside]]
            parts.append(rows[keep])
        if len(dh) and len(uq):
            lo, hi = np.searchsorted(dh, uq, side="left"), np.searchsorted(dh, uq, side="right")
            n = hi - lo
            total = int(n.sum())
            if total:
                idx = np.repeat(lo - np.cumsum(n) + n, n) + np.arange(total)
                parts.append(np.stack([dh[idx], dt[idx], df[idx]], axis=1).astype(np.int64))
        parts = [p for p in parts if len(p)]
        if not parts:
            return np.zeros((0, 3), np.int64)
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    # -- writing ---------------------------------------------------------------------------------------------
    def refresh(self, catalog, *, force: bool = False) -> bool:
        """Write what the index lacks: the delta as a new generation once it holds ``MIN_GENERATION`` postings,
        and all of it as one generation when there are too many (``MAX_GENERATIONS``), too many masked
        postings (``STALE_SHARE``) or ``force``. Returns whether anything was written. One process writes
        at a time (a lock file); the others go on reading the catalogue's blobs."""
        plan = self.plan(catalog, force=force)
        return plan is not None and self._write(catalog, merge=plan[0])

    def plan(self, catalog, *, force: bool = False) -> tuple[bool, int] | None:
        """What ``refresh`` would write: (merge everything, postings to write), or None for nothing."""
        self.sync(catalog)
        delta, base = self.delta_postings(), self.generation_postings()
        merge = force or (base and (len(self._gens) >= MAX_GENERATIONS or self._stale > STALE_SHARE * base))
        if not merge and delta < MIN_GENERATION:
            return None
        if merge and not force and delta + base < MIN_GENERATION:
            return None
        return bool(merge), delta + (base - self._stale if merge else 0)

    def _write(self, catalog, *, merge: bool) -> bool:
        import fcntl

        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "w") as lockf:
            try:
                fcntl.flock(lockf, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False
            name = f"gen-{uuid.uuid4().hex[:12]}"
            tmp = self.folder / f".tmp-{name}"
            try:
                stamps = catalog.landmark_stamps()
                if merge:
                    ids = stamps[:, 0]
                    keep: list[str] = []
                else:
                    with self._lock:  # every track no generation holds (``_follow``)
                        ids = np.array(sorted(t for t, _ in self._wanted), np.int64)
                        keep = [g.name for g in self._gens]
                built = build(lambda: catalog.landmark_blobs(ids), tmp)
                n = len(built)
                del built
                os.replace(tmp, self.folder / name)
                pointer = self.folder / f".CURRENT-{name}"
                pointer.write_text(json.dumps({"generations": [*keep, name]}) + "\n")
                os.replace(pointer, self.folder / "CURRENT")
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            listed = {*keep, name}
            for old in [*self.folder.glob("gen-*"), *self.folder.glob(".tmp-gen-*")]:
                if old.name not in listed:  # readers that map them keep the pages until they move on
                    shutil.rmtree(old, ignore_errors=True)
        log.info("landmark postings: wrote %s (%d postings%s)", name, n, ", all merged" if merge else "")
        self._follow(catalog, read=True)
        return True

    def describe(self) -> dict:
        with self._lock:
            return {"generations": len(self._gens), "generation_postings": self.generation_postings(),
                    "delta_postings": self.delta_postings(), "delta_tracks": len(self._delta),
                    "masked_postings": self._stale}


def summary(folder: str | os.PathLike) -> dict:
    """What is on disk, for ``info``: the generations, their postings and bytes."""
    names = Postings(folder)._current()
    gens = [Path(folder) / n for n in names]
    return {"generations": len(names),
            "postings": sum(int(np.load(g / "offsets.npy", mmap_mode="r")[-1]) for g in gens),
            "bytes": sum(f.stat().st_size for g in gens for f in g.iterdir())}
