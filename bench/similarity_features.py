#!/usr/bin/env python3
"""Issue 20 item 2: which track representation does the similarity benchmark choose?

For every item of the benchmark (bench/similarity.py builds it), both musicnn networks run over its 3 s
windows (the catalogue's grid; short effects repeat-padded, as at ingest) and this keeps, per window: the
pooled statistics (max and mean over time) of each of the four layers the back end reads (front end, mid-end
convs 1-3), the 200-d penultimate layer and the tag probabilities. Candidate track representations are then
built from them (mean, or mean and spread over windows; one block or several, each standardised with the
benchmark library's own statistics and L2-normalised before they are joined), every item is ranked by cosine
within its label set and half, and precision@10 is averaged over the label sets. The calibration half
chooses; the report half is only quoted. Writes bench/results/similarity-features.json.

    .venv/bin/python bench/similarity_features.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"fe": (0, 1122), "c1": (1122, 1250), "c2": (1250, 1378), "c3": (1378, 1506)}


def window_features(emb, path: Path) -> dict[str, np.ndarray]:
    import torch

    from soundalike.decode import decode

    x = decode(path, sample_rate=16000).samples
    n = 48000
    starts = list(range(0, max(len(x) - n, 0) + 1, n)) or [0]
    wins = [x[s : s + n] for s in starts]
    mel = torch.from_numpy(np.ascontiguousarray(emb.features(wins), dtype=np.float32))
    out = {}
    with torch.inference_mode():
        fes = emb._fast.frontend(mel)
        for key, net, fe in zip(emb._nets, emb._fast.nets, fes):
            pooled = emb._fast._mid_back(net, fe)
            pen = net.backend.penultimate(pooled)
            out[f"{key}_pool"] = pooled.numpy()
            out[f"{key}_pen"] = pen.numpy()
            out[f"{key}_tags"] = torch.sigmoid(net.backend.out(pen)).numpy()
    return out


def track_blocks(w: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Track-level blocks: mean (and spread) over windows of each layer, penultimate and tags, per network."""
    b = {}
    for net in ("msd", "mtt"):
        for name, (a, z) in LAYERS.items():
            part = w[f"{net}_pool"][:, a:z]
            b[f"{net}_{name}_mean"] = part.mean(0)
        pen = w[f"{net}_pen"]
        b[f"{net}_pen_mean"] = pen.mean(0)
        b[f"{net}_pen_std"] = pen.std(0)
        b[f"{net}_tags_mean"] = w[f"{net}_tags"].mean(0)
    return b


def _unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)


def normalise(x: np.ndarray, how: str) -> np.ndarray:
    if how == "raw":
        return _unit(x)
    if how == "center":
        return _unit(x - x.mean(0))
    if how == "z":
        return _unit((x - x.mean(0)) / (x.std(0) + 1e-6))
    raise ValueError(how)


def p_at_10(mat: np.ndarray, labels: list[str], rows: list[int]) -> float:
    sub = mat[rows]
    labs = [labels[i] for i in rows]
    sims = sub @ sub.T
    np.fill_diagonal(sims, -np.inf)
    ps = []
    for i in range(len(rows)):
        same = sum(1 for j in range(len(rows)) if j != i and labs[j] == labs[i])
        if not same:
            continue
        k = min(10, same)
        top = np.argsort(-sims[i], kind="stable")[:k]
        ps.append(sum(labs[j] == labs[i] for j in top) / k)
    return float(np.mean(ps))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / ".data")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "similarity-features.json")
    args = ap.parse_args()
    import torch

    from soundalike.evaluate.simsets import HALVES, read_items
    from soundalike.models.musicnn.embedder import Musicnn

    torch.set_num_threads(1)
    folder = args.data / "similarity"
    items = read_items(folder)
    cache = args.data / "similarity-features"
    cache.mkdir(parents=True, exist_ok=True)
    emb = Musicnn()
    t0 = time.perf_counter()
    blocks = []
    for i, it in enumerate(items):
        f = cache / (Path(it.file).stem + ".npz")
        if not f.exists():
            np.savez(f, **window_features(emb, folder / "audio" / it.file))
        blocks.append(track_blocks(dict(np.load(f))))
        if i % 50 == 0:
            print(f"features {i}/{len(items)}", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - t0
    labels = [it.label for it in items]
    parts = {(s, h): [i for i, it in enumerate(items) if it.label_set == s and it.half == h]
             for s in dict.fromkeys(it.label_set for it in items) for h in HALVES}

    def score(mat: np.ndarray) -> dict:
        return {h: {s: round(p_at_10(mat, labels, rows), 3) for (s, hh), rows in parts.items() if hh == h}
                for h in HALVES}

    def build(names: tuple[str, ...], how: str) -> np.ndarray:
        return _unit(np.hstack([normalise(np.stack([b[n] for b in blocks]), how) for n in names]))

    singles = sorted(blocks[0])
    candidates: dict[str, tuple[tuple[str, ...], str]] = {}
    for how in ("raw", "center", "z"):
        for n in singles:
            candidates[f"{n}|{how}"] = ((n,), how)
    groups = {
        "pen(msd+mtt)": ("msd_pen_mean", "mtt_pen_mean"),
        "pen mean+std(msd+mtt)": ("msd_pen_mean", "mtt_pen_mean", "msd_pen_std", "mtt_pen_std"),
        "layers(msd)": tuple(f"msd_{l}_mean" for l in LAYERS),
        "layers(msd+mtt)": tuple(f"{n}_{l}_mean" for n in ("msd", "mtt") for l in LAYERS),
        "layers+pen(msd+mtt)": tuple(f"{n}_{l}_mean" for n in ("msd", "mtt") for l in (*LAYERS, "pen")),
        "tags(msd+mtt)": ("msd_tags_mean", "mtt_tags_mean"),
        "pen+tags(msd+mtt)": ("msd_pen_mean", "mtt_pen_mean", "msd_tags_mean", "mtt_tags_mean"),
        "all": tuple(singles),
    }
    for how in ("center", "z"):
        for g, names in groups.items():
            candidates[f"{g}|{how}"] = (names, how)
    results = {name: score(build(names, how)) for name, (names, how) in candidates.items()}
    mean = {name: {h: round(float(np.mean(list(r[h].values()))), 3) for h in HALVES} for name, r in results.items()}
    ranked = sorted(mean, key=lambda n: -mean[n]["calibration"])
    chosen = ranked[0]
    record = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "feature_seconds": round(seconds, 1),
              "items": len(items), "chosen_on_calibration": chosen, "baseline": "msd_pen_mean|raw",
              "mean_p10": mean, "p10": results}
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"{'representation':42s} {'calibration':>11s} {'report':>8s}   per set (report)")
    for n in ranked[:15] + ["msd_pen_mean|raw"]:
        print(f"{n:42s} {mean[n]['calibration']:11.3f} {mean[n]['report']:8.3f}   {results[n]['report']}")
    print(f"chosen on the calibration half: {chosen}; wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
