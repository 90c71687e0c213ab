#!/usr/bin/env python3
"""Identification at catalogue sizes users have: landmark look-ups at 100, 1,000 and 10,000 hours.

A catalogue of H hours is synthesised from a real library's stored landmarks (``--source``, any indexed
library; default the one bench/long_reference.py builds): its tracks are repeated with new ids until H
hours are reached. Two ways (``--mode``):
- ``copies``: every repeat keeps its hashes: the worst case (each query hash is in the catalogue as often
  as the track is repeated, and the source is there hundreds of times);
- ``remixed``: every repeat but the first XORs its hashes' lower 13 bits (the frequency and time
  differences) with its own random mask and keeps the anchor's frequency bin: distinct music with the
  same per-bin popularity of hashes; the source is there once.
The postings are written as a generation (identify/postings.py) under ``--data``; then 10 s excerpts of
the source library's tracks (white noise at 10 dB, and clean) and of music that is not in it are looked up
as a search does (``query_looks``, ``Postings.hits``, ``landmarks.rank``), each timed in CPU and wall
seconds. Prints per size: build time, bytes per hour, postings returned per query, CPU per query for the
look-up and for the ranking (median, p95), and the top-1 rate (the source, or one of its copies, first).

    .venv/bin/python bench/scale.py [--hours 100 1000] [--mode remixed copies] [--queries 20]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))


def source_rows(db: Path) -> tuple[list[tuple[int, np.ndarray, np.ndarray]], dict[int, str], float]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows = [(int(t), np.frombuffer(h, "<u4").astype(np.int64), np.frombuffer(f, "<u4").astype(np.int64))
            for t, h, f in con.execute("SELECT track_id, hashes, frames FROM track_landmarks ORDER BY track_id")]
    paths = dict(con.execute("SELECT t.id, f.path FROM tracks t JOIN files f ON f.id = t.file_id"))
    seconds = con.execute("SELECT SUM(duration) FROM tracks").fetchone()[0]
    return rows, paths, float(seconds)


def synthesise(rows, seconds: float, hours: float, mode: str):
    """Rows for an H-hour catalogue: the source's tracks repeated with ids shifted by copy x stride."""
    copies = max(1, int(np.ceil(hours * 3600 / seconds)))
    stride = max(t for t, _, _ in rows) + 1
    rng = np.random.default_rng(7)
    masks = rng.integers(1, 1 << 13, size=copies)
    masks[0] = 0

    def gen():
        for c in range(copies):
            for tid, h, f in rows:
                yield tid + c * stride, 0, (h ^ masks[c]) if mode == "remixed" else h, f
    return gen, copies, stride


