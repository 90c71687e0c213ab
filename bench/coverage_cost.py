#!/usr/bin/env python3
"""What `--coverage N` saves in indexing time and costs in search quality.

Indexes the real-music demo library (scripts/demo_library.py, the Wesnoth
soundtrack) densely and with each `--coverage N`, in this one process (the
model loads once), and searches every library with the same queries: excerpts
of --query-seconds from random points of the real tracks, with white noise at
20 dB SNR, as 64 kbit/s MP3s. Reports per library the windows embedded, the
indexing wall and CPU seconds (`time.process_time`), x realtime, and the share
of queries whose source track ranks first (top-1) and in the first three.

    .venv/bin/python bench/coverage_cost.py [--coverage 4 8 16] [--queries 20] [--query-seconds 10]

Writes bench/results/coverage.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--coverage", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--query-seconds", type=float, default=10.0)
    ap.add_argument("--max-tracks", type=int, default=12)
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / ".data")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "coverage.json")
    args = ap.parse_args()

    import soundalike
    from soundalike.decode import decode
    from soundalike.models import load_model
    from soundalike.synth import add_noise, encode

    real = args.data / f"music-{args.max_tracks}"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "demo_library.py"), "--dir", str(real),
                    "--max-tracks", str(args.max_tracks)], check=True)
    manifest = json.loads((real / "manifest.json").read_text())
    tracks = [t for t in manifest["tracks"] if t["seconds"] > args.query_seconds + 5]
    model = load_model("musicnn")
    rng = random.Random(0)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        queries = []
        for i in range(args.queries):
            t = rng.choice(tracks)
            start = round(rng.uniform(0, t["seconds"] - args.query_seconds - 1), 1)
            audio = decode(real / t["file"], sample_rate=44100, start=start, end=start + args.query_seconds)
            q = Path(tmp) / f"q{i}.mp3"
            encode(add_noise(audio.samples, 20, np.random.default_rng(i)), 44100, q, bitrate=64000)
            queries.append((q, t["file"]))
        for coverage in (None, *args.coverage):
            lib = soundalike.open(Path(tmp) / f"lib-{coverage or 'dense'}", model=model)
            w, c = time.perf_counter(), time.process_time()
            done = list(lib.index([real], coverage=coverage))[-1]
            wall, cpu = time.perf_counter() - w, time.process_time() - c
            ranks = []
            for q, name in queries:
                hits = lib.search(q, top=len(tracks)).hits
                names = [Path(h.path).name for h in hits]
                ranks.append(names.index(name) + 1 if name in names else None)
            stats = lib.stats()
            row = {
                "coverage": coverage,
                "windows_embedded": stats["informative_segments"],
                "audio_seconds": done.audio_seconds,
                "index_wall_s": wall,
                "index_cpu_s": cpu,
                "x_realtime": done.audio_seconds / wall,
                "x_realtime_per_cpu_s": done.audio_seconds / cpu,
                "top1": sum(r == 1 for r in ranks) / len(ranks),
                "top3": sum(r is not None and r <= 3 for r in ranks) / len(ranks),
                "ranks": ranks,
            }
            results.append(row)
            lib.close()
            print(f"{'dense' if coverage is None else f'coverage {coverage}':>12}: {row['windows_embedded']:5d} windows, "
                  f"index {wall:6.1f} s wall {cpu:6.1f} s CPU ({row['x_realtime']:.0f}x realtime, "
                  f"{row['x_realtime_per_cpu_s']:.0f}x per CPU s), top-1 {row['top1']:.2f}, top-3 {row['top3']:.2f}",
                  flush=True)
    report = {
        "library": {"kind": manifest["kind"], "tracks": len(manifest["tracks"])},
        "queries": args.queries, "query_seconds": args.query_seconds, "degradation": "white noise 20 dB, MP3 64 kbit/s",
        "loadavg_1min_after": os.getloadavg()[0], "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
