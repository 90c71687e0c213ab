#!/usr/bin/env python3
"""Text-search benchmark: precision@10 of text queries on a labelled corpus of GM renders.

Precision counts ties at random (in expectation), so a variant that cannot tell tracks
apart scores chance (0.2 here), not the order of track ids.

The corpus: instrument families (piano, strings, drums, synth, guitar), ``--per-family``
clips each, rendered from General MIDI with fluidsynth (``soundalike.synth.render_gm_family``:
each clip a different program of the family, tempo, key and phrase), indexed with the
real musicnn model. File names carry no label ("take_017_d_minor_104bpm.wav"). To give
keywords something to find, a third of each family's clips get a user label
``genre`` naming the family ("solo piano", "string quartet", ...); the rest get
"instrumental". Each query's relevant set is the clips of one family.

Variants, all measured in the same run:
  - tags (z):      the tag half of text search, columns standardised over the library (the default)
  - tags (raw):    the same with raw tag probabilities (shows why the standardisation is there)
  - keywords only: the baseline: query words against file names, titles and labels
  - blended:       what ``soundalike text`` does (tags (z) + keywords)

    .venv/bin/python bench/text.py [--per-family 10] [--seconds 12]
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
sys.path.insert(0, str(ROOT))

FAMILIES = ("piano", "strings", "drums", "synth", "guitar")
GENRES = {"piano": "solo piano", "strings": "string quartet", "drums": "drum solo", "synth": "synth pop",
          "guitar": "guitar ballad"}  # fmt: skip
# query -> the family whose clips are relevant
QUERIES = {
    "piano": "piano", "strings": "strings", "drums": "drums", "synth": "synth", "guitar": "guitar",
    "electronic": "synth", "percussion beats": "drums", "violin cello": "strings", "acoustic guitar": "guitar",
    "classical piano -drums": "piano",
}  # fmt: skip
_NOTES = ("c", "c_sharp", "d", "e_flat", "e", "f", "f_sharp", "g", "a_flat", "a", "b_flat", "b")


def precision_at(scored: list[tuple[int, float]], relevant: set[int], k: int) -> float:
    """Expected precision@k with ties broken at random: the tracks tied at the cut-off
    fill the remaining places in proportion to how many of them are relevant (a
    ranking that cannot tell tracks apart scores chance, not the order of track ids)."""
    scores = np.array([s for _, s in scored])
    rel = np.array([t in relevant for t, _ in scored])
    cut = np.sort(scores)[::-1][k - 1]
    above = scores > cut + 1e-9
    tied = np.abs(scores - cut) <= 1e-9
    slots = k - int(above.sum())
    return float((rel[above].sum() + slots * rel[tied].mean()) / k)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-family", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / ".data")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "text.json")
    args = ap.parse_args()

    import soundalike
    from soundalike.synth import fluidsynth_missing, render_gm_family
    from soundalike.text import TextSearcher

    reason = fluidsynth_missing()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    os.environ.setdefault("SOUNDALIKE_DESCRIPTORS", "0")  # not needed here; saves indexing time
    corpus = args.data / f"gm-{args.per_family}x{args.seconds:g}"
    music = corpus / "music"
    music.mkdir(parents=True, exist_ok=True)
    truth: dict[str, str] = {}  # file name -> family
    t0 = time.perf_counter()
    k = 0
    for fam in FAMILIES:
        for i in range(args.per_family):
            rng = np.random.default_rng(k)
            name = f"take_{k:03d}_{_NOTES[int(rng.integers(12))]}_{('major', 'minor')[int(rng.integers(2))]}.wav"
            path = music / name
            if not path.exists():
                render_gm_family(fam, path, seconds=args.seconds, seed=1000 + k)
            truth[name] = fam
            k += 1
    render_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    lib = soundalike.open(corpus / "lib")
    for _ in lib.index([music]):
        pass
    index_s = time.perf_counter() - t0
    print(f"corpus: {len(truth)} clips rendered in {render_s:.0f} s, indexed in {index_s:.0f} s", flush=True)

    by_name = {Path(t.path).name: t.id for t in lib.tracks()}
    for fam in FAMILIES:  # a third of each family gets a genre label naming it; the rest a neutral one
        names = sorted(n for n, f in truth.items() if f == fam)
        for j, n in enumerate(names):
            lib.set_labels(by_name[n], genre=GENRES[fam] if j % 3 == 0 else "instrumental")
    relevant = {fam: {by_name[n] for n, f in truth.items() if f == fam} for fam in FAMILIES}

    searchers = {
        "tags (z)": (TextSearcher(lib.catalog), {"keywords": False}),
        "tags (raw)": (TextSearcher(lib.catalog, normalise="raw"), {"keywords": False}),
        "keywords only": (TextSearcher(lib.catalog), {"tags": False}),
        "blended": (TextSearcher(lib.catalog), {}),
    }
    results: dict[str, dict] = {v: {} for v in searchers}
    latency: list[float] = []
    for q, fam in QUERIES.items():
        for variant, (searcher, kw) in searchers.items():
            t = time.perf_counter()
            r = searcher.search(q, top=len(by_name), **kw)  # every track: ties are handled in precision_at
            if variant == "blended":
                latency.append((time.perf_counter() - t) * 1000)
            scored = [(h.track_id, h.score) for h in r.hits]
            results[variant][q] = {
                "family": fam, "p@10": round(precision_at(scored, relevant[fam], 10), 3),
                "p@5": round(precision_at(scored, relevant[fam], 5), 3), "weak": r.weak,
            }  # fmt: skip
    # the floor on a tag's spread over the library (tags half only)
    import soundalike.text as text_module

    default_floor, sweep = text_module.MIN_SPREAD, {}
    for floor in (0.0, 0.01, 0.03, 0.1, 0.2, 1.0):
        text_module.MIN_SPREAD = floor
        searcher = TextSearcher(lib.catalog)
        sweep[str(floor)] = round(float(np.mean([
            precision_at([(h.track_id, h.score) for h in searcher.search(q, top=len(by_name), keywords=False).hits],
                         relevant[fam], 10)
            for q, fam in QUERIES.items()
        ])), 3)  # fmt: skip
    text_module.MIN_SPREAD = default_floor
    weak = {q: lib.text_search(q).weak for q in ("dog barking", "rain on a window", "car engine", "piano", "drums")}
    summary = {
        v: {"mean_p@10": round(float(np.mean([x["p@10"] for x in d.values()])), 3),
            "mean_p@5": round(float(np.mean([x["p@5"] for x in d.values()])), 3)}
        for v, d in results.items()
    }  # fmt: skip
    out = {
        "corpus": {"families": list(FAMILIES), "per_family": args.per_family, "seconds": args.seconds,
                   "clips": len(truth), "render_s": round(render_s, 1), "index_s": round(index_s, 1),
                   "labelled_fraction": "1/3 of each family has genre naming it"},
        "summary": summary,
        "per_query": results,
        "min_spread_sweep_mean_p@10": sweep,
        "weak_flag": weak,
        "query_ms_median": round(float(np.median(latency)), 1),
        "loadavg": os.getloadavg(),
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"{'query':28s} " + " ".join(f"{v:>14s}" for v in results))
    for q in QUERIES:
        print(f"{q:28s} " + " ".join(f"{results[v][q]['p@10']:14.2f}" for v in results))
    print(f"{'mean p@10':28s} " + " ".join(f"{summary[v]['mean_p@10']:14.3f}" for v in results))
    print(f"MIN_SPREAD sweep (tags only, mean p@10): {sweep}")
    print(f"weak flags: {weak}; blended query median {out['query_ms_median']} ms; load {os.getloadavg()}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
