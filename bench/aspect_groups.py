#!/usr/bin/env python3
"""Each feature group of ``soundalike/aspects.py`` alone, and a small grid of embedding weights for the
instruments and rhythm aspects, on the similarity benchmark's label sets: p@10 per set and half.

It ranks with ``aspects.rank`` over the stored features only (no vector search, so no copy folding: the
same order ``similar --like`` gives). It reads the library that ``bench/similarity.py`` built and indexed
(run that first), and writes bench/results/similarity-aspect-groups.json. The grid is how the calibration
half was asked whether the hand-set weights should move; the report half is printed beside it only to be
quoted, never to choose.

    .venv/bin/python bench/aspect_groups.py
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
EMBEDDING_WEIGHTS = (0.25, 0.5, 1.0, 2.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / ".data")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "similarity-aspect-groups.json")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "bench"))
    from _machine import machine

    import soundalike
    from soundalike import aspects
    from soundalike.aspects import Aspect, FeatureTable
    from soundalike.evaluate import metrics
    from soundalike.evaluate.simsets import HALVES, read_items
    from soundalike.models.musicnn.fast import instruction_set

    folder = (args.data / "similarity").resolve()
    items = read_items(folder)
    lib = soundalike.open(args.data / "similarity-work-full" / "lib-default", create=False)
    ids = {os.path.realpath(t.path): t.id for t in lib.catalog.tracks()}
    table = FeatureTable.load(lib.catalog)
    lib.close()
    variants = {f"{g} alone": {g: 1.0} for g in aspects.GROUPS}
    for name in ("instruments", "rhythm"):
        for w in EMBEDDING_WEIGHTS:
            variants[f"{name}, embedding {w:g}"] = {**aspects.ASPECTS[name].weights, "embedding": w}
    t0, cpu0 = time.perf_counter(), time.process_time()
    sets: dict = {}
    for it_set in dict.fromkeys(it.label_set for it in items):
        for half in HALVES:
            labels = {ids[os.path.realpath(folder / "audio" / it.file)]: it.label for it in items
                      if it.label_set == it_set and it.half == half
                      and os.path.realpath(folder / "audio" / it.file) in ids}
            for name, weights in variants.items():
                like = Aspect(name, "", weights)
                p = []
                for q in labels:
                    if table.seed(q) is None:
                        continue
                    ranked = aspects.rank(table, like, [table.seed(q)], allowed=frozenset(labels),
                                          exclude=frozenset({q}))
                    v = metrics.precision_at_k([r.track_id for r in ranked], labels, q, 10)
                    if v is not None:
                        p.append(v)
                sets.setdefault(it_set, {}).setdefault(name, {})[half] = round(float(np.mean(p)), 3) if p else None
    report = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": machine(instruction_set()),
              "load": [round(x, 2) for x in os.getloadavg()], "seconds": round(time.perf_counter() - t0, 1),
              "cpu_s": round(time.process_time() - cpu0, 1), "sets": sets}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for it_set, rows in sets.items():
        print(it_set)
        for name, halves in rows.items():
            print(f"  {name:28s} calibration {halves.get('calibration')}  report {halves.get('report')}")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