def queries(paths: dict[int, str], n: int, seed: int = 3):
    from soundalike.decode import decode
    from soundalike.identify.align import SR
    from soundalike.synth import add_noise, render_track

    rng = np.random.default_rng(seed)
    ids = sorted(paths)
    out = []
    for i in range(n):
        tid = ids[i % len(ids)]
        audio = decode(paths[tid], sample_rate=SR).samples
        start = int(rng.uniform(0, max(1, len(audio) - 10 * SR)))
        clip = audio[start : start + 10 * SR]
        out.append(("clean", tid, clip))
        out.append(("white-10dB", tid, add_noise(clip, 10.0, rng)))
    for i in range(max(2, n // 4)):  # music the catalogue does not hold
        import soxr

        x = render_track(9000 + i, seconds=10, sample_rate=22050)
        out.append(("absent", None, soxr.resample(x, 22050, SR).astype(np.float32)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=ROOT / "bench" / ".data" / "long-lib" / "catalog.sqlite")
    ap.add_argument("--hours", type=float, nargs="*", default=[100.0, 1000.0])
    ap.add_argument("--mode", nargs="*", default=["remixed", "copies"], choices=["remixed", "copies"])
    ap.add_argument("--queries", type=int, default=20, help="excerpts of catalogue tracks (each clean and noisy)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the synthesised postings under --data, and reuse those an earlier --keep run left")
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / ".data" / "scale")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale.json")
    args = ap.parse_args()

    from _machine import machine

    from soundalike.identify import landmarks as L
    from soundalike.identify import postings as P
    from soundalike.models.musicnn.fast import instruction_set
    from soundalike.identify.align import SR

    rows, paths, seconds = source_rows(args.source)
    qs = queries(paths, args.queries)
    looks = [(kind, tid, L.query_looks(clip, SR)) for kind, tid, clip in qs]
    results = {}
    for mode in args.mode:
        for hours in args.hours:
            gen, copies, stride = synthesise(rows, seconds, hours, mode)
            folder = args.data / f"{mode}-{hours:g}h"
            if args.keep and (folder / "gen" / "included.npy").exists():  # kept by an earlier run
                built, build_s, build_cpu = P.Generation(folder / "gen"), None, None
            else:
                shutil.rmtree(folder, ignore_errors=True)
                t0, c0 = time.perf_counter(), time.process_time()
                built = P.build(gen, folder / "gen")
                build_s, build_cpu = time.perf_counter() - t0, time.process_time() - c0
            size = sum(f.stat().st_size for f in (folder / "gen").iterdir())
            post = P.Postings(folder)  # the generation as a reader maps it, every track current
            post._gens, post._valid = [built], [np.ones(copies * stride, bool)]
            stats = {"lookup_cpu_ms": [], "rank_cpu_ms": [], "wall_ms": [], "postings": [], "ok": [], "kind": []}
            for kind, tid, lk in looks:
                hashes = np.concatenate([m.hashes for _, m in lk])
                w0, c0 = time.perf_counter(), time.process_time()
                hits = post.hits(hashes)
                c1 = time.process_time()
                cands = L.rank(lk, hits)
                c2, w1 = time.process_time(), time.perf_counter()
                stats["lookup_cpu_ms"].append((c1 - c0) * 1000)
                stats["rank_cpu_ms"].append((c2 - c1) * 1000)
                stats["wall_ms"].append((w1 - w0) * 1000)
                stats["postings"].append(len(hits))
                stats["kind"].append(kind)
                first = cands[0].track_id % stride if cands else None
                stats["ok"].append((first is None) if tid is None else (first == tid))
            r = {
                "hours": copies * seconds / 3600, "copies": copies, "postings": len(built),
                "build_s": build_s, "build_cpu_s": build_cpu, "bytes": size, "bytes_per_hour": size / (copies * seconds / 3600),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **stats,
            }
            for k in ("lookup_cpu_ms", "rank_cpu_ms", "wall_ms", "postings"):
                r[k + "_p50"] = float(np.median(stats[k]))
                r[k + "_p95"] = float(np.percentile(stats[k], 95))
            for kind in ("clean", "white-10dB", "absent"):
                sel = [ok for ok, k in zip(stats["ok"], stats["kind"]) if k == kind]
                r[f"top1_{kind}"] = float(np.mean(sel)) if sel else None
            results[f"{mode}/{hours:g}h"] = r
            print(f"{mode:8s} {r['hours']:7.0f} h: {len(built) / 1e6:6.1f} M postings, {size / 2**20:7.0f} MiB "
                  f"({r['bytes_per_hour'] / 2**20:.2f} MiB/h), built in {build_s or 0:.0f} s; per query "
                  f"{r['postings_p50'] / 1e3:.0f}k postings, look-up {r['lookup_cpu_ms_p50']:.0f} ms, "
                  f"rank {r['rank_cpu_ms_p50']:.0f} ms CPU (p95 {r['lookup_cpu_ms_p95'] + r['rank_cpu_ms_p95']:.0f}), "
                  f"wall {r['wall_ms_p50']:.0f} ms; top-1 clean {r['top1_clean']:.2f}, 10 dB {r['top1_white-10dB']:.2f}, "
                  f"absent none {r['top1_absent']:.2f}", flush=True)
            del built, post
            if not args.keep:
                shutil.rmtree(folder, ignore_errors=True)
    record = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(instruction_set()),
        "load_before": os.getloadavg(),
        "source": str(args.source), "source_hours": seconds / 3600,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
