"""Benchmark the musicnn model: front end and network, in x realtime.

Usage (from the repository root)::

    .venv/bin/python bench/model.py [--runs 3] [--windows 32] [--out bench/results/model.json]

What it measures, each as the median of ``--runs`` runs over the same
``--windows`` 3 s windows (so one run covers windows x 3 s of audio):

* ``frontend``: ``Musicnn.features`` (numpy log-mel), with 1 worker thread
  and with 2 worker threads sharing the batches, as ingest runs it;
* ``network``: ``Musicnn.embed_batch`` with MSD only (``tags=("msd",)``) and
  with MSD + MTT, at ``torch.set_num_threads(1)`` and ``(2)``, for each batch
  size, with five implementations in the same run, interleaved run by run:
  ``reference`` (the readable port, ``fast=False``), ``im2col`` (the first
  fast path, ``timbral="im2col"``), ``dft-im2col`` (the DFT timbral path with
  the temporal convs over im2col patches, the default before the banded
  temporal convs), ``dft-torch`` (the banded DFT path with torch's products,
  the default before the compiled kernels of _kernels.c) and ``dft``
  (fast.py's default);
* ``query``: ``Musicnn.embed_only`` on 19 windows (a 30 s query), MSD only,
  for the same, in seconds per query.

x realtime = seconds of audio processed per wall-clock second; "per CPU s"
divides by the CPU seconds the process used instead, and "CPU ms / window" is
the same figure per 3 s window: the robust figures when the machine is shared
(the 1-minute load average before and after is recorded too). Thread counts
are set here, never in the library. ``--impls`` picks a subset.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from soundalike.models.musicnn import MUSICNN_VERSION, Musicnn  # noqa: E402
from soundalike.models.musicnn.fast import FastMusicnn, instruction_set  # noqa: E402
from _machine import machine  # noqa: E402  (bench/_machine.py)

WINDOW_SECONDS = 3.0
#: implementation label -> (Musicnn options, FastMusicnn options that replace its fast path, or None)
IMPLS = {
    "reference": ({"fast": False}, None),
    "im2col": ({"timbral": "im2col"}, None),
    # the DFT path as it was before the banded temporal convs (and its layout: 1 window per pass, 16 channels per block)
    "dft-im2col": ({"timbral": "dft"}, {"temporal": "im2col", "chunk": 1, "channel_block": 16, "native": False}),
    # the banded DFT path with torch's products (MKL): the default before the compiled kernels
    "dft-torch": ({"timbral": "dft"}, {"native": False}),
    # the compiled kernels' AVX2 build, where the CPU also runs AVX-512 (the default there)
    "dft-avx2": ({"timbral": "dft"}, {"native": "avx2"}),
    "dft": ({"timbral": "dft"}, None),
}


def build(impl: str, **kwargs) -> Musicnn:
    """A Musicnn for one implementation label; a variant of the fast path replaces its FastMusicnn
    objects as the embedder builds them (all networks for embed_batch, MSD alone for embed_only)."""
    options, fast_options = IMPLS[impl]
    model = Musicnn(device="cpu", **options, **kwargs)
    if fast_options is not None:
        nets = list(model._nets.values())
        model._fast = FastMusicnn(nets, **fast_options)
        model._fast_msd = model._fast if len(nets) == 1 else FastMusicnn([model._nets["msd"]], **fast_options)
    return model


def _summary(wall: list[float], cpu: list[float], audio_seconds: float) -> dict:
    med_wall, med_cpu = statistics.median(wall), statistics.median(cpu)
    return {
        "median_s": med_wall,
        "runs_s": wall,
        "median_cpu_s": med_cpu,
        "runs_cpu_s": cpu,
        "x_realtime": audio_seconds / med_wall,
        "x_realtime_per_cpu_s": audio_seconds / med_cpu,
        "cpu_ms_per_window": 1000 * med_cpu * WINDOW_SECONDS / audio_seconds,
        # the fastest run: load from other processes only ever adds to the CPU time of a run
        "min_cpu_ms_per_window": 1000 * min(cpu) * WINDOW_SECONDS / audio_seconds,
    }


def _measure(fn, runs: int, audio_seconds: float) -> dict:
    """Median wall and CPU seconds of ``runs`` calls after one warm-up call.

    CPU seconds (all threads of this process) are the robust figure on a
    shared machine: wall time also counts time other processes held the cores.
    """
    return _measure_interleaved([fn], runs, audio_seconds)[0]


def _measure_interleaved(fns, runs: int, audio_seconds: float) -> list[dict]:
    """As ``_measure`` for several functions, taking turns run by run, so that a
    burst of load from other processes hits all of them alike."""
    for fn in fns:
        fn()  # warm-up: allocator, oneDNN primitive caches, lazy init
    wall: list[list[float]] = [[] for _ in fns]
    cpu: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for i, fn in enumerate(fns):
            w, c = time.perf_counter(), time.process_time()
            fn()
            wall[i].append(time.perf_counter() - w)
            cpu[i].append(time.process_time() - c)
    return [_summary(w, c, audio_seconds) for w, c in zip(wall, cpu)]


def bench_frontend(model: Musicnn, audio: np.ndarray, *, batch: int, threads: int, runs: int) -> dict:
    batches = [audio[i : i + batch] for i in range(0, len(audio), batch)]

    def run() -> None:
        if threads == 1:
            for b in batches:
                model.features(b)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(model.features, batches))

    return {"stage": "frontend", "threads": threads, "batch": batch, **_measure(run, runs, len(audio) * WINDOW_SECONDS)}


def bench_network(models: dict[str, Musicnn], feats: np.ndarray, *, label: str, batch: int, threads: int, runs: int) -> list[dict]:
    torch.set_num_threads(threads)
    batches = [feats[i : i + batch] for i in range(0, len(feats), batch)]

    def runner(model: Musicnn):
        def run() -> None:
            for b in batches:
                model.embed_batch(b)

        return run

    measured = _measure_interleaved([runner(m) for m in models.values()], runs, len(feats) * WINDOW_SECONDS)
    return [
        {"stage": f"network:{label}", "impl": impl, "threads": threads, "batch": batch, **r}
        for impl, r in zip(models, measured)
    ]


def bench_query(models: dict[str, Musicnn], feats: np.ndarray, *, threads: int, runs: int) -> list[dict]:
    torch.set_num_threads(threads)
    fns = [lambda m=m: m.embed_only(feats) for m in models.values()]
    measured = _measure_interleaved(fns, runs, len(feats) * WINDOW_SECONDS)
    return [
        {"stage": "query:embed_only", "impl": impl, "threads": threads, "batch": len(feats), **r}
        for impl, r in zip(models, measured)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--windows", type=int, default=32, help="3 s windows per run (a multiple of every batch size)")
    ap.add_argument("--batches", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--impls", nargs="+", default=list(IMPLS), choices=list(IMPLS), help="implementations to compare")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "model.json")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((args.windows, 48000))).astype(np.float32)
    load_before = os.getloadavg()[0]
    full = {impl: build(impl) for impl in args.impls}
    msd_only = {impl: build(impl, tags=("msd",)) for impl in args.impls}
    any_model = next(iter(full.values()))
    feats = any_model.features(audio)
    query = any_model.features(np.resize(audio, (19, audio.shape[1])))

    results = []
    for threads in args.threads:
        for batch in args.batches:
            results.append(bench_frontend(any_model, audio, batch=batch, threads=threads, runs=args.runs))
    for threads in args.threads:
        for batch in args.batches:
            for label, models in (("msd", msd_only), ("msd+mtt", full)):
                results += bench_network(models, feats, label=label, batch=batch, threads=threads, runs=args.runs)
    for threads in args.threads:
        results += bench_query(msd_only, query, threads=threads, runs=args.runs)

    report = {
        "model": "musicnn",
        "version": MUSICNN_VERSION,
        "windows_per_run": args.windows,
        "audio_seconds_per_run": args.windows * WINDOW_SECONDS,
        "runs": args.runs,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "machine": machine(instruction_set()),
        "loadavg_1min_before": load_before,
        "loadavg_1min_after": os.getloadavg()[0],
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    print(f"musicnn {MUSICNN_VERSION}: {args.windows} x 3 s windows per run, median of {args.runs} runs")
    print(f"load average (1 min) before {load_before:.2f}, after {report['loadavg_1min_after']:.2f}")
    print(
        f"{'stage':<18}{'impl':>11}{'threads':>8}{'batch':>7}{'median s':>10}{'x realtime':>12}{'x rt / CPU s':>14}"
        f"{'CPU ms/win':>12}{'min CPU ms':>12}"
    )
    for r in results:
        print(
            f"{r['stage']:<18}{r.get('impl', '-'):>11}{r['threads']:>8}{r['batch']:>7}{r['median_s']:>10.3f}"
            f"{r['x_realtime']:>12.1f}{r['x_realtime_per_cpu_s']:>14.1f}"
            f"{r['cpu_ms_per_window']:>12.1f}{r['min_cpu_ms_per_window']:>12.1f}"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
