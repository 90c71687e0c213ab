"""Radio and sonic paths: playlists walked over the track vectors (the catalogue's, and the store for the radio).

``make_radio``: a playlist from one or more seed tracks. Each step aims at a point between a seed's
vector and the last track added in that seed's turn (``RadioOptions.anchor``; several seeds take
``turns`` turns each, of consecutive tracks), so the list drifts but keeps coming back. A candidate's score
is its cosine to that point, minus ``diversity`` times its highest cosine to a listed track (maximal
marginal relevance), minus ``album_repeat`` per listed track of its album; the next track is drawn among
the ``explore`` best by a softmax at ``temperature``, from a generator seeded with ``rng_seed``: the same
seed gives the same list. A track is never listed twice, never next to a track of the same album (its
album tag, or its folder when it has none), and never when it is a copy of a listed track (``_Copies``).

``make_path``: a smooth walk from track A to track B, like Plexamp's Sonic Adventure. Step i aims at the
point i/(steps+1) of the way along the line from A's vector to B's (normalised), and takes the unused track
nearest to it (plus a little of its cosine to the previous step, ``smooth``) among those whose progress
(the projection onto A->B: 0 at A, 1 at B) is beyond the previous step's and short of B's: every step moves
towards B, and no further than leaves enough tracks beyond it for the steps still to come. A step with no
such track is left out, and the playlist says so. Since every step needs every track's progress, the path
scans the eligible tracks' vectors exactly (one matrix product a step), read from the catalogue in one pass.

Both return a ``Playlist``: the entries with each one's cosine to its neighbours, and the overall
smoothness (the mean cosine of adjacent tracks) and the roughest transition.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..identify import landmarks as landmarking
from ..catalog import Catalog, TrackRow
from ..duplicates import COPY_MIN_RATIO, MIN_LANDMARK_AGREEMENT, group_copies
from ..errors import QueryError, UserError
from ..stores.base import VectorStore

__all__ = ["RadioOptions", "PlaylistEntry", "Playlist", "make_radio", "make_path", "album_key",
           "MAX_TRACKS", "MAX_SEEDS", "MAX_STEPS"]

#: bounds on a request, so that a typo is a one-line error rather than a walk over the whole library
MAX_TRACKS = 500
MAX_SEEDS = 50
MAX_STEPS = 100


@dataclass(frozen=True)
class RadioOptions:
    """Every tunable of the two walks. Checked on clustered synthetic libraries of 2,000 to 50,000 tracks
    (bench/radio.py, docs/benchmarks.md): a 30-track radio from one seed lists a median of 12-29 albums
    (5 of them before ``album_repeat``), and two seeds' lists keep a smoothness of 0.39-0.45 (0.006 when
    the seeds alternated every track); ``diversity``, ``album_repeat`` and ``temperature`` near 0 give
    the nearest neighbours in order."""

    anchor: float = 0.5  # radio: weight of the seed (vs the last track) in each step's aim
    diversity: float = 0.3  # radio: penalty on the highest cosine to a listed track (MMR)
    explore: int = 5  # radio: draw the next track among this many best
    temperature: float = 0.05  # radio: softmax temperature of that draw (lower: nearer the best)
    pool: int = 300  # radio: at least this many candidates near the seeds, fetched from the store
    album_repeat: float = 0.05  # radio: penalty per track already listed from a candidate's album
    turns: int = 2  # radio: with several seeds, how many turns each takes (a turn: consecutive tracks)
    smooth: float = 0.25  # path: weight of the cosine to the previous step beside the cosine to the aim
    copy_cosine: float = 0.9  # the cheap test before the copy check: track vectors at least this close


@dataclass
class PlaylistEntry:
    position: int  # 1-based
    track_id: int
    path: str
    title: str | None
    artist: str | None
    album: str | None
    duration: float
    role: str  # radio: "seed" | "radio"; path: "start" | "step" | "end"
    similarity_prev: float | None = None  # cosine of its track vector with the previous entry's
    similarity_next: float | None = None
    progress: float | None = None  # path: position along A -> B (0 at A, 1 at B)

    @property
    def name(self) -> str:
        return self.title or Path(self.path).stem


@dataclass
class Playlist:
    kind: str  # "radio" | "path"
    title: str
    entries: list[PlaylistEntry]
    options: dict
    smoothness: float | None = None  # mean cosine of adjacent entries
    roughest: float | None = None  # the lowest cosine of adjacent entries
    direct: float | None = None  # path: the cosine of A and B
    copies_skipped: int = 0  # candidates left out as copies of a listed track
    note: str | None = None  # why the list is shorter than asked, if it is
    elapsed_ms: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        for e, src in zip(d["entries"], self.entries):
            e["name"] = src.name
        return d


def album_key(row: TrackRow) -> str:
    """What "the same album" means: the album tag, ignoring case; else the track's folder."""
    if row.album and row.album.strip():
        return "album:" + row.album.strip().casefold()
    return "folder:" + str(Path(row.path).parent)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


