#!/usr/bin/env python3
"""Long references: a whole song, a 20-minute set and a 2-hour recording as the query.

The library (cached in bench/.data/long-lib) holds the real demo music (the Wesnoth soundtrack, or
synthesised music where apt is unavailable) plus synthesised whole songs of 3-6 minutes. References:
- a 30 s excerpt of a song (as a baseline),
- a 5-minute song of the library, whole (it must rank itself first at offset 0),
- a 20-minute and a 2-hour recording made by playing library songs one after another (its first
  song must rank first, at offset 0).
Each reference runs in a fresh process with the model loaded and one warm-up search, ``--repeats``
times; the script reports wall and CPU seconds (median), the windows and hop used, peak RSS of the
process, and whether the expected track came first. ``--budgets`` compares window budgets (setting
``query_windows``; 0 is the dense default hop) in the same run, interleaved.

    .venv/bin/python bench/long_reference.py [--repeats 3] [--budgets 120 0] [--long-hours 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
BIN = Path(sys.executable).parent / "soundalike"
SR = 22050

CHILD = r"""
import json, os, resource, sys, time
import soundalike
lib = soundalike.open(sys.argv[1], create=False)
ref, repeats = sys.argv[2], int(sys.argv[3])
lib.search(sys.argv[4], start=0, end=10)  # load the model and the index
runs = []
for _ in range(repeats):
    t, c = time.perf_counter(), time.process_time()
    r = lib.search(ref, top=3)
    runs.append({"wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c, "timings_ms": r.timings_ms})
best = r.hits[0]
print(json.dumps({"runs": runs, "windows": r.query.windows, "hop": r.query.hop, "seconds": r.query.end - r.query.start,
                  "top1": best.path, "offset": best.offset, "copy": best.copy,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def build(data: Path) -> tuple[Path, dict[str, tuple[Path, str, float]]]:
    """The library and the references: name -> (path, the file name expected first, its offset there)."""
    from soundalike.decode import decode
    from soundalike.synth import encode, excerpt, render_track

    real = data / "music-12"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "demo_library.py"), "--dir", str(real),
                    "--max-tracks", "12"], check=True)
    songs = data / "long-songs"
    songs.mkdir(parents=True, exist_ok=True)
    lengths = [180 + 20 * i for i in range(8)] + [300]  # 3 to 5.3 minutes, and a 5-minute song
    for i, s in enumerate(lengths):
        path = songs / f"song{i:02d}-{s}s.ogg"
        if not path.exists():
            encode(render_track(700 + i, seconds=s, sample_rate=44100, channels=2), 44100, path, channels=2)
    lib = data / "long-lib"
    subprocess.run([str(BIN), "index", str(real), str(songs), "-L", str(lib)], check=True)

    refs = data / "long-refs"
    refs.mkdir(exist_ok=True)
    five = songs / "song08-300s.ogg"
    clip = refs / "excerpt-30s.ogg"
    if not clip.exists():
        encode(excerpt(decode(five, sample_rate=SR).samples, SR, 60.0, 30.0), SR, clip)
    playlist = sorted(songs.glob("*.ogg")) + sorted(real.glob("*.ogg"))
    out = {"excerpt-30s": (clip, five.name, 60.0), "whole-5min": (five, five.name, 0.0)}
    for name, seconds in (("set-20min", 1200.0), ("recording-2h", 7200.0)):
        path = refs / f"{name}.flac"
        if not path.exists():
            def blocks(seconds=seconds):
                left, i = int(seconds * SR), 0  # samples, counted exactly
                while left > 0:
                    x = decode(playlist[i % len(playlist)], sample_rate=SR).samples[:left]
                    left -= len(x)
                    i += 1
                    yield x
            encode(blocks(), SR, path)
        out[name] = (path, playlist[0].name, 0.0)
    return lib, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="searches per reference and process (median reported)")
    ap.add_argument("--budgets", type=int, nargs="*", default=[120, 0],
                    help="query_windows values compared in the same run (the first is the default)")
    ap.add_argument("--only", nargs="*", default=None, help="reference names to run (default: all)")
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / ".data")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "long-reference.json")
    args = ap.parse_args()

    from _machine import machine

    from soundalike.models.musicnn.fast import instruction_set

    lib, refs = build(args.data)
    warm = next(iter(refs.values()))[0]
    results: dict[str, dict] = {}
    for name, (path, expected, at) in refs.items():
        if args.only and name not in args.only:
            continue
        for budget in args.budgets:  # interleaved: every budget for one reference before the next reference
            env = {**os.environ, "SOUNDALIKE_QUERY_WINDOWS": str(budget)}
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", CHILD, str(lib), str(path), str(args.repeats), str(warm)],
                                 env=env, check=True, capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r["expected"] = expected
            r["ok"] = Path(r["top1"]).name == expected and abs((r["offset"] or 0.0) - at) <= 0.5
            r["wall_s_median"] = float(np.median([x["wall_s"] for x in r["runs"]]))
            r["cpu_s_median"] = float(np.median([x["cpu_s"] for x in r["runs"]]))
            r["process_s"] = time.perf_counter() - t0
            results[f"{name}/budget={budget}"] = r
            print(f"{name:14s} budget {budget:4d}: {r['seconds']:7.0f} s, {r['windows']:4d} windows at hop "
                  f"{r['hop']:.1f} s; wall {r['wall_s_median']:.2f} s, CPU {r['cpu_s_median']:.2f} s; "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB; first {'ok' if r['ok'] else 'WRONG'} "
                  f"({Path(r['top1']).name} at {r['offset']})", flush=True)
    record = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(instruction_set()),
        "load_before": os.getloadavg(),
        "repeats": args.repeats,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
