#!/usr/bin/env python3
"""Search benchmark: latency of a 30 s reference query against a library of >= 1,000 tracks.

The library is built once with the real pipeline (cached in bench/.data/search-lib):
1,000 synthesised 20 s tracks plus the real demo music. Queries are 30 s excerpts
of the real tracks with noise at 20 dB SNR, re-encoded as 64 kbit/s MP3.
Reports p50/p95 of the query embedding, of ANN + fusion and of the re-rank (identify/align.py), and the top-1 rate.

    .venv/bin/python bench/search.py [--tracks 1000] [--repeats 5] [--query-hops 2 1.5]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent / "soundalike"


def pct(xs, q):
    return float(np.percentile(np.asarray(xs), q))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", type=int, default=1000, help="synthesised tracks added to the real ones")
    ap.add_argument("--repeats", type=int, default=5, help="runs of each query")
    ap.add_argument("--queries", type=int, default=10)
    ap.add_argument("--query-hops", type=float, nargs="*", default=None,
                    help="compare these query hops in the same run (the first is reported at the top level)")
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / ".data")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "search.json")
    args = ap.parse_args()

    import soundalike
    from soundalike.decode import decode
    from soundalike.synth import add_noise, encode, render_track

    real = args.data / "music-12"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "demo_library.py"), "--dir", str(real),
                    "--max-tracks", "12"], check=True)
    synth = args.data / f"synth-{args.tracks}"
    synth.mkdir(parents=True, exist_ok=True)
    for i in range(args.tracks):
        path = synth / f"s{i:04d}.flac"
        if not path.exists():
            encode(render_track(1000 + i, seconds=20, sample_rate=22050), 22050, path)
    lib_path = args.data / f"search-lib-{args.tracks}"
    t0 = time.perf_counter()
    subprocess.run([str(BIN), "index", str(real), str(synth), "-L", str(lib_path)], check=True)
    print(f"library ready in {time.perf_counter() - t0:.0f} s", flush=True)

    lib = soundalike.open(lib_path, create=False)
    stats = lib.stats()
    manifest = json.loads((real / "manifest.json").read_text())
    rng = random.Random(0)
    queries = []
    for i in range(args.queries):
        t = rng.choice([t for t in manifest["tracks"] if t["seconds"] > 40])
        start = round(rng.uniform(0, t["seconds"] - 31), 1)
        audio = decode(real / t["file"], sample_rate=44100, start=start, end=start + 30)
        q = args.data / f"query-{i}.mp3"
        encode(add_noise(audio.samples, 20, np.random.default_rng(i)), 44100, q, bitrate=64000)
        queries.append((q, t["file"], start))

    lib.search(queries[0][0])  # load the model once, as a server would
    hops = args.query_hops or [None]
    runs = {}
    for hop in hops:  # each hop measured in this same run, interleaved by query
        runs[hop] = {"embed": [], "ann": [], "rerank": [], "total": [], "correct": 0}
    for q, name, start in queries:
        for hop in hops:
            m = runs[hop]
            for r in range(args.repeats):
                t = time.perf_counter()
                res = lib.search(q, query_hop=hop)
                m["total"].append((time.perf_counter() - t) * 1000)
                m["embed"].append(res.timings_ms["embed_ms"])
                m["ann"].append(res.timings_ms["ann_ms"] + res.timings_ms["fusion_ms"])
                m["rerank"].append(res.timings_ms.get("rerank_ms", 0.0))
            m["correct"] += Path(res.hits[0].path).name == name
            m["windows"] = res.query.informative_windows

    def summary(m):
        return {
            "query_windows": m["windows"],
            "embed_ms": {"p50": pct(m["embed"], 50), "p95": pct(m["embed"], 95)},
            "ann_fusion_ms": {"p50": pct(m["ann"], 50), "p95": pct(m["ann"], 95)},
            "rerank_ms": {"p50": pct(m["rerank"], 50), "p95": pct(m["rerank"], 95)},
            "total_ms": {"p50": pct(m["total"], 50), "p95": pct(m["total"], 95)},
            "top1": m["correct"] / len(queries),
        }

    result = {
        "library": {"tracks": stats["tracks"], "segments": stats["informative_segments"],
                    "audio_hours": stats["audio_hours"], "store": stats["store"]},
        "query_seconds": 30,
        "queries": len(queries),
        "repeats": args.repeats,
        **summary(runs[hops[0]]),
        "by_query_hop": {str(h or "default"): summary(m) for h, m in runs.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"library: {stats['tracks']} tracks, {stats['informative_segments']} segments, {stats['audio_hours']:.1f} h")
    for hop, r in result["by_query_hop"].items():
        print(f"query hop {hop}: {r['query_windows']} windows")
        for k in ("embed_ms", "ann_fusion_ms", "rerank_ms", "total_ms"):
            print(f"  {k:<14} p50 {r[k]['p50']:8.1f}   p95 {r[k]['p95']:8.1f}")
        print(f"  top-1 {r['top1']:.0%} of {len(queries)} noisy 30 s MP3 excerpts")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
