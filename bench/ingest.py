#!/usr/bin/env python3
"""Ingest benchmark: end-to-end x realtime, per-stage time, and peak RSS on a 2-hour file.

Runs the real CLI (`soundalike index --json`) in child processes on:
  1. a library of real music (the Wesnoth soundtrack via scripts/demo_library.py,
     synthesised if apt is unavailable), several times into fresh libraries;
  2. one synthetic 2-hour FLAC, for peak memory.
Prints a table and writes bench/results/ingest.json. Medians over --runs.

    .venv/bin/python bench/ingest.py [--runs 3] [--max-tracks 12] [--long-hours 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent / "soundalike"


def rusage_run(cmd: list[str]) -> tuple[float, float, float, str]:
    """Run cmd; return (wall s, cpu s, peak RSS MB, stdout)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        if status != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {err.read().decode().strip()}")
        return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, out.read().decode()


def long_file(path: Path, hours: float) -> None:
    if path.exists():
        return
    import numpy as np

    from soundalike.synth import encode, render_track

    sr = 22050
    piece = render_track(11, seconds=300, sample_rate=sr)

    def blocks():
        for i in range(int(hours * 12)):  # 5-minute pieces, varied by gain so windows differ
            yield (piece * (0.5 + 0.5 * ((i % 7) / 6))).astype(np.float32)

    encode(blocks(), sr, path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--max-tracks", type=int, default=12)
    ap.add_argument("--long-hours", type=float, default=2.0)
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / ".data")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ingest.json")
    args = ap.parse_args()
    music = args.data / f"music-{args.max_tracks}"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "demo_library.py"), "--dir", str(music),
                    "--max-tracks", str(args.max_tracks)], check=True)
    kind = json.loads((music / "manifest.json").read_text())["kind"]

    # warm the weight cache so that the first run does not pay the one-off conversion
    subprocess.run([sys.executable, "-c", "from soundalike.models import load_model; load_model('musicnn')"], check=True)

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            lib = Path(tmp) / "lib"
            shutil.rmtree(lib, ignore_errors=True)
            wall, cpu, rss, out = rusage_run([str(BIN), "index", str(music), "-L", str(lib), "--json"])
            s = json.loads(out)
            s.update(wall_seconds=wall, cpu_seconds=cpu, peak_rss_mb=rss)
            runs.append(s)
            print(f"run {i + 1}: {s['audio_seconds'] / 60:.1f} min of audio in {wall:.1f} s = "
                  f"{s['audio_seconds'] / wall:.1f}x realtime, CPU {cpu / wall:.2f} cores, peak RSS {rss:.0f} MB",
                  flush=True)
        long_path = args.data / f"long-{args.long_hours:g}h.flac"
        long_file(long_path, args.long_hours)
        lib = Path(tmp) / "long-lib"
        wall, cpu, rss_long, out = rusage_run([str(BIN), "index", str(long_path), "-L", str(lib), "--json"])
        long = json.loads(out)
        print(f"{args.long_hours:g}-hour file: {wall:.1f} s ({long['audio_seconds'] / wall:.1f}x realtime), "
              f"peak RSS {rss_long:.0f} MB", flush=True)

    audio = runs[0]["audio_seconds"]
    med = statistics.median
    stages = {k: med(r["stage_seconds"][k] for r in runs) for k in runs[0]["stage_seconds"]}
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "processor": platform.processor()},
        "library": {"kind": kind, "tracks": runs[0]["tracks"], "audio_seconds": audio},
        "runs": args.runs,
        "end_to_end_realtime_median": audio / med(r["wall_seconds"] for r in runs),
        "wall_seconds_median": med(r["wall_seconds"] for r in runs),
        "cpu_cores_busy_median": med(r["cpu_seconds"] / r["wall_seconds"] for r in runs),
        "peak_rss_mb_median": med(r["peak_rss_mb"] for r in runs),
        "stage_busy_seconds_median": stages,
        "stage_realtime_median": {k: (audio / v if v else None) for k, v in stages.items()},
        "long_file": {"hours": args.long_hours, "peak_rss_mb": rss_long, "wall_seconds": wall,
                      "realtime": long["audio_seconds"] / wall},
        "all_runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\n{kind} library, {result['library']['tracks']} tracks, {audio / 60:.1f} min; median of {args.runs} runs")
    print(f"  end to end     {result['end_to_end_realtime_median']:7.1f}x realtime  "
          f"({result['cpu_cores_busy_median']:.2f} cores busy)")
    for k, v in stages.items():
        print(f"  {k:<14} {audio / v if v else float('inf'):7.1f}x realtime  ({v:.1f} s busy)")
    print(f"  peak RSS       {result['peak_rss_mb_median']:7.0f} MB")
    print(f"  {args.long_hours:g}-hour file   {rss_long:7.0f} MB peak RSS")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
