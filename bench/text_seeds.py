#!/usr/bin/env python3
"""Calibrate text search's seeding (``soundalike/text_seeds.py``) on the similarity benchmark's calibration half.

The report half's items carry their class name as a user label (``category``), and the label-derived text
queries are scored on the calibration half, whose items the search returns and whose names it never sees; every
(weight, k) of the grid is tried, with seeding off as the reference. The report half is never scored here: quote
it with ``soundalike evaluate --similarity FOLDER --named-half calibration``, which names the calibration half
instead and scores the report half with the constants chosen here.

Needs the benchmark built and indexed (``soundalike evaluate --similarity FOLDER --fetch`` once). Writes
bench/results/text-seeds.json.

    PYTHONPATH=. .venv/bin/python bench/text_seeds.py --folder bench/.data/similarity
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", type=Path, default=ROOT / "bench" / ".data" / "similarity")
    ap.add_argument("--work", type=Path, default=None, help="the benchmark's libraries [default: FOLDER/work]")
    ap.add_argument("--weights", default="0.5,1,1.5,2,3,4")
    ap.add_argument("--ks", default="1,3,5,10")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "text-seeds.json")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "bench"))
    from _machine import machine

    import soundalike
    from soundalike.evaluate.simrun import LABEL_NAME, name_half, text_queries
    from soundalike.evaluate.simsets import LABEL_SETS, read_items
    from soundalike.models.musicnn.fast import instruction_set
    from soundalike.text_seeds import SEEDING, Seeding

    folder = args.folder.resolve()
    items = [it for it in read_items(folder) if any(LABEL_SETS.get(it.label_set, {}).values())]
    audio = folder / "audio"
    load_before = [round(x, 2) for x in os.getloadavg()]
    t0 = time.perf_counter()
    lib = soundalike.open((args.work or folder / "work") / "lib-default")
    grid = [None] + [Seeding(weight=float(w), k=int(k)) for w in args.weights.split(",") for k in args.ks.split(",")]
    rows = []
    try:
        name_half(lib, audio, items, "report")
        for seeding in grid:
            per_set, all_p5, zeros = {}, [], 0
            for name in dict.fromkeys(it.label_set for it in items):
                labels = {os.path.realpath(audio / it.file): it.label for it in items
                          if it.label_set == name and it.half == "calibration"}  # fmt: skip
                res = text_queries(lib, name, labels, f"{LABEL_NAME} = '{name}:calibration'", seeding=seeding)
                per_set[name] = round(res["mean_p5"], 3)
                ps = [q["p5"] for q in res["queries"].values()]
                all_p5 += ps
                zeros += sum(1 for q in res["queries"].values() if q["p5"] == 0 and q["relevant"] >= 5)
            row = {"weight": seeding and seeding.weight, "k": seeding and seeding.k,
                   "mean_p5": round(float(np.mean(all_p5)), 3), "by_set": per_set, "queries_at_0": zeros}
            rows.append(row)
            print(f"weight={row['weight']} k={row['k']}: mean p@5 {row['mean_p5']:.3f} {per_set} "
                  f"at 0 (≥5 relevant): {zeros}", flush=True)
    finally:
        name_half(lib, audio, items, None)
        lib.close()
    best = max(rows[1:], key=lambda r: (r["mean_p5"], -r["queries_at_0"], -r["weight"], -r["k"]))
    print(f"best on the calibration half: weight={best['weight']} k={best['k']} (mean p@5 {best['mean_p5']:.3f}; "
          f"seeding off {rows[0]['mean_p5']:.3f}); text_seeds.SEEDING is weight={SEEDING.weight} k={SEEDING.k}")
    report = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": machine(instruction_set()),
              "folder": str(folder), "scored_half": "calibration", "named_half": "report", "grid": rows,
              "best": best, "seconds": round(time.perf_counter() - t0, 1), "load_before": load_before,
              "load_after": [round(x, 2) for x in os.getloadavg()]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
