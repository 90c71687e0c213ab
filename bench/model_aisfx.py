"""Benchmark the aisfx (sound-effects) model: front end and network, in x realtime.

Usage (from the repository root; about a minute)::

    .venv/bin/python bench/model_aisfx.py [--runs 5] [--windows 32] [--out bench/results/model-aisfx.json]

Measured like bench/model.py measures musicnn: the median of ``--runs`` runs over the same ``--windows``
2.345 s windows of synthesised audio, implementations taking turns run by run:

* ``frontend``: ``Aisfx.features`` (numpy log-mel), one thread;
* ``network``: ``Aisfx.embed_batch`` at ``torch.set_num_threads(1)`` and ``(2)``, ``reference`` (the readable
  port, ``fast=False``: plain modules with batch norm, one batch on torch's intra-op threads) and ``fast``
  (net.py's ``FastAisfxNet``: batch norm folded, channels_last, the batch split over threads), both under
  ``torch.inference_mode``.

x realtime = audio seconds per wall second; "per CPU s" divides by the process's CPU seconds instead (the robust
figure on a shared machine); the 1-minute load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from soundalike.models.aisfx import AISFX_VERSION, Aisfx  # noqa: E402
from soundalike.models.aisfx.frontend import N_SAMPLES, SR  # noqa: E402
from soundalike.synth import render_track  # noqa: E402
from _machine import machine  # noqa: E402  (bench/_machine.py)


def _time(fn) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--windows", type=int, default=32)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", default="bench/results/model-aisfx.json")
    args = ap.parse_args()

    audio = render_track(11, seconds=args.windows * N_SAMPLES / SR + 1, sample_rate=SR)
    wins = np.stack([audio[i * N_SAMPLES:(i + 1) * N_SAMPLES] for i in range(args.windows)]).astype(np.float32)
    seconds = args.windows * N_SAMPLES / SR
    models = {"reference": Aisfx(fast=False, batch_size=args.windows),
              "fast": Aisfx(fast=True, batch_size=args.windows)}
    feats = models["fast"].features(wins)
    load = [os.getloadavg()[0]]
    out: dict = {"model": f"aisfx {AISFX_VERSION}", "windows": args.windows, "audio_seconds": seconds,
                 "machine": machine("none (torch + oneDNN)"), "torch": torch.__version__, "results": {}}

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    fe = [_time(lambda: models["fast"].features(wins)) for _ in range(args.runs)]
    torch.set_num_threads(before)
    out["results"]["frontend"] = {"x_realtime": seconds / statistics.median(w for w, _ in fe),
                                  "x_realtime_per_cpu_s": seconds / statistics.median(c for _, c in fe)}
    for threads in args.threads:
        torch.set_num_threads(threads)
        runs: dict[str, list] = {k: [] for k in models}
        for name, m in models.items():  # warm-up
            m.embed_batch(feats)
        for _ in range(args.runs):
            for name, m in models.items():
                runs[name].append(_time(lambda: m.embed_batch(feats)))
        for name, r in runs.items():
            wall, cpu = statistics.median(w for w, _ in r), statistics.median(c for _, c in r)
            out["results"][f"network/{name}/threads={threads}"] = {
                "x_realtime": seconds / wall, "x_realtime_per_cpu_s": seconds / cpu,
                "cpu_ms_per_window": cpu / args.windows * 1000,
                "min_cpu_ms_per_window": min(c for _, c in r) / args.windows * 1000,
            }
    torch.set_num_threads(before)
    ref, fast = models["reference"].embed_batch(feats).embeddings, models["fast"].embed_batch(feats).embeddings
    out["fast_vs_reference_max_abs"] = float(np.abs(ref - fast).max())
    load.append(os.getloadavg()[0])
    out["load_1min"] = load
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    for k, v in out["results"].items():
        print(f"{k:34s} " + "  ".join(f"{a} {b:.1f}" for a, b in v.items()))
    print(f"load {load}; fast vs reference max |diff| {out['fast_vs_reference_max_abs']:.2e}; wrote {args.out}")


if __name__ == "__main__":
    main()
