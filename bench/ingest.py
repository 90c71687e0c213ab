#!/usr/bin/env python3
"""Ingest benchmark: end-to-end x realtime, per stage, per core, CPU utilisation and peak RSS.

Runs the real CLI (`soundalike index --json`) in child processes on:
  1. a library of real music (the Wesnoth soundtrack via scripts/demo_library.py,
     synthesised if apt is unavailable), several times into fresh libraries;
     with --hours H [H ...], instead a synthetic-plus-real library of H hours
     each: the real tracks plus 60 s synthetic FLACs (soundalike.synth), linked
     into one folder under --data;
     with --many-files N [N ...], instead folders of N distinct 2 s synthetic FLACs,
     to show that memory stays flat across many files;
  2. one synthetic --long-hours FLAC, for peak memory (skip with --no-long).
Prints a table and writes bench/results/ingest.json. Medians over --runs.
--coverage N indexes with `--coverage N` (the fast mode) as well, in the same
run, run by run after the dense one.

    .venv/bin/python bench/ingest.py [--runs 3] [--max-tracks 12] [--long-hours 2]
    .venv/bin/python bench/ingest.py --hours 1 10 --coverage 8
    .venv/bin/python bench/ingest.py --many-files 1000 10000 --runs 1 --no-long

Figures: "x realtime" = audio seconds / wall seconds; "per core" = audio
seconds / CPU seconds of the process (what one core does); "CPU utilisation" =
CPU seconds / wall seconds / cores; stage figures are audio seconds / busy
seconds of that stage (stages overlap in threads, so they do not add up).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import machine  # bench/_machine.py: this script's folder is on sys.path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent / "soundalike"
# The CLI imports soundalike from this checkout (PYTHONPATH), not from wherever the venv's editable install
# points: a worktree of an older commit, run with the main venv, then measures its own code.
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
SYNTH_SECONDS = 60


def rusage_run(cmd: list[str]) -> tuple[float, float, float, str]:
    """Run cmd; return (wall s, cpu s, peak RSS MB, stdout)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=ENV)
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


