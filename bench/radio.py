#!/usr/bin/env python3
"""Radio and sonic paths at the library sizes they are meant for: a 30-track radio and a 10-step path.

A library of N tracks is synthesised without audio: 200-d track vectors (musicnn's size) around one centre
per album of 10 tracks, the albums' centres drawn around 40 styles, written through the real catalogue
(``Catalog.replace_track``) and the real vector index (``open_store``, the default ``embedded``); 2 % of
the tracks get a near-copy (the same album, a vector within cosine ~0.99, the same length), so the copy
check runs as it would on a real library. Then, through ``Library.radio`` and ``Library.sonic_path`` (the
library open, as in the server), each timed in wall and CPU ms over ``--queries`` random seeds:
- a 30-track radio from one seed, from two seeds, and from one seed with a filter (about 40 % of tracks);
- a 10-step path between two random tracks.
And once per size, the ``soundalike radio`` command end to end (a new process: start-up and imports).
Prints a table and writes bench/results/radio.json.

    .venv/bin/python bench/radio.py [--sizes 2000 10000] [--queries 20]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

DIM = 200


def build(path: Path, tracks: int, *, seed: int = 0, store: str = "embedded") -> float:
    from soundalike.catalog import Catalog
    from soundalike.stores import open_store

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    cat = Catalog(path / "catalog.sqlite")
    for k, v in (("model_id", "musicnn"), ("model_version", "bench"), ("dim", str(DIM)), ("hop", "1.5"),
                 ("store", store), ("tag_names", "[]")):
        cat.set_meta(k, v)
    styles = rng.standard_normal((40, DIM))
    albums = max(1, tracks // 10)
    centres = styles[rng.integers(0, 40, albums)] + 0.8 * rng.standard_normal((albums, DIM))
    ids, vecs = [], []
    i = 0
    while len(ids) < tracks:
        album = i // 10 % albums
        v = centres[album] + 0.9 * rng.standard_normal(DIM)
        v /= np.linalg.norm(v)
        copies = [v]
        if rng.random() < 0.02:
            c = v + 0.1 / np.sqrt(DIM) * rng.standard_normal(DIM)
            copies.append(c / np.linalg.norm(c))
        duration = float(rng.uniform(120, 420))
        for j, x in enumerate(copies):
            if len(ids) >= tracks:
                break
            tid, _, _ = cat.replace_track(
                f"/music/artist{album % 300}/album{album}/{i:06d}{'-copy' if j else ''}.flac", size=1, mtime=0.0,
                sha256=hashlib.sha256(f"{i}-{j}".encode()).hexdigest(),
                info={"duration": duration, "title": f"Song {i}", "artist": f"Artist {album % 300}",
                      "album": f"Album {album}", "bpm": float(rng.uniform(60, 180))},
                model_id="musicnn", model_version="bench", vector=x, tags=None, segments=[])
            ids.append(tid)
            vecs.append(x)
        i += 1
    st = open_store(store, path / "index", DIM)
    st.upsert("tracks", np.array(ids, np.int64), np.array(vecs, np.float32))
    st.close()
    cat.close()
    return time.perf_counter() - t0


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, (time.perf_counter() - w) * 1000, (time.process_time() - c) * 1000


def summary(xs: list[float]) -> dict:
    xs = sorted(xs)
    return {"median": round(statistics.median(xs), 1), "p95": round(xs[min(len(xs) - 1, int(0.95 * len(xs)))], 1),
            "max": round(xs[-1], 1)}


def run(size: int, queries: int, workdir: Path) -> dict:
    import soundalike
    from soundalike.organise.radio import album_key

    lib_path = workdir / f"lib-{size}"
    build_s = build(lib_path, size)
    lib = soundalike.open(lib_path, create=False)
    rng = np.random.default_rng(1)
    ids = [int(i) for i in lib.catalog.vector_ids("tracks")]
    lib.radio([ids[0]], n=30)  # the index loaded once, as in a running server
    cases = {
        "radio 30, 1 seed": lambda s: lib.radio([s[0]], n=30, seed=int(s[2])),
        "radio 30, 2 seeds": lambda s: lib.radio([s[0], s[1]], n=30, seed=int(s[2])),
        "radio 30, 1 seed, --where (40 %)": lambda s: lib.radio([s[0]], n=30, where="bpm between 90 and 138",
                                                                 seed=int(s[2])),
        "path, 10 steps": lambda s: lib.sonic_path(s[0], s[1], steps=10),
    }
    picks = [(int(a), int(b), int(r)) for a, b, r in
             zip(rng.choice(ids, queries), rng.choice(ids, queries), rng.integers(0, 1000, queries))]
    out = {"tracks": size, "build_s": round(build_s, 1), "cases": {}}
    for name, fn in cases.items():
        wall, cpu, smooth, albums, shorter, rough, direct = [], [], [], [], 0, [], []
        for s in picks:
            if s[0] == s[1]:
                continue
            pl, w, c = timed(lambda: fn(s))
            wall.append(w)
            cpu.append(c)
            smooth.append(pl.smoothness)
            rough.append(pl.roughest)
            if pl.direct is not None:
                direct.append(pl.direct)
            rows = {r.id: r for r in lib.catalog.tracks([e.track_id for e in pl.entries])}
            keys = [album_key(rows[e.track_id]) for e in pl.entries]
            assert all(a != b for a, b in zip(keys[1:], keys[2:])) or pl.kind == "path"
            albums.append(len(set(keys)))
            shorter += pl.note is not None
        out["cases"][name] = {"wall_ms": summary(wall), "cpu_ms": summary(cpu),
                              "smoothness": round(statistics.median(smooth), 3),
                              "roughest": round(statistics.median(rough), 3),
                              "direct": round(statistics.median(direct), 3) if direct else None,
                              "albums": statistics.median(albums), "shorter": shorter, "runs": len(wall)}
    lib.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from soundalike.cli import run; run()", "radio", str(ids[5]), "-L", str(lib_path), "--json"],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    out["cli_radio_s"] = round(time.perf_counter() - t0, 2)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000])
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "radio.json")
    args = ap.parse_args()
    from _machine import machine

    results = []
    with tempfile.TemporaryDirectory(prefix="radio-bench-") as tmp:
        for size in args.sizes:
            r = run(size, args.queries, Path(tmp))
            results.append(r)
            print(f"\n{size} tracks (built in {r['build_s']} s; `soundalike radio` end to end {r['cli_radio_s']} s)")
            print(f"  {'case':34} {'wall ms p50/p95':>16} {'CPU ms p50':>10} {'smooth':>7} {'roughest':>8} "
                  f"{'A-B':>6} {'albums':>6} {'short':>5}")
            for name, c in r["cases"].items():
                print(f"  {name:34} {c['wall_ms']['median']:>7}/{c['wall_ms']['p95']:<8} {c['cpu_ms']['median']:>10} "
                      f"{c['smoothness']:>7} {c['roughest']:>8} {c['direct'] if c['direct'] is not None else '':>6} "
                      f"{c['albums']:>6} {c['shorter']:>5}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine("n/a"), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                    "queries": args.queries, "results": results}, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
