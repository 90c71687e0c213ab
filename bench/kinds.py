"""Measure the sound-effect path on real recordings from Debian packages: the kind rule, and the effect model.

Usage (from the repository root; about 2 minutes)::

    .venv/bin/python bench/kinds.py [--out bench/results/kinds.json]

Data (fetched with ``apt-get download`` into ``tests/.data/debs`` and unpacked, as the quality corpus does):

* effects: ``sound-theme-freedesktop`` (35 desktop event sounds, 0.2 to 6 s; nine are spoken channel names) and
  ``hydrogen-drumkits`` one-shots (at most 2 per kit and instrument, so that a class holds different recordings);
* music: ``wesnoth`` music (tests/.data/music) and ``warzone2100-music`` (whole soundtrack pieces).

1. **The kind rule** (``kinds=auto``: shorter than ``effect_seconds`` is an effect). Files are split into a
   calibration half and a report half by a hash of their name; the threshold that classifies the calibration half
   best (the midpoint between the two durations around it) is reported with its accuracy on the report half. The
   same threshold is then tried on 5 s and 15 s excerpts of the report half's music, which it must call music: a
   short music query or a jingle is where a duration rule fails.
2. **Effect categories**: the hydrogen one-shots by instrument (kick, snare, hi-hat, crash, ride, tom, clap,
   cowbell, rim, tambourine), retrieved by the track vectors of aisfx, of musicnn and of a mean+std MFCC baseline:
   precision at 5 (classes hold 6 to 20 recordings) and 5-NN accuracy, leave-one-out over the report half with
   the whole set as the catalogue.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from soundalike import decode  # noqa: E402
from soundalike.segment import windows  # noqa: E402

DATA = ROOT / "tests" / ".data"  # --data changes it
CLASSES = {"kick": "kick", "snare": "snare", "hat": "hat", "hh": "hat", "crash": "crash", "ride": "ride",
           "tom": "tom", "clap": "clap", "cowbell": "cowbell", "rim": "rim", "tamb": "tambourine"}


def unpacked(package: str) -> Path:
    """``tests/.data/debs/x-<package>``: downloaded with apt-get and unpacked with dpkg-deb when missing."""
    debs = DATA / "debs"
    target = debs / f"x-{package}"
    if not target.is_dir():
        debs.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", package], cwd=debs, check=True, capture_output=True)
        deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
        subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
    return target


def half(path: Path) -> str:
    return "calibration" if hashlib.sha1(path.name.encode()).digest()[0] % 2 == 0 else "report"


def drum_set() -> list[tuple[Path, str]]:
    out, per = [], Counter()
    files = sorted(p for p in unpacked("hydrogen-drumkits").rglob("*") if p.suffix.lower() in (".flac", ".wav"))
    for p in files:
        m = re.search("|".join(CLASSES), p.name.lower())
        if not m:
            continue
        kit, cls = p.parent.name, CLASSES[m.group(0)]
        if per[(kit, cls)] >= 2:
            continue
        per[(kit, cls)] += 1
        out.append((p, cls))
    return out


def vectors(model, paths: list[Path], hop: float = 3.0) -> np.ndarray:
    """Track vectors as ingest makes them: informative windows' raw embeddings averaged, then normalised."""
    out = []
    for p in paths:
        blocks = decode.stream(p, sample_rate=model.sample_rate)
        raws = []
        for batch in windows(blocks, sample_rate=model.sample_rate, window_seconds=model.window_seconds,
                             hop_seconds=hop):
            keep = batch.samples[batch.informative] if batch.informative.any() else batch.samples[:1]
            raws.append(model.embed_only(model.features(keep)))
        v = np.concatenate(raws).mean(0)
        out.append(v / max(np.linalg.norm(v), 1e-12))
    return np.stack(out)