@dataclass
class _Item:
    """What ``group_copies`` reads of a hit."""

    track_id: int
    path: str
    title: str | None
    duration: float
    score: float = 0.0
    copies: list = field(default_factory=list)


class _Tracks:
    """Rows and unit track vectors, read from the catalogue once each."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.rows: dict[int, TrackRow] = {}
        self.vecs: dict[int, np.ndarray] = {}

    def load(self, ids) -> list[int]:
        """Load ``ids``; returns those that have a track vector."""
        new = [int(i) for i in ids if int(i) not in self.rows]
        if new:
            for r in self.catalog.tracks(new):
                self.rows[r.id] = r
            with_vec = [i for i in new if i in self.rows]
            vecs = {}
            for i in range(0, len(with_vec), 500):
                chunk = with_vec[i: i + 500]
                q = f"SELECT id, vector FROM tracks WHERE vector IS NOT NULL AND id IN ({','.join('?' * len(chunk))})"
                for tid, blob in self.catalog.db.execute(q, chunk):
                    vecs[tid] = np.frombuffer(blob, np.float16).astype(np.float32)
            for tid, v in vecs.items():
                self.vecs[tid] = _unit(v)
        return [int(i) for i in ids if int(i) in self.vecs]

    def matrix(self, ids: list[int]) -> np.ndarray:
        return np.stack([self.vecs[i] for i in ids]) if ids else np.zeros((0, 1), np.float32)


class _Copies:
    """Is a candidate a copy of a listed track? The same file content; or, for track vectors at least
    ``copy_cosine`` apart, ``duplicates.group_copies``'s rules (nearly the same length: the windows align,
    and the landmarks agree where both have them), or, for different lengths (a trim, an excerpt), landmarks
    that agree at one offset (``landmarks.agreement`` >= ``duplicates.MIN_LANDMARK_AGREEMENT``)."""

    def __init__(self, catalog: Catalog, tracks: _Tracks, *, hop: float, cosine: float) -> None:
        self.catalog, self.tracks, self.hop, self.cosine = catalog, tracks, hop, cosine
        self._sha: dict[int, str | None] = {}
        self._marks: dict[int, object] = {}

    def sha(self, tid: int) -> str | None:
        if tid not in self._sha:
            f = self.catalog.file_by_path(self.tracks.rows[tid].path)
            self._sha[tid] = f.sha256 if f is not None and f.sha256 else None
        return self._sha[tid]

    def marks(self, tid: int):
        if tid not in self._marks:
            self._marks[tid] = self.catalog.landmarks_of(tid)
        return self._marks[tid]

    def of(self, cand: int, listed: list[int]) -> bool:
        v = self.tracks.vecs[cand]
        rc = self.tracks.rows[cand]
        for other in listed:
            if self.sha(cand) is not None and self.sha(cand) == self.sha(other):
                return True
            if float(v @ self.tracks.vecs[other]) < self.cosine:
                continue
            ro = self.tracks.rows[other]
            if min(rc.duration, ro.duration) >= COPY_MIN_RATIO * max(rc.duration, ro.duration):
                pair = [_Item(ro.id, ro.path, ro.title, ro.duration), _Item(rc.id, rc.path, rc.title, rc.duration)]
                if len(group_copies(pair, self.catalog, hop=self.hop, min_cosine=self.cosine)) == 1:
                    return True
            else:
                la, lb = self.marks(cand), self.marks(other)
                if la is not None and lb is not None and landmarking.agreement(la, lb) >= MIN_LANDMARK_AGREEMENT:
                    return True
        return False


def _count(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise UserError(f"{name}: expected a whole number from {low} to {high}, got {value!r}")
    if not low <= value <= high:
        raise UserError(f"{name}: must be from {low} to {high}, got {value}")
    return int(value)


def _eligible(catalog: Catalog, allowed, exclude: set[int]) -> np.ndarray:
    """Sorted ids of the tracks with a vector that ``allowed`` lets through (None: all), minus ``exclude``."""
    ids = catalog.vector_ids("tracks")
    if allowed is not None:
        ids = np.intersect1d(ids, np.fromiter(allowed, np.int64, len(allowed)))
    if exclude:
        ids = ids[~np.isin(ids, np.fromiter(exclude, np.int64, len(exclude)))]
    return ids


def _vectors_of(catalog: Catalog, allowed, exclude: set[int]) -> tuple[np.ndarray, np.ndarray]:
    """(sorted ids, unit vectors) of the tracks with a vector that ``allowed`` lets through (None: all), minus
    ``exclude``: ``_eligible``'s tracks with their vectors, read in one pass over the catalogue."""
    rows = catalog.db.execute("SELECT id, vector FROM tracks WHERE vector IS NOT NULL ORDER BY id").fetchall()
    all_ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    keep = ~np.isin(all_ids, np.fromiter(exclude, np.int64, len(exclude)))
    if allowed is not None:
        keep &= np.isin(all_ids, np.fromiter(allowed, np.int64, len(allowed)))
    blobs = b"".join(r[1] for r, k in zip(rows, keep) if k)
    mat = np.frombuffer(blobs, np.float16).astype(np.float32).reshape(int(keep.sum()), -1)
    return all_ids[keep], _unit(mat)


