#!/usr/bin/env python3
"""Warped landmark looks (landmarks.query_looks): search latency and top-1 with and without them, in one run.

Uses the evaluation corpus and its indexed library (bench/quality.py builds both).
Each query is searched twice, once with only the query's own look and once with
every warp of ``landmarks.WARPS``, in alternating order; prints and writes the
median and p95 latency and the top-1 rate of each.

    .venv/bin/python bench/warps.py --size full --degradations clean,white-10dB,pitch+1st
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="full")
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / ".data")
    ap.add_argument("--degradations", default="clean,white-10dB,pitch+1st")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "warps.json")
    args = ap.parse_args()

    import soundalike
    from soundalike.identify import landmarks

    corpus, lib_dir = args.data / f"corpus-{args.size}", args.data / f"work-{args.size}" / "lib-catalogue"
    if not (corpus / "queries.csv").exists() or not lib_dir.exists():
        print(f"no corpus or library in {args.data}: run bench/quality.py --size {args.size} first", file=sys.stderr)
        return 3
    wanted = set(args.degradations.split(","))
    rows = [r for r in csv.DictReader(open(corpus / "queries.csv")) if r["degradation"] in wanted]
    lib = soundalike.open(lib_dir)
    variants = {"as is": (landmarks.SAME,), "warped looks": landmarks.WARPS}
    times: dict[str, list[float]] = {k: [] for k in variants}
    right: dict[str, dict[str, list[bool]]] = {k: {d: [] for d in sorted(wanted)} for k in variants}
    lib.search(corpus / rows[0]["query"], top=10)  # load the model
    load_before = os.getloadavg()[0]
    for i, r in enumerate(rows):
        order = list(variants) if i % 2 else list(reversed(variants))
        for name in order:
            landmarks.WARPS = variants[name]
            t = time.perf_counter()
            res = lib.search(corpus / r["query"], top=10)
            times[name].append((time.perf_counter() - t) * 1000)
            top = Path(res.hits[0].path).name if res.hits else None
            right[name][r["degradation"]].append(top == Path(r["track"]).name)
    landmarks.WARPS = variants["warped looks"]
    report = {
        "corpus": str(corpus), "queries": len(rows), "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "variants": {
            name: {"median_ms": round(float(np.median(ts)), 1), "p95_ms": round(float(np.percentile(ts, 95)), 1),
                   "top1": {d: round(float(np.mean(v)), 3) for d, v in right[name].items()}}
            for name, ts in times.items()
        },
    }
    for name, v in report["variants"].items():
        print(f"{name:>13}: median {v['median_ms']:.0f} ms, p95 {v['p95_ms']:.0f} ms, top-1 "
              + ", ".join(f"{d} {x:.0%}" for d, x in v["top1"].items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
