#!/usr/bin/env python3
"""The similarity benchmark: build its label sets (Debian packages, MMA and fluidsynth renders), evaluate
soundalike beside the mean+std MFCC baseline and label-derived text queries, print one table per half.

Writes bench/results/similarity[-<model>].json (the report, with the command and the machine). The
benchmark lives in <data>/similarity and its libraries in <data>/similarity-work, so a second run only
searches. The same run from the CLI: ``soundalike evaluate --similarity <data>/similarity --fetch``.

    .venv/bin/python bench/similarity.py                        # every set, full size, the default model
    .venv/bin/python bench/similarity.py --sets sfx --model aisfx   # the sound-effect set with another model
    .venv/bin/python bench/similarity.py --representations      # also rank by candidate vector spaces
    .venv/bin/python bench/similarity.py --aspects all --no-text --out bench/results/similarity-aspects.json
                                                                # also rank by each --like aspect
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / ".data")
    ap.add_argument("--size", default="full", help="ci, small or full (items per class)")
    ap.add_argument("--sets", default=None, help="comma-separated label sets (default: all)")
    ap.add_argument("--model", default=None, help="embedding model of the benchmark's library")
    ap.add_argument("--representations", action="store_true", help="also rank by candidate vector spaces")
    ap.add_argument("--aspects", default="", help="comma-separated --like aspects to rank by as well, or 'all'")
    ap.add_argument("--no-text", action="store_true", help="skip the text queries")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "bench"))
    from _machine import machine
    from rich.console import Console

    from soundalike.cli.evaluate import similarity_tables
    from soundalike.evaluate.simrun import evaluate_similarity
    from soundalike.evaluate.simsets import build
    from soundalike.models.musicnn.fast import instruction_set

    from soundalike.aspects import ASPECTS

    sets = [s for s in args.sets.split(",") if s] if args.sets else None
    aspects = list(ASPECTS) if args.aspects == "all" else [a for a in args.aspects.split(",") if a]
    folder = args.data / ("similarity" if args.size == "full" else f"similarity-{args.size}")

    def progress(stage: str, done: int, total: int) -> None:
        if done == total or done % 25 == 0:
            print(f"{stage}: {done}/{total}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    build(folder, sets=sets, size=args.size, debs=args.data / "debs", progress=progress)
    built = time.perf_counter() - t0
    report = evaluate_similarity(folder, args.data / f"similarity-work-{args.size}", sets=sets, model=args.model,
                                 text=not args.no_text, representations=args.representations, aspects=aspects,
                                 progress=progress)
    report["command"] = " ".join([Path(sys.executable).name, *sys.argv])
    report["machine"] = machine(instruction_set())
    report["timings_s"]["build"] = round(built, 1)
    report["cpu_s"] = round(time.process_time(), 1)  # this process, build to search: the machine is shared
    out = args.out or ROOT / "bench" / "results" / f"similarity{'-' + args.model if args.model else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    console = Console()
    for t in similarity_tables(report):
        console.print(t)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
