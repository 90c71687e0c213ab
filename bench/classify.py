#!/usr/bin/env python3
"""Classification benchmark: kNN over the track vectors against kNN over MFCC statistics, on labelled sets.

Sets:
  - ``gm13``: General MIDI renders of 13 instrument families (``soundalike.synth.GM_FAMILIES``: piano,
    strings, drums, synth, guitar, organ, flute, brass, choir, harp, violin, cello, harpsichord),
    ``--per-class`` clips of ``--seconds`` each through fluidsynth (each clip a different program of the
    family, tempo, key and phrase), indexed with the real musicnn model; the label is the family.
  - with ``--small DIR``: the label sets of the search-quality corpus (bench/corpus.py --size small:
    ``drum``, ``gm_family``, ``collection``), read from a copy of its indexed catalogue
    (``DIR/work-small/lib-catalogue/catalog.sqlite``, with ``DIR/corpus-small/tracks.csv``).

Protocol, for each set and each system (soundalike's track vectors, centred as the library does and, for
comparison, not; the MFCC baseline, ``soundalike.evaluate.peers.MfccBaseline``): the labelled tracks are split
into two stratified halves. On the calibration half, 5-fold cross-validation over a grid of k and vote
temperature chooses the options; on the other half, 5-fold cross-validation with those options gives the
figures: accuracy, and how many of the errors the least certain 10 % of the predictions hold (by confidence,
then margin). The library's defaults (``ClassifyOptions``) are measured on that half too. This is repeated
over ``--seeds`` random splits, each half calibrating once (10 runs by default); the summary gives the mean
and range of the accuracy, and pools the runs' errors for the least certain share. Targets (issue 21):
soundalike's accuracy >= MFCC's + 0.15; the least certain 10 % hold >= 50 % of the errors.

    .venv/bin/python bench/classify.py [--per-class 12] [--seconds 10] [--seeds 5] [--small bench/.data]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GRID_K = (None, 3, 5, 10, 15)
GRID_T = (0.02, 0.05, 0.1, 0.2, 1.0)


def gm_library(data: Path, per_class: int, seconds: float):
    """The gm13 set: (open library, field name)."""
    import soundalike
    from soundalike.synth import GM_FAMILIES, render_gm_family

    corpus = data / f"classify-gm-{per_class}x{seconds:g}"
    music = corpus / "music"
    music.mkdir(parents=True, exist_ok=True)
    truth = {}
    t0 = time.perf_counter()
    k = 0
    for fam in GM_FAMILIES:
        for _ in range(per_class):
            name = f"take_{k:04d}.wav"  # the name carries no label
            if not (music / name).exists():
                render_gm_family(fam, music / name, seconds=seconds, seed=5000 + k)
            truth[name] = fam
            k += 1
    render_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    lib = soundalike.open(corpus / "lib")
    for _ in lib.index([music]):
        pass
    print(f"gm13: {len(truth)} clips rendered in {render_s:.0f} s, indexed in {time.perf_counter() - t0:.0f} s",
          flush=True)
    by_name = {Path(t.path).name: t.path for t in lib.tracks()}
    lib.catalog.set_labels((by_name[n], {"family": f}) for n, f in truth.items() if n in by_name)
    return lib.catalog, ["family"], lib


def small_catalogues(small: Path, tmp: Path):
    """The corpus-small label sets: (catalogue copy, fields)."""
    from soundalike.catalog import Catalog

    src = small / "work-small" / "lib-catalogue" / "catalog.sqlite"
    tracks = small / "corpus-small" / "tracks.csv"
    if not src.exists() or not tracks.exists():
        print(f"no indexed small corpus under {small}: skipped (run bench/corpus.py and bench/quality.py)")
        return None, []
    shutil.copy(src, tmp / "small.sqlite")
    cat = Catalog(tmp / "small.sqlite")
    root = str(small / "corpus-small" / "catalogue") + "/"
    fields = set()
    items = []
    for r in csv.DictReader(tracks.open()):
        items.append((root + r["file"], {r["label_set"]: r["label"]}))
        fields.add(r["label_set"])
    cat.set_labels(items)
    return cat, sorted(fields)


def _split_run(C, V, y, n_cls: int, calib, report, *, seed: int, name: str) -> dict:
    """Options chosen by cross-validation on ``calib`` (a mask), figures from cross-validation on ``report``."""
    yc, yr = y[calib], y[report]
    fc = C.fold_ids(yc, int(min(5, np.bincount(yc).min())), seed=seed)
    fr = C.fold_ids(yr, int(min(5, np.bincount(yr).min())), seed=seed)
    grid = {}
    for k in GRID_K:
        for t in GRID_T:
            pred, _, _ = C.cross_validate(V[calib], yc, n_cls, fc, k=k, temperature=t)
            grid[(k, t)] = float((pred == yc).mean())
    d = C.ClassifyOptions()
    best = max(grid, key=lambda kt: (grid[kt], kt == (None, d.temperature)))

    def on(k, t):
        pred, conf, margin = C.cross_validate(V[report], yr, n_cls, fr, k=k, temperature=t)
        s = C.score(name, yr, pred, conf, margin, n_cls, k=k or C.default_k(int(len(yr) * 0.8)), temperature=t)
        low = int(round((s.uncertain_errors or 0.0) * s.errors))
        return {"accuracy": s.accuracy, "balanced_accuracy": s.balanced_accuracy, "errors": s.errors,
                "errors_in_least_certain": low, "uncertain_errors": s.uncertain_errors, "n": s.n, "k": s.k,
                "temperature": t, "confusion": s.confusion}

    return {"chosen": {"k": best[0], "temperature": best[1], "accuracy_calibration_half": round(grid[best], 4)},
            "calibrated": on(*best), "defaults": on(d.k, d.temperature)}


def run_set(cat, name: str, *, seeds: int) -> dict:
    """Every split of ``seeds`` seeds, each half in turn the calibration half; figures summed over them."""
    from soundalike.organise import classify as C

    known = C._known_values(cat, name)
    _, paths, X = C._track_vectors(cat, centre=True)
    sel = [i for i, p in enumerate(paths) if p in known]
    shown, y = C._classes([known[paths[i]] for i in sel])
    _, _, X_raw = C._track_vectors(cat, centre=False)
    vectors = {"soundalike": X[sel], "soundalike-uncentred": X_raw[sel]}
    t0 = time.perf_counter()
    vectors["mfcc"] = C.mfcc_vectors([paths[i] for i in sel])
    mfcc_s = time.perf_counter() - t0
    out = {"field": name, "classes": [str(s) for s in shown], "examples": len(y), "mfcc_seconds": round(mfcc_s, 1),
           "runs": [], "summary": {}}
    for seed in range(seeds):
        half = C.fold_ids(y, 2, seed=seed)
        for calib_half in (0, 1):
            run = {"seed": seed, "calibration_half": calib_half, "systems": {}}
            for sys_name, V in vectors.items():
                run["systems"][sys_name] = _split_run(C, V, y, len(shown), half == calib_half, half != calib_half,
                                                      seed=seed, name=sys_name)
            out["runs"].append(run)
    for sys_name in vectors:
        summ = {}
        for which in ("calibrated", "defaults"):
            rs = [r["systems"][sys_name][which] for r in out["runs"]]
            acc = [r["accuracy"] for r in rs]
            errors = sum(r["errors"] for r in rs)
            summ[which] = {"accuracy_mean": round(float(np.mean(acc)), 4), "accuracy_min": min(acc),
                           "accuracy_max": max(acc), "errors": errors,
                           "errors_in_least_certain": sum(r["errors_in_least_certain"] for r in rs),
                           "least_certain_share": round(sum(r["errors_in_least_certain"] for r in rs) / errors, 4)
                           if errors else None}
        out["summary"][sys_name] = summ
    s, m = out["summary"]["soundalike"], out["summary"]["mfcc"]
    out["gain_over_mfcc"] = {w: round(s[w]["accuracy_mean"] - m[w]["accuracy_mean"], 4) for w in ("calibrated", "defaults")}
    share = s["defaults"]["least_certain_share"]
    out["targets"] = {"gain >= 0.15 (defaults)": out["gain_over_mfcc"]["defaults"] >= 0.15,
                      "least certain 10% hold >= 50% of errors (defaults)": share is None or share >= 0.5}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-class", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / ".data")
    ap.add_argument("--small", type=Path, default=None, help="a data folder holding the indexed small corpus")
    ap.add_argument("--seeds", type=int, default=5, help="half splits (each half calibrates once)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "classify.json")
    args = ap.parse_args()

    from soundalike.synth import fluidsynth_missing

    os.environ.setdefault("SOUNDALIKE_DESCRIPTORS", "0")  # not needed here; saves indexing time
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        sets = []
        reason = fluidsynth_missing()
        lib = None
        if reason:
            print(f"gm13 skipped: {reason}", file=sys.stderr)
        else:
            cat, fields, lib = gm_library(args.data, args.per_class, args.seconds)
            sets += [("gm13", cat, f) for f in fields]
        if args.small:
            cat, fields = small_catalogues(args.small, Path(tmp))
            sets += [("small", cat, f) for f in fields]
        for set_name, cat, f in sets:
            r = run_set(cat, f, seeds=args.seeds)
            r["set"] = set_name
            results.append(r)
            print(f"{set_name}/{f}: {r['examples']} tracks, {len(r['classes'])} classes, {len(r['runs'])} half splits")
            for which in ("calibrated", "defaults"):
                parts = []
                for sys_name in ("soundalike", "mfcc", "soundalike-uncentred"):
                    x = r["summary"][sys_name][which]
                    parts.append(f"{sys_name} {x['accuracy_mean']:.3f} ({x['accuracy_min']:.2f}-{x['accuracy_max']:.2f})")
                x = r["summary"]["soundalike"][which]
                share = "no errors" if x["least_certain_share"] is None else f"{x['least_certain_share']:.0%}"
                print(f"  {which}: " + ", ".join(parts) + f"; gain {r['gain_over_mfcc'][which]:+.3f}; least certain "
                      f"10 % hold {share} of soundalike's {x['errors']} errors")
            print(f"  targets: {r['targets']}", flush=True)
        if lib is not None:
            lib.close()
    from _machine import machine  # bench/_machine.py: this script's folder is on sys.path

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine("not recorded: the vote is numpy"), "per_class": args.per_class, "seconds": args.seconds,
                                    "grid": {"k": list(GRID_K), "temperature": list(GRID_T)}, "sets": results},
                                   indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
