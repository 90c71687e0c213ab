#!/usr/bin/env python3
"""Filtered-search benchmark: latency of a search with a --where filter at 1 % and 10 % selectivity.

Works on a copy of the search benchmark's library (bench/search.py builds it: 1,000
synthesised 20 s tracks plus 12 real ones) and its 30 s noisy MP3 queries. Every
track gets a user metadata column ``bucket`` (0-99, at random), imported through
``labels import``; the filters are ``bucket < 1`` (1 %), ``bucket < 10`` (10 %),
and a catalogue-field filter (``duration > 60``: the 12 real tracks). Each query is embedded once;
then the filter (SQL), ANN and fusion are timed, the way ``Library.search`` runs
them. Every filtered answer is checked against the exact (brute-force) store: same
tracks, and exactly min(top, allowed) of them.

    .venv/bin/python bench/filters.py [--repeats 5] [--top 10]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def pct(xs, q):
    return float(np.percentile(np.asarray(xs), q))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / ".data")
    ap.add_argument("--library", default="search-lib-1000", help="library folder under --data (from bench/search.py)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--queries", type=int, default=10, help="how many of the search benchmark's queries")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "filters.json")
    args = ap.parse_args()

    import soundalike
    from soundalike import settings
    from soundalike.fusion import Weights
    from soundalike.search import Query

    src = args.data / args.library
    if not (src / "catalog.sqlite").exists():
        print(f"no library at {src}: run bench/search.py first", file=sys.stderr)
        return 1
    queries = sorted(args.data.glob("query-*.mp3"))[: args.queries]
    work = Path(tempfile.mkdtemp(prefix="soundalike-filters-"))
    try:
        shutil.copytree(src, work / "lib")
        lib = soundalike.open(work / "lib", create=False)
        rng = random.Random(0)
        rows = lib.tracks()
        with open(work / "buckets.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["track_id", "bucket"])
            for r in rows:
                w.writerow([r.id, rng.randrange(100)])
        lib.import_labels(work / "buckets.csv")
        # the reference: the same catalogue in the brute-force store (in memory)
        from soundalike.ingest import normalize
        from soundalike.search import Searcher
        from soundalike.stores import open_store

        exact_store = open_store("exact", None, lib.dim)
        for ids, vecs in lib.catalog.segment_vectors():
            exact_store.upsert("segments", ids, normalize(vecs))
        tv = list(lib.catalog.track_vectors())
        exact_store.upsert("tracks", np.array([t for t, _ in tv], np.int64), normalize(np.stack([v for _, v in tv])))
        exact = Searcher(lib.catalog, exact_store)

        filters = {
            "none": None,
            "10 % (bucket < 10)": "bucket < 10",
            "1 % (bucket < 1)": "bucket < 1",
            "1 % by a catalogue field (duration > 60)": "duration > 60",
        }
        hop = lib.hop * 2 / 3
        seeds = []
        t0 = time.perf_counter()
        for q in queries:
            info, starts, ends, raw = lib.searcher.embed_query(lib.model, q, start=None, end=None, hop=hop,
                                                               silence_db=settings.get("silence_db"))
            seeds.append(Query(info, starts, ends, raw, frozenset(), max(lib.hop, hop) / 2 + 0.25))
        print(f"{len(seeds)} queries embedded in {time.perf_counter() - t0:.1f} s", flush=True)
        weights = Weights.parse(settings.get("weights"))
        k = settings.get("k")
        results = {}
        for name, where in filters.items():
            allowed_n = lib.count_tracks(where)
            times, sql_times, ok, exact_ok = [], [], 0, 0
            for seed in seeds:
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    allowed = lib.allowed_tracks(where)
                    t_sql = time.perf_counter()
                    res = lib.searcher.rank_seeds([seed], [], top=args.top, k=k, weights=weights, allowed=allowed)
                    times.append((time.perf_counter() - t) * 1000)
                    sql_times.append((t_sql - t) * 1000)
                ref = exact.rank_seeds([seed], [], top=args.top, k=k, weights=weights, allowed=allowed)
                ok += len(res.hits) == min(args.top, allowed_n if allowed is not None else len(rows))
                exact_ok += [h.track_id for h in res.hits] == [h.track_id for h in ref.hits]
            results[name] = {
                "where": where, "allowed_tracks": allowed_n,
                "segments_allowed": int(len(lib.searcher.allowed_ids(lib.allowed_tracks(where))[0]))
                if where else lib.store.count("segments"),
                "total_ms": {"p50": pct(times, 50), "p95": pct(times, 95)},
                "filter_sql_ms": {"p50": pct(sql_times, 50), "p95": pct(sql_times, 95)},
                "full_count": f"{ok}/{len(seeds)}",
                "same_as_exact_store": f"{exact_ok}/{len(seeds)}",
            }
        stats = lib.stats()
        out = {
            "library": {"tracks": stats["tracks"], "segments": stats["informative_segments"]},
            "queries": len(seeds), "repeats": args.repeats, "top": args.top, "k": k,
            "loadavg": os.getloadavg(), "filters": results,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2))
        print(f"library: {stats['tracks']} tracks, {stats['informative_segments']} segments; load {os.getloadavg()}")
        for name, r in results.items():
            print(f"{name:<58} {r['allowed_tracks']:>5} tracks  p50 {r['total_ms']['p50']:6.1f} ms  "
                  f"p95 {r['total_ms']['p95']:6.1f} ms  (SQL {r['filter_sql_ms']['p50']:.1f})  "
                  f"full {r['full_count']}  = exact {r['same_as_exact_store']}")
        print(f"wrote {args.out}")
        lib.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
