"""Fit and measure the query-kind head: is a query music or a sound effect, from its musicnn track vector?

Usage (from the repository root; about 2 minutes)::

    .venv/bin/python bench/kind_head.py [--data tests/.data] [--write] [--out bench/results/kind-head.json]

Why: at indexing time a file's duration tells effects from music well (bench/kinds.py), but a query is often an
excerpt of a few seconds, which a duration rule calls an effect. A library holding both models embeds every
audio query with musicnn anyway, so a linear head on the query's musicnn track vector (the normalised mean of
its windows' raw 200-d embeddings, what the catalogue stores per track) decides it instead.

Data: bench/kinds.py's (sound-theme-freedesktop and hydrogen-drumkits recordings as effects, whole; wesnoth and
warzone2100 music as 3, 5, 10 and 20 s excerpts at three offsets each), split into the same calibration and
report halves by file name; and 16 tracks of soundalike.synth's music (even seeds calibrate, odd ones report),
which a head fitted on the two soundtracks alone called effects. Logistic regression (numpy, features standardised on the calibration half, L2 1e-2,
classes weighted equally) is fitted on the calibration half only; the report half gives the accuracy per group.
``--write`` writes the weights (standardisation folded in) to soundalike/models/musicnn/kind_head.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import kinds as K  # noqa: E402  (bench/kinds.py: the data)
from soundalike import decode  # noqa: E402
from soundalike.segment import windows  # noqa: E402

EXCERPTS = (3.0, 5.0, 10.0, 20.0)
SYNTH_TRACKS = 16


def track_vector(model, x: np.ndarray) -> np.ndarray:
    raws = []
    for batch in windows([x], sample_rate=model.sample_rate, window_seconds=model.window_seconds, hop_seconds=2.0):
        keep = batch.samples[batch.informative] if batch.informative.any() else batch.samples[:1]
        raws.append(model.embed_only(model.features(keep)))
    v = np.concatenate(raws).mean(0)
    return v / max(float(np.linalg.norm(v)), 1e-12)


def fit(x: np.ndarray, y: np.ndarray, *, l2: float = 1e-2, steps: int = 3000, lr: float = 0.5):
    mu, sd = x.mean(0), x.std(0) + 1e-6
    z = (x - mu) / sd
    w, b = np.zeros(z.shape[1]), 0.0
    weight = np.where(y == 1, 0.5 / max(y.mean(), 1e-9), 0.5 / max(1 - y.mean(), 1e-9))
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(z @ w + b)))
        g = (p - y) * weight
        w -= lr * (z.T @ g / len(y) + l2 * w)
        b -= lr * g.mean()
    return w / sd, b - float((w / sd) @ mu)  # standardisation folded in: score = v @ W + B


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--out", default="bench/results/kind-head.json")
    args = ap.parse_args()
    if args.data:
        K.DATA = Path(args.data)
    t0 = time.perf_counter()
    from soundalike.models import load_model

    model = load_model("musicnn")
    sr = model.sample_rate
    effects = sorted(K.unpacked("sound-theme-freedesktop").rglob("*.oga")) + [p for p, _ in K.drum_set()]
    music = sorted((K.DATA / "music").glob("*.ogg")) + sorted(K.unpacked("warzone2100-music").rglob("*.opus"))
    rows = []  # (half, group, label, vector)
    for p in effects:
        rows.append((K.half(p), "effect", 1, track_vector(model, decode.decode(p, sample_rate=sr).samples)))
    rng = np.random.default_rng(0)
    for p in music:
        x = decode.decode(p, sample_rate=sr).samples
        for seconds in EXCERPTS:
            n = int(seconds * sr)
            for start in rng.integers(0, max(1, len(x) - n), size=3):
                rows.append((K.half(p), f"music {seconds:g} s", 0, track_vector(model, x[start:start + n])))
    from soundalike.synth import render_track

    for seed in range(SYNTH_TRACKS):  # soundalike.synth's music, which the tests index: a third music source
        x = render_track(seed, seconds=40, sample_rate=sr)
        part = "calibration" if seed % 2 == 0 else "report"
        for seconds in EXCERPTS:
            n = int(seconds * sr)
            for start in rng.integers(0, len(x) - n, size=3):
                rows.append((part, f"synth music {seconds:g} s", 0, track_vector(model, x[start:start + n])))
    cal = [r for r in rows if r[0] == "calibration"]
    rep = [r for r in rows if r[0] == "report"]
    w, b = fit(np.stack([r[3] for r in cal]), np.array([r[2] for r in cal], float))

    def accuracy(part):
        out = {}
        for g in sorted({r[1] for r in part}):
            items = [r for r in part if r[1] == g]
            right = sum(((r[3] @ w + b) > 0) == bool(r[2]) for r in items)
            out[g] = f"{right}/{len(items)}"
        return out

    result = {"musicnn": model.version, "calibration": accuracy(cal), "report": accuracy(rep),
              "calibration_items": len(cal), "report_items": len(rep), "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(result, indent=1))
    Path(args.out).write_text(json.dumps(result, indent=2))
    if args.write:
        body = ",\n    ".join(", ".join(f"{v:.6g}" for v in w[i:i + 8]) for i in range(0, len(w), 8))
        Path(ROOT / "soundalike/models/musicnn/kind_head.py").write_text(f'''"""Is a query music or a sound effect? A linear head on its musicnn track vector (soundalike/kinds.py).

Written by ``bench/kind_head.py --write``: logistic regression fitted on the calibration half of Debian
recordings (sound-theme-freedesktop and hydrogen-drumkits effects; wesnoth and warzone2100 music excerpts of 3 to
20 s; soundalike.synth music excerpts), musicnn {model.version}. Report half:
{json.dumps(result["report"], indent=0)}.
``score(v) = v @ W + B`` for the normalised mean of a query's raw MSD penultimate embeddings; above 0: an effect.
"""

from __future__ import annotations

import numpy as np

MUSICNN_VERSION = "{model.version}"
B = {b:.6g}
W = np.array([
    {body},
], np.float32)


def effect_score(track_vector: np.ndarray) -> float:
    """Above 0: a sound effect; below: music."""
    v = np.asarray(track_vector, np.float32)
    return float(v @ W + B)
''')
        print("wrote soundalike/models/musicnn/kind_head.py")


if __name__ == "__main__":
    main()
