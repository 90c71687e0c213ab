"""The library map: every track as a point in 2-D, near the tracks it sounds like.

``build_map`` lays out every track with a vector from its track vector (``fit_map``: openTSNE's t-SNE by
default, UMAP or PCA on request) and stores the positions in the catalogue's ``map_points`` table. Tracks
indexed later are placed without laying out the map again (``update_map``, which ``map_points`` calls
first): each new track goes where its ``PLACE_NEIGHBOURS`` nearest mapped tracks (by cosine of track vectors)
are, at the mean of their positions weighted by ``exp(cosine / PLACE_SHARPNESS)``, so the nearest counts most;
no stored point moves. A track that is deleted leaves the map with it (the table's foreign key); one that is
indexed again (a changed file) is a new track and is placed again.

Why t-SNE (bench/map.py, docs/benchmarks.md): at 10,000 synthetic tracks whose neighbourhoods overlap, it kept
57 % of each track's ten nearest neighbours on the map against UMAP's 42 %, in 41 CPU s against 50, and
without numba's compiling on first use.

Positions are centred and scaled into [-1, 1] when fitted; placed tracks stay within their neighbours'.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass

import numpy as np

from ..catalog import Catalog
from ..errors import UserError

__all__ = ["METHODS", "DEFAULT_METHOD", "MapInfo", "fit_map", "place", "build_map", "update_map", "map_info",
           "map_points", "selection_playlist", "PLACE_NEIGHBOURS", "PLACE_SHARPNESS"]

METHODS = ("tsne", "umap", "pca")
DEFAULT_METHOD = "tsne"
#: how many mapped neighbours place a new track, and how sharply the nearest of them count (a softmax's
#: temperature over cosines). On a t-SNE map of 10,000 synthetic tracks (bench/map.py), 500 tracks placed
#: this way kept 47 % of their 10 nearest neighbours (59 % when laid out with the rest); 10 neighbours at
#: 0.02 kept 39 %, almost unweighted (at 1.0) 35 %; the nearest neighbour's own spot 49 %, but on top
#: of its dot
PLACE_NEIGHBOURS = 5
PLACE_SHARPNESS = 0.005
_META = "map"
#: one layout or placement at a time in a process (two first visits to the map page would lay it out twice)
_LOCK = threading.Lock()


@dataclass
class MapInfo:
    method: str | None  # None: no map yet
    fitted: int = 0  # tracks laid out by the last fit
    placed: int = 0  # tracks placed since, by their neighbours
    fitted_at: float | None = None  # unix time
    seed: int = 0
    fit_seconds: float | None = None

    @property
    def points(self) -> int:
        return self.fitted + self.placed

    def to_dict(self) -> dict:
        return {**asdict(self), "points": self.points}


def _need(module: str, method: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"the {method} map needs the organise extra: pip install 'soundalike[organise]'") from None


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _scaled(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, np.float64)
    y = y - y.mean(axis=0)
    return (y / max(float(np.abs(y).max()), 1e-12)).astype(np.float32)


def fit_map(vectors: np.ndarray, *, method: str = DEFAULT_METHOD, seed: int = 0, threads: int = 1) -> np.ndarray:
    """(n, 2) positions in [-1, 1] of ``vectors`` (n, d): near vectors near each other. ``method``: "tsne"
    (openTSNE, cosine, perplexity 30), "umap" (umap-learn, cosine, 15 neighbours) or "pca"."""
    if method not in METHODS:
        raise UserError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    x = _unit(np.asarray(vectors, np.float32))
    n = len(x)
    if n == 0:
        return np.zeros((0, 2), np.float32)
    if n < 4:  # too few for a neighbour graph: a line is as faithful as anything
        if n == 1:
            return np.zeros((1, 2), np.float32)
        return _scaled(np.stack([np.linspace(-1, 1, n), np.zeros(n)], axis=1))
    if method == "pca" or n < 10:
        xc = x - x.mean(axis=0)
        _, _, vt = np.linalg.svd(xc, full_matrices=False)
        return _scaled(xc @ vt[:2].T)
    if method == "tsne":
        openTSNE = _need("openTSNE", "t-SNE")
        tsne = openTSNE.TSNE(perplexity=min(30.0, (n - 1) / 3), metric="cosine", n_jobs=threads,
                             random_state=seed, initialization="pca", verbose=False)
        return _scaled(np.asarray(tsne.fit(x)))
    umap = _need("umap", "UMAP")
    model = umap.UMAP(n_neighbors=min(15, n - 1), min_dist=0.1, metric="cosine", random_state=seed,
                      init="spectral" if n > 50 else "random", n_jobs=threads)
    return _scaled(model.fit_transform(x))


def place(new: np.ndarray, mapped: np.ndarray, positions: np.ndarray, *, k: int = PLACE_NEIGHBOURS,
          sharpness: float = PLACE_SHARPNESS) -> np.ndarray:
    """(m, 2) positions for ``new`` vectors (m, d) on a map whose points are ``mapped`` vectors (n, d) at
    ``positions`` (n, 2): each at its ``k`` nearest mapped neighbours' positions, weighted by
    ``exp(cosine / sharpness)``."""
    new = _unit(np.asarray(new, np.float32))
    mapped = _unit(np.asarray(mapped, np.float32))
    positions = np.asarray(positions, np.float32)
    if len(mapped) == 0:
        return np.zeros((len(new), 2), np.float32)
    k = min(k, len(mapped))
    out = np.empty((len(new), 2), np.float32)
    for start in range(0, len(new), 256):
        sims = new[start: start + 256] @ mapped.T
        near = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        s = np.take_along_axis(sims, near, axis=1)
        w = np.exp((s - s.max(axis=1, keepdims=True)) / sharpness)
        w /= w.sum(axis=1, keepdims=True)
        out[start: start + len(s)] = (w[:, :, None] * positions[near]).sum(axis=1)
    return out


def map_info(catalog: Catalog) -> MapInfo:
    """What the stored map is: its method, how many tracks were fitted and placed since (``method`` None:
    no map yet)."""
    import json

    raw = catalog.get_meta(_META)
    if not raw:
        return MapInfo(method=None)
    meta = json.loads(raw)
    fitted, placed = catalog.db.execute(
        "SELECT COALESCE(SUM(placed = 0), 0), COALESCE(SUM(placed = 1), 0) FROM map_points").fetchone()
    return MapInfo(method=meta["method"], fitted=int(fitted), placed=int(placed), fitted_at=meta.get("fitted_at"),
                   seed=int(meta.get("seed", 0)), fit_seconds=meta.get("fit_seconds"))


def _same_size(catalog: Catalog, blobs: list[bytes]) -> None:
    if len({len(b) for b in blobs}) > 1:
        raise UserError(f"library {catalog.path.parent}: its tracks' vectors differ in size (embedded by two models); "
                        "run `soundalike index` to finish embedding them again, then map")


def _vectors(catalog: Catalog, where: str = "") -> tuple[np.ndarray, np.ndarray]:
    rows = catalog.db.execute(f"SELECT id, vector FROM tracks WHERE vector IS NOT NULL {where} ORDER BY id").fetchall()
    ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    if not rows:
        return ids, np.zeros((0, 0), np.float32)
    _same_size(catalog, [r[1] for r in rows])
    mat = np.frombuffer(b"".join(r[1] for r in rows), np.float16).astype(np.float32).reshape(len(rows), -1)
    return ids, mat


def build_map(catalog: Catalog, *, method: str = DEFAULT_METHOD, seed: int = 0, threads: int | None = None) -> MapInfo:
    """Lay out every track with a vector anew (``fit_map``) and store the positions, replacing the map."""
    import json

    if method not in METHODS:
        raise UserError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    ids, mat = _vectors(catalog)
    if not len(ids):
        raise UserError(f"library {catalog.path.parent} has no track with a vector to map; "
                        "run `soundalike index` first")
    t0 = time.perf_counter()
    xy = fit_map(mat, method=method, seed=seed, threads=threads or os.cpu_count() or 1)
    seconds = round(time.perf_counter() - t0, 2)
    with catalog.db:
        catalog.db.execute("DELETE FROM map_points")
        catalog.db.executemany("INSERT INTO map_points(track_id, x, y, placed) VALUES (?, ?, ?, 0)",
                               [(int(i), float(x), float(y)) for i, (x, y) in zip(ids, xy)])
        catalog.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (_META, json.dumps(
            {"method": method, "seed": seed, "fitted_at": time.time(), "fit_seconds": seconds})))
    return map_info(catalog)


def update_map(catalog: Catalog, *, method: str = DEFAULT_METHOD) -> int:
    """Place the tracks that have a vector but no point yet (``place``), without moving any stored point;
    with no map yet, build one (``method``). Returns how many tracks were placed or laid out."""
    with _LOCK:
        return _update(catalog, method)


def _update(catalog: Catalog, method: str) -> int:
    if map_info(catalog).method is None:
        ids, _ = _vectors(catalog)
        return build_map(catalog, method=method).points if len(ids) else 0
    new_ids, new = _vectors(catalog, "AND id NOT IN (SELECT track_id FROM map_points)")
    if not len(new_ids):
        return 0
    rows = catalog.db.execute(
        "SELECT m.track_id, m.x, m.y, t.vector FROM map_points m JOIN tracks t ON t.id = m.track_id "
        "WHERE t.vector IS NOT NULL ORDER BY m.track_id").fetchall()
    if not rows:  # every mapped track was deleted: start again
        return build_map(catalog, method=map_info(catalog).method or method).points
    _same_size(catalog, [r[3] for r in rows] + [new[0].astype(np.float16).tobytes()])
    mapped = np.frombuffer(b"".join(r[3] for r in rows), np.float16).astype(np.float32).reshape(len(rows), -1)
    positions = np.array([(r[1], r[2]) for r in rows], np.float32)
    xy = place(new, mapped, positions)
    with catalog.db:
        catalog.db.executemany("INSERT OR REPLACE INTO map_points(track_id, x, y, placed) VALUES (?, ?, ?, 1)",
                               [(int(i), float(x), float(y)) for i, (x, y) in zip(new_ids, xy)])
    return len(new_ids)


def map_points(catalog: Catalog, *, method: str = DEFAULT_METHOD) -> list[dict]:
    """Every mapped track (new tracks placed first, ``update_map``): id, x, y, placed, title, artist, album,
    genre, bpm, loudness, duration, path, cluster (the ``cluster`` label field's value, or None) and its
    labels (user metadata, every cluster field among them)."""
    update_map(catalog, method=method)
    labels: dict[str, dict] = {}
    for path, name, value in catalog.db.execute("SELECT path, name, value FROM labels"):
        labels.setdefault(path, {})[name] = value
    rows = catalog.db.execute(
        "SELECT m.track_id, m.x, m.y, m.placed, f.path, t.title, t.artist, t.album, t.genre, t.bpm, t.loudness, "
        "t.duration FROM map_points m JOIN tracks t ON t.id = m.track_id JOIN files f ON f.id = t.file_id "
        "ORDER BY m.track_id").fetchall()
    return [{"id": r[0], "x": round(r[1], 5), "y": round(r[2], 5), "placed": bool(r[3]), "path": r[4],
             "title": r[5], "artist": r[6], "album": r[7], "genre": r[8], "bpm": r[9], "loudness": r[10],
             "duration": r[11], "cluster": labels.get(r[4], {}).get("cluster"), "labels": labels.get(r[4], {})}
            for r in rows]


def selection_playlist(catalog: Catalog, track_ids, *, title: str = "Map selection"):
    """A playlist (``radio.Playlist``, kind "selection") of the tracks chosen on the map, in a smooth order:
    from the track least like the selection's mean, each next the unlisted track most like the last."""
    from .radio import MAX_TRACKS, Playlist, _entries, _finish, _Tracks

    t0 = time.perf_counter()
    ids = list(dict.fromkeys(int(i) for i in track_ids))
    if not ids:
        raise UserError("selection: choose at least one track")
    if len(ids) > MAX_TRACKS:
        raise UserError(f"selection: a playlist holds at most {MAX_TRACKS} tracks, got {len(ids)}; select fewer")
    tracks = _Tracks(catalog)
    have = tracks.load(ids)
    missing = [i for i in ids if i not in tracks.rows]
    if missing:
        from ..errors import QueryError

        raise QueryError(f"selection: no track {missing[0]} in this library")
    order = [i for i in ids if i not in set(have)]  # tracks without a vector keep their place at the end
    if have:
        m = tracks.matrix(have)
        left = list(range(len(have)))
        cur = int(np.argmin(m @ _unit(m.mean(axis=0))))
        walk = [cur]
        left.remove(cur)
        while left:
            cur = left[int(np.argmax(m[left] @ m[cur]))]
            walk.append(cur)
            left.remove(cur)
        order = [have[j] for j in walk] + order
        for i in order[len(walk):]:  # no vector: no cosine to report, use a zero vector
            tracks.vecs[i] = np.zeros(m.shape[1], np.float32)
    else:
        for i in order:
            tracks.vecs[i] = np.zeros(1, np.float32)
    pl = Playlist(kind="selection", title=title, entries=_entries(tracks, order, ["selection"] * len(order)),
                  options={"tracks": len(order)})
    return _finish(pl, t0)
