"""Scan-print sweep benchmark: time and memory of ``prints.PrintIndex.search`` against library size,
or (``--ab``) whole searches of a real library with the sweep on and off.

    .venv/bin/python bench/sweep.py                 # --hours 10 50 100 200 --runs 15
    .venv/bin/python bench/sweep.py --ab bench/.data/work-full/lib-catalogue \
        --queries bench/.data/corpus-full/queries/pink-0dB/*.flac bench/.data/corpus-full/queries/clean/*.flac

The libraries are made of 4-minute tracks whose print frames are random bits
(the sweep's cost depends on the number of frames, not on what they hold); the
query is the print of 12 s of one of them (what a search sweeps with). Prints
the median and p95 time per query, the index's memory, and writes JSON.

``--ab LIBRARY --queries FILE...``: each query is searched (top 10) with
``scan_hours`` at its default and at 0 (the sweep off), in alternating order,
``--rounds`` times, after one warm-up search that builds the print index.
Prints the median and p95 latency of each, split by whether the sweep ran
(it runs only when no landmark candidate is a copy), and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from soundalike.identify import prints as P  # noqa: E402


def ab(library: Path, queries: list[Path], rounds: int, out: Path) -> None:
    """Whole searches with the sweep on and off, alternating (see the module's docstring)."""
    import os

    import soundalike

    lib = soundalike.open(library)
    searcher = lib.searcher
    default = searcher.scan_hours
    swept = []
    scan = searcher.scan_candidates

    def counted(query, allowed):  # instrumentation: records that the sweep ran
        swept.append(True)
        return scan(query, allowed)

    searcher.scan_candidates = counted
    lib.search(queries[0], top=10)  # warm-up: loads the model, builds the print index
    times: dict[str, list[float]] = {"on": [], "off": []}
    ran: list[bool] = []  # per query, whether the sweep ran with it on
    for r in range(rounds):
        for i, q in enumerate(queries):
            order = ("on", "off") if (r + i) % 2 == 0 else ("off", "on")
            for mode in order:
                searcher.scan_hours = default if mode == "on" else 0
                swept.clear()
                t = time.perf_counter()
                lib.search(q, top=10)
                times[mode].append((time.perf_counter() - t) * 1000)
                if mode == "on" and r == 0:
                    ran.append(bool(swept))
    searcher.scan_hours = default
    n = len(queries)
    result = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "loadavg": list(np.round(os.getloadavg(), 2)),
              "library": str(library), "queries": n, "rounds": rounds, "swept_queries": sum(ran), "rows": []}
    for label, keep in (("sweep ran", True), ("sweep not needed", False)):
        idx = [j for j in range(rounds * n) if ran[j % n] == keep]
        if not idx:
            continue
        row = {"queries": label, "n": len(idx)}
        for mode in ("on", "off"):
            v = [times[mode][j] for j in idx]
            row[mode] = {"median_ms": round(statistics.median(v), 1), "p95_ms": round(float(np.percentile(v, 95)), 1)}
        result["rows"].append(row)
        print(f"{label:18s} {len(idx):4d} searches  sweep on {row['on']['median_ms']:7.1f} ms median "
              f"({row['on']['p95_ms']:.1f} p95)  off {row['off']['median_ms']:7.1f} ms ({row['off']['p95_ms']:.1f})",
              flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, nargs="+", default=[10, 50, 100, 200])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--ab", type=Path, metavar="LIBRARY", help="search this library with the sweep on and off")
    ap.add_argument("--queries", type=Path, nargs="+", default=[], help="audio files to search with (--ab)")
    ap.add_argument("--rounds", type=int, default=3, help="searches of each query in each mode (--ab)")
    ap.add_argument("--out", type=Path, default=None, help="JSON (default bench/results/sweep[-ab].json)")
    args = ap.parse_args()
    if args.ab:
        if not args.queries:
            ap.error("--ab needs --queries")
        ab(args.ab, args.queries, args.rounds, args.out or ROOT / "bench" / "results" / "sweep-ab.json")
        return
    args.out = args.out or ROOT / "bench" / "results" / "sweep.json"
    rng = np.random.default_rng(0)
    track_frames = round(240 / P.HOP_SECONDS)
    query_frames = round(12 / P.HOP_SECONDS)
    rows = []
    for hours in args.hours:
        n_tracks = max(1, round(hours * 3600 / 240))
        tracks = [(i, rng.integers(0, 1 << P.BITS, track_frames, dtype=np.uint32)) for i in range(n_tracks)]
        t = time.perf_counter()
        index = P.PrintIndex(tracks)
        build = time.perf_counter() - t
        mem = sum(a.nbytes for a in (index.signs, index.owner, index.start, index.length))
        source = tracks[n_tracks // 2][1]
        times = []
        for r in range(args.runs):
            at = int(rng.integers(0, track_frames - query_frames))
            q = source[at : at + query_frames].copy()
            flip = rng.random((len(q), P.BITS)) < 0.3  # 30 % of the bits flipped, as heavy noise does
            q ^= (flip.astype(np.uint32) << np.arange(P.BITS, dtype=np.uint32)).sum(axis=1, dtype=np.uint32)
            t = time.perf_counter()
            found = index.search(q)
            times.append((time.perf_counter() - t) * 1000)
            assert found and found[0].track_id == n_tracks // 2, found
        row = {
            "hours": hours, "tracks": n_tracks, "frames": index.frames, "build_s": round(build, 2),
            "memory_mb": round(mem / 2**20, 1), "median_ms": round(statistics.median(times), 1),
            "p95_ms": round(float(np.percentile(times, 95)), 1), "ms_per_hour": round(statistics.median(times) / hours, 2),
        }
        rows.append(row)
        print(f"{hours:6.0f} h  {n_tracks:6d} tracks  {row['memory_mb']:7.1f} MB  build {row['build_s']:5.1f} s  "
              f"query {row['median_ms']:7.1f} ms median, {row['p95_ms']:7.1f} p95  ({row['ms_per_hour']} ms per hour)",
              flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    load = list(np.round(np.array(__import__("os").getloadavg()), 2))
    args.out.write_text(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "loadavg": load,
                                    "runs": args.runs, "rows": rows}, indent=2))
    print(args.out)


if __name__ == "__main__":
    main()
