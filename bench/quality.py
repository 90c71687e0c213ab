#!/usr/bin/env python3
"""Search-quality benchmark: build the corpus (bench/corpus.py), evaluate soundalike and its peers, print one table.

Writes bench/results/quality-<size>[-coverage<N>].json (the whole report, every query's rank included).
The libraries are kept in <data>/work-<size>, so a second run only searches.

    .venv/bin/python bench/quality.py --size small
    .venv/bin/python bench/quality.py --size full --peers chromaprint,mfcc
    .venv/bin/python bench/quality.py --size full --peers none --parts identification --degradations pitch+1st
    .venv/bin/python bench/quality.py --size full --peers none --parts identification,similarity --coverage 8
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_corpus_module():
    """bench/corpus.py as a module (bench/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("soundalike_bench_corpus", ROOT / "bench" / "corpus.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def main() -> int:
    corpus_mod = load_corpus_module()

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted(corpus_mod.SIZES), default="small")
    ap.add_argument("--data", type=Path, default=corpus_mod.DEFAULT_DATA)
    ap.add_argument("--peers", default="chromaprint,mfcc", help="comma-separated, or 'none'")
    ap.add_argument("--degradations", default="all")
    ap.add_argument("--limit", type=int, default=None, help="queries per degradation")
    ap.add_argument("--coverage", type=int, default=None,
                    help="index the catalogue with --coverage N (the fast mode), in a library of its own")
    ap.add_argument("--parts", default="identification,duplicates,similarity",
                    help="comma-separated: which of identification, duplicates, similarity to run")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    from rich.console import Console

    from soundalike.cli.evaluate import tables
    from soundalike.evaluate.run import evaluate_corpus

    try:
        folder = corpus_mod.build(args.size, args.data)
    except corpus_mod.Unavailable as exc:
        print(f"corpus unavailable: {exc}", file=sys.stderr)
        return 3
    peers = [] if args.peers == "none" else args.peers.split(",")
    last = [0.0]

    def progress(stage, done, total):
        if time.time() - last[0] > 15 or done == total:
            print(f"  {stage}: {done}/{total}", file=sys.stderr, flush=True)
            last[0] = time.time()

    t0 = time.perf_counter()
    report = evaluate_corpus(folder, args.data / f"work-{args.size}", peers=peers, degradations=args.degradations,
                             limit=args.limit, parts=args.parts.split(","), coverage=args.coverage,
                             progress=progress)
    report["wall_seconds"] = round(time.perf_counter() - t0, 1)
    suffix = f"-coverage{args.coverage}" if args.coverage else ""
    out = args.out or ROOT / "bench" / "results" / f"quality-{args.size}{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str))
    console = Console(width=140)
    for t in tables(report):
        console.print(t)
    print(f"{out} ({report['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