def mfcc(paths: list[Path]) -> np.ndarray:
    import librosa

    out = []
    for p in paths:
        x = decode.decode(p, sample_rate=22050).samples
        m = librosa.feature.mfcc(y=x, sr=22050, n_mfcc=20)
        out.append(np.concatenate([m.mean(1), m.std(1)]))
    a = np.stack(out)
    a = (a - a.mean(0)) / (a.std(0) + 1e-9)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def retrieval(vecs: np.ndarray, labels: list[str], queries: list[int], *, k: int = 5) -> dict:
    sims = vecs @ vecs.T
    p_at, knn = [], []
    for i in queries:
        order = [j for j in np.argsort(-sims[i]) if j != i][:k]
        same = [labels[j] == labels[i] for j in order]
        p_at.append(np.mean(same))
        vote = Counter(labels[j] for j in order).most_common(1)[0][0]
        knn.append(vote == labels[i])
    return {f"p@{k}": round(float(np.mean(p_at)), 3), f"{k}nn_accuracy": round(float(np.mean(knn)), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="bench/results/kinds.json")
    ap.add_argument("--data", default=None, help="the test data folder (debs/, music/); default tests/.data")
    args = ap.parse_args()
    global DATA
    DATA = Path(args.data) if args.data else DATA
    t0 = time.perf_counter()
    freedesktop = sorted(unpacked("sound-theme-freedesktop").rglob("*.oga"))
    drums = drum_set()
    music = sorted((DATA / "music").glob("*.ogg")) + sorted(
        unpacked("warzone2100-music").rglob("*.opus"))
    items = [(p, "effect") for p in freedesktop] + [(p, "effect") for p, _ in drums] + [(p, "music") for p in music]
    seconds = {str(p): decode.probe(p).duration for p, _ in items}
    cal = [(seconds[str(p)], k) for p, k in items if half(p) == "calibration"]
    rep = [(seconds[str(p)], k, p) for p, k in items if half(p) == "report"]

    # 1. the kind rule: the threshold that classifies the calibration half best
    cuts = sorted({d for d, _ in cal})
    best = max(((sum((d < t) == (k == "effect") for d, k in cal), t) for t in
                [(a + b) / 2 for a, b in zip(cuts, cuts[1:])]), key=lambda x: (x[0], -abs(x[1] - 10)))
    threshold = round(best[1], 1)
    right = sum((d < threshold) == (k == "effect") for d, k, _ in rep)
    wrong = [(str(p.name), round(d, 1), k) for d, k, p in rep if (d < threshold) != (k == "effect")]
    rule = {
        "calibration_files": len(cal), "report_files": len(rep),
        "threshold_seconds": threshold, "calibration_accuracy": round(best[0] / len(cal), 3),
        "report_accuracy": round(right / len(rep), 3), "report_errors": wrong,
        "effects_seconds_max": round(max(d for (p, k), d in zip(items, seconds.values()) if k == "effect"), 1),
        "music_seconds_min": round(min(d for (p, k), d in zip(items, seconds.values()) if k == "music"), 1),
        # the rule sees only the duration: a music excerpt or jingle shorter than the threshold is an "effect"
        "music_excerpt_kind": {f"{s}s": "effect" if s < threshold else "music" for s in (5, 15)},
    }
    print("kind rule:", json.dumps(rule))

    # 2. effect categories: aisfx vs musicnn vs MFCC on the drum one-shots
    from soundalike.models import load_model

    paths, labels = [p for p, _ in drums], [c for _, c in drums]
    queries = [i for i, p in enumerate(paths) if half(p) == "report"]
    results = {}
    timing = {}
    for name in ("aisfx", "musicnn"):
        model = load_model(name)
        t = time.perf_counter()
        vecs = vectors(model, paths)
        timing[name] = round(time.perf_counter() - t, 1)
        results[name] = retrieval(vecs, labels, queries)
    results["mfcc_mean_std"] = retrieval(mfcc(paths), labels, queries)
    cats = {"recordings": len(paths), "report_queries": len(queries), "classes": dict(Counter(labels)),
            "results": results, "embed_seconds": timing}
    print("effect categories:", json.dumps(cats))
    out = {"kind_rule": rule, "effect_categories": cats, "seconds": round(time.perf_counter() - t0, 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out} in {out['seconds']} s")


if __name__ == "__main__":
    main()
