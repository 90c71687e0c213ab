#!/usr/bin/env python3
"""The library map: which 2-D embedding keeps a track's neighbours, UMAP or t-SNE, at 10,000 tracks.

A library of N track vectors is synthesised without audio: 200-d vectors (musicnn's size) around one centre
per album of 10 tracks, the albums' centres drawn around 40 styles, L2-normalised and rounded to float16 as
the catalogue stores them (bench/radio.py's library, without the catalogue). Each method maps them to 2-D:

- ``umap``: umap-learn (cosine, 15 neighbours, min_dist 0.1, random_state 0: one thread);
- ``tsne``: openTSNE (cosine, perplexity 30, FFT gradients, n_jobs 1, PCA initialisation);
- ``pca``: the first two principal components, the floor a map must beat.
(``--methods clusters`` times ``soundalike clusters``' k-means on the same vectors instead: ``clusters()``;
``--methods points`` what ``GET /api/map`` costs over a catalogue of them: ``points()``.)

Measured on ``--sample`` random tracks against the whole library (exact cosine neighbours in 200-d, exact
Euclidean ones on the map):
- ``knn10``: the share of a track's 10 nearest neighbours in 200-d that are among its 10 nearest on the map;
- ``trust10``: trustworthiness at k=10 (Venna & Kaski; sklearn.manifold.trustworthiness's formula, averaged
  over the sampled tracks instead of all): 1 when no track looks near on the map that is far in 200-d;
- ``album10``: the share of a track's 10 nearest on the map from its own album (9 others exist);
- wall and CPU seconds of the fit (CPU: this process's, all threads; umap's first fit includes numba's
  compiling, so the figure is what a first ``soundalike map`` pays).
And new tracks: the map is fitted on all but ``--new`` tracks, and those are placed by
``soundalike.organise.map.place`` (the cosine-weighted mean of their mapped neighbours' positions, what the
library does for tracks indexed after the map); ``new_knn10`` is their knn10 on that map, beside the same
tracks' knn10 on the map of the whole library, and ``place_ms`` the time to place them.

Prints a table and writes bench/results/map.json (each method's run merged into it, so that methods may be
run one at a time: ``--methods tsne``).

    .venv/bin/python bench/map.py [--tracks 10000] [--methods umap tsne pca] [--sample 1000] [--new 500]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

DIM = 200
K = 10


def library(n: int, *, seed: int = 0, data: str = "blended", styles_too: bool = False):
    """(n, 200) unit float16-rounded vectors and each one's album number (and style, ``styles_too``):
    styles -> albums -> tracks.

    "albums": all in 200-d, so that a track's ten nearest are its album's nine others and one more (an easy
    case: every method keeps them); "blended": drawn in 12-d (styles overlapping, albums spread as wide as
    half a style) and mapped into 200-d by one random linear map plus a little noise, so that neighbourhoods
    run into each other as a real library's do (musicnn's vectors have few effective dimensions)."""
    rng = np.random.default_rng(seed)
    n_albums = (n + 9) // 10
    album = np.repeat(np.arange(n_albums), 10)[:n]
    if data == "albums":
        styles = rng.standard_normal((40, DIM)).astype(np.float32)
        album_style = rng.integers(0, len(styles), n_albums)
        albums = styles[album_style] + 0.8 * rng.standard_normal((n_albums, DIM)).astype(np.float32)
        x = albums[album] + 1.0 * rng.standard_normal((n, DIM)).astype(np.float32)
    else:
        latent = 12
        styles = 2.0 * rng.standard_normal((40, latent))
        album_style = rng.integers(0, len(styles), n_albums)
        albums = styles[album_style] + 1.0 * rng.standard_normal((n_albums, latent))
        z = albums[album] + 0.8 * rng.standard_normal((n, latent))
        lift = rng.standard_normal((latent, DIM)) / np.sqrt(latent)
        x = (z @ lift + 0.3 * rng.standard_normal((n, DIM)) + 3.0).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x = x.astype(np.float16).astype(np.float32)
    return (x, album, album_style[album]) if styles_too else (x, album)


def clusters(x: np.ndarray, style: np.ndarray) -> dict:
    """``soundalike clusters``' k-means on these vectors (organise/clusters.py: k by silhouette on a sample,
    then the final fit): the k chosen, CPU seconds of each part, and the adjusted Rand index against the 40
    styles the library was drawn from."""
    from sklearn.metrics import adjusted_rand_score

    from soundalike.organise.clusters import ClusterOptions, _choose_k, _kmeans

    o = ClusterOptions()
    w0, c0 = time.perf_counter(), time.process_time()
    k, tried = _choose_k(x, k_max=o.k_max, sample=o.sample, seed=0)
    choose_cpu = time.process_time() - c0
    labels, _ = _kmeans(x, k, seed=0, n_init=o.n_init)
    return {"method": "clusters", "tracks": len(x), "k": k, "tried": len(tried),
            "choose_cpu_s": round(choose_cpu, 1), "fit_cpu_s": round(time.process_time() - c0 - choose_cpu, 1),
            "wall_s": round(time.perf_counter() - w0, 1),
            "ari_styles": round(float(adjusted_rand_score(style, labels)), 3)}


def fit(method: str, x: np.ndarray) -> np.ndarray:
    from soundalike.organise.map import fit_map

    return fit_map(x, method=method, seed=0)


def measure(x: np.ndarray, y: np.ndarray, album: np.ndarray, sample: np.ndarray) -> dict:
    """knn10, trust10 and album10 of the sampled tracks (module docstring)."""
    n = len(x)
    knn = hits = album_hits = 0
    penalty = 0.0
    for start in range(0, len(sample), 250):
        s = sample[start: start + 250]
        sims = x[s] @ x.T
        sims[np.arange(len(s)), s] = -np.inf
        order = np.argsort(-sims, axis=1, kind="stable")
        rank = np.empty_like(order)
        rank[np.arange(len(s))[:, None], order] = np.arange(1, n + 1)[None, :]
        d2 = ((y[s][:, None, :] - y[None, :, :]) ** 2).sum(-1)
        d2[np.arange(len(s)), s] = np.inf
        near2 = np.argpartition(d2, K, axis=1)[:, :K]
        for i in range(len(s)):
            hi = set(order[i, :K].tolist())
            lo = near2[i]
            hits += sum(1 for j in lo if j in hi)
            penalty += float(sum(rank[i, j] - K for j in lo if j not in hi))
            album_hits += int((album[lo] == album[s[i]]).sum())
        knn += len(s) * K
    m = len(sample)
    trust = 1.0 - 2.0 / (m * K * (2 * n - 3 * K - 1)) * penalty
    return {"knn10": round(hits / knn, 4), "trust10": round(trust, 4), "album10": round(album_hits / knn, 4)}


def run(method: str, x: np.ndarray, album: np.ndarray, *, sample: np.ndarray, new: int, seed: int = 0) -> dict:
    from soundalike.organise.map import place

    w0, c0 = time.perf_counter(), time.process_time()
    y = fit(method, x)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    r = {"method": method, "tracks": len(x), "fit_wall_s": round(wall, 1), "fit_cpu_s": round(cpu, 1),
         **measure(x, y, album, sample)}
    if new:
        rng = np.random.default_rng(seed + 1)
        fresh = np.sort(rng.choice(len(x), new, replace=False))
        old = np.setdiff1d(np.arange(len(x)), fresh)
        y_old = fit(method, x[old])
        t0 = time.perf_counter()
        placed = place(x[fresh], x[old], y_old)
        r["place_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        y_inc = np.empty_like(y)
        y_inc[old], y_inc[fresh] = y_old, placed
        r["new_knn10"] = measure(x, y_inc, album, fresh)["knn10"]
        r["new_knn10_full_fit"] = measure(x, y, album, fresh)["knn10"]
        r["new"] = new
    return r


def points(x: np.ndarray, *, new: int) -> dict:
    """What ``GET /api/map`` costs over a real catalogue of these tracks (written through
    ``Catalog.replace_track``, the map laid out by PCA, since only the reading is timed): ``map_points``
    with nothing new, its JSON's size, and ``update_map`` placing ``new`` tracks indexed after the map."""
    import hashlib
    import tempfile

    from soundalike.catalog import Catalog
    from soundalike.organise.map import build_map, map_points, update_map

    with tempfile.TemporaryDirectory() as tmp:
        cat = Catalog(Path(tmp) / "catalog.sqlite")

        def write(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                cat.replace_track(f"/music/a{i // 10}/{i:06d}.flac", size=i, mtime=0.0,
                                  sha256=hashlib.sha256(str(i).encode()).hexdigest(),
                                  info={"duration": 200.0, "title": f"Song {i}", "artist": f"Artist {i // 50}",
                                        "album": f"Album {i // 10}"}, model_id="m", model_version="1",
                                  vector=x[i], tags=None, segments=[])
            cat.set_labels((f"/music/a{i // 10}/{i:06d}.flac", {"cluster": f"{i % 30 + 1}: tag, tag · genre"})
                           for i in range(lo, hi))

        write(0, len(x) - new)
        build_map(cat, method="pca")
        c0, w0 = time.process_time(), time.perf_counter()
        items = map_points(cat)
        r = {"method": "points", "tracks": len(items), "points_cpu_ms": round((time.process_time() - c0) * 1000),
             "points_wall_ms": round((time.perf_counter() - w0) * 1000),
             "json_mb": round(len(json.dumps(items, default=str)) / 1e6, 2)}
        write(len(x) - new, len(x))
        c0 = time.process_time()
        placed = update_map(cat)
        r.update(new=placed, update_cpu_ms=round((time.process_time() - c0) * 1000))
        cat.close()
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tracks", type=int, default=10000)
    ap.add_argument("--methods", nargs="+", default=["umap", "tsne", "pca"],
                    choices=["umap", "tsne", "pca", "clusters", "points"],
                    help="map layouts to compare, and/or 'clusters' (soundalike clusters' k-means), 'points' "
                         "(what GET /api/map costs over a catalogue)")
    ap.add_argument("--sample", type=int, default=1000)
    ap.add_argument("--data", choices=["blended", "albums"], default="blended",
                    help="the synthetic library (library())")
    ap.add_argument("--new", type=int, default=500, help="tracks placed on a map fitted without them (0: skip)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "map.json")
    args = ap.parse_args()
    from _machine import machine

    x, album, style = library(args.tracks, data=args.data, styles_too=True)
    sample = np.sort(np.random.default_rng(2).choice(len(x), min(args.sample, len(x)), replace=False))
    old = json.loads(args.out.read_text()) if args.out.exists() else {}
    results = {(r["method"], r["tracks"], r.get("data", "albums")): r for r in old.get("results", [])}
    print(f"data: {args.data}")
    print(f"{'method':6} {'tracks':>7} {'fit s':>7} {'CPU s':>7} {'knn10':>6} {'trust10':>7} {'album10':>7} "
          f"{'new knn10':>9} {'(full fit)':>10} {'place ms':>8}")
    for method in args.methods:
        if method == "points":
            r = points(x, new=min(args.new, len(x) // 5) or 100)
            r["data"] = args.data
            results[(method, args.tracks, args.data)] = r
            print(f"GET /api/map's work: {r['tracks']} points in {r['points_cpu_ms']} CPU ms "
                  f"({r['json_mb']} MB of JSON); "
                  f"placing {r['new']} new tracks {r['update_cpu_ms']} CPU ms", flush=True)
            continue
        if method == "clusters":
            r = clusters(x, style)
            r["data"] = args.data
            results[(method, args.tracks, args.data)] = r
            print(f"clusters: k = {r['k']} of {r['tried']} tried (40 styles drawn), ARI {r['ari_styles']}, CPU s: "
                  f"choosing k {r['choose_cpu_s']}, final fit {r['fit_cpu_s']} ({r['wall_s']} s wall)", flush=True)
            continue
        r = run(method, x, album, sample=sample, new=min(args.new, len(x) // 5))
        r["data"] = args.data
        results[(method, args.tracks, args.data)] = r
        print(f"{method:6} {r['tracks']:7d} {r['fit_wall_s']:7.1f} {r['fit_cpu_s']:7.1f} {r['knn10']:6.3f} "
              f"{r['trust10']:7.3f} {r['album10']:7.3f} {r.get('new_knn10', float('nan')):9.3f} "
              f"{r.get('new_knn10_full_fit', float('nan')):10.3f} {r.get('place_ms', float('nan')):8.1f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "machine": machine("n/a"), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "sample": args.sample, "results": sorted(results.values(), key=lambda r: (r["data"], r["tracks"], r["method"])),
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