def mixed_library(data: Path, real: Path, hours: float) -> tuple[Path, dict]:
    """A folder of links: every real track, then 60 s synthetic FLACs up to ``hours`` of audio."""
    from soundalike.synth import encode, render_track

    folder = data / f"mixed-{hours:g}h"
    manifest = json.loads((real / "manifest.json").read_text())
    real_tracks = [t for t in manifest["tracks"] if (real / t["file"]).exists()]
    total = sum(t["seconds"] for t in real_tracks)
    n_synth = max(0, int(-(-(hours * 3600 - total) // SYNTH_SECONDS)))
    synth = data / "synth-60s"
    synth.mkdir(parents=True, exist_ok=True)
    for i in range(n_synth):
        path = synth / f"m{i:05d}.flac"
        if not path.exists():
            encode(render_track(5000 + i, seconds=SYNTH_SECONDS, sample_rate=22050), 22050, path)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for t in real_tracks:
        (folder / t["file"]).symlink_to((real / t["file"]).resolve())
    for i in range(n_synth):
        (folder / f"m{i:05d}.flac").symlink_to((synth / f"m{i:05d}.flac").resolve())
    return folder, {"kind": "synthetic+real", "real_tracks": len(real_tracks), "real_seconds": round(total, 1),
                    "synthetic_tracks": n_synth, "synthetic_seconds": n_synth * SYNTH_SECONDS}


def many_files(data: Path, n: int) -> tuple[Path, dict]:
    """A folder of ``n`` distinct 2 s synthetic FLACs (one window each), for memory across many files."""
    from soundalike.synth import encode, render_track

    store = data / "short-2s"
    store.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        path = store / f"s{i:05d}.flac"
        if not path.exists():
            encode(render_track(20000 + i, seconds=2.0, sample_rate=16000), 16000, path)
    folder = data / f"files-{n}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"s{i:05d}.flac").symlink_to((store / f"s{i:05d}.flac").resolve())
    return folder, {"kind": "synthetic 2 s files", "files": n}


def index_runs(folder: Path, runs: int, coverage: int | None, tmp: Path) -> list[dict]:
    out = []
    for i in range(runs):
        lib = tmp / "lib"
        shutil.rmtree(lib, ignore_errors=True)
        cmd = [str(BIN), "index", str(folder), "-L", str(lib), "--json"]
        if coverage:
            cmd += ["--coverage", str(coverage)]
        load = os.getloadavg()[0]
        wall, cpu, rss, stdout = rusage_run(cmd)
        s = json.loads(stdout)
        s.update(wall_seconds=wall, cpu_seconds=cpu, peak_rss_mb=rss, loadavg_1min_before=load)
        out.append(s)
        label = f"coverage {coverage}" if coverage else "dense"
        print(f"  run {i + 1} ({label}): {s['audio_seconds'] / 60:.1f} min of audio in {wall:.1f} s = "
              f"{s['audio_seconds'] / wall:.1f}x realtime, {s['audio_seconds'] / cpu:.1f}x per core, "
              f"CPU {cpu / wall:.2f} cores, peak RSS {rss:.0f} MB (load {load:.1f})", flush=True)
    return out


def summarise(runs: list[dict]) -> dict:
    med = statistics.median
    audio = runs[0]["audio_seconds"]
    cores = os.cpu_count() or 1
    stages = {k: med(r["stage_seconds"][k] for r in runs) for k in runs[0]["stage_seconds"]}
    wall = med(r["wall_seconds"] for r in runs)
    return {
        "tracks": runs[0]["tracks"],
        "audio_seconds": audio,
        "runs": len(runs),
        "end_to_end_realtime_median": audio / wall,
        "realtime_per_core_median": med(r["audio_seconds"] / r["cpu_seconds"] for r in runs),
        "wall_seconds_median": wall,
        "cpu_cores_busy_median": med(r["cpu_seconds"] / r["wall_seconds"] for r in runs),
        "cpu_utilisation_median": med(r["cpu_seconds"] / r["wall_seconds"] / cores for r in runs),
        "peak_rss_mb_median": med(r["peak_rss_mb"] for r in runs),
        "stage_busy_seconds_median": stages,
        "stage_realtime_median": {k: (audio / v if v else None) for k, v in stages.items()},
        "loadavg_1min_before": [r["loadavg_1min_before"] for r in runs],
        "all_runs": runs,
    }


def print_summary(title: str, s: dict) -> None:
    audio = s["audio_seconds"]
    print(f"\n{title}: {s['tracks']} tracks, {audio / 60:.1f} min; median of {s['runs']} runs")
    print(f"  end to end     {s['end_to_end_realtime_median']:7.1f}x realtime  ({s['wall_seconds_median']:.1f} s)")
    print(f"  per core       {s['realtime_per_core_median']:7.1f}x realtime per CPU second")
    print(f"  CPU            {s['cpu_cores_busy_median']:7.2f} cores busy = {100 * s['cpu_utilisation_median']:.0f} % "
          f"of {os.cpu_count()}")
    for k, v in s["stage_busy_seconds_median"].items():
        print(f"  {k:<14} {audio / v if v else float('inf'):7.1f}x realtime  ({v:.1f} s busy)")
    print(f"  peak RSS       {s['peak_rss_mb_median']:7.0f} MB")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--max-tracks", type=int, default=12, help="real tracks (the whole library without --hours)")
    ap.add_argument("--hours", type=float, nargs="+", default=None, help="synthetic-plus-real libraries of these sizes")
    ap.add_argument("--coverage", type=int, default=None, help="also index with --coverage N")
    ap.add_argument("--long-hours", type=float, default=2.0)
    ap.add_argument("--no-long", action="store_true", help="skip the long-file memory run")
    ap.add_argument("--many-files", type=int, nargs="+", default=None,
                    help="instead, folders of this many distinct 2 s files (peak RSS across many files)")
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / ".data")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ingest.json")
    args = ap.parse_args()
    music = args.data / f"music-{args.max_tracks}"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "demo_library.py"), "--dir", str(music),
                    "--max-tracks", str(args.max_tracks)], check=True)
    kind = json.loads((music / "manifest.json").read_text())["kind"]

    # warm the weight cache so that the first run does not pay the one-off conversion
    # and ask which instruction set the model's compiled kernels run in here (without importing torch in this process)
    warm = "from soundalike.models import load_model; load_model('musicnn'); " \
           "from soundalike.models.musicnn.fast import instruction_set; print(instruction_set())"
    kernels = subprocess.run([sys.executable, "-c", warm], check=True, capture_output=True, text=True, env=ENV)

    if args.many_files:
        libraries = [many_files(args.data, n) for n in args.many_files]
    elif args.hours:
        libraries = [mixed_library(args.data, music, h) for h in args.hours]
    else:
        libraries = [(music, {"kind": kind})]
    result: dict = {
        "machine": machine(kernels.stdout.strip()),
        "runs": args.runs,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "libraries": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for folder, info in libraries:
            print(f"{folder.name} ({info['kind']})", flush=True)
            entry = {"folder": folder.name, **info, "dense": summarise(index_runs(folder, args.runs, None, Path(tmp)))}
            if args.coverage:
                entry["coverage"] = {"n": args.coverage, **summarise(index_runs(folder, args.runs, args.coverage, Path(tmp)))}
            result["libraries"].append(entry)
        if not args.no_long:
            long_path = args.data / f"long-{args.long_hours:g}h.flac"
            long_file(long_path, args.long_hours)
            wall, cpu, rss_long, out = rusage_run([str(BIN), "index", str(long_path), "-L", str(Path(tmp) / "long-lib"), "--json"])
            long = json.loads(out)
            result["long_file"] = {"hours": args.long_hours, "peak_rss_mb": rss_long, "wall_seconds": wall,
                                   "cpu_seconds": cpu, "realtime": long["audio_seconds"] / wall}
            print(f"{args.long_hours:g}-hour file: {wall:.1f} s ({long['audio_seconds'] / wall:.1f}x realtime), "
                  f"peak RSS {rss_long:.0f} MB", flush=True)

    # the first library's dense figures also at the top level, as earlier versions wrote them
    first = result["libraries"][0]["dense"]
    result["library"] = {"kind": result["libraries"][0]["kind"], "tracks": first["tracks"], "audio_seconds": first["audio_seconds"]}
    result.update({k: v for k, v in first.items() if k not in ("tracks", "audio_seconds", "runs")})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    for entry in result["libraries"]:
        print_summary(f"{entry['folder']} ({entry['kind']}), dense", entry["dense"])
        if "coverage" in entry:
            print_summary(f"{entry['folder']}, --coverage {entry['coverage']['n']}", entry["coverage"])
    if "long_file" in result:
        print(f"  {args.long_hours:g}-hour file   {result['long_file']['peak_rss_mb']:7.0f} MB peak RSS")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
