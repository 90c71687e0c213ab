#!/usr/bin/env python3
"""What the duplicate report costs on a large library: N synthesised tracks (5 % of them with an MP3 copy),
indexed with the test suite's FakeModel (the report reads only the catalogue and the index, so the embedding
model changes the windows' values, not the work), then ``Library.duplicates()`` and the report timed.
Writes bench/results/duplicates-scale-<N>.json.

    .venv/bin/python bench/duplicates_scale.py --tracks 400 --seconds 10 --work /tmp/dup-scale
    .venv/bin/python bench/duplicates_scale.py --tracks 2000 --seconds 10 --cheap --work /tmp/dup-scale-2000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def cheap_track(seed: int, seconds: float, sr: int) -> np.ndarray:
    """Random notes (three partials, a decaying envelope, 0.15-0.5 s each): distinct for every seed and about a
    hundred times cheaper to make than synth.render_track, for libraries of thousands of tracks."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * sr), np.float32)
    at = 0
    while at < len(out):
        n = min(int(rng.uniform(0.15, 0.5) * sr), len(out) - at)
        t = np.arange(n) / sr
        f = 110.0 * 2 ** (rng.integers(0, 48) / 12)
        note = sum(np.sin(2 * np.pi * f * k * t) / k for k in (1, 2, 3)) * np.exp(-t * rng.uniform(2, 8))
        out[at:at + n] += (0.3 * note).astype(np.float32)
        at += n
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--cheap", action="store_true", help="random notes instead of synth.render_track (faster)")
    args = ap.parse_args()

    import soundalike
    from soundalike.organise.duplicates_report import build_groups
    from soundalike.synth import encode, render_track
    from tests.fakes import FakeModel
    from _machine import machine

    sr = 22050
    music = args.work / "music"
    music.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    copies = 0
    for i in range(args.tracks):
        path = music / f"t{i:05d}.flac"
        if path.exists():
            copies += i % 20 == 0
            continue
        x = cheap_track(1000 + i, args.seconds, sr) if args.cheap else \
            render_track(1000 + i, seconds=args.seconds, sample_rate=sr) * np.float32(0.5)
        encode(x, sr, path)
        if i % 20 == 0:
            encode(x, sr, music / f"t{i:05d}-copy.mp3", bitrate=96000)
            copies += 1
    make_s = time.perf_counter() - t0
    lib = soundalike.open(args.work / "lib", model=FakeModel(), hop=2.0)
    t0 = time.perf_counter()
    for _ in lib.index([music]):
        pass
    index_s = time.perf_counter() - t0
    n = lib.catalog.track_count()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    pairs = lib.duplicates()
    dup_s, dup_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    t0 = time.perf_counter()
    groups = build_groups(lib.catalog, pairs, hop=lib.hop)
    report_s = time.perf_counter() - t0
    names = {r.id: Path(r.path).name for r in lib.catalog.tracks()}
    true = sum(1 for p in pairs if names[p.a].split("-")[0].split(".")[0] == names[p.b].split("-")[0].split(".")[0])
    lib.close()
    out = {"machine": machine(kernels="n/a"), "tracks": n, "seconds_each": args.seconds, "copies_made": copies,
           "audio": "cheap_track" if args.cheap else "synth.render_track",
           "pairs_found": len(pairs), "pairs_true": true, "groups": len(groups),
           "timings_s": {"make": round(make_s, 1), "index": round(index_s, 1), "duplicates": round(dup_s, 1),
                         "duplicates_cpu": round(dup_cpu, 1), "report": round(report_s, 2)},
           "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), "load": os.getloadavg()}
    path = args.out or ROOT / "bench" / "results" / f"duplicates-scale-{args.tracks}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