def _neighbours(store: VectorStore, q: np.ndarray, k: int, allowed: np.ndarray | None) -> list[int]:
    ids, _ = store.search("tracks", _unit(q.astype(np.float32))[None, :], max(1, k), allowed=allowed)
    return [int(i) for i in ids[0] if i >= 0]


def _too_few(what: str, have: int, need: int, where: str | None, ask: tuple[str, str]) -> QueryError:
    scope = f"--where {where!r} leaves" if where else "the library has"
    return QueryError(f"{what}: {scope} {have} {'track' if have == 1 else 'tracks'} besides "
                      f"{ask[0]}, and {need} {'is' if need == 1 else 'are'} needed; {ask[1]}")


def _entries(tracks: _Tracks, ids: list[int], roles: list[str]) -> list[PlaylistEntry]:
    out = []
    for pos, (tid, role) in enumerate(zip(ids, roles), 1):
        r = tracks.rows[tid]
        out.append(PlaylistEntry(pos, tid, r.path, r.title, r.artist, r.album, float(r.duration), role))
    for prev, cur in zip(out, out[1:]):
        s = round(float(tracks.vecs[prev.track_id] @ tracks.vecs[cur.track_id]), 4)
        cur.similarity_prev = prev.similarity_next = s
    return out


def _finish(pl: Playlist, t0: float) -> Playlist:
    sims = [e.similarity_prev for e in pl.entries if e.similarity_prev is not None]
    if sims:
        pl.smoothness, pl.roughest = round(float(np.mean(sims)), 4), round(float(min(sims)), 4)
    pl.elapsed_ms = round((time.perf_counter() - t0) * 1000, 2)
    return pl


def _seed_rows(tracks: _Tracks, ids: list[int], what: str) -> None:
    have = set(tracks.load(ids))
    for i in ids:
        if i not in tracks.rows:
            raise QueryError(f"{what}: no track {i} in this library")
        if i not in have:
            raise QueryError(f"{what}: track {i} ({tracks.rows[i].path}) has no track vector (no informative audio)")


