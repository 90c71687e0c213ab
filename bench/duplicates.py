#!/usr/bin/env python3
"""Duplicate-finding benchmark on the hard variants (issue 21): soundalike and Chromaprint in one run.

Makes ``HARD_DUP_KINDS`` variants (Opus 24k, AAC 64k, Vorbis 64k, MP3 48k mono, +-3 % speed, trim with
fades) of every music track of a corpus built by bench/corpus.py, indexes them into a copy of an
already indexed library of that corpus's catalogue (only the variants are embedded), and measures
precision and recall of ``Library.duplicates()`` (default thresholds) and of Chromaprint (fpcalc) over
the pairs of music files. The originals are split in two halves by a seeded permutation: the
calibration half is where thresholds may be chosen (Chromaprint's is chosen there), the report half is
where the figures count. Writes bench/results/duplicates.json.

    .venv/bin/python bench/duplicates.py --corpus bench/.data/corpus-small \\
        --library bench/.data/work-small/lib-catalogue --work bench/.data/work-dups
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _real(p) -> str:
    return os.path.realpath(str(p))


def _prf(found: set, truth: set) -> dict:
    tp = len(found & truth)
    return {"true": len(truth), "found": len(found), "tp": tp,
            "precision": round(tp / len(found), 4) if found else 1.0,
            "recall": round(tp / len(truth), 4) if truth else 1.0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, required=True, help="a corpus folder built by bench/corpus.py")
    ap.add_argument("--library", type=Path, required=True, help="an indexed library of the corpus's catalogue/")
    ap.add_argument("--work", type=Path, required=True, help="where the variants and the library copy go")
    ap.add_argument("--variants", type=int, default=2, help="variants per music track")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "duplicates.json")
    args = ap.parse_args()

    import soundalike
    from soundalike.evaluate.peers import Chromaprint
    from soundalike.evaluate.sets import HARD_DUP_KINDS, DupCase, make_duplicates, read_csv, write_csv

    sys.path.insert(0, str(ROOT / "bench"))
    from _machine import machine

    corpus, work = args.corpus.resolve(), args.work.resolve()
    tracks = [line.split(",")[:2] for line in (corpus / "tracks.csv").read_text().splitlines()[1:]]
    music = sorted(_real(corpus / "catalogue" / f) for f, source in tracks if source != "drums")
    csv = work / "variants.csv"
    t0 = time.perf_counter()
    if not csv.exists():
        cases = make_duplicates(music, work / "variants", variants=args.variants, seed=args.seed, kinds=HARD_DUP_KINDS)
        write_csv(csv, cases)
    cases = read_csv(csv, DupCase)
    make_s = time.perf_counter() - t0
    lib_dir = work / "lib"
    if not (lib_dir / "catalog.sqlite").exists():
        shutil.copytree(args.library, lib_dir, ignore=shutil.ignore_patterns("index.lock"))
    lib = soundalike.open(lib_dir)
    t0 = time.perf_counter()
    for _ in lib.index([corpus / "catalogue", work / "variants"]):
        pass
    index_s = time.perf_counter() - t0

    rng = np.random.default_rng(args.seed)
    shuffled = np.array(music)[rng.permutation(len(music))]
    half = {o: ("calibration" if k % 2 == 0 else "report") for k, o in enumerate(shuffled)}
    group = {m: m for m in music} | {_real(c.file): _real(c.original) for c in cases}
    kind = {_real(c.file): c.kind for c in cases}
    members = sorted(group)
    truth = {tuple(sorted((a, b))) for a in members for b in members if a < b and group[a] == group[b]}

    paths = {r.id: _real(r.path) for r in lib.catalog.tracks()}
    t0 = time.perf_counter()
    pairs = lib.duplicates()
    dup_s = time.perf_counter() - t0
    found = {tuple(sorted((paths[p.a], paths[p.b]))) for p in pairs
             if paths.get(p.a) in group and paths.get(p.b) in group}
    # the report's groups are the connected components of the pairs: every two files of one group are copies
    from soundalike.organise.duplicates_report import _components

    grouped = set()
    for comp in _components(pairs):
        files = sorted(paths[t] for t in comp if paths.get(t) in group)
        grouped |= {(a, b) for i, a in enumerate(files) for b in files[i + 1:]}

    fp = Chromaprint()
    t0 = time.perf_counter()
    fp.add(members)
    cp_scores = fp.pair_scores(members)
    cp_s = time.perf_counter() - t0

    def in_half(pair, h):
        return half[group[pair[0]]] == h or half[group[pair[1]]] == h

    report = {"machine": machine(kernels=os.environ.get("SOUNDALIKE_KERNELS", "default")),
              "corpus": str(corpus), "music_tracks": len(music), "variants": len(cases),
              "kinds": sorted(HARD_DUP_KINDS),
              "timings_s": {"make": round(make_s, 1), "index": round(index_s, 1), "duplicates": round(dup_s, 2),
                            "chromaprint": round(cp_s, 1)}}
    # Chromaprint's threshold: the best F1 on the calibration half
    cal_truth = {p for p in truth if in_half(p, "calibration")}
    best = (-1.0, 0.0)
    for t in sorted({round(v, 3) for v in cp_scores.values()}):
        f = {tuple(sorted(k)) for k, v in cp_scores.items() if v >= t and in_half(tuple(sorted(k)), "calibration")}
        m = _prf(f, cal_truth)
        f1 = 2 * m["precision"] * m["recall"] / max(m["precision"] + m["recall"], 1e-9)
        if f1 > best[0]:
            best = (f1, t)
    cp_found = {tuple(sorted(k)) for k, v in cp_scores.items() if v >= best[1]}
    for h in ("calibration", "report"):
        ht = {p for p in truth if in_half(p, h)}
        report[h] = {"soundalike": _prf({p for p in found if in_half(p, h)}, ht),
                     "soundalike_groups": _prf({p for p in grouped if in_half(p, h)}, ht),
                     "chromaprint": {"threshold": best[1], **_prf({p for p in cp_found if in_half(p, h)}, ht)}}
        by_kind = {}
        for k in sorted(HARD_DUP_KINDS):
            kt = {p for p in ht if kind.get(p[0]) == k or kind.get(p[1]) == k}
            by_kind[k] = {"pairs": len(kt), "soundalike": len(kt & found), "soundalike_groups": len(kt & grouped),
                          "chromaprint": len(kt & cp_found)}
        report[h]["by_kind"] = by_kind
    report["missed"] = sorted(f"{Path(a).name} ~ {Path(b).name}" for a, b in truth - found)
    report["missed_by_groups"] = sorted(f"{Path(a).name} ~ {Path(b).name}" for a, b in truth - grouped)
    report["false"] = sorted(f"{Path(a).name} ~ {Path(b).name}" for a, b in found - truth)
    lib.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    for h in ("calibration", "report"):
        s, c, g = report[h]["soundalike"], report[h]["chromaprint"], report[h]["soundalike_groups"]
        print(f"{h}: soundalike P {s['precision']:.3f} R {s['recall']:.3f} "
              f"({s['tp']}/{s['true']}, {s['found']} found); "
              f"as groups P {g['precision']:.3f} R {g['recall']:.3f}; "
              f"chromaprint P {c['precision']:.3f} R {c['recall']:.3f} ({c['tp']}/{c['true']}) at {c['threshold']}")
        for k, v in report[h]["by_kind"].items():
            print(f"   {k:14s} {v['soundalike']}/{v['pairs']} (groups {v['soundalike_groups']}) "
                  f"chromaprint {v['chromaprint']}/{v['pairs']}")
    print("timings", report["timings_s"], "missed", len(report["missed"]), "false", len(report["false"]))
    print("missed by groups:", *report["missed_by_groups"], sep="\n  ")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
