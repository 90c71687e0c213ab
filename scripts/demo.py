#!/usr/bin/env python3
"""`make demo`: index a real music library and find a track from a degraded excerpt.

1. fills DIR/music with the Wesnoth soundtrack (or synthesised music offline),
2. runs `soundalike index DIR/music -L DIR/library`,
3. cuts a 10 s excerpt of one track at a random offset, adds noise at 20 dB SNR
   and re-encodes it as 64 kbit/s MP3 (DIR/query.mp3),
4. runs `soundalike search DIR/query.mp3 -L DIR/library` and says what the answer should be.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def step(title: str, cmd: list[str]) -> None:
    print(f"\n\033[1m== {title}\033[0m\n$ {' '.join(shlex.quote(c) for c in cmd)}", flush=True)
    subprocess.run(cmd, check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=Path("demo"))
    ap.add_argument("--max-tracks", type=int, default=None, help="limit the library size")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    music, library, query = args.dir / "music", args.dir / "library", args.dir / "query.mp3"
    cmd_lib = [sys.executable, str(HERE / "demo_library.py"), "--dir", str(music)]
    if args.max_tracks:
        cmd_lib += ["--max-tracks", str(args.max_tracks)]
    step("a library of real music", cmd_lib)
    soundalike = str(BIN / "soundalike")
    step("index it", [soundalike, "index", str(music), "-L", str(library)])

    import numpy as np

    from soundalike.decode import decode
    from soundalike.synth import add_noise, encode

    manifest = json.loads((music / "manifest.json").read_text())
    rng = random.Random(args.seed)
    pick = rng.choice([t for t in manifest["tracks"] if t["seconds"] >= 30])
    offset = round(rng.uniform(0, pick["seconds"] - 12), 1)
    audio = decode(music / pick["file"], sample_rate=44100, start=offset, end=offset + 10)
    noisy = add_noise(audio.samples, 20.0, np.random.default_rng(args.seed))
    encode(noisy, 44100, query, bitrate=64000)
    print(f"\nquery: 10 s of {pick['file']} from {offset // 60:.0f}:{offset % 60:04.1f}, "
          "noise at 20 dB SNR, MP3 at 64 kbit/s")
    step("search with the degraded excerpt", [soundalike, "search", str(query), "-L", str(library), "--top", "5"])
    print(f"\nexpected: {pick['file']} first, at about {offset // 60:.0f}:{offset % 60:04.1f}")
    print(f"try:  {soundalike} similar 1 -L {library}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