def make_radio(
    catalog: Catalog, store: VectorStore, seeds: list[int], *, n: int = 30, allowed=None, where: str | None = None,
    rng_seed: int = 0, hop: float, options: RadioOptions = RadioOptions(),
) -> Playlist:
    """A playlist of ``n`` tracks (the seeds first, in their order) that sound like ``seeds`` (track ids),
    varied, without copies, never two of one album in a row; see the module docstring.

    ``allowed``: the track ids the radio may add (``Library.allowed_tracks``; None: any); ``where``: the
    filter they came from, for messages only."""
    t0 = time.perf_counter()
    seeds = list(dict.fromkeys(int(s) for s in seeds))
    if not seeds:
        raise UserError("radio: give at least one seed track")
    _count("seeds", len(seeds), 1, MAX_SEEDS)
    n = _count("n", n, 1, MAX_TRACKS)
    if n <= len(seeds):
        raise UserError(f"n: a radio of {n} {'track' if n == 1 else 'tracks'} has no room after "
                        f"{len(seeds)} {'seed' if len(seeds) == 1 else 'seeds'}; ask for more")
    rng_seed = _count("seed", rng_seed, 0, 2**63 - 1)
    tracks = _Tracks(catalog)
    _seed_rows(tracks, seeds, "radio")
    eligible = _eligible(catalog, allowed, set(seeds))
    need = n - len(seeds)
    if len(eligible) < need and (where or not len(eligible)):  # without a filter: as long as the library allows
        raise _too_few("radio", len(eligible), need, where,
                       ("the seeds", f"ask for --n {len(eligible) + len(seeds)} or fewer"
                        + (" or loosen the filter" if where else "")))
    allowed_arr = None if allowed is None else eligible
    seed_vecs = tracks.matrix(seeds)
    centre = _unit(seed_vecs.mean(axis=0))
    copies = _Copies(catalog, tracks, hop=hop, cosine=options.copy_cosine)
    rng = np.random.default_rng(rng_seed)

    listed = list(seeds)
    excluded = set(seeds)
    lanes = list(seeds)  # each seed's walk: the last track it added (itself at first)
    turn = max(1, round((n - len(seeds)) / (len(seeds) * options.turns)))  # tracks per turn
    album_count: dict[str, int] = {}
    for t in seeds:
        album_count[album_key(tracks.rows[t])] = album_count.get(album_key(tracks.rows[t]), 0) + 1
    k = min(len(eligible), max(options.pool, 10 * n))
    note = None
    skipped = 0
    while len(listed) < n:
        pool_ids: dict[int, None] = {}
        for q in (centre, *seed_vecs):
            for i in _neighbours(store, q, k + len(seeds), allowed_arr):
                pool_ids.setdefault(i, None)
        pool = [i for i in tracks.load(list(pool_ids)) if i not in excluded]
        if not pool and k < len(eligible):  # an approximate index may return fewer than asked: look further
            k = min(len(eligible), k * 4)
            continue
        P = tracks.matrix(pool) if pool else np.zeros((0, seed_vecs.shape[1]), np.float32)
        albums = [album_key(tracks.rows[i]) for i in pool]
        used = np.isin(np.array(pool, np.int64), np.array(listed, np.int64)) if pool else np.zeros(0, bool)
        red = (P @ tracks.matrix(listed).T).max(axis=1) if pool else np.zeros(0)
        while len(listed) < n:
            # with several seeds, each in turn, from the last one (the track just before the first added)
            lane = (len(seeds) - 1 + (len(listed) - len(seeds)) // turn) % len(seeds)
            aim = _unit(options.anchor * seed_vecs[lane] + (1 - options.anchor) * tracks.vecs[lanes[lane]])
            repeats = np.array([album_count.get(a, 0) for a in albums], np.float32)
            score = P @ aim - options.diversity * red - options.album_repeat * repeats
            last_album = album_key(tracks.rows[listed[-1]])
            valid = ~used & np.array([a != last_album for a in albums], bool)
            order = [int(j) for j in np.argsort(-np.where(valid, score, -np.inf), kind="stable") if valid[j]]
            picks: list[int] = []
            for j in order:
                if copies.of(pool[j], listed):
                    used[j] = True
                    excluded.add(pool[j])
                    skipped += 1
                    continue
                picks.append(j)
                if len(picks) >= options.explore:
                    break
            if not picks:
                break
            w = score[picks] - score[picks].max()
            p = np.exp(w / max(options.temperature, 1e-6))
            j = picks[int(rng.choice(len(picks), p=p / p.sum()))]
            listed.append(pool[j])
            lanes[lane] = pool[j]
            album_count[albums[j]] = album_count.get(albums[j], 0) + 1
            excluded.add(pool[j])
            used[j] = True
            red = np.maximum(red, P @ P[j])
        if len(listed) >= n:
            break
        if k >= len(eligible):
            note = f"only {len(listed)} of {n} tracks: " + (
                f"the library holds {len(eligible)} besides the seeds" if len(eligible) < need else
                "no other track passes the rules (not listed yet, not a copy of a listed track, not from the last "
                "track's album)")
            break
        k = min(len(eligible), k * 4)  # every candidate near the seeds was used up: look further out
    names = [tracks.rows[s].title or Path(tracks.rows[s].path).stem for s in seeds]
    pl = Playlist(
        kind="radio", title="Radio: " + ", ".join(names), options={"seeds": seeds, "n": n, "where": where,
                                                                  "seed": rng_seed, **asdict(options)},
        entries=_entries(tracks, listed, ["seed" if i < len(seeds) else "radio" for i in range(len(listed))]),
        copies_skipped=skipped, note=note,
    )
    return _finish(pl, t0)


def make_path(
    catalog: Catalog, a: int, b: int, *, steps: int = 10, allowed=None, where: str | None = None,
    hop: float, options: RadioOptions = RadioOptions(),
) -> Playlist:
    """A walk of ``steps`` tracks between tracks ``a`` and ``b`` (ids), each nearer B than the one before:
    ``steps + 2`` entries, A first and B last (fewer steps when no track fits one; ``note`` says so).

    ``allowed``: the tracks the steps may use (None: any); ``where``: the filter, for messages only."""
    t0 = time.perf_counter()
    a, b = int(a), int(b)
    if a == b:
        raise UserError(f"path: A and B are the same track ({a}); give two different tracks")
    steps = _count("steps", steps, 1, MAX_STEPS)
    tracks = _Tracks(catalog)
    _seed_rows(tracks, [a, b], "path")
    va, vb = tracks.vecs[a], tracks.vecs[b]
    d = vb - va
    dd = float(d @ d)
    if dd < 1e-8:
        raise QueryError(f"path: tracks {a} and {b} have the same track vector; nothing lies between them")
    ids, E = _vectors_of(catalog, allowed, {a, b})
    eligible = ids
    if len(eligible) < steps and (where or not len(eligible)):  # without a filter: as many as the library has
        raise _too_few("path", len(eligible), steps, where,
                       ("A and B", f"ask for --steps {len(eligible)} or fewer"
                        + (" or loosen the filter" if where else "")))
    copies = _Copies(catalog, tracks, hop=hop, cosine=options.copy_cosine)
    prog = (E @ d - float(va @ d)) / dd  # each eligible track's progress
    # a step may go only so far that enough tracks lie beyond it (short of B) for the steps still to come,
    # else a greedy step near B leaves the rest nothing to walk through
    ahead = np.sort(prog[prog < 1.0])
    room = len(ahead) - np.searchsorted(ahead, prog, side="right")
    alive = np.ones(len(ids), bool)

    listed, progs = [a], [0.0]
    missed = 0
    skipped = 0
    for i in range(1, steps + 1):
        aim = _unit(va + d * (i / (steps + 1)))
        ok = alive & (prog > progs[-1]) & (prog < 1.0) & (room >= min(steps, len(ahead)) - i)
        near = E @ np.stack([aim, tracks.vecs[listed[-1]]], axis=1)  # one BLAS call: cosines to the aim, to the last
        score = np.where(ok, near[:, 0] + options.smooth * near[:, 1], -np.inf)
        chosen = None
        for j in np.argsort(-score, kind="stable")[: int(ok.sum())]:
            c = int(ids[j])
            tracks.load([c])
            alive[j] = False
            if copies.of(c, listed + [b]):
                skipped += 1
                continue
            chosen = (c, float(prog[j]))
            break
        if chosen is None:
            missed += 1
            continue
        listed.append(chosen[0])
        progs.append(chosen[1])
    listed.append(b)
    progs.append(1.0)
    entries = _entries(tracks, listed, ["start"] + ["step"] * (len(listed) - 2) + ["end"])
    for e, p in zip(entries, progs):
        e.progress = round(p, 4)
    na, nb = (tracks.rows[x].title or Path(tracks.rows[x].path).stem for x in (a, b))
    note = None
    if missed:
        note = f"{steps - missed} of {steps} steps: " + (
            f"the library holds {len(eligible)} tracks besides A and B" if len(eligible) < steps else
            "no other track lies between the last step and B (each step must move towards B)")
    pl = Playlist(kind="path", title=f"Path: {na} to {nb}", entries=entries,
                  options={"a": a, "b": b, "steps": steps, "where": where, **asdict(options)},
                  direct=round(float(va @ vb), 4), copies_skipped=skipped, note=note)
    return _finish(pl, t0)
