#!/usr/bin/env python3
"""Identification when the catalogue holds several copies of each recording.

Real libraries hold re-encodes and level-changed copies of the same recording. This bench indexes the
real demo music (scripts/demo_library.py; 12 Wesnoth tracks) twice: as it is, and with ``--copies``
re-encoded copies of every track at other levels (gain 0.2-9 % lower, Vorbis), then searches both with
the same degraded 10 s excerpts (white and pink noise at 0 dB, pitch -2 semitones, white noise at 10 dB)
and reports top-1 (the source or any copy of it first) per degradation, side by side, with each miss.

    .venv/bin/python bench/copies.py [--copies 3] [--degradations white-0dB,pink-0dB,pitch-2st,white-10dB]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
BIN = Path(sys.executable).parent / "soundalike"
SR = 44100


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=3, help="copies of each track beside it")
    ap.add_argument("--degradations", default="white-0dB,pink-0dB,pitch-2st,white-10dB")
    ap.add_argument("--per-track", type=int, default=2, help="excerpts per track and degradation")
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / ".data")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "copies.json")
    args = ap.parse_args()

    from _machine import machine

    import soundalike
    from soundalike.decode import decode
    from soundalike.evaluate.degrade import by_name
    from soundalike.models.musicnn.fast import instruction_set
    from soundalike.synth import encode, excerpt

    real = args.data / "music-12"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "demo_library.py"), "--dir", str(real),
                    "--max-tracks", "12"], check=True)
    originals = sorted(real.glob("*.ogg"))
    copies = args.data / f"copies-{args.copies}"
    copies.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    for src in originals:
        audio = None
        for c in range(args.copies):
            path = copies / f"{src.stem}--copy{c}.ogg"
            if not path.exists():
                audio = decode(src, sample_rate=SR).samples if audio is None else audio
                encode(audio * np.float32(1.0 - rng.uniform(0.002, 0.09)), SR, path)
    libs = {"as is": args.data / "copies-lib-0", f"{args.copies} copies each": args.data / f"copies-lib-{args.copies}"}
    for name, lib in libs.items():
        folders = [real] if name == "as is" else [real, copies]
        subprocess.run([str(BIN), "index", *map(str, folders), "-L", str(lib)], check=True)

    degradations = by_name(args.degradations)
    qdir = args.data / "copies-queries"
    qdir.mkdir(exist_ok=True)
    queries = []
    qrng = np.random.default_rng(5)
    for d in degradations:
        for src in originals:
            audio = decode(src, sample_rate=SR).samples
            for k in range(args.per_track):
                start = float(qrng.uniform(0, max(0.0, len(audio) / SR - d.seconds - 1)))
                path = qdir / f"{d.name}-{src.stem}-{k}.flac"
                if not path.exists():
                    encode(d.apply(excerpt(audio, SR, start, d.seconds), SR, qrng), SR, path)
                queries.append((d.name, src.stem, path))
    results: dict = {}
    for name, lib_path in libs.items():
        lib = soundalike.open(lib_path, create=False)
        rows = []
        for deg, stem, path in queries:
            t = time.perf_counter()
            r = lib.search(path, top=5)
            first = Path(r.hits[0].path).stem if r.hits else ""
            rows.append({"degradation": deg, "source": stem, "first": first, "ok": first.split("--")[0] == stem,
                         "copy": r.hits[0].copy if r.hits else None, "ms": (time.perf_counter() - t) * 1000})
        lib.close()
        results[name] = rows
    print(f"{'degradation':14s} " + " ".join(f"{n:>18s}" for n in libs))
    summary = {}
    for d in degradations:
        cells = []
        for name in libs:
            sel = [r for r in results[name] if r["degradation"] == d.name]
            ok = sum(r["ok"] for r in sel)
            summary.setdefault(name, {})[d.name] = ok / len(sel)
            cells.append(f"{ok:>3d}/{len(sel):<3d} ({100 * ok / len(sel):5.1f} %)")
        print(f"{d.name:14s} " + " ".join(f"{c:>18s}" for c in cells))
    for name in libs:
        for r in results[name]:
            if not r["ok"]:
                print(f"  miss in {name}: {r['degradation']} of {r['source']}: first {r['first']}")
    record = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": machine(instruction_set()),
              "load_before": os.getloadavg(), "summary": summary, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
